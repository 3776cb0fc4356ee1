//! API keys for the host product's backend. Only their SHA-256 is stored, with a short
//! non-secret prefix that tells keys apart in lists.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

pub async fn create(
    conn: &mut PgConnection,
    name: &str,
    key_hash: &[u8],
    prefix: &str,
    expires_at: Option<OffsetDateTime>,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "INSERT INTO api_keys (id, name, key_hash, prefix, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        Uuid::new_v4(),
        name,
        key_hash,
        prefix,
        expires_at
    )
    .fetch_one(conn)
    .await
}

/// A key that may be used: not revoked, not expired.
#[derive(Debug, Clone, Copy)]
pub struct Verified {
    pub id: Uuid,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

/// The key when the hash belongs to one that is neither revoked nor expired at `now`.
pub async fn verify(
    conn: &mut PgConnection,
    key_hash: &[u8],
    now: OffsetDateTime,
) -> sqlx::Result<Option<Verified>> {
    sqlx::query_as!(
        Verified,
        r#"SELECT id, expires_at, last_used_at FROM api_keys
           WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)"#,
        key_hash,
        now
    )
    .fetch_optional(conn)
    .await
}

/// Notes a use; a no-op when another instance noted one within the last minute.
pub async fn touch(conn: &mut PgConnection, id: Uuid, now: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE api_keys SET last_used_at = $2
           WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2::timestamptz - interval '1 minute')"#,
        id,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: Uuid,
    pub name: String,
    pub prefix: Option<String>,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// Every key, newest first.
pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<KeyRow>> {
    sqlx::query_as!(
        KeyRow,
        r#"SELECT id, name, prefix, created_at, last_used_at, expires_at, revoked_at
           FROM api_keys ORDER BY created_at DESC, id"#
    )
    .fetch_all(conn)
    .await
}

/// Revokes a key; `false` when there is no such key. Revoking twice keeps the first time.
pub async fn revoke(conn: &mut PgConnection, id: Uuid, now: OffsetDateTime) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1",
        id,
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
