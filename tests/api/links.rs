//! Links through the real HTTP stack: opening one shows a page and changes nothing;
//! only Continue binds the browser (after a confirmation when it acts for someone else),
//! a connect link belongs to the first browser that continues with it, and the connect
//! page replaces an upstream account only when the user chose to.

use reqwest::StatusCode;

use crate::chains::*;
use crate::helpers::*;

async fn connect_page(app: &TestApp, b: &reqwest::Client) -> String {
    let r = b.get(format!("{}/connect", app.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

#[tokio::test]
async fn opening_a_second_users_link_asks_first_and_binds_nothing_until_confirmed() {
    let app = spawn_app().await;
    let b = app.user_browser("first").await;
    assert!(connect_page(&app, &b).await.contains("User first"));
    let sessions = session_table_rows(&app).await;

    let link = app.create_link("second").await;
    let r = b.get(&link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"switch-user\""), "{page}");
    assert!(
        page.contains("acting for <strong>User first</strong>"),
        "{page}"
    );
    assert!(
        page.contains("act for <strong>User second</strong>"),
        "{page}"
    );
    assert!(page.contains("Continue as User second"));
    // Nothing changed yet.
    assert!(connect_page(&app, &b).await.contains("User first"));
    assert_eq!(session_table_rows(&app).await, sessions);

    // A forged or cross-site Continue changes nothing either.
    let csrf = field_value(&page, "csrf").unwrap();
    for attempt in [
        b.post(&link).form(&[("csrf", "forged")]),
        b.post(&link).form(&[("other", "x")]),
        b.post(&link)
            .header("sec-fetch-site", "cross-site")
            .form(&[("csrf", csrf.as_str())]),
        // Another browser's valid token is worthless without that browser's cookie.
        browser().post(&link).form(&[("csrf", csrf.as_str())]),
    ] {
        assert_eq!(
            attempt.send().await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
    }
    assert!(connect_page(&app, &b).await.contains("User first"));
    assert_eq!(session_table_rows(&app).await, sessions);
    // The token is bound to this link: it does not continue another one.
    let third = app.create_link("third").await;
    let r = b
        .post(&third)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Confirmed: now (and only now) the browser acts for the second user.
    let r = continue_link(&b, &link, &page).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/connect");
    let page = connect_page(&app, &b).await;
    assert!(page.contains("User second") && !page.contains("User first"));
    // The same user's link again: no switch to confirm.
    let page = page_text(&b, &link).await;
    assert!(!page.contains("switch-user"));
}

#[tokio::test]
async fn a_connect_link_belongs_to_the_first_browser_that_continues_with_it() {
    let app = spawn_app().await;
    let link = app.create_link("owner").await;
    let (first, second) = (browser(), browser());
    // Both see the page; the first to continue claims the link.
    let page_first = page_text(&first, &link).await;
    let page_second = page_text(&second, &link).await;
    let r = continue_link(&first, &link, &page_first).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let device = set_cookie_value(&r, "keyhaven_device").expect("the claiming cookie");
    let claimed: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT claimed_by FROM links WHERE token_hash = $1")
            .bind(keyhaven::crypto::token_hash(
                link.rsplit('/').next().unwrap(),
            ))
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(claimed, Some(sha256(&device)), "stored hashed");

    let r = continue_link(&second, &link, &page_second).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("already opened in another browser")
    );
    let r = second.get(&link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = second
        .get(format!("{}/connect", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "nothing bound");
    // The first browser can open it again until it expires.
    assert_eq!(
        open_link(&first, &link).await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(connect_page(&app, &first).await.contains("User owner"));
}

#[tokio::test]
async fn opening_a_reconnect_link_uses_it_only_on_continue() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let (_, id) = app.connected("scanned", "smartrecruiters").await;
    let link: serde_json::Value = app.reconnect_link(&key, id).await;
    let url = link["url"].as_str().unwrap();
    // A mail scanner fetches it a few times.
    for _ in 0..3 {
        let r = browser().get(url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.unwrap().contains("Reconnect your account"));
    }
    let used: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT used_at FROM links WHERE kind = 'reconnect'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(used.is_none());
    let user = browser();
    assert_eq!(open_link(&user, url).await.status(), StatusCode::SEE_OTHER);
    assert!(
        connect_page(&app, &user)
            .await
            .contains("Reconnect SmartRecruiters")
    );
    let r = browser().get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// Starts a flow from the connect page's card, optionally with "Connect a different
/// account"; returns the authorize URL.
async fn start_from_card(
    app: &TestApp,
    b: &reqwest::Client,
    provider: &str,
    replace: bool,
) -> String {
    let csrf = app.csrf(b).await;
    let mut form = vec![("csrf", csrf.as_str())];
    if replace {
        form.push(("replace_account", "yes"));
    }
    let r = b
        .post(format!("{}/connect/{provider}", app.url))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    location(&r)
}

#[tokio::test]
async fn reconnecting_another_upstream_account_needs_the_users_choice_and_is_recorded() {
    let app = spawn_app().await;
    let (b, id) = app.connected("switcher", "acme").await;
    let page = connect_page(&app, &b).await;
    assert!(
        page.contains("id=\"replace-acme\"")
            && page.contains("Connect a different account instead of sam.sandbox@example.com"),
        "{page}"
    );
    let tokens_before: (Vec<u8>, Option<String>) =
        sqlx::query_as("SELECT access_token, account_id FROM connections WHERE id = $1")
            .bind(id)
            .fetch_one(app.pool())
            .await
            .unwrap();

    // Reconnect, but sign in upstream as someone else: refused, the new grant revoked.
    let authorize = start_from_card(&app, &b, "acme", false).await;
    let callback = app.decide(&authorize, "approve", "someone.else").await;
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let text = r.text().await.unwrap();
    assert!(text.contains("different account"), "{text}");
    assert!(
        text.contains("someone.else@example.com") && text.contains("sam.sandbox@example.com"),
        "{text}"
    );
    assert!(text.contains("Connect a different account"));
    let tokens_after: (Vec<u8>, Option<String>) =
        sqlx::query_as("SELECT access_token, account_id FROM connections WHERE id = $1")
            .bind(id)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(tokens_before, tokens_after, "nothing changed");
    assert_eq!(
        app.sandbox.counter("oauth2.revoke"),
        1,
        "the refused grant was revoked"
    );
    assert_eq!(app.events_of(id).await, vec!["connected"]);
    // The same account is welcome without the choice.
    let authorize = start_from_card(&app, &b, "acme", false).await;
    let callback = app.approve(&authorize).await;
    assert_eq!(get_status(&b, &callback).await, StatusCode::SEE_OTHER);
    assert_eq!(app.events_of(id).await, vec!["connected", "reconnected"]);

    // With "Connect a different account": replaced, and recorded.
    let authorize = start_from_card(&app, &b, "acme", true).await;
    let callback = app.decide(&authorize, "approve", "someone.else").await;
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let label: Option<String> =
        sqlx::query_scalar("SELECT account_label FROM connections WHERE id = $1")
            .bind(id)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(label.as_deref(), Some("someone.else@example.com"));
    assert_eq!(
        app.events_of(id).await,
        vec!["connected", "reconnected", "reconnected", "account_changed"]
    );
    assert_eq!(app.sandbox.counter("oauth2.revoke"), 1);
}

#[tokio::test]
async fn bullhorn_api_user_mode_replaces_the_account_only_by_choice() {
    let app = spawn_app_with(Options {
        bullhorn_api_user: true,
        ..Options::default()
    })
    .await;
    for user in ["api.first", "api.other"] {
        app.sandbox
            .add_bullhorn_user(user, "a-long-api-user-password", "east")
            .unwrap();
    }
    let b = app.user_browser("bh-switch").await;
    let connect = |username: &'static str, replace: bool| {
        let b = b.clone();
        let app_url = app.url.clone();
        async move {
            let page = page_text(&b, format!("{app_url}/connect")).await;
            let csrf = field_value(&page, "csrf").unwrap();
            let mut form = vec![
                ("csrf", csrf),
                ("username", username.to_string()),
                ("password", "a-long-api-user-password".to_string()),
            ];
            if replace {
                form.push(("replace_account", "yes".into()));
            }
            b.post(format!("{app_url}/connect/bullhorn"))
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        connect("api.first", false).await.status(),
        StatusCode::SEE_OTHER
    );
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM connections")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let r = connect("api.other", false).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains("different account"));
    assert_eq!(app.events_of(id).await, vec!["connected"]);
    assert_eq!(
        connect("api.other", true).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.events_of(id).await,
        vec!["connected", "reconnected", "account_changed"]
    );
}
