//! Webhooks through real HTTP receivers on port 0: signatures checked by the
//! `standardwebhooks` crate, retries with their spacing, timeouts, redirects, the outbox
//! across a restart, two instances, a rolled-back change, and the address guard.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode as AxStatus};
use axum::response::{IntoResponse, Response};
use keyhaven::model::{Actor, FailureCode};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use tokio::sync::watch;

use crate::helpers::{Options, TestApp, spawn_app_with};

/// How a receiver answers one request.
#[derive(Clone)]
enum Reply {
    Status(u16),
    RetryAfter(u16, &'static str),
    Redirect(String),
    /// Never answers.
    Hang,
}

struct Hit {
    at: Instant,
    headers: HeaderMap,
    body: Vec<u8>,
}

struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    count: watch::Receiver<usize>,
}

impl Receiver {
    /// Answers the n-th request with `script[n]`, later ones with the last entry.
    async fn start(script: Vec<Reply>) -> Receiver {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (tx, count) = watch::channel(0usize);
        let tx = Arc::new(tx);
        let (h, s) = (hits.clone(), Arc::new(script));
        let handler = move |headers: HeaderMap, body: axum::body::Bytes| {
            let (hits, script, tx) = (h.clone(), s.clone(), tx.clone());
            async move {
                let n = {
                    let mut hits = hits.lock().unwrap();
                    hits.push(Hit {
                        at: Instant::now(),
                        headers,
                        body: body.to_vec(),
                    });
                    hits.len() - 1
                };
                tx.send_replace(n + 1);
                let reply = script
                    .get(n)
                    .or(script.last())
                    .cloned()
                    .unwrap_or(Reply::Status(204));
                let response: Response = match reply {
                    Reply::Status(code) => AxStatus::from_u16(code).unwrap().into_response(),
                    Reply::RetryAfter(code, after) => {
                        (AxStatus::from_u16(code).unwrap(), [("retry-after", after)])
                            .into_response()
                    }
                    Reply::Redirect(to) => (AxStatus::FOUND, [("location", to)]).into_response(),
                    Reply::Hang => std::future::pending().await,
                };
                response
            }
        };
        let app = axum::Router::new().route("/hook", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, hits, count }
    }

    async fn wait_for(&self, n: usize) {
        let mut count = self.count.clone();
        tokio::time::timeout(Duration::from_secs(60), count.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("receiver did not get {n} requests"))
            .unwrap();
    }

    fn len(&self) -> usize {
        self.hits.lock().unwrap().len()
    }

    fn json(&self, i: usize) -> serde_json::Value {
        serde_json::from_slice(&self.hits.lock().unwrap()[i].body).unwrap()
    }

    fn header(&self, i: usize, name: &str) -> String {
        self.hits.lock().unwrap()[i].headers[name]
            .to_str()
            .unwrap()
            .to_string()
    }
}

fn insecure(s: &mut keyhaven::config::Settings) {
    s.webhooks.allow_insecure_urls = true;
    s.webhooks.retry_base_ms = 50;
    s.webhooks.timeout_ms = 1_000;
}

async fn app_for_receivers() -> TestApp {
    spawn_app_with(Options {
        tweak: insecure,
        ..Options::default()
    })
    .await
}

async fn add_endpoint(app: &TestApp, url: &str) -> String {
    let (_, secret) = keyhaven::webhooks::add_endpoint(&app.state, url, None)
        .await
        .unwrap();
    secret.expose_secret().to_string()
}

/// (status, attempts, last code, last error) of the only delivery of `event_type`.
async fn delivery(app: &TestApp, event_type: &str) -> (String, i32, Option<i32>, Option<String>) {
    sqlx::query_as(
        "SELECT d.status, d.attempts, d.last_status_code, d.last_error FROM webhook_deliveries d
         JOIN webhook_events e ON e.id = d.event_id WHERE e.type = $1",
    )
    .bind(event_type)
    .fetch_one(app.pool())
    .await
    .unwrap()
}

async fn wait_attempts(app: &TestApp, n: u64) {
    let mut attempts = app.state.webhooks.attempts();
    tokio::time::timeout(Duration::from_secs(60), attempts.wait_for(|a| *a >= n))
        .await
        .expect("delivery attempts")
        .unwrap();
}

#[tokio::test]
async fn signatures_verify_with_the_standard_webhooks_library() {
    let app = app_for_receivers().await;
    let receiver = Receiver::start(vec![Reply::Status(204)]).await;
    let secret = add_endpoint(&app, &receiver.url).await;
    assert!(secret.starts_with("whsec_"));
    let (_, id) = app.connected("hook-1", "smartrecruiters").await;
    receiver.wait_for(1).await;

    let hit_body = receiver.hits.lock().unwrap()[0].body.clone();
    let headers = receiver.hits.lock().unwrap()[0].headers.clone();
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    verifier
        .verify(&hit_body, &headers)
        .expect("signature verifies");
    let mut tampered = hit_body.clone();
    tampered[0] = b' ';
    assert!(verifier.verify(&tampered, &headers).is_err());

    let body = receiver.json(0);
    assert_eq!(body["type"], "connection.created");
    assert!(body["timestamp"].as_str().unwrap().contains('T'));
    let data = &body["data"];
    assert_eq!(data["connection_id"], id.to_string());
    assert_eq!(data["end_user"]["external_id"], "hook-1");
    assert_eq!(data["provider"], "smartrecruiters");
    assert_eq!(data["status"], "active");
    assert!(data["reason"].is_null());
    assert!(data.get("reconnect_url").is_none());
    assert!(receiver.header(0, "webhook-id").starts_with("msg_"));

    // A rotation: the new secret is returned, both sign for the overlap.
    let new = keyhaven::webhooks::rotate_secret(&app.state, endpoint_id(&app).await)
        .await
        .unwrap();
    let key = app.api_key().await;
    let r = reqwest::Client::new()
        .delete(format!("{}/api/v1/connections/{id}", app.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    receiver.wait_for(2).await;
    let body = receiver.json(1);
    assert_eq!(body["type"], "connection.disconnected");
    assert_eq!(body["data"]["status"], "revoked");
    let signatures = receiver.header(1, "webhook-signature");
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    let (hit_body, headers) = {
        let hits = receiver.hits.lock().unwrap();
        (hits[1].body.clone(), hits[1].headers.clone())
    };
    for s in [secret.as_str(), new.expose_secret()] {
        standardwebhooks::Webhook::new(s)
            .unwrap()
            .verify(&hit_body, &headers)
            .expect("each secret verifies during the overlap");
    }
    // Never a token in a body.
    let text = String::from_utf8(hit_body).unwrap();
    assert!(!text.contains("token"), "{text}");
}

async fn endpoint_id(app: &TestApp) -> uuid::Uuid {
    sqlx::query_scalar("SELECT id FROM webhook_endpoints")
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_500_then_a_429_with_retry_after_then_a_204() {
    let app = app_for_receivers().await;
    let receiver = Receiver::start(vec![
        Reply::Status(500),
        Reply::RetryAfter(429, "1"),
        Reply::Status(204),
    ])
    .await;
    // Every retry the worker schedules, as the delay it asked the database for.
    sqlx::raw_sql(
        "CREATE TABLE tests_scheduled (id bigserial PRIMARY KEY, delay_ms float8 NOT NULL);
         CREATE FUNCTION tests_scheduled() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           INSERT INTO tests_scheduled (delay_ms)
             VALUES (extract(epoch FROM NEW.next_attempt_at - now()) * 1000);
           RETURN NEW;
         END $$;
         CREATE TRIGGER tests_scheduled AFTER UPDATE OF next_attempt_at ON webhook_deliveries
           FOR EACH ROW EXECUTE FUNCTION tests_scheduled();",
    )
    .execute(app.pool())
    .await
    .unwrap();
    add_endpoint(&app, &receiver.url).await;
    app.connected("hook-2", "smartrecruiters").await;
    receiver.wait_for(3).await;
    wait_attempts(&app, 3).await;
    let scheduled: Vec<f64> =
        sqlx::query_scalar("SELECT delay_ms FROM tests_scheduled ORDER BY id")
            .fetch_all(app.pool())
            .await
            .unwrap();
    // Backoff from 50 ms with jitter (at least half), then the receiver's Retry-After.
    assert_eq!(scheduled.len(), 2, "{scheduled:?}");
    assert!((25.0..=50.0).contains(&scheduled[0]), "{scheduled:?}");
    assert_eq!(scheduled[1], 1_000.0, "{scheduled:?}");
    let (status, attempts, code, error) = delivery(&app, "connection.created").await;
    assert_eq!(
        (status.as_str(), attempts, code, error),
        ("delivered", 3, Some(204), None)
    );
    let hits = receiver.hits.lock().unwrap();
    let first_gap = hits[1].at - hits[0].at;
    let second_gap = hits[2].at - hits[1].at;
    // …and the receiver saw no retry before its time.
    assert!(first_gap >= Duration::from_millis(25), "{first_gap:?}");
    assert!(second_gap >= Duration::from_secs(1), "{second_gap:?}");
    // The same message each time, signed anew.
    let ids: Vec<_> = hits
        .iter()
        .map(|h| h.headers["webhook-id"].clone())
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]));
    assert_eq!(hits.len(), 3);
}

#[tokio::test]
async fn a_receiver_that_hangs_times_out_and_is_retried() {
    let app = app_for_receivers().await;
    let receiver = Receiver::start(vec![Reply::Hang, Reply::Status(200)]).await;
    add_endpoint(&app, &receiver.url).await;
    app.connected("hook-3", "smartrecruiters").await;
    receiver.wait_for(2).await;
    wait_attempts(&app, 2).await;
    let (status, attempts, code, _) = delivery(&app, "connection.created").await;
    assert_eq!(
        (status.as_str(), attempts, code),
        ("delivered", 2, Some(200))
    );
    let hits = receiver.hits.lock().unwrap();
    // The first attempt waited for its timeout (1 s here) before the retry.
    assert!(hits[1].at - hits[0].at >= Duration::from_millis(1_000));
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let app = app_for_receivers().await;
    let elsewhere = Receiver::start(vec![Reply::Status(204)]).await;
    let receiver = Receiver::start(vec![Reply::Redirect(elsewhere.url.clone())]).await;
    add_endpoint(&app, &receiver.url).await;
    app.connected("hook-4", "smartrecruiters").await;
    wait_attempts(&app, 1).await;
    let (status, attempts, code, error) = delivery(&app, "connection.created").await;
    assert_eq!(
        (status.as_str(), attempts, code, error.as_deref()),
        ("failed", 1, Some(302), Some("redirect_not_followed"))
    );
    assert_eq!(receiver.len(), 1);
    assert_eq!(elsewhere.len(), 0);
}

#[tokio::test]
async fn a_delivery_survives_a_restart_between_the_change_and_the_delivery() {
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let app = spawn_app_with(Options {
        tweak: insecure,
        shutdown: Some(stopped),
        ..Options::default()
    })
    .await;
    let receiver = Receiver::start(vec![Reply::Status(204)]).await;
    add_endpoint(&app, &receiver.url).await;
    let (_, id) = app.connected("hook-5", "smartrecruiters").await;
    receiver.wait_for(1).await;
    // The first process stops; the change is committed while nothing delivers.
    stop.send(()).unwrap();
    let run = app.run.lock().unwrap().take().unwrap();
    run.await.unwrap().unwrap();
    keyhaven::lifecycle::disconnect::disconnect(&app.state, id, &Actor::Api)
        .await
        .unwrap();
    let (status, attempts, _, _) = delivery(&app, "connection.disconnected").await;
    assert_eq!((status.as_str(), attempts), ("pending", 0));
    assert_eq!(receiver.len(), 1);
    // A new process on the same database delivers it.
    app.second_instance_with(insecure).await;
    receiver.wait_for(2).await;
    assert_eq!(receiver.json(1)["type"], "connection.disconnected");
    assert_eq!(receiver.json(1)["data"]["connection_id"], id.to_string());
}

#[tokio::test]
async fn two_instances_deliver_each_event_exactly_once() {
    const EVENTS: usize = 60;
    let app = app_for_receivers().await;
    app.second_instance_with(insecure).await;
    let receiver = Receiver::start(vec![Reply::Status(200)]).await;
    add_endpoint(&app, &receiver.url).await;
    let (_, id) = app.connected("hook-6", "smartrecruiters").await;
    let mut conn = app.pool().acquire().await.unwrap();
    for _ in 1..EVENTS {
        keyhaven::db::webhooks::enqueue(
            &mut conn,
            "connection.reconnected",
            id,
            None,
            time::OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    }
    receiver.wait_for(EVENTS).await;
    // Every attempt is claimed before it is sent: one claim per delivery so far.
    let (rows, most_attempts): (i64, i32) =
        sqlx::query_as("SELECT count(*), max(attempts) FROM webhook_deliveries")
            .fetch_one(app.pool())
            .await
            .unwrap();
    let hits = receiver.hits.lock().unwrap();
    let mut ids: Vec<String> = hits
        .iter()
        .map(|h| h.headers["webhook-id"].to_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), EVENTS, "every event arrived");
    assert_eq!(hits.len(), EVENTS, "none arrived twice");
    assert_eq!((rows, most_attempts), (EVENTS as i64, 1));
}

#[tokio::test]
async fn a_change_that_rolls_back_leaves_no_event() {
    let app = app_for_receivers().await;
    let receiver = Receiver::start(vec![Reply::Status(204)]).await;
    add_endpoint(&app, &receiver.url).await;
    let (_, id) = app.connected("hook-7", "smartrecruiters").await;
    receiver.wait_for(1).await;
    let version: i64 = sqlx::query_scalar("SELECT version FROM connections WHERE id = $1")
        .bind(id)
        .fetch_one(app.pool())
        .await
        .unwrap();
    let mut tx = app.pool().begin().await.unwrap();
    let marked = keyhaven::db::refresh::mark_needs_reconnect(
        &mut tx,
        id,
        version,
        FailureCode::InvalidGrant,
        "refresh refused (invalid_grant: test)",
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert!(marked);
    let inside: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_events WHERE type = 'connection.needs_reconnect'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(inside, 1, "the event is written with the change");
    tx.rollback().await.unwrap();
    let after: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_events WHERE type = 'connection.needs_reconnect'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(after, 0);
    assert_eq!(app.status_of(id).await, "active");
    // The next change that commits is the next thing the receiver hears about.
    keyhaven::lifecycle::disconnect::disconnect(&app.state, id, &Actor::Api)
        .await
        .unwrap();
    receiver.wait_for(2).await;
    assert_eq!(receiver.json(1)["type"], "connection.disconnected");
    assert_eq!(receiver.len(), 2);
}

#[tokio::test]
async fn needs_reconnect_carries_a_reconnect_url_made_at_delivery() {
    let app = app_for_receivers().await;
    let receiver = Receiver::start(vec![Reply::Status(204)]).await;
    add_endpoint(&app, &receiver.url).await;
    let (_, id) = app.connected("hook-8", "smartrecruiters").await;
    receiver.wait_for(1).await;
    let version: i64 = sqlx::query_scalar("SELECT version FROM connections WHERE id = $1")
        .bind(id)
        .fetch_one(app.pool())
        .await
        .unwrap();
    let mut conn = app.pool().acquire().await.unwrap();
    keyhaven::db::refresh::mark_needs_reconnect(
        &mut conn,
        id,
        version,
        FailureCode::InvalidGrant,
        "refresh refused (invalid_grant: test)",
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    receiver.wait_for(2).await;
    let body = receiver.json(1);
    assert_eq!(body["type"], "connection.needs_reconnect");
    assert_eq!(body["data"]["reason"], "invalid_grant");
    assert_eq!(body["data"]["status"], "needs_reconnect");
    let url = body["data"]["reconnect_url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/c/", app.url)), "{url}");
    // The outbox keeps no link.
    let stored: String = sqlx::query_scalar(
        "SELECT data::text FROM webhook_events WHERE type = 'connection.needs_reconnect'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert!(!stored.contains("/c/"), "{stored}");
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let app = spawn_app_with(Options::default()).await;
    for (url, expected) in [
        ("http://hooks.example.com/x", "https"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://10.1.2.3/x", "loopback"),
        ("https://169.254.169.254/latest", "loopback"),
        ("https://[::ffff:127.0.0.1]/x", "loopback"),
        ("https://[fd00::1]/x", "loopback"),
        ("https://localhost/x", "loopback"),
    ] {
        let e = keyhaven::webhooks::add_endpoint(&app.state, url, None)
            .await
            .expect_err(url);
        assert!(e.to_string().contains(expected), "{url}: {e}");
    }
    // A name that resolves to loopback when a delivery connects: refused at connect time,
    // nothing reaches the listener.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let seen = accepted.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let id = uuid::Uuid::new_v4();
    let sealed = app
        .state
        .settings
        .keys
        .seal(
            b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            keyhaven::webhooks::sealed_at(&id, "secret_sealed"),
        )
        .unwrap();
    let mut conn = app.pool().acquire().await.unwrap();
    keyhaven::db::webhooks::create_endpoint(
        &mut conn,
        id,
        &format!("https://localhost:{port}/hook"),
        None,
        &sealed,
    )
    .await
    .unwrap();
    app.connected("hook-9", "smartrecruiters").await;
    wait_attempts(&app, 1).await;
    let (status, attempts, code, error) = delivery(&app, "connection.created").await;
    assert_eq!(
        (status.as_str(), attempts, code, error.as_deref()),
        ("pending", 1, None, Some("address_refused"))
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_console_lists_deliveries_and_redelivers_one() {
    let app = app_for_receivers().await;
    let receiver = Receiver::start(vec![Reply::Status(204)]).await;
    add_endpoint(&app, &receiver.url).await;
    app.connected("hook-10", "smartrecruiters").await;
    receiver.wait_for(1).await;
    wait_attempts(&app, 1).await;
    let admin = app.admin_browser().await;
    let page = app.admin_page(&admin, "/admin/webhooks").await;
    assert!(page.contains(&receiver.url));
    assert!(page.contains("connection.created"));
    assert!(page.contains("data-status=\"delivered\""));
    let delivery_id: i64 = sqlx::query_scalar("SELECT id FROM webhook_deliveries")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let path = format!("/admin/webhooks/deliveries/{delivery_id}/redeliver");
    // Without the form token: refused.
    let r = admin
        .post(format!("{}{path}", app.url))
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app.admin_post(&admin, &path).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    receiver.wait_for(2).await;
    assert_eq!(
        receiver.header(0, "webhook-id"),
        receiver.header(1, "webhook-id")
    );
}

#[tokio::test]
async fn the_cli_adds_lists_rotates_and_removes_endpoints() {
    let app = app_for_receivers().await;
    let run = |args: Vec<String>| {
        let (db, keys) = (app.database_url.clone(), app.keys.clone());
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyhaven"))
                .args(&args)
                .env("DATABASE_URL", db)
                .env("KEYHAVEN_ENCRYPTION_KEYS", keys)
                .env("KEYHAVEN_WEBHOOKS__ALLOW_INSECURE_URLS", "true")
                .env_remove("KEYHAVEN_CONFIG")
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }
    };
    let out = run(vec![
        "webhook".into(),
        "add".into(),
        "--url".into(),
        "http://127.0.0.1:9/hook".into(),
        "--events".into(),
        "connection.created,connection.needs_reconnect".into(),
    ])
    .await;
    let secret = out.lines().last().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{out}");
    let list = run(vec!["webhook".into(), "list".into()]).await;
    let line = list.lines().next().unwrap().to_string();
    let id = line.split('\t').next().unwrap().to_string();
    assert!(
        line.contains("connection.created,connection.needs_reconnect"),
        "{line}"
    );
    let rotated = run(vec!["webhook".into(), "rotate-secret".into(), id.clone()]).await;
    let new = rotated.lines().last().unwrap();
    assert!(new.starts_with("whsec_") && new != secret);
    run(vec!["webhook".into(), "remove".into(), id]).await;
    assert_eq!(run(vec!["webhook".into(), "list".into()]).await, "");
}

#[tokio::test]
async fn degraded_fires_on_the_edge_and_recovered_on_the_way_back() {
    use keyhaven_sandbox::{Fault, FaultEffect, FaultTarget};
    let app = app_for_receivers().await;
    let receiver = Receiver::start(vec![Reply::Status(204)]).await;
    add_endpoint(&app, &receiver.url).await;
    let key = app.api_key().await;
    let (_, id) = app.connected("hook-11", "smartrecruiters").await;
    receiver.wait_for(1).await;
    // Two failing refreshes: one `degraded` event (the edge), not two.
    app.sandbox.add_fault(Fault {
        provider: "smartrecruiters".into(),
        target: FaultTarget::Refresh,
        effect: FaultEffect::Status { status: 502 },
        times: 2,
    });
    app.clock.advance(time::Duration::seconds(1799 - 30));
    for _ in 0..2 {
        app.credentials(&app.url, &key, id, false).await;
        sqlx::query("UPDATE connections SET next_refresh_at = now() WHERE status = 'degraded'")
            .execute(app.pool())
            .await
            .unwrap();
    }
    assert_eq!(app.status_of(id).await, "degraded");
    assert_eq!(
        app.sandbox.counter("smartrecruiters.token.refresh_token"),
        2
    );
    // Then it works again.
    let r = app.credentials(&app.url, &key, id, true).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.status_of(id).await, "active");
    receiver.wait_for(3).await;
    let types: Vec<String> =
        sqlx::query_scalar("SELECT type FROM webhook_events ORDER BY created_at")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(
        types,
        [
            "connection.created",
            "connection.degraded",
            "connection.recovered"
        ]
    );
    let degraded = (0..3)
        .map(|i| receiver.json(i))
        .find(|b| b["type"] == "connection.degraded")
        .unwrap();
    assert_eq!(degraded["data"]["reason"], "provider_unavailable");
    assert_eq!(degraded["data"]["status"], "degraded");
}
