use keyhaven_sandbox::{Fault, FaultEffect, FaultTarget};
use reqwest::StatusCode;

use crate::chains::*;
use crate::helpers::*;

/// Runs every kind of flow with trace logging on, then looks for every secret value
/// (codes, states, verifiers, access and refresh tokens, client secret, link tokens,
/// API key) in the logs, the pages and API bodies we served, and a pg_dump.
#[tokio::test]
async fn no_secret_appears_in_logs_pages_api_bodies_or_the_database_dump() {
    let app = spawn_app().await;
    let mut secrets = vec![CLIENT_SECRET.to_string()];
    let mut bodies = Vec::new();

    let link = app.create_link("leaky").await;
    secrets.push(link.rsplit('/').next().unwrap().to_string());
    let browser = browser();
    let r = browser.get(&link).send().await.unwrap();
    let form_cookie = set_cookie_value(&r, "keyhaven_form").unwrap();
    let page = r.text().await.unwrap();
    secrets.push(form_cookie);
    secrets.push(field_value(&page, "csrf").unwrap());
    let r = continue_link(&browser, &link, &page).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    secrets.push(set_cookie_value(&r, "keyhaven_session").unwrap());
    secrets.push(set_cookie_value(&r, "keyhaven_device").unwrap());

    for provider in ["smartrecruiters", "acme"] {
        let authorize = app.start(&browser, provider).await;
        secrets.push(query_param(&authorize, "state").unwrap());
        let callback = app.approve(&authorize).await;
        let r = browser.get(&callback).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        bodies.push(page_text(&browser, format!("{}{}", app.url, location(&r))).await);
        // Replaying the used callback yields an error page.
        bodies.push(page_text(&browser, &callback).await);
    }
    // A failed exchange and a declined flow.
    app.sandbox.add_fault(Fault {
        provider: "oauth2".into(),
        target: FaultTarget::Exchange,
        effect: FaultEffect::InvalidGrant,
        times: 1,
    });
    let authorize = app.start(&browser, "acme").await;
    secrets.push(query_param(&authorize, "state").unwrap());
    let callback = app.approve(&authorize).await;
    bodies.push(page_text(&browser, &callback).await);
    let authorize = app.start(&browser, "smartrecruiters").await;
    secrets.push(query_param(&authorize, "state").unwrap());
    let denied = app.decide(&authorize, "deny", "x").await;
    bodies.push(page_text(&browser, &denied).await);

    // An admin signs in (once with a wrong password) and looks around: the password, the
    // session id and the sign-in form's token are secrets too.
    app.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    secrets.push(ADMIN_PASSWORD.to_string());
    let admin = crate::helpers::browser();
    let r = admin
        .get(format!("{}/admin/login", app.url))
        .send()
        .await
        .unwrap();
    secrets.push(set_cookie_value(&r, "keyhaven_form").unwrap());
    let login_csrf = field_value(&r.text().await.unwrap(), "csrf").unwrap();
    secrets.push(login_csrf.clone());
    let r = app
        .sign_in(&admin, ADMIN_EMAIL, "sentinel-wrong-password-5a4b3c")
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    secrets.push("sentinel-wrong-password-5a4b3c".into());
    // The form comes back with its own token (that is where it belongs), nothing else.
    bodies.push(r.text().await.unwrap().replace(&login_csrf, ""));
    let r = app.sign_in(&admin, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let mut admin_session = set_cookie_value(&r, "keyhaven_admin").unwrap();
    secrets.push(admin_session.clone());
    bodies.push(app.admin_page(&admin, "/admin").await);
    bodies.push(app.admin_page(&admin, "/admin/connections").await);
    // A password change, refused once for a wrong current password, then made: neither
    // the wrong, the old nor the new password may reach a log line or a page.
    let page = app.admin_page(&admin, "/admin/password").await;
    let csrf = field_value(&page, "csrf").unwrap();
    bodies.push(page.replace(&csrf, ""));
    const WRONG_CURRENT: &str = "sentinel-wrong-current-9d8c7b";
    const NEW_PASSWORD: &str = "sentinel-new-password-6e5f4a";
    for current in [WRONG_CURRENT, ADMIN_PASSWORD] {
        let r = admin
            .post(format!("{}/admin/password", app.url))
            .form(&[
                ("csrf", csrf.as_str()),
                ("current", current),
                ("new_password", NEW_PASSWORD),
                ("repeat", NEW_PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        let changed = r.status() == StatusCode::SEE_OTHER;
        assert_eq!(changed, current == ADMIN_PASSWORD, "{}", r.status());
        if changed {
            // The browser stays signed in under a new session id.
            admin_session = set_cookie_value(&r, "keyhaven_admin").unwrap();
            secrets.push(admin_session.clone());
        }
        bodies.push(r.text().await.unwrap().replace(&csrf, ""));
    }
    secrets.extend([WRONG_CURRENT.to_string(), NEW_PASSWORD.to_string()]);
    bodies.push(app.admin_page(&admin, "/admin/password").await);

    // API: a key, good and bad requests.
    let key = keyhaven::cli::create_api_key(&app.state, "t")
        .await
        .unwrap();
    secrets.push(key.clone());
    let api = reqwest::Client::new();
    for (auth, body) in [
        (
            format!("Bearer {key}"),
            r#"{"end_user":{"external_id":"x1"}}"#.to_string(),
        ),
        (format!("Bearer {key}"), r#"{"end_user":{}}"#.to_string()),
        (
            format!("Bearer {key}x"),
            r#"{"end_user":{"external_id":"x1"}}"#.to_string(),
        ),
    ] {
        let r = api
            .post(format!("{}/api/v1/connect-links", app.url))
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(url) = v.get("url").and_then(|u| u.as_str())
        {
            secrets.push(url.rsplit('/').next().unwrap().to_string());
            continue;
        }
        bodies.push(text);
    }
    bodies.push(
        api.get(format!("{}/api/v1/end-users/leaky/connections", app.url))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );

    let issued = app.sandbox.secrets_seen();
    assert!(
        issued.len() >= 8,
        "codes, tokens and a verifier were issued: {}",
        issued.len()
    );
    secrets.extend(issued);

    // The tests' own browsers log the cookies they store (the `cookie_store` crate):
    // those lines are the client's, not the portal's.
    let logs: String = captured_logs()
        .lines()
        .filter(|l| !l.contains(" cookie_store::"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        logs.contains("connection established"),
        "logs were captured at trace level"
    );
    let dump = std::process::Command::new("pg_dump")
        .arg(&app.database_url)
        .output()
        .expect("pg_dump runs");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(dump.contains("connection_events"));
    // The admin's session is in the dump, under the digest of its id only.
    assert!(dump.contains(&stored_session_id(&admin_session)));

    for secret in &secrets {
        assert!(
            secret.len() >= 16,
            "secret too short to search for: {secret}"
        );
        assert!(
            !logs.contains(secret.as_str()),
            "a secret appears in the logs: {}",
            logs.lines()
                .filter(|l| l.contains(secret.as_str()))
                .take(3)
                .map(|l| l.replace(secret.as_str(), "<SECRET>"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            !dump.contains(secret.as_str()),
            "a secret appears in pg_dump"
        );
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!dump.contains(&hex), "a secret appears in pg_dump as hex");
        for body in &bodies {
            assert!(
                !body.contains(secret.as_str()),
                "a secret appears in a page or API body"
            );
        }
    }
}

const RAW_ANSWER_SENTINEL: &str = "sentinel-raw-token-answer-7e6d5c4b";
/// The stub token endpoint `acme` is pointed at (the settings hook takes no captures).
static UNREADABLE_TOKEN_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Token answers the portal cannot use, each carrying a secret-looking value: one the
/// `oauth2` crate fails to read (it keeps the raw body in its error), one that is not
/// JSON, one refusal. None of their text reaches the logs or the page.
#[tokio::test]
async fn an_unreadable_token_answer_reaches_no_log_and_no_page() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let answers: [(u16, &str, String); 3] = [
        (
            200,
            "text/plain",
            format!(
                r#"{{"access_token":["{RAW_ANSWER_SENTINEL}"],"refresh_token":"{RAW_ANSWER_SENTINEL}","token_type":"bearer"}}"#
            ),
        ),
        (
            200,
            "text/html",
            format!("<html>{RAW_ANSWER_SENTINEL}</html>"),
        ),
        (
            400,
            "application/json",
            format!(r#"{{"error_description":"{RAW_ANSWER_SENTINEL}"}}"#),
        ),
    ];
    let hits = Arc::new(AtomicUsize::new(0));
    let stub_hits = hits.clone();
    let stub = axum::Router::new().route(
        "/token",
        axum::routing::post(move || {
            let (status, content_type, body) =
                answers[stub_hits.fetch_add(1, Ordering::SeqCst) % answers.len()].clone();
            async move {
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("content-type", content_type)],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stub_url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, stub).await });
    UNREADABLE_TOKEN_URL.set(stub_url).unwrap();
    let app = spawn_app_with(Options {
        tweak: |s| {
            let url = UNREADABLE_TOKEN_URL.get().unwrap().parse().unwrap();
            s.providers
                .iter_mut()
                .find(|p| p.id == "acme")
                .unwrap()
                .token_url = url;
        },
        ..Options::default()
    })
    .await;
    let browser = app.user_browser("unreadable").await;
    let mut pages = Vec::new();
    for expected in [
        "not a usable token response (no access_token)",
        "not a usable token response (not a JSON object)",
        "the provider refused the request (http_400)",
    ] {
        let r = app.connect(&browser, "acme").await;
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        let page = r.text().await.unwrap();
        assert!(page.contains("Nothing was changed"), "{page}");
        pages.push(page);
        assert!(
            captured_logs().contains(expected),
            "the failure is logged by its class: {expected}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 3, "each answer was received");
    assert_eq!(app.connection_count().await, 0);
    assert!(
        !captured_logs().contains(RAW_ANSWER_SENTINEL),
        "the raw answer appears in the logs"
    );
    for page in &pages {
        assert!(
            !page.contains(RAW_ANSWER_SENTINEL),
            "the raw answer appears in a page"
        );
    }
}
