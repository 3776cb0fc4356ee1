//! The `oauth2` crate's client for our providers, and the HTTP client it sends through:
//! the shared `reqwest::Client` (no redirects, bounded timeouts), each provider's request
//! shape (form, JSON object, or Bullhorn's query string with an empty body), the 64 KiB
//! answer cap, and the classification of every answer before the crate reads it. The
//! crate itself only tells a 200 from anything else; throttling, outages, timeouts,
//! Zoho's errors inside a 200 and JSON sent under another content type are decided here.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
};
use oauth2::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use oauth2::http::{HeaderValue, StatusCode};
use oauth2::{
    AsyncHttpClient, AuthType, ClientId, ClientSecret, EndpointNotSet, ErrorResponse, HttpRequest,
    HttpResponse, RequestTokenError, RevocationUrl, StandardRevocableToken,
};
use reqwest::header::RETRY_AFTER;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use super::token::{
    ProviderTokenResponse, TokenError, check_status, error_from_code, parse_retry_after,
    read_limited, transport_error,
};
use crate::providers::{ClientAuth, Provider, TokenBody};

/// The crate's typed client with our token response; which endpoints are set is tracked
/// in the type (authorize, revocation, token).
pub type OAuthClient<Auth = EndpointNotSet, Revocation = EndpointNotSet, Token = EndpointNotSet> =
    oauth2::Client<
        BasicErrorResponse,
        ProviderTokenResponse,
        BasicTokenIntrospectionResponse,
        StandardRevocableToken,
        BasicRevocationErrorResponse,
        Auth,
        EndpointNotSet,
        EndpointNotSet,
        Revocation,
        Token,
    >;

/// A client with the provider's credentials and its way of authenticating (request body
/// or HTTP Basic, RFC 6749 §2.3.1); endpoints are set by the caller.
pub fn for_provider(provider: &Provider) -> OAuthClient {
    OAuthClient::new(ClientId::new(provider.client_id.clone()))
        .set_client_secret(ClientSecret::new(
            provider.client_secret.expose_secret().to_owned(),
        ))
        .set_auth_type(match provider.client_auth {
            ClientAuth::Body => AuthType::RequestBody,
            ClientAuth::Basic => AuthType::BasicAuth,
        })
}

/// The crate refuses a revocation URL that is not https (RFC 7009 §2). Configuration
/// already allows plain http only on loopback where the operator said so (the sandbox);
/// such a URL is handed to the crate as https, and [`ProviderHttp`] sends every call to
/// the real endpoint it holds.
pub fn revocation_url(url: &Url) -> RevocationUrl {
    let mut shown = url.clone();
    if shown.scheme() == "http" {
        // Both are special schemes: the change cannot fail.
        let _ = shown.set_scheme("https");
    }
    RevocationUrl::from_url(shown)
}

/// Turns the crate's failure into ours. `Parse` holds the provider's raw answer (tokens
/// may be in it): it is dropped here unread and never displayed or logged.
pub fn request_error<TE: ErrorResponse>(e: RequestTokenError<TokenError, TE>) -> TokenError {
    match e {
        RequestTokenError::Request(e) => e,
        // Only JSON objects with no `error` reach the crate (see `token_answer`); the one
        // thing it can then fail to read is our own check for an access token.
        RequestTokenError::Parse(_, _) => TokenError::Malformed("no access_token"),
        // The client hands the crate 200s only: error answers were classified before.
        RequestTokenError::ServerResponse(_) => TokenError::Malformed("unexpected error answer"),
        // The crate could not build the request (nothing was sent).
        RequestTokenError::Other(_) => TokenError::Rejected("request could not be built".into()),
    }
}

/// What a call is: how it is sent and how its answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Token(TokenBody),
    Revocation,
}

/// The HTTP client the `oauth2` crate sends through, for one call to one endpoint.
pub struct ProviderHttp<'a> {
    http: &'a reqwest::Client,
    /// Where the call goes: the endpoint resolved for the connection.
    url: &'a Url,
    call: Call,
}

impl<'a> ProviderHttp<'a> {
    pub fn token(http: &'a reqwest::Client, url: &'a Url, body: TokenBody) -> Self {
        Self {
            http,
            url,
            call: Call::Token(body),
        }
    }

    pub fn revocation(http: &'a reqwest::Client, url: &'a Url) -> Self {
        Self {
            http,
            url,
            call: Call::Revocation,
        }
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TokenError> {
        let (parts, body) = request.into_parts();
        let mut headers = parts.headers;
        let mut url = self.url.clone();
        // The crate writes every parameter as a form body; each provider gets its shape.
        let body = match self.call {
            Call::Token(TokenBody::Query) => {
                // Bullhorn: everything in the query string; the body stays empty.
                url.query_pairs_mut()
                    .extend_pairs(url::form_urlencoded::parse(&body));
                headers.remove(CONTENT_TYPE);
                headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
                None
            }
            Call::Token(TokenBody::Json) => {
                let object: Map<String, Value> = url::form_urlencoded::parse(&body)
                    .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                    .collect();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Some(
                    serde_json::to_vec(&object)
                        .map_err(|_| TokenError::Rejected("request could not be built".into()))?,
                )
            }
            Call::Token(TokenBody::Form) | Call::Revocation => Some(body),
        };
        let mut request = self.http.request(parts.method, url).headers(headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        match self.call {
            Call::Token(_) => {
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                let body = read_limited(response).await?;
                token_answer(status, retry_after, body)
            }
            Call::Revocation => {
                let body = read_limited(response).await?;
                // RFC 7009 §2.2: 200 whether or not the token was valid.
                check_status(status, "revocation")?;
                Ok(ok_json(body))
            }
        }
    }
}

impl<'c> AsyncHttpClient<'c> for ProviderHttp<'_> {
    type Error = TokenError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, TokenError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// A token endpoint's answer, classified: failures become our failure classes here;
/// what is handed on to the crate is a 200 JSON object without an `error`, labelled
/// JSON whatever content type the provider sent.
pub(crate) fn token_answer(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
) -> Result<HttpResponse, TokenError> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(TokenError::Throttled { retry_after });
    }
    if status.is_server_error() {
        return Err(TokenError::Unavailable(status.as_u16()));
    }
    let peek: Option<Peek> = serde_json::from_slice(&body).ok();
    // Some providers (Zoho) report errors with HTTP 200, so an `error` key wins over the status.
    if let Some(code) = peek.as_ref().and_then(|p| p.error.as_deref()) {
        return Err(error_from_code(code, retry_after));
    }
    if !status.is_success() {
        return Err(TokenError::Rejected(format!("http_{}", status.as_u16())));
    }
    if peek.is_none() {
        return Err(TokenError::Malformed("not a JSON object"));
    }
    Ok(ok_json(body))
}

/// A 200 with this body, labelled JSON (the crate refuses other content types).
fn ok_json(body: Vec<u8>) -> HttpResponse {
    let mut response = HttpResponse::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// What is read of an answer before the crate sees it: that it is a JSON object, and its
/// `error` when that is a string (the last one, if the key repeats). Other values are
/// skipped without being kept.
struct Peek {
    error: Option<String>,
}

impl<'de> Deserialize<'de> for Peek {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "lowercase")]
        enum Key {
            Error,
            #[serde(other)]
            Other,
        }

        struct Object;

        impl<'de> serde::de::Visitor<'de> for Object {
            type Value = Peek;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Peek, A::Error> {
                let mut error = None;
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Error => {
                            error = match map.next_value::<Value>()? {
                                Value::String(s) => Some(s),
                                _ => None,
                            }
                        }
                        Key::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(Peek { error })
            }
        }

        deserializer.deserialize_map(Object)
    }
}
