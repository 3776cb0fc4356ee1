//! Building the URL the browser is sent to.

use url::Url;

use crate::providers::Provider;

pub struct AuthorizeRequest<'a> {
    pub redirect_uri: &'a str,
    pub state: &'a str,
    pub pkce_challenge: Option<&'a str>,
}

/// The provider's authorize `endpoint` (Bullhorn's depends on the data center) with
/// the flow's parameters.
pub fn authorize_url(provider: &Provider, endpoint: Url, req: &AuthorizeRequest<'_>) -> Url {
    let mut url = endpoint;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code");
        q.append_pair("client_id", &provider.client_id);
        q.append_pair("redirect_uri", req.redirect_uri);
        if let Some(scope) = provider.scope_param() {
            q.append_pair("scope", &scope);
        }
        q.append_pair("state", req.state);
        if let Some(challenge) = req.pkce_challenge {
            q.append_pair("code_challenge", challenge);
            q.append_pair("code_challenge_method", "S256");
        }
        for (key, value) in &provider.authorize_params {
            q.append_pair(key, value);
        }
    }
    // `url` encodes spaces as '+'; SmartRecruiters documents `%20` between scopes.
    if let Some(query) = url.query().map(|q| q.replace('+', "%20")) {
        url.set_query(Some(&query));
    }
    url
}
