//! Authorizations in flight. A row is bound to one browser session and deleted by the
//! callback that consumes it, so a state works once.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

pub struct NewPending<'a> {
    pub state_hash: &'a [u8],
    pub session_hash: &'a [u8],
    pub provider: &'a str,
    pub end_user_id: Uuid,
    pub connection_id: Option<Uuid>,
    pub pkce_verifier: Option<&'a [u8]>,
    pub context: serde_json::Value,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

pub struct Pending {
    pub provider: String,
    pub end_user_id: Uuid,
    pub connection_id: Option<Uuid>,
    pub pkce_verifier: Option<Vec<u8>>,
    pub context: serde_json::Value,
    pub expires_at: OffsetDateTime,
    /// The end user's current connection to this provider, if any: the row a new
    /// grant will replace (its id is bound into the sealed values).
    pub existing_connection_id: Option<Uuid>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("provider", &self.provider)
            .field("end_user_id", &self.end_user_id)
            .field("connection_id", &self.connection_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

pub async fn insert(conn: &mut PgConnection, p: NewPending<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO pending_authorizations
             (state_hash, session_hash, provider, end_user_id, connection_id, pkce_verifier, context, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
        p.state_hash,
        p.session_hash,
        p.provider,
        p.end_user_id,
        p.connection_id,
        p.pkce_verifier,
        p.context,
        p.created_at,
        p.expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Consumes the authorization for this state if it belongs to this session and its end
/// user still exists.
pub async fn take(
    conn: &mut PgConnection,
    state_hash: &[u8],
    session_hash: &[u8],
) -> sqlx::Result<Option<Pending>> {
    sqlx::query_as!(
        Pending,
        r#"WITH taken AS (
             DELETE FROM pending_authorizations WHERE state_hash = $1 AND session_hash = $2
             RETURNING provider, end_user_id, connection_id, pkce_verifier, context, expires_at
           )
           SELECT t.provider AS "provider!", t.end_user_id AS "end_user_id!", t.connection_id,
                  t.pkce_verifier, t.context AS "context!", t.expires_at AS "expires_at!",
                  c.id AS "existing_connection_id?"
           FROM taken t
           JOIN end_users e ON e.id = t.end_user_id
           LEFT JOIN connections c ON c.end_user_id = t.end_user_id AND c.provider = t.provider"#,
        state_hash,
        session_hash
    )
    .fetch_optional(conn)
    .await
}

pub async fn delete_expired(conn: &mut PgConnection, now: OffsetDateTime) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM pending_authorizations WHERE expires_at < $1",
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
