//! The admin console at a million connections: seeds 1,000,000 end users and connections
//! with SQL (generate_series) into a fresh database, then times the console's real pages
//! over HTTP and the queries behind them: the dashboard, searches by external id, email,
//! name and upstream account, every sort in both directions (first page, later pages
//! following "Next", a page deep in the middle), and the detail page. Also times the
//! credential API (p50/p99, 16 clients) and the refresher's claim of due connections at
//! this size. Targets: dashboard < 50 ms, search < 100 ms, list pages < 50 ms, detail
//! < 20 ms, claim < 5 ms.
//!
//! Run: `cargo bench --bench scale` (BENCH_ROWS, default 1000000; BENCH_REPEAT, default 15).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use keyhaven::db::console::{self, Cursor, ListFilter, SortKey};
use support::{RawConnection, ms, percentile};

/// Runs the future `repeat` times after one warm-up run (a console in use has its pages'
/// plans and data cached); returns the sorted durations.
macro_rules! timed {
    ($repeat:expr, $future:expr) => {{
        $future.await;
        let mut times = Vec::with_capacity($repeat);
        for _ in 0..$repeat {
            let t = Instant::now();
            $future.await;
            times.push(t.elapsed());
        }
        times.sort();
        times
    }};
}

const PROVIDERS: [&str; 5] = ["smartrecruiters", "acme", "bullhorn", "zoho", "hurdlr"];

#[tokio::main]
async fn main() {
    let rows: i64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let repeat: usize = std::env::var("BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let portal = support::start(|_| {}).await;
    // A few connections with real sealed tokens, for the credential API.
    let real = Arc::new(support::connect_many(&portal, "smartrecruiters", 200, 16).await);

    let started = Instant::now();
    seed(&portal, rows).await;
    println!(
        "scale: {rows} connections seeded with SQL in {:.1} s (+{} through real flows)",
        started.elapsed().as_secs_f64(),
        real.len()
    );

    let mut admin = Admin::sign_in(&portal).await;
    let mut conn = portal.state.pool.acquire().await.unwrap();
    let pick = |n: i64| n * 7919 % rows;
    let (external_id, email, name): (String, String, String) = sqlx::query_as(
        "SELECT external_id, email, display_name FROM end_users WHERE external_id = $1",
    )
    .bind(format!("user-{:07}", pick(1)))
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    let (detail_id, account): (uuid::Uuid, String) = sqlx::query_as(
        "SELECT c.id, c.account_label FROM connections c JOIN end_users u ON u.id = c.end_user_id
         WHERE u.external_id = $1",
    )
    .bind(format!("user-{:07}", pick(2)))
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    drop(conn);

    println!(
        "{:<68} {:>22} {:>22}",
        "", "page p50 / max", "query p50 / max"
    );
    let dashboard = timed!(repeat, admin.get("/admin".into()));
    let q = timed!(repeat, async {
        let mut c = portal.state.pool.acquire().await.unwrap();
        console::counts_by_provider_and_status(&mut c)
            .await
            .unwrap();
        console::recent_failures(&mut c, 20).await.unwrap();
    });
    line("dashboard (target < 50 ms)", &dashboard, &q);

    let searches = [
        ("external id", external_id.clone()),
        ("email", email.clone()),
        ("name", name.clone()),
        ("upstream account", account.clone()),
        ("external id, part", external_id[2..9].to_string()),
        ("email domain, part", "example042.c".to_string()),
        ("2 characters", "zq".to_string()),
        ("1 character `_`", "_".to_string()),
    ];
    for (what, text) in &searches {
        let path = format!(
            "/admin/connections?{}",
            serde_urlencoded::to_string([("q", text.as_str())]).unwrap()
        );
        let page = timed!(repeat, admin.get(path.clone()));
        let pattern = format!("%{}%", text.replace('_', "\\_"));
        let query = timed!(repeat, async {
            let mut c = portal.state.pool.acquire().await.unwrap();
            let f = ListFilter {
                provider: None,
                status: None,
                pattern: Some(&pattern),
            };
            console::list(&mut c, &f, SortKey::Updated, false, None, 26)
                .await
                .unwrap();
        });
        let target = if text.chars().count() >= 3 {
            "target < 100 ms"
        } else {
            "under 3 characters, no target"
        };
        line(&format!("search {what} ({target})"), &page, &query);
    }

    let sorts = [
        ("updated", SortKey::Updated),
        ("created", SortKey::Created),
        ("provider", SortKey::Provider),
        ("last_refresh", SortKey::LastRefresh),
    ];
    let filters: [(&str, Option<&str>, Option<&str>); 3] = [
        ("", None, None),
        ("status=needs_reconnect&", None, Some("needs_reconnect")),
        ("provider=bullhorn&", Some("bullhorn"), None),
    ];
    for (filter_query, provider, status) in filters {
        for (name, key) in sorts {
            for dir in ["desc", "asc"] {
                let ascending = dir == "asc";
                let base = format!("/admin/connections?{filter_query}sort={name}&dir={dir}");
                let first = timed!(repeat, admin.get(base.clone()));
                // Later pages, following the page's own Next link.
                let mut later = Vec::new();
                let mut html = admin.get(base.clone()).await;
                for _ in 0..repeat {
                    let Some(next) = next_link(&html) else { break };
                    let t = Instant::now();
                    html = admin.get(next).await;
                    later.push(t.elapsed());
                }
                later.sort();
                let f = ListFilter {
                    provider,
                    status: status.map(|s: &str| s.parse().unwrap()),
                    pattern: None,
                };
                // A page from the middle of the order: its cursor is the row half-way.
                let middle = {
                    let mut c = portal.state.pool.acquire().await.unwrap();
                    let r: Option<(uuid::Uuid,)> = sqlx::query_as(&format!(
                        "SELECT c.id FROM connections c
                         WHERE ($1::text IS NULL OR provider = $1)
                           AND ($2::text IS NULL OR status = $2)
                         ORDER BY {} {dir}, c.id {dir}
                         OFFSET (SELECT count(*) / 2 FROM connections
                                 WHERE ($1::text IS NULL OR provider = $1)
                                   AND ($2::text IS NULL OR status = $2)) LIMIT 1",
                        sort_sql(key)
                    ))
                    .bind(provider)
                    .bind(status)
                    .fetch_optional(&mut *c)
                    .await
                    .unwrap();
                    match r {
                        Some((id,)) => {
                            let d = console::detail(&mut c, id).await.unwrap().unwrap();
                            Some(match key {
                                SortKey::Updated => Cursor::Time(d.updated_at, id),
                                SortKey::Created => Cursor::Time(d.created_at, id),
                                SortKey::LastRefresh => Cursor::Time(
                                    d.last_refreshed_at.unwrap_or(console::NEVER_REFRESHED),
                                    id,
                                ),
                                SortKey::Provider => Cursor::Text(d.provider, id),
                            })
                        }
                        None => None,
                    }
                };
                let middle_page = match &middle {
                    Some(c) => {
                        let path = format!("{base}&after={}", encode_cursor(c));
                        timed!(repeat, admin.get(path.clone()))
                    }
                    None => Vec::new(),
                };
                let query = timed!(repeat, async {
                    let mut c = portal.state.pool.acquire().await.unwrap();
                    console::list(&mut c, &f, key, ascending, middle.as_ref(), 26)
                        .await
                        .unwrap();
                });
                let label = format!("list {filter_query}sort={name}&dir={dir}");
                line(&format!("{label}: first page"), &first, &query);
                line(&format!("{label}: next pages"), &later, &[]);
                line(&format!("{label}: middle page"), &middle_page, &[]);
            }
        }
    }

    let path = format!("/admin/connections/{detail_id}");
    let page = timed!(repeat, admin.get(path.clone()));
    let query = timed!(repeat, async {
        let mut c = portal.state.pool.acquire().await.unwrap();
        console::detail(&mut c, detail_id).await.unwrap().unwrap();
        keyhaven::db::events::list(&mut c, detail_id, 50)
            .await
            .unwrap();
    });
    line("detail page (target < 20 ms)", &page, &query);

    credentials(&portal, real).await;
    claim(&portal, repeat).await;
}

fn sort_sql(key: SortKey) -> &'static str {
    match key {
        SortKey::Updated => "c.updated_at",
        SortKey::Created => "c.created_at",
        SortKey::Provider => "c.provider",
        SortKey::LastRefresh => {
            "COALESCE(c.last_refreshed_at, '0001-01-01 00:00:00+00'::timestamptz)"
        }
    }
}

fn encode_cursor(cursor: &Cursor) -> String {
    match cursor {
        Cursor::Time(t, id) => format!("{id}~{}", t.unix_timestamp_nanos()),
        Cursor::Text(s, id) => format!("{id}~{s}"),
    }
}

fn next_link(html: &str) -> Option<String> {
    let (before, _) = html.split_once("rel=\"next\"")?;
    let href = before.rsplit("href=\"").next()?.split('"').next()?;
    Some(href.replace("&amp;", "&").replace("&#x2F;", "/"))
}

fn line(label: &str, page: &[Duration], query: &[Duration]) {
    let fmt = |t: &[Duration]| {
        if t.is_empty() {
            "-".to_string()
        } else {
            format!("{} / {}", ms(percentile(t, 0.5)), ms(t[t.len() - 1]))
        }
    };
    println!("{label:<68} {:>22} {:>22}", fmt(page), fmt(query));
}

/// One end user per connection; providers, statuses, times and names spread as a
/// real installation's would be.
async fn seed(portal: &support::Portal, rows: i64) {
    let mut conn = portal.state.pool.acquire().await.unwrap();
    let batch = 100_000;
    let mut from = 0;
    while from < rows {
        let to = (from + batch).min(rows);
        sqlx::query(
            "INSERT INTO end_users (id, external_id, email, display_name, created_at, updated_at)
             SELECT md5('u' || n)::uuid, 'user-' || lpad(n::text, 7, '0'),
                    'person' || n || '@example' || lpad((n % 1000)::text, 3, '0') || '.com',
                    (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Ken','Margaret'])[1 + n % 8]
                      || ' ' || (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Thompson','Hamilton'])[1 + (n / 8) % 8]
                      || ' ' || n,
                    now() - (n % 365) * interval '1 day', now() - (n % 365) * interval '1 day'
             FROM generate_series($1::bigint, $2::bigint - 1) AS n",
        )
        .bind(from)
        .bind(to)
        .execute(&mut *conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO connections (id, end_user_id, provider, status, account_id, account_label,
                 scopes, metadata, access_expires_at, refresh_expires_at, next_refresh_at,
                 last_error, last_refreshed_at, created_at, updated_at)
             SELECT md5('c' || n)::uuid, md5('u' || n)::uuid,
                    ($3::text[])[1 + (n * 7) % array_length($3::text[], 1)],
                    CASE WHEN n % 100 < 94 THEN 'active' WHEN n % 100 < 97 THEN 'degraded'
                         WHEN n % 100 < 99 THEN 'needs_reconnect' ELSE 'revoked' END,
                    'acct-' || (n * 31 % 9999991), 'Company ' || (n * 31 % 9999991),
                    'read write', '{}'::jsonb,
                    now() + (n % 3600) * interval '1 second',
                    now() + interval '30 days',
                    CASE WHEN n % 100 < 97 THEN now() + (n % 86400) * interval '1 second' END,
                    CASE WHEN n % 100 >= 94 AND n % 100 < 99 THEN 'invalid_grant: the refresh token was revoked' END,
                    CASE WHEN n % 10 = 0 THEN NULL ELSE now() - (n % 100000) * interval '1 second' END,
                    now() - (n % 365) * interval '1 day' - (n % 86400) * interval '1 second',
                    now() - (n % 100000) * interval '1 second'
             FROM generate_series($1::bigint, $2::bigint - 1) AS n",
        )
        .bind(from)
        .bind(to)
        .bind(&PROVIDERS[..])
        .execute(&mut *conn)
        .await
        .unwrap();
        from = to;
    }
    // Failure history, for the dashboard's recent failures.
    sqlx::query(
        "INSERT INTO connection_events (connection_id, kind, detail, actor, at)
         SELECT md5('c' || n)::uuid, 'refresh_failed', 'invalid_grant', 'keyhaven',
                now() - (n % 100000) * interval '1 second'
         FROM generate_series(0::bigint, $1::bigint - 1, 50) AS n",
    )
    .bind(rows)
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query("VACUUM ANALYZE")
        .execute(&mut *conn)
        .await
        .unwrap();
}

/// An admin's browser: one keep-alive connection and its session cookie.
struct Admin {
    connection: RawConnection,
    cookie: String,
}

impl Admin {
    async fn sign_in(portal: &support::Portal) -> Admin {
        let password = secrecy::SecretString::from("bench-admin-password-1");
        keyhaven::web::admin::accounts::create_admin(
            &portal.state.pool,
            "bench@example.com",
            &password,
        )
        .await
        .unwrap();
        let mut connection = RawConnection::open(&portal.url).await;
        let r = connection
            .send(hyper::Request::get("/admin/login"), bytes::Bytes::new())
            .await
            .unwrap();
        let cookie = session_cookie(&r).unwrap();
        let html = String::from_utf8(r.body().to_vec()).unwrap();
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_string();
        let form = serde_urlencoded::to_string([
            ("csrf", csrf.as_str()),
            ("email", "bench@example.com"),
            ("password", "bench-admin-password-1"),
        ])
        .unwrap();
        let r = connection
            .send(
                hyper::Request::post("/admin/login")
                    .header(COOKIE, &cookie)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded"),
                form.into(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "admin sign-in");
        let cookie = session_cookie(&r).unwrap_or(cookie);
        Admin { connection, cookie }
    }

    async fn get(&mut self, path: String) -> String {
        let r = self
            .connection
            .send(
                hyper::Request::get(path.as_str()).header(COOKIE, &self.cookie),
                bytes::Bytes::new(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        String::from_utf8(r.body().to_vec()).unwrap()
    }
}

fn session_cookie(r: &hyper::Response<bytes::Bytes>) -> Option<String> {
    r.headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .map(String::from)
}

/// The credential API at this table size: 16 clients, 5 s, on the real connections.
async fn credentials(portal: &support::Portal, ids: Arc<Vec<uuid::Uuid>>) {
    use rand::Rng;
    let key = keyhaven::cli::create_api_key(&portal.state, "bench")
        .await
        .unwrap();
    let bearer = format!("Bearer {key}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (ids, bearer, url) = (ids.clone(), bearer.clone(), portal.url.clone());
        workers.push(tokio::spawn(async move {
            let mut connection = RawConnection::open(&url).await;
            let mut times = Vec::new();
            while Instant::now() < deadline {
                let id = ids[rand::rng().random_range(0..ids.len())];
                let t = Instant::now();
                let (status, _) = connection
                    .get(&format!("/api/v1/connections/{id}/credentials"), &bearer)
                    .await
                    .unwrap();
                assert_eq!(status, 200);
                times.push(t.elapsed());
            }
            times
        }));
    }
    let mut times = Vec::new();
    for w in workers {
        times.extend(w.await.unwrap());
    }
    times.sort();
    println!(
        "credential API, 16 clients, 5 s: {} requests, p50 {} p99 {}",
        times.len(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    );
}

/// The refresher's claim of up to 200 due connections, rolled back each time.
async fn claim(portal: &support::Portal, repeat: usize) {
    let providers: Vec<String> = PROVIDERS.iter().map(|p| p.to_string()).collect();
    let now = portal.clock.now() + time::Duration::hours(1);
    let claimed = std::sync::atomic::AtomicUsize::new(0);
    let times = timed!(repeat, async {
        let mut tx = portal.state.pool.acquire().await.unwrap();
        sqlx::query("BEGIN").execute(&mut *tx).await.unwrap();
        let rows = keyhaven::db::refresh::claim_due(&mut tx, "bench", &providers, now, 300, 200)
            .await
            .unwrap();
        claimed.store(rows.len(), std::sync::atomic::Ordering::Relaxed);
        sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
    });
    println!(
        "refresher claim of {} due connections (target < 5 ms): p50 {} max {}",
        claimed.load(std::sync::atomic::Ordering::Relaxed),
        ms(percentile(&times, 0.5)),
        ms(times[times.len() - 1])
    );
}
