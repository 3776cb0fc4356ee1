//! Bullhorn's own HTTP calls: `loginInfo` (the user's data center), the headless
//! API-user authorize, REST `login` (the OAuth access token becomes a BhRestToken),
//! `ping` and `settings/userId`. Every host is re-checked against the allow-list.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;
use url::Url;

use super::identity::Account;
use super::token::{TokenError, fetch, read_limited, transport_error};
use crate::providers::bullhorn::{self, Config};
use crate::providers::hosts;
use crate::providers::{Context, Kind, Provider};

/// The provider's Bullhorn settings; any other provider is a caller's mistake.
pub fn config(provider: &Provider) -> Result<&Config, TokenError> {
    match &provider.kind {
        Kind::Bullhorn(cfg) => Ok(cfg),
        _ => Err(TokenError::Malformed("not a Bullhorn provider")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoginInfo {
    oauth_url: String,
    rest_url: String,
}

/// Finds the user's data center. One 307 is followed, explicitly, and only to a host
/// on the allow-list; the hosts in the answer must be on it too, or nothing is sent there.
pub async fn login_info(
    http: &reqwest::Client,
    provider: &Provider,
    username: &str,
) -> Result<Context, TokenError> {
    let cfg = config(provider)?;
    let mut url = cfg.login_info_url.clone();
    cfg.hosts.check(&url)?;
    url.query_pairs_mut().append_pair("username", username);
    let mut response = http
        .get(url.clone())
        .send()
        .await
        .map_err(transport_error)?;
    if response.status() == reqwest::StatusCode::TEMPORARY_REDIRECT {
        let target = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| url.join(l).ok())
            .ok_or(TokenError::Malformed(
                "loginInfo redirect without a usable Location",
            ))?;
        cfg.hosts.check(&target)?;
        response = http.get(target).send().await.map_err(transport_error)?;
        if response.status().is_redirection() {
            return Err(TokenError::Malformed("loginInfo redirected twice"));
        }
    }
    let status = response.status();
    let body = read_limited(response).await?;
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::BAD_REQUEST {
        return Err(TokenError::Rejected("unknown Bullhorn username".into()));
    }
    if status.is_server_error() {
        return Err(TokenError::Unavailable(status.as_u16()));
    }
    if !status.is_success() {
        return Err(TokenError::Rejected(format!(
            "loginInfo answered HTTP {}",
            status.as_u16()
        )));
    }
    let info: LoginInfo =
        serde_json::from_slice(&body).map_err(|_| TokenError::Malformed("loginInfo answer"))?;
    Ok(Context {
        oauth_url: Some(cfg.hosts.parse(&info.oauth_url)?.to_string()),
        rest_url: Some(cfg.hosts.parse(&info.rest_url)?.to_string()),
        ..Context::default()
    })
}

/// Why a headless (API user) authorization did not give a code.
#[derive(Debug, thiserror::Error)]
pub enum HeadlessError {
    #[error("Bullhorn did not accept that username and password")]
    WrongCredentials,
    #[error(transparent)]
    Provider(#[from] TokenError),
}

/// The seed's step 1: `authorize?…&action=Login&username&password`. The code is read
/// from the redirect's `Location` without following it.
pub async fn headless_code(
    http: &reqwest::Client,
    provider: &Provider,
    ctx: &Context,
    redirect_uri: &str,
    username: &str,
    password: &SecretString,
) -> Result<String, HeadlessError> {
    let cfg = config(provider)?;
    let base = bullhorn::oauth_base(cfg, ctx).map_err(TokenError::from)?;
    let mut url = hosts::join(&base, "authorize").map_err(TokenError::from)?;
    url.query_pairs_mut()
        .append_pair("client_id", &provider.client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("action", "Login")
        .append_pair("username", username)
        .append_pair("password", password.expose_secret());
    let response = http.get(url).send().await.map_err(transport_error)?;
    if response.status().is_server_error() {
        return Err(TokenError::Unavailable(response.status().as_u16()).into());
    }
    if !response.status().is_redirection() {
        // Wrong credentials: Bullhorn answers with its HTML login page, no redirect.
        return Err(HeadlessError::WrongCredentials);
    }
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| Url::parse(l).ok())
        .ok_or(TokenError::Malformed("authorize redirect without Location"))?;
    location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .filter(|c| !c.is_empty())
        .ok_or(HeadlessError::WrongCredentials)
}

/// A REST session: the credential a backend uses.
pub struct RestSession {
    pub bh_rest_token: SecretString,
    pub rest_url: String,
    pub expires_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for RestSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestSession")
            .field("rest_url", &self.rest_url)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct LoginAnswer {
    #[serde(rename = "BhRestToken")]
    bh_rest_token: String,
    #[serde(rename = "restUrl")]
    rest_url: String,
}

/// Spends the (one-shot) OAuth access token on REST `login`, then asks `ping` when the
/// session expires.
pub async fn rest_login(
    http: &reqwest::Client,
    provider: &Provider,
    ctx: &Context,
    access_token: &SecretString,
) -> Result<RestSession, TokenError> {
    let cfg = config(provider)?;
    let base = ctx
        .rest_url
        .as_deref()
        .ok_or(TokenError::Malformed("no REST host"))?;
    let mut url = hosts::join(&cfg.hosts.parse(base)?, "login")?;
    url.query_pairs_mut()
        .append_pair("version", "*")
        .append_pair("access_token", access_token.expose_secret());
    let body = fetch(http.post(url), "REST login").await?;
    let answer: LoginAnswer =
        serde_json::from_slice(&body).map_err(|_| TokenError::Malformed("REST login answer"))?;
    // The corporation's REST URL gets the BhRestToken on every call: allow-listed only.
    let rest_url = cfg.hosts.parse(&answer.rest_url)?;
    let mut session = RestSession {
        bh_rest_token: SecretString::from(answer.bh_rest_token),
        rest_url: rest_url.to_string(),
        expires_at: None,
    };
    session.expires_at = ping(http, cfg, &session).await.ok();
    Ok(session)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ping {
    session_expires: i64,
}

async fn rest_get(
    http: &reqwest::Client,
    cfg: &Config,
    session: &RestSession,
    path: &str,
) -> Result<Vec<u8>, TokenError> {
    let url = hosts::join(&cfg.hosts.parse(&session.rest_url)?, path)?;
    let request = http
        .get(url)
        .header("BhRestToken", session.bh_rest_token.expose_secret());
    fetch(request, &format!("REST {path}")).await
}

pub async fn ping(
    http: &reqwest::Client,
    cfg: &Config,
    session: &RestSession,
) -> Result<OffsetDateTime, TokenError> {
    let ping: Ping = serde_json::from_slice(&rest_get(http, cfg, session, "ping").await?)
        .map_err(|_| TokenError::Malformed("ping answer"))?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ping.session_expires) * 1_000_000)
        .map_err(|_| TokenError::Malformed("ping sessionExpires"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserId {
    user_id: serde_json::Value,
}

/// Who am I: `settings/userId`.
pub async fn identify(
    http: &reqwest::Client,
    provider: &Provider,
    session: &RestSession,
) -> Result<Account, TokenError> {
    let cfg = config(provider)?;
    let answer: UserId =
        serde_json::from_slice(&rest_get(http, cfg, session, "settings/userId").await?)
            .map_err(|_| TokenError::Malformed("settings/userId answer"))?;
    let id = match answer.user_id {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) if !s.is_empty() => s,
        _ => return Err(TokenError::Malformed("settings/userId answer")),
    };
    Ok(Account {
        label: Some(format!("Bullhorn user {id}")),
        id: Some(id),
    })
}
