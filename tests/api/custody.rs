//! Work that reached a provider is never lost: callers that go away, shutdown, clocks
//! that disagree, providers that keep failing or answer with absurd numbers.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use keyhaven_sandbox::{Fault, FaultEffect, FaultTarget};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// The sandbox rotates the refresh token at once and answers 1.5 s later: inside
/// Keyhaven's client timeout, outside an impatient caller's.
fn rotate_then_answer_late(target: FaultTarget) -> Fault {
    Fault::once(
        "smartrecruiters",
        target,
        FaultEffect::DropResponse { hang_ms: 1_500 },
    )
}

async fn access_token(app: &TestApp, key: &str, id: uuid::Uuid) -> String {
    let r = app.credentials(&app.url, key, id, false).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn assert_one_clean_refresh(app: &TestApp, key: &str, id: uuid::Uuid, before: &str) {
    app.state.custody.settled().await;
    let after = access_token(app, key, id).await;
    assert_ne!(after, before, "the rotated grant was stored and is served");
    assert_eq!(
        app.sandbox.counter("smartrecruiters.token.refresh_token"),
        1
    );
    assert_eq!(app.sandbox.dead_refresh_token_uses(), 0);
    assert_eq!(app.status_of(id).await, "active");
    assert!(app.events_of(id).await.contains(&"refreshed".to_string()));
    // And the next refresh presents the stored, rotated refresh token.
    let r = app.credentials(&app.url, key, id, true).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.sandbox.counter("smartrecruiters.refreshed"), 2);
    assert_eq!(app.sandbox.dead_refresh_token_uses(), 0);
}

#[tokio::test]
async fn a_credential_caller_that_gives_up_during_a_slow_rotating_refresh_loses_nothing() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("gone-1", "smartrecruiters").await;
    let before = access_token(&app, &key, id).await;
    app.sandbox
        .add_fault(rotate_then_answer_late(FaultTarget::Refresh));
    let url = format!(
        "{}/api/v1/connections/{id}/credentials?force_refresh=true",
        app.url
    );
    let impatient = {
        let key = key.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
        })
    };
    // The provider has rotated the grant; the caller goes away before the answer.
    app.sandbox.wait_for("smartrecruiters.refreshed", 1).await;
    impatient.abort();
    assert!(impatient.await.unwrap_err().is_cancelled());
    assert_one_clean_refresh(&app, &key, id, &before).await;
}

#[tokio::test]
async fn an_admin_who_leaves_during_refresh_now_loses_nothing() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("gone-2", "smartrecruiters").await;
    let before = access_token(&app, &key, id).await;
    let admin = app.admin_browser().await;
    let page = app
        .admin_page(&admin, &format!("/admin/connections/{id}"))
        .await;
    let csrf = field_value(&page, "csrf").unwrap();
    app.sandbox
        .add_fault(rotate_then_answer_late(FaultTarget::Refresh));
    let url = format!("{}/admin/connections/{id}/refresh", app.url);
    let leaving = tokio::spawn(async move { admin.post(url).form(&[("csrf", csrf)]).send().await });
    app.sandbox.wait_for("smartrecruiters.refreshed", 1).await;
    leaving.abort();
    assert!(leaving.await.unwrap_err().is_cancelled());
    assert_one_clean_refresh(&app, &key, id, &before).await;
}

#[tokio::test]
async fn a_browser_closed_during_a_slow_code_exchange_still_ends_connected() {
    let app = spawn_app().await;
    let browser = app.user_browser("gone-3").await;
    let authorize = app.start(&browser, "smartrecruiters").await;
    let callback = app.approve(&authorize).await;
    app.sandbox
        .add_fault(rotate_then_answer_late(FaultTarget::Exchange));
    let closing = {
        let browser = browser.clone();
        tokio::spawn(async move { browser.get(callback).send().await })
    };
    // The code is spent at the provider; the browser goes away before the answer.
    app.sandbox.wait_for("smartrecruiters.exchanged", 1).await;
    closing.abort();
    assert!(closing.await.unwrap_err().is_cancelled());
    app.state.custody.settled().await;
    assert_eq!(app.connection_count().await, 1);
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM connections")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(app.status_of(id).await, "active");
    assert_eq!(app.token_calls("smartrecruiters"), 1);
    // The user comes back to the connect page: connected.
    let page = app.connect_page(&browser).await;
    assert!(page.contains("Connected as"), "{page}");
    let key = app.api_key().await;
    access_token(&app, &key, id).await;
}

#[tokio::test]
async fn a_grant_whose_post_step_fails_is_revoked_at_the_provider() {
    let app = spawn_app().await;
    let browser = app.user_browser("post-step").await;
    app.sandbox.add_fault(Fault::once(
        "oauth2",
        FaultTarget::Userinfo,
        FaultEffect::Status { status: 500 },
    ));
    let r = app.connect(&browser, "acme").await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(app.connection_count().await, 0);
    assert_eq!(app.sandbox.counter("oauth2.exchanged"), 1);
    assert_eq!(
        app.sandbox.counter("oauth2.revoke"),
        1,
        "the unused grant is ended"
    );
}

#[tokio::test]
async fn invalid_client_on_200_due_connections_raises_one_alarm_and_backs_off() {
    let app = Arc::new(spawn_app().await);
    let key = app.api_key().await;
    let mut flows = tokio::task::JoinSet::new();
    let mut ids = Vec::new();
    for batch in 0..25 {
        for i in 0..8 {
            let app = app.clone();
            flows.spawn(async move {
                app.connected(&format!("due-{batch}-{i}"), "smartrecruiters")
                    .await
                    .1
            });
        }
        while let Some(id) = flows.join_next().await {
            ids.push(id.unwrap());
        }
    }
    assert_eq!(ids.len(), 200);
    // All due for their keep-alive refresh; the provider no longer knows our secret.
    app.clock
        .advance(time::Duration::days(26) + time::Duration::hours(1));
    let redirect = app.state.settings.redirect_uri("smartrecruiters");
    app.sandbox.register_client(
        "smartrecruiters",
        "keyhaven-demo",
        "rotated-at-provider",
        vec![redirect],
    );
    keyhaven::lifecycle::refresher::drain(&app.state)
        .await
        .unwrap();
    let calls = app.sandbox.counter("smartrecruiters.token.refresh_token");
    let concurrency = app.state.settings.refresher.concurrency as u64;
    assert!(
        (1..=concurrency).contains(&calls),
        "only refreshes already under way reached the provider: {calls}"
    );
    let alarms: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, count FROM provider_alarms WHERE provider = 'smartrecruiters'",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(alarms, vec![("invalid_client".to_string(), calls as i64)]);
    let broken: i64 =
        sqlx::query_scalar("SELECT count(*) FROM connections WHERE status <> 'active'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(broken, 0, "user connections are not marked broken");
    // The refresher does not claim them again, nor does a forced refresh call out.
    assert_eq!(
        keyhaven::lifecycle::refresher::drain(&app.state)
            .await
            .unwrap(),
        0
    );
    let r = app.credentials(&app.url, &key, ids[0], true).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "provider_misconfigured"
    );
    assert_eq!(
        app.sandbox.counter("smartrecruiters.token.refresh_token"),
        calls
    );
    // The operator corrects the secret: the backoff is over at once for it.
    let fixed = app
        .second_instance_with(|settings| {
            for provider in &mut settings.providers {
                if provider.id == "smartrecruiters" {
                    provider.client_secret = "rotated-at-provider".to_string().into();
                }
            }
        })
        .await;
    let r = app.credentials(&fixed, &key, ids[0], true).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.sandbox.counter("smartrecruiters.token.refresh_token"),
        calls + 1
    );
}

#[tokio::test]
async fn overflowing_provider_numbers_are_clamped_without_a_panic() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    // Code exchange claiming an endless lifetime: stored, clamped to 400 days.
    app.sandbox.add_fault(Fault::once(
        "smartrecruiters",
        FaultTarget::Exchange,
        FaultEffect::HugeExpiry,
    ));
    let (_, id) = app.connected("huge", "smartrecruiters").await;
    let within: bool = sqlx::query_scalar(
        "SELECT access_expires_at BETWEEN now() + interval '399 days' AND now() + interval '401 days' FROM connections",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert!(within);
    // A refresh with the same, and a throttle asking to wait for ever.
    app.sandbox.add_fault(Fault::once(
        "smartrecruiters",
        FaultTarget::Refresh,
        FaultEffect::HugeExpiry,
    ));
    assert_eq!(
        app.credentials(&app.url, &key, id, true).await.status(),
        StatusCode::OK
    );
    app.sandbox.add_fault(Fault::once(
        "smartrecruiters",
        FaultTarget::Refresh,
        FaultEffect::TooManyRequests {
            retry_after_secs: u64::MAX,
        },
    ));
    // Still valid: served, and the backoff is a day at most.
    assert_eq!(
        app.credentials(&app.url, &key, id, true).await.status(),
        StatusCode::OK
    );
    let r = app.credentials(&app.url, &key, id, true).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let left: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(left <= 24 * 3600 && left > 23 * 3600, "{left}");
    // The background refresher meets the same numbers.
    let (_, other) = app.connected("huge-2", "smartrecruiters").await;
    app.clock
        .advance(time::Duration::days(26) + time::Duration::hours(1));
    app.sandbox.add_fault(Fault::once(
        "smartrecruiters",
        FaultTarget::Refresh,
        FaultEffect::HugeExpiry,
    ));
    keyhaven::lifecycle::refresher::drain(&app.state)
        .await
        .unwrap();
    assert_eq!(app.status_of(other).await, "active");
    assert_eq!(app.sandbox.counter("smartrecruiters.refreshed"), 2);
}

/// A `keyhaven serve` process from the built binary, configured through the
/// environment against the test's database and sandbox.
struct Serve {
    child: tokio::process::Child,
    url: String,
    log: PathBuf,
    /// Copies the process's log lines (stderr) into `log` until the process closes it.
    copier: Option<tokio::task::JoinHandle<()>>,
}

impl Serve {
    async fn start(app: &TestApp, clock_offset: Option<&str>, extra: &[(&str, &str)]) -> Serve {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("keyhaven-serve-{}.log", uuid::Uuid::new_v4()));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let sandbox = &app.sandbox_url;
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyhaven"));
        command
            .arg("serve")
            .env("RUST_LOG", "info")
            .env("KEYHAVEN_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("KEYHAVEN_SERVER__PUBLIC_URL", &url)
            .env("KEYHAVEN_SERVER__ALLOW_INSECURE_PROVIDER_HOSTS", "true")
            .env("DATABASE_URL", &app.database_url)
            .env("KEYHAVEN_ENCRYPTION_KEYS", &app.keys)
            .env(
                "KEYHAVEN_PROVIDERS__SMARTRECRUITERS__CLIENT_ID",
                "keyhaven-demo",
            )
            .env(
                "KEYHAVEN_PROVIDERS__SMARTRECRUITERS__CLIENT_SECRET",
                CLIENT_SECRET,
            )
            .env(
                "KEYHAVEN_PROVIDERS__SMARTRECRUITERS__AUTHORIZE_URL",
                format!("{sandbox}/smartrecruiters/identity/oauth/allow"),
            )
            .env(
                "KEYHAVEN_PROVIDERS__SMARTRECRUITERS__TOKEN_URL",
                format!("{sandbox}/smartrecruiters/identity/oauth/token"),
            )
            .env(
                "KEYHAVEN_PROVIDERS__SMARTRECRUITERS__API_URL",
                format!("{sandbox}/smartrecruiters"),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in extra {
            command.env(name, value);
        }
        if let Some(offset) = clock_offset {
            // Debian's libfaketime moves this process's wall clock only.
            command
                .env("LD_PRELOAD", faketime_library())
                .env("FAKETIME", offset)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        let mut child = command.spawn().unwrap();
        // Start-up ends with the "keyhaven listening" line, written once the port is bound.
        let (listening, bound) = tokio::sync::oneshot::channel();
        let copier = tokio::spawn(copy_log(child.stderr.take().unwrap(), out, listening));
        let serve = Serve {
            child,
            url,
            log,
            copier: Some(copier),
        };
        if tokio::time::timeout(std::time::Duration::from_secs(30), bound)
            .await
            .map_or(true, |said| said.is_err())
        {
            panic!("keyhaven serve did not start:\n{}", serve.output());
        }
        serve
    }

    fn terminate(&self) {
        let pid = self.child.id().expect("running") as i32;
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }

    /// Waits for the process to exit and for its last log lines to be copied.
    async fn exit(&mut self) -> ExitStatus {
        let status = tokio::time::timeout(std::time::Duration::from_secs(60), self.child.wait())
            .await
            .expect("exits within a minute")
            .unwrap();
        if let Some(copier) = self.copier.take() {
            copier.await.unwrap();
        }
        status
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Copies each line of `from` into `to`; says so on `listening` at the line that
/// reports the bound port.
async fn copy_log(
    from: tokio::process::ChildStderr,
    mut to: std::fs::File,
    listening: tokio::sync::oneshot::Sender<()>,
) {
    use std::io::Write;
    use tokio::io::AsyncBufReadExt;
    let mut listening = Some(listening);
    let mut lines = tokio::io::BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        writeln!(to, "{line}").unwrap();
        if line.contains("keyhaven listening")
            && let Some(tell) = listening.take()
        {
            let _ = tell.send(());
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn faketime_library() -> String {
    let found = std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists());
    found
        .expect("Debian's faketime package is installed (apt-get install faketime)")
        .display()
        .to_string()
}

#[tokio::test]
async fn serve_drains_a_slow_rotating_refresh_on_sigterm_then_exits_0() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("sigterm", "smartrecruiters").await;
    let (_, by_api) = app.connected("sigterm-api", "smartrecruiters").await;
    let before = access_token(&app, &key, id).await;
    let mut serve = Serve::start(&app, None, &[("KEYHAVEN_REFRESHER__INTERVAL_SECS", "1")]).await;
    // The background refresher takes one connection, a backend asks for the other; the
    // provider rotates both grants and answers late.
    app.sandbox.add_fault(Fault {
        times: 2,
        ..rotate_then_answer_late(FaultTarget::Refresh)
    });
    sqlx::query("UPDATE connections SET next_refresh_at = now() WHERE id = $1")
        .bind(id)
        .execute(app.pool())
        .await
        .unwrap();
    app.sandbox.wait_for("smartrecruiters.refreshed", 1).await;
    let caller = {
        let url = format!(
            "{}/api/v1/connections/{by_api}/credentials?force_refresh=true",
            serve.url
        );
        let key = key.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
        })
    };
    app.sandbox.wait_for("smartrecruiters.refreshed", 2).await;
    serve.terminate();
    let status = serve.exit().await;
    assert_eq!(status.code(), Some(0), "{}", serve.output());
    assert!(serve.output().contains("draining"), "{}", serve.output());
    // The backend was answered before the process left.
    assert_eq!(caller.await.unwrap().unwrap().status(), StatusCode::OK);
    let after = access_token(&app, &key, id).await;
    assert_ne!(after, before, "the background refresh was stored");
    // Started again: active, and the next refreshes present the new refresh tokens.
    let mut again = Serve::start(&app, None, &[]).await;
    for connection in [id, by_api] {
        assert_eq!(app.status_of(connection).await, "active");
        let r = app.credentials(&again.url, &key, connection, true).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(app.sandbox.counter("smartrecruiters.refreshed"), 4);
    assert_eq!(app.sandbox.dead_refresh_token_uses(), 0);
    assert_eq!(app.sandbox.max_refresh_token_uses(), 1);
    again.terminate();
    assert_eq!(again.exit().await.code(), Some(0));
}

#[tokio::test]
async fn serve_exits_75_naming_the_connection_when_the_drain_deadline_cuts_work_off() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("cut-off", "smartrecruiters").await;
    let mut serve =
        Serve::start(&app, None, &[("KEYHAVEN_SERVER__DRAIN_DEADLINE_SECS", "1")]).await;
    app.sandbox.add_fault(Fault::once(
        "smartrecruiters",
        FaultTarget::Refresh,
        FaultEffect::DropResponse { hang_ms: 8_000 },
    ));
    let url = format!(
        "{}/api/v1/connections/{id}/credentials?force_refresh=true",
        serve.url
    );
    let caller = tokio::spawn(async move {
        reqwest::Client::new()
            .get(url)
            .bearer_auth(key)
            .send()
            .await
    });
    app.sandbox.wait_for("smartrecruiters.refreshed", 1).await;
    serve.terminate();
    assert_eq!(serve.exit().await.code(), Some(75), "{}", serve.output());
    let output = serve.output();
    assert!(
        output.contains(&format!("refresh of connection {id}")) && output.contains("cut off"),
        "{output}"
    );
    caller.abort();
}

#[tokio::test]
async fn two_serve_processes_with_clocks_minutes_apart_refresh_exactly_once() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("skewed", "smartrecruiters").await;
    let early = Serve::start(&app, Some("-3m"), &[]).await;
    let late = Serve::start(&app, Some("+3m"), &[]).await;
    // Stale for both clocks.
    sqlx::query("UPDATE connections SET access_expires_at = now() - interval '10 minutes'")
        .execute(app.pool())
        .await
        .unwrap();
    app.sandbox.add_fault(Fault::once(
        "smartrecruiters",
        FaultTarget::Refresh,
        FaultEffect::Latency { ms: 300 },
    ));
    let mut calls = Vec::new();
    for i in 0..100 {
        let base = if i % 2 == 0 { &early.url } else { &late.url };
        calls.push(app.spawn_credentials(base, &key, id));
    }
    let mut tokens = Vec::new();
    for c in calls {
        let r = c.await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        tokens.push(
            r.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "every caller got the same credential");
    assert_eq!(
        app.sandbox.counter("smartrecruiters.token.refresh_token"),
        1,
        "exactly one refresh"
    );
    assert_eq!(app.sandbox.dead_refresh_token_uses(), 0);
    assert_eq!(app.sandbox.max_refreshes_in_flight(), 1);
}

#[tokio::test]
async fn bullhorn_post_steps_outlive_their_caller_and_extend_the_lease() {
    let app = spawn_app_with(Options {
        bullhorn_api_user: true,
        ..Options::default()
    })
    .await;
    let password = "api-user-password-0123456789";
    app.sandbox
        .add_bullhorn_user("api.user", password, "east")
        .unwrap();
    let browser = app.user_browser("bh-custody").await;
    let csrf = app.csrf(&browser).await;
    // The REST login is slow and the browser goes away meanwhile: still connected.
    app.sandbox.add_fault(Fault::once(
        "bullhorn",
        FaultTarget::RestLogin,
        FaultEffect::Latency { ms: 1_000 },
    ));
    let url = format!("{}/connect/bullhorn", app.url);
    let closing = {
        let browser = browser.clone();
        tokio::spawn(async move {
            browser
                .post(url)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("username", "api.user"),
                    ("password", password),
                    ("remember", "yes"),
                ])
                .send()
                .await
        })
    };
    app.sandbox.wait_for("bullhorn.rest_login", 1).await;
    closing.abort();
    assert!(closing.await.unwrap_err().is_cancelled());
    app.state.custody.settled().await;
    assert_eq!(app.connection_count().await, 1);
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM connections")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(app.status_of(id).await, "active");
    // A refresh whose token call is slow: before the REST login the lease runs for a
    // full term again (by the database's clock).
    app.sandbox.add_fault(Fault::once(
        "bullhorn",
        FaultTarget::Refresh,
        FaultEffect::Latency { ms: 1_500 },
    ));
    app.sandbox.add_fault(Fault::once(
        "bullhorn",
        FaultTarget::RestLogin,
        FaultEffect::Latency { ms: 1_000 },
    ));
    let key = app.api_key().await;
    let refreshing = {
        let url = format!(
            "{}/api/v1/connections/{id}/credentials?force_refresh=true",
            app.url
        );
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
        })
    };
    // The lease as claimed, read while the provider is still being asked.
    app.sandbox
        .wait_for("bullhorn.token.refresh_token", 1)
        .await;
    let claimed: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT lease_until FROM connections")
            .fetch_one(app.pool())
            .await
            .unwrap();
    let claimed = claimed.expect("leased during the refresh");
    app.sandbox.wait_for("bullhorn.rest_login", 2).await;
    let extended: time::OffsetDateTime = sqlx::query_scalar("SELECT lease_until FROM connections")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert!(
        extended >= claimed + time::Duration::milliseconds(1_400),
        "extended by the time the token call took: {claimed} → {extended}"
    );
    assert_eq!(refreshing.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(app.sandbox.dead_refresh_token_uses(), 0);
}

#[tokio::test]
async fn readyz_answers_503_from_the_start_of_the_drain() {
    use tower::ServiceExt;
    let app = spawn_app().await;
    let r = reqwest::get(format!("{}/readyz", app.url)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The listener closes as the drain starts, so ask the route itself.
    app.state.custody.begin_drain();
    let readyz = keyhaven::web::health::router().with_state(app.state.clone());
    let request = axum::http::Request::get("/readyz")
        .body(axum::body::Body::empty())
        .unwrap();
    let r = readyz.oneshot(request).await.unwrap();
    assert_eq!(r.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
}
