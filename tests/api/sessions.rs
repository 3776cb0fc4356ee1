//! Browser sessions across instances: end-user pages may answer from an instance's
//! memory, so these prove that no instance ever serves a session another has changed.

use reqwest::StatusCode;
use reqwest::header::COOKIE;

use crate::chains::*;
use crate::helpers::*;

async fn connect_page(browser: &reqwest::Client, base: &str) -> String {
    let r = browser.get(format!("{base}/connect")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "connect page at {base}");
    r.text().await.unwrap()
}

#[tokio::test]
async fn a_flow_can_move_between_instances_at_every_step() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    // The link is opened here, the flow starts there, the callback lands here again.
    let user = app.user_browser("roaming").await;
    assert!(connect_page(&user, &other).await.contains("User roaming"));
    let csrf = field_value(&connect_page(&user, &other).await, "csrf").unwrap();
    let r = user
        .post(format!("{other}/connect/smartrecruiters"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let callback = app.approve(&location(&r)).await;
    assert!(callback.starts_with(&app.url));
    let r = user.get(callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.connection_count().await, 1);
    assert!(connect_page(&user, &other).await.contains("Connected as"));
}

#[tokio::test]
async fn opening_another_users_link_is_seen_by_every_instance_at_once() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    let b = app.user_browser("first-user").await;
    // The other instance now holds this session in memory.
    assert!(connect_page(&b, &other).await.contains("User first-user"));

    let link = app.create_link("second-user").await;
    assert_eq!(open_link(&b, &link).await.status(), StatusCode::SEE_OTHER);
    let page = connect_page(&b, &other).await;
    assert!(page.contains("User second-user"), "no stale end user");
    assert!(!page.contains("User first-user"));
}

/// A request carrying only this admin session cookie, whatever a browser's jar would do.
async fn get_as(url: String, session_id: &str) -> reqwest::Response {
    browser()
        .get(url)
        .header(COOKIE, format!("keyhaven_admin={session_id}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn signing_out_on_one_instance_signs_out_on_every_instance_at_once() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    app.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let admin = browser();
    let r = app.sign_in(&admin, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session_id = set_cookie_value(&r, "keyhaven_admin").expect("an admin cookie at sign-in");
    assert!(
        set_cookie_value(&r, "keyhaven_session").is_none(),
        "the admin's session is not the end user's"
    );
    let r = get_as(format!("{other}/admin"), &session_id).await;
    assert_eq!(r.status(), StatusCode::OK, "signed in on both");
    // The admin's session id means nothing to the end-user pages.
    let r = browser()
        .get(format!("{other}/connect"))
        .header(COOKIE, format!("keyhaven_session={session_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no end user bound");

    let r = app.admin_post(&admin, "/admin/logout").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = get_as(format!("{other}/admin"), &session_id).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the old id grants nothing"
    );
    assert_eq!(location(&r), "/admin/login");
}

#[tokio::test]
async fn sessions_and_authorizations_in_flight_skip_the_write_ahead_log() {
    let app = spawn_app().await;
    for table in ["tower_sessions.session", "pending_authorizations"] {
        let persistence: i8 = sqlx::query_scalar(
            "SELECT relpersistence::\"char\" FROM pg_class WHERE oid = $1::regclass",
        )
        .bind(table)
        .fetch_one(app.pool())
        .await
        .unwrap();
        assert_eq!(persistence as u8, b'u', "{table} is unlogged");
    }
    // Tokens, by contrast, are logged and survive a crash.
    let persistence: i8 = sqlx::query_scalar(
        "SELECT relpersistence::\"char\" FROM pg_class WHERE oid = 'connections'::regclass",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(persistence as u8, b'p');
}

/// A link's token hash, use and claim.
type LinkState = (Vec<u8>, Option<time::OffsetDateTime>, Option<Vec<u8>>);

#[tokio::test]
async fn a_thousand_anonymous_page_loads_leave_the_session_table_as_it_was() {
    let app = spawn_app().await;
    // Some real sessions first, so "as it was" is not just "empty".
    let _user = app.user_browser("kept").await;
    let _admin = app.admin_browser().await;
    let connect_link = app.create_link("unopened").await;
    let key = app.api_key().await;
    let (_, id) = app.connected("relinked", "smartrecruiters").await;
    let reconnect: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/connections/{id}/reconnect-link",
            app.url
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reconnect_link = reconnect["url"].as_str().unwrap().to_string();
    let before = session_table_rows(&app).await;
    assert_eq!(before.len(), 3);
    let links_before: Vec<LinkState> =
        sqlx::query_as("SELECT token_hash, used_at, claimed_by FROM links ORDER BY token_hash")
            .fetch_all(app.pool())
            .await
            .unwrap();

    let base = app.url.clone();
    let mut loads = Vec::new();
    for i in 0..1000 {
        let (url, cookie) = match i % 8 {
            0 => (format!("{base}/admin/login"), None),
            1 => (connect_link.clone(), None),
            2 => (reconnect_link.clone(), None),
            3 => (format!("{base}/c/{}", uuid::Uuid::new_v4().simple()), None),
            4 => (
                format!("{base}/connect"),
                Some(format!(
                    "keyhaven_session={}",
                    uuid::Uuid::new_v4().simple()
                )),
            ),
            5 => (
                format!("{base}/admin"),
                Some(format!("keyhaven_admin={}", uuid::Uuid::new_v4().simple())),
            ),
            6 => (
                format!("{base}/admin/login"),
                Some("keyhaven_admin=AAAAAAAAAAAAAAAAAAAAAA".to_string()),
            ),
            _ => (
                format!("{base}/oauth/smartrecruiters/callback?state=x&code=y"),
                None,
            ),
        };
        loads.push((url, cookie));
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Fifty at a time, in parallel.
    for chunk in loads.chunks(50) {
        let tasks: Vec<_> = chunk
            .iter()
            .cloned()
            .map(|(url, cookie)| {
                let client = client.clone();
                tokio::spawn(async move {
                    let mut request = client.get(url);
                    if let Some(cookie) = cookie {
                        request = request.header(COOKIE, cookie);
                    }
                    request.send().await.unwrap().status()
                })
            })
            .collect();
        for task in tasks {
            let status = task.await.unwrap();
            assert!(!status.is_server_error(), "{status}");
        }
    }
    assert_eq!(
        session_table_rows(&app).await,
        before,
        "no session row written"
    );
    let links_after: Vec<LinkState> =
        sqlx::query_as("SELECT token_hash, used_at, claimed_by FROM links ORDER BY token_hash")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(
        links_after, links_before,
        "no link used up or claimed by a GET"
    );
    let failures: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_login_failures")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(failures, 0);
}

#[tokio::test]
async fn sessions_are_stored_under_the_digest_of_their_id_and_never_come_back() {
    use keyhaven::web::session_store::{Sessions, stored_id};
    use tower_sessions::SessionStore;
    use tower_sessions::session::{Id, Record};

    let app = spawn_app().await;
    let store = Sessions::new(app.pool().clone());
    let mut record = Record {
        id: Id::default(),
        data: Default::default(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    record
        .data
        .insert("k".into(), serde_json::Value::String("v".into()));
    store.create(&mut record).await.unwrap();
    let rows = session_table_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, stored_session_id(&record.id.to_string()));
    assert_eq!(rows[0].0, stored_id(&record.id));
    // The stored data does not carry the id either (as text or as its 16 bytes).
    let raw = record.id.0.to_le_bytes();
    assert!(!rows[0].1.windows(16).any(|w| w == raw));
    assert!(
        !rows[0]
            .1
            .windows(16)
            .any(|w| w == record.id.0.to_be_bytes())
    );
    assert!(store.load(&record.id).await.unwrap().is_some());

    // A request that loaded the session before it was deleted saves afterwards:
    // nothing comes back.
    let loaded = store.load(&record.id).await.unwrap().unwrap();
    store.delete(&record.id).await.unwrap();
    store.save(&loaded).await.unwrap();
    assert!(session_table_rows(&app).await.is_empty());
    assert!(store.load(&record.id).await.unwrap().is_none());
}

#[tokio::test]
async fn signing_out_cannot_be_undone_by_a_request_in_flight() {
    use keyhaven_sandbox::{Fault, FaultEffect, FaultTarget};
    let app = spawn_app().await;
    let (_, id) = app.connected("inflight", "smartrecruiters").await;
    let admin = app.admin_browser().await;
    let page = app.admin_page(&admin, "/admin").await;
    let csrf = field_value(&page, "csrf").unwrap();
    let session_id = {
        let rows = session_table_rows(&app).await;
        assert_eq!(rows.len(), 2, "the end user's and the admin's");
        rows
    };
    // A slow refresh: the request holds the admin's session while the provider answers,
    // then writes a message into it.
    app.sandbox.add_fault(Fault {
        provider: "smartrecruiters".into(),
        target: FaultTarget::Refresh,
        effect: FaultEffect::Latency { ms: 3000 },
        times: 1,
    });
    let in_flight = tokio::spawn({
        let admin = admin.clone();
        let url = format!("{}/admin/connections/{id}/refresh", app.url);
        async move {
            admin
                .post(url)
                .form(&[("csrf", csrf.as_str())])
                .send()
                .await
                .unwrap()
        }
    });
    // Wait until the refresh reached the provider (the sandbox's arrival signal).
    app.sandbox
        .wait_for("smartrecruiters.token.refresh_token", 1)
        .await;
    let r = app.admin_post(&admin, "/admin/logout").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(!in_flight.is_finished(), "the refresh is still in flight");
    let after_logout = session_table_rows(&app).await;
    assert_eq!(after_logout.len(), 1, "only the end user's session is left");
    let r = in_flight.await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.sandbox.counter("smartrecruiters.refreshed"), 1);
    // The request in flight saved its message into a session that no longer exists:
    // nothing came back, and the browser is signed out.
    assert_eq!(session_table_rows(&app).await, after_logout);
    assert!(session_id.len() > after_logout.len());
    let r = admin
        .get(format!("{}/admin", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/admin/login");
}

#[tokio::test]
async fn admin_sessions_end_after_two_idle_hours_and_twelve_hours_in_all() {
    let app = spawn_app().await;
    let admin = app.admin_browser().await;
    // Active every 1 h 50 min: kept signed in (each visit moves the idle timer)…
    for _ in 0..6 {
        app.clock
            .advance(time::Duration::hours(1) + time::Duration::minutes(50));
        app.admin_page(&admin, "/admin").await;
    }
    // …until twelve hours after signing in (11 h passed, then 1 h 50 more).
    app.clock
        .advance(time::Duration::hours(1) + time::Duration::minutes(50));
    let r = admin
        .get(format!("{}/admin", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/admin/login");
    assert!(
        session_table_rows(&app).await.is_empty(),
        "the session is gone"
    );

    // Idle: two hours without a visit sign out too.
    let admin = app.admin_browser().await;
    app.clock
        .advance(time::Duration::hours(1) + time::Duration::minutes(59));
    app.admin_page(&admin, "/admin").await;
    app.clock.advance(time::Duration::hours(2));
    let r = admin
        .get(format!("{}/admin", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/admin/login");
    // The cookie's own lifetime says the same to the browser.
    let fresh = browser();
    let r = app.sign_in(&fresh, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let line = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("keyhaven_admin="))
        .unwrap();
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Lax"),
        "{line}"
    );
    assert!(line.contains("Max-Age=7200"), "{line}");
}

#[tokio::test]
async fn changing_the_password_signs_out_the_admins_other_sessions() {
    let app = spawn_app().await;
    let here = app.admin_browser().await;
    let elsewhere = app.admin_browser().await;
    let page = app.admin_page(&here, "/admin/password").await;
    let csrf = field_value(&page, "csrf").unwrap();
    let new_password = "an entirely new passphrase";
    let change = |current: &'static str, repeat: &'static str| {
        let csrf = csrf.clone();
        let here = here.clone();
        let url = format!("{}/admin/password", app.url);
        async move {
            here.post(url)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("current", current),
                    ("new_password", new_password),
                    ("repeat", repeat),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let r = change("not my password", new_password).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("current password is not right")
    );
    let r = change(ADMIN_PASSWORD, "something else entirely").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    app.admin_page(&elsewhere, "/admin").await;

    let r = change(ADMIN_PASSWORD, new_password).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        set_cookie_value(&r, "keyhaven_admin").is_some(),
        "a new id here"
    );
    assert_eq!(location(&r), "/admin/password");
    let page = app.admin_page(&here, "/admin/password").await;
    assert!(page.contains("Your password was changed"), "{page}");
    let r = elsewhere
        .get(format!("{}/admin", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the other session is signed out"
    );
    assert_eq!(location(&r), "/admin/login");
    let r = app.sign_in(&browser(), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app.sign_in(&browser(), ADMIN_EMAIL, new_password).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    // The command line does the same: `keyhaven admin password --email E`.
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyhaven"))
        .args(["admin", "password", "--email", ADMIN_EMAIL])
        .env("DATABASE_URL", &app.database_url)
        .env_remove("KEYHAVEN_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"a third long password\n").await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("a third long password"));
    let r = here.get(format!("{}/admin", app.url)).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "signed out by the command"
    );
    let r = app
        .sign_in(&browser(), ADMIN_EMAIL, "a third long password")
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn on_https_every_cookie_is_secure_and_host_prefixed() {
    let app = spawn_app_with(Options {
        tweak: |s| s.server.public_url = "https://connect.example.test".parse().unwrap(),
        ..Options::default()
    })
    .await;
    app.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(format!("{}/admin/login", app.url))
        .send()
        .await
        .unwrap();
    let line = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(line.starts_with("__Host-keyhaven_form="), "{line}");
    assert!(
        line.contains("; Secure") && line.contains("Path=/"),
        "{line}"
    );
    let form = line.split(';').next().unwrap().to_string();
    let csrf = field_value(&r.text().await.unwrap(), "csrf").unwrap();
    let r = client
        .post(format!("{}/admin/login", app.url))
        .header(COOKIE, &form)
        .form(&admin_login_form(csrf.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let line = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(line.starts_with("__Host-keyhaven_admin="), "{line}");
    assert!(line.contains("Secure") && line.contains("Path=/"), "{line}");
    // The same form token without its cookie, or under the unprefixed name, is refused.
    for cookie in [String::new(), form.replace("__Host-", "")] {
        let r = client
            .post(format!("{}/admin/login", app.url))
            .header(COOKIE, cookie)
            .form(&admin_login_form(csrf.as_str()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
}
