//! Signing in and out.
//!
//! Limits that a burst cannot overshoot and a stranger cannot turn into a lock-out:
//! - an attempt is counted (reserved) in Postgres before its password is checked, under
//!   a per-client lock, and forgiven when the password was right; at most
//!   [`MAX_FAILURES`] per (email, client) and per client in [`FAILURE_WINDOW`], then 429;
//! - an email alone is never locked: its recent failures, from anyone, only add a
//!   growing server-side delay (at most [`MAX_EMAIL_DELAY`]);
//! - only [`MAX_WAITING`] sign-ins may wait for a password hash at once (the rest get
//!   429 at once), and none waits longer than [`MAX_WAIT`].
//!
//! Counters are keyed by an HMAC (key derived from the primary encryption key) of what
//! was typed and of the client, so the table holds nothing readable or guessable. An
//! unknown email costs the same hashing work as a wrong password. The form's token is a
//! signed double-submit cookie: showing the form writes nothing on the server.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration as StdDuration;

use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use secrecy::SecretString;
use serde::Deserialize;
use time::Duration;
use tokio::sync::Semaphore;
use tower_sessions::Session;

use super::accounts::{self, MAX_PASSWORD_BYTES};
use super::{AdminResult, AdminSession, KEY, expired_form, render_status};
use crate::crypto;
use crate::db;
use crate::db::admins::{AttemptKeys, Reservation};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::csrf;
use crate::web::csrf::refuse_cross_site;

/// Failed sign-ins are counted over this window…
pub const FAILURE_WINDOW: Duration = Duration::minutes(15);
/// …and this many per (email, client), or per client, block further tries.
pub const MAX_FAILURES: i64 = 5;
/// Failures of one email (from anyone) beyond this many slow its sign-ins down.
const FREE_EMAIL_FAILURES: i64 = 5;
/// The longest an email's failures delay a sign-in.
pub const MAX_EMAIL_DELAY: StdDuration = StdDuration::from_secs(10);
/// Sign-ins waiting for a password hash (delayed or queued) at once, per instance.
pub const MAX_WAITING: usize = 16;
/// The longest a sign-in waits for its hash, its delay included.
pub const MAX_WAIT: StdDuration = StdDuration::from_secs(12);
/// Retry-After when every waiting place is taken.
const BUSY_RETRY_SECS: u32 = 5;

static WAITING: Semaphore = Semaphore::const_new(MAX_WAITING);

const FORM_PURPOSE: &str = "admin-login";
const KEY_PURPOSE: &str = "keyhaven/admin-sign-in-limit/v1";

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/login", get(form).post(submit))
}

/// Routes behind the guard (which checks the CSRF token of the POST).
pub fn signed_in_router() -> Router<AppState> {
    Router::new().route("/admin/logout", post(logout))
}

#[derive(Template)]
#[template(path = "admin/login.html")]
struct LoginPage {
    csrf: String,
    email: String,
    error: Option<String>,
}

/// `GET /admin/login`: the form (or the dashboard when already signed in). Nothing is
/// written on the server.
async fn form(
    State(app): State<AppState>,
    session: Session,
    headers: HeaderMap,
) -> AdminResult<Response> {
    if session.get::<AdminSession>(KEY).await?.is_some() {
        return Ok(Redirect::to("/admin").into_response());
    }
    let (csrf, cookie) = csrf::issue(&app, &headers, FORM_PURPOSE)?;
    let mut response = render_status(
        StatusCode::OK,
        &LoginPage {
            csrf,
            email: String::new(),
            error: None,
        },
    );
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// Who is trying: the peer address, or (behind a trusted proxy) the address the proxy
/// reports. IPv6 clients are grouped by /64, the block one subscriber usually holds.
pub struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Infallible> {
        // Only the last X-Forwarded-For entry was written by our own proxy; earlier
        // ones are whatever the client sent.
        let forwarded = app
            .settings
            .server
            .trust_forwarded_for
            .then(|| parts.headers.get_all("x-forwarded-for").iter().next_back())
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        let peer = || {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        };
        Ok(ClientAddress(
            forwarded
                .or_else(peer)
                .map(client_group)
                .unwrap_or_else(|| "unknown".into()),
        ))
    }
}

/// An address as the limit counts it: IPv4 (also when mapped into IPv6) whole, other
/// IPv6 addresses by their /64.
pub fn client_group(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The delay an email's recent failures (from anyone) add to its next sign-in:
/// none for the first few, then doubling from a quarter second up to the cap.
pub fn email_delay(failures: i64) -> StdDuration {
    let over = failures - FREE_EMAIL_FAILURES;
    if over < 0 {
        return StdDuration::ZERO;
    }
    let doubled = StdDuration::from_millis(250).saturating_mul(1u32 << over.min(10) as u32);
    doubled.min(MAX_EMAIL_DELAY)
}

/// The counter keys for what was typed into the email field, and for the client.
struct Keys {
    email: [u8; 32],
    client: [u8; 32],
}

impl Keys {
    fn new(app: &AppState, typed_email: &str, client: &str) -> Self {
        let key = app.settings.keys.derive(KEY_PURPOSE);
        Self {
            email: email_key(&key, typed_email),
            client: crypto::keyed_hash(&key, &[b"client", client.as_bytes()]),
        }
    }

    fn attempt(&self) -> AttemptKeys<'_> {
        AttemptKeys {
            email: &self.email,
            client: &self.client,
        }
    }
}

fn email_key(key: &[u8; 32], typed_email: &str) -> [u8; 32] {
    crypto::keyed_hash(key, &[b"email", typed_email.as_bytes()])
}

/// Forgets every recorded attempt on this email (`keyhaven admin unlock`).
pub async fn unlock(app: &AppState, email: &str) -> Result<u64, AppError> {
    let typed = accounts::normalize_email(email)
        .ok_or_else(|| AppError::BadRequest("That is not an email address.".into()))?;
    let key = email_key(&app.settings.keys.derive(KEY_PURPOSE), &typed);
    let mut conn = app.pool.acquire().await?;
    Ok(db::admins::clear_email(&mut conn, &key).await?)
}

/// `POST /admin/login`.
async fn submit(
    State(app): State<AppState>,
    ClientAddress(client): ClientAddress,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> AdminResult<Response> {
    refuse_cross_site(&headers)?;
    if !csrf::verify(&app, &headers, FORM_PURPOSE, &form.csrf) {
        return Err(expired_form());
    }
    let email = accounts::normalize_email(&form.email);
    let typed = email
        .clone()
        .unwrap_or_else(|| form.email.trim().to_lowercase());
    let keys = Keys::new(&app, &typed, &client);
    let now = app.clock.now();

    // On its own task: a client that goes away cannot leave the transaction (and the
    // client's lock) half done.
    let reservation = tokio::spawn({
        let app = app.clone();
        let (email_key, client_key) = (keys.email, keys.client);
        async move {
            let mut conn = app.pool.acquire().await?;
            let keys = AttemptKeys {
                email: &email_key,
                client: &client_key,
            };
            db::admins::reserve_attempt(&mut conn, keys, now - FAILURE_WINDOW, now, MAX_FAILURES)
                .await
        }
    })
    .await
    .map_err(AppError::internal)??;
    let Reservation::Reserved {
        id: attempt,
        email_failures,
    } = reservation
    else {
        tracing::warn!("admin sign-in refused: too many recent failures");
        return Ok(too_many(
            form.csrf,
            typed,
            format!(
                "Too many failed sign-in attempts from this address. Wait {} minutes and try again.",
                FAILURE_WINDOW.whole_minutes()
            ),
            FAILURE_WINDOW.whole_seconds() as u32,
        ));
    };
    let admin = match &email {
        Some(email) => {
            let mut conn = app.pool.acquire().await?;
            db::admins::find_by_email(&mut conn, email).await?
        }
        None => None,
    };

    let verified = match check_password(&admin, form.password, email_failures).await {
        Ok(Some(verified)) => verified,
        unchecked => {
            // Never checked, so not counted.
            let mut conn = app.pool.acquire().await?;
            db::admins::forgive(&mut conn, attempt).await?;
            unchecked?;
            tracing::warn!("admin sign-in refused: too many sign-ins waiting");
            return Ok(too_many(form.csrf, typed, BUSY.into(), BUSY_RETRY_SECS));
        }
    };
    let mut conn = app.pool.acquire().await?;
    let Some(admin) = admin.filter(|_| verified) else {
        tracing::warn!("admin sign-in failed");
        return Ok(render_status(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                csrf: form.csrf,
                email: typed,
                error: Some("The email or the password is not right.".into()),
            },
        ));
    };
    db::admins::forgive(&mut conn, attempt).await?;
    db::admins::clear_pair(&mut conn, keys.attempt()).await?;
    db::admins::record_login(&mut conn, admin.id, now).await?;
    drop(conn);

    // A new id for a new privilege: a session id planted before sign-in is worthless.
    if session.id().is_some() {
        session.cycle_id().await?;
    }
    session
        .insert(
            KEY,
            AdminSession::new(admin.id, admin.email, admin.password_epoch, now)?,
        )
        .await?;
    tracing::info!(admin_id = %admin.id, "admin signed in");
    Ok(Redirect::to("/admin").into_response())
}

const BUSY: &str = "Too many sign-ins are in progress. Wait a few seconds and try again.";

/// Waits out the email's delay and a hashing slot, both within [`MAX_WAIT`], then
/// checks the password. `None` when the sign-in could not wait.
async fn check_password(
    admin: &Option<db::admins::Admin>,
    password: String,
    email_failures: i64,
) -> Result<Option<bool>, AppError> {
    let Ok(_waiting) = WAITING.try_acquire() else {
        return Ok(None);
    };
    let deadline = tokio::time::Instant::now() + MAX_WAIT;
    tokio::time::sleep(email_delay(email_failures)).await;
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(Some(false));
    }
    let hash = admin.as_ref().map(|a| a.password_hash.clone());
    match tokio::time::timeout_at(
        deadline,
        accounts::verify_password(hash, SecretString::from(password)),
    )
    .await
    {
        Ok(verified) => verified.map(Some),
        Err(_) => Ok(None),
    }
}

fn too_many(csrf: String, email: String, message: String, retry_after: u32) -> Response {
    let mut response = render_status(
        StatusCode::TOO_MANY_REQUESTS,
        &LoginPage {
            csrf,
            email,
            error: Some(message),
        },
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// `POST /admin/logout`: the whole session is destroyed, server side and cookie.
async fn logout(session: Session) -> AdminResult<Response> {
    session.flush().await.map_err(AppError::from)?;
    Ok(Redirect::to("/admin/login").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_grouped_by_address_and_ipv6_by_64() {
        let g = |s: &str| client_group(s.parse().expect("an address"));
        assert_eq!(g("203.0.113.7"), "203.0.113.7");
        assert_eq!(g("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(g("2001:db8:1:2:aaaa::1"), g("2001:db8:1:2:bbbb::2"));
        assert_ne!(g("2001:db8:1:2::1"), g("2001:db8:1:3::1"));
    }

    #[test]
    fn the_email_delay_grows_and_is_capped() {
        assert_eq!(email_delay(0), StdDuration::ZERO);
        assert_eq!(email_delay(4), StdDuration::ZERO);
        assert_eq!(email_delay(5), StdDuration::from_millis(250));
        assert_eq!(email_delay(6), StdDuration::from_millis(500));
        assert_eq!(email_delay(9), StdDuration::from_secs(4));
        assert_eq!(email_delay(11), MAX_EMAIL_DELAY);
        assert_eq!(email_delay(i64::MAX), MAX_EMAIL_DELAY);
    }
}
