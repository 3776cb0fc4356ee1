//! Who-am-I: which upstream account a fresh grant belongs to.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::token::{TokenError, fetch};
use crate::providers::{Kind, Provider, smartrecruiters};

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
    access_token: &SecretString,
) -> Result<Account, TokenError> {
    let Some(userinfo) = &provider.userinfo else {
        return Ok(Account::default());
    };
    let request = http
        .get(userinfo.url.clone())
        .bearer_auth(access_token.expose_secret())
        .header(reqwest::header::ACCEPT, "application/json");
    let body = fetch(request, "who-am-I").await?;
    let json: Value = serde_json::from_slice(&body)
        .map_err(|_| TokenError::Malformed("who-am-I answer is not JSON"))?;
    let (id, label) = match provider.kind {
        Kind::SmartRecruiters => smartrecruiters::account_from_me(&json)
            .ok_or(TokenError::Malformed("users/me has no id"))?,
        _ => {
            let id = json
                .pointer(&userinfo.id_pointer)
                .and_then(scalar)
                .ok_or(TokenError::Malformed("who-am-I answer has no account id"))?;
            let label = userinfo
                .label_pointer
                .as_deref()
                .and_then(|p| json.pointer(p))
                .and_then(scalar);
            (id, label)
        }
    };
    Ok(Account {
        id: Some(clean(&id, 200)),
        label: label.map(|l| clean(&l, 200)),
    })
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Provider text is shown to people (escaped by the templates); drop control characters
/// and bound its length here.
fn clean(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}
