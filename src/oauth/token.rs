//! Token-endpoint calls (code exchange and refresh) through the `oauth2` crate, sent by
//! `client::ProviderHttp` in each provider's shape; the failure classes, and the token
//! response every provider's answer is read into.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use oauth2::{
    AccessToken, AuthorizationCode, PkceCodeVerifier, RedirectUrl, RefreshToken, Scope, TokenUrl,
};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::client::{self, ProviderHttp};
use crate::model::FailureCode;
use crate::providers::{Context, Provider};

const MAX_BODY: usize = 64 * 1024;

pub enum Grant<'a> {
    Code {
        code: &'a str,
        redirect_uri: &'a str,
        verifier: Option<&'a str>,
    },
    Refresh {
        refresh_token: &'a str,
    },
}

impl Grant<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Grant::Code { .. } => "authorization_code",
            Grant::Refresh { .. } => "refresh_token",
        }
    }
}

/// What a successful token response gave us.
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub token_type: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
    pub scope: Option<String>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Failure classes; each one decides what happens next (see DESIGN.md).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The grant (code or refresh token) is dead: reconnect, never retry.
    #[error("the provider rejected the grant ({0})")]
    InvalidGrant(String),
    /// Our client credentials are wrong: a provider-level problem.
    #[error("the provider rejected Keyhaven's client credentials")]
    InvalidClient,
    #[error("the provider is throttling requests")]
    Throttled { retry_after: Option<Duration> },
    #[error("the provider is unavailable (HTTP {0})")]
    Unavailable(u16),
    /// No answer in time: the request may have been processed.
    #[error("the provider did not answer in time")]
    Timeout,
    /// Never reached the provider (connection refused, DNS).
    #[error("the provider could not be reached")]
    Unreachable,
    #[error("the provider's answer was not a usable token response ({0})")]
    Malformed(&'static str),
    #[error("the provider refused the request ({0})")]
    Rejected(String),
    /// A host outside the allow-list (or not https): nothing was sent to it.
    #[error("the provider named a host that is not allowed ({0}); nothing was sent to it")]
    HostRefused(String),
    /// Not called: an earlier failure's backoff has not ended yet.
    #[error("the provider failed recently; the next attempt waits for its backoff")]
    BackingOff,
}

impl TokenError {
    /// Short stable code for events and API answers.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::HostRefused(_) => "host_refused",
            other => other.failure_code().as_str(),
        }
    }

    /// The stored code for a failed token request: what the end user is told and what
    /// the webhooks report, whatever the provider's wording. A refused host is the
    /// provider's fault as far as the user is concerned.
    pub fn failure_code(&self) -> FailureCode {
        match self {
            TokenError::InvalidGrant(_) => FailureCode::InvalidGrant,
            TokenError::InvalidClient => FailureCode::InvalidClient,
            TokenError::Throttled { .. } => FailureCode::Throttled,
            TokenError::Unavailable(_) => FailureCode::ProviderUnavailable,
            TokenError::Timeout => FailureCode::Timeout,
            TokenError::Unreachable => FailureCode::Unreachable,
            TokenError::Malformed(_) => FailureCode::MalformedResponse,
            TokenError::Rejected(_) => FailureCode::Rejected,
            TokenError::BackingOff => FailureCode::BackingOff,
            TokenError::HostRefused(_) => FailureCode::ProviderError,
        }
    }
}

/// One token request to the connection's token endpoint; never retried here (a code
/// must not be sent twice).
pub async fn request(
    http: &reqwest::Client,
    provider: &Provider,
    ctx: &Context,
    grant: Grant<'_>,
    now: OffsetDateTime,
) -> Result<TokenSet, TokenError> {
    let started = std::time::Instant::now();
    let grant_type = grant.kind();
    let result = send(http, provider, ctx, grant, now).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    crate::telemetry::metrics::token_request(&provider.id, grant_type, outcome, started.elapsed());
    result
}

async fn send(
    http: &reqwest::Client,
    provider: &Provider,
    ctx: &Context,
    grant: Grant<'_>,
    now: OffsetDateTime,
) -> Result<TokenSet, TokenError> {
    let client =
        client::for_provider(provider).set_token_uri(TokenUrl::from_url(provider.token_url(ctx)?));
    let http = ProviderHttp::token(http, client.token_uri().url(), provider.token_body);
    let answer = match grant {
        Grant::Code {
            code,
            redirect_uri,
            verifier,
        } => {
            let redirect_uri = RedirectUrl::new(redirect_uri.to_owned())
                .map_err(|_| TokenError::Rejected("request could not be built".into()))?;
            let mut request = client
                .exchange_code(AuthorizationCode::new(code.to_owned()))
                .set_redirect_uri(Cow::Owned(redirect_uri));
            if let Some(verifier) = verifier {
                request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()));
            }
            request.request_async(&http).await
        }
        Grant::Refresh { refresh_token } => {
            let refresh_token = RefreshToken::new(refresh_token.to_owned());
            client
                .exchange_refresh_token(&refresh_token)
                .request_async(&http)
                .await
        }
    };
    Ok(answer.map_err(client::request_error)?.into_token_set(now))
}

pub(crate) fn transport_error(e: reqwest::Error) -> TokenError {
    if e.is_connect() {
        TokenError::Unreachable
    } else {
        // Timeouts and broken connections alike: the provider may have acted on it.
        TokenError::Timeout
    }
}

pub(crate) async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, TokenError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(TokenError::Malformed("response too large"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Sends a call to a provider API (who-am-I, REST login, revocation) and returns the
/// body of a 2xx answer; anything else becomes the matching failure class.
pub(crate) async fn fetch(
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<Vec<u8>, TokenError> {
    let response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    let body = read_limited(response).await?;
    check_status(status, what)?;
    Ok(body)
}

/// The failure class of a provider API's non-2xx status.
pub(crate) fn check_status(status: StatusCode, what: &str) -> Result<(), TokenError> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(TokenError::Throttled { retry_after: None });
    }
    if status.is_server_error() {
        return Err(TokenError::Unavailable(status.as_u16()));
    }
    if !status.is_success() {
        return Err(TokenError::Rejected(format!(
            "{what} answered HTTP {}",
            status.as_u16()
        )));
    }
    Ok(())
}

/// The longest wait a `Retry-After` can ask for; longer values are clamped.
const MAX_RETRY_AFTER_SECS: u64 = 24 * 3600;
/// The furthest expiry a token response can claim; further ones are clamped.
const MAX_EXPIRY: time::Duration = time::Duration::days(400);

pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let secs = if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        // Too many digits for a u64 is still "a very long time".
        value.parse::<u64>().unwrap_or(u64::MAX)
    } else {
        let at = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822)
            .ok()?;
        (at - OffsetDateTime::now_utc()).whole_seconds().max(0) as u64
    };
    if secs > MAX_RETRY_AFTER_SECS {
        tracing::warn!(
            retry_after_secs = secs,
            clamped_to = MAX_RETRY_AFTER_SECS,
            "provider asked to wait longer than a day; clamped"
        );
    }
    Some(Duration::from_secs(secs.min(MAX_RETRY_AFTER_SECS)))
}

/// `issued_at + expires_in`, at most 400 days from `now`: numbers that would overflow, or
/// reach further, are clamped with a warning (never a panic). An expiry in the past stays
/// (the token is simply expired; one that overflows backwards expires now).
fn expiry(now: OffsetDateTime, issued_at: OffsetDateTime, expires_in: i64) -> OffsetDateTime {
    let latest = now + MAX_EXPIRY;
    match issued_at.checked_add(time::Duration::seconds(expires_in)) {
        Some(at) if at <= latest => at,
        at => {
            tracing::warn!(
                expires_in,
                "provider's token lifetime is out of range; clamped"
            );
            match at {
                Some(_) => latest,
                None if expires_in < 0 => now,
                None => latest,
            }
        }
    }
}

/// A token-endpoint answer as our providers send it, read by the `oauth2` crate:
/// `expires_in` as a number or a string, Hurdlr's `created_at` (expiry is dated from it)
/// and missing `token_type`; empty strings count as absent; display strings are
/// sanitized. Only an access token is required.
#[derive(Debug, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct ProviderTokenResponse {
    access_token: AccessToken,
    refresh_token: Option<RefreshToken>,
    token_type: ProviderTokenType,
    expires_in: Option<i64>,
    created_at: Option<i64>,
    /// The granted scope as sent, split at single spaces (joined back, it is unchanged).
    scope: Option<Vec<Scope>>,
}

/// The `token_type` a provider sent, if any (Hurdlr sends none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProviderTokenType(pub Option<String>);

impl oauth2::TokenType for ProviderTokenType {}

impl TryFrom<Map<String, Value>> for ProviderTokenResponse {
    type Error = &'static str;

    fn try_from(json: Map<String, Value>) -> Result<Self, Self::Error> {
        let access_token = non_empty_str(&json, "access_token").ok_or("no access_token")?;
        Ok(Self {
            access_token: AccessToken::new(access_token),
            refresh_token: non_empty_str(&json, "refresh_token").map(RefreshToken::new),
            token_type: ProviderTokenType(non_empty_str(&json, "token_type").map(|t| sanitize(&t))),
            expires_in: json.get("expires_in").and_then(as_i64),
            created_at: json.get("created_at").and_then(as_i64),
            scope: non_empty_str(&json, "scope").map(|s| {
                sanitize(&s)
                    .split(' ')
                    .map(|s| Scope::new(s.into()))
                    .collect()
            }),
        })
    }
}

impl oauth2::TokenResponse for ProviderTokenResponse {
    type TokenType = ProviderTokenType;

    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    fn token_type(&self) -> &ProviderTokenType {
        &self.token_type
    }

    fn expires_in(&self) -> Option<Duration> {
        self.expires_in
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
    }

    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scope.as_ref()
    }
}

impl ProviderTokenResponse {
    /// The token set to store; `expires_in` counts from Hurdlr's own `created_at` where
    /// given, else from `now`.
    pub fn into_token_set(self, now: OffsetDateTime) -> TokenSet {
        let issued_at = self
            .created_at
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .unwrap_or(now);
        TokenSet {
            access_token: SecretString::from(self.access_token.into_secret()),
            refresh_token: self
                .refresh_token
                .map(|t| SecretString::from(t.into_secret())),
            token_type: self.token_type.0,
            expires_at: self.expires_in.map(|s| expiry(now, issued_at, s)),
            scope: self.scope.map(|scopes| {
                scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
        }
    }
}

pub(crate) fn error_from_code(code: &str, retry_after: Option<Duration>) -> TokenError {
    match code {
        // Zoho says `invalid_code` for a dead code or refresh token.
        "invalid_grant" | "invalid_code" => TokenError::InvalidGrant(code.to_string()),
        "invalid_client" | "unauthorized_client" => TokenError::InvalidClient,
        // Zoho's throttle answer.
        "Access Denied" | "temporarily_unavailable" => TokenError::Throttled { retry_after },
        other => TokenError::Rejected(sanitize(other)),
    }
}

fn non_empty_str(json: &Map<String, Value>, key: &str) -> Option<String> {
    json.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Provider-supplied short strings kept for display: printable ASCII, bounded.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | ':' | ','))
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use oauth2::{ClientId, HttpRequest};

    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("valid")
    }

    /// A code exchange through the `oauth2` crate whose HTTP client receives this answer:
    /// the client's classification, then the crate reading our token response.
    fn classify(
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<TokenSet, TokenError> {
        let answer = Mutex::new(Some(client::token_answer(
            status,
            retry_after,
            body.to_vec(),
        )));
        let http = |_: HttpRequest| {
            let answer = answer.lock().expect("not poisoned").take();
            async move { answer.expect("one request") }
        };
        let client = client::OAuthClient::new(ClientId::new("client".into()))
            .set_token_uri(TokenUrl::new("https://provider.test/token".into()).expect("valid"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            client
                .exchange_code(AuthorizationCode::new("code".into()))
                .request_async(&http)
                .await
                .map(|r| r.into_token_set(now))
                .map_err(client::request_error)
        })
    }

    #[test]
    fn classifies_answers() {
        let ok = classify(
            StatusCode::OK,
            None,
            br#"{"access_token":"a","token_type":"BEARER","expires_in":"60","x":1}"#,
            now(),
        )
        .expect("accepted");
        assert_eq!(ok.expires_at, Some(now() + time::Duration::seconds(60)));
        assert!(ok.refresh_token.is_none());
        assert_eq!(
            classify(StatusCode::OK, None, b"{}", now()).err(),
            Some(TokenError::Malformed("no access_token"))
        );
        assert!(matches!(
            classify(StatusCode::OK, None, b"<html>", now()),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            classify(StatusCode::OK, None, br#"{"error":"invalid_code"}"#, now()),
            Err(TokenError::InvalidGrant(_))
        ));
        assert!(matches!(
            classify(
                StatusCode::BAD_REQUEST,
                None,
                br#"{"error":"invalid_grant"}"#,
                now()
            ),
            Err(TokenError::InvalidGrant(_))
        ));
        assert_eq!(
            classify(StatusCode::BAD_GATEWAY, None, b"", now()).err(),
            Some(TokenError::Unavailable(502))
        );
        let hurdlr = classify(
            StatusCode::OK,
            None,
            br#"{"access_token":"a","refresh_token":"r","expires_in":7776000,"created_at":1599065168}"#,
            now(),
        )
        .expect("accepted");
        assert_eq!(
            hurdlr.expires_at.map(|t| t.unix_timestamp()),
            Some(1599065168 + 7776000)
        );
    }

    #[test]
    fn overflowing_numbers_are_clamped_not_a_panic() {
        let far = classify(
            StatusCode::OK,
            None,
            br#"{"access_token":"a","expires_in":9223372036854775807}"#,
            now(),
        )
        .expect("accepted");
        assert_eq!(far.expires_at, Some(now() + time::Duration::days(400)));
        let past = classify(
            StatusCode::OK,
            None,
            br#"{"access_token":"a","expires_in":-9223372036854775808,"created_at":-9223372036854775808}"#,
            now(),
        )
        .expect("accepted");
        assert_eq!(past.expires_at, Some(now()));
        let created = classify(
            StatusCode::OK,
            None,
            br#"{"access_token":"a","expires_in":"9223372036854775807","created_at":253402300799}"#,
            now(),
        )
        .expect("accepted");
        assert_eq!(created.expires_at, Some(now() + time::Duration::days(400)));
        assert_eq!(
            parse_retry_after("99999999999999999999999"),
            Some(Duration::from_secs(24 * 3600))
        );
        assert_eq!(parse_retry_after("900"), Some(Duration::from_secs(900)));
    }
}
