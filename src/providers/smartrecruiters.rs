//! SmartRecruiters: space-separated scopes (never an empty `scope=`), a 30-second code,
//! `200 {}` as a failure, rotating 28-day single-use refresh tokens, who-am-I at `/users/me`.

use secrecy::SecretString;
use serde::Deserialize;

use super::ProviderSettings;
use super::{ClientAuth, Kind, Provider, TokenBody, UserInfo};
use crate::config_error::ConfigError;

const AUTHORIZE_URL: &str = "https://www.smartrecruiters.com/identity/oauth/allow";
const TOKEN_URL: &str = "https://www.smartrecruiters.com/identity/oauth/token";
const API_URL: &str = "https://api.smartrecruiters.com";
const DEFAULT_SCOPES: &[&str] = &["candidates_read", "jobs_read", "users_read"];

pub fn build(
    id: &str,
    raw: &ProviderSettings,
    client_id: String,
    client_secret: SecretString,
) -> Result<Provider, ConfigError> {
    let api = super::url_setting(id, "api_url", raw.api_url.as_deref(), Some(API_URL))?;
    let me = api
        .join(&format!("{}/users/me", api.path().trim_end_matches('/')))
        .map_err(|e| ConfigError::new(format!("providers.{id}.api_url"), e.to_string()))?;
    Ok(Provider {
        id: id.to_string(),
        display_name: raw
            .display_name
            .clone()
            .unwrap_or_else(|| "SmartRecruiters".into()),
        kind: Kind::SmartRecruiters,
        client_id,
        client_secret,
        authorize_url: super::url_setting(
            id,
            "authorize_url",
            raw.authorize_url.as_deref(),
            Some(AUTHORIZE_URL),
        )?,
        token_url: super::url_setting(id, "token_url", raw.token_url.as_deref(), Some(TOKEN_URL))?,
        scopes: raw
            .scopes
            .clone()
            .unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()),
        scope_separator: " ".into(),
        client_auth: ClientAuth::Body,
        token_body: raw.token_body.unwrap_or(TokenBody::Form),
        pkce: false,
        authorize_params: raw.authorize_params.clone().into_iter().collect(),
        issuer: None,
        userinfo: Some(UserInfo {
            url: me,
            id_pointer: "/id".into(),
            label_pointer: None,
        }),
        revocation_url: None,
        refresh_token_lifetime: Some(time::Duration::days(28)),
        // Refresh tokens are single-use and lapse after 28 days: renew them in time.
        keep_alive: true,
        refresh_concurrency: None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Me {
    id: String,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

/// `/users/me` → account id and a label ("First Last <email>" or whatever is present).
pub fn account_from_me(body: &serde_json::Value) -> Option<(String, Option<String>)> {
    let me: Me = serde_json::from_value(body.clone()).ok()?;
    let name = [me.first_name.as_deref(), me.last_name.as_deref()]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let label = match (name.is_empty(), me.email) {
        (false, Some(email)) => Some(format!("{name} <{email}>")),
        (true, Some(email)) => Some(email),
        (false, None) => Some(name),
        (true, None) => None,
    };
    Some((me.id, label))
}
