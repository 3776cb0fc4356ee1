//! The admin console through the real HTTP stack: sign-in, sessions, CSRF, rate
//! limiting, every page and action, escaping, and the connection list's filters, search,
//! sort and keyset pages.

use keyhaven::web::api::{EndUserInput, create_link_for};
use keyhaven_sandbox::{Fault, FaultEffect, FaultTarget, Profile};
use reqwest::StatusCode;
use reqwest::header::COOKIE;
use uuid::Uuid;

use crate::chains::*;
use crate::helpers::*;

/// A connection for a new end user named `name`, approved upstream as `login`.
async fn connect_as(
    app: &TestApp,
    external_id: &str,
    name: &str,
    provider: &str,
    login: &str,
) -> Uuid {
    let input = EndUserInput {
        external_id: external_id.into(),
        email: Some(format!("{external_id}@example.com")),
        name: Some(name.into()),
    };
    let (link, _) = create_link_for(&app.state, &input).await.unwrap();
    let user = browser();
    assert_eq!(
        open_link(&user, &link).await.status(),
        StatusCode::SEE_OTHER
    );
    let authorize = app.start(&user, provider).await;
    let callback = app.decide(&authorize, "approve", login).await;
    let r = user.get(callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "connect {external_id}");
    sqlx::query_scalar(
        "SELECT c.id FROM connections c JOIN end_users e ON e.id = c.end_user_id WHERE e.external_id = $1 AND c.provider = $2",
    )
    .bind(external_id)
    .bind(provider)
    .fetch_one(app.pool())
    .await
    .unwrap()
}

/// Makes the provider refuse the grant and lets a forced refresh find out.
async fn kill_grant(app: &TestApp, key: &str, id: Uuid, provider_key: &str, login: &str) {
    app.sandbox.revoke_user(provider_key, login);
    let r = app.credentials(&app.url, key, id, true).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(app.status_of(id).await, "needs_reconnect");
}

fn session_cookie(r: &reqwest::Response) -> Option<String> {
    set_cookie_value(r, "keyhaven_admin")
}

/// A request carrying only the given admin session cookie.
async fn get_with_cookie(app: &TestApp, path: &str, session_id: &str) -> reqwest::Response {
    browser()
        .get(format!("{}{path}", app.url))
        .header(COOKIE, format!("keyhaven_admin={session_id}"))
        .send()
        .await
        .unwrap()
}

/// Rows stored for this session id (under its digest; never under the id itself).
async fn session_rows(app: &TestApp, session_id: &str) -> i64 {
    let plain: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tower_sessions.session WHERE id = $1")
            .bind(session_id)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(plain, 0, "a session stored under its plain id");
    sqlx::query_scalar("SELECT count(*) FROM tower_sessions.session WHERE id = $1")
        .bind(stored_session_id(session_id))
        .fetch_one(app.pool())
        .await
        .unwrap()
}

/// A page's text with HTML character references decoded (askama writes `&#60;` etc.).
fn unescape(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').filter(|e| *e <= 8);
        let decoded = end.and_then(|e| match &rest[1..e] {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            num => num
                .strip_prefix('#')
                .and_then(|n| n.parse::<u32>().ok())
                .and_then(char::from_u32),
        });
        match (decoded, end) {
            (Some(c), Some(e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `data-id`s of the list's rows, in page order.
fn row_ids(page: &str) -> Vec<String> {
    page.split("<tr data-id=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

/// The href of the link with `rel="{rel}"`, unescaped.
fn link(page: &str, rel: &str) -> Option<String> {
    let end = page.find(&format!("\" rel=\"{rel}\""))?;
    let start = page[..end].rfind("href=\"")? + "href=\"".len();
    Some(unescape(&page[start..end]))
}

/// The text of one dashboard cell (provider row, status column), tags stripped.
fn count_cell(page: &str, provider: &str, status: &str) -> String {
    let row_start = page
        .find(&format!("<tr id=\"count-{provider}\">"))
        .expect("provider row");
    let row = &page[row_start..];
    let row = &row[..row.find("</tr>").unwrap()];
    let cell_start = row
        .find(&format!("data-status=\"{status}\">"))
        .expect("status cell");
    let cell = &row[cell_start..];
    let cell = &cell[cell.find('>').unwrap() + 1..cell.find("</td>").unwrap()];
    let mut text = String::new();
    let mut in_tag = false;
    for c in cell.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

async fn event_actor(app: &TestApp, id: Uuid, kind: &str) -> Vec<(String, Option<String>)> {
    sqlx::query_as(
        "SELECT actor, detail FROM connection_events WHERE connection_id = $1 AND kind = $2 ORDER BY id",
    )
    .bind(id)
    .bind(kind)
    .fetch_all(app.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn anonymous_visitors_and_end_users_are_sent_to_the_login_page() {
    let app = spawn_app().await;
    let (user, id) = app.connected("anon-1", "smartrecruiters").await;
    let anonymous = browser();
    for path in [
        "/admin".to_string(),
        "/admin/connections".into(),
        "/admin/connections?status=active".into(),
        format!("/admin/connections/{id}"),
    ] {
        for client in [&anonymous, &user] {
            let r = client
                .get(format!("{}{path}", app.url))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
            assert_eq!(location(&r), "/admin/login", "{path}");
        }
    }
    // Actions without a signed-in admin change nothing, even with a form token from the
    // end user's own page.
    let user_csrf = app.csrf(&user).await;
    for action in ["refresh", "reconnect-link", "disconnect"] {
        let r = user
            .post(format!("{}/admin/connections/{id}/{action}", app.url))
            .form(&[("csrf", user_csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{action}");
        assert_eq!(location(&r), "/admin/login");
    }
    assert_eq!(app.status_of(id).await, "active");
    assert_eq!(app.events_of(id).await, vec!["connected"]);
    assert_eq!(app.sandbox.counter("smartrecruiters.refreshed"), 0);
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM links WHERE kind = 'reconnect'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(links, 0);
    // The login form itself is public.
    let r = anonymous
        .get(format!("{}/admin/login", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("name=\"password\""));
    // …and an admin session does not make a browser an end user.
    let admin = app.admin_browser().await;
    let r = admin
        .get(format!("{}/connect", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn signing_in_cycles_the_session_id_and_signing_out_destroys_the_session() {
    let app = spawn_app().await;
    app.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let b = browser();
    let r = b
        .get(format!("{}/admin/login", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        session_cookie(&r).is_none(),
        "the login form starts no session"
    );
    assert!(session_table_rows(&app).await.is_empty());
    let form_cookie = set_cookie_value(&r, "keyhaven_form").expect("the form's cookie");
    let page = r.text().await.unwrap();
    let csrf = field_value(&page, "csrf").unwrap();
    // A session id planted in the browser before sign-in (a fixation attempt).
    let before = "AAAAAAAAAAAAAAAAAAAAAA".to_string();
    let login = format!("{}/admin/login", app.url);

    let r = b
        .post(&login)
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", ADMIN_EMAIL),
            ("password", "not the password at all"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let wrong_password = r.text().await.unwrap();
    assert!(wrong_password.contains("The email or the password is not right."));
    // An unknown email gets the very same answer.
    let r = b
        .post(&login)
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "nobody@example.com"),
            ("password", "not the password at all"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("The email or the password is not right.")
    );

    // Email case and surrounding spaces do not matter.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(&login)
        .header(
            COOKIE,
            format!("keyhaven_form={form_cookie}; keyhaven_admin={before}"),
        )
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", " OPS@Example.com "),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/admin");
    let after = session_cookie(&r).expect("a new session id at sign-in");
    assert_ne!(before, after);
    // This browser now holds the signed-in session.
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    jar.add_cookie_str(
        &format!("keyhaven_admin={after}; Path=/"),
        &app.url.parse::<url::Url>().unwrap(),
    );
    let b = reqwest::Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert_eq!(session_rows(&app, &before).await, 0, "the old id is gone");
    let r = get_with_cookie(&app, "/admin", &before).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the old id grants nothing"
    );
    let r = get_with_cookie(&app, "/admin", &after).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains(ADMIN_EMAIL));
    // Signed in, the login form leads to the dashboard.
    let r = b.get(&login).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/admin");
    let last_login: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT last_login_at FROM admins WHERE email = $1")
            .bind(ADMIN_EMAIL)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(last_login.is_some());

    // Signing out needs the form token too.
    let r = b
        .post(format!("{}/admin/logout", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(session_rows(&app, &after).await, 1);
    let r = app.admin_post(&b, "/admin/logout").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/admin/login");
    assert_eq!(
        session_rows(&app, &after).await,
        0,
        "the session is destroyed"
    );
    let r = get_with_cookie(&app, "/admin", &after).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = b.get(format!("{}/admin", app.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/admin/login");
}

#[tokio::test]
async fn the_login_form_refuses_missing_tokens_and_cross_site_posts() {
    let app = spawn_app().await;
    app.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let login = format!("{}/admin/login", app.url);
    // No form token in a session that never saw the form.
    let r = browser()
        .post(&login)
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let b = browser();
    let page = page_text(&b, &login).await;
    let csrf = field_value(&page, "csrf").unwrap();
    let r = b
        .post(&login)
        .form(&admin_login_form("forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = b
        .post(&login)
        .header("sec-fetch-site", "cross-site")
        .form(&admin_login_form(csrf.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // None of these counted as a failed password.
    let failures: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_login_failures")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(failures, 0);
    let r = b
        .post(&login)
        .header("sec-fetch-site", "same-origin")
        .form(&admin_login_form(csrf.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn every_admin_post_needs_the_sessions_token_and_a_same_site_origin() {
    let app = spawn_app().await;
    let (user, id) = app.connected("csrf-1", "smartrecruiters").await;
    let user_csrf = app.csrf(&user).await;
    let admin = app.admin_browser().await;
    let page = app.admin_page(&admin, "/admin").await;
    let csrf = field_value(&page, "csrf").unwrap();
    assert_ne!(csrf, user_csrf);
    for path in [
        format!("/admin/connections/{id}/refresh"),
        format!("/admin/connections/{id}/reconnect-link"),
        format!("/admin/connections/{id}/disconnect"),
        "/admin/logout".to_string(),
    ] {
        let url = format!("{}{path}", app.url);
        let attempts = [
            admin.post(&url).form(&[("other", "x")]),
            admin.post(&url).form(&[("csrf", "")]),
            admin.post(&url).form(&[("csrf", "wrong")]),
            admin.post(&url).form(&[("csrf", user_csrf.as_str())]),
            admin
                .post(&url)
                .form(&[("csrf", csrf.as_str()), ("csrf", csrf.as_str())]),
            admin
                .post(&url)
                .header("sec-fetch-site", "cross-site")
                .form(&[("csrf", csrf.as_str())]),
        ];
        for attempt in attempts {
            let r = attempt.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        }
    }
    // Nothing happened, and the admin is still signed in.
    assert_eq!(app.status_of(id).await, "active");
    assert_eq!(app.events_of(id).await, vec!["connected"]);
    assert_eq!(app.sandbox.counter("smartrecruiters.refreshed"), 0);
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM links WHERE kind = 'reconnect'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(links, 0);
    app.admin_page(&admin, "/admin").await;
    // With the token (and a same-origin header) the action runs.
    let r = admin
        .post(format!("{}/admin/connections/{id}/refresh", app.url))
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.sandbox.counter("smartrecruiters.refreshed"), 1);
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_client_and_an_email_is_never_locked() {
    let app = spawn_app().await;
    app.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    app.create_admin("second@example.com", "another long password")
        .await;
    // A stranger at 127.0.0.1 (this test's default address) guesses five times.
    let b = browser();
    for _ in 0..5 {
        let r = app.sign_in(&b, ADMIN_EMAIL, "a wrong password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // That address is blocked now, even with the right password, for any account…
    let r = app.sign_in(&b, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "900");
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Too many failed sign-in attempts")
    );
    let r = app
        .sign_in(&browser(), "second@example.com", "another long password")
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // …on every instance (counted in Postgres)…
    let other = app.second_instance().await;
    let r = sign_in_at(&other, &browser(), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // …but the account is not locked: its owner, elsewhere, signs in.
    let r = app
        .sign_in(&browser_from("127.0.0.2"), ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The table holds HMACs only, under the derived key: nothing typed is readable, and
    // nothing a bare SHA-256 of a guess would find.
    let stored: Vec<(Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT email_hash, client_hash FROM admin_login_failures")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(stored.len(), 5, "the stranger's failures stay counted");
    let key = app
        .state
        .settings
        .keys
        .derive("keyhaven/admin-sign-in-limit/v1");
    let expected_email = keyhaven::crypto::keyed_hash(&key, &[b"email", ADMIN_EMAIL.as_bytes()]);
    let expected_client = keyhaven::crypto::keyed_hash(&key, &[b"client", b"127.0.0.1"]);
    // Keyed: not the plain digest anyone could compute from the email.
    assert_ne!(
        expected_email.as_slice(),
        keyhaven::crypto::token_hash(ADMIN_EMAIL).as_slice()
    );
    for (email, client) in &stored {
        assert_eq!(email.as_slice(), expected_email.as_slice());
        assert_eq!(client.as_slice(), expected_client.as_slice());
    }
    // The window passes (the app's clock, not the wall clock).
    app.clock
        .advance(time::Duration::minutes(15) + time::Duration::seconds(1));
    let r = app.sign_in(&browser(), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // Success from that address forgave its own mistakes for this account.
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_login_failures")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
}

/// A browser whose requests come from `ip` (any 127.0.0.0/8 address works on loopback).
fn browser_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_burst_of_wrong_passwords_checks_at_most_the_limit_and_the_admin_still_gets_in() {
    let app = spawn_app().await;
    app.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    // Each attempt comes with its own form, as a script would fetch them.
    let mut forms = Vec::new();
    for _ in 0..100 {
        let b = browser();
        let page = app.admin_page(&b, "/admin/login").await;
        forms.push((b, field_value(&page, "csrf").unwrap()));
    }
    let url = format!("{}/admin/login", app.url);
    let burst: Vec<_> = forms
        .into_iter()
        .map(|(b, csrf)| {
            let url = url.clone();
            tokio::spawn(async move {
                b.post(url)
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("email", ADMIN_EMAIL),
                        ("password", "a wrong password"),
                    ])
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    // The real admin, from another address, signs in while the burst is under way.
    let admin = browser_from("127.0.0.3");
    let r = app.sign_in(&admin, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the admin gets in");
    let mut checked = 0;
    let mut refused = 0;
    for task in burst {
        let r = task.await.unwrap();
        match r.status() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(r.headers().contains_key("retry-after"));
                refused += 1;
            }
            other => panic!("unexpected answer {other}"),
        }
    }
    assert_eq!(checked, 5, "only the limit was checked");
    assert_eq!(refused, 95);
    let failures: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_login_failures")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(failures, 5);
    assert!(app.admin_page(&admin, "/admin").await.contains(ADMIN_EMAIL));

    // An operator clears the counters; the address may try again at once.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyhaven"))
        .args(["admin", "unlock", "--email", "OPS@example.com"])
        .env("DATABASE_URL", &app.database_url)
        .env("KEYHAVEN_ENCRYPTION_KEYS", &app.keys)
        .env_remove("KEYHAVEN_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failures: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_login_failures")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(failures, 0);
    let r = app.sign_in(&browser(), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_dashboard_counts_by_provider_and_status_and_lists_recent_trouble() {
    let app = spawn_app_with(Options {
        tweak: |s| {
            s.unavailable_providers.push((
                "workday".into(),
                "client_secret is missing <check it>".into(),
            ))
        },
        ..Options::default()
    })
    .await;
    let key = app.api_key().await;
    connect_as(&app, "dash-ok", "Ok User", "smartrecruiters", "sam.sandbox").await;
    let dead = connect_as(
        &app,
        "dash-dead",
        "Dead User",
        "smartrecruiters",
        "dee.sandbox",
    )
    .await;
    kill_grant(&app, &key, dead, "smartrecruiters", "dee.sandbox").await;
    let slow = connect_as(&app, "dash-slow", "Slow User", "acme", "sam.sandbox").await;
    app.sandbox.add_fault(Fault {
        provider: "oauth2".into(),
        target: FaultTarget::Refresh,
        effect: FaultEffect::Status { status: 503 },
        times: 1,
    });
    app.credentials(&app.url, &key, slow, true).await;
    assert_eq!(app.status_of(slow).await, "degraded");
    let gone = connect_as(&app, "dash-gone", "Gone User", "acme", "gus.sandbox").await;
    let r = reqwest::Client::new()
        .delete(format!("{}/api/v1/connections/{gone}", app.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    sqlx::query("INSERT INTO connection_events (connection_id, kind, detail, actor, at) VALUES ($1, 'revoke_failed', 'revocation at the provider failed: timeout', 'api', now())")
        .bind(gone)
        .execute(app.pool())
        .await
        .unwrap();
    sqlx::query("INSERT INTO provider_alarms (provider, kind, detail) VALUES ('smartrecruiters', 'invalid_client', 'the provider said <b>no</b>')")
        .execute(app.pool())
        .await
        .unwrap();

    let admin = app.admin_browser().await;
    let page = app.admin_page(&admin, "/admin").await;
    assert_eq!(count_cell(&page, "smartrecruiters", "active"), "1");
    assert_eq!(count_cell(&page, "smartrecruiters", "needs_reconnect"), "1");
    assert_eq!(count_cell(&page, "smartrecruiters", "degraded"), "0");
    assert_eq!(count_cell(&page, "acme", "degraded"), "1");
    assert_eq!(count_cell(&page, "acme", "revoked"), "1");
    assert_eq!(count_cell(&page, "acme", "active"), "0");
    // Offered providers with nothing yet still have a row.
    assert_eq!(count_cell(&page, "zoho", "active"), "0");
    assert!(
        page.contains("/admin/connections?provider=smartrecruiters&amp;status=needs_reconnect")
    );
    // Recent failures, newest first, each linked to its connection.
    for text in [
        "needs reconnect",
        "refresh failed",
        "revocation failed",
        "Dead User",
        "Slow User",
        "Gone User",
        &format!("/admin/connections/{dead}"),
    ] {
        assert!(page.contains(text), "{text}");
    }
    let failures = &page[page.find("id=\"failure-list\"").unwrap()..];
    assert!(
        failures.find("revocation failed").unwrap() < failures.find("needs reconnect").unwrap()
    );
    // Provider alarms and providers that are configured but not offered, escaped.
    assert!(page.contains("invalid_client"));
    assert!(!page.contains("<b>no</b>"));
    assert!(!page.contains("<check it>"));
    let text = unescape(&page);
    assert!(text.contains("the provider said <b>no</b>"));
    assert!(text.contains("workday"));
    assert!(text.contains("client_secret is missing <check it>"));
}

#[tokio::test]
async fn the_list_filters_searches_sorts_and_pages_with_a_keyset_cursor() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    app.sandbox.set_profile(
        "smartrecruiters",
        "eve.echo",
        Profile {
            id: "acct-777".into(),
            email: "zed@upstream.example".into(),
            first_name: "Zed".into(),
            last_name: "Upstream".into(),
        },
    );
    let mut ids = Vec::new();
    for (external_id, name, provider, login) in [
        (
            "list-alpha",
            "Alice Alpha",
            "smartrecruiters",
            "alice.alpha",
        ),
        ("list-bravo", "Bob Bravo", "smartrecruiters", "bob.bravo"),
        ("list-charlie", "Carol Charlie", "acme", "carol.charlie"),
        ("list-delta", "Dan Delta", "acme", "dan.delta"),
        ("list-echo", "Eve Echo", "smartrecruiters", "eve.echo"),
        ("list-fox_1%", "Fay Fox", "acme", "fay.fox"),
        ("list-golf", "Gil Golf", "smartrecruiters", "gil.golf"),
    ] {
        ids.push(connect_as(&app, external_id, name, provider, login).await);
    }
    kill_grant(&app, &key, ids[1], "smartrecruiters", "bob.bravo").await;
    // Known, distinct times; two connections never refreshed, one sharing a time with
    // another (the id breaks the tie).
    for (i, id) in ids.iter().enumerate() {
        let n = i as i64;
        sqlx::query(
            "UPDATE connections SET created_at = '2026-01-01'::timestamptz + make_interval(days => $2::int),
                    updated_at = '2026-06-01'::timestamptz - make_interval(hours => (($2::int * 5) % 7)),
                    last_refreshed_at = CASE WHEN $2 IN (2, 4) THEN NULL
                                             WHEN $2 = 6 THEN '2026-03-01 00:00:00.123456+00'::timestamptz
                                             ELSE '2026-03-01 00:00:00.123456+00'::timestamptz - make_interval(mins => $2::int) END
             WHERE id = $1",
        )
        .bind(id)
        .bind(n)
        .execute(app.pool())
        .await
        .unwrap();
    }
    sqlx::query(
        "UPDATE connections SET last_refreshed_at = '2026-03-01 00:00:00.123456+00' WHERE id = $1",
    )
    .bind(ids[0])
    .execute(app.pool())
    .await
    .unwrap();
    let admin = app.admin_browser().await;

    // Every sort key and direction, walked two rows at a time forwards and back, gives
    // exactly the database's order.
    for (sort, order_by) in [
        ("updated", "updated_at {dir}, id {dir}"),
        ("created", "created_at {dir}, id {dir}"),
        ("provider", "provider {dir}, id {dir}"),
        (
            "last_refresh",
            "COALESCE(last_refreshed_at, '0001-01-01 00:00:00+00') {dir}, id {dir}",
        ),
    ] {
        for dir in ["asc", "desc"] {
            let sql = format!(
                "SELECT id::text FROM connections ORDER BY {}",
                order_by.replace("{dir}", dir)
            );
            let expected: Vec<String> = sqlx::query_scalar(&sql)
                .fetch_all(app.pool())
                .await
                .unwrap();
            let mut pages = Vec::new();
            let mut next = Some(format!("/admin/connections?sort={sort}&dir={dir}&limit=2"));
            while let Some(path) = next {
                let page = app.admin_page(&admin, &path).await;
                let rows = row_ids(&page);
                assert!(!rows.is_empty() && rows.len() <= 2, "{path}");
                assert_eq!(link(&page, "prev").is_some(), !pages.is_empty(), "{path}");
                pages.push((rows, page.clone()));
                next = link(&page, "next");
            }
            let walked: Vec<String> = pages.iter().flat_map(|(r, _)| r.clone()).collect();
            assert_eq!(walked, expected, "{sort} {dir} forwards");
            assert_eq!(pages.len(), 4);
            // Back from the last page with Previous.
            let mut back = Vec::new();
            let mut previous = link(&pages.last().unwrap().1, "prev");
            while let Some(path) = previous {
                let page = app.admin_page(&admin, &path).await;
                back.push(row_ids(&page));
                previous = link(&page, "prev");
            }
            let expected_back: Vec<Vec<String>> = pages[..pages.len() - 1]
                .iter()
                .rev()
                .map(|(r, _)| r.clone())
                .collect();
            assert_eq!(back, expected_back, "{sort} {dir} backwards");
        }
    }

    let find = |query: &'static str| {
        let admin = admin.clone();
        let url = app.url.clone();
        async move {
            let r = admin
                .get(format!("{url}/admin/connections?{query}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{query}");
            let mut rows = row_ids(&r.text().await.unwrap());
            rows.sort();
            rows
        }
    };
    let some = |which: &[usize]| {
        let mut v: Vec<String> = which.iter().map(|i| ids[*i].to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(find("provider=acme").await, some(&[2, 3, 5]));
    assert_eq!(find("status=needs_reconnect").await, some(&[1]));
    assert_eq!(
        find("provider=acme&status=needs_reconnect").await,
        some(&[])
    );
    assert_eq!(find("q=bravo").await, some(&[1]), "external id and name");
    assert_eq!(find("q=ALICE+ALPHA").await, some(&[0]), "case-insensitive");
    assert_eq!(find("q=list-echo%40example.com").await, some(&[4]), "email");
    assert_eq!(find("q=Zed+Upstream").await, some(&[4]), "account label");
    assert_eq!(find("q=acct-777").await, some(&[4]), "account id");
    assert_eq!(find("q=_").await, some(&[5]), "_ is literal");
    assert_eq!(find("q=%25").await, some(&[5]), "% is literal");
    assert_eq!(find("q=%27+OR+1%3D1+--").await, some(&[]));
    assert_eq!(
        find("provider=smartrecruiters&q=list-").await,
        some(&[0, 1, 4, 6])
    );
    assert_eq!(
        find("status=&provider=&q=+").await.len(),
        7,
        "empty filters"
    );
    // Filters survive paging.
    let page = app
        .admin_page(
            &admin,
            "/admin/connections?provider=smartrecruiters&limit=3",
        )
        .await;
    let next = link(&page, "next").unwrap();
    assert!(next.contains("provider=smartrecruiters"));
    let page = app.admin_page(&admin, &next).await;
    assert_eq!(row_ids(&page).len(), 1);
    // Each row: person, provider, account, status, error.
    let page = app.admin_page(&admin, "/admin/connections?q=bravo").await;
    for text in [
        "Bob Bravo",
        "list-bravo@example.com",
        "SmartRecruiters",
        "badge-bad",
        "needs reconnect",
        "invalid_grant",
    ] {
        assert!(page.contains(text), "{text}");
    }

    for bad in [
        "status=bogus",
        "sort=secret_column",
        "dir=sideways",
        "limit=0",
        "limit=101",
        "limit=many",
        "after=garbage",
        "sort=created&after=00000000-0000-0000-0000-000000000000~notanumber",
        "after=00000000-0000-0000-0000-000000000000~1&before=00000000-0000-0000-0000-000000000000~1",
        "status=a&status=b",
    ] {
        let r = admin
            .get(format!("{}/admin/connections?{bad}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn provider_and_user_supplied_names_are_escaped_on_every_page() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    app.sandbox.set_profile(
        "smartrecruiters",
        "mal.icious",
        Profile {
            id: "<b>acct</b>".into(),
            email: "mal@example.com".into(),
            first_name: "<script>alert('label')</script>".into(),
            last_name: "<img src=x onerror=alert(1)>".into(),
        },
    );
    let id = connect_as(
        &app,
        "hostile\"><script>alert('id')</script>",
        "<script>alert('name')</script>",
        "smartrecruiters",
        "mal.icious",
    )
    .await;
    kill_grant(&app, &key, id, "smartrecruiters", "mal.icious").await;
    let admin = app.admin_browser().await;
    let pages = [
        app.admin_page(&admin, "/admin").await,
        app.admin_page(&admin, "/admin/connections").await,
        app.admin_page(&admin, "/admin/connections?q=%3Cscript%3E")
            .await,
        app.admin_page(&admin, &format!("/admin/connections/{id}"))
            .await,
    ];
    for (i, page) in pages.iter().enumerate() {
        assert!(!page.contains("<script>"), "page {i}");
        assert!(!page.contains("<img"), "page {i}");
        assert!(!page.contains("<b>acct"), "page {i}");
        // The names are really there, escaped.
        assert!(
            unescape(page).contains("<script>alert('name')</script>"),
            "page {i}"
        );
    }
    for page in &pages[1..] {
        assert!(unescape(page).contains("<img src=x onerror=alert(1)>"));
    }
    assert!(unescape(&pages[3]).contains("<b>acct</b>"));
    assert!(unescape(&pages[3]).contains("hostile\"><script>alert('id')</script>"));
    assert_eq!(row_ids(&pages[2]), vec![id.to_string()]);
}

#[tokio::test]
async fn refresh_now_reports_the_outcome_in_words_and_records_who_asked() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("refresh-1", "smartrecruiters").await;
    let admin = app.admin_browser().await;
    let detail = format!("/admin/connections/{id}");

    let r = app.admin_post(&admin, &format!("{detail}/refresh")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), detail);
    let page = app.admin_page(&admin, &detail).await;
    assert!(
        page.contains("Refreshed: SmartRecruiters issued a new access credential, valid until")
    );
    assert_eq!(app.sandbox.counter("smartrecruiters.refreshed"), 1);
    assert_eq!(
        app.events_of(id).await,
        vec!["connected", "refreshed", "refresh_requested"]
    );
    assert_eq!(
        event_actor(&app, id, "refresh_requested").await,
        vec![(format!("admin:{ADMIN_EMAIL}"), Some("refreshed".into()))]
    );
    // The message is shown once.
    let again = app.admin_page(&admin, &detail).await;
    assert!(!again.contains("Refreshed: SmartRecruiters"));
    assert!(again.contains("refresh requested"));
    // No token or code the sandbox ever issued is on the page.
    let credential: serde_json::Value = app.credentials_json(&app.url, &key, id, false).await;
    let token = credential["access_token"].as_str().unwrap();
    for page in [&page, &again] {
        assert!(!page.contains(token));
        for secret in app.sandbox.secrets_seen() {
            assert!(!page.contains(&secret));
        }
    }

    // The grant dies upstream: the refresh says so and the status follows.
    app.sandbox.revoke_user("smartrecruiters", "sam.sandbox");
    app.admin_post(&admin, &format!("{detail}/refresh")).await;
    let page = app.admin_page(&admin, &detail).await;
    assert!(page.contains("no longer accepts this grant, so the connection now needs reconnect"));
    assert!(page.contains("id=\"status\">needs reconnect<"));
    assert_eq!(app.status_of(id).await, "needs_reconnect");
    app.admin_post(&admin, &format!("{detail}/refresh")).await;
    let page = app.admin_page(&admin, &detail).await;
    assert!(page.contains("already needs reconnect"));
    assert_eq!(app.sandbox.counter("smartrecruiters.refreshed"), 1);

    // A provider outage: the grant is kept and the admin is told.
    let (_, acme) = app.connected("refresh-2", "acme").await;
    app.sandbox.add_fault(Fault {
        provider: "oauth2".into(),
        target: FaultTarget::Refresh,
        effect: FaultEffect::Status { status: 503 },
        times: 1,
    });
    app.admin_post(&admin, &format!("/admin/connections/{acme}/refresh"))
        .await;
    let page = app
        .admin_page(&admin, &format!("/admin/connections/{acme}"))
        .await;
    assert!(page.contains("Not refreshed: Acme HR failed"), "{page}");
    assert!(page.contains("will be retried"));
    assert_eq!(app.status_of(acme).await, "degraded");
    assert_eq!(
        event_actor(&app, acme, "refresh_requested").await,
        vec![(format!("admin:{ADMIN_EMAIL}"), Some("degraded".into()))]
    );
}

#[tokio::test]
async fn a_reconnect_link_is_shown_once_and_repairs_the_connection() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("relink-1", "smartrecruiters").await;
    kill_grant(&app, &key, id, "smartrecruiters", "sam.sandbox").await;
    let admin = app.admin_browser().await;
    let detail = format!("/admin/connections/{id}");

    let r = app
        .admin_post(&admin, &format!("{detail}/reconnect-link"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    let marker = "id=\"reconnect-url\" value=\"";
    let start = page.find(marker).expect("the link is on the page") + marker.len();
    let url = page[start..].split('"').next().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/c/", app.url)), "{url}");
    assert!(page.contains("data-copy=\"reconnect-url\""));
    // Stored hashed, bound to this connection.
    let token = url.rsplit('/').next().unwrap();
    let (kind, connection): (String, Option<Uuid>) =
        sqlx::query_as("SELECT kind, connection_id FROM links WHERE token_hash = $1")
            .bind(keyhaven::crypto::token_hash(token))
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!((kind.as_str(), connection), ("reconnect", Some(id)));
    let recorded = event_actor(&app, id, "reconnect_link_created").await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].0, format!("admin:{ADMIN_EMAIL}"));
    assert!(!recorded[0].1.as_deref().unwrap().contains(token));
    // Not shown again.
    let page = app.admin_page(&admin, &detail).await;
    assert!(!page.contains(token));

    // The user follows it, reconnects the same account, and the connection is active.
    let user = browser();
    let r = open_link(&user, &url).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let connect_page = app.connect_page(&user).await;
    assert!(connect_page.contains("Reconnect SmartRecruiters"));
    let r = app.connect(&user, "smartrecruiters").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.status_of(id).await, "active");
    assert!(app.events_of(id).await.contains(&"reconnected".to_string()));
    let page = app.admin_page(&admin, &detail).await;
    assert!(page.contains("id=\"status\">active<"));
    // Single use.
    let r = browser().get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn disconnect_revokes_wipes_the_tokens_and_keeps_the_history() {
    let app = spawn_app().await;
    let (_, id) = app.connected("disc-1", "acme").await;
    let admin = app.admin_browser().await;
    let detail = format!("/admin/connections/{id}");
    assert!(
        app.admin_page(&admin, &detail)
            .await
            .contains("id=\"disconnect\"")
    );

    let r = app
        .admin_post(&admin, &format!("{detail}/disconnect"))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), detail);
    let page = app.admin_page(&admin, &detail).await;
    assert!(page.contains("Disconnected: the grant was revoked at the provider"));
    assert!(page.contains("id=\"status\">revoked<"));
    assert!(
        !page.contains("id=\"disconnect\""),
        "no second disconnect offered"
    );
    assert_eq!(app.status_of(id).await, "revoked");
    assert_eq!(app.sandbox.counter("oauth2.revoke"), 1);
    let wiped: bool = sqlx::query_scalar(
        "SELECT access_token IS NULL AND refresh_token IS NULL AND provider_session IS NULL FROM connections WHERE id = $1",
    )
    .bind(id)
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert!(wiped);
    assert_eq!(app.events_of(id).await, vec!["connected", "revoked"]);
    assert_eq!(
        event_actor(&app, id, "revoked").await[0].0,
        format!("admin:{ADMIN_EMAIL}")
    );
    assert!(page.contains("connected"), "history kept");
    // Once is enough.
    app.admin_post(&admin, &format!("{detail}/disconnect"))
        .await;
    let page = app.admin_page(&admin, &detail).await;
    assert!(page.contains("already disconnected"));
    assert_eq!(app.events_of(id).await, vec!["connected", "revoked"]);
    assert_eq!(app.sandbox.counter("oauth2.revoke"), 1);

    // A provider without revocation: tokens wiped, and the page says why no revoke.
    let (_, sr) = app.connected("disc-2", "smartrecruiters").await;
    app.admin_post(&admin, &format!("/admin/connections/{sr}/disconnect"))
        .await;
    let page = app
        .admin_page(&admin, &format!("/admin/connections/{sr}"))
        .await;
    assert!(page.contains("this provider offers no revocation"));
    assert_eq!(app.status_of(sr).await, "revoked");
}

#[tokio::test]
async fn the_detail_page_shows_provider_context_and_history_but_no_secrets() {
    let app = spawn_app().await;
    let (_, id) = app.connected("detail-1", "acme").await;
    // Provider context as a Zoho connection carries it, plus a key that must never show.
    sqlx::query(
        r#"UPDATE connections SET metadata = '{"location": "eu", "accounts_server": "https://accounts.zoho.eu", "api_host": "https://recruit.zoho.eu", "access_token": "sentinel-in-metadata"}' WHERE id = $1"#,
    )
    .bind(id)
    .execute(app.pool())
    .await
    .unwrap();
    let admin = app.admin_browser().await;
    let page = app
        .admin_page(&admin, &format!("/admin/connections/{id}"))
        .await;
    let text = unescape(&page);
    for expected in [
        "Acme HR connection of User detail-1",
        "detail-1@example.com",
        "Data center",
        "Accounts server",
        "https://accounts.zoho.eu",
        "API host",
        "https://recruit.zoho.eu",
        "sam.sandbox@example.com",
        "openid offline_access",
        "id=\"status\">active<",
        "Refresh now",
        "Create reconnect link",
        "connected",
    ] {
        assert!(text.contains(expected), "{expected}");
    }
    assert!(!page.contains("sentinel-in-metadata"));
    for secret in app.sandbox.secrets_seen() {
        assert!(!page.contains(&secret));
    }
    assert!(!page.contains(CLIENT_SECRET));

    // Unknown or malformed ids.
    for path in [
        "/admin/connections/not-a-uuid".to_string(),
        format!("/admin/connections/{}", Uuid::new_v4()),
    ] {
        let r = admin
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(r.text().await.unwrap().contains("Back to the dashboard"));
    }
    let r = app
        .admin_post(
            &admin,
            &format!("/admin/connections/{}/refresh", Uuid::new_v4()),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admin_create_reads_the_password_from_stdin_and_prints_nothing_secret() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    let run = |email: &'static str, input: &'static str| {
        let database_url = app.database_url.clone();
        async move {
            let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyhaven"))
                .args(["admin", "create", "--email", email])
                .env("DATABASE_URL", database_url)
                .env_remove("KEYHAVEN_CONFIG")
                .env("RUST_LOG", "warn")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).await.unwrap();
            drop(stdin);
            child.wait_with_output().await.unwrap()
        }
    };
    let out = run("New.Admin@Example.com", "a long enough password\n").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.lines().last(), Some("new.admin@example.com"));
    assert!(!stdout.contains("a long enough password"));
    assert!(!stderr.contains("a long enough password"));
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM admins WHERE email = $1")
        .bind("new.admin@example.com")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"));
    let r = app
        .sign_in(
            &browser(),
            "new.admin@example.com",
            "a long enough password",
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    let out = run("short@example.com", "too short\n").await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12 characters"));
    let out = run("new.admin@example.com", "another long password\r\n").await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM admins")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(admins, 1);
}

/// Signs in with an `X-Forwarded-For` header, as a request through a proxy would.
async fn sign_in_via_proxy(
    app: &TestApp,
    email: &str,
    password: &str,
    forwarded_for: &str,
) -> StatusCode {
    let b = browser();
    let page = app.admin_page(&b, "/admin/login").await;
    let csrf = field_value(&page, "csrf").unwrap();
    b.post(format!("{}/admin/login", app.url))
        .header("x-forwarded-for", forwarded_for)
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_limit_counts_the_address_the_proxy_saw() {
    let app = spawn_app_with(Options {
        tweak: |s| s.server.trust_forwarded_for = true,
        ..Options::default()
    })
    .await;
    app.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    // The client writes what it likes first; only the proxy's last entry counts.
    for i in 0..5 {
        let status = sign_in_via_proxy(
            &app,
            &format!("guess{i}@example.com"),
            "a wrong password",
            &format!("198.51.100.{i}, 203.0.113.7"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let blocked = sign_in_via_proxy(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "203.0.113.7").await;
    assert_eq!(blocked, StatusCode::TOO_MANY_REQUESTS);
    let other = sign_in_via_proxy(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "203.0.113.8").await;
    assert_eq!(other, StatusCode::SEE_OTHER);
    // IPv6 clients count by their /64: another address in the same block is blocked too.
    for i in 0..5 {
        let status = sign_in_via_proxy(
            &app,
            &format!("guess{i}@example.com"),
            "a wrong password",
            &format!("2001:db8:0:1::{i}"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let same_block =
        sign_in_via_proxy(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "2001:db8:0:1:ffff::9").await;
    assert_eq!(same_block, StatusCode::TOO_MANY_REQUESTS);
    let next_block = sign_in_via_proxy(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "2001:db8:0:2::1").await;
    assert_eq!(next_block, StatusCode::SEE_OTHER);
}

/// The dashboard's counts are kept by triggers; after inserts in bulk and one by one
/// from several backends, status and provider changes, other updates and deletes (also
/// cascading from end users), they equal a full count.
#[tokio::test]
async fn connection_counts_equal_a_full_count_whatever_changed() {
    let app = spawn_app().await;
    connect_as(&app, "count-a", "A", "smartrecruiters", "sam.sandbox").await;
    let db = app.pool();
    sqlx::query(
        "INSERT INTO end_users (id, external_id)
         SELECT md5('count' || n)::uuid, 'count-' || n FROM generate_series(1, 300) n",
    )
    .execute(db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO connections (id, end_user_id, provider, status)
         SELECT gen_random_uuid(), md5('count' || n)::uuid,
                (ARRAY['acme', 'zoho', 'hurdlr'])[1 + n % 3], 'active'
         FROM generate_series(1, 200) n",
    )
    .execute(db)
    .await
    .unwrap();
    // One by one, at once, from the pool's several backends.
    let mut singles = tokio::task::JoinSet::new();
    for n in 201..=300 {
        let db = db.clone();
        singles.spawn(async move {
            sqlx::query(
                "INSERT INTO connections (id, end_user_id, provider, status)
                 VALUES (gen_random_uuid(), md5('count' || $1)::uuid, 'acme', 'degraded')",
            )
            .bind(n.to_string())
            .execute(&db)
            .await
        });
    }
    while let Some(r) = singles.join_next().await {
        r.unwrap().unwrap();
    }
    for statement in [
        "UPDATE connections SET status = 'needs_reconnect' WHERE provider = 'zoho' AND random() < 0.5",
        "UPDATE connections SET provider = 'acme' WHERE provider = 'hurdlr' AND random() < 0.5",
        "UPDATE connections SET updated_at = now(), last_error = 'x'",
        "UPDATE connections SET status = status",
        "DELETE FROM connections WHERE provider = 'acme' AND random() < 0.3",
        "DELETE FROM end_users WHERE external_id LIKE 'count-1%'",
    ] {
        sqlx::query(statement).execute(db).await.unwrap();
        let kept: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT provider, status, count FROM connection_counts WHERE count <> 0 ORDER BY 1, 2",
        )
        .fetch_all(db)
        .await
        .unwrap();
        let full: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT provider, status, count(*) FROM connections GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .fetch_all(db)
        .await
        .unwrap();
        assert_eq!(kept, full, "after {statement}");
    }
}
