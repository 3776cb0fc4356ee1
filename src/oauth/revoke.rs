//! Revoking a grant at the provider: RFC 7009 through the `oauth2` crate for standard
//! servers, Zoho's own endpoint.

use oauth2::{RefreshToken, StandardRevocableToken};
use secrecy::{ExposeSecret, SecretString};

use super::client::{self, ProviderHttp};
use super::token::TokenError;
use super::zoho;
use crate::providers::{Context, Provider, Revocation};

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
    let client = client::for_provider(provider).set_revocation_url(client::revocation_url(url));
    let token = StandardRevocableToken::RefreshToken(RefreshToken::new(
        refresh_token.expose_secret().to_owned(),
    ));
    client
        .revoke_token(token)
        .map_err(|_| TokenError::HostRefused(url.origin().ascii_serialization()))?
        .request_async(&ProviderHttp::revocation(http, url))
        .await
        .map_err(client::request_error)
}
