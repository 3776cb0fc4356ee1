//! Revoking a grant at the provider: RFC 7009 for standard servers, Zoho's own endpoint.

use secrecy::{ExposeSecret, SecretString};

use super::token::{TokenError, fetch};
use super::zoho;
use crate::providers::{ClientAuth, Context, Provider, Revocation};

/// Whether the provider can revoke grants at all.
pub fn supported(provider: &Provider) -> bool {
    !matches!(provider.revocation(), Revocation::Unsupported)
}

pub async fn revoke(
    http: &reqwest::Client,
    provider: &Provider,
    ctx: &Context,
    refresh_token: &SecretString,
) -> Result<(), TokenError> {
    let url = match provider.revocation() {
        Revocation::Standard(url) => url,
        Revocation::AccountsServer => {
            return zoho::revoke(http, provider, ctx, refresh_token).await;
        }
        Revocation::Unsupported => {
            return Err(TokenError::Rejected("revocation not supported".into()));
        }
    };
    let secret = provider.client_secret.expose_secret();
    let mut params = vec![
        ("token", refresh_token.expose_secret()),
        ("token_type_hint", "refresh_token"),
    ];
    let mut req = http.post(url.clone());
    match provider.client_auth {
        ClientAuth::Basic => req = req.basic_auth(&provider.client_id, Some(secret)),
        ClientAuth::Body => {
            params.push(("client_id", &provider.client_id));
            params.push(("client_secret", secret));
        }
    }
    // RFC 7009 §2.2: 200 whether or not the token was valid.
    fetch(req.form(&params), "revocation").await.map(|_| ())
}
