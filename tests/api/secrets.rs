use keyhaven_sandbox::{Fault, FaultEffect, FaultTarget};
use reqwest::StatusCode;

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
        bodies.push(
            browser
                .get(format!("{}{}", app.url, location(&r)))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
        // Replaying the used callback yields an error page.
        bodies.push(
            browser
                .get(&callback)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
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
    bodies.push(
        browser
            .get(&callback)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let authorize = app.start(&browser, "smartrecruiters").await;
    secrets.push(query_param(&authorize, "state").unwrap());
    let denied = app.decide(&authorize, "deny", "x").await;
    bodies.push(
        browser
            .get(&denied)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );

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
    let admin_session = set_cookie_value(&r, "keyhaven_admin").unwrap();
    secrets.push(admin_session.clone());
    bodies.push(app.admin_page(&admin, "/admin").await);
    bodies.push(app.admin_page(&admin, "/admin/connections").await);
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
