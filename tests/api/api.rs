use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::chains::*;
use crate::helpers::*;

#[tokio::test]
async fn connect_links_require_a_valid_api_key_and_body() {
    let app = spawn_app().await;
    let api = reqwest::Client::new();
    let url = format!("{}/api/v1/connect-links", app.url);
    let body = json!({ "end_user": { "external_id": "ext-1", "email": "ext1@example.com", "name": "Ext One" } });

    let r = api.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "unauthorized");
    let r = api
        .post(&url)
        .bearer_auth("khk_wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let key = keyhaven::cli::create_api_key(&app.state, "test")
        .await
        .unwrap();
    let r = api
        .post(&url)
        .bearer_auth(&key)
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "bad_request");
    let r = api
        .post(&url)
        .bearer_auth(&key)
        .json(&json!({ "end_user": { "external_id": "" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = api
        .post(&url)
        .bearer_auth(&key)
        .json(&json!({ "end_user": { "external_id": "a\u{0}b" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let r = api
        .post(&url)
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let link = created["url"].as_str().unwrap();
    assert!(link.starts_with(&format!("{}/c/", app.url)));
    assert!(created["expires_at"].as_str().is_some());
    // Only the SHA-256 of the link's token and of the API key are stored.
    let token = link.rsplit('/').next().unwrap();
    let hashes: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM links")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(hashes, vec![sha256(token)]);
    let keys: Vec<Vec<u8>> = sqlx::query_scalar("SELECT key_hash FROM api_keys")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(keys, vec![sha256(&key)]);

    // The link works in a browser and greets the user by name.
    let browser = browser();
    assert!(page_text(&browser, link).await.contains("Ext One"));
    assert_eq!(
        open_link(&browser, link).await.status(),
        StatusCode::SEE_OTHER
    );
    let page = app.connect_page(&browser).await;
    assert!(page.contains("Ext One"));

    // Listing the end user's connections.
    assert_eq!(
        app.connect(&browser, "smartrecruiters").await.status(),
        StatusCode::SEE_OTHER
    );
    let list: Value = api
        .get(format!("{}/api/v1/end-users/ext-1/connections", app.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["provider"], "smartrecruiters");
    assert_eq!(list[0]["status"], "active");
    assert!(list[0].get("access_token").is_none());
    let r = api
        .get(format!("{}/api/v1/end-users/nobody/connections", app.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_found");
    let r = api
        .get(format!("{}/api/v1/nothing-here", app.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_found");
}
