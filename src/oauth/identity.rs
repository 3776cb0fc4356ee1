//! Who-am-I: which upstream account a fresh grant belongs to.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::token::{TokenError, fetch};
use crate::providers::{Provider, UserInfo};

/// The upstream account behind a grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    pub id: Option<String>,
    pub label: Option<String>,
}

/// Who am I through a Bearer who-am-I endpoint (SmartRecruiters, Hurdlr, generic).
pub async fn identify(
    http: &reqwest::Client,
    provider: &Provider,
    userinfo: &UserInfo,
    access_token: &SecretString,
) -> Result<Account, TokenError> {
    let request = http
        .get(userinfo.url.clone())
        .bearer_auth(access_token.expose_secret())
        .header(reqwest::header::ACCEPT, "application/json");
    let body = fetch(request, "who-am-I").await?;
    let json: Value = serde_json::from_slice(&body)
        .map_err(|_| TokenError::Malformed("who-am-I answer is not JSON"))?;
    let (id, label) = provider
        .account_from_userinfo(userinfo, &json)
        .ok_or(TokenError::Malformed("who-am-I answer has no account id"))?;
    Ok(Account {
        id: Some(clean(&id, 200)),
        label: label.map(|l| clean(&l, 200)),
    })
}

/// Provider text is shown to people (escaped by the templates); drop control characters
/// and bound its length here.
fn clean(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}
