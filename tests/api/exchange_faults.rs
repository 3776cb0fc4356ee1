use keyhaven_sandbox::{Fault, FaultEffect, FaultTarget};
use reqwest::StatusCode;

use crate::helpers::*;

async fn assert_failed_without_storing(app: &TestApp, response: reqwest::Response) {
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let page = response.text().await.unwrap();
    assert!(page.contains("Nothing was changed"), "{page}");
    assert!(
        page.contains("Back to your connections"),
        "a new flow is offered"
    );
    assert_eq!(app.connection_count().await, 0);
}

#[tokio::test]
async fn failed_exchanges_store_nothing_and_are_never_retried() {
    let app = spawn_app().await;
    let browser = app.user_browser("faults").await;
    let effects = [
        FaultEffect::Status { status: 500 },
        FaultEffect::Status { status: 503 },
        FaultEffect::InvalidGrant,
        FaultEffect::EmptyOk,
        FaultEffect::TooManyRequests {
            retry_after_secs: 5,
        },
    ];
    for (i, effect) in effects.into_iter().enumerate() {
        app.sandbox.add_fault(Fault::once(
            "smartrecruiters",
            FaultTarget::Exchange,
            effect.clone(),
        ));
        let r = app.connect(&browser, "smartrecruiters").await;
        assert_failed_without_storing(&app, r).await;
        assert_eq!(
            app.token_calls("smartrecruiters"),
            i as u64 + 1,
            "{effect:?} sent once"
        );
    }
}

#[tokio::test]
async fn slow_exchange_times_out_and_the_code_is_never_sent_twice() {
    let app = spawn_app_with(Options {
        http_timeout_secs: 1,
        ..Options::default()
    })
    .await;
    let browser = app.user_browser("slowpoke").await;
    // The provider answers after 5 s; the portal gives up after 1 s.
    app.sandbox.add_fault(Fault::once(
        "smartrecruiters",
        FaultTarget::Exchange,
        FaultEffect::Latency { ms: 5_000 },
    ));
    let r = app.connect(&browser, "smartrecruiters").await;
    assert_eq!(
        app.sandbox.counter("smartrecruiters.exchanged"),
        0,
        "the client timeout applies: answered before the provider did"
    );
    assert_failed_without_storing(&app, r).await;
    // The flow has ended, its detached exchange included: the code went out once.
    app.state.custody.settled().await;
    assert_eq!(app.token_calls("smartrecruiters"), 1);
    // A new flow works.
    assert_eq!(
        app.connect(&browser, "smartrecruiters").await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_smartrecruiters_code_older_than_30_seconds_is_refused() {
    let app = spawn_app().await;
    let browser = app.user_browser("late").await;
    let authorize = app.start(&browser, "smartrecruiters").await;
    let callback = app.approve(&authorize).await;
    app.clock.advance(time::Duration::seconds(31));
    let r = browser.get(&callback).send().await.unwrap();
    assert_failed_without_storing(&app, r).await;
}

#[tokio::test]
async fn failed_who_am_i_stores_nothing() {
    let app = spawn_app().await;
    let browser = app.user_browser("whoami").await;
    app.sandbox.add_fault(Fault::once(
        "oauth2",
        FaultTarget::Userinfo,
        FaultEffect::Status { status: 500 },
    ));
    let r = app.connect(&browser, "acme").await;
    assert_failed_without_storing(&app, r).await;
}

#[tokio::test]
async fn a_failed_reconnect_keeps_the_existing_connection() {
    let app = spawn_app().await;
    let browser = app.user_browser("keeper").await;
    assert_eq!(
        app.connect(&browser, "acme").await.status(),
        StatusCode::SEE_OTHER
    );
    let before: (Vec<u8>, Option<Vec<u8>>, String) =
        sqlx::query_as("SELECT access_token, refresh_token, status FROM connections")
            .fetch_one(app.pool())
            .await
            .unwrap();
    app.sandbox.add_fault(Fault::once(
        "oauth2",
        FaultTarget::Exchange,
        FaultEffect::InvalidGrant,
    ));
    let r = app.connect(&browser, "acme").await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let after: (Vec<u8>, Option<Vec<u8>>, String) =
        sqlx::query_as("SELECT access_token, refresh_token, status FROM connections")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(before, after);
}
