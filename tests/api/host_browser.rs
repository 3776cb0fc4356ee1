//! The product's side in a real browser: a host page on another port opens a connect
//! link in a popup and hears how it ended; a link in page mode lands back on the
//! product's page with the result in its query.

use axum::response::Html;
use axum::routing::get;
use fantoccini::{Client, Locator};
use keyhaven::link_options::{LinkOptions, RequestedOptions};
use keyhaven::web::api::{EndUserInput, create_link_with};

use crate::browser::{find, open_browser, start_driver, text_of};
use crate::helpers::*;

/// The product's page: a button that opens the popup through our product-side script.
fn host_page(keyhaven: &str, link: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><title>Host product</title></head><body>
<button id="open">Connect an account</button>
<pre id="result"></pre>
<script src="{keyhaven}/static/keyhaven-connect.js"></script>
<script>
document.getElementById("open").addEventListener("click", function () {{
  KeyhavenConnect.open("{link}").then(function (result) {{
    var out = document.getElementById("result");
    out.textContent = JSON.stringify(result);
    out.setAttribute("data-status", result.status);
  }});
}});
</script>
</body></html>"#
    )
}

async fn link(app: &TestApp, options: RequestedOptions) -> String {
    let options = LinkOptions::check(options, &app.state.settings).unwrap();
    create_link_with(
        &app.state,
        &EndUserInput {
            external_id: "host-pat".into(),
            email: None,
            name: Some("Pat Host".into()),
        },
        &options,
    )
    .await
    .unwrap()
    .0
}

/// Presses Continue when the link shows a page first.
async fn continue_if_asked(browser: &Client) {
    if let Ok(button) = browser.find(Locator::Css("#continue")).await {
        button.click().await.unwrap();
    }
}

#[tokio::test]
#[cfg_attr(not(chromium), ignore = "needs chromium and chromedriver")]
async fn a_host_page_hears_from_the_popup_and_page_mode_lands_on_the_return_url() {
    let driver = start_driver().await;
    let host = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host_origin = format!("http://127.0.0.1:{}", host.local_addr().unwrap().port());
    let app = spawn_app_with(Options {
        allowed_return_origins: vec![host_origin.clone()],
        ..Options::default()
    })
    .await;
    let popup_link = link(
        &app,
        RequestedOptions {
            return_url: Some(format!("{host_origin}/")),
            provider: Some("smartrecruiters".into()),
            mode: Some("popup".into()),
            ..Default::default()
        },
    )
    .await;
    let page = host_page(&app.url, &popup_link);
    let router = axum::Router::new()
        .route("/", get(move || async move { Html(page) }))
        .route(
            "/back",
            get(|| async { Html("<!doctype html><p id=\"back-page\">Back in the product</p>") }),
        );
    tokio::spawn(async move { axum::serve(host, router).await.unwrap() });

    let browser = open_browser(&driver).await;
    let steps = tokio::spawn({
        let browser = browser.clone();
        async move { run(&app, &browser, &host_origin).await }
    });
    let result = steps.await;
    browser.close().await.unwrap();
    if let Err(failure) = result {
        std::panic::resume_unwind(failure.into_panic());
    }
}

async fn run(app: &TestApp, browser: &Client, host_origin: &str) {
    // Popup mode: the host page opens the link; the user approves at the sandbox.
    browser.goto(&format!("{host_origin}/")).await.unwrap();
    let main = browser.window().await.unwrap();
    find(browser, "#open").await.click().await.unwrap();
    let popup = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        loop {
            let windows = browser.windows().await.unwrap();
            if let Some(w) = windows.into_iter().find(|w| *w != main) {
                break w;
            }
        }
    })
    .await
    .expect("the popup opened");
    browser.switch_to_window(popup).await.unwrap();
    find(browser, "body").await;
    continue_if_asked(browser).await;
    find(browser, "#approve").await.click().await.unwrap();
    browser.switch_to_window(main).await.unwrap();
    find(browser, "#result[data-status]").await;
    let result: serde_json::Value =
        serde_json::from_str(&text_of(browser, "#result").await).unwrap();
    let id: uuid::Uuid = sqlx::query_scalar(
        "SELECT c.id FROM connections c JOIN end_users e ON e.id = c.end_user_id WHERE e.external_id = 'host-pat' AND c.provider = 'smartrecruiters'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(
        result,
        serde_json::json!({
            "status": "connected",
            "provider": "smartrecruiters",
            "connection_id": id.to_string(),
        })
    );
    assert_eq!(
        browser.windows().await.unwrap().len(),
        1,
        "the popup closed itself"
    );

    // Page mode: the flow ends on the product's page with the result in its query.
    let page_link = link(
        app,
        RequestedOptions {
            return_url: Some(format!("{host_origin}/back?from=settings")),
            providers: Some(vec!["acme".into()]),
            ..Default::default()
        },
    )
    .await;
    browser.goto(&page_link).await.unwrap();
    continue_if_asked(browser).await;
    assert_eq!(
        text_of(browser, "#back").await,
        "← Back to 127.0.0.1",
        "the connect page leads back"
    );
    find(browser, "#provider-acme button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    find(browser, "#approve").await.click().await.unwrap();
    find(browser, "#back-page").await;
    let url = browser.current_url().await.unwrap();
    let acme: uuid::Uuid = sqlx::query_scalar(
        "SELECT c.id FROM connections c JOIN end_users e ON e.id = c.end_user_id WHERE e.external_id = 'host-pat' AND c.provider = 'acme'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(
        url.as_str(),
        format!(
            "{host_origin}/back?from=settings&keyhaven_status=connected&provider=acme&connection_id={acme}"
        )
    );
}
