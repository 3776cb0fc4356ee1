//! API keys for the host product's backend. Only their SHA-256 is stored.

use sqlx::PgConnection;
use uuid::Uuid;

pub async fn create(conn: &mut PgConnection, name: &str, key_hash: &[u8]) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "INSERT INTO api_keys (id, name, key_hash) VALUES ($1, $2, $3) RETURNING id",
        Uuid::new_v4(),
        name,
        key_hash
    )
    .fetch_one(conn)
    .await
}

/// The key's id when the hash belongs to a key that is not revoked.
pub async fn verify(conn: &mut PgConnection, key_hash: &[u8]) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        key_hash
    )
    .fetch_optional(conn)
    .await
}
