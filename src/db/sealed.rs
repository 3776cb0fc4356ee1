//! Every sealed column of every connection, for re-sealing after a key rotation.

use sqlx::PgConnection;
use uuid::Uuid;

pub struct SealedRow {
    pub id: Uuid,
    pub version: i64,
    pub access_token: Option<Vec<u8>>,
    pub refresh_token: Option<Vec<u8>>,
    pub provider_session: Option<Vec<u8>>,
    pub provider_credentials: Option<Vec<u8>>,
}

/// Connections after `after` (keyset order by id), `limit` at a time.
pub async fn page(
    conn: &mut PgConnection,
    after: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<SealedRow>> {
    sqlx::query_as!(
        SealedRow,
        r#"SELECT id, version, access_token, refresh_token, provider_session, provider_credentials
           FROM connections WHERE id > $1 ORDER BY id LIMIT $2"#,
        after,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Writes re-sealed values unless the grant changed meanwhile (then it is already
/// sealed with the primary key).
pub async fn update(conn: &mut PgConnection, row: &SealedRow) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE connections SET access_token = $3, refresh_token = $4, provider_session = $5,
                  provider_credentials = $6
           WHERE id = $1 AND version = $2"#,
        row.id,
        row.version,
        row.access_token,
        row.refresh_token,
        row.provider_session,
        row.provider_credentials
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
