//! Read-only queries behind the admin console: dashboard figures, the searchable and
//! sortable connection list (keyset pagination), and one connection in full. Nothing
//! here selects a sealed column.
//!
//! At a million connections each of these is an index read: the counts come from the
//! trigger-kept `connection_counts`; every sort has an index on (sort value, id), so a
//! page is the next `limit` entries after its cursor; a search of three characters or
//! more finds its candidates through trigram indexes (`pg_trgm`) on end users and
//! upstream accounts, and only those are sorted. Shorter search text cannot use
//! trigrams and scans the end users (a second or so at a million).

use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::{ConnectionStatus, EventKind};

#[derive(Debug, Clone)]
pub struct StatusCount {
    pub provider: String,
    pub status: ConnectionStatus,
    pub n: i64,
}

pub async fn counts_by_provider_and_status(
    conn: &mut PgConnection,
) -> sqlx::Result<Vec<StatusCount>> {
    sqlx::query_as!(
        StatusCount,
        r#"SELECT provider AS "provider!", status AS "status!: ConnectionStatus", count AS "n!"
           FROM connection_counts WHERE count <> 0 ORDER BY provider, status"#
    )
    .fetch_all(conn)
    .await
}

/// A failure event with enough context to find its connection.
#[derive(Debug, Clone)]
pub struct FailureEvent {
    pub connection_id: Uuid,
    pub provider: String,
    pub external_id: String,
    pub display_name: Option<String>,
    pub kind: EventKind,
    pub detail: Option<String>,
    pub at: OffsetDateTime,
}

pub async fn recent_failures(
    conn: &mut PgConnection,
    limit: i64,
) -> sqlx::Result<Vec<FailureEvent>> {
    sqlx::query_as!(
        FailureEvent,
        r#"SELECT c.id AS connection_id, c.provider, u.external_id, u.display_name,
                  e.kind AS "kind: EventKind", e.detail, e.at
           FROM connection_events e
           JOIN connections c ON c.id = e.connection_id
           JOIN end_users u ON u.id = c.end_user_id
           WHERE e.kind IN ('refresh_failed', 'needs_reconnect', 'revoke_failed')
           ORDER BY e.at DESC, e.id DESC
           LIMIT $1"#,
        limit
    )
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone)]
pub struct Alarm {
    pub provider: String,
    pub kind: String,
    pub detail: Option<String>,
    /// When it was last seen.
    pub at: OffsetDateTime,
    pub count: i64,
}

pub async fn recent_alarms(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Alarm>> {
    sqlx::query_as!(
        Alarm,
        "SELECT provider, kind, detail, last_seen AS at, count FROM provider_alarms ORDER BY last_seen DESC, provider, kind LIMIT $1",
        limit
    )
    .fetch_all(conn)
    .await
}

/// One line of the connection list.
#[derive(Debug, Clone)]
pub struct ListRow {
    pub id: Uuid,
    pub provider: String,
    pub status: ConnectionStatus,
    pub account_id: Option<String>,
    pub account_label: Option<String>,
    pub access_expires_at: Option<OffsetDateTime>,
    pub last_refreshed_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub external_id: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
}

/// What the list can be ordered by. Each key maps to a fixed SQL expression below;
/// nothing a request carries is ever put into the SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Updated,
    Created,
    Provider,
    LastRefresh,
}

/// Never-refreshed connections sort as if refreshed at this instant, so the sort value
/// is never NULL and keyset comparisons stay simple. Must equal the SQL constant below.
pub const NEVER_REFRESHED: OffsetDateTime = time::macros::datetime!(0001-01-01 0:00 UTC);

/// A row's position in the order: its sort value and its id (the tie-breaker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    Time(OffsetDateTime, Uuid),
    Text(String, Uuid),
}

impl ListRow {
    pub fn cursor(&self, key: SortKey) -> Cursor {
        match key {
            SortKey::Updated => Cursor::Time(self.updated_at, self.id),
            SortKey::Created => Cursor::Time(self.created_at, self.id),
            SortKey::LastRefresh => {
                Cursor::Time(self.last_refreshed_at.unwrap_or(NEVER_REFRESHED), self.id)
            }
            SortKey::Provider => Cursor::Text(self.provider.clone(), self.id),
        }
    }
}

pub struct ListFilter<'a> {
    pub provider: Option<&'a str>,
    pub status: Option<ConnectionStatus>,
    /// An ILIKE pattern with the user's wildcards already escaped.
    pub pattern: Option<&'a str>,
}

/// One statement per (sort key, direction, with or without search), built from fixed
/// fragments at compile time (sqlx checks each one against the schema).
macro_rules! list_query {
    ($conn:expr, $f:expr, $limit:expr, $key:tt, $cast:tt, $op:tt, $dir:tt, $value:expr, $id:expr) => {
        if $f.pattern.is_some() {
            // The search as a set of connection ids, so that the planner can take the few
            // matches from the trigram indexes and sort only those (an OR across the two
            // tables could only be checked row by row along the sort order).
            list_query!(@one $conn, $f, $limit,
                "c.id IN (SELECT m.id FROM connections m JOIN end_users mu ON mu.id = m.end_user_id
                          WHERE mu.external_id ILIKE $3 OR mu.email ILIKE $3
                             OR mu.display_name ILIKE $3
                          UNION ALL
                          SELECT m.id FROM connections m
                          WHERE m.account_id ILIKE $3 OR m.account_label ILIKE $3)",
                $key, $cast, $op, $dir, $value, $id)
        } else {
            list_query!(@one $conn, $f, $limit, "$3::text IS NULL", $key, $cast, $op, $dir, $value, $id)
        }
    };
    (@one $conn:expr, $f:expr, $limit:expr, $search:tt, $key:tt, $cast:tt, $op:tt, $dir:tt, $value:expr, $id:expr) => {
        sqlx::query_as!(
            ListRow,
            r#"SELECT c.id, c.provider, c.status AS "status: ConnectionStatus", c.account_id, c.account_label,
                      c.access_expires_at, c.last_refreshed_at, c.last_error,
                      c.created_at, c.updated_at, u.external_id, u.email, u.display_name
               FROM connections c JOIN end_users u ON u.id = c.end_user_id
               WHERE ($1::text IS NULL OR c.provider = $1)
                 AND ($2::text IS NULL OR c.status = $2)
                 AND "#
                + $search
                + " AND ($4::uuid IS NULL OR ("
                + $key
                + ", c.id) "
                + $op
                + " ($5::"
                + $cast
                + ", $4))
               ORDER BY "
                + $key
                + " "
                + $dir
                + ", c.id "
                + $dir
                + " LIMIT $6",
            $f.provider,
            $f.status as Option<ConnectionStatus>,
            $f.pattern,
            $id,
            $value,
            $limit
        )
        .fetch_all(&mut *$conn)
        .await
    };
}

/// Up to `limit` rows after `after` in the given order (`ascending` or not). A page
/// before a cursor is the same query in the opposite direction, reversed by the caller.
pub async fn list(
    conn: &mut PgConnection,
    filter: &ListFilter<'_>,
    key: SortKey,
    ascending: bool,
    after: Option<&Cursor>,
    limit: i64,
) -> sqlx::Result<Vec<ListRow>> {
    // The optional filters are `$n IS NULL OR ...`: planned for the values at hand they
    // fold away and the cursor becomes an index bound. A plan cached for any values
    // (which Postgres may switch a prepared statement to) would keep them as filters
    // and read the sort index from its start on every page.
    let mut tx = conn.begin().await?;
    sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(&mut *tx)
        .await?;
    let rows = list_in(&mut tx, filter, key, ascending, after, limit).await?;
    tx.commit().await?;
    Ok(rows)
}

async fn list_in(
    conn: &mut PgConnection,
    filter: &ListFilter<'_>,
    key: SortKey,
    ascending: bool,
    after: Option<&Cursor>,
    limit: i64,
) -> sqlx::Result<Vec<ListRow>> {
    let id = after.map(|c| match c {
        Cursor::Time(_, id) | Cursor::Text(_, id) => *id,
    });
    let time = match after {
        Some(Cursor::Time(t, _)) => Some(*t),
        _ => None,
    };
    let text = match after {
        Some(Cursor::Text(s, _)) => Some(s.as_str()),
        _ => None,
    };
    let f = filter;
    match (key, ascending) {
        (SortKey::Updated, true) => {
            list_query!(
                conn,
                f,
                limit,
                "c.updated_at",
                "timestamptz",
                ">",
                "ASC",
                time,
                id
            )
        }
        (SortKey::Updated, false) => {
            list_query!(
                conn,
                f,
                limit,
                "c.updated_at",
                "timestamptz",
                "<",
                "DESC",
                time,
                id
            )
        }
        (SortKey::Created, true) => {
            list_query!(
                conn,
                f,
                limit,
                "c.created_at",
                "timestamptz",
                ">",
                "ASC",
                time,
                id
            )
        }
        (SortKey::Created, false) => {
            list_query!(
                conn,
                f,
                limit,
                "c.created_at",
                "timestamptz",
                "<",
                "DESC",
                time,
                id
            )
        }
        (SortKey::Provider, true) => {
            list_query!(conn, f, limit, "c.provider", "text", ">", "ASC", text, id)
        }
        (SortKey::Provider, false) => {
            list_query!(conn, f, limit, "c.provider", "text", "<", "DESC", text, id)
        }
        (SortKey::LastRefresh, true) => list_query!(
            conn,
            f,
            limit,
            "COALESCE(c.last_refreshed_at, '0001-01-01 00:00:00+00'::timestamptz)",
            "timestamptz",
            ">",
            "ASC",
            time,
            id
        ),
        (SortKey::LastRefresh, false) => list_query!(
            conn,
            f,
            limit,
            "COALESCE(c.last_refreshed_at, '0001-01-01 00:00:00+00'::timestamptz)",
            "timestamptz",
            "<",
            "DESC",
            time,
            id
        ),
    }
}

/// One connection with its end user, for the detail page.
#[derive(Debug, Clone)]
pub struct Detail {
    pub id: Uuid,
    pub provider: String,
    pub status: ConnectionStatus,
    pub account_id: Option<String>,
    pub account_label: Option<String>,
    pub scopes: Option<String>,
    pub metadata: serde_json::Value,
    pub access_expires_at: Option<OffsetDateTime>,
    pub refresh_expires_at: Option<OffsetDateTime>,
    pub next_refresh_at: Option<OffsetDateTime>,
    pub last_refreshed_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub refresh_failures: i32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub external_id: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
}

pub async fn detail(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Detail>> {
    sqlx::query_as!(
        Detail,
        r#"SELECT c.id, c.provider, c.status AS "status: ConnectionStatus", c.account_id, c.account_label,
                  c.scopes, c.metadata,
                  c.access_expires_at, c.refresh_expires_at, c.next_refresh_at,
                  c.last_refreshed_at, c.last_error, c.refresh_failures, c.created_at,
                  c.updated_at, u.external_id, u.email, u.display_name
           FROM connections c JOIN end_users u ON u.id = c.end_user_id
           WHERE c.id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}
