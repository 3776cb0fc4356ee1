//! A standard OAuth 2.0 provider described entirely in configuration.

use secrecy::SecretString;

use super::ProviderSettings;
use super::{Kind, Provider, UserInfo};
use crate::config_error::ConfigError;

pub fn build(
    id: &str,
    raw: &ProviderSettings,
    client_id: String,
    client_secret: SecretString,
) -> Result<Provider, ConfigError> {
    let userinfo = match raw.userinfo_url.as_deref() {
        None => None,
        Some(url) => Some(UserInfo {
            url: super::url_setting(id, "userinfo_url", Some(url), None)?,
            id_pointer: super::pointer_setting(
                id,
                "account_id_pointer",
                raw.account_id_pointer.as_deref(),
            )?
            .unwrap_or_else(|| "/sub".into()),
            label_pointer: super::pointer_setting(
                id,
                "account_label_pointer",
                raw.account_label_pointer.as_deref(),
            )?,
        }),
    };
    let revocation_url = match raw.revocation_url.as_deref() {
        None => None,
        Some(url) => Some(super::url_setting(id, "revocation_url", Some(url), None)?),
    };
    Ok(Provider {
        id: id.to_string(),
        display_name: raw.display_name.clone().unwrap_or_else(|| id.to_string()),
        kind: Kind::Generic,
        client_id,
        client_secret,
        authorize_url: super::url_setting(id, "authorize_url", raw.authorize_url.as_deref(), None)?,
        token_url: super::url_setting(id, "token_url", raw.token_url.as_deref(), None)?,
        scopes: raw.scopes.clone().unwrap_or_default(),
        scope_separator: raw.scope_separator.clone().unwrap_or_else(|| " ".into()),
        client_auth: raw.client_auth.unwrap_or(super::ClientAuth::Basic),
        token_body: raw.token_body.unwrap_or(super::TokenBody::Form),
        pkce: raw.pkce.unwrap_or(true),
        authorize_params: raw.authorize_params.clone().into_iter().collect(),
        issuer: raw.issuer.clone(),
        userinfo,
        revocation_url,
        refresh_token_lifetime: None,
        keep_alive: false,
        refresh_concurrency: None,
    })
}
