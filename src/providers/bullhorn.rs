//! Bullhorn: every host depends on the user's data center, found with `loginInfo`
//! (one documented 307 followed explicitly); no scopes, no PKCE; token parameters in the
//! query string; the OAuth access token is spent on REST `login`, and the credential a
//! backend uses is `{BhRestToken, restUrl}`; refresh tokens rotate and die on use.

use secrecy::SecretString;
use url::Url;

use super::ProviderSettings;
use super::hosts::{self, HostError, HostPolicy};
use super::{ClientAuth, Context, Kind, Provider, TokenBody};
use crate::config_error::ConfigError;

const LOGIN_INFO_URL: &str = "https://rest.bullhornstaffing.com/rest-services/loginInfo";
const ALLOWED_HOST_SUFFIXES: &[&str] = &["bullhornstaffing.com"];

#[derive(Debug, Clone)]
pub struct Config {
    pub login_info_url: Url,
    /// Connect with an API user's credentials on our page (headless authorize).
    pub api_user_mode: bool,
    /// Where loginInfo's and REST login's hosts may be; checked at every use.
    pub hosts: HostPolicy,
}

pub fn build(
    id: &str,
    raw: &ProviderSettings,
    client_id: String,
    client_secret: SecretString,
    allow_insecure_hosts: bool,
) -> Result<Provider, ConfigError> {
    let login_info_url = super::url_setting(
        id,
        "login_info_url",
        raw.login_info_url.as_deref(),
        Some(LOGIN_INFO_URL),
    )?;
    let suffixes = raw.allowed_host_suffixes.clone().unwrap_or_else(|| {
        ALLOWED_HOST_SUFFIXES
            .iter()
            .map(|s| s.to_string())
            .collect()
    });
    if suffixes.is_empty()
        || suffixes.iter().any(|s| {
            s.trim_matches('.').is_empty()
                || s.contains(|c: char| c == '/' || c == ':' || c == '*' || c.is_whitespace())
        })
    {
        return Err(ConfigError::new(
            format!("providers.{id}.allowed_host_suffixes"),
            "must list domain names such as \"bullhornstaffing.com\"",
        ));
    }
    let hosts = HostPolicy::new(suffixes, allow_insecure_hosts);
    if hosts.check(&login_info_url).is_err() {
        return Err(ConfigError::new(
            format!("providers.{id}.login_info_url"),
            "must be under one of allowed_host_suffixes",
        ));
    }
    // The authorize and token URLs come from loginInfo per user; these are only fallbacks.
    let fallback = login_info_url.clone();
    Ok(Provider {
        id: id.to_string(),
        display_name: raw
            .display_name
            .clone()
            .unwrap_or_else(|| "Bullhorn".into()),
        kind: Kind::Bullhorn(Config {
            login_info_url,
            api_user_mode: raw.api_user_mode.unwrap_or(false),
            hosts,
        }),
        client_id,
        client_secret,
        authorize_url: fallback.clone(),
        token_url: fallback,
        scopes: Vec::new(),
        scope_separator: " ".into(),
        client_auth: ClientAuth::Body,
        token_body: TokenBody::Query,
        pkce: false,
        authorize_params: raw.authorize_params.clone().into_iter().collect(),
        issuer: None,
        userinfo: None,
        revocation_url: None,
        refresh_token_lifetime: None,
        keep_alive: false,
        refresh_concurrency: None,
    })
}

/// The data center's OAuth base, re-checked against the allow-list at every use (the
/// stored context is only a database row).
pub fn oauth_base(cfg: &Config, ctx: &Context) -> Result<Url, HostError> {
    let raw = ctx
        .oauth_url
        .as_deref()
        .ok_or(HostError::Malformed("no data center"))?;
    cfg.hosts.parse(raw)
}

pub fn token_url(cfg: &Config, ctx: &Context) -> Result<Url, HostError> {
    hosts::join(&oauth_base(cfg, ctx)?, "token")
}

pub fn authorize_url(cfg: &Config, ctx: &Context) -> Option<Url> {
    hosts::join(&oauth_base(cfg, ctx).ok()?, "authorize").ok()
}

/// A Bullhorn username as typed on our page.
pub fn valid_username(username: &str) -> bool {
    (1..=100).contains(&username.len())
        && !username
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
}
