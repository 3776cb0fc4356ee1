//! Building the URL the browser is sent to, through the `oauth2` crate.

use std::borrow::Cow;

use oauth2::{
    AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};
use url::Url;

use super::client::OAuthClient;
use crate::crypto::{self, CryptoError};
use crate::providers::Provider;

pub struct AuthorizeRequest<'a> {
    pub redirect_uri: &'a str,
    pub state: &'a str,
    pub pkce_challenge: Option<&'a PkceCodeChallenge>,
}

/// PKCE S256 (RFC 7636): a verifier of 256 bits from the OS CSPRNG and its challenge.
pub fn pkce() -> Result<(PkceCodeVerifier, PkceCodeChallenge), CryptoError> {
    let verifier = PkceCodeVerifier::new(crypto::random_token()?);
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
    Ok((verifier, challenge))
}

/// The provider's authorize `endpoint` (Bullhorn's depends on the data center) with
/// the flow's parameters.
pub fn authorize_url(
    provider: &Provider,
    endpoint: Url,
    req: &AuthorizeRequest<'_>,
) -> Result<Url, url::ParseError> {
    let client = OAuthClient::new(ClientId::new(provider.client_id.clone()))
        .set_auth_uri(AuthUrl::from_url(endpoint));
    let mut request = client
        .authorize_url(|| CsrfToken::new(req.state.to_owned()))
        .set_redirect_uri(Cow::Owned(RedirectUrl::new(req.redirect_uri.to_owned())?));
    // One `scope` value, joined with the provider's separator (Zoho: commas).
    if let Some(scope) = provider.scope_param() {
        request = request.add_scope(Scope::new(scope));
    }
    if let Some(challenge) = req.pkce_challenge {
        request = request.set_pkce_challenge(challenge.clone());
    }
    for (key, value) in &provider.authorize_params {
        request = request.add_extra_param(key.as_str(), value.as_str());
    }
    let (mut url, _) = request.url();
    // `url` encodes spaces as '+'; SmartRecruiters documents `%20` between scopes.
    if let Some(query) = url.query().map(|q| q.replace('+', "%20")) {
        url.set_query(Some(&query));
    }
    Ok(url)
}
