//! Provider hosts checked before anything is sent, manageable API keys, reused reconnect
//! links, retention, and the stricter callback and headers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::http::{StatusCode as AxumStatus, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use keyhaven::providers::hosts::HostPolicy;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::chains::*;
use crate::helpers::*;

/// A server on `ip`:0 that counts every request it gets; returns its base URL.
async fn counting_server(ip: &str, hits: Arc<AtomicU64>) -> String {
    let app = axum::Router::new().fallback(move || {
        let hits = hits.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            Json(json!({ "oauthUrl": "x", "restUrl": "x", "BhRestToken": "x" }))
        }
    });
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// Serves `router` on 127.0.0.1:0; returns its base URL.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

/// Tests' Bullhorn hosts: 127.0.0.1 (the sandbox and the stubs) over plain http.
fn loopback_hosts() -> HostPolicy {
    HostPolicy::new(vec!["127.0.0.1".into()], true)
}

/// The `host_refused` alarm recorded for Bullhorn. It is written in the background after
/// the request that met the host was answered: a trigger in this test's database
/// announces the row, and this waits for that, not for time.
async fn host_refused_alarm(app: &TestApp) -> String {
    sqlx::raw_sql(
        "CREATE OR REPLACE FUNCTION tests_alarm_written() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_notify('tests_alarm_written', NEW.kind); RETURN NEW; END $$;
         CREATE OR REPLACE TRIGGER tests_alarm_written AFTER INSERT OR UPDATE ON provider_alarms
         FOR EACH ROW EXECUTE FUNCTION tests_alarm_written();",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let mut written = sqlx::postgres::PgListener::connect(&app.database_url)
        .await
        .unwrap();
    written.listen("tests_alarm_written").await.unwrap();
    let wait = async {
        loop {
            let detail: Option<String> = sqlx::query_scalar(
                "SELECT detail FROM provider_alarms WHERE provider = 'bullhorn' AND kind = 'host_refused' LIMIT 1",
            )
            .fetch_optional(app.pool())
            .await
            .unwrap();
            if let Some(detail) = detail {
                return detail;
            }
            // Not written before the check: announced when it is.
            written.recv().await.unwrap();
        }
    };
    // Only against a hang: the alarm comes within milliseconds.
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("no host_refused alarm recorded")
}

#[tokio::test]
async fn login_info_that_points_at_another_domain_sends_nothing_there() {
    // The other domain: a real server on 127.0.0.2 that counts what reaches it.
    let elsewhere_hits = Arc::new(AtomicU64::new(0));
    let elsewhere = counting_server("127.0.0.2", elsewhere_hits.clone()).await;
    let stub_hits = Arc::new(AtomicU64::new(0));
    let (e, h) = (elsewhere.clone(), stub_hits.clone());
    let stub = serve(
        axum::Router::new()
            .route(
                "/redirect/loginInfo",
                get({
                    let (e, h) = (e.clone(), h.clone());
                    move || async move {
                        h.fetch_add(1, Ordering::SeqCst);
                        (
                            AxumStatus::TEMPORARY_REDIRECT,
                            [(header::LOCATION, format!("{e}/rest-services/loginInfo"))],
                        )
                            .into_response()
                    }
                }),
            )
            .route(
                "/oauth-elsewhere/loginInfo",
                get({
                    let (e, h) = (e.clone(), h.clone());
                    move || async move {
                        h.fetch_add(1, Ordering::SeqCst);
                        Json(json!({ "oauthUrl": format!("{e}/oauth"), "restUrl": "http://127.0.0.1:9/rest-services" }))
                    }
                }),
            )
            .route(
                "/rest-elsewhere/loginInfo",
                get(move || async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    Json(json!({ "oauthUrl": "http://127.0.0.1:9/oauth", "restUrl": format!("{e}/rest-services") }))
                }),
            ),
    )
    .await;

    for (case, path) in [
        ("a 307 to another domain", "/redirect/loginInfo"),
        (
            "an oauthUrl on another domain",
            "/oauth-elsewhere/loginInfo",
        ),
        ("a restUrl on another domain", "/rest-elsewhere/loginInfo"),
    ] {
        let app = spawn_app_with(Options {
            bullhorn_login_info: Some(format!("{stub}{path}")),
            bullhorn_hosts: Some(loopback_hosts()),
            ..Options::default()
        })
        .await;
        let browser = app.user_browser("bh-hosts").await;
        let before = stub_hits.load(Ordering::SeqCst);
        let r = app.start_bullhorn(&browser, "east.user").await;
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY, "{case}");
        let page = r.text().await.unwrap();
        assert!(
            page.contains("not allowed") && page.contains("127.0.0.2"),
            "{case}: a clear error naming the host: {page}"
        );
        assert_eq!(stub_hits.load(Ordering::SeqCst), before + 1, "{case}");
        assert_eq!(
            elsewhere_hits.load(Ordering::SeqCst),
            0,
            "{case}: nothing reached the other domain"
        );
        assert!(
            host_refused_alarm(&app).await.contains("127.0.0.2"),
            "{case}"
        );
        assert_eq!(app.pending_count().await, 0, "{case}");
    }
}

#[tokio::test]
async fn plain_http_hosts_are_refused_unless_insecure_loopback_is_allowed() {
    let hits = Arc::new(AtomicU64::new(0));
    let stub = counting_server("127.0.0.1", hits.clone()).await;
    let app = spawn_app_with(Options {
        bullhorn_login_info: Some(format!("{stub}/rest-services/loginInfo")),
        bullhorn_hosts: Some(HostPolicy::new(vec!["127.0.0.1".into()], false)),
        ..Options::default()
    })
    .await;
    let browser = app.user_browser("bh-http").await;
    let r = app.start_bullhorn(&browser, "east.user").await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r.text().await.unwrap().contains("not allowed"));
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no request over plain http");

    // The same at start-up: an http provider URL is a configuration error unless allowed.
    let mut raw = raw_settings_with_key();
    raw.providers.insert(
        "bullhorn".into(),
        keyhaven::config::ProviderSettings {
            client_id: Some("id".into()),
            client_secret: Some("secret".into()),
            login_info_url: Some("http://rest.bullhornstaffing.com/rest-services/loginInfo".into()),
            ..Default::default()
        },
    );
    let err = raw.validate().unwrap_err().to_string();
    assert!(err.contains("providers.bullhorn.login_info_url"), "{err}");
}

#[tokio::test]
async fn a_rest_login_answer_naming_another_domain_gets_no_token() {
    let elsewhere_hits = Arc::new(AtomicU64::new(0));
    let elsewhere = counting_server("127.0.0.2", elsewhere_hits.clone()).await;
    // loginInfo and REST login are the stub; the OAuth host is the sandbox's east one.
    let sandbox_base = Arc::new(std::sync::Mutex::new(String::new()));
    let stub_base = Arc::new(std::sync::Mutex::new(String::new()));
    let (sb, st, e) = (sandbox_base.clone(), stub_base.clone(), elsewhere.clone());
    let stub = serve(
        axum::Router::new()
            .route(
                "/rest-services/loginInfo",
                get(move || async move {
                    let oauth = format!("{}/bullhorn/east/oauth", sb.lock().unwrap());
                    let rest = format!("{}/rest-services", st.lock().unwrap());
                    Json(json!({ "oauthUrl": oauth, "restUrl": rest }))
                }),
            )
            .route(
                "/rest-services/login",
                post(move || async move {
                    Json(json!({ "BhRestToken": "stub-session", "restUrl": format!("{e}/rest-services/corp/") }))
                }),
            ),
    )
    .await;
    *stub_base.lock().unwrap() = stub.clone();
    let app = spawn_app_with(Options {
        bullhorn_login_info: Some(format!("{stub}/rest-services/loginInfo")),
        bullhorn_hosts: Some(loopback_hosts()),
        ..Options::default()
    })
    .await;
    *sandbox_base.lock().unwrap() = app.sandbox_url.clone();
    let user = app.user_browser("bh-rest").await;
    let r = app.start_bullhorn(&user, "east.user").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let authorize = location(&r);
    let callback = app
        .bullhorn_sign_in(&authorize, "east.user", "bullhorn-pass")
        .await;
    let done = user.get(callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::BAD_GATEWAY);
    assert!(done.text().await.unwrap().contains("not allowed"));
    assert_eq!(app.sandbox.counter("bullhorn.token.authorization_code"), 1);
    assert_eq!(
        elsewhere_hits.load(Ordering::SeqCst),
        0,
        "the BhRestToken never reached the other domain"
    );
    assert_eq!(app.connection_count().await, 0, "nothing stored");
    host_refused_alarm(&app).await;
}

#[tokio::test]
async fn a_tampered_stored_host_is_refused_at_refresh_and_credential_time() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let user = app.user_browser("bh-tamper").await;
    let r = app.start_bullhorn(&user, "east.user").await;
    let authorize = location(&r);
    let callback = app
        .bullhorn_sign_in(&authorize, "east.user", "bullhorn-pass")
        .await;
    let done = user.get(callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM connections")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let elsewhere_hits = Arc::new(AtomicU64::new(0));
    let elsewhere = counting_server("127.0.0.2", elsewhere_hits.clone()).await;
    // Someone with write access to the row points the hosts elsewhere.
    sqlx::query(
        "UPDATE connections SET metadata = metadata || jsonb_build_object('oauth_url', $1::text, 'session_rest_url', $2::text)",
    )
    .bind(format!("{elsewhere}/oauth"))
    .bind(format!("{elsewhere}/rest-services/corp/"))
    .execute(app.pool())
    .await
    .unwrap();
    let plain = app.credentials(&app.url, &key, id, false).await;
    assert_eq!(plain.status(), StatusCode::BAD_GATEWAY);
    let body: Value = plain.json().await.unwrap();
    assert_eq!(body["code"], "host_refused");
    let forced = app.credentials(&app.url, &key, id, true).await;
    assert_eq!(forced.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 0);
    assert_eq!(app.sandbox.counter("bullhorn.token.refresh_token"), 0);
    host_refused_alarm(&app).await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_by_another_instance_within_a_second() {
    let app = spawn_app().await;
    let second = app.second_instance().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("keys-1", "smartrecruiters").await;
    // Both instances have seen (and remember) the key.
    for base in [&app.url, &second] {
        assert_eq!(
            app.credentials(base, &key, id, false).await.status(),
            StatusCode::OK
        );
    }
    let listed = keyhaven::cli::api_key_lines(&app.state).await.unwrap();
    assert_eq!(listed.len(), 1);
    let columns: Vec<&str> = listed[0].split('\t').collect();
    assert_eq!(columns.len(), 7, "{columns:?}");
    let key_id: uuid::Uuid = columns[0].parse().unwrap();
    assert_eq!(columns[1], "tests");
    assert_eq!(columns[2], &key[..12], "the stored prefix tells keys apart");
    assert_ne!(columns[4], "-", "last used is recorded");
    assert_eq!((columns[5], columns[6]), ("-", "-"));

    keyhaven::cli::revoke_api_key(&app.state, key_id)
        .await
        .unwrap();
    assert_eq!(
        app.credentials(&app.url, &key, id, false).await.status(),
        StatusCode::UNAUTHORIZED,
        "the revoking instance refuses it at once"
    );
    // The other instance may still trust the key it verified before the revocation, for
    // under a second (that is the contract). Asked once that second has passed on the
    // portal's clock, it refuses.
    app.clock.advance(time::Duration::seconds(1));
    assert_eq!(
        app.credentials(&second, &key, id, false).await.status(),
        StatusCode::UNAUTHORIZED,
        "refused by every instance a second after the revocation"
    );
    let listed = keyhaven::cli::api_key_lines(&app.state).await.unwrap();
    assert_ne!(listed[0].split('\t').nth(6), Some("-"), "{listed:?}");
    let unknown = keyhaven::cli::revoke_api_key(&app.state, uuid::Uuid::new_v4())
        .await
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("no API key"), "{unknown}");
}

#[tokio::test]
async fn an_expired_key_is_refused_and_last_use_is_written_once_a_minute() {
    let app = spawn_app().await;
    let issued = keyhaven::web::api_keys::issue(
        &app.state,
        "short-lived",
        Some(app.clock.now() + time::Duration::days(1)),
    )
    .await
    .unwrap();
    let url = format!("{}/api/v1/end-users/nobody/connections", app.url);
    let call = || {
        reqwest::Client::new()
            .get(&url)
            .bearer_auth(&issued.key)
            .send()
    };
    assert_eq!(call().await.unwrap().status(), StatusCode::NOT_FOUND);
    let used = || async {
        sqlx::query_scalar::<_, Option<time::OffsetDateTime>>(
            "SELECT last_used_at FROM api_keys WHERE id = $1",
        )
        .bind(issued.id)
        .fetch_one(app.pool())
        .await
        .unwrap()
    };
    let first = used().await.expect("last use recorded");
    app.clock.advance(time::Duration::seconds(30));
    // Another instance has nothing in memory, so it asks the database.
    let second = app.second_instance().await;
    let r = reqwest::Client::new()
        .get(format!("{second}/api/v1/end-users/nobody/connections"))
        .bearer_auth(&issued.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(used().await, Some(first), "not rewritten within a minute");
    app.clock.advance(time::Duration::days(2));
    assert_eq!(call().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admins_create_see_and_revoke_keys_on_the_console() {
    let app = spawn_app().await;
    let admin = app.admin_browser().await;
    let page = app.admin_page(&admin, "/admin/api-keys").await;
    assert!(page.contains("No API keys yet"));
    let csrf = field_value(&page, "csrf").unwrap();
    let created = admin
        .post(format!("{}/admin/api-keys", app.url))
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "billing <backend>"),
            ("expires_in_days", "30"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let shown = created.text().await.unwrap();
    let marker = "id=\"api-key\" value=\"";
    let start = shown.find(marker).expect("the new key is shown") + marker.len();
    let key = shown[start..].split('"').next().unwrap().to_string();
    assert!(key.starts_with("khk_"));
    assert!(
        shown.contains("billing &#60;backend&#62;"),
        "names are escaped: {shown}"
    );
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/end-users/nobody/connections", app.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "the key works");

    let page = app.admin_page(&admin, "/admin/api-keys").await;
    assert!(!page.contains(&key), "shown only once");
    assert!(page.contains(&key[..12]), "its prefix is listed");
    assert!(page.contains("active"));
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_keys")
        .fetch_one(app.pool())
        .await
        .unwrap();
    // Without the form token nothing happens.
    let forged = admin
        .post(format!("{}/admin/api-keys/{id}/revoke", app.url))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let r = app
        .admin_post(&admin, &format!("/admin/api-keys/{id}/revoke"))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = app.admin_page(&admin, "/admin/api-keys").await;
    assert!(page.contains("revoked"));
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/end-users/nobody/connections", app.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!captured_logs().contains(&key), "the key is never logged");
    // Signed out, the page is not there.
    let anonymous = browser()
        .get(format!("{}/admin/api-keys", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn polling_a_dead_connection_returns_the_same_reconnect_link() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("dead-1", "smartrecruiters").await;
    sqlx::query("UPDATE connections SET status = 'needs_reconnect' WHERE id = $1")
        .bind(id)
        .execute(app.pool())
        .await
        .unwrap();
    let mut urls = Vec::new();
    for _ in 0..5 {
        let r = app.credentials(&app.url, &key, id, false).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let body: Value = r.json().await.unwrap();
        urls.push(body["reconnect_url"].as_str().unwrap().to_string());
    }
    // Concurrent callers get it too.
    let racing: Vec<_> = (0..8)
        .map(|_| app.spawn_credentials(&app.url, &key, id))
        .collect();
    for r in racing {
        let body: Value = r.await.unwrap().json().await.unwrap();
        urls.push(body["reconnect_url"].as_str().unwrap().to_string());
    }
    assert!(urls.iter().all(|u| *u == urls[0]), "{urls:?}");
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM links WHERE kind = 'reconnect'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(links, 1);
    // Only a hash and a sealed copy are stored: the token is in neither.
    let token = urls[0].rsplit('/').next().unwrap().to_string();
    let (hash, sealed): (Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT token_hash, token_sealed FROM links WHERE kind = 'reconnect'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(hash, sha256(&token));
    assert!(!sealed.windows(token.len()).any(|w| w == token.as_bytes()));

    // The same link through the reconnect-link endpoint.
    let body = app.reconnect_link(&key, id).await;
    assert_eq!(body["url"], urls[0].as_str());

    // Once it is used, or past half its life, a new one is made.
    sqlx::query("UPDATE links SET used_at = now()")
        .execute(app.pool())
        .await
        .unwrap();
    let body: Value = app.credentials_json(&app.url, &key, id, false).await;
    let fresh = body["reconnect_url"].as_str().unwrap().to_string();
    assert_ne!(fresh, urls[0]);
    app.clock.advance(time::Duration::days(4));
    let body: Value = app.credentials_json(&app.url, &key, id, false).await;
    assert_ne!(body["reconnect_url"].as_str().unwrap(), fresh);

    // `keys reseal` re-seals the stored link tokens with a new primary key.
    let mut settings = app.state.settings.clone();
    settings.keys = settings
        .keys
        .with_new_primary(&keyhaven::crypto::KeyRing::generate_entry("k2").unwrap())
        .unwrap();
    let state = keyhaven::state::AppState::new(settings, app.state.pool.clone(), app.clock.clone())
        .unwrap();
    let report = keyhaven::reseal::reseal_all(&state).await.unwrap();
    assert_eq!(report.links_resealed, 3);
    assert_eq!(report.links_unreadable, 0);
    let again = keyhaven::lifecycle::reconnect::issue_link(&state, id)
        .await
        .unwrap();
    assert_eq!(again.0, body["reconnect_url"].as_str().unwrap());
}

#[tokio::test]
async fn housekeeping_deletes_spent_links_and_old_events() {
    let app = spawn_app().await;
    let (_, id) = app.connected("house-1", "smartrecruiters").await;
    let user: uuid::Uuid = sqlx::query_scalar("SELECT end_user_id FROM connections")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let now = app.clock.now();
    let day = time::Duration::days(1);
    let links = [
        ("expired-8-days-ago", now - 8 * day, None, false),
        ("used-8-days-ago", now + day, Some(now - 8 * day), false),
        ("expired-6-days-ago", now - 6 * day, None, true),
        ("used-6-days-ago", now + day, Some(now - 6 * day), true),
        ("live", now + day, None, true),
    ];
    sqlx::query("DELETE FROM links")
        .execute(app.pool())
        .await
        .unwrap();
    for (name, expires, used, _) in &links {
        sqlx::query(
            "INSERT INTO links (token_hash, kind, end_user_id, expires_at, used_at) VALUES ($1, 'connect', $2, $3, $4)",
        )
        .bind(keyhaven::crypto::token_hash(name))
        .bind(user)
        .bind(expires)
        .bind(used)
        .execute(app.pool())
        .await
        .unwrap();
    }
    sqlx::query("DELETE FROM connection_events")
        .execute(app.pool())
        .await
        .unwrap();
    for (kind, age) in [("connected", 181), ("refreshed", 179)] {
        sqlx::query(
            "INSERT INTO connection_events (connection_id, kind, actor, at) VALUES ($1, $2, 'keyhaven', $3)",
        )
        .bind(id)
        .bind(kind)
        .bind(now - time::Duration::days(age))
        .execute(app.pool())
        .await
        .unwrap();
    }
    let swept = keyhaven::housekeeping::sweep(&app.state).await.unwrap();
    assert_eq!((swept.links, swept.events), (2, 1));
    let kept: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM links")
        .fetch_all(app.pool())
        .await
        .unwrap();
    for (name, _, _, keep) in &links {
        assert_eq!(
            kept.contains(&keyhaven::crypto::token_hash(name)),
            *keep,
            "{name}"
        );
    }
    assert_eq!(app.events_of(id).await, vec!["refreshed"]);
}

#[tokio::test]
async fn a_callback_without_iss_is_refused_when_an_issuer_is_configured() {
    let app = spawn_app().await;
    let browser = app.user_browser("iss-1").await;
    let authorize = app.start(&browser, "acme").await;
    let callback = app.approve(&authorize).await;
    let mut url = url::Url::parse(&callback).unwrap();
    assert!(query_param(&callback, "iss").is_some());
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != "iss")
        .collect();
    url.query_pairs_mut().clear().extend_pairs(&kept);
    let r = browser.get(url.as_str()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("unexpected issuer"));
    assert_eq!(app.token_calls("oauth2"), 0);
    assert_eq!(app.connection_count().await, 0);
}

#[tokio::test]
async fn hsts_only_over_https_and_forms_only_to_configured_providers() {
    let app = spawn_app().await;
    let r = reqwest::get(format!("{}/healthz", app.url)).await.unwrap();
    assert!(r.headers().get("strict-transport-security").is_none());
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let form_action = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("form-action"))
        .expect("a form-action directive");
    assert!(form_action.contains("'self'"), "{form_action}");
    assert!(form_action.contains(&app.sandbox_url), "{form_action}");

    let app = spawn_app_with(Options {
        tweak: |s| s.server.public_url = "https://connect.example.com".parse().unwrap(),
        ..Options::default()
    })
    .await;
    let r = reqwest::get(format!("{}/healthz", app.url)).await.unwrap();
    assert_eq!(
        r.headers()["strict-transport-security"].to_str().unwrap(),
        "max-age=31536000"
    );

    // Production defaults: every Zoho data center and Bullhorn's domain.
    let mut raw = raw_settings_with_key();
    for id in ["zoho", "bullhorn"] {
        raw.providers.insert(
            id.into(),
            keyhaven::config::ProviderSettings {
                client_id: Some("id".into()),
                client_secret: Some("secret".into()),
                ..Default::default()
            },
        );
    }
    let settings = raw.validate().unwrap();
    let headers = keyhaven::web::security_headers(&settings);
    let csp = headers
        .iter()
        .find(|(n, _)| n.as_str() == "content-security-policy")
        .unwrap()
        .1
        .to_str()
        .unwrap();
    for origin in [
        "https://accounts.zoho.eu",
        "https://accounts.zohocloud.ca",
        "https://*.bullhornstaffing.com",
    ] {
        assert!(csp.contains(origin), "{origin} in {csp}");
    }
}

#[tokio::test]
async fn api_user_sign_ins_are_limited_and_unknown_users_look_like_wrong_passwords() {
    let app = spawn_app_with(Options {
        bullhorn_api_user: true,
        ..Options::default()
    })
    .await;
    app.sandbox
        .add_bullhorn_user("api.limit", "the-right-password-123456", "east")
        .unwrap();
    let attempt = |browser: reqwest::Client, username: &'static str, password: &'static str| {
        let app_url = app.url.clone();
        async move {
            let page = page_text(&browser, format!("{app_url}/connect")).await;
            let csrf = field_value(&page, "csrf").unwrap();
            let r = browser
                .post(format!("{app_url}/connect/bullhorn"))
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("username", username),
                    ("password", password),
                ])
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let curious = app.user_browser("bh-unknown").await;
    let (status, unknown) = attempt(curious, "nobody.here", "whatever-password").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let browser = app.user_browser("bh-limit").await;
    let (status, wrong) = attempt(browser.clone(), "api.limit", "not-the-password").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown, wrong, "the same answer for both");
    for _ in 0..4 {
        assert_eq!(
            attempt(browser.clone(), "api.limit", "not-the-password")
                .await
                .0,
            StatusCode::BAD_REQUEST
        );
    }
    // Five failures for this end user and username: the right password waits too.
    let (status, page) = attempt(browser.clone(), "api.limit", "the-right-password-123456").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
    assert_eq!(app.connection_count().await, 0);
    let logins_before = app.sandbox.counter("bullhorn.login_info");
    assert_eq!(
        attempt(browser.clone(), "another.name", "x").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        app.sandbox.counter("bullhorn.login_info"),
        logins_before,
        "a refused attempt reaches no provider"
    );

    // Per username too: another end user trying the same username is limited.
    let stranger = app.user_browser("bh-stranger").await;
    let csrf = app.csrf(&stranger).await;
    let r = stranger
        .post(format!("{}/connect/bullhorn", app.url))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "API.Limit"),
            ("password", "the-right-password-123456"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Once the window has passed, the right password works.
    app.clock.advance(time::Duration::minutes(16));
    let r = stranger
        .post(format!("{}/connect/bullhorn", app.url))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "api.limit"),
            ("password", "the-right-password-123456"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[test]
fn absurd_settings_are_refused_with_their_name() {
    type Apply = fn(&mut keyhaven::config::RawSettings);
    let cases: [(&str, Apply); 5] = [
        ("server.session_hours", |raw| raw.server.session_hours = -1),
        ("server.session_hours", |raw| {
            raw.server.session_hours = 100_000
        }),
        ("links.reconnect_link_days", |raw| {
            raw.links.reconnect_link_days = 0
        }),
        ("housekeeping.event_retention_days", |raw| {
            raw.housekeeping.event_retention_days = -5
        }),
        ("database.max_connections", |raw| {
            raw.database.max_connections = 0
        }),
    ];
    for (setting, apply) in cases {
        let mut raw = raw_settings_with_key();
        apply(&mut raw);
        let err = raw.validate().unwrap_err().to_string();
        assert!(err.contains(setting), "{setting}: {err}");
    }
}

#[test]
fn secrets_never_show_in_debug_output() {
    let params = keyhaven::oauth::callback_params::CallbackParams::parse(Some(
        "code=sentinel-code-1&state=sentinel-state-2",
    ))
    .unwrap();
    let shown = format!("{params:?}");
    assert!(!shown.contains("sentinel"), "{shown}");
    assert!(shown.contains("code") && shown.contains("state"));
}
