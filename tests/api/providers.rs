use keyhaven_sandbox::{Fault, FaultEffect, FaultTarget};
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::chains::*;
use crate::helpers::*;

async fn connection_id(app: &TestApp, provider: &str) -> uuid::Uuid {
    sqlx::query_scalar("SELECT id FROM connections WHERE provider = $1")
        .bind(provider)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn bullhorn_browser_flow_finds_the_data_center_and_spends_the_token_on_rest_login() {
    let app = spawn_app().await;
    let browser = app.user_browser("bh-1").await;
    let page = app.connect_page(&browser).await;
    assert!(page.contains("Bullhorn username"));
    // west.user lives in the west data center: loginInfo at east answers 307, followed once.
    let r = app.start_bullhorn(&browser, "west.user").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let authorize = location(&r);
    assert!(
        authorize.starts_with(&format!(
            "{}/bullhorn/west/oauth/authorize?",
            app.sandbox_url
        )),
        "{authorize}"
    );
    assert!(
        query_param(&authorize, "scope").is_none()
            && query_param(&authorize, "code_challenge").is_none()
    );
    assert_eq!(
        app.sandbox.counter("bullhorn.login_info"),
        2,
        "the 307 was followed explicitly"
    );
    let callback = app
        .bullhorn_sign_in(&authorize, "west.user", "bullhorn-pass")
        .await;
    assert!(
        callback.contains("code=5%3A"),
        "the code carries a percent-encoded colon: {callback}"
    );
    assert!(query_param(&callback, "client_id").is_some());
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(
        done.status(),
        StatusCode::SEE_OTHER,
        "{}",
        done.text().await.unwrap()
    );
    assert_eq!(app.sandbox.counter("bullhorn.token.authorization_code"), 1);
    assert_eq!(
        app.sandbox.counter("bullhorn.token.rejected_body"),
        0,
        "parameters went in the query string"
    );
    assert_eq!(app.sandbox.counter("bullhorn.rest_login"), 1);

    let id = connection_id(&app, "bullhorn").await;
    let metadata: Value = sqlx::query_scalar("SELECT metadata FROM connections")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert!(
        metadata["oauth_url"]
            .as_str()
            .unwrap()
            .ends_with("/bullhorn/west/oauth")
    );
    assert!(
        metadata["session_rest_url"]
            .as_str()
            .unwrap()
            .ends_with('/')
    );
    // The backend's credential is {BhRestToken, restUrl}.
    let key = app.api_key().await;
    let credential: Value = app.credentials_json(&app.url, &key, id, false).await;
    assert_eq!(credential["token_type"], "BhRestToken");
    assert_eq!(
        credential["extras"]["BhRestToken"],
        credential["access_token"]
    );
    assert!(
        credential["extras"]["restUrl"]
            .as_str()
            .unwrap()
            .contains("/bullhorn/west/rest-services/")
    );

    // The REST session expires: refresh (rotating) and log in again, storing the new token first.
    app.clock.advance(time::Duration::minutes(11));
    let fresh: Value = app.credentials_json(&app.url, &key, id, false).await;
    assert_ne!(fresh["access_token"], credential["access_token"]);
    assert_eq!(app.sandbox.counter("bullhorn.refreshed"), 1);
    assert_eq!(app.sandbox.counter("bullhorn.rest_login"), 2);
    assert_eq!(app.sandbox.dead_refresh_token_uses(), 0);
}

#[tokio::test]
async fn bullhorn_unknown_username_and_wrong_sign_in_store_nothing() {
    let app = spawn_app().await;
    let browser = app.user_browser("bh-2").await;
    let r = app.start_bullhorn(&browser, "nobody.here").await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let r = app.start_bullhorn(&browser, "bad user").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.connection_count().await, 0);
}

#[tokio::test]
async fn bullhorn_api_user_mode_connects_server_side_and_recovers_a_dead_grant() {
    let app = spawn_app_with(Options {
        bullhorn_api_user: true,
        ..Options::default()
    })
    .await;
    let password = "api-user-password-0123456789";
    app.sandbox
        .add_bullhorn_user("api.user", password, "emea")
        .unwrap();
    let browser = app.user_browser("bh-3").await;
    let page = app.connect_page(&browser).await;
    assert!(page.contains("type=\"password\""));
    let csrf = app.csrf(&browser).await;
    let post = |password: &'static str, remember: bool| {
        let mut form = vec![
            ("csrf", csrf.clone()),
            ("username", "api.user".to_string()),
            ("password", password.to_string()),
        ];
        if remember {
            form.push(("remember", "yes".into()));
        }
        browser
            .post(format!("{}/connect/bullhorn", app.url))
            .form(&form)
            .send()
    };
    // Wrong password: Bullhorn answers with its page, no redirect; nothing stored.
    let r = post("wrong-password-wrong-password", true).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("did not accept"));
    assert_eq!(app.connection_count().await, 0);
    let r = post("api-user-password-0123456789", true).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/connect?connected=bullhorn");
    assert_eq!(app.sandbox.counter("bullhorn.authorize_login"), 2);
    let id = connection_id(&app, "bullhorn").await;
    let sealed: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT provider_credentials FROM connections")
            .fetch_one(app.pool())
            .await
            .unwrap();
    let sealed = sealed.expect("kept for recovery");
    assert!(
        !sealed
            .windows(password.len())
            .any(|w| w == password.as_bytes()),
        "sealed, not plain"
    );

    // The grant dies upstream (e.g. the refresh answer was lost): start over from step 1.
    app.sandbox.revoke_user("bullhorn", "api.user");
    let key = app.api_key().await;
    let r = app.credentials(&app.url, &key, id, true).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.status_of(id).await, "active");
    assert!(app.events_of(id).await.contains(&"recovered".to_string()));

    // The password changed: recovery fails too, and only then the user must reconnect.
    app.sandbox
        .change_bullhorn_password("api.user", "a-new-password-nobody-knows")
        .unwrap();
    let r = app.credentials(&app.url, &key, id, true).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(app.status_of(id).await, "needs_reconnect");
    assert!(!captured_logs().contains(password));
}

#[tokio::test]
async fn bullhorn_api_user_without_opt_in_keeps_no_password() {
    let app = spawn_app_with(Options {
        bullhorn_api_user: true,
        ..Options::default()
    })
    .await;
    app.sandbox
        .add_bullhorn_user("api.two", "another-long-password-987654", "east")
        .unwrap();
    let browser = app.user_browser("bh-4").await;
    let csrf = app.csrf(&browser).await;
    let r = browser
        .post(format!("{}/connect/bullhorn", app.url))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "api.two"),
            ("password", "another-long-password-987654"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let sealed: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT provider_credentials FROM connections")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(sealed.is_none());
    let id = connection_id(&app, "bullhorn").await;
    app.sandbox.revoke_user("bullhorn", "api.two");
    let key = app.api_key().await;
    assert_eq!(
        app.credentials(&app.url, &key, id, true).await.status(),
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn zoho_eu_user_is_exchanged_at_the_eu_accounts_server_and_served_from_the_eu_recruit_host() {
    let app = spawn_app().await;
    let browser = app.user_browser("zo-1").await;
    let authorize = app.start(&browser, "zoho").await;
    assert!(authorize.starts_with(&format!(
        "{}/zoho/accounts/us/oauth/v2/auth?",
        app.sandbox_url
    )));
    assert_eq!(
        query_param(&authorize, "access_type").as_deref(),
        Some("offline")
    );
    assert_eq!(
        query_param(&authorize, "prompt").as_deref(),
        Some("consent")
    );
    assert_eq!(
        query_param(&authorize, "scope").as_deref(),
        Some("ZohoRecruit.modules.ALL,ZohoRecruit.users.READ,ZohoRecruit.org.READ")
    );
    let callback = app.decide(&authorize, "approve", "eu.alice").await;
    assert_eq!(query_param(&callback, "location").as_deref(), Some("eu"));
    let r = browser.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.sandbox.counter("zoho.eu.token"), 1);
    assert_eq!(app.sandbox.counter("zoho.us.token"), 0);
    assert_eq!(app.sandbox.counter("zoho.eu.userinfo"), 1);
    let id = connection_id(&app, "zoho").await;
    let key = app.api_key().await;
    let credential: Value = app.credentials_json(&app.url, &key, id, false).await;
    assert_eq!(credential["token_type"], "Zoho-oauthtoken");
    assert!(
        credential["extras"]["api_host"]
            .as_str()
            .unwrap()
            .ends_with("/zoho/recruit/eu")
    );

    // Refresh at the EU server; Zoho never rotates, so the old refresh token is kept.
    let before: Vec<u8> = sqlx::query_scalar("SELECT refresh_token FROM connections")
        .fetch_one(app.pool())
        .await
        .unwrap();
    app.clock.advance(time::Duration::seconds(3600));
    let r = app.credentials(&app.url, &key, id, false).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.sandbox.counter("zoho.refreshed"), 1);
    assert_eq!(app.sandbox.counter("zoho.eu.token"), 2);
    let after: Vec<u8> = sqlx::query_scalar("SELECT refresh_token FROM connections")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(before, after);
    // Zoho is refreshed on demand only, never by the background refresher.
    app.clock.advance(time::Duration::days(60));
    assert_eq!(
        keyhaven::lifecycle::refresher::drain(&app.state)
            .await
            .unwrap(),
        0
    );

    // Disconnect revokes at the user's own accounts server.
    let r = reqwest::Client::new()
        .delete(format!("{}/api/v1/connections/{id}", app.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["revocation"], "revoked");
    assert_eq!(app.sandbox.counter("zoho.eu.revoke"), 1);
    assert_eq!(app.sandbox.counter("zoho.revoked"), 1);
}

#[tokio::test]
async fn a_forged_zoho_accounts_server_causes_no_outbound_call() {
    let app = spawn_app().await;
    let browser = app.user_browser("zo-2").await;
    for forged in [
        "https://accounts.evil.example",
        "https://accounts.zoho.eu.evil.example",
    ] {
        let authorize = app.start(&browser, "zoho").await;
        let callback = app.decide(&authorize, "approve", "eu.bob").await;
        let mut url = Url::parse(&callback).unwrap();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                if k == "accounts-server" {
                    (k.into_owned(), forged.to_string())
                } else {
                    (k.into_owned(), v.into_owned())
                }
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(&pairs);
        let r = browser.get(url.as_str()).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().await.unwrap().contains("unknown Zoho data center"));
    }
    // The right server with a location that disagrees is refused as well.
    let authorize = app.start(&browser, "zoho").await;
    let callback = app
        .decide(&authorize, "approve", "eu.bob")
        .await
        .replace("location=eu", "location=us");
    assert_eq!(
        get_status(&browser, &callback).await,
        StatusCode::BAD_REQUEST
    );
    let calls: u64 = app
        .sandbox
        .counters()
        .iter()
        .filter(|(k, _)| k.starts_with("zoho.") && k.ends_with(".token"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(calls, 0, "no token call was made anywhere");
    assert_eq!(app.connection_count().await, 0);
}

#[tokio::test]
async fn zoho_errors_in_a_200_are_failures_and_the_throttle_is_retryable() {
    let app = spawn_app().await;
    let browser = app.user_browser("zo-3").await;
    app.sandbox.add_fault(Fault::once(
        "zoho",
        FaultTarget::Exchange,
        FaultEffect::InvalidGrant,
    ));
    let r = app.connect(&browser, "zoho").await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        app.connection_count().await,
        0,
        "a 200 with an error stores nothing"
    );
    // Connect for real, then the throttle on refresh: degraded, not dead.
    assert_eq!(
        app.connect(&browser, "zoho").await.status(),
        StatusCode::SEE_OTHER
    );
    let id = connection_id(&app, "zoho").await;
    let key = app.api_key().await;
    app.clock.advance(time::Duration::seconds(3600));
    app.sandbox.add_fault(Fault::once(
        "zoho",
        FaultTarget::Refresh,
        FaultEffect::Throttled { status: Some(200) },
    ));
    let r = app.credentials(&app.url, &key, id, false).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.status_of(id).await, "degraded");
    // After the backoff (database clock), a dead refresh token (`invalid_code` in a 200)
    // means reconnect.
    sqlx::query("UPDATE connections SET next_refresh_at = now() WHERE id = $1")
        .bind(id)
        .execute(app.pool())
        .await
        .unwrap();
    app.sandbox.add_fault(Fault::once(
        "zoho",
        FaultTarget::Refresh,
        FaultEffect::InvalidGrant,
    ));
    let r = app.credentials(&app.url, &key, id, false).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // The reconnect card warns about Zoho's 20-grant limit before the user re-consents.
    let page = app.connect_page(&browser).await;
    assert!(page.contains("at most 20"), "{page}");
}

#[tokio::test]
async fn hurdlr_form_body_no_token_type_and_created_at_expiry() {
    let app = spawn_app().await;
    let browser = app.user_browser("hu-1").await;
    let r = app.connect(&browser, "hurdlr").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.sandbox.counter("hurdlr.token.rejected_body"), 0);
    let (expires, next, account): (time::OffsetDateTime, time::OffsetDateTime, String) =
        sqlx::query_as("SELECT access_expires_at, next_refresh_at, account_id FROM connections")
            .fetch_one(app.pool())
            .await
            .unwrap();
    let days = (expires - app.clock.now()).whole_days();
    assert!((89..=90).contains(&days), "created_at + 90 days: {days}");
    assert!(next < expires, "renewed before it lapses");
    assert!(account.parse::<u64>().is_ok(), "numeric userId: {account}");
    app.clock.advance(time::Duration::days(88));
    assert_eq!(
        keyhaven::lifecycle::refresher::drain(&app.state)
            .await
            .unwrap(),
        1
    );
    assert_eq!(app.sandbox.counter("hurdlr.refreshed"), 1);
}

#[tokio::test]
async fn hurdlr_without_an_authorize_url_is_not_offered_and_says_why() {
    let mut raw = raw_settings_with_key();
    raw.providers.insert(
        "hurdlr".into(),
        keyhaven::config::ProviderSettings {
            client_id: Some("id".into()),
            client_secret: Some("secret".into()),
            ..Default::default()
        },
    );
    let settings = raw.validate().unwrap();
    assert!(settings.provider("hurdlr").is_none());
    assert!(
        settings.unavailable_providers[0]
            .1
            .contains("authorize_url")
    );
}

#[tokio::test]
async fn provider_flows_leak_no_secret_into_logs_or_pages() {
    let app = spawn_app_with(Options {
        bullhorn_api_user: true,
        ..Options::default()
    })
    .await;
    app.sandbox
        .add_bullhorn_user("leak.user", "leak-user-password-55555555", "west")
        .unwrap();
    let browser = app.user_browser("leak-2").await;
    let mut bodies = Vec::new();
    for provider in ["zoho", "hurdlr"] {
        let r = app.connect(&browser, provider).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }
    let csrf = app.csrf(&browser).await;
    let r = browser
        .post(format!("{}/connect/bullhorn", app.url))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "leak.user"),
            ("password", "leak-user-password-55555555"),
            ("remember", "yes"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    bodies.push(app.connect_page(&browser).await);
    // Refresh everything once, through the API.
    let key = app.api_key().await;
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM connections")
        .fetch_all(app.pool())
        .await
        .unwrap();
    for id in ids {
        let r = app.credentials(&app.url, &key, id, true).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let logs = captured_logs();
    assert!(
        logs.contains("connection established"),
        "the portal's lines were captured at trace level"
    );
    let secrets = app.sandbox.secrets_seen();
    assert!(secrets.iter().any(|s| s == "leak-user-password-55555555"));
    for secret in secrets.iter().filter(|s| s.len() >= 16) {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret appears in the logs"
        );
        for body in &bodies {
            assert!(
                !body.contains(secret.as_str()),
                "a secret appears in a page"
            );
        }
    }
}
