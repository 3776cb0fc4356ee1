//! Providers: what is configured (`Provider`, plain data) and where each one differs
//! from plain OAuth 2.0 (one module per provider).

pub mod generic;
pub mod smartrecruiters;

use std::fmt;

use secrecy::SecretString;
use url::Url;

use crate::config::{ConfigError, ProviderSettings};

/// Which quirks apply. New providers add a variant and a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SmartRecruiters,
    Generic,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the request body.
    Body,
    /// HTTP Basic (RFC 6749 §2.3.1).
    Basic,
}

/// How token-endpoint parameters are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenBody {
    Form,
    /// A JSON object, as SmartRecruiters' own example does.
    Json,
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
    /// The `scope` parameter, or `None` when no scopes are configured (SmartRecruiters
    /// rejects an empty `scope=`, so it is omitted rather than sent empty).
    pub fn scope_param(&self) -> Option<String> {
        (!self.scopes.is_empty()).then(|| self.scopes.join(&self.scope_separator))
    }
}

/// Builds a provider from its `[providers.<id>]` table. The outer error is a
/// configuration mistake (start-up stops); the inner one means "configured but not
/// offered", with the reason admins see.
pub fn from_settings(
    id: &str,
    raw: &ProviderSettings,
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
    let kind = match (id, raw.kind.as_deref()) {
        ("smartrecruiters", None | Some("smartrecruiters")) => Kind::SmartRecruiters,
        (_, Some("oauth2")) => Kind::Generic,
        (_, None) => {
            return Err(ConfigError::new(
                format!("providers.{id}.kind"),
                "unknown built-in provider; set kind = \"oauth2\" for a generic OAuth 2.0 provider",
            ));
        }
        (_, Some(other)) => {
            return Err(ConfigError::new(
                format!("providers.{id}.kind"),
                format!("unknown kind {other:?} (expected \"oauth2\")"),
            ));
        }
    };
    let (Some(client_id), Some(client_secret)) = (raw.client_id.clone(), raw.client_secret.clone())
    else {
        return Ok(Err("client_id and client_secret are not configured".into()));
    };
    let provider = match kind {
        Kind::SmartRecruiters => smartrecruiters::build(id, raw, client_id, client_secret)?,
        Kind::Generic => generic::build(id, raw, client_id, client_secret)?,
    };
    Ok(Ok(provider))
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

pub(crate) fn client_auth_setting(
    id: &str,
    value: Option<&str>,
    default: ClientAuth,
) -> Result<ClientAuth, ConfigError> {
    match value {
        None => Ok(default),
        Some("body") => Ok(ClientAuth::Body),
        Some("basic") => Ok(ClientAuth::Basic),
        Some(_) => Err(ConfigError::new(
            format!("providers.{id}.client_auth"),
            "must be \"body\" or \"basic\"",
        )),
    }
}

pub(crate) fn token_body_setting(id: &str, value: Option<&str>) -> Result<TokenBody, ConfigError> {
    match value {
        None | Some("form") => Ok(TokenBody::Form),
        Some("json") => Ok(TokenBody::Json),
        Some(_) => Err(ConfigError::new(
            format!("providers.{id}.token_body"),
            "must be \"form\" or \"json\"",
        )),
    }
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
