//! Fitting into the host product: connect links with a return URL, a provider list, a
//! direct provider and popup mode; branding; the landing page.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::chains::*;
use crate::helpers::*;

const APP: &str = "https://app.example.com";

async fn product_app() -> TestApp {
    spawn_app_with(Options {
        allowed_return_origins: vec![APP.into(), "http://localhost:3000".into()],
        ..Options::default()
    })
    .await
}

async fn create(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/v1/connect-links", app.url))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A connect link made through the API with `options` beside the end user.
async fn link_with(app: &TestApp, key: &str, external_id: &str, options: Value) -> String {
    let mut body = json!({ "end_user": { "external_id": external_id, "name": "Pat Product" } });
    body.as_object_mut()
        .unwrap()
        .extend(options.as_object().unwrap().clone());
    let r = create(app, key, body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn connection_id(app: &TestApp, external_id: &str, provider: &str) -> uuid::Uuid {
    sqlx::query_scalar(
        "SELECT c.id FROM connections c JOIN end_users e ON e.id = c.end_user_id WHERE e.external_id = $1 AND c.provider = $2",
    )
    .bind(external_id)
    .bind(provider)
    .fetch_one(app.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn connect_link_options_are_checked() {
    let app = product_app().await;
    let key = app.api_key().await;
    let user = json!({ "external_id": "opts" });
    let refused = |body: Value, code: &'static str| {
        let (app, key) = (&app, &key);
        async move {
            let r = create(app, key, body.clone()).await;
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            let error: Value = r.json().await.unwrap();
            assert_eq!(error["code"], code, "{body}");
            assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    };
    for bad in [
        "https://app.example.com.evil.test/settings",
        "https://app.example.com@evil.test/settings",
        "https://evil.test/?next=https://app.example.com",
        "http://app.example.com/settings",
        "https://app.example.com:8443/settings",
        "javascript:alert(document.domain)",
        "/settings",
    ] {
        refused(
            json!({ "end_user": user, "return_url": bad }),
            "return_url_not_allowed",
        )
        .await;
    }
    refused(
        json!({ "end_user": user, "providers": ["acme", "workday"] }),
        "unknown_provider",
    )
    .await;
    refused(
        json!({ "end_user": user, "provider": "workday" }),
        "unknown_provider",
    )
    .await;
    refused(
        json!({ "end_user": user, "mode": "window", "return_url": format!("{APP}/x") }),
        "invalid_mode",
    )
    .await;
    // Popup mode posts to the return URL's origin: without one there is no target.
    refused(json!({ "end_user": user, "mode": "popup" }), "invalid_mode").await;
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM links")
            .fetch_one(app.pool())
            .await
            .unwrap(),
        0,
        "nothing refused was stored"
    );

    let r = create(
        &app,
        &key,
        json!({
            "end_user": user,
            "return_url": format!("{APP}/settings/integrations?tab=crm"),
            "providers": ["acme", "smartrecruiters"],
            "provider": "acme",
            "mode": "popup",
        }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let stored: (Option<String>, Option<Vec<String>>, Option<String>, String) =
        sqlx::query_as("SELECT return_url, providers, provider, mode FROM links")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(
        stored,
        (
            Some(format!("{APP}/settings/integrations?tab=crm")),
            Some(vec!["acme".to_string(), "smartrecruiters".to_string()]),
            Some("acme".to_string()),
            "popup".to_string()
        )
    );
}

#[tokio::test]
async fn redirect_mode_lands_on_the_return_url_with_the_result() {
    let app = product_app().await;
    let key = app.api_key().await;
    let link = link_with(
        &app,
        &key,
        "redirected",
        json!({ "return_url": format!("{APP}/settings?tab=crm") }),
    )
    .await;
    let browser = browser();
    let r = open_link(&browser, &link).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/connect");
    let r = app.connect(&browser, "acme").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let id = connection_id(&app, "redirected", "acme").await;
    assert_eq!(
        location(&r),
        format!(
            "{APP}/settings?tab=crm&keyhaven_status=connected&provider=acme&connection_id={id}"
        )
    );
}

#[tokio::test]
async fn a_cancelled_consent_comes_back_as_cancelled_and_a_failure_as_failed() {
    let app = product_app().await;
    let key = app.api_key().await;
    let link = link_with(
        &app,
        &key,
        "declines",
        json!({ "return_url": format!("{APP}/back") }),
    )
    .await;
    let browser = browser();
    open_link(&browser, &link).await;
    let authorize = app.start(&browser, "smartrecruiters").await;
    let callback = app.decide(&authorize, "deny", "sam.sandbox").await;
    let r = browser.get(callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&r),
        format!("{APP}/back?keyhaven_status=cancelled&provider=smartrecruiters")
    );
    assert_eq!(app.connection_count().await, 0);
    // A generic provider with an issuer names it on the denial too.
    let authorize = app.start(&browser, "acme").await;
    let callback = app.decide(&authorize, "deny", "sam.sandbox").await;
    assert!(query_param(&callback, "iss").is_some(), "{callback}");
    let r = browser.get(callback).send().await.unwrap();
    assert_eq!(
        location(&r),
        format!("{APP}/back?keyhaven_status=cancelled&provider=acme")
    );
    assert_eq!(app.connection_count().await, 0);

    // The provider fails the exchange: the product hears `failed`, nothing is stored.
    app.sandbox.add_fault(keyhaven_sandbox::Fault {
        provider: "smartrecruiters".into(),
        target: keyhaven_sandbox::FaultTarget::Exchange,
        effect: keyhaven_sandbox::FaultEffect::Status { status: 500 },
        times: 1,
    });
    let r = app.connect(&browser, "smartrecruiters").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&r),
        format!("{APP}/back?keyhaven_status=failed&provider=smartrecruiters")
    );
    assert_eq!(app.connection_count().await, 0);

    // A callback that is not this browser's flow is not a result to report.
    let r = browser
        .get(format!(
            "{}/oauth/acme/callback?code=x&state=not-a-flow",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_link_for_one_provider_goes_straight_to_its_authorize_step() {
    let app = product_app().await;
    let key = app.api_key().await;
    let link = link_with(
        &app,
        &key,
        "direct",
        json!({ "provider": "smartrecruiters", "return_url": format!("{APP}/done") }),
    )
    .await;
    let browser = browser();
    let r = open_link(&browser, &link).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let authorize = location(&r);
    assert!(
        authorize.starts_with(&format!(
            "{}/smartrecruiters/identity/oauth/allow?",
            app.sandbox_url
        )),
        "{authorize}"
    );
    let callback = app.approve(&authorize).await;
    let r = browser.get(callback).send().await.unwrap();
    let id = connection_id(&app, "direct", "smartrecruiters").await;
    assert_eq!(
        location(&r),
        format!("{APP}/done?keyhaven_status=connected&provider=smartrecruiters&connection_id={id}")
    );

    // Bullhorn needs its username first: its form, and nothing else.
    let link = link_with(&app, &key, "direct-bh", json!({ "provider": "bullhorn" })).await;
    let browser = crate::helpers::browser();
    let r = open_link(&browser, &link).await;
    assert_eq!(location(&r), "/connect");
    let page = app.connect_page(&browser).await;
    assert!(page.contains("id=\"provider-bullhorn\""), "{page}");
    assert!(page.contains("name=\"username\""), "{page}");
    assert_eq!(page.matches("class=\"card\"").count(), 1, "{page}");
    assert!(!page.contains("id=\"back\""), "no return URL, no way back");
}

#[tokio::test]
async fn providers_limit_the_cards_and_the_page_leads_back_to_the_product() {
    let app = product_app().await;
    let key = app.api_key().await;
    let link = link_with(
        &app,
        &key,
        "limited",
        json!({ "providers": ["zoho", "acme"], "return_url": format!("{APP}/settings") }),
    )
    .await;
    let browser = browser();
    open_link(&browser, &link).await;
    let page = app.connect_page(&browser).await;
    for shown in ["acme", "zoho"] {
        assert!(page.contains(&format!("id=\"provider-{shown}\"")), "{page}");
    }
    for hidden in ["smartrecruiters", "bullhorn", "hurdlr"] {
        assert!(
            !page.contains(&format!("id=\"provider-{hidden}\"")),
            "{page}"
        );
    }
    assert!(
        page.contains(&format!(
            "id=\"back\" href=\"{APP}/settings\">← Back to app.example.com</a>"
        )),
        "{page}"
    );
}

#[tokio::test]
async fn popup_mode_ends_on_a_page_that_posts_to_the_product_origin() {
    let app = product_app().await;
    let key = app.api_key().await;
    let link = link_with(
        &app,
        &key,
        "popup",
        json!({ "mode": "popup", "return_url": "http://localhost:3000/integrations" }),
    )
    .await;
    let browser = browser();
    open_link(&browser, &link).await;
    let r = app.connect(&browser, "acme").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let id = connection_id(&app, "popup", "acme").await;
    let last = location(&r);
    assert_eq!(
        last,
        format!("/connect/finished?keyhaven_status=connected&provider=acme&connection_id={id}")
    );
    let r = browser
        .get(format!("{}{last}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        csp.contains(" http://localhost:3000") && csp.contains(" https://app.example.com"),
        "the allowed return origins are form targets: {csp}"
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("<script src=\"/static/keyhaven-popup.js\" defer></script>"));
    assert!(
        page.contains(&format!(
            "data-target-origin=\"http://localhost:3000\" data-status=\"connected\" data-provider=\"acme\" data-connection-id=\"{id}\""
        )),
        "{page}"
    );
    assert!(!page.contains("<script>"), "no inline script");

    // Values on the last page are checked, whatever the address says.
    let page = page_text(
        &browser,
        format!(
            "{}/connect/finished?keyhaven_status=connected&provider=%3Cb%3E&connection_id=nope",
            app.url
        ),
    )
    .await;
    assert!(!page.contains("data-provider"), "{page}");
    assert!(!page.contains("data-connection-id"), "{page}");
    let r = browser
        .get(format!(
            "{}/connect/finished?keyhaven_status=hacked",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Without a popup link in this browser, the page posts nowhere.
    let stranger = page_text(&reqwest::Client::new(), format!("{}{last}", app.url)).await;
    assert!(!stranger.contains("data-target-origin"), "{stranger}");

    let script = reqwest::get(format!("{}/static/keyhaven-popup.js", app.url))
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.text().await.unwrap().contains("keyhaven:connection"));
    let product_side = reqwest::get(format!("{}/static/keyhaven-connect.js", app.url))
        .await
        .unwrap();
    assert_eq!(product_side.status(), StatusCode::OK);
}

fn branded(settings: &mut keyhaven::config::Settings) {
    settings.branding =
        keyhaven::branding::Branding::from_settings(&keyhaven::branding::BrandingSettings {
            product_name: Some("Acme <Recruiting>".into()),
            accent_color: Some("#0F766E".into()),
            logo_path: Some(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/data/logo.svg"),
            ),
            support_url: Some("https://help.acme.example/connections".parse().unwrap()),
        })
        .unwrap()
        .into();
}

#[tokio::test]
async fn branding_appears_on_end_user_pages_and_in_the_stylesheet() {
    let app = spawn_app_with(Options {
        tweak: branded,
        ..Options::default()
    })
    .await;
    let browser = app.user_browser("branded").await;
    let connect = app.connect_page(&browser).await;
    let error = reqwest::get(format!("{}/c/not-a-link", app.url))
        .await
        .unwrap();
    assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    let error = error.text().await.unwrap();
    let home = reqwest::get(format!("{}/", app.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for page in [&connect, &error, &home] {
        assert!(
            page.contains("<span class=\"brand\"><img class=\"logo\" src=\"/branding/logo\" alt=\"\">Acme &#60;Recruiting&#62;</span>"),
            "{page}"
        );
        assert!(page.contains("<link rel=\"stylesheet\" href=\"/branding.css\">"));
        assert!(page.contains("href=\"https://help.acme.example/connections\" id=\"support\""));
        assert!(page.contains("Connections by Keyhaven</footer>"), "{page}");
    }
    assert!(connect.contains("<title>Connect your accounts · Acme &#60;Recruiting&#62;</title>"));

    let css = reqwest::get(format!("{}/branding.css", app.url))
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(
        css.text().await.unwrap(),
        ":root { --accent: #0f766e; --on-accent: #ffffff; }\n"
    );
    let logo = reqwest::get(format!("{}/branding/logo", app.url))
        .await
        .unwrap();
    assert_eq!(logo.status(), StatusCode::OK);
    assert_eq!(logo.headers()["content-type"], "image/svg+xml");
    assert!(
        logo.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(
        logo.bytes().await.unwrap().as_ref(),
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/data/logo.svg")
        )
        .unwrap()
    );
}

#[tokio::test]
async fn unbranded_pages_say_keyhaven_and_the_landing_page_answers() {
    let app = spawn_app().await;
    let r = reqwest::get(format!("{}/", app.url)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("open the link you were given"), "{page}");
    assert!(page.contains("href=\"/admin\""), "{page}");
    assert!(
        page.contains("<span class=\"brand\">Keyhaven</span>"),
        "{page}"
    );
    assert!(!page.contains("/branding/logo"));
    let r = reqwest::get(format!("{}/branding/logo", app.url))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let css = reqwest::get(format!("{}/branding.css", app.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!css.contains("--accent"), "{css}");
}

#[test]
fn link_create_takes_the_same_options_on_the_command_line() {
    use clap::Parser;
    use keyhaven::cli::{Cli, Command, LinkAction};
    let cli = Cli::try_parse_from([
        "keyhaven",
        "link",
        "create",
        "--user",
        "u1",
        "--return-url",
        "https://app.example.com/x",
        "--providers",
        "acme,zoho",
        "--provider",
        "acme",
        "--mode",
        "popup",
    ])
    .unwrap();
    let Command::Link {
        action:
            LinkAction::Create {
                return_url,
                providers,
                provider,
                mode,
                ..
            },
    } = cli.command
    else {
        panic!("link create");
    };
    assert_eq!(return_url.as_deref(), Some("https://app.example.com/x"));
    assert_eq!(
        providers,
        Some(vec!["acme".to_string(), "zoho".to_string()])
    );
    assert_eq!(provider.as_deref(), Some("acme"));
    assert_eq!(mode.as_deref(), Some("popup"));
}

#[tokio::test]
async fn the_demo_reads_the_configuration_file_and_overrides_only_its_own_parts() {
    let dir = std::env::temp_dir().join(format!("keyhaven-demo-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keyhaven.toml");
    std::fs::write(
        &file,
        r#"
[server]
listen = "0.0.0.0:9999"
public_url = "https://portal.example.com"
allowed_return_origins = ["https://app.example.com"]
session_hours = 3

[branding]
product_name = "Acme"

[providers.workday]
kind = "oauth2"
client_id = "real"
client_secret = "real"
authorize_url = "https://workday.example/authorize"
token_url = "https://workday.example/token"
"#,
    )
    .unwrap();
    let keys = keyhaven::crypto::KeyRing::generate_entry("demo").unwrap();
    let settings = keyhaven::cli::demo_settings(
        Some(&file),
        "http://127.0.0.1:8080",
        "127.0.0.1:8080".parse().unwrap(),
        "http://127.0.0.1:8081",
        "postgres://postgres@127.0.0.1/keyhaven_demo",
        &keys,
        "secret",
    )
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(settings.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(settings.public_base(), "http://127.0.0.1:8080");
    assert_eq!(
        settings.return_origins,
        vec![keyhaven::config::parse_allowed_origin("https://app.example.com").unwrap()]
    );
    assert_eq!(settings.server.session_hours, 3);
    assert_eq!(settings.branding.name(), "Acme");
    let mut ids: Vec<&str> = settings.providers.iter().map(|p| p.id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["acme", "bullhorn", "hurdlr", "smartrecruiters", "zoho"],
        "the sandbox's providers replace configured ones"
    );
}
