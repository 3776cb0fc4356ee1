//! Connect and reconnect links. Only the SHA-256 of a link's token is stored.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Link {
    pub kind: String,
    pub end_user_id: Uuid,
    pub connection_id: Option<Uuid>,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

pub async fn create(
    conn: &mut PgConnection,
    token_hash: &[u8],
    kind: &str,
    end_user_id: Uuid,
    connection_id: Option<Uuid>,
    expires_at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO links (token_hash, kind, end_user_id, connection_id, expires_at) VALUES ($1, $2, $3, $4, $5)",
        token_hash,
        kind,
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
        "SELECT kind, end_user_id, connection_id, expires_at, used_at FROM links WHERE token_hash = $1",
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
           RETURNING kind, end_user_id, connection_id, expires_at, used_at"#,
        token_hash,
        now
    )
    .fetch_optional(conn)
    .await
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
