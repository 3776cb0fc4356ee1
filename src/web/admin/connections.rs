//! `GET /admin/connections`: filter by provider and status, search people and upstream
//! accounts, sort, and page with a keyset cursor (sort value, id) — no OFFSET, so pages
//! stay correct and cheap while rows change.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::routing::get;
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::view;
use super::{AdminError, AdminResult, AdminSession, Nav};
use crate::db::console::{self, Cursor, ListFilter, ListRow, SortKey};
use crate::error::AppError;
use crate::model::ConnectionStatus;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/connections", get(list))
}

const DEFAULT_PAGE: i64 = 25;
const MAX_PAGE: i64 = 100;
const MAX_SEARCH_CHARS: usize = 200;

/// The sort keys the page offers, by their name in URLs.
const SORTS: [(&str, SortKey, &str); 4] = [
    ("updated", SortKey::Updated, "Updated"),
    ("created", SortKey::Created, "Created"),
    ("provider", SortKey::Provider, "Provider"),
    ("last_refresh", SortKey::LastRefresh, "Last refresh"),
];

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    provider: Option<String>,
    status: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
    after: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// The validated request: what is shown, in which order, from where.
struct Listing {
    provider: Option<String>,
    status: Option<ConnectionStatus>,
    search: Option<String>,
    sort: &'static str,
    key: SortKey,
    ascending: bool,
    limit: i64,
}

fn bad(message: &str) -> AdminError {
    AdminError(AppError::BadRequest(message.into()))
}

fn non_empty(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl Listing {
    fn from_query(q: &ListQuery) -> AdminResult<Self> {
        let provider = non_empty(q.provider.clone());
        if provider.as_ref().is_some_and(|p| p.len() > 64) {
            return Err(bad("Unknown provider."));
        }
        let status = non_empty(q.status.clone())
            .map(|s| s.parse::<ConnectionStatus>())
            .transpose()
            .map_err(|_| bad("Unknown status."))?;
        let search = non_empty(q.q.clone());
        if search
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_SEARCH_CHARS)
        {
            return Err(bad("The search text is too long."));
        }
        let (sort, key) = match q.sort.as_deref().filter(|s| !s.is_empty()) {
            None => ("updated", SortKey::Updated),
            Some(name) => SORTS
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(n, k, _)| (*n, *k))
                .ok_or_else(|| bad("Unknown sort order."))?,
        };
        let ascending = match q.dir.as_deref() {
            None | Some("") | Some("desc") => false,
            Some("asc") => true,
            Some(_) => return Err(bad("Unknown sort direction.")),
        };
        let limit = match q.limit.as_deref().filter(|s| !s.is_empty()) {
            None => DEFAULT_PAGE,
            Some(n) => n
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| bad("The page size must be between 1 and 100."))?,
        };
        Ok(Self {
            provider,
            status,
            search,
            sort,
            key,
            ascending,
            limit,
        })
    }

    /// The query string for this listing with other order or position.
    fn href(&self, sort: &str, ascending: bool, position: Option<(&str, String)>) -> String {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(p) = &self.provider {
            params.push(("provider", p.clone()));
        }
        if let Some(s) = self.status {
            params.push(("status", s.as_str().to_string()));
        }
        if let Some(q) = &self.search {
            params.push(("q", q.clone()));
        }
        params.push(("sort", sort.to_string()));
        params.push(("dir", if ascending { "asc" } else { "desc" }.to_string()));
        if self.limit != DEFAULT_PAGE {
            params.push(("limit", self.limit.to_string()));
        }
        if let Some(position) = position {
            params.push(position);
        }
        format!(
            "/admin/connections?{}",
            serde_urlencoded::to_string(&params).unwrap_or_default()
        )
    }
}

/// Search text as an ILIKE pattern matching it anywhere, its own `%`, `_` and `\`
/// taken literally.
fn like_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// `{id}~{value}`: timestamps as Unix nanoseconds, provider ids as they are.
fn encode_cursor(cursor: &Cursor) -> String {
    match cursor {
        Cursor::Time(t, id) => format!("{id}~{}", t.unix_timestamp_nanos()),
        Cursor::Text(s, id) => format!("{id}~{s}"),
    }
}

fn decode_cursor(raw: &str, key: SortKey) -> Option<Cursor> {
    let (id, value) = raw.split_once('~')?;
    let id = Uuid::parse_str(id).ok()?;
    match key {
        SortKey::Provider => (value.len() <= 64).then(|| Cursor::Text(value.to_string(), id)),
        _ => {
            let nanos = value.parse::<i128>().ok()?;
            let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
            Some(Cursor::Time(at, id))
        }
    }
}

pub struct Row {
    pub id: String,
    pub user: String,
    pub external_id: String,
    pub email: String,
    pub provider: String,
    pub account: String,
    pub status_label: &'static str,
    pub status_class: &'static str,
    pub last_refresh: String,
    pub expires: String,
    pub error: String,
}

impl Row {
    fn new(app: &AppState, r: ListRow) -> Self {
        Self {
            id: r.id.to_string(),
            user: view::person(
                r.display_name.as_deref(),
                r.email.as_deref(),
                &r.external_id,
            ),
            external_id: r.external_id,
            email: r.email.unwrap_or_default(),
            provider: view::provider_name(app, &r.provider),
            account: r.account_label.or(r.account_id).unwrap_or_default(),
            status_label: view::status_label(r.status),
            status_class: view::status_class(r.status),
            last_refresh: view::when(r.last_refreshed_at),
            expires: view::when(r.access_expires_at),
            error: view::short_error(r.last_error.as_deref(), 120),
        }
    }
}

#[derive(Clone)]
pub struct Column {
    pub name: &'static str,
    pub label: &'static str,
    pub href: String,
    /// `▲`/`▼` on the column the list is sorted by.
    pub mark: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/connections.html")]
pub struct ListPage {
    pub nav: Nav,
    pub providers: Vec<(String, String)>,
    pub statuses: [(&'static str, &'static str); 4],
    pub provider: String,
    pub status: String,
    pub search: String,
    pub sort: &'static str,
    pub sorts: [(&'static str, &'static str); 4],
    pub ascending: bool,
    /// Every sort key as a link; the two sortable table headings again by name.
    pub columns: Vec<Column>,
    pub provider_column: Column,
    pub refresh_column: Column,
    pub rows: Vec<Row>,
    pub previous: Option<String>,
    pub next: Option<String>,
    pub first: Option<String>,
}

async fn list(
    State(app): State<AppState>,
    Extension(admin): Extension<AdminSession>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> AdminResult<ListPage> {
    let Query(query) = query.map_err(|_| bad("The list's address is malformed."))?;
    let listing = Listing::from_query(&query)?;
    let pattern = listing.search.as_deref().map(like_pattern);
    let filter = ListFilter {
        provider: listing.provider.as_deref(),
        status: listing.status,
        pattern: pattern.as_deref(),
    };
    let cursor = |raw: &str| {
        decode_cursor(raw, listing.key).ok_or_else(|| bad("That page link is no longer valid."))
    };
    let after = non_empty(query.after.clone())
        .map(|r| cursor(&r))
        .transpose()?;
    let before = non_empty(query.before.clone())
        .map(|r| cursor(&r))
        .transpose()?;
    let limit = listing.limit;

    let mut conn = app.pool.acquire().await?;
    // One extra row tells whether there is a page beyond this one.
    let (mut rows, has_previous, has_next) = match (&after, &before) {
        (Some(_), Some(_)) => return Err(bad("A page is either after or before a row.")),
        (None, Some(c)) => {
            let mut rows = console::list(
                &mut conn,
                &filter,
                listing.key,
                !listing.ascending,
                Some(c),
                limit + 1,
            )
            .await?;
            let more = rows.len() as i64 > limit;
            rows.truncate(limit as usize);
            rows.reverse();
            (rows, more, true)
        }
        (a, None) => {
            let mut rows = console::list(
                &mut conn,
                &filter,
                listing.key,
                listing.ascending,
                a.as_ref(),
                limit + 1,
            )
            .await?;
            let more = rows.len() as i64 > limit;
            rows.truncate(limit as usize);
            (rows, a.is_some(), more)
        }
    };
    drop(conn);

    let (sort, asc) = (listing.sort, listing.ascending);
    let previous = rows.first().filter(|_| has_previous).map(|r| {
        listing.href(
            sort,
            asc,
            Some(("before", encode_cursor(&r.cursor(listing.key)))),
        )
    });
    let next = rows.last().filter(|_| has_next).map(|r| {
        listing.href(
            sort,
            asc,
            Some(("after", encode_cursor(&r.cursor(listing.key)))),
        )
    });
    let first = (after.is_some() || before.is_some()).then(|| listing.href(sort, asc, None));
    let columns = SORTS
        .iter()
        .map(|(name, _, label)| {
            let current = *name == sort;
            // Clicking the current column flips it; another column starts newest first
            // (A→Z for the provider).
            let ascending = if current { !asc } else { *name == "provider" };
            Column {
                name,
                label,
                href: listing.href(name, ascending, None),
                mark: match (current, asc) {
                    (false, _) => "",
                    (true, true) => "▲",
                    (true, false) => "▼",
                },
            }
        })
        .collect::<Vec<Column>>();
    let column = |name: &str| columns.iter().find(|c| c.name == name).cloned();
    let (Some(provider_column), Some(refresh_column)) =
        (column("provider"), column("last_refresh"))
    else {
        return Err(AppError::internal(anyhow::anyhow!("sort columns missing")).into());
    };
    let rows = rows.drain(..).map(|r| Row::new(&app, r)).collect();
    Ok(ListPage {
        nav: admin.nav(),
        providers: app
            .settings
            .providers
            .iter()
            .map(|p| (p.id.clone(), p.display_name.clone()))
            .collect(),
        statuses: view::status_choices(),
        provider: listing.provider.clone().unwrap_or_default(),
        status: listing
            .status
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        search: listing.search.clone().unwrap_or_default(),
        sort,
        sorts: SORTS.map(|(name, _, label)| (name, label)),
        ascending: asc,
        columns,
        provider_column,
        refresh_column,
        rows,
        previous,
        next,
        first,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_wildcards_are_literal() {
        assert_eq!(like_pattern("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = Uuid::new_v4();
        let t = time::macros::datetime!(2026-12-02 14:05:59.123456 UTC);
        for (cursor, key) in [
            (Cursor::Time(t, id), SortKey::Updated),
            (
                Cursor::Time(console::NEVER_REFRESHED, id),
                SortKey::LastRefresh,
            ),
            (Cursor::Text("acme~x".into(), id), SortKey::Provider),
        ] {
            assert_eq!(decode_cursor(&encode_cursor(&cursor), key), Some(cursor));
        }
        for bad in ["", "x~1", &format!("{id}"), &format!("{id}~nope")] {
            assert!(decode_cursor(bad, SortKey::Created).is_none(), "{bad:?}");
        }
    }
}
