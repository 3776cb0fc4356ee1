//! Providers: what is configured (`Provider`, plain data) and where each one differs
//! from plain OAuth 2.0 (one module per provider).

pub mod bullhorn;
pub mod context;
pub mod generic;
pub mod hosts;
pub mod hurdlr;
pub mod settings;
pub mod smartrecruiters;
pub mod zoho;

use std::fmt;

use secrecy::SecretString;
use time::{Duration, OffsetDateTime};
use url::Url;

use crate::config_error::ConfigError;
use settings::KindSetting;
pub use settings::ProviderSettings;

pub use context::Context;
use hosts::HostError;

/// What a provider's card on the connect page asks for besides the button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardForm {
    Button,
    /// The username decides the data center (Bullhorn).
    Username,
    /// An API user's username and password on our page (Bullhorn's API-user mode).
    ApiUser,
}

/// Where a fresh grant learns which upstream account it belongs to.
#[derive(Debug, Clone, Copy)]
pub enum WhoAmI<'a> {
    /// A Bearer who-am-I endpoint (SmartRecruiters, Hurdlr, generic).
    UserInfo(&'a UserInfo),
    /// The provider session's own user (Bullhorn's REST `settings/userId`).
    RestSession,
    /// Recruit's current user at the data center (Zoho).
    RecruitUser,
    /// Nothing to ask: the account stays unnamed.
    Unnamed,
}

/// How a grant is revoked at the provider.
#[derive(Debug, Clone, Copy)]
pub enum Revocation<'a> {
    /// RFC 7009 at this endpoint.
    Standard(&'a Url),
    /// At the accounts server that issued the grant (Zoho).
    AccountsServer,
    Unsupported,
}

/// What a backend receives besides the access token.
pub struct CredentialShape {
    /// `Bearer`, `BhRestToken`, `Zoho-oauthtoken`.
    pub token_type: &'static str,
    /// Provider extras such as `restUrl` or `api_host`.
    pub extras: serde_json::Map<String, serde_json::Value>,
}

/// Which quirks apply, with the provider-specific configuration they need. A new
/// provider adds a variant and a module.
#[derive(Debug, Clone)]
pub enum Kind {
    SmartRecruiters,
    Generic,
    Bullhorn(bullhorn::Config),
    Zoho(zoho::Config),
    Hurdlr,
}

/// How the client authenticates at the token endpoint (`client_auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the request body.
    Body,
    /// HTTP Basic (RFC 6749 §2.3.1).
    Basic,
}

/// How token-endpoint parameters are sent (`token_body`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenBody {
    Form,
    /// A JSON object, as SmartRecruiters' own example does.
    Json,
    /// Every parameter in the query string of a POST with an empty body (Bullhorn).
    Query,
}

/// A who-am-I endpoint and where the account id and label sit in its JSON answer.
#[derive(Debug, Clone)]
pub struct UserInfo {
    pub url: Url,
    pub id_pointer: String,
    pub label_pointer: Option<String>,
}

/// One offered provider, fully resolved from configuration.
#[derive(Clone)]
pub struct Provider {
    pub id: String,
    pub display_name: String,
    pub kind: Kind,
    pub client_id: String,
    pub client_secret: SecretString,
    pub authorize_url: Url,
    pub token_url: Url,
    pub scopes: Vec<String>,
    pub scope_separator: String,
    pub client_auth: ClientAuth,
    pub token_body: TokenBody,
    pub pkce: bool,
    pub authorize_params: Vec<(String, String)>,
    pub issuer: Option<String>,
    pub userinfo: Option<UserInfo>,
    pub revocation_url: Option<Url>,
    /// How long a refresh token lives when the provider does not say (SmartRecruiters: 28 days).
    pub refresh_token_lifetime: Option<time::Duration>,
    /// Whether the background refresher renews grants before they lapse (single-use or
    /// expiring refresh tokens); otherwise refreshes happen on demand only.
    pub keep_alive: bool,
    /// Most background refreshes of this provider in flight at once.
    pub refresh_concurrency: Option<usize>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("authorize_url", &self.authorize_url.as_str())
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Every URL configured for this provider, by its setting under `providers.<id>`.
    pub fn urls(&self) -> Vec<(String, Url)> {
        let mut urls = vec![
            ("authorize_url".to_string(), self.authorize_url.clone()),
            ("token_url".to_string(), self.token_url.clone()),
        ];
        if let Some(info) = &self.userinfo {
            urls.push(("userinfo_url".into(), info.url.clone()));
        }
        if let Some(url) = &self.revocation_url {
            urls.push(("revocation_url".into(), url.clone()));
        }
        match &self.kind {
            Kind::Bullhorn(cfg) => urls.push(("login_info_url".into(), cfg.login_info_url.clone())),
            Kind::Zoho(cfg) => {
                for dc in &cfg.data_centers {
                    for (key, raw) in [("accounts_url", &dc.accounts_url), ("api_url", &dc.api_url)]
                    {
                        // Parsed when the provider was built; a failure cannot happen here.
                        if let Ok(url) = Url::parse(raw) {
                            urls.push((format!("data_centers.{}.{key}", dc.location), url));
                        }
                    }
                }
            }
            _ => {}
        }
        urls
    }

    /// Every distinct URL configured for this provider, named for people (what
    /// `keyhaven check` reaches): `token URL`, `accounts URL (eu)`.
    pub fn configured_urls(&self) -> Vec<(String, Url)> {
        let mut seen = std::collections::HashSet::new();
        self.urls()
            .into_iter()
            .filter(|(_, url)| seen.insert(url.clone()))
            .map(|(key, url)| {
                let (place, key) = match key.rsplit_once('.') {
                    Some((place, key)) => (place.strip_prefix("data_centers."), key.to_string()),
                    None => (None, key),
                };
                let name = format!("{} URL", key.trim_end_matches("_url").replace('_', " "));
                let name = match place {
                    Some(location) => format!("{name} ({location})"),
                    None => name,
                };
                (name, url)
            })
            .collect()
    }

    /// The token endpoint for a connection: Bullhorn and Zoho answer at the user's data
    /// center. A Bullhorn host is checked against the allow-list at every use.
    pub fn token_url(&self, ctx: &Context) -> Result<Url, HostError> {
        match &self.kind {
            Kind::Bullhorn(cfg) => bullhorn::token_url(cfg, ctx),
            Kind::Zoho(cfg) => Ok(cfg.token_url(ctx).unwrap_or_else(|| self.token_url.clone())),
            _ => Ok(self.token_url.clone()),
        }
    }

    /// Origins a form on our pages may lead the browser to (CSP `form-action`): the
    /// authorize endpoint, every Zoho data center, every allowed Bullhorn domain.
    pub fn form_origins(&self) -> Vec<String> {
        let mut origins = vec![self.authorize_url.origin().ascii_serialization()];
        match &self.kind {
            Kind::Bullhorn(cfg) => {
                for suffix in cfg.hosts.suffixes() {
                    if cfg.hosts.insecure_loopback() {
                        origins.push(format!("http://{suffix}:*"));
                    }
                    origins.push(format!("https://{suffix}"));
                    if suffix.parse::<std::net::IpAddr>().is_err() {
                        origins.push(format!("https://*.{suffix}"));
                    }
                }
            }
            Kind::Zoho(cfg) => {
                for dc in &cfg.data_centers {
                    if let Ok(url) = Url::parse(&dc.accounts_url) {
                        origins.push(url.origin().ascii_serialization());
                    }
                }
            }
            _ => {}
        }
        origins
    }

    /// The authorize endpoint for a flow (Bullhorn's depends on the user's data center).
    pub fn authorize_endpoint(&self, ctx: &Context) -> Url {
        match &self.kind {
            Kind::Bullhorn(cfg) => {
                bullhorn::authorize_url(cfg, ctx).unwrap_or_else(|| self.authorize_url.clone())
            }
            _ => self.authorize_url.clone(),
        }
    }

    /// What the provider's card asks for.
    pub fn card_form(&self) -> CardForm {
        match &self.kind {
            Kind::Bullhorn(cfg) if cfg.api_user_mode => CardForm::ApiUser,
            Kind::Bullhorn(_) => CardForm::Username,
            _ => CardForm::Button,
        }
    }

    /// A username as typed on the card, when the card asks for one.
    pub fn valid_username(&self, username: &str) -> bool {
        match &self.kind {
            Kind::Bullhorn(_) => bullhorn::valid_username(username),
            _ => false,
        }
    }

    /// What the user should know before reconnecting, if anything.
    pub fn reconnect_note(&self) -> Option<&'static str> {
        match &self.kind {
            Kind::Zoho(_) => Some(zoho::RECONNECT_NOTE),
            _ => None,
        }
    }

    /// The connection's context once the callback has arrived. Zoho names the data
    /// center in the callback URL, where anyone can write anything: `None` when it is
    /// not a known one. Other providers keep what the flow started with.
    pub fn context_from_callback(
        &self,
        started: Context,
        accounts_server: Option<&str>,
        location: Option<&str>,
    ) -> Option<Context> {
        match &self.kind {
            Kind::Zoho(cfg) => cfg.context_from_callback(accounts_server, location),
            _ => Some(started),
        }
    }

    /// The credential a backend uses is a provider session made from the OAuth access
    /// token (Bullhorn's BhRestToken), not the access token itself.
    pub fn needs_rest_session(&self) -> bool {
        matches!(self.kind, Kind::Bullhorn(_))
    }

    pub fn who_am_i(&self) -> WhoAmI<'_> {
        match (&self.kind, &self.userinfo) {
            (Kind::Bullhorn(_), _) => WhoAmI::RestSession,
            (Kind::Zoho(_), _) => WhoAmI::RecruitUser,
            (_, Some(info)) => WhoAmI::UserInfo(info),
            (_, None) => WhoAmI::Unnamed,
        }
    }

    /// The account id and label in a who-am-I answer.
    pub fn account_from_userinfo(
        &self,
        info: &UserInfo,
        json: &serde_json::Value,
    ) -> Option<(String, Option<String>)> {
        match &self.kind {
            Kind::SmartRecruiters => smartrecruiters::account_from_me(json),
            _ => {
                let id = json.pointer(&info.id_pointer).and_then(scalar)?;
                let label = info
                    .label_pointer
                    .as_deref()
                    .and_then(|p| json.pointer(p))
                    .and_then(scalar);
                Some((id, label))
            }
        }
    }

    pub fn revocation(&self) -> Revocation<'_> {
        match (&self.kind, &self.revocation_url) {
            (Kind::Zoho(_), _) => Revocation::AccountsServer,
            (_, Some(url)) => Revocation::Standard(url),
            (_, None) => Revocation::Unsupported,
        }
    }

    /// When the background refresher should renew a grant: only where a refresh token
    /// would otherwise lapse (single-use tokens with a lifetime, expiring grants).
    pub fn next_refresh_at(
        &self,
        has_refresh_token: bool,
        access_expires_at: Option<OffsetDateTime>,
        refresh_expires_at: Option<OffsetDateTime>,
    ) -> Option<OffsetDateTime> {
        if !self.keep_alive || !has_refresh_token {
            return None;
        }
        match (&self.kind, refresh_expires_at, access_expires_at) {
            (_, Some(lapses), _) => Some(lapses - Duration::days(2)),
            // Hurdlr's grant ends with its 90-day access token.
            (Kind::Hurdlr, None, Some(expires)) => Some(expires - Duration::days(3)),
            _ => None,
        }
    }

    /// The token type and extras a backend receives for this connection. Bullhorn's
    /// REST URL gets the BhRestToken on every call: allow-listed hosts only.
    pub fn credential_shape(
        &self,
        ctx: &Context,
        token: &str,
    ) -> Result<CredentialShape, HostError> {
        let mut extras = serde_json::Map::new();
        let token_type = match &self.kind {
            Kind::Bullhorn(cfg) => {
                let rest_url = ctx.session_rest_url.as_deref().unwrap_or_default();
                cfg.hosts.parse(rest_url)?;
                extras.insert("BhRestToken".into(), token.into());
                extras.insert("restUrl".into(), rest_url.into());
                "BhRestToken"
            }
            Kind::Zoho(cfg) => {
                extras.insert(
                    "api_host".into(),
                    cfg.api_host(ctx).unwrap_or_default().into(),
                );
                "Zoho-oauthtoken"
            }
            _ => "Bearer",
        };
        Ok(CredentialShape { token_type, extras })
    }

    /// The `scope` parameter, or `None` when no scopes are configured (SmartRecruiters
    /// rejects an empty `scope=`, so it is omitted rather than sent empty).
    pub fn scope_param(&self) -> Option<String> {
        (!self.scopes.is_empty()).then(|| self.scopes.join(&self.scope_separator))
    }
}

fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Builds a provider from its `[providers.<id>]` table. The outer error is a
/// configuration mistake (start-up stops); the inner one means "configured but not
/// offered", with the reason admins see.
pub fn from_settings(
    id: &str,
    raw: &ProviderSettings,
    allow_insecure_hosts: bool,
) -> Result<Result<Provider, String>, ConfigError> {
    if id.is_empty()
        || id.len() > 40
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(ConfigError::new(
            format!("providers.{id}"),
            "provider ids use a-z, 0-9, '-' and '_' (at most 40)",
        ));
    }
    let builtin = match (id, raw.kind) {
        ("smartrecruiters", None) => KindSetting::SmartRecruiters,
        ("bullhorn", None) => KindSetting::Bullhorn,
        ("zoho", None) => KindSetting::Zoho,
        ("hurdlr", None) => KindSetting::Hurdlr,
        (_, None) => {
            return Err(ConfigError::new(
                format!("providers.{id}.kind"),
                "unknown built-in provider; set kind = \"oauth2\" for a generic OAuth 2.0 provider",
            ));
        }
        (_, Some(kind)) => kind,
    };
    let (Some(client_id), Some(client_secret)) = (raw.client_id.clone(), raw.client_secret.clone())
    else {
        return Ok(Err("client_id and client_secret are not configured".into()));
    };
    let mut provider = match builtin {
        KindSetting::SmartRecruiters => smartrecruiters::build(id, raw, client_id, client_secret)?,
        KindSetting::Bullhorn => {
            bullhorn::build(id, raw, client_id, client_secret, allow_insecure_hosts)?
        }
        KindSetting::Zoho => zoho::build(id, raw, client_id, client_secret)?,
        KindSetting::Hurdlr => match hurdlr::build(id, raw, client_id, client_secret)? {
            Ok(p) => p,
            Err(reason) => return Ok(Err(reason)),
        },
        KindSetting::OAuth2 => generic::build(id, raw, client_id, client_secret)?,
    };
    if let Some(n) = raw.refresh_concurrency {
        if n == 0 {
            return Err(ConfigError::new(
                format!("providers.{id}.refresh_concurrency"),
                "must be at least 1",
            ));
        }
        provider.refresh_concurrency = Some(n);
    }
    check_hosts(&provider, allow_insecure_hosts)?;
    Ok(Ok(provider))
}

/// Every configured URL that receives a secret (or sends the browser with a code's
/// state) must be https, or http on loopback where the operator allows it.
fn check_hosts(provider: &Provider, allow_insecure: bool) -> Result<(), ConfigError> {
    for (key, url) in provider.urls() {
        if hosts::transport_allowed(&url, allow_insecure).is_err() {
            return Err(ConfigError::new(
                format!("providers.{}.{key}", provider.id),
                "must be an https URL without credentials (plain http only on loopback with server.allow_insecure_provider_hosts)",
            ));
        }
    }
    Ok(())
}

/// Parses a URL setting, naming the setting when it is wrong.
pub(crate) fn url_setting(
    id: &str,
    key: &str,
    value: Option<&str>,
    default: Option<&str>,
) -> Result<Url, ConfigError> {
    let setting = format!("providers.{id}.{key}");
    let value = value
        .or(default)
        .ok_or_else(|| ConfigError::new(&setting, "missing"))?;
    let url =
        Url::parse(value).map_err(|e| ConfigError::new(&setting, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(&setting, "must be an http or https URL"));
    }
    Ok(url)
}

pub(crate) fn pointer_setting(
    id: &str,
    key: &str,
    value: Option<&str>,
) -> Result<Option<String>, ConfigError> {
    match value {
        Some(p) if !p.is_empty() && !p.starts_with('/') => Err(ConfigError::new(
            format!("providers.{id}.{key}"),
            "must be a JSON pointer such as /sub",
        )),
        other => Ok(other.map(String::from)),
    }
}
