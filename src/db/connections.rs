//! Connections: one per (end user, provider), holding the sealed grant.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// What pages and the API show about a connection (no secrets).
#[derive(Debug, Clone)]
pub struct ConnectionSummary {
    pub id: Uuid,
    pub provider: String,
    pub status: String,
    pub account_id: Option<String>,
    pub account_label: Option<String>,
    pub scopes: Option<String>,
    pub access_expires_at: Option<OffsetDateTime>,
    pub last_refreshed_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

pub async fn list_for_end_user(
    conn: &mut PgConnection,
    end_user_id: Uuid,
) -> sqlx::Result<Vec<ConnectionSummary>> {
    sqlx::query_as!(
        ConnectionSummary,
        r#"SELECT id, provider, status, account_id, account_label, scopes, access_expires_at,
                  last_refreshed_at, last_error, created_at, updated_at
           FROM connections WHERE end_user_id = $1 ORDER BY provider"#,
        end_user_id
    )
    .fetch_all(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ConnectionSummary>> {
    sqlx::query_as!(
        ConnectionSummary,
        r#"SELECT id, provider, status, account_id, account_label, scopes, access_expires_at,
                  last_refreshed_at, last_error, created_at, updated_at
           FROM connections WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// The connection row a new grant goes into, created if missing. Locks the row for the
/// rest of the transaction; returns its id and the account it held before (if any).
pub async fn claim_row(
    conn: &mut PgConnection,
    end_user_id: Uuid,
    provider: &str,
) -> sqlx::Result<(Uuid, Option<String>, bool)> {
    let row = sqlx::query!(
        r#"INSERT INTO connections (id, end_user_id, provider, status, version) VALUES ($1, $2, $3, 'active', 0)
           ON CONFLICT ON CONSTRAINT connections_one_per_provider
             DO UPDATE SET updated_at = connections.updated_at
           RETURNING id, account_id, (xmax = 0) AS "created!""#,
        Uuid::new_v4(),
        end_user_id,
        provider
    )
    .fetch_one(conn)
    .await?;
    Ok((row.id, row.account_id, row.created))
}

/// A fresh grant, already sealed for this row.
pub struct NewGrant<'a> {
    pub id: Uuid,
    pub account_id: Option<&'a str>,
    pub account_label: Option<&'a str>,
    pub scopes: Option<&'a str>,
    pub metadata: serde_json::Value,
    pub access_token: &'a [u8],
    pub refresh_token: Option<&'a [u8]>,
    pub access_expires_at: Option<OffsetDateTime>,
    pub refresh_expires_at: Option<OffsetDateTime>,
    pub next_refresh_at: Option<OffsetDateTime>,
    pub now: OffsetDateTime,
}

/// Replaces the grant in place. A grant without a refresh token keeps the old one.
pub async fn store_grant(conn: &mut PgConnection, g: NewGrant<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE connections SET
             status = 'active', account_id = $2, account_label = $3, scopes = $4, metadata = $5,
             access_token = $6, refresh_token = COALESCE($7, refresh_token), provider_session = NULL,
             access_expires_at = $8,
             refresh_expires_at = CASE WHEN $7::bytea IS NULL THEN refresh_expires_at ELSE $9 END,
             next_refresh_at = $10, lease_until = NULL, lease_owner = NULL,
             version = version + 1, last_error = NULL, last_refreshed_at = $11, updated_at = $11
           WHERE id = $1"#,
        g.id,
        g.account_id,
        g.account_label,
        g.scopes,
        g.metadata,
        g.access_token,
        g.refresh_token,
        g.access_expires_at,
        g.refresh_expires_at,
        g.next_refresh_at,
        g.now
    )
    .execute(conn)
    .await?;
    Ok(())
}
