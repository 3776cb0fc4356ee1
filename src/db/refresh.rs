//! The refresh side of a connection: reading its sealed grant, leases that make one
//! refresh happen across all instances, and the outcomes (refreshed, degraded, needs
//! reconnect). No statement here is held open across a provider call.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// Everything needed to hand out or refresh a connection's credential.
#[derive(Debug, Clone)]
pub struct GrantRow {
    pub id: Uuid,
    pub end_user_id: Uuid,
    pub provider: String,
    pub status: String,
    pub account_id: Option<String>,
    pub metadata: serde_json::Value,
    pub access_token: Option<Vec<u8>>,
    pub refresh_token: Option<Vec<u8>>,
    pub provider_session: Option<Vec<u8>>,
    pub provider_credentials: Option<Vec<u8>>,
    pub access_expires_at: Option<OffsetDateTime>,
    pub refresh_expires_at: Option<OffsetDateTime>,
    pub lease_until: Option<OffsetDateTime>,
    pub version: i64,
    pub refresh_failures: i32,
}

pub async fn load(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<GrantRow>> {
    sqlx::query_as!(
        GrantRow,
        r#"SELECT id, end_user_id, provider, status, account_id, metadata, access_token, refresh_token,
                  provider_session, provider_credentials, access_expires_at, refresh_expires_at,
                  lease_until, version, refresh_failures
           FROM connections WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Claims the refresh lease unless another instance holds a live one; returns the row
/// as it is now (re-read under the claim).
pub async fn claim_lease(
    conn: &mut PgConnection,
    id: Uuid,
    owner: &str,
    now: OffsetDateTime,
    until: OffsetDateTime,
) -> sqlx::Result<Option<GrantRow>> {
    sqlx::query_as!(
        GrantRow,
        r#"UPDATE connections SET lease_until = $4, lease_owner = $2
           WHERE id = $1 AND (lease_until IS NULL OR lease_until < $3)
           RETURNING id, end_user_id, provider, status, account_id, metadata, access_token, refresh_token,
                     provider_session, provider_credentials, access_expires_at, refresh_expires_at,
                     lease_until, version, refresh_failures"#,
        id,
        owner,
        now,
        until
    )
    .fetch_optional(conn)
    .await
}

pub async fn release_lease(conn: &mut PgConnection, id: Uuid, owner: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE connections SET lease_until = NULL, lease_owner = NULL WHERE id = $1 AND lease_owner = $2",
        id,
        owner
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims up to `limit` connections due for a background refresh, skipping rows another
/// instance is claiming right now; returns them as claimed.
pub async fn claim_due(
    conn: &mut PgConnection,
    owner: &str,
    providers: &[String],
    now: OffsetDateTime,
    until: OffsetDateTime,
    limit: i64,
) -> sqlx::Result<Vec<GrantRow>> {
    sqlx::query_as!(
        GrantRow,
        r#"UPDATE connections SET lease_until = $4, lease_owner = $2
           WHERE id IN (
             SELECT id FROM connections
             WHERE status IN ('active', 'degraded') AND next_refresh_at <= $3
               AND (lease_until IS NULL OR lease_until < $3) AND provider = ANY($1)
             ORDER BY next_refresh_at
             LIMIT $5
             FOR UPDATE SKIP LOCKED
           )
           RETURNING id, end_user_id, provider, status, account_id, metadata, access_token, refresh_token,
                     provider_session, provider_credentials, access_expires_at, refresh_expires_at,
                     lease_until, version, refresh_failures"#,
        providers,
        owner,
        now,
        until,
        limit
    )
    .fetch_all(conn)
    .await
}

/// A refreshed grant, sealed for its row.
#[derive(Clone)]
pub struct Refreshed<'a> {
    pub id: Uuid,
    pub expected_version: i64,
    pub access_token: &'a [u8],
    /// `None` keeps the stored refresh token (providers that do not rotate).
    pub refresh_token: Option<&'a [u8]>,
    pub provider_session: Option<&'a [u8]>,
    pub metadata: serde_json::Value,
    pub access_expires_at: Option<OffsetDateTime>,
    pub refresh_expires_at: Option<OffsetDateTime>,
    pub next_refresh_at: Option<OffsetDateTime>,
    pub event: &'a str,
    pub actor: &'a str,
    /// False while a post-step (Bullhorn's REST login) still needs the lease.
    pub release_lease: bool,
    pub now: OffsetDateTime,
}

/// Stores a refresh result unless the grant changed meanwhile (a reconnect wins).
/// Returns the new version, or `None` if the row had moved on.
pub async fn store_refreshed(
    conn: &mut PgConnection,
    r: Refreshed<'_>,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        r#"WITH up AS (
             UPDATE connections SET
               status = 'active', access_token = $3, refresh_token = COALESCE($4, refresh_token),
               refresh_expires_at = CASE WHEN $4::bytea IS NULL THEN refresh_expires_at ELSE $8 END,
               provider_session = $5, metadata = $6, access_expires_at = $7, next_refresh_at = $9,
               lease_until = CASE WHEN $13 THEN NULL ELSE lease_until END,
               lease_owner = CASE WHEN $13 THEN NULL ELSE lease_owner END,
               version = version + 1, last_error = NULL,
               refresh_failures = 0, last_refreshed_at = $10, updated_at = $10
             WHERE id = $1 AND version = $2 AND status <> 'revoked'
             RETURNING id, version
           ), ev AS (
             INSERT INTO connection_events (connection_id, kind, detail, actor, at)
             SELECT id, $11, NULL, $12, $10 FROM up
           )
           SELECT version FROM up"#,
        r.id,
        r.expected_version,
        r.access_token,
        r.refresh_token,
        r.provider_session,
        r.metadata,
        r.access_expires_at,
        r.refresh_expires_at,
        r.next_refresh_at,
        r.now,
        r.event,
        r.actor,
        r.release_lease,
    )
    .fetch_optional(conn)
    .await
}

/// The grant is dead: the user must reconnect. Only if nothing replaced it meanwhile.
pub async fn mark_needs_reconnect(
    conn: &mut PgConnection,
    id: Uuid,
    expected_version: i64,
    reason: &str,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let done = sqlx::query_scalar!(
        r#"WITH up AS (
             UPDATE connections SET status = 'needs_reconnect', last_error = $3, next_refresh_at = NULL,
                    lease_until = NULL, lease_owner = NULL, updated_at = $4
             WHERE id = $1 AND version = $2 AND status IN ('active', 'degraded')
             RETURNING id
           ), ev AS (
             INSERT INTO connection_events (connection_id, kind, detail, actor, at)
             SELECT id, 'needs_reconnect', $3, 'keyhaven', $4 FROM up
           )
           SELECT count(*) AS "n!" FROM up"#,
        id,
        expected_version,
        reason,
        now
    )
    .fetch_one(conn)
    .await?;
    Ok(done > 0)
}

/// A refresh failed for a reason that may pass: keep the token, back off.
pub async fn mark_degraded(
    conn: &mut PgConnection,
    id: Uuid,
    owner: &str,
    reason: &str,
    retry_at: OffsetDateTime,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"WITH up AS (
             UPDATE connections SET status = CASE WHEN status = 'active' THEN 'degraded' ELSE status END,
                    last_error = $3, next_refresh_at = $4, refresh_failures = refresh_failures + 1,
                    lease_until = NULL, lease_owner = NULL, updated_at = $5
             WHERE id = $1 AND lease_owner = $2
             RETURNING id
           )
           INSERT INTO connection_events (connection_id, kind, detail, actor, at)
           SELECT id, 'refresh_failed', $3, 'keyhaven', $5 FROM up"#,
        id,
        owner,
        reason,
        retry_at,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn record_alarm(
    conn: &mut PgConnection,
    provider: &str,
    kind: &str,
    detail: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO provider_alarms (provider, kind, detail, at) VALUES ($1, $2, $3, $4)",
        provider,
        kind,
        detail,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Disconnect: tokens wiped, row and history kept as `revoked`.
pub async fn wipe(
    conn: &mut PgConnection,
    id: Uuid,
    detail: &str,
    actor: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"WITH up AS (
             UPDATE connections SET status = 'revoked', access_token = NULL, refresh_token = NULL,
                    provider_session = NULL, provider_credentials = NULL, next_refresh_at = NULL,
                    lease_until = NULL, lease_owner = NULL, version = version + 1, updated_at = $4
             WHERE id = $1
             RETURNING id
           )
           INSERT INTO connection_events (connection_id, kind, detail, actor, at)
           SELECT id, 'revoked', $2, $3, $4 FROM up"#,
        id,
        detail,
        actor,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Bullhorn: the REST session made from a freshly refreshed grant, stored under the
/// same lease; clears the lease.
pub async fn store_session(
    conn: &mut PgConnection,
    id: Uuid,
    expected_version: i64,
    provider_session: &[u8],
    metadata: serde_json::Value,
    access_expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE connections SET provider_session = $3, metadata = $4, access_expires_at = $5,
                  lease_until = NULL, lease_owner = NULL, version = version + 1, updated_at = $6
           WHERE id = $1 AND version = $2"#,
        id,
        expected_version,
        provider_session,
        metadata,
        access_expires_at,
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
