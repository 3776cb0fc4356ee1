//! Zoho Recruit: authorize at the US accounts server, which forwards users to their
//! data center; the callback's `accounts-server` (checked against known hosts, since it
//! arrives in the URL) decides every later token call; errors come as HTTP 200 with an
//! `error` key; refresh never rotates; Recruit's API host is mapped per data center.

use std::collections::BTreeMap;

use secrecy::SecretString;
use url::Url;

use super::ProviderSettings;
use super::{ClientAuth, Context, Kind, Provider, TokenBody};
use crate::config_error::ConfigError;

/// Shown on the card before a reconnect.
pub const RECONNECT_NOTE: &str = "Before you reconnect: Zoho keeps at most 20 active grants per user and silently deletes the oldest when a new one is made, which can disconnect another app you use with Zoho.";

/// location → (accounts server, Recruit API host).
const DATA_CENTERS: &[(&str, &str, &str)] = &[
    (
        "us",
        "https://accounts.zoho.com",
        "https://recruit.zoho.com",
    ),
    ("eu", "https://accounts.zoho.eu", "https://recruit.zoho.eu"),
    ("in", "https://accounts.zoho.in", "https://recruit.zoho.in"),
    (
        "au",
        "https://accounts.zoho.com.au",
        "https://recruit.zoho.com.au",
    ),
    ("jp", "https://accounts.zoho.jp", "https://recruit.zoho.jp"),
    ("uk", "https://accounts.zoho.uk", "https://recruit.zoho.uk"),
    ("sa", "https://accounts.zoho.sa", "https://recruit.zoho.sa"),
    (
        "ca",
        "https://accounts.zohocloud.ca",
        "https://recruit.zohocloud.ca",
    ),
    (
        "cn",
        "https://accounts.zoho.com.cn",
        "https://recruit.zoho.com.cn",
    ),
];
const DEFAULT_SCOPES: &[&str] = &[
    "ZohoRecruit.modules.ALL",
    "ZohoRecruit.users.READ",
    "ZohoRecruit.org.READ",
];

#[derive(Debug, Clone)]
pub struct DataCenter {
    pub location: String,
    pub accounts_url: String,
    pub api_url: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_centers: Vec<DataCenter>,
}

impl Config {
    /// The data center whose accounts server is exactly this one, if any.
    pub fn by_accounts_server(&self, server: &str) -> Option<&DataCenter> {
        let server = server.trim_end_matches('/');
        self.data_centers
            .iter()
            .find(|dc| dc.accounts_url == server)
    }

    pub fn by_location(&self, location: &str) -> Option<&DataCenter> {
        self.data_centers.iter().find(|dc| dc.location == location)
    }

    /// The Recruit API host for a connection: only ever from the data-center table, by
    /// the accounts server that issued the grant (never a host stored in the row).
    pub fn api_host(&self, ctx: &Context) -> Option<&str> {
        let dc = self.by_accounts_server(ctx.accounts_server.as_deref()?)?;
        Some(dc.api_url.as_str())
    }

    pub fn token_url(&self, ctx: &Context) -> Option<Url> {
        let dc = self.by_accounts_server(ctx.accounts_server.as_deref()?)?;
        Url::parse(&format!("{}/oauth/v2/token", dc.accounts_url)).ok()
    }

    /// The callback names the data center; only a known accounts server is accepted.
    pub fn context_from_callback(
        &self,
        accounts_server: Option<&str>,
        location: Option<&str>,
    ) -> Option<Context> {
        let dc = match accounts_server {
            Some(server) => self.by_accounts_server(server)?,
            // Without the parameter the grant was made at the US server we sent the user to.
            None => self.by_location("us").or(self.data_centers.first())?,
        };
        if location.is_some_and(|l| l != dc.location) {
            return None;
        }
        Some(Context {
            location: Some(dc.location.clone()),
            accounts_server: Some(dc.accounts_url.clone()),
            api_host: Some(dc.api_url.clone()),
            ..Context::default()
        })
    }
}

pub fn build(
    id: &str,
    raw: &ProviderSettings,
    client_id: String,
    client_secret: SecretString,
) -> Result<Provider, ConfigError> {
    let mut data_centers = Vec::new();
    if raw.data_centers.is_empty() {
        for (location, accounts, api) in DATA_CENTERS {
            data_centers.push(DataCenter {
                location: location.to_string(),
                accounts_url: accounts.to_string(),
                api_url: api.to_string(),
            });
        }
    } else {
        for (location, dc) in &raw.data_centers {
            let key = |k: &str| format!("data_centers.{location}.{k}");
            let accounts =
                super::url_setting(id, &key("accounts_url"), Some(&dc.accounts_url), None)?;
            let api = super::url_setting(id, &key("api_url"), Some(&dc.api_url), None)?;
            data_centers.push(DataCenter {
                location: location.clone(),
                accounts_url: accounts.as_str().trim_end_matches('/').to_string(),
                api_url: api.as_str().trim_end_matches('/').to_string(),
            });
        }
    }
    let us = data_centers
        .iter()
        .find(|dc| dc.location == "us")
        .or(data_centers.first())
        .ok_or_else(|| {
            ConfigError::new(
                format!("providers.{id}.data_centers"),
                "at least one is needed",
            )
        })?
        .clone();
    // Without offline access there is no refresh token; without consent a second grant has none.
    let mut params: BTreeMap<String, String> = [("access_type", "offline"), ("prompt", "consent")]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    params.extend(raw.authorize_params.clone());
    Ok(Provider {
        id: id.to_string(),
        display_name: raw
            .display_name
            .clone()
            .unwrap_or_else(|| "Zoho Recruit".into()),
        kind: Kind::Zoho(Config { data_centers }),
        client_id,
        client_secret,
        authorize_url: super::url_setting(
            id,
            "authorize_url",
            raw.authorize_url.as_deref(),
            Some(&format!("{}/oauth/v2/auth", us.accounts_url)),
        )?,
        token_url: super::url_setting(
            id,
            "token_url",
            None,
            Some(&format!("{}/oauth/v2/token", us.accounts_url)),
        )?,
        scopes: raw
            .scopes
            .clone()
            .unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()),
        scope_separator: ",".into(),
        client_auth: ClientAuth::Body,
        token_body: TokenBody::Form,
        pkce: false,
        authorize_params: params.into_iter().collect(),
        issuer: None,
        userinfo: None,
        revocation_url: None,
        refresh_token_lifetime: None,
        // Zoho caps live access tokens per grant: refresh on demand only.
        keep_alive: false,
        refresh_concurrency: None,
    })
}
