//! The history of each connection. Details never hold secrets.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::{Actor, EventKind};

#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub detail: Option<String>,
    pub actor: Actor,
    pub at: OffsetDateTime,
}

pub async fn record(
    conn: &mut PgConnection,
    connection_id: Uuid,
    kind: EventKind,
    detail: Option<&str>,
    actor: &Actor,
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO connection_events (connection_id, kind, detail, actor, at) VALUES ($1, $2, $3, $4, $5)",
        connection_id,
        kind as EventKind,
        detail,
        actor as &Actor,
        at
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn list(
    conn: &mut PgConnection,
    connection_id: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<Event>> {
    sqlx::query_as!(
        Event,
        r#"SELECT kind AS "kind: EventKind", detail, actor AS "actor: Actor", at
           FROM connection_events WHERE connection_id = $1 ORDER BY at DESC, id DESC LIMIT $2"#,
        connection_id,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Deletes up to `limit` events older than `before`; returns how many went.
pub async fn delete_before(
    conn: &mut PgConnection,
    before: OffsetDateTime,
    limit: i64,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM connection_events WHERE id IN (SELECT id FROM connection_events WHERE at < $1 LIMIT $2)",
        before,
        limit
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
