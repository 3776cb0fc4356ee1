//! Connections: one per (end user, provider), holding the sealed grant.

use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::{Actor, ConnectionStatus, FailureCode};

/// What pages and the API show about a connection (no secrets).
#[derive(Debug, Clone)]
pub struct ConnectionSummary {
    pub id: Uuid,
    pub provider: String,
    pub status: ConnectionStatus,
    pub account_id: Option<String>,
    pub account_label: Option<String>,
    pub scopes: Option<String>,
    pub access_expires_at: Option<OffsetDateTime>,
    pub last_refreshed_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    /// Why it failed, while it is degraded or needs reconnect.
    pub failure_code: Option<FailureCode>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

pub async fn list_for_end_user(
    conn: &mut PgConnection,
    end_user_id: Uuid,
) -> sqlx::Result<Vec<ConnectionSummary>> {
    sqlx::query_as!(
        ConnectionSummary,
        r#"SELECT id, provider, status AS "status: ConnectionStatus", account_id, account_label, scopes,
                  access_expires_at, last_refreshed_at, last_error,
                  failure_code AS "failure_code: FailureCode", created_at, updated_at
           FROM connections WHERE end_user_id = $1 ORDER BY provider"#,
        end_user_id
    )
    .fetch_all(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ConnectionSummary>> {
    sqlx::query_as!(
        ConnectionSummary,
        r#"SELECT id, provider, status AS "status: ConnectionStatus", account_id, account_label, scopes,
                  access_expires_at, last_refreshed_at, last_error,
                  failure_code AS "failure_code: FailureCode", created_at, updated_at
           FROM connections WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// A fresh grant, already sealed for row `id`.
pub struct NewGrant<'a> {
    pub id: Uuid,
    pub end_user_id: Uuid,
    pub provider: &'a str,
    pub account_id: Option<&'a str>,
    pub account_label: Option<&'a str>,
    pub scopes: Option<&'a str>,
    pub metadata: serde_json::Value,
    pub access_token: &'a [u8],
    pub refresh_token: Option<&'a [u8]>,
    pub provider_session: Option<&'a [u8]>,
    pub provider_credentials: Option<&'a [u8]>,
    pub access_expires_at: Option<OffsetDateTime>,
    pub refresh_expires_at: Option<OffsetDateTime>,
    pub next_refresh_at: Option<OffsetDateTime>,
    pub actor: &'a Actor,
    pub now: OffsetDateTime,
}

/// What storing a grant did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Created,
    Replaced,
    /// The end user's connection has another id than the one the grant was sealed
    /// for (a concurrent connect created it): seal again for that id.
    SealedForOtherRow(Uuid),
}

/// Creates the connection or replaces its grant in place, recording `connected`,
/// `reconnected` and `account_changed` events in one statement.
/// A grant without a refresh token keeps the old one. The webhook event
/// (`connection.created` or `connection.reconnected`) is written in the same transaction.
pub async fn store_grant(conn: &mut PgConnection, g: NewGrant<'_>) -> sqlx::Result<Stored> {
    let mut tx = conn.begin().await?;
    let row = sqlx::query!(
        r#"WITH previous AS (
             SELECT account_id FROM connections WHERE id = $1
           ), up AS (
             INSERT INTO connections AS c
               (id, end_user_id, provider, status, account_id, account_label, scopes, metadata,
                access_token, refresh_token, access_expires_at, refresh_expires_at, next_refresh_at,
                version, last_refreshed_at, created_at, updated_at, provider_session, provider_credentials)
             VALUES ($1, $2, $3, 'active', $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13, $13, $13, $15, $16)
             ON CONFLICT ON CONSTRAINT connections_one_per_provider DO UPDATE SET
               status = 'active', account_id = EXCLUDED.account_id, account_label = EXCLUDED.account_label,
               scopes = EXCLUDED.scopes, metadata = EXCLUDED.metadata,
               access_token = EXCLUDED.access_token,
               refresh_token = COALESCE(EXCLUDED.refresh_token, c.refresh_token),
               refresh_expires_at = CASE WHEN EXCLUDED.refresh_token IS NULL THEN c.refresh_expires_at
                                         ELSE EXCLUDED.refresh_expires_at END,
               provider_session = EXCLUDED.provider_session,
               provider_credentials = EXCLUDED.provider_credentials,
               refresh_failures = 0, access_expires_at = EXCLUDED.access_expires_at,
               next_refresh_at = EXCLUDED.next_refresh_at, lease_until = NULL, lease_owner = NULL,
               version = c.version + 1, last_error = NULL, failure_code = NULL,
               last_refreshed_at = EXCLUDED.last_refreshed_at, updated_at = EXCLUDED.updated_at
             WHERE c.id = EXCLUDED.id
             RETURNING c.id, (xmax = 0) AS created
           ), events AS (
             INSERT INTO connection_events (connection_id, kind, detail, actor, at)
             SELECT id, CASE WHEN created THEN 'connected' ELSE 'reconnected' END, NULL, $14, $13 FROM up
             UNION ALL
             SELECT up.id, 'account_changed', 'a different upstream account was connected', $14, $13
             FROM up, previous
             WHERE NOT up.created AND previous.account_id IS DISTINCT FROM $4
           )
           SELECT (SELECT created FROM up) AS "created?",
                  (SELECT id FROM connections WHERE end_user_id = $2 AND provider = $3) AS "current_id?""#,
        g.id,
        g.end_user_id,
        g.provider,
        g.account_id,
        g.account_label,
        g.scopes,
        g.metadata,
        g.access_token,
        g.refresh_token,
        g.access_expires_at,
        g.refresh_expires_at,
        g.next_refresh_at,
        g.now,
        g.actor as &Actor,
        g.provider_session,
        g.provider_credentials,
    )
    .fetch_one(&mut *tx)
    .await?;
    let event = match row.created {
        Some(true) => Some("connection.created"),
        Some(false) => Some("connection.reconnected"),
        None => None,
    };
    if let Some(event) = event {
        super::webhooks::enqueue(&mut tx, event, g.id, None, g.now).await?;
    }
    tx.commit().await?;
    Ok(match (row.created, row.current_id) {
        (Some(true), _) => Stored::Created,
        (Some(false), _) => Stored::Replaced,
        (None, Some(other)) => Stored::SealedForOtherRow(other),
        // The row vanished between the two reads (deleted concurrently): try again as new.
        (None, None) => Stored::SealedForOtherRow(Uuid::new_v4()),
    })
}

/// The end user and all their connections in one round trip (the connect page).
pub async fn end_user_with_connections(
    conn: &mut PgConnection,
    end_user_id: Uuid,
) -> sqlx::Result<Option<(super::end_users::EndUser, Vec<ConnectionSummary>)>> {
    let rows = sqlx::query!(
        r#"SELECT e.id AS end_user_id, e.external_id, e.email, e.display_name,
                  c.id AS "id?", c.provider AS "provider?", c.status AS "status?: ConnectionStatus",
                  c.account_id, c.account_label, c.scopes, c.access_expires_at, c.last_refreshed_at,
                  c.last_error, c.failure_code AS "failure_code: FailureCode",
                  c.created_at AS "created_at?", c.updated_at AS "updated_at?"
           FROM end_users e LEFT JOIN connections c ON c.end_user_id = e.id
           WHERE e.id = $1 ORDER BY c.provider"#,
        end_user_id
    )
    .fetch_all(conn)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let user = super::end_users::EndUser {
        id: first.end_user_id,
        external_id: first.external_id.clone(),
        email: first.email.clone(),
        display_name: first.display_name.clone(),
    };
    let connections = rows
        .into_iter()
        .filter_map(|r| {
            Some(ConnectionSummary {
                id: r.id?,
                provider: r.provider?,
                status: r.status?,
                account_id: r.account_id,
                account_label: r.account_label,
                scopes: r.scopes,
                access_expires_at: r.access_expires_at,
                last_refreshed_at: r.last_refreshed_at,
                last_error: r.last_error,
                failure_code: r.failure_code,
                created_at: r.created_at?,
                updated_at: r.updated_at?,
            })
        })
        .collect();
    Ok(Some((user, connections)))
}

pub async fn find_for_end_user(
    conn: &mut PgConnection,
    end_user_id: Uuid,
    provider: &str,
) -> sqlx::Result<Option<ConnectionSummary>> {
    sqlx::query_as!(
        ConnectionSummary,
        r#"SELECT id, provider, status AS "status: ConnectionStatus", account_id, account_label, scopes,
                  access_expires_at, last_refreshed_at, last_error,
                  failure_code AS "failure_code: FailureCode", created_at, updated_at
           FROM connections WHERE end_user_id = $1 AND provider = $2"#,
        end_user_id,
        provider
    )
    .fetch_optional(conn)
    .await
}

pub async fn end_user_of(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!("SELECT end_user_id FROM connections WHERE id = $1", id)
        .fetch_optional(conn)
        .await
}

/// Connections due for a background refresh now (the refresher's backlog); walks the
/// partial due index only.
pub async fn refresh_backlog(conn: &mut PgConnection) -> sqlx::Result<u64> {
    let due: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM connections
         WHERE status IN ('active', 'degraded') AND next_refresh_at <= now()",
    )
    .fetch_one(conn)
    .await?;
    Ok(due.max(0) as u64)
}
