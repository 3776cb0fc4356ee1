//! The refresh side of a connection: reading its sealed grant, leases that make one
//! refresh happen across all instances, and the outcomes (refreshed, degraded, needs
//! reconnect). No statement here is held open across a provider call.

use sqlx::{Connection, PgConnection};

use super::webhooks;
use crate::model::{Actor, ConnectionStatus, EventKind, FailureCode};
use time::OffsetDateTime;
use uuid::Uuid;

/// Everything needed to hand out or refresh a connection's credential.
#[derive(Debug, Clone)]
pub struct GrantRow {
    pub id: Uuid,
    pub end_user_id: Uuid,
    pub provider: String,
    pub status: ConnectionStatus,
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
    /// Seconds left of a degraded connection's backoff, by the database's clock.
    pub retry_in_secs: Option<i64>,
}

pub async fn load(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<GrantRow>> {
    sqlx::query_as!(
        GrantRow,
        r#"SELECT id, end_user_id, provider, status AS "status: ConnectionStatus", account_id, metadata, access_token, refresh_token,
                  provider_session, provider_credentials, access_expires_at, refresh_expires_at,
                  lease_until, version, refresh_failures,
                  CASE WHEN status = 'degraded' AND next_refresh_at > now()
                       THEN ceil(extract(epoch FROM next_refresh_at - now()))::bigint END AS retry_in_secs
           FROM connections WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Claims the refresh lease for `lease_secs` unless another instance holds a live one;
/// returns the row as it is now (re-read under the claim). Leases are timed by the
/// database's clock, so instances whose clocks differ still agree on who holds one.
pub async fn claim_lease(
    conn: &mut PgConnection,
    id: Uuid,
    owner: &str,
    lease_secs: i64,
) -> sqlx::Result<Option<GrantRow>> {
    sqlx::query_as!(
        GrantRow,
        r#"UPDATE connections SET lease_until = now() + $3 * interval '1 second', lease_owner = $2
           WHERE id = $1 AND (lease_until IS NULL OR lease_until < now())
           RETURNING id, end_user_id, provider, status AS "status: ConnectionStatus", account_id, metadata, access_token, refresh_token,
                     provider_session, provider_credentials, access_expires_at, refresh_expires_at,
                     lease_until, version, refresh_failures,
                     CASE WHEN status = 'degraded' AND next_refresh_at > now()
                          THEN ceil(extract(epoch FROM next_refresh_at - now()))::bigint END AS retry_in_secs"#,
        id,
        owner,
        lease_secs as f64
    )
    .fetch_optional(conn)
    .await
}

/// Extends a lease this instance holds (before a long post-step); false if it no longer
/// holds it.
pub async fn extend_lease(
    conn: &mut PgConnection,
    id: Uuid,
    owner: &str,
    lease_secs: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE connections SET lease_until = now() + $3 * interval '1 second'
           WHERE id = $1 AND lease_owner = $2"#,
        id,
        owner,
        lease_secs as f64
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
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
/// instance is claiming right now; returns them as claimed. A healthy connection is due
/// by `now` (the injectable clock: its schedule comes from token lifetimes); a degraded
/// one only once its backoff has passed by the database's clock, which also times leases.
pub async fn claim_due(
    conn: &mut PgConnection,
    owner: &str,
    providers: &[String],
    now: OffsetDateTime,
    lease_secs: i64,
    limit: i64,
) -> sqlx::Result<Vec<GrantRow>> {
    sqlx::query_as!(
        GrantRow,
        r#"UPDATE connections SET lease_until = now() + $4 * interval '1 second', lease_owner = $2
           WHERE id IN (
             SELECT id FROM connections
             WHERE status IN ('active', 'degraded') AND next_refresh_at <= GREATEST($3, now())
               AND (status = 'active' OR next_refresh_at <= now())
               AND (lease_until IS NULL OR lease_until < now()) AND provider = ANY($1)
             ORDER BY next_refresh_at
             LIMIT $5
             FOR UPDATE SKIP LOCKED
           )
           RETURNING id, end_user_id, provider, status AS "status: ConnectionStatus", account_id, metadata, access_token, refresh_token,
                     provider_session, provider_credentials, access_expires_at, refresh_expires_at,
                     lease_until, version, refresh_failures,
                     CASE WHEN status = 'degraded' AND next_refresh_at > now()
                          THEN ceil(extract(epoch FROM next_refresh_at - now()))::bigint END AS retry_in_secs"#,
        providers,
        owner,
        now,
        lease_secs as f64,
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
    pub event: EventKind,
    pub actor: &'a Actor,
    /// False while a post-step (Bullhorn's REST login) still needs the lease.
    pub release_lease: bool,
    /// Who claimed the lease for this refresh (only that holder's lease is released).
    pub owner: &'a str,
    pub now: OffsetDateTime,
}

/// What storing a refresh result found.
pub struct StoredRefresh {
    pub version: i64,
    /// Whether this instance still held a live lease when the result was stored.
    pub held_lease: bool,
}

/// Stores a refresh result unless the grant changed meanwhile (a reconnect wins): the
/// fence is the version the refresh started from. A lease that ran out or changed hands
/// meanwhile is reported, not a reason to drop a grant the provider has already rotated.
/// Returns `None` if the row had moved on.
pub async fn store_refreshed(
    conn: &mut PgConnection,
    r: Refreshed<'_>,
) -> sqlx::Result<Option<StoredRefresh>> {
    let mut tx = conn.begin().await?;
    let row = sqlx::query!(
        r#"WITH held AS (
             SELECT (lease_owner IS NOT DISTINCT FROM $14 AND lease_until >= now()) AS held
             FROM connections WHERE id = $1
           ), old AS (
             SELECT id, status FROM connections WHERE id = $1 FOR UPDATE
           ), up AS (
             UPDATE connections SET
               status = 'active', access_token = $3, refresh_token = COALESCE($4, refresh_token),
               refresh_expires_at = CASE WHEN $4::bytea IS NULL THEN refresh_expires_at ELSE $8 END,
               provider_session = $5, metadata = $6, access_expires_at = $7, next_refresh_at = $9,
               lease_until = CASE WHEN $13 AND lease_owner = $14 THEN NULL ELSE lease_until END,
               lease_owner = CASE WHEN $13 AND lease_owner = $14 THEN NULL ELSE lease_owner END,
               version = version + 1, last_error = NULL, failure_code = NULL,
               refresh_failures = 0, last_refreshed_at = $10, updated_at = $10
             FROM old
             WHERE connections.id = old.id AND version = $2 AND connections.status <> 'revoked'
             RETURNING connections.id, version, old.status AS old_status
           ), ev AS (
             INSERT INTO connection_events (connection_id, kind, detail, actor, at)
             SELECT id, $11, NULL, $12, $10 FROM up
           )
           SELECT up.version, up.old_status AS "old_status: ConnectionStatus", held.held AS "held!"
           FROM up, held"#,
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
        r.event as EventKind,
        r.actor as &Actor,
        r.release_lease,
        r.owner,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = &row
        && row.old_status == ConnectionStatus::Degraded
    {
        webhooks::enqueue(&mut tx, "connection.recovered", r.id, None, r.now).await?;
    }
    tx.commit().await?;
    Ok(row.map(|row| StoredRefresh {
        version: row.version,
        held_lease: row.held,
    }))
}

/// The grant is dead: the user must reconnect. Only if nothing replaced it meanwhile.
/// `code` says why (the user's explanation, the webhook's reason); `reason` is the
/// detail for admins.
pub async fn mark_needs_reconnect(
    conn: &mut PgConnection,
    id: Uuid,
    expected_version: i64,
    code: FailureCode,
    reason: &str,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let mut tx = conn.begin().await?;
    let done = sqlx::query_scalar!(
        r#"WITH up AS (
             UPDATE connections SET status = 'needs_reconnect', last_error = $3, failure_code = $5,
                    next_refresh_at = NULL,
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
        now,
        code as FailureCode
    )
    .fetch_one(&mut *tx)
    .await?;
    if done > 0 {
        webhooks::enqueue(&mut tx, "connection.needs_reconnect", id, Some(code), now).await?;
    }
    tx.commit().await?;
    Ok(done > 0)
}

/// A refresh failed for a reason that may pass: keep the token, back off for
/// `backoff_secs` by the database's clock (nobody calls the provider for it before then).
pub async fn mark_degraded(
    conn: &mut PgConnection,
    id: Uuid,
    owner: &str,
    code: FailureCode,
    reason: &str,
    backoff_secs: i64,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    let mut tx = conn.begin().await?;
    let edge = sqlx::query_scalar!(
        r#"WITH old AS (
             SELECT id, status FROM connections WHERE id = $1 FOR UPDATE
           ), up AS (
             UPDATE connections SET status = CASE WHEN connections.status = 'active' THEN 'degraded' ELSE connections.status END,
                    last_error = $3, failure_code = $6, next_refresh_at = now() + $4 * interval '1 second', refresh_failures = refresh_failures + 1,
                    lease_until = NULL, lease_owner = NULL, updated_at = $5
             FROM old
             WHERE connections.id = old.id AND lease_owner = $2
             RETURNING connections.id, old.status = 'active' AS became_degraded
           ), ev AS (
             INSERT INTO connection_events (connection_id, kind, detail, actor, at)
             SELECT id, 'refresh_failed', $3, 'keyhaven', $5 FROM up
           )
           SELECT COALESCE(bool_or(became_degraded), false) AS "edge!" FROM up"#,
        id,
        owner,
        reason,
        backoff_secs as f64,
        now,
        code as FailureCode
    )
    .fetch_one(&mut *tx)
    .await?;
    if edge {
        webhooks::enqueue(&mut tx, "connection.degraded", id, Some(code), now).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A provider-level problem: one row per (provider, kind), counted.
pub async fn record_alarm(
    conn: &mut PgConnection,
    provider: &str,
    kind: &str,
    detail: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO provider_alarms (provider, kind, detail, count, first_seen, last_seen)
           VALUES ($1, $2, $3, 1, $4, $4)
           ON CONFLICT (provider, kind) DO UPDATE
             SET count = provider_alarms.count + 1, detail = EXCLUDED.detail, last_seen = EXCLUDED.last_seen"#,
        provider,
        kind,
        detail,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// An alarm that also stops calls with these client credentials for `backoff_secs`
/// (database clock); credentials with another fingerprint are not held back.
pub async fn record_alarm_with_backoff(
    conn: &mut PgConnection,
    provider: &str,
    kind: &str,
    detail: &str,
    client_fingerprint: &[u8],
    backoff_secs: i64,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO provider_alarms
             (provider, kind, detail, count, first_seen, last_seen, backoff_until, client_fingerprint)
           VALUES ($1, $2, $3, 1, $4, $4, now() + $6 * interval '1 second', $5)
           ON CONFLICT (provider, kind) DO UPDATE
             SET count = provider_alarms.count + 1, detail = EXCLUDED.detail,
                 last_seen = EXCLUDED.last_seen, backoff_until = EXCLUDED.backoff_until,
                 client_fingerprint = EXCLUDED.client_fingerprint"#,
        provider,
        kind,
        detail,
        now,
        client_fingerprint,
        backoff_secs as f64
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Seconds left of a provider-level backoff for these client credentials, if any.
pub async fn provider_backoff(
    conn: &mut PgConnection,
    provider: &str,
    kind: &str,
    client_fingerprint: &[u8],
) -> sqlx::Result<Option<i64>> {
    let left = sqlx::query_scalar!(
        r#"SELECT ceil(extract(epoch FROM backoff_until - now()))::bigint AS "left!"
           FROM provider_alarms
           WHERE provider = $1 AND kind = $2 AND client_fingerprint = $3 AND backoff_until > now()"#,
        provider,
        kind,
        client_fingerprint
    )
    .fetch_optional(conn)
    .await?;
    Ok(left)
}

/// Providers under a backoff of this kind, with the fingerprint it applies to.
pub async fn providers_backing_off(
    conn: &mut PgConnection,
    kind: &str,
) -> sqlx::Result<Vec<(String, Vec<u8>)>> {
    let rows = sqlx::query!(
        r#"SELECT provider, client_fingerprint AS "fingerprint!" FROM provider_alarms
           WHERE kind = $1 AND backoff_until > now() AND client_fingerprint IS NOT NULL"#,
        kind
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.provider, r.fingerprint))
        .collect())
}

/// Disconnect: tokens wiped, row and history kept as `revoked`.
pub async fn wipe(
    conn: &mut PgConnection,
    id: Uuid,
    detail: &str,
    actor: &Actor,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    let mut tx = conn.begin().await?;
    let edge = sqlx::query_scalar!(
        r#"WITH old AS (
             SELECT id, status FROM connections WHERE id = $1 FOR UPDATE
           ), up AS (
             UPDATE connections SET status = 'revoked', access_token = NULL, refresh_token = NULL,
                    provider_session = NULL, provider_credentials = NULL, next_refresh_at = NULL,
                    lease_until = NULL, lease_owner = NULL, version = version + 1, updated_at = $4
             FROM old
             WHERE connections.id = old.id
             RETURNING connections.id, old.status <> 'revoked' AS disconnected
           ), ev AS (
             INSERT INTO connection_events (connection_id, kind, detail, actor, at)
             SELECT id, 'revoked', $2, $3, $4 FROM up
           )
           SELECT COALESCE(bool_or(disconnected), false) AS "edge!" FROM up"#,
        id,
        detail,
        actor as &Actor,
        now
    )
    .fetch_one(&mut *tx)
    .await?;
    if edge {
        webhooks::enqueue(&mut tx, "connection.disconnected", id, None, now).await?;
    }
    tx.commit().await?;
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
