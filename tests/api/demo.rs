//! The demo as a newcomer meets it: only what the pages say, only their forms.

use std::collections::HashMap;

use reqwest::StatusCode;

use crate::chains::page_text;
use crate::helpers::{Options, location, spawn_app_with};

/// Undoes the HTML escaping of attribute values.
fn unescape(value: &str) -> String {
    value
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// An attribute's value inside one tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let marker = format!("{name}=\"");
    let start = tag.find(&marker)? + marker.len();
    tag[start..].split('"').next().map(unescape)
}

/// The form whose action is `action` (or the only form): its action and its fields as
/// a browser would send them (text and hidden inputs with their values).
fn form(page: &str, action: Option<&str>) -> (String, HashMap<String, String>) {
    let form = page
        .split("<form")
        .skip(1)
        .find(|f| action.is_none_or(|a| attribute(f, "action").as_deref() == Some(a)))
        .expect("the form is on the page");
    let form = form.split("</form>").next().unwrap();
    let action = attribute(form, "action").unwrap();
    let fields = form
        .split("<input")
        .skip(1)
        .filter_map(|tag| {
            let tag = tag.split('>').next()?;
            Some((
                attribute(tag, "name")?,
                attribute(tag, "value").unwrap_or_default(),
            ))
        })
        .collect();
    (action, fields)
}

#[tokio::test]
async fn a_newcomer_connects_the_demos_bullhorn_with_any_username_and_password() {
    let app = spawn_app_with(Options {
        demo: true,
        ..Default::default()
    })
    .await;
    let browser = app.user_browser("newcomer").await;
    let page = app.connect_page(&browser).await;
    let card = page
        .split("id=\"provider-bullhorn\"")
        .nth(1)
        .unwrap()
        .split("</li>")
        .next()
        .unwrap();
    assert!(
        card.contains("any Bullhorn username and password work"),
        "{card}"
    );

    // A username nobody registered, ending in a data center's name.
    let (action, mut fields) = form(&page, Some("/connect/bullhorn"));
    fields.insert("username".into(), "ines.ortega.emea".into());
    let r = browser
        .post(format!("{}{action}", app.url))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let authorize = location(&r);
    assert!(authorize.contains("/bullhorn/emea/"), "{authorize}");

    let login = browser.get(&authorize).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let login = login.text().await.unwrap();
    assert!(login.contains("any username and password work"), "{login}");
    assert!(login.contains("emea data center"), "{login}");
    let (action, fields) = form(&login, None);
    let sign_in = format!("{}{action}", app.sandbox_url);

    // Another data center's (new) user is sent away, as at Bullhorn.
    let mut elsewhere = fields.clone();
    elsewhere.insert("username".into(), "sam.west".into());
    elsewhere.insert("password".into(), "anything".into());
    elsewhere.insert("decision".into(), "login".into());
    let r = browser
        .post(&sign_in)
        .form(&elsewhere)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("another data center"));

    let mut fields = fields;
    fields.insert("username".into(), "ines.ortega.emea".into());
    fields.insert("password".into(), "whatever I type 7".into());
    fields.insert("decision".into(), "login".into());
    let r = browser.post(&sign_in).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND, "signed in");
    let r = browser.get(location(&r)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "callback");
    let done = page_text(&browser, format!("{}{}", app.url, location(&r))).await;
    let card = done
        .split("id=\"provider-bullhorn\"")
        .nth(1)
        .unwrap()
        .split("</li>")
        .next()
        .unwrap();
    assert!(card.contains("status-ok"), "{card}");

    let metadata: serde_json::Value = sqlx::query_scalar(
        "SELECT c.metadata FROM connections c JOIN end_users e ON e.id = c.end_user_id
         WHERE e.external_id = 'newcomer' AND c.provider = 'bullhorn' AND c.status = 'active'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert!(
        metadata.to_string().contains("/bullhorn/emea/"),
        "{metadata}"
    );
}

/// The form's first submit button that has a name, as a browser's Enter key sends it.
fn first_button(form_html: &str) -> Option<(String, String)> {
    form_html.split("<button").skip(1).find_map(|tag| {
        let tag = tag.split('>').next()?;
        Some((attribute(tag, "name")?, attribute(tag, "value")?))
    })
}

#[tokio::test]
async fn every_card_in_the_demo_connects_by_filling_in_the_pages_forms() {
    let app = spawn_app_with(Options {
        demo: true,
        ..Default::default()
    })
    .await;
    let browser = app.user_browser("reader").await;
    let page = app.connect_page(&browser).await;
    let providers: Vec<String> = page
        .split("id=\"provider-")
        .skip(1)
        .filter_map(|s| s.split('"').next().map(String::from))
        .collect();
    assert_eq!(providers.len(), 5, "{providers:?}");
    for provider in providers {
        let page = app.connect_page(&browser).await;
        // What a reader does: fill in every empty field, press the button.
        let (action, mut fields) = form(&page, Some(&format!("/connect/{provider}")));
        for value in fields.values_mut().filter(|v| v.is_empty()) {
            *value = "reader".into();
        }
        let r = browser
            .post(format!("{}{action}", app.url))
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{provider}");
        let sandbox_page = browser.get(location(&r)).send().await.unwrap();
        assert_eq!(sandbox_page.status(), StatusCode::OK, "{provider}");
        let sandbox_page = sandbox_page.text().await.unwrap();
        let (action, mut fields) = form(&sandbox_page, None);
        for value in fields.values_mut().filter(|v| v.is_empty()) {
            *value = "reader".into();
        }
        let form_html = sandbox_page.split("<form").nth(1).unwrap();
        let (name, value) = first_button(form_html).unwrap();
        fields.insert(name, value);
        let r = browser
            .post(format!("{}{action}", app.sandbox_url))
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND, "{provider}: {sandbox_page}");
        let r = browser.get(location(&r)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{provider} callback");
        let done = page_text(&browser, format!("{}{}", app.url, location(&r))).await;
        let card = done
            .split(&format!("id=\"provider-{provider}\""))
            .nth(1)
            .unwrap()
            .split("</li>")
            .next()
            .unwrap();
        assert!(card.contains("status-ok"), "{provider}: {card}");
    }
}

#[tokio::test]
async fn outside_the_demo_the_sandboxs_bullhorn_still_wants_a_known_user() {
    let app = spawn_app_with(Options::default()).await;
    let browser = app.user_browser("someone").await;
    let page = app.connect_page(&browser).await;
    assert!(!page.contains("any Bullhorn username"));
    let (action, mut fields) = form(&page, Some("/connect/bullhorn"));
    fields.insert("username".into(), "ines.ortega.emea".into());
    let r = browser
        .post(format!("{}{action}", app.url))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_ne!(
        r.status(),
        StatusCode::SEE_OTHER,
        "unknown users are not signed up"
    );
    assert_eq!(app.sandbox.counter("bullhorn.approved"), 0);
}
