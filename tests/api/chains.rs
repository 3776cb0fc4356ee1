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
