//! Short names for request chains the tests repeat: fetch a page, read a credential,
//! fill in the sign-in form, start from settings that only lack what a test adds.

use keyhaven::config::RawSettings;
use reqwest::{IntoUrl, StatusCode};
use serde_json::Value;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp};

/// The body of a GET, whatever its status.
pub async fn page_text(client: &reqwest::Client, url: impl IntoUrl) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// The status of a GET.
pub async fn get_status(client: &reqwest::Client, url: impl IntoUrl) -> StatusCode {
    client.get(url).send().await.unwrap().status()
}

/// The sign-in form's fields for the test admin, with the form token `csrf`.
pub fn admin_login_form(csrf: &str) -> [(&str, &str); 3] {
    [
        ("csrf", csrf),
        ("email", ADMIN_EMAIL),
        ("password", ADMIN_PASSWORD),
    ]
}

/// Settings with a fresh encryption key and nothing else set.
pub fn raw_settings_with_key() -> RawSettings {
    RawSettings {
        encryption_keys: Some(
            keyhaven::crypto::KeyRing::generate_entry("k")
                .unwrap()
                .into(),
        ),
        ..Default::default()
    }
}

impl TestApp {
    /// The end user's connect page, as `browser` sees it.
    pub async fn connect_page(&self, browser: &reqwest::Client) -> String {
        page_text(browser, format!("{}/connect", self.url)).await
    }

    /// The JSON body of a credentials request (see `credentials`), whatever its status.
    pub async fn credentials_json(
        &self,
        base: &str,
        key: &str,
        id: uuid::Uuid,
        force: bool,
    ) -> Value {
        self.credentials(base, key, id, force)
            .await
            .json()
            .await
            .unwrap()
    }
}

impl TestApp {
    /// `POST /api/v1/connections/{id}/reconnect-link`'s JSON answer.
    pub async fn reconnect_link(&self, key: &str, id: uuid::Uuid) -> Value {
        reqwest::Client::new()
            .post(format!(
                "{}/api/v1/connections/{id}/reconnect-link",
                self.url
            ))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Starts a Bullhorn flow for `username` from the connect page; the answer leads to
    /// the authorize page at the user's data center.
    pub async fn start_bullhorn(
        &self,
        browser: &reqwest::Client,
        username: &str,
    ) -> reqwest::Response {
        let csrf = self.csrf(browser).await;
        browser
            .post(format!("{}/connect/bullhorn", self.url))
            .form(&[("csrf", csrf.as_str()), ("username", username)])
            .send()
            .await
            .unwrap()
    }

    /// Signs in on the sandbox's Bullhorn login page; returns the callback URL.
    pub async fn bullhorn_sign_in(
        &self,
        authorize: &str,
        username: &str,
        password: &str,
    ) -> String {
        let url = url::Url::parse(authorize).unwrap();
        let mut form: std::collections::HashMap<String, String> =
            url.query_pairs().into_owned().collect();
        form.insert("username".into(), username.into());
        form.insert("password".into(), password.into());
        form.insert("decision".into(), "login".into());
        let r = crate::helpers::browser()
            .post(format!("{}{}", self.sandbox_url, url.path()))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND, "sign in");
        crate::helpers::location(&r)
    }
}
