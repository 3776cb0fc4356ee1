use keyhaven_sandbox::{Fault, FaultEffect, FaultTarget};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

fn refresh_fault(provider: &str, effect: FaultEffect) -> Fault {
    Fault {
        provider: provider.into(),
        target: FaultTarget::Refresh,
        effect,
        times: 1,
    }
}

/// SmartRecruiters access tokens live 1799 s; this moves past the refresh margin.
fn expire(app: &TestApp) {
    app.clock.advance(time::Duration::seconds(1799 - 30));
}

/// Ends every connection's backoff (it runs on the database's clock).
async fn end_backoff(app: &TestApp) {
    sqlx::query("UPDATE connections SET next_refresh_at = now() WHERE status = 'degraded'")
        .execute(app.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_valid_credential_is_served_without_refreshing() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("cred-1", "smartrecruiters").await;
    let r = app.credentials(&app.url, &key, id, false).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["provider"], "smartrecruiters");
    assert_eq!(body["access_token"].as_str().unwrap().len(), 32);
    // The same through the end-user path.
    let by_user: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/end-users/cred-1/connections/smartrecruiters/credentials",
            app.url
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_user["access_token"], body["access_token"]);
    assert_eq!(
        app.sandbox.counter("smartrecruiters.token.refresh_token"),
        0
    );
    // Without a key, or for nothing, stable JSON errors.
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/connections/{id}/credentials", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .credentials(&app.url, &key, uuid::Uuid::new_v4(), false)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_found");
    let r = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/connections/not-a-uuid/credentials?force_refresh=maybe",
            app.url
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_expiring_credential_is_refreshed_once_and_the_rotated_token_kept() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("cred-2", "smartrecruiters").await;
    let before: Value = app.credentials_json(&app.url, &key, id, false).await;
    expire(&app);
    let after: Value = app.credentials_json(&app.url, &key, id, false).await;
    assert_ne!(before["access_token"], after["access_token"]);
    assert_eq!(app.sandbox.counter("smartrecruiters.refreshed"), 1);
    let again: Value = app.credentials_json(&app.url, &key, id, false).await;
    assert_eq!(again["access_token"], after["access_token"]);
    assert_eq!(app.sandbox.counter("smartrecruiters.refreshed"), 1);
    // force_refresh forces one, with the rotated refresh token.
    let forced: Value = app.credentials_json(&app.url, &key, id, true).await;
    assert_ne!(forced["access_token"], after["access_token"]);
    assert_eq!(app.sandbox.counter("smartrecruiters.refreshed"), 2);
    assert_eq!(app.sandbox.dead_refresh_token_uses(), 0);
    assert_eq!(app.sandbox.max_refresh_token_uses(), 1);
    assert_eq!(
        app.events_of(id).await,
        vec!["connected", "refreshed", "refreshed"]
    );
}

#[tokio::test]
async fn a_hundred_concurrent_requests_on_two_instances_cause_exactly_one_refresh() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let second = app.second_instance().await;
    let (_, id) = app.connected("cred-3", "smartrecruiters").await;
    expire(&app);
    // A slow provider widens the window in which everyone piles up.
    app.sandbox.add_fault(refresh_fault(
        "smartrecruiters",
        FaultEffect::Latency { ms: 300 },
    ));
    let mut calls = Vec::new();
    for i in 0..100 {
        let base = if i % 2 == 0 { &app.url } else { &second };
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
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "every caller got the same new credential");
    assert_eq!(
        app.sandbox.counter("smartrecruiters.token.refresh_token"),
        1,
        "exactly one refresh"
    );
    assert_eq!(
        app.sandbox.dead_refresh_token_uses(),
        0,
        "the old refresh token was never sent again"
    );
}

#[tokio::test]
async fn invalid_grant_needs_reconnect_once_and_the_reconnect_link_repairs_it() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("cred-4", "smartrecruiters").await;
    expire(&app);
    app.sandbox
        .add_fault(refresh_fault("smartrecruiters", FaultEffect::InvalidGrant));
    let r = app.credentials(&app.url, &key, id, false).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "needs_reconnect");
    let link = body["reconnect_url"].as_str().unwrap().to_string();
    assert!(link.starts_with(&format!("{}/c/", app.url)));
    assert_eq!(app.status_of(id).await, "needs_reconnect");
    let code: Option<String> =
        sqlx::query_scalar("SELECT failure_code FROM connections WHERE id = $1")
            .bind(id)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(code.as_deref(), Some("invalid_grant"));
    assert!(
        app.events_of(id)
            .await
            .contains(&"needs_reconnect".to_string())
    );
    // No retry loop: asking again does not call the provider.
    let r = app.credentials(&app.url, &key, id, false).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(
        app.sandbox.counter("smartrecruiters.token.refresh_token"),
        1
    );

    // The user follows the link: the page says why, the flow repairs the same connection.
    let browser = browser();
    assert_eq!(
        open_link(&browser, &link).await.status(),
        StatusCode::SEE_OTHER
    );
    let page = app.connect_page(&browser).await;
    assert!(
        page.contains("Needs reconnect") && page.contains("no longer accepts"),
        "{page}"
    );
    let r = app.connect(&browser, "smartrecruiters").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.status_of(id).await, "active");
    assert_eq!(app.connection_count().await, 1);
    assert_eq!(
        app.credentials(&app.url, &key, id, false).await.status(),
        StatusCode::OK
    );
    // Single use: the page says so, and so does a Continue from a page shown before.
    let r = browser.get(&link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("already used"));
}

#[tokio::test]
async fn a_reconnect_with_another_upstream_account_is_refused() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("cred-5", "smartrecruiters").await;
    let link: Value = app.reconnect_link(&key, id).await;
    let before: Vec<u8> = sqlx::query_scalar("SELECT access_token FROM connections")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let browser = browser();
    let r = open_link(&browser, link["url"].as_str().unwrap()).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let authorize = app.start(&browser, "smartrecruiters").await;
    let callback = app.decide(&authorize, "approve", "someone.else").await;
    let r = browser.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains("different account"));
    let after: Vec<u8> = sqlx::query_scalar("SELECT access_token FROM connections")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(before, after);
}

#[tokio::test]
async fn provider_outages_degrade_keep_the_token_and_back_off() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("cred-6", "smartrecruiters").await;
    expire(&app);
    // Still valid for 30 s: a 5xx keeps and serves the current token.
    app.sandbox.add_fault(refresh_fault(
        "smartrecruiters",
        FaultEffect::Status { status: 502 },
    ));
    let r = app.credentials(&app.url, &key, id, false).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.status_of(id).await, "degraded");
    // Inside the backoff nobody calls the provider: the valid token is served, a forced
    // refresh answers 503 with the time left.
    let r = app.credentials(&app.url, &key, id, false).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.credentials(&app.url, &key, id, true).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let left: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=36).contains(&left), "{left}");
    assert_eq!(
        app.sandbox.counter("smartrecruiters.token.refresh_token"),
        1
    );
    // Expired now, the backoff over (by the database's clock), and throttled with
    // Retry-After: a clean 503 that says when.
    app.clock.advance(time::Duration::seconds(60));
    end_backoff(&app).await;
    app.sandbox.add_fault(refresh_fault(
        "smartrecruiters",
        FaultEffect::TooManyRequests {
            retry_after_secs: 900,
        },
    ));
    let r = app.credentials(&app.url, &key, id, false).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "900");
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "provider_unavailable"
    );
    let (status, after_900, failures): (String, bool, i32) = sqlx::query_as(
        "SELECT status, next_refresh_at >= now() + interval '899 seconds', refresh_failures FROM connections",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(status, "degraded");
    assert!(after_900, "Retry-After honoured");
    assert_eq!(failures, 2);
    // Ten more calls, forced or not, on this instance and another: no provider call.
    let second = app.second_instance().await;
    for i in 0..10 {
        let base = if i % 2 == 0 { &app.url } else { &second };
        let r = app.credentials(base, &key, id, i % 3 == 0).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let left: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((890..=900).contains(&left), "{left}");
    }
    assert_eq!(
        app.sandbox.counter("smartrecruiters.token.refresh_token"),
        2,
        "no call inside the backoff"
    );
    // The provider recovers: after the backoff the kept refresh token still works.
    end_backoff(&app).await;
    let r = app.credentials(&app.url, &key, id, false).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.status_of(id).await, "active");
}

#[tokio::test]
async fn a_lost_refresh_response_is_retried_once_then_needs_reconnect() {
    let app = spawn_app_with(Options {
        http_timeout_secs: 1,
        ..Options::default()
    })
    .await;
    let key = app.api_key().await;
    let (_, id) = app.connected("cred-7", "smartrecruiters").await;
    expire(&app);
    // The sandbox rotates the grant, then the answer never arrives in time.
    app.sandbox.add_fault(refresh_fault(
        "smartrecruiters",
        FaultEffect::DropResponse { hang_ms: 1_500 },
    ));
    let r = app.credentials(&app.url, &key, id, false).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "needs_reconnect");
    assert!(body["reconnect_url"].as_str().is_some());
    assert_eq!(
        app.sandbox.counter("smartrecruiters.token.refresh_token"),
        2,
        "one retry, same token"
    );
    assert_eq!(app.sandbox.dead_refresh_token_uses(), 1);
    // Asked again, and once everything detached has settled: no further call.
    let r = app.credentials(&app.url, &key, id, true).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    app.state.custody.settled().await;
    assert_eq!(
        app.sandbox.counter("smartrecruiters.token.refresh_token"),
        2,
        "never a loop"
    );
}

#[tokio::test]
async fn invalid_client_alarms_without_breaking_user_connections() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("cred-8", "smartrecruiters").await;
    expire(&app);
    // Keyhaven's secret no longer matches what the provider has.
    let redirect = app.state.settings.redirect_uri("smartrecruiters");
    app.sandbox.register_client(
        "smartrecruiters",
        "keyhaven-demo",
        "rotated-at-provider",
        vec![redirect],
    );
    let r = app.credentials(&app.url, &key, id, false).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "provider_misconfigured"
    );
    assert_eq!(app.status_of(id).await, "active");
    let alarms: i64 =
        sqlx::query_scalar("SELECT count(*) FROM provider_alarms WHERE kind = 'invalid_client'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(alarms, 1);
}

#[tokio::test]
async fn a_refresh_racing_a_reconnect_loses_to_the_reconnect() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (browser, id) = app.connected("cred-9", "smartrecruiters").await;
    expire(&app);
    app.sandbox.add_fault(refresh_fault(
        "smartrecruiters",
        FaultEffect::Latency { ms: 800 },
    ));
    let refreshing = app.spawn_credentials(&app.url, &key, id);
    app.sandbox
        .wait_for("smartrecruiters.token.refresh_token", 1)
        .await;
    assert_eq!(
        app.connect(&browser, "smartrecruiters").await.status(),
        StatusCode::SEE_OTHER
    );
    let stored: Vec<u8> = sqlx::query_scalar("SELECT access_token FROM connections")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let r = refreshing.await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let served: Value = r.json().await.unwrap();
    let now: Value = app.credentials_json(&app.url, &key, id, false).await;
    assert_eq!(
        served["access_token"], now["access_token"],
        "the reconnect's token is served"
    );
    let after: Vec<u8> = sqlx::query_scalar("SELECT access_token FROM connections")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(stored, after, "the refresh did not overwrite the reconnect");
}

#[tokio::test]
async fn a_crashed_instances_lease_holds_until_it_expires_then_exactly_one_refresh() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("cred-10", "smartrecruiters").await;
    expire(&app);
    // An instance that died mid-refresh left a live lease (timed by the database).
    sqlx::query("UPDATE connections SET lease_owner = 'crashed', lease_until = now() + interval '60 seconds'")
        .execute(app.pool())
        .await
        .unwrap();
    let mut calls = Vec::new();
    for _ in 0..10 {
        calls.push(app.spawn_credentials(&app.url, &key, id));
    }
    // The callers wait for the lease; nobody refreshes under it, whatever the clocks say.
    app.clock.advance(time::Duration::seconds(120));
    assert_eq!(
        app.sandbox.counter("smartrecruiters.token.refresh_token"),
        0
    );
    // It expires: one follow-up refresh for all ten.
    sqlx::query("UPDATE connections SET lease_until = now() - interval '1 second'")
        .execute(app.pool())
        .await
        .unwrap();
    for c in calls {
        assert_eq!(c.await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(app.sandbox.counter("smartrecruiters.refreshed"), 1);
    assert_eq!(app.sandbox.dead_refresh_token_uses(), 0);
}

#[tokio::test]
async fn postgres_going_away_mid_refresh_fails_cleanly_and_the_next_request_works() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("cred-11", "smartrecruiters").await;
    expire(&app);
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let admin = sqlx::PgPool::connect(&format!("{}/postgres", base_database_url()))
        .await
        .unwrap();
    let cut = |allow: bool| {
        let (admin, db) = (admin.clone(), db.clone());
        async move {
            sqlx::query(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS {allow}"))
                .execute(&admin)
                .await
                .unwrap();
            if !allow {
                sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
                    .bind(&db)
                    .execute(&admin)
                    .await
                    .unwrap();
            }
        }
    };
    // The database disappears while the provider is being asked, and comes back soon.
    app.sandbox.add_fault(refresh_fault(
        "smartrecruiters",
        FaultEffect::Latency { ms: 600 },
    ));
    let refreshing = app.spawn_credentials(&app.url, &key, id);
    app.sandbox
        .wait_for("smartrecruiters.token.refresh_token", 1)
        .await;
    cut(false).await;
    // Meanwhile other requests fail cleanly with 503.
    let r = reqwest::Client::new()
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = app.credentials(&app.url, &key, id, false).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "unavailable");
    cut(true).await;
    // The refresh kept its rotated tokens through the outage.
    let r = refreshing.await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.credentials(&app.url, &key, id, false).await;
    assert_eq!(r.status(), StatusCode::OK);
    let lease: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT lease_until FROM connections")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(lease.is_none(), "no lease left behind");
    assert_eq!(app.sandbox.counter("smartrecruiters.refreshed"), 1);
}

#[tokio::test]
async fn connections_cut_by_the_server_cost_at_most_one_failed_request() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("cut-1", "acme").await;
    // Several pooled connections, all used a moment ago.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = app.state.pool.acquire().await.unwrap();
        sqlx::query("SELECT 1").execute(&mut *conn).await.unwrap();
        held.push(conn);
    }
    drop(held);
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid, 500) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'keyhaven' AND pid <> pg_backend_pid()",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert!(killed.len() > 1, "several pooled connections were cut");

    let first = app.credentials(&app.url, &key, id, false).await.status();
    assert!(
        first == StatusCode::OK || first == StatusCode::SERVICE_UNAVAILABLE,
        "{first}"
    );
    for _ in 0..5 {
        let r = app.credentials(&app.url, &key, id, false).await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "broken connections are not reused"
        );
    }
}

#[tokio::test]
async fn a_slow_provider_does_not_starve_other_requests_of_connections() {
    let app = spawn_app_with(Options {
        pool_size: 2,
        ..Options::default()
    })
    .await;
    let key = app.api_key().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            app.connected(&format!("pool-{i}"), "smartrecruiters")
                .await
                .1,
        );
    }
    let (_, fresh_id) = app.connected("pool-fresh", "acme").await;
    expire(&app);
    app.sandbox.add_fault(Fault {
        provider: "smartrecruiters".into(),
        target: FaultTarget::Refresh,
        effect: FaultEffect::Latency { ms: 1_500 },
        times: 4,
    });
    let slow: Vec<_> = ids
        .iter()
        .map(|id| app.spawn_credentials(&app.url, &key, *id))
        .collect();
    // All four slow refreshes are at the provider, holding no database connection.
    app.sandbox
        .wait_for("smartrecruiters.token.refresh_token", 4)
        .await;
    let r = app.credentials(&app.url, &key, fresh_id, false).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.sandbox.counter("smartrecruiters.refreshed"),
        0,
        "served while every slow refresh was still at the provider"
    );
    for s in slow {
        assert_eq!(s.await.unwrap().status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_tampered_sealed_value_marks_the_connection_broken_without_crashing() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, a) = app.connected("tamper-a", "smartrecruiters").await;
    let (_, b) = app.connected("tamper-b", "smartrecruiters").await;
    // Move b's sealed access token into a's row.
    sqlx::query("UPDATE connections SET access_token = (SELECT access_token FROM connections WHERE id = $2) WHERE id = $1")
        .bind(a)
        .bind(b)
        .execute(app.pool())
        .await
        .unwrap();
    let r = app.credentials(&app.url, &key, a, false).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(app.status_of(a).await, "needs_reconnect");
    // One flipped bit in b.
    sqlx::query("UPDATE connections SET access_token = overlay(access_token placing '\\x00'::bytea from 40 for 1) WHERE id = $1")
        .bind(b)
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(
        app.credentials(&app.url, &key, b, false).await.status(),
        StatusCode::CONFLICT
    );
    assert!(captured_logs().contains("stored credentials could not be decrypted"));
}

#[tokio::test]
async fn disconnect_revokes_where_possible_wipes_tokens_and_keeps_history() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, acme) = app.connected("bye", "acme").await;
    let (_, sr) = app.connected("bye2", "smartrecruiters").await;
    let api = reqwest::Client::new();
    let r = api
        .delete(format!("{}/api/v1/connections/{acme}", app.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["revocation"], "revoked");
    assert_eq!(app.sandbox.counter("oauth2.revoke"), 1);
    let r = api
        .delete(format!(
            "{}/api/v1/end-users/bye2/connections/smartrecruiters",
            app.url
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["revocation"],
        "not_supported"
    );
    for id in [acme, sr] {
        let (status, access, refresh): (String, Option<Vec<u8>>, Option<Vec<u8>>) = sqlx::query_as(
            "SELECT status, access_token, refresh_token FROM connections WHERE id = $1",
        )
        .bind(id)
        .fetch_one(app.pool())
        .await
        .unwrap();
        assert_eq!(status, "revoked");
        assert!(access.is_none() && refresh.is_none());
        assert_eq!(
            app.events_of(id).await.last().map(String::as_str),
            Some("revoked")
        );
        assert_eq!(
            app.credentials(&app.url, &key, id, false).await.status(),
            StatusCode::CONFLICT
        );
    }
    let view: Value = api
        .get(format!("{}/api/v1/connections/{acme}", app.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "revoked");
}

#[tokio::test]
async fn the_background_refresher_keeps_28_day_refresh_tokens_alive() {
    let app = spawn_app().await;
    let (_, sr) = app.connected("keepalive", "smartrecruiters").await;
    let (_, acme) = app.connected("keepalive2", "acme").await;
    assert_eq!(
        keyhaven::lifecycle::refresher::drain(&app.state)
            .await
            .unwrap(),
        0,
        "nothing due yet"
    );
    app.clock
        .advance(time::Duration::days(26) + time::Duration::hours(1));
    assert_eq!(
        keyhaven::lifecycle::refresher::drain(&app.state)
            .await
            .unwrap(),
        1
    );
    assert_eq!(app.sandbox.counter("smartrecruiters.refreshed"), 1);
    assert_eq!(
        app.sandbox.counter("oauth2.token.refresh_token"),
        0,
        "on-demand providers are left alone"
    );
    let next: time::OffsetDateTime =
        sqlx::query_scalar("SELECT next_refresh_at FROM connections WHERE id = $1")
            .bind(sr)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(next > app.clock.now() + time::Duration::days(25));
    assert_eq!(app.status_of(acme).await, "active");
    // Past the 28 days without the refresher, the sandbox refuses the lapsed token.
    app.clock.advance(time::Duration::days(29));
    let key = app.api_key().await;
    assert_eq!(
        app.credentials(&app.url, &key, sr, false).await.status(),
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn key_rotation_old_rows_still_open_reseal_moves_them_then_the_old_key_can_go() {
    use keyhaven::crypto::KeyRing;
    let app = spawn_app().await;
    let (_, id) = app.connected("rotate", "smartrecruiters").await;
    let old_ring = app.state.settings.keys.clone();
    let new_entry = KeyRing::generate_entry("k2").unwrap();
    let state_with = |keys: KeyRing| {
        let mut settings = app.state.settings.clone();
        settings.keys = keys;
        keyhaven::state::AppState::new(settings, app.state.pool.clone(), app.clock.clone()).unwrap()
    };
    let rotated = state_with(old_ring.with_new_primary(&new_entry).unwrap());
    // Old rows still open under the rotated ring.
    assert!(
        keyhaven::lifecycle::credential(&rotated, id, false)
            .await
            .is_ok()
    );
    let only_new = state_with(KeyRing::parse(&new_entry).unwrap());
    let report = keyhaven::reseal::reseal_all(&rotated).await.unwrap();
    assert_eq!(report.resealed, 1);
    assert_eq!(report.unreadable, 0);
    // After re-sealing, the old key can be removed.
    let credential = keyhaven::lifecycle::credential(&only_new, id, false)
        .await
        .unwrap();
    assert_eq!(credential.connection_id, id);
    let again = keyhaven::reseal::reseal_all(&rotated).await.unwrap();
    assert_eq!((again.resealed, again.already_current), (0, 1));
}

#[tokio::test]
async fn the_background_refresher_respects_per_provider_concurrency() {
    let app = spawn_app_with(Options {
        tweak: |settings| {
            for provider in &mut settings.providers {
                if provider.id == "smartrecruiters" {
                    provider.refresh_concurrency = Some(1);
                }
            }
        },
        ..Options::default()
    })
    .await;
    for i in 0..3 {
        app.connected(&format!("limited-{i}"), "smartrecruiters")
            .await;
    }
    app.clock
        .advance(time::Duration::days(26) + time::Duration::hours(1));
    app.sandbox.add_fault(Fault {
        provider: "smartrecruiters".into(),
        target: FaultTarget::Refresh,
        effect: FaultEffect::Latency { ms: 300 },
        times: 3,
    });
    assert_eq!(
        keyhaven::lifecycle::refresher::drain(&app.state)
            .await
            .unwrap(),
        3
    );
    // One at a time: the three slow refreshes never overlapped.
    assert_eq!(app.sandbox.max_refreshes_in_flight(), 1);
    assert_eq!(app.sandbox.counter("smartrecruiters.refreshed"), 3);
}
