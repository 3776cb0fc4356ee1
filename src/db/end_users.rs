//! The host product's users, as far as Keyhaven needs to know them.

use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct EndUser {
    pub id: Uuid,
    pub external_id: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
}

/// Creates the end user or updates the given details; returns its id.
pub async fn upsert(
    conn: &mut PgConnection,
    external_id: &str,
    email: Option<&str>,
    display_name: Option<&str>,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        r#"INSERT INTO end_users (id, external_id, email, display_name)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (external_id) DO UPDATE
             SET email = COALESCE(EXCLUDED.email, end_users.email),
                 display_name = COALESCE(EXCLUDED.display_name, end_users.display_name),
                 updated_at = now()
           RETURNING id"#,
        Uuid::new_v4(),
        external_id,
        email,
        display_name,
    )
    .fetch_one(conn)
    .await
}

pub async fn find_by_external_id(
    conn: &mut PgConnection,
    external_id: &str,
) -> sqlx::Result<Option<EndUser>> {
    sqlx::query_as!(
        EndUser,
        "SELECT id, external_id, email, display_name FROM end_users WHERE external_id = $1",
        external_id
    )
    .fetch_optional(conn)
    .await
}
