use reqwest::StatusCode;

use crate::chains::*;
use crate::helpers::*;

#[tokio::test]
async fn access_denied_with_html_is_escaped_and_leaves_the_connection_alone() {
    let app = spawn_app().await;
    let browser = app.user_browser("denier").await;
    assert_eq!(
        app.connect(&browser, "smartrecruiters").await.status(),
        StatusCode::SEE_OTHER
    );
    let before: (Vec<u8>, i64) = sqlx::query_as("SELECT access_token, version FROM connections")
        .fetch_one(app.pool())
        .await
        .unwrap();

    let authorize = app.start(&browser, "smartrecruiters").await;
    let state = query_param(&authorize, "state").unwrap();
    let callback = format!(
        "{}/oauth/smartrecruiters/callback?error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state={state}",
        app.url
    );
    let r = browser.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(!page.contains("<script>"), "{page}");
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{page}"
    );
    let after: (Vec<u8>, i64) = sqlx::query_as("SELECT access_token, version FROM connections")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(before, after, "existing connection untouched");
    // The state was consumed.
    let replay = browser.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.token_calls("smartrecruiters"), 1);
}

#[tokio::test]
async fn code_and_error_together_or_neither_is_an_error() {
    let app = spawn_app().await;
    let browser = app.user_browser("both").await;
    for extra in ["code=abc&error=access_denied", ""] {
        let authorize = app.start(&browser, "smartrecruiters").await;
        let state = query_param(&authorize, "state").unwrap();
        let url = format!(
            "{}/oauth/smartrecruiters/callback?{extra}&state={state}",
            app.url
        );
        let r = browser.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{extra}");
    }
    assert_eq!(app.token_calls("smartrecruiters"), 0);
}

#[tokio::test]
async fn malformed_callback_input_is_a_400_never_a_500() {
    let app = spawn_app().await;
    let browser = app.user_browser("fuzz").await;
    let authorize = app.start(&browser, "smartrecruiters").await;
    let state = query_param(&authorize, "state").unwrap();
    let cb = format!("{}/oauth/smartrecruiters/callback", app.url);
    let big = "x".repeat(10_000);
    let cases = [
        format!("code=a&code=b&state={state}"),
        format!("code=a&state={state}&state={state}"),
        format!("code=a%00b&state={state}"),
        format!("code=a%0D%0AX-Injected:%201&state={state}"),
        format!("code=%FF%FE&state={state}"),
        format!("code={big}&state={state}"),
        format!("code=a&state={state}%"),
    ];
    for query in &cases {
        let r = browser.get(format!("{cb}?{query}")).send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::BAD_REQUEST,
            "{}",
            &query[..query.len().min(60)]
        );
    }
    assert_eq!(app.token_calls("smartrecruiters"), 0);
    // Unknown provider.
    let r = browser
        .get(format!(
            "{}/oauth/nope/callback?code=a&state={state}",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // None of that consumed the real state: the flow still completes.
    let callback = app.approve(&authorize).await;
    assert_eq!(get_status(&browser, &callback).await, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn success_redirects_to_a_clean_url_with_safe_headers() {
    let app = spawn_app().await;
    let browser = app.user_browser("clean").await;
    let r = app.connect(&browser, "acme").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let target = location(&r);
    assert!(
        !target.contains("code") && !target.contains("state"),
        "{target}"
    );
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let page = browser
        .get(format!("{}{target}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(page.text().await.unwrap().contains("Acme HR is connected."));
}

#[tokio::test]
async fn return_to_must_be_a_relative_path() {
    let app = spawn_app().await;
    let browser = app.user_browser("ret").await;
    let url = format!("{}/connect/smartrecruiters", app.url);
    for bad in [
        "//evil.example/x",
        "/\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
    ] {
        let csrf = app.csrf(&browser).await;
        let r = browser
            .post(&url)
            .form(&[("csrf", csrf.as_str()), ("return_to", bad)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let csrf = app.csrf(&browser).await;
    let r = browser
        .post(&url)
        .form(&[("csrf", csrf.as_str()), ("return_to", "/connect?from=app")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let callback = app.approve(&location(&r)).await;
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(location(&done), "/connect?from=app");
}
