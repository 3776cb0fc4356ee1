use reqwest::StatusCode;
use time::OffsetDateTime;

use crate::chains::*;
use crate::helpers::*;

#[tokio::test]
async fn smartrecruiters_full_flow_connects_and_seals_tokens() {
    let app = spawn_app().await;
    let browser = app.user_browser("alice").await;

    let authorize = app.start(&browser, "smartrecruiters").await;
    assert!(authorize.starts_with(&format!(
        "{}/smartrecruiters/identity/oauth/allow?",
        app.sandbox_url
    )));
    // Space-separated scopes, sent as %20; no PKCE for SmartRecruiters.
    assert!(
        authorize.contains("scope=candidates_read%20jobs_read%20users_read"),
        "{authorize}"
    );
    assert!(query_param(&authorize, "code_challenge").is_none());
    // The consent page is a real page with Approve and Deny.
    let consent = page_text(&browser, &authorize).await;
    assert!(consent.contains("Approve") && consent.contains("Deny"));

    let callback = app.approve(&authorize).await;
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&done), "/connect?connected=smartrecruiters");
    assert_eq!(app.token_calls("smartrecruiters"), 1);
    assert_eq!(app.sandbox.counter("smartrecruiters.userinfo"), 1);

    let page = app.connect_page(&browser).await;
    assert!(page.contains("Connected as"), "{page}");
    assert!(
        page.contains("Sam Sandbox &#60;sam.sandbox@example.com&#62;"),
        "{page}"
    );

    type Row = (
        String,
        Option<String>,
        Vec<u8>,
        Option<Vec<u8>>,
        Option<OffsetDateTime>,
        Option<OffsetDateTime>,
    );
    let row: Row = sqlx::query_as(
            "SELECT status, account_id, access_token, refresh_token, refresh_expires_at, next_refresh_at FROM connections",
        )
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(row.0, "active");
    assert!(row.1.is_some());
    // Reading the table shows no token: every issued token is absent from the sealed bytes.
    for secret in app.sandbox.secrets_seen() {
        assert!(
            !contains(&row.2, secret.as_bytes())
                && !contains(row.3.as_deref().unwrap_or_default(), secret.as_bytes())
        );
    }
    // 28-day refresh tokens are scheduled for renewal before they lapse.
    let (expires, next) = (row.4.unwrap(), row.5.unwrap());
    assert!(next < expires);
    let events: Vec<String> = sqlx::query_scalar("SELECT kind FROM connection_events")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(events, vec!["connected"]);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn generic_provider_with_pkce_and_iss_connects() {
    let app = spawn_app().await;
    let browser = app.user_browser("bob").await;
    let authorize = app.start(&browser, "acme").await;
    assert_eq!(
        query_param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let challenge = query_param(&authorize, "code_challenge").unwrap();
    assert_eq!(challenge.len(), 43);
    let callback = app.approve(&authorize).await;
    assert!(
        query_param(&callback, "iss").is_some(),
        "the sandbox sends iss"
    );
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.sandbox.counter("oauth2.exchanged"),
        1,
        "PKCE verified by the server"
    );
    let (status, label): (String, Option<String>) =
        sqlx::query_as("SELECT status, account_label FROM connections WHERE provider = 'acme'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(status, "active");
    assert_eq!(label.as_deref(), Some("sam.sandbox@example.com"));
}

#[tokio::test]
async fn connecting_again_replaces_tokens_in_place() {
    let app = spawn_app().await;
    let browser = app.user_browser("carol").await;
    assert_eq!(
        app.connect(&browser, "smartrecruiters").await.status(),
        StatusCode::SEE_OTHER
    );
    let (id1, token1): (uuid::Uuid, Vec<u8>) =
        sqlx::query_as("SELECT id, access_token FROM connections")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(
        app.connect(&browser, "smartrecruiters").await.status(),
        StatusCode::SEE_OTHER
    );
    let (id2, token2, version): (uuid::Uuid, Vec<u8>, i64) =
        sqlx::query_as("SELECT id, access_token, version FROM connections")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(id1, id2, "same connection id");
    assert_ne!(token1, token2, "new tokens");
    assert_eq!(version, 2);
    assert_eq!(app.connection_count().await, 1);
    let events: Vec<String> = sqlx::query_scalar("SELECT kind FROM connection_events ORDER BY id")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(events, vec!["connected", "reconnected"]);
}

#[tokio::test]
async fn consent_page_deny_and_sandbox_checks() {
    let app = spawn_app().await;
    let browser = app.user_browser("dave").await;
    let authorize = app.start(&browser, "smartrecruiters").await;
    // The sandbox insists on the exact registered redirect URI and a non-empty scope.
    let tampered = authorize.replace("callback", "callbackx");
    let r = browser.get(&tampered).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let empty_scope = authorize.replace("scope=candidates_read%20jobs_read%20users_read", "scope=");
    let r = browser.get(&empty_scope).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        query_param(&location(&r), "error").as_deref(),
        Some("invalid_scope")
    );
    // Deny: a friendly page, nothing stored.
    let callback = app.decide(&authorize, "deny", "sam").await;
    let page = browser.get(&callback).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("did not grant access"));
    assert_eq!(app.connection_count().await, 0);
    assert_eq!(app.token_calls("smartrecruiters"), 0);
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let client = browser();
    assert_eq!(
        get_status(&client, format!("{}/healthz", app.url)).await,
        StatusCode::OK
    );
    assert_eq!(
        get_status(&client, format!("{}/readyz", app.url)).await,
        StatusCode::OK
    );
    app.state.pool.close().await;
    assert_eq!(
        get_status(&client, format!("{}/readyz", app.url)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn bad_links_and_missing_sessions_get_friendly_pages() {
    let app = spawn_app().await;
    let client = browser();
    let r = client
        .get(format!("{}/c/not-a-real-link", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("not valid"));
    let r = client
        .get(format!("{}/connect", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("connect link"));
    let r = client
        .post(format!("{}/connect/smartrecruiters", app.url))
        .form(&[("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client
        .get(format!("{}/nowhere", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Expired link: connect links last an hour by default.
    let link = app.create_link("erin").await;
    let page = page_text(&client, &link).await;
    app.clock.advance(time::Duration::minutes(61));
    let r = client.get(&link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("expired"));
    // Continuing from the page shown before it expired does not help.
    let r = continue_link(&client, &link, &page).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("expired"));
}

#[tokio::test]
async fn session_cookie_is_httponly_lax_and_cycled_on_bind() {
    let app = spawn_app().await;
    let client = browser();
    let link1 = app.create_link("fay").await;
    let r1 = open_link(&client, &link1).await;
    let session_line = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|v| v.starts_with("keyhaven_session="))
            .expect("a session cookie")
    };
    let cookie1 = session_line(&r1);
    assert!(
        cookie1.contains("HttpOnly") && cookie1.contains("SameSite=Lax"),
        "{cookie1}"
    );
    // Plain http on 127.0.0.1: not Secure (Secure everywhere else).
    assert!(!cookie1.contains("Secure"));
    let link2 = app.create_link("gus").await;
    let page = page_text(&client, &link2).await;
    let r2 = continue_link(&client, &link2, &page).await;
    let cookie2 = session_line(&r2);
    let id = |c: &str| c.split(';').next().unwrap().to_string();
    assert_ne!(
        id(&cookie1),
        id(&cookie2),
        "session id cycled when another end user is bound"
    );
    // The form token and the link-claiming cookie are just as guarded.
    for cookie in [&cookie1, &cookie2] {
        assert!(cookie.contains("Path=/"));
    }
    let others: Vec<String> = r1
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .filter(|v| !v.starts_with("keyhaven_session="))
        .collect();
    assert!(!others.is_empty(), "the link-claiming cookie");
    for cookie in others {
        assert!(
            cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Lax")
                && cookie.contains("Path=/"),
            "{cookie}"
        );
    }
}

#[tokio::test]
async fn malformed_forms_and_queries_get_friendly_pages() {
    let app = spawn_app().await;
    let browser = app.user_browser("forms").await;
    let r = browser
        .post(format!("{}/connect/smartrecruiters", app.url))
        .form(&[("other", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let r = browser
        .get(format!("{}/connect?connected=%FF", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
