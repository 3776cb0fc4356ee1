//! Form tokens for pages shown before anyone is signed in (the admin sign-in form, a
//! link's Continue page), with nothing stored on the server: a signed double-submit.
//!
//! The browser gets a short-lived cookie holding a random nonce and its expiry; the
//! form carries an HMAC of the form's purpose, the nonce and the expiry under a key
//! derived from the primary encryption key. A POST is accepted only with both, and
//! only before the expiry. A cross-site page cannot read the cookie or compute the
//! token, and a browser never sends a `SameSite=Lax` cookie with a cross-site POST.
//! On https the cookie carries the `__Host-` prefix, so a sibling host cannot plant one.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::Duration;

use crate::crypto;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

const COOKIE: &str = "keyhaven_form";
/// How long a form may stay open before it must be reloaded.
const LIFETIME: Duration = Duration::hours(1);
/// An existing cookie with less than this left is replaced, so a page just shown
/// never carries a token about to lapse.
const RENEW_BEFORE: Duration = Duration::minutes(15);
const KEY_PURPOSE: &str = "keyhaven/anonymous-forms/v1";

/// The value of cookie `name` in the request, if it is there exactly once.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v);
    let value = found.next()?;
    found.next().is_none().then_some(value)
}

/// A `Set-Cookie` value: host-only, whole site, HttpOnly, Lax, Secure where cookies are.
pub fn set_cookie(app: &AppState, name: &str, value: &str, max_age: Duration) -> HeaderValue {
    let secure = if app.settings.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let line = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        app.settings.cookie_name(name),
        max_age.whole_seconds()
    );
    HeaderValue::from_str(&line).unwrap_or_else(|_| HeaderValue::from_static(""))
}

struct Nonce {
    value: String,
    expires: i64,
}

impl Nonce {
    fn parse(raw: &str) -> Option<Self> {
        let (value, expires) = raw.split_once('.')?;
        let valid = value.len() == 22
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        Some(Self {
            value: value.to_string(),
            expires: expires.parse().ok().filter(|_| valid)?,
        })
    }

    fn cookie_value(&self) -> String {
        format!("{}.{}", self.value, self.expires)
    }

    fn token(&self, app: &AppState, purpose: &str) -> String {
        let key = app.settings.keys.derive(KEY_PURPOSE);
        let mac = crypto::keyed_hash(
            &key,
            &[
                purpose.as_bytes(),
                self.value.as_bytes(),
                &self.expires.to_be_bytes(),
            ],
        );
        URL_SAFE_NO_PAD.encode(mac)
    }
}

/// A form token for `purpose`, and the cookie to set when the browser has no usable one.
pub fn issue(
    app: &AppState,
    headers: &HeaderMap,
    purpose: &str,
) -> AppResult<(String, Option<HeaderValue>)> {
    let now = app.clock.now();
    let current = cookie(headers, &app.settings.cookie_name(COOKIE))
        .and_then(Nonce::parse)
        .filter(|n| n.expires > (now + RENEW_BEFORE).unix_timestamp());
    if let Some(nonce) = current {
        return Ok((nonce.token(app, purpose), None));
    }
    let nonce = Nonce {
        value: URL_SAFE_NO_PAD.encode(crypto::random_bytes::<16>()?),
        expires: (now + LIFETIME).unix_timestamp(),
    };
    let set = set_cookie(app, COOKIE, &nonce.cookie_value(), LIFETIME);
    Ok((nonce.token(app, purpose), Some(set)))
}

/// Whether a form's token is the one its session expects (in constant time). Sessions
/// keep their own token; anonymous forms use the signed cookie below.
pub fn token_matches(expected: &str, presented: &str) -> bool {
    crypto::constant_time_eq(expected.as_bytes(), presented.as_bytes())
}

/// Whether `presented` is the token for `purpose` under this browser's unexpired cookie.
pub fn verify(app: &AppState, headers: &HeaderMap, purpose: &str, presented: &str) -> bool {
    let now = app.clock.now().unix_timestamp();
    cookie(headers, &app.settings.cookie_name(COOKIE))
        .and_then(Nonce::parse)
        .filter(|n| n.expires > now && n.expires <= now + LIFETIME.whole_seconds() + 60)
        .is_some_and(|n| token_matches(&n.token(app, purpose), presented))
}

/// Browsers say where a request came from; a cross-site form post is refused even with
/// a valid token.
pub fn refuse_cross_site(headers: &HeaderMap) -> AppResult<()> {
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return Err(AppError::Forbidden(
            "Cross-site requests are not allowed.".into(),
        ));
    }
    Ok(())
}
