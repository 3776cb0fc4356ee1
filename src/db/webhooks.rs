//! Webhooks: endpoints, the outbox of events and their deliveries. An event is written
//! by [`enqueue`] inside the transaction of the change it reports, so a change that rolls
//! back leaves none; deliveries are claimed with `FOR UPDATE SKIP LOCKED` and a lease.

use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::FailureCode;

/// The channel a commit with new deliveries notifies (every instance listens). The two
/// statements below that call `pg_notify` spell it out: keep them equal.
pub const CHANNEL: &str = "keyhaven_webhooks";

/// Writes an event about connection `connection_id` as it is now, with one delivery per
/// endpoint that wants this type, and wakes the delivery workers at commit. Nothing is
/// written when no endpoint wants it. Call it inside the change's transaction. Returns
/// the event's id when one was written.
pub async fn enqueue(
    conn: &mut PgConnection,
    event_type: &str,
    connection_id: Uuid,
    reason: Option<FailureCode>,
    occurred_at: OffsetDateTime,
) -> sqlx::Result<Option<Uuid>> {
    let id = Uuid::new_v4();
    let written = sqlx::query_scalar!(
        r#"WITH ev AS (
             INSERT INTO webhook_events (id, type, connection_id, data, occurred_at)
             SELECT $1, $2, c.id,
                    jsonb_build_object('connection_id', c.id,
                                       'end_user', jsonb_build_object('external_id', e.external_id),
                                       'provider', c.provider, 'status', c.status,
                                       'account_label', c.account_label, 'reason', $4::text),
                    $5
             FROM connections c JOIN end_users e ON e.id = c.end_user_id
             WHERE c.id = $3
               AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.events IS NULL OR $2 = ANY (w.events))
             RETURNING id, type
           ), dl AS (
             INSERT INTO webhook_deliveries (event_id, endpoint_id)
             SELECT ev.id, w.id FROM ev, webhook_endpoints w
             WHERE w.events IS NULL OR ev.type = ANY (w.events)
             RETURNING endpoint_id
           )
           SELECT (SELECT count(*) FROM dl)
                + (SELECT count(*) FROM (SELECT pg_notify('keyhaven_webhooks', '') FROM ev) AS n) AS "n!""#,
        id,
        event_type,
        connection_id,
        reason as Option<FailureCode>,
        occurred_at
    )
    .fetch_one(conn)
    .await?;
    Ok((written > 0).then_some(id))
}

/// A delivery claimed for one attempt, with what it needs to be sent.
#[derive(Clone)]
pub struct Claimed {
    pub id: i64,
    pub attempts: i32,
    pub event_id: Uuid,
    pub event_type: String,
    pub data: serde_json::Value,
    pub occurred_at: OffsetDateTime,
    pub connection_id: Uuid,
    pub endpoint_id: Uuid,
    pub url: String,
    pub secret_sealed: Vec<u8>,
    /// The secret before a rotation, while it still signs beside the new one.
    pub previous_secret_sealed: Option<Vec<u8>>,
}

impl std::fmt::Debug for Claimed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimed")
            .field("id", &self.id)
            .field("event_type", &self.event_type)
            .field("endpoint_id", &self.endpoint_id)
            .finish_non_exhaustive()
    }
}

/// Claims due deliveries for `lease_secs`, at most `max_in_flight` leased at once per
/// endpoint across all instances: the endpoint rows are locked (skipping those another
/// instance is claiming for right now), then the leases already out are counted.
/// Returns how many endpoints it looked at, and the deliveries claimed.
pub async fn claim(
    conn: &mut PgConnection,
    owner: &str,
    max_in_flight: i64,
    lease_secs: i64,
) -> sqlx::Result<(usize, Vec<Claimed>)> {
    let mut tx = conn.begin().await?;
    let endpoints =
        sqlx::query_scalar!("SELECT id FROM webhook_endpoints ORDER BY id FOR UPDATE SKIP LOCKED")
            .fetch_all(&mut *tx)
            .await?;
    if endpoints.is_empty() {
        tx.commit().await?;
        return Ok((0, Vec::new()));
    }
    let claimed = sqlx::query_as!(
        Claimed,
        r#"WITH busy AS (
             SELECT endpoint_id, count(*) AS n FROM webhook_deliveries
             WHERE status = 'pending' AND lease_until >= now() AND endpoint_id = ANY ($1)
             GROUP BY endpoint_id
           ), room AS (
             SELECT e.id, $2 - COALESCE(b.n, 0) AS free
             FROM unnest($1::uuid[]) AS e (id) LEFT JOIN busy b ON b.endpoint_id = e.id
           ), picked AS (
             SELECT d.id FROM room CROSS JOIN LATERAL (
               SELECT id FROM webhook_deliveries
               WHERE endpoint_id = room.id AND status = 'pending' AND next_attempt_at <= now()
                 AND (lease_until IS NULL OR lease_until < now())
               ORDER BY next_attempt_at, id
               LIMIT GREATEST(room.free, 0)
               FOR UPDATE SKIP LOCKED
             ) d
           )
           UPDATE webhook_deliveries d
           SET lease_until = now() + $3 * interval '1 second', lease_owner = $4,
               attempts = d.attempts + 1, last_attempt_at = now()
           FROM picked, webhook_events ev, webhook_endpoints w
           WHERE d.id = picked.id AND ev.id = d.event_id AND w.id = d.endpoint_id
           RETURNING d.id, d.attempts, ev.id AS event_id, ev.type AS event_type, ev.data,
                     ev.occurred_at, ev.connection_id, w.id AS endpoint_id, w.url, w.secret_sealed,
                     CASE WHEN w.previous_secret_until > now() THEN w.previous_secret_sealed END
                       AS previous_secret_sealed"#,
        &endpoints,
        max_in_flight,
        lease_secs as f64,
        owner
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((endpoints.len(), claimed))
}

/// The receiver answered 2xx.
pub async fn mark_delivered(conn: &mut PgConnection, id: i64, code: i32) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE webhook_deliveries
           SET status = 'delivered', last_status_code = $2, last_error = NULL,
               lease_until = NULL, lease_owner = NULL
           WHERE id = $1"#,
        id,
        code
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// An attempt failed for a reason that may pass: try again after `delay_ms`, unless that
/// falls outside the retry window, in which case the delivery has failed. Returns the
/// new status.
pub async fn mark_retry(
    conn: &mut PgConnection,
    id: i64,
    owner: &str,
    code: Option<i32>,
    error: &str,
    delay_ms: i64,
    window_secs: i64,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        r#"UPDATE webhook_deliveries
           SET status = CASE WHEN now() + $5 * interval '1 millisecond'
                                  > window_start + $6 * interval '1 second'
                             THEN 'failed' ELSE 'pending' END,
               next_attempt_at = now() + $5 * interval '1 millisecond',
               last_status_code = $3, last_error = $4, lease_until = NULL, lease_owner = NULL
           WHERE id = $1 AND lease_owner = $2 AND status = 'pending'
           RETURNING status"#,
        id,
        owner,
        code,
        error,
        delay_ms as f64,
        window_secs as f64
    )
    .fetch_optional(conn)
    .await
}

/// An answer that retrying will not change (a redirect, a 4xx other than 429).
pub async fn mark_failed(
    conn: &mut PgConnection,
    id: i64,
    code: Option<i32>,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE webhook_deliveries
           SET status = 'failed', last_status_code = $2, last_error = $3,
               lease_until = NULL, lease_owner = NULL
           WHERE id = $1 AND status = 'pending'"#,
        id,
        code,
        error
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deliveries still waiting to succeed (the outbox backlog); served by the partial
/// pending index.
pub async fn pending_count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
        .fetch_one(conn)
        .await
}

/// Seconds until the next pending delivery is due (negative: overdue), if any.
pub async fn next_due_in(conn: &mut PgConnection) -> sqlx::Result<Option<f64>> {
    sqlx::query_scalar!(
        r#"SELECT extract(epoch FROM min(GREATEST(next_attempt_at, COALESCE(lease_until, next_attempt_at))) - now())::float8
           FROM webhook_deliveries WHERE status = 'pending'"#
    )
    .fetch_one(conn)
    .await
}

/// Sends a delivery again (whatever its status), with a fresh retry window; false if
/// there is none or an attempt is under way.
pub async fn redeliver(conn: &mut PgConnection, id: i64) -> sqlx::Result<bool> {
    let n = sqlx::query_scalar!(
        r#"WITH up AS (
             UPDATE webhook_deliveries
             SET status = 'pending', next_attempt_at = now(), window_start = now(),
                 lease_until = NULL, lease_owner = NULL
             WHERE id = $1 AND (lease_until IS NULL OR lease_until < now())
             RETURNING id
           )
           SELECT count(*) + (SELECT count(*) FROM (SELECT pg_notify('keyhaven_webhooks', '') FROM up) AS n) AS "n!"
           FROM up"#,
        id
    )
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}

/// Removes events (and their deliveries) older than `days`.
pub async fn purge(conn: &mut PgConnection, days: i64) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM webhook_events WHERE created_at < now() - $1 * interval '1 day'",
        days as f64
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// An endpoint as listed (no secret).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub events: Option<Vec<String>>,
    pub created_at: OffsetDateTime,
    pub previous_secret_until: Option<OffsetDateTime>,
}

pub async fn create_endpoint(
    conn: &mut PgConnection,
    id: Uuid,
    url: &str,
    events: Option<&[String]>,
    secret_sealed: &[u8],
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO webhook_endpoints (id, url, events, secret_sealed) VALUES ($1, $2, $3, $4)",
        id,
        url,
        events,
        secret_sealed
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn list_endpoints(conn: &mut PgConnection) -> sqlx::Result<Vec<Endpoint>> {
    sqlx::query_as!(
        Endpoint,
        r#"SELECT id, url, events, created_at,
                  CASE WHEN previous_secret_until > now() THEN previous_secret_until END AS previous_secret_until
           FROM webhook_endpoints ORDER BY created_at, id"#
    )
    .fetch_all(conn)
    .await
}

pub async fn delete_endpoint(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!("DELETE FROM webhook_endpoints WHERE id = $1", id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The current sealed secret, locked for a rotation (inside a transaction).
pub async fn secret_for_update(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar!(
        "SELECT secret_sealed FROM webhook_endpoints WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(conn)
    .await
}

/// A new secret; the previous one keeps signing beside it for `overlap_hours`.
pub async fn rotate_secret(
    conn: &mut PgConnection,
    id: Uuid,
    secret_sealed: &[u8],
    previous_sealed: &[u8],
    overlap_hours: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE webhook_endpoints
           SET secret_sealed = $2, previous_secret_sealed = $3,
               previous_secret_until = now() + $4 * interval '1 hour'
           WHERE id = $1"#,
        id,
        secret_sealed,
        previous_sealed,
        overlap_hours as f64
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An endpoint's sealed secrets, for re-sealing with a new primary key.
pub struct SealedSecrets {
    pub id: Uuid,
    pub secret_sealed: Vec<u8>,
    pub previous_secret_sealed: Option<Vec<u8>>,
}

pub async fn sealed_secrets(conn: &mut PgConnection) -> sqlx::Result<Vec<SealedSecrets>> {
    sqlx::query_as!(
        SealedSecrets,
        "SELECT id, secret_sealed, previous_secret_sealed FROM webhook_endpoints ORDER BY id"
    )
    .fetch_all(conn)
    .await
}

/// Stores re-sealed secrets unless they changed meanwhile (a rotation wins).
pub async fn reseal(
    conn: &mut PgConnection,
    before: &SealedSecrets,
    after: &SealedSecrets,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE webhook_endpoints SET secret_sealed = $4, previous_secret_sealed = $5
           WHERE id = $1 AND secret_sealed = $2 AND previous_secret_sealed IS NOT DISTINCT FROM $3"#,
        before.id,
        before.secret_sealed,
        before.previous_secret_sealed,
        after.secret_sealed,
        after.previous_secret_sealed
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A delivery as the console lists it.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_type: String,
    pub connection_id: Uuid,
    pub endpoint_url: String,
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

pub async fn recent_deliveries(
    conn: &mut PgConnection,
    limit: i64,
) -> sqlx::Result<Vec<DeliveryRow>> {
    sqlx::query_as!(
        DeliveryRow,
        r#"SELECT d.id, ev.type AS event_type, ev.connection_id, w.url AS endpoint_url, d.status,
                  d.attempts, d.last_status_code, d.last_error,
                  CASE WHEN d.status = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
                  d.created_at
           FROM webhook_deliveries d
           JOIN webhook_events ev ON ev.id = d.event_id
           JOIN webhook_endpoints w ON w.id = d.endpoint_id
           ORDER BY d.id DESC LIMIT $1"#,
        limit
    )
    .fetch_all(conn)
    .await
}
