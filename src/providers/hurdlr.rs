//! Hurdlr: form-body token requests with the client credentials in the body; answers
//! carry no `token_type` and date expiry from `created_at` (90 days). Its authorize URL
//! is not published, so it must be configured; without it Hurdlr is not offered.

use secrecy::SecretString;
use url::Url;

use super::ProviderSettings;
use super::{ClientAuth, Kind, Provider, TokenBody, UserInfo};
use crate::config_error::ConfigError;

const TOKEN_URL: &str = "https://sandbox.hurdlr.com/rest/v4/auth/token";
const API_URL: &str = "https://sandbox.hurdlr.com";

/// The inner error means "configured but not offered", with the reason.
pub fn build(
    id: &str,
    raw: &ProviderSettings,
    client_id: String,
    client_secret: SecretString,
) -> Result<Result<Provider, String>, ConfigError> {
    let Some(authorize) = raw.authorize_url.as_deref() else {
        return Ok(Err(
            "authorize_url is not configured (Hurdlr does not publish it; ask Hurdlr for your authorize URL)".into(),
        ));
    };
    let api = super::url_setting(id, "api_url", raw.api_url.as_deref(), Some(API_URL))?;
    let userinfo = Url::parse(&format!(
        "{}/rest/v5/auth/userInfo",
        api.as_str().trim_end_matches('/')
    ))
    .map_err(|e| ConfigError::new(format!("providers.{id}.api_url"), e.to_string()))?;
    Ok(Ok(Provider {
        id: id.to_string(),
        display_name: raw.display_name.clone().unwrap_or_else(|| "Hurdlr".into()),
        kind: Kind::Hurdlr,
        client_id,
        client_secret,
        authorize_url: super::url_setting(id, "authorize_url", Some(authorize), None)?,
        token_url: super::url_setting(id, "token_url", raw.token_url.as_deref(), Some(TOKEN_URL))?,
        scopes: raw.scopes.clone().unwrap_or_default(),
        scope_separator: " ".into(),
        client_auth: ClientAuth::Body,
        token_body: TokenBody::Form,
        pkce: false,
        authorize_params: raw.authorize_params.clone().into_iter().collect(),
        issuer: None,
        userinfo: Some(UserInfo {
            url: userinfo,
            id_pointer: "/userId".into(),
            label_pointer: Some("/email".into()),
        }),
        revocation_url: None,
        refresh_token_lifetime: None,
        // Grants expire (created_at + expires_in): renew them before they do.
        keep_alive: true,
        refresh_concurrency: None,
    }))
}
