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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, Uri};
    use axum::response::IntoResponse;
    use base64::Engine;
    use secrecy::SecretString;
    use time::OffsetDateTime;

    use super::*;
    use crate::config::ProviderSettings;
    use crate::oauth::token::{self, Grant, TokenSet};
    use crate::providers::{self, Context};

    /// A request as the provider received it.
    struct Seen {
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    }

    /// One answer of the stub provider: status, headers, body.
    type Answer = (u16, Vec<(&'static str, String)>, Vec<u8>);

    /// A provider endpoint on loopback that records each request and gives one answer.
    async fn stub(answer: Answer) -> (Url, Arc<Mutex<Vec<Seen>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let router = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                log.lock().expect("not poisoned").push(Seen {
                    method,
                    uri,
                    headers,
                    body,
                });
                let (status, headers, body) = answer.clone();
                async move {
                    let mut response =
                        (StatusCode::from_u16(status).expect("a status"), body).into_response();
                    for (name, value) in headers {
                        response
                            .headers_mut()
                            .insert(name, HeaderValue::from_str(&value).expect("a value"));
                    }
                    response
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = Url::parse(&format!(
            "http://{}/oauth/token?tenant=t1",
            listener.local_addr().expect("address")
        ))
        .expect("a URL");
        tokio::spawn(async move { axum::serve(listener, router).await });
        (url, seen)
    }

    fn provider(token_url: &Url, auth: ClientAuth, body: TokenBody) -> Provider {
        let raw = ProviderSettings {
            kind: Some(crate::providers::settings::KindSetting::OAuth2),
            client_id: Some("the client:1".into()),
            client_secret: Some(SecretString::from("s&cret/+=")),
            authorize_url: Some("https://provider.test/authorize".into()),
            token_url: Some(token_url.to_string()),
            ..ProviderSettings::default()
        };
        let mut provider = providers::from_settings("acme", &raw, true)
            .expect("valid settings")
            .expect("offered");
        provider.client_auth = auth;
        provider.token_body = body;
        provider
    }

    fn json_ok(body: &str) -> Answer {
        (
            200,
            vec![("content-type", "application/json".into())],
            body.as_bytes().to_vec(),
        )
    }

    const TOKEN: &str = r#"{"access_token":"at","token_type":"bearer","expires_in":60}"#;

    async fn exchange(provider: &Provider) -> Result<TokenSet, TokenError> {
        let http =
            crate::outbound::provider_client(std::time::Duration::from_secs(5)).expect("client");
        let grant = Grant::Code {
            code: "c:1/2",
            redirect_uri: "https://portal.test/oauth/acme/callback",
            verifier: Some("v"),
        };
        token::request(
            &http,
            provider,
            &Context::default(),
            grant,
            OffsetDateTime::now_utc(),
        )
        .await
    }

    fn pairs(s: &[u8]) -> Vec<(String, String)> {
        url::form_urlencoded::parse(s).into_owned().collect()
    }

    fn expected_params(with_client: bool) -> Vec<(String, String)> {
        let mut params = vec![
            ("grant_type", "authorization_code"),
            ("code", "c:1/2"),
            ("code_verifier", "v"),
        ];
        if with_client {
            params.extend([
                ("client_id", "the client:1"),
                ("client_secret", "s&cret/+="),
            ]);
        }
        params.push(("redirect_uri", "https://portal.test/oauth/acme/callback"));
        params
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn bullhorn_style_parameters_go_in_the_query_string_of_an_empty_post() {
        let (url, seen) = stub(json_ok(TOKEN)).await;
        let tokens = exchange(&provider(&url, ClientAuth::Body, TokenBody::Query))
            .await
            .expect("accepted");
        assert_eq!(tokens.token_type.as_deref(), Some("bearer"));
        let seen = seen.lock().expect("not poisoned");
        let [request] = &seen[..] else {
            panic!("one request")
        };
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.uri.path(), "/oauth/token");
        let mut expected = vec![("tenant".to_string(), "t1".to_string())];
        expected.extend(expected_params(true));
        assert_eq!(
            pairs(request.uri.query().unwrap_or("").as_bytes()),
            expected
        );
        assert!(request.body.is_empty());
        assert_eq!(request.headers[CONTENT_LENGTH], "0");
        assert!(request.headers.get(CONTENT_TYPE).is_none());
        assert!(request.headers.get("authorization").is_none());
    }

    #[tokio::test]
    async fn a_json_body_carries_every_parameter_as_a_string() {
        let (url, seen) = stub(json_ok(TOKEN)).await;
        exchange(&provider(&url, ClientAuth::Body, TokenBody::Json))
            .await
            .expect("accepted");
        let seen = seen.lock().expect("not poisoned");
        let request = &seen[0];
        assert_eq!(request.headers[CONTENT_TYPE], "application/json");
        assert_eq!(request.uri.query(), Some("tenant=t1"));
        let body: Map<String, Value> = serde_json::from_slice(&request.body).expect("JSON");
        let expected: Map<String, Value> = expected_params(true)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        assert_eq!(body, expected);
    }

    #[tokio::test]
    async fn basic_client_auth_encodes_both_parts_and_keeps_the_secret_out_of_the_form() {
        let (url, seen) = stub(json_ok(TOKEN)).await;
        exchange(&provider(&url, ClientAuth::Basic, TokenBody::Form))
            .await
            .expect("accepted");
        let seen = seen.lock().expect("not poisoned");
        let request = &seen[0];
        assert_eq!(
            request.headers[CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(request.headers["accept"], "application/json");
        let credentials =
            base64::engine::general_purpose::STANDARD.encode("the+client%3A1:s%26cret%2F%2B%3D");
        assert_eq!(
            request.headers["authorization"],
            format!("Basic {credentials}").as_str()
        );
        assert_eq!(pairs(&request.body), expected_params(false));
    }

    #[tokio::test]
    async fn answers_are_classified_before_the_crate_reads_them() {
        let cases: Vec<(Answer, Result<Option<&str>, TokenError>)> = vec![
            // JSON under another content type is read as JSON.
            (
                (
                    200,
                    vec![("content-type", "text/plain".into())],
                    TOKEN.into(),
                ),
                Ok(Some("bearer")),
            ),
            // Hurdlr: no token_type, no content type at all.
            (
                (
                    200,
                    vec![],
                    br#"{"access_token":"a","expires_in":"5"}"#.to_vec(),
                ),
                Ok(None),
            ),
            (
                (
                    429,
                    vec![("retry-after", "7".into())],
                    b"slow down".to_vec(),
                ),
                Err(TokenError::Throttled {
                    retry_after: Some(Duration::from_secs(7)),
                }),
            ),
            (
                (503, vec![], br#"{"error":"invalid_grant"}"#.to_vec()),
                Err(TokenError::Unavailable(503)),
            ),
            // Zoho: an error inside a 200.
            (
                json_ok(r#"{"error":"invalid_code"}"#),
                Err(TokenError::InvalidGrant("invalid_code".into())),
            ),
            (
                (
                    400,
                    vec![("retry-after", "9".into())],
                    br#"{"error":"Access Denied","status":"failure"}"#.to_vec(),
                ),
                Err(TokenError::Throttled {
                    retry_after: Some(Duration::from_secs(9)),
                }),
            ),
            (
                (401, vec![], br#"{"error":"invalid_client"}"#.to_vec()),
                Err(TokenError::InvalidClient),
            ),
            // Redirects are not followed.
            (
                (
                    307,
                    vec![("location", "https://elsewhere.test/token".into())],
                    vec![],
                ),
                Err(TokenError::Rejected("http_307".into())),
            ),
            (
                json_ok(&format!(
                    r#"{{"access_token":"a","pad":"{}"}}"#,
                    "x".repeat(64 * 1024)
                )),
                Err(TokenError::Malformed("response too large")),
            ),
            (
                json_ok(r#"{"access_token":""}"#),
                Err(TokenError::Malformed("no access_token")),
            ),
            (
                json_ok("[]"),
                Err(TokenError::Malformed("not a JSON object")),
            ),
        ];
        for (answer, expected) in cases {
            let shown = format!("{answer:?}");
            let (url, seen) = stub(answer).await;
            let outcome = exchange(&provider(&url, ClientAuth::Body, TokenBody::Form)).await;
            assert_eq!(
                outcome.map(|t| t.token_type).as_ref().map(|t| t.as_deref()),
                expected.as_ref().map(|t| *t),
                "{shown}"
            );
            assert_eq!(seen.lock().expect("not poisoned").len(), 1, "sent once");
        }
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_not_a_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = Url::parse(&format!(
            "http://{}/token",
            listener.local_addr().expect("address")
        ))
        .expect("a URL");
        drop(listener);
        let outcome = exchange(&provider(&url, ClientAuth::Body, TokenBody::Form)).await;
        assert_eq!(outcome.err(), Some(TokenError::Unreachable));
    }

    #[tokio::test]
    async fn revocation_goes_through_the_crate_to_a_loopback_http_endpoint() {
        let (url, seen) = stub((200, vec![], vec![])).await;
        let mut provider = provider(&url, ClientAuth::Basic, TokenBody::Json);
        provider.revocation_url = Some(url.clone());
        let http =
            crate::outbound::provider_client(std::time::Duration::from_secs(5)).expect("client");
        crate::oauth::revoke::revoke(
            &http,
            &provider,
            &Context::default(),
            &SecretString::from("rt"),
        )
        .await
        .expect("revoked");
        {
            let seen = seen.lock().expect("not poisoned");
            let request = &seen[0];
            assert_eq!(request.uri.to_string(), "/oauth/token?tenant=t1");
            // A form body whatever the token endpoint's shape.
            assert_eq!(
                pairs(&request.body),
                vec![
                    ("token".to_string(), "rt".to_string()),
                    ("token_type_hint".to_string(), "refresh_token".to_string()),
                ]
            );
            assert!(request.headers.contains_key("authorization"));
        }
        let (url, _) = stub((503, vec![], vec![])).await;
        provider.revocation_url = Some(url);
        assert_eq!(
            crate::oauth::revoke::revoke(
                &http,
                &provider,
                &Context::default(),
                &SecretString::from("rt"),
            )
            .await,
            Err(TokenError::Unavailable(503))
        );
    }
}
