//! Connect and reconnect links. A link is found by the SHA-256 of its token; a reconnect
//! link's token is also kept sealed so the same live link can be handed out again.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::LinkKind;

#[derive(Debug, Clone)]
pub struct Link {
    pub kind: LinkKind,
    pub end_user_id: Uuid,
    pub connection_id: Option<Uuid>,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    /// What the link was made for (connect links; see `link_options`).
    pub return_url: Option<String>,
    pub providers: Option<Vec<String>>,
    pub provider: Option<String>,
    pub mode: String,
}

/// A connect link's options as stored.
#[derive(Debug, Clone, Copy)]
pub struct StoredOptions<'a> {
    pub return_url: Option<&'a str>,
    pub providers: Option<&'a [String]>,
    pub provider: Option<&'a str>,
    pub mode: &'a str,
}

/// A connect link with its options.
pub async fn create_connect(
    conn: &mut PgConnection,
    token_hash: &[u8],
    end_user_id: Uuid,
    expires_at: OffsetDateTime,
    options: StoredOptions<'_>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO links (token_hash, kind, end_user_id, expires_at, return_url, providers, provider, mode) VALUES ($1, 'connect', $2, $3, $4, $5, $6, $7)",
        token_hash,
        end_user_id,
        expires_at,
        options.return_url,
        options.providers,
        options.provider,
        options.mode
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn create(
    conn: &mut PgConnection,
    token_hash: &[u8],
    kind: LinkKind,
    end_user_id: Uuid,
    connection_id: Option<Uuid>,
    expires_at: OffsetDateTime,
) -> sqlx::Result<()> {
    create_sealed(
        conn,
        token_hash,
        None,
        kind,
        end_user_id,
        connection_id,
        expires_at,
    )
    .await
}

/// Like `create`, also keeping the token sealed for handing the link out again.
pub async fn create_sealed(
    conn: &mut PgConnection,
    token_hash: &[u8],
    token_sealed: Option<&[u8]>,
    kind: LinkKind,
    end_user_id: Uuid,
    connection_id: Option<Uuid>,
    expires_at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO links (token_hash, token_sealed, kind, end_user_id, connection_id, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        token_hash,
        token_sealed,
        kind as LinkKind,
        end_user_id,
        connection_id,
        expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(conn: &mut PgConnection, token_hash: &[u8]) -> sqlx::Result<Option<Link>> {
    sqlx::query_as!(
        Link,
        r#"SELECT kind AS "kind: LinkKind", end_user_id, connection_id, expires_at, used_at, return_url,
                  providers, provider, mode
           FROM links WHERE token_hash = $1"#,
        token_hash
    )
    .fetch_optional(conn)
    .await
}

/// Uses a reconnect link: valid, unused and unexpired links work exactly once.
pub async fn consume_reconnect(
    conn: &mut PgConnection,
    token_hash: &[u8],
    now: OffsetDateTime,
) -> sqlx::Result<Option<Link>> {
    sqlx::query_as!(
        Link,
        r#"UPDATE links SET used_at = $2
           WHERE token_hash = $1 AND kind = 'reconnect' AND used_at IS NULL AND expires_at > $2
           RETURNING kind AS "kind: LinkKind", end_user_id, connection_id, expires_at, used_at, return_url, providers, provider, mode"#,
        token_hash,
        now
    )
    .fetch_optional(conn)
    .await
}

/// A reconnect link that can be handed out again.
#[derive(Clone)]
pub struct LiveReconnect {
    pub token_hash: Vec<u8>,
    pub token_sealed: Vec<u8>,
    pub expires_at: OffsetDateTime,
}

/// The unused reconnect link of a connection that lives longest, if it lives past `until`.
pub async fn live_reconnect(
    conn: &mut PgConnection,
    connection_id: Uuid,
    until: OffsetDateTime,
) -> sqlx::Result<Option<LiveReconnect>> {
    sqlx::query_as!(
        LiveReconnect,
        r#"SELECT token_hash, token_sealed AS "token_sealed!", expires_at FROM links
           WHERE connection_id = $1 AND kind = 'reconnect' AND used_at IS NULL
             AND expires_at > $2 AND token_sealed IS NOT NULL
           ORDER BY expires_at DESC LIMIT 1"#,
        connection_id,
        until
    )
    .fetch_optional(conn)
    .await
}

/// Serialises issuing reconnect links for one connection (until the transaction ends).
pub async fn lock_reconnect_issuing(
    conn: &mut PgConnection,
    connection_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('reconnect-link:' || $1::text, 0))",
        connection_id.to_string()
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// Up to `limit` links that expired or were used before `before`; returns how many went.
pub async fn delete_spent(
    conn: &mut PgConnection,
    before: OffsetDateTime,
    limit: i64,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        r#"DELETE FROM links WHERE token_hash IN (
               SELECT token_hash FROM links WHERE expires_at < $1
               UNION
               SELECT token_hash FROM links WHERE used_at < $1
               LIMIT $2)"#,
        before,
        limit
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Sealed link tokens, a page at a time (ordered by hash), for re-sealing.
pub async fn sealed_page(
    conn: &mut PgConnection,
    after: &[u8],
    limit: i64,
) -> sqlx::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let rows = sqlx::query!(
        r#"SELECT token_hash, token_sealed AS "token_sealed!" FROM links
           WHERE token_sealed IS NOT NULL AND token_hash > $1 ORDER BY token_hash LIMIT $2"#,
        after,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.token_hash, r.token_sealed))
        .collect())
}

/// Replaces a sealed token if it is still the one that was read.
pub async fn reseal(
    conn: &mut PgConnection,
    token_hash: &[u8],
    old: &[u8],
    new: &[u8],
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE links SET token_sealed = $3 WHERE token_hash = $1 AND token_sealed = $2",
        token_hash,
        old,
        new
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Who claimed a connect link: the SHA-256 of the claiming browser's value, if any.
pub async fn claimed_by(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> sqlx::Result<Option<Vec<u8>>> {
    let row = sqlx::query_scalar!(
        "SELECT claimed_by FROM links WHERE token_hash = $1",
        token_hash
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.flatten())
}

/// Claims a connect link for a browser, or confirms that browser holds it; false when
/// another browser claimed it first.
pub async fn claim(
    conn: &mut PgConnection,
    token_hash: &[u8],
    browser_hash: &[u8],
) -> sqlx::Result<bool> {
    let mine = sqlx::query_scalar!(
        r#"UPDATE links SET claimed_by = COALESCE(claimed_by, $2)
           WHERE token_hash = $1 AND kind = 'connect'
           RETURNING claimed_by = $2 AS "mine!""#,
        token_hash,
        browser_hash
    )
    .fetch_optional(conn)
    .await?;
    Ok(mine == Some(true))
}
