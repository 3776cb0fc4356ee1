use base64::Engine;
use reqwest::StatusCode;

use crate::chains::*;
use crate::helpers::*;

async fn assert_rejected(app: &TestApp, browser: &reqwest::Client, callback: &str) {
    let r = browser.get(callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{callback}");
    assert!(r.text().await.unwrap().contains("no longer valid"));
    assert_eq!(app.connection_count().await, 0, "nothing stored");
}

#[tokio::test]
async fn missing_wrong_and_replayed_state_are_rejected_before_any_token_call() {
    let app = spawn_app().await;
    let browser = app.user_browser("u1").await;
    let authorize = app.start(&browser, "smartrecruiters").await;
    let callback = app.approve(&authorize).await;
    let state = query_param(&callback, "state").unwrap();
    let code = query_param(&callback, "code").unwrap();
    let cb = format!("{}/oauth/smartrecruiters/callback", app.url);

    assert_rejected(&app, &browser, &format!("{cb}?code={code}")).await;
    assert_rejected(&app, &browser, &format!("{cb}?code={code}&state=")).await;
    assert_rejected(
        &app,
        &browser,
        &format!("{cb}?code={code}&state=wrong{state}"),
    )
    .await;
    // A state sent to another provider's callback does not work there.
    let other = format!("{}/oauth/acme/callback?code={code}&state={state}", app.url);
    assert_rejected(&app, &browser, &other).await;
    assert_eq!(app.token_calls("smartrecruiters"), 0);
    assert_eq!(app.token_calls("oauth2"), 0);

    // That attempt came from the right browser, so it consumed the state: single use.
    assert_rejected(&app, &browser, &callback).await;
    assert_eq!(app.token_calls("smartrecruiters"), 0);

    // A fresh flow works exactly once; the replay is refused without a second token call.
    let authorize = app.start(&browser, "smartrecruiters").await;
    let callback = app.approve(&authorize).await;
    assert_eq!(get_status(&browser, &callback).await, StatusCode::SEE_OTHER);
    let replay = browser.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.token_calls("smartrecruiters"), 1);
}

#[tokio::test]
async fn another_sessions_state_is_rejected_and_does_not_burn_it() {
    let app = spawn_app().await;
    let victim = app.user_browser("victim").await;
    let attacker = app.user_browser("attacker").await;
    let authorize = app.start(&victim, "smartrecruiters").await;
    let callback = app.approve(&authorize).await;
    assert_rejected(&app, &attacker, &callback).await;
    // A browser with no session at all.
    let r = browser().get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.token_calls("smartrecruiters"), 0);
    // The rightful browser still completes.
    assert_eq!(get_status(&victim, &callback).await, StatusCode::SEE_OTHER);
    let owner: String = sqlx::query_scalar(
        "SELECT e.external_id FROM connections c JOIN end_users e ON e.id = c.end_user_id",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(owner, "victim");
}

#[tokio::test]
async fn a_flow_started_for_one_user_cannot_finish_for_another_in_the_same_browser() {
    let app = spawn_app().await;
    let browser = app.user_browser("v").await;
    let authorize = app.start(&browser, "smartrecruiters").await;
    let callback = app.approve(&authorize).await;
    // The same browser now opens U's link: the session is re-bound.
    let link = app.create_link("u").await;
    let page = page_text(&browser, &link).await;
    assert!(
        page.contains("id=\"switch-user\""),
        "the switch is confirmed first"
    );
    let r = continue_link(&browser, &link, &page).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_rejected(&app, &browser, &callback).await;
    assert_eq!(app.token_calls("smartrecruiters"), 0);
}

#[tokio::test]
async fn expired_state_is_rejected() {
    let app = spawn_app().await;
    let browser = app.user_browser("slow").await;
    let authorize = app.start(&browser, "acme").await;
    let callback = app.approve(&authorize).await;
    app.clock.advance(time::Duration::minutes(11));
    assert_rejected(&app, &browser, &callback).await;
    assert_eq!(app.token_calls("oauth2"), 0);
}

#[tokio::test]
async fn a_flow_whose_end_user_was_deleted_meanwhile_is_stale_and_consumed() {
    let app = spawn_app().await;
    let browser = app.user_browser("gone").await;
    let authorize = app.start(&browser, "smartrecruiters").await;
    let callback = app.approve(&authorize).await;
    sqlx::query("DELETE FROM end_users WHERE external_id = 'gone'")
        .execute(app.pool())
        .await
        .unwrap();
    assert_rejected(&app, &browser, &callback).await;
    assert_eq!(app.token_calls("smartrecruiters"), 0);
    assert_eq!(app.pending_count().await, 0, "the state was consumed");
}

#[tokio::test]
async fn two_tabs_run_two_flows_at_once() {
    let app = spawn_app().await;
    let browser = app.user_browser("tabs").await;
    let a = app.start(&browser, "smartrecruiters").await;
    let b = app.start(&browser, "acme").await;
    let c = app.start(&browser, "smartrecruiters").await;
    let (cb_a, cb_b, cb_c) = (
        app.approve(&a).await,
        app.approve(&b).await,
        app.approve(&c).await,
    );
    // Finish in another order than started.
    for cb in [&cb_c, &cb_b, &cb_a] {
        assert_eq!(get_status(&browser, cb).await, StatusCode::SEE_OTHER);
    }
    assert_eq!(app.connection_count().await, 2);
    assert_eq!(app.token_calls("smartrecruiters"), 2);
}

#[tokio::test]
async fn state_is_long_random_and_pkce_is_fresh_s256() {
    let app = spawn_app().await;
    let browser = app.user_browser("entropy").await;
    let first = app.start(&browser, "acme").await;
    let second = app.start(&browser, "acme").await;
    let state = query_param(&first, "state").unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&state)
        .unwrap();
    assert!(bytes.len() * 8 >= 128, "state carries at least 128 bits");
    assert_ne!(state, query_param(&second, "state").unwrap());
    assert_ne!(
        query_param(&first, "code_challenge"),
        query_param(&second, "code_challenge")
    );
    assert_eq!(
        query_param(&first, "code_challenge_method").as_deref(),
        Some("S256")
    );
}

#[tokio::test]
async fn issuer_mismatch_is_rejected() {
    let app = spawn_app().await;
    let browser = app.user_browser("iss").await;
    let authorize = app.start(&browser, "acme").await;
    let callback = app.approve(&authorize).await;
    let forged = callback.replace("iss=http", "iss=https");
    assert_ne!(forged, callback);
    let r = browser.get(&forged).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("unexpected issuer"));
    assert_eq!(app.token_calls("oauth2"), 0);
    assert_eq!(app.connection_count().await, 0);
}

#[tokio::test]
async fn start_requires_the_pages_csrf_token_and_same_site() {
    let app = spawn_app().await;
    let browser = app.user_browser("csrf").await;
    let url = format!("{}/connect/smartrecruiters", app.url);
    let r = browser
        .post(&url)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let csrf = app.csrf(&browser).await;
    let r = browser
        .post(&url)
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = browser
        .post(format!("{}/connect/nope", app.url))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.pending_count().await, 0);
}
