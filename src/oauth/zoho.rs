//! Zoho's own HTTP calls: who-am-I on the data center's Recruit host and revocation at
//! the accounts server that issued the grant.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::identity::Account;
use super::token::{TokenError, fetch};
use crate::providers::zoho::Config;
use crate::providers::{Context, Kind, Provider};

/// The provider's Zoho settings; any other provider is a caller's mistake.
fn config(provider: &Provider) -> Result<&Config, TokenError> {
    match &provider.kind {
        Kind::Zoho(cfg) => Ok(cfg),
        _ => Err(TokenError::Malformed("not a Zoho provider")),
    }
}

#[derive(Deserialize)]
struct Users {
    users: Vec<User>,
}

#[derive(Deserialize)]
struct User {
    id: serde_json::Value,
    full_name: Option<String>,
    email: Option<String>,
}

/// Who am I: `users?type=CurrentUser` on the data center's Recruit host.
pub async fn identify(
    http: &reqwest::Client,
    provider: &Provider,
    ctx: &Context,
    access_token: &SecretString,
) -> Result<Account, TokenError> {
    let cfg = config(provider)?;
    let host = cfg
        .api_host(ctx)
        .ok_or(TokenError::Malformed("no known Recruit host"))?;
    // Zoho wants its own scheme name, not `Bearer`.
    let request = http
        .get(format!("{host}/recruit/v2/users?type=CurrentUser"))
        .header(
            reqwest::header::AUTHORIZATION,
            format!("Zoho-oauthtoken {}", access_token.expose_secret()),
        );
    let body = fetch(request, "Recruit users").await?;
    let users: Users =
        serde_json::from_slice(&body).map_err(|_| TokenError::Malformed("Recruit users answer"))?;
    let user = users
        .users
        .into_iter()
        .next()
        .ok_or(TokenError::Malformed("Recruit users answer is empty"))?;
    let id = match user.id {
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err(TokenError::Malformed("Recruit user id")),
    };
    let label = match (user.full_name, user.email) {
        (Some(n), Some(e)) => Some(format!("{n} <{e}>")),
        (n, e) => n.or(e),
    };
    Ok(Account {
        id: Some(id),
        label,
    })
}

/// Revokes a refresh token at the connection's accounts server.
pub async fn revoke(
    http: &reqwest::Client,
    provider: &Provider,
    ctx: &Context,
    refresh_token: &SecretString,
) -> Result<(), TokenError> {
    let cfg = config(provider)?;
    let dc = ctx
        .accounts_server
        .as_deref()
        .and_then(|s| cfg.by_accounts_server(s))
        .ok_or(TokenError::Malformed("no known accounts server"))?;
    let mut url = Url::parse(&format!("{}/oauth/v2/token/revoke", dc.accounts_url))
        .map_err(|_| TokenError::Malformed("accounts server"))?;
    url.query_pairs_mut()
        .append_pair("token", refresh_token.expose_secret());
    // Throttling and outages as for every provider call; Zoho refuses inside a 200.
    let body = fetch(http.post(url), "revoke").await?;
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if json.get("error").is_some() {
        return Err(TokenError::Rejected("revoke refused".into()));
    }
    Ok(())
}
