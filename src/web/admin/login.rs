//! Signing in and out. Failed sign-ins are counted in Postgres per email and per client,
//! so the limit holds across instances; an unknown email costs the same hashing work as
//! a wrong password.

use std::convert::Infallible;
use std::net::SocketAddr;

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
use tower_sessions::Session;

use super::accounts::{self, MAX_PASSWORD_BYTES};
use super::{AdminResult, AdminSession, KEY, expired_form, refuse_cross_site, render_status};
use crate::AppState;
use crate::crypto;
use crate::db;
use crate::error::AppError;

/// Failed sign-ins are counted over this window…
pub const FAILURE_WINDOW: Duration = Duration::minutes(15);
/// …and more than this many for one email, or from one client, block further tries.
pub const MAX_FAILURES_PER_EMAIL: i64 = 5;
/// A client may mistype several admins' emails; a higher bar, still far from guessing.
pub const MAX_FAILURES_PER_CLIENT: i64 = 20;

/// The login form's own token, held in the session before anyone is signed in: a
/// cross-site page cannot sign a browser in to an account of its choosing.
const LOGIN_CSRF: &str = "admin_login_csrf";

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

/// `GET /admin/login`: the form (or the dashboard when already signed in).
async fn form(session: Session) -> AdminResult<Response> {
    if session.get::<AdminSession>(KEY).await?.is_some() {
        return Ok(Redirect::to("/admin").into_response());
    }
    let csrf = login_token(&session).await?;
    Ok(render_status(
        StatusCode::OK,
        &LoginPage {
            csrf,
            email: String::new(),
            error: None,
        },
    ))
}

async fn login_token(session: &Session) -> AdminResult<String> {
    if let Some(token) = session.get::<String>(LOGIN_CSRF).await? {
        return Ok(token);
    }
    let token = crypto::random_token()?;
    session.insert(LOGIN_CSRF, &token).await?;
    Ok(token)
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

/// Who is trying: the peer address, or (behind a trusted proxy) the address it reports.
pub struct ClientAddress(String);

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
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        let peer = || {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
        };
        Ok(ClientAddress(
            forwarded.or_else(peer).unwrap_or_else(|| "unknown".into()),
        ))
    }
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
    let expected = session.get::<String>(LOGIN_CSRF).await?;
    if !expected.is_some_and(|t| crypto::constant_time_eq(t.as_bytes(), form.csrf.as_bytes())) {
        return Err(expired_form());
    }
    let email = accounts::normalize_email(&form.email);
    // Counted under what was typed, hashed: the table never holds it readable.
    let typed = email
        .clone()
        .unwrap_or_else(|| form.email.trim().to_lowercase());
    let email_hash = crypto::token_hash(&format!("admin-login-email:{typed}"));
    let client_hash = crypto::token_hash(&format!("admin-login-client:{client}"));
    let now = app.clock.now();

    // Checked before hashing and recorded after it: attempts racing in parallel can
    // overshoot the limit by their number, never keep going.
    let mut conn = app.pool.acquire().await?;
    let failures =
        db::admins::recent_failures(&mut conn, &email_hash, &client_hash, now - FAILURE_WINDOW)
            .await?;
    if failures.for_email >= MAX_FAILURES_PER_EMAIL
        || failures.from_client >= MAX_FAILURES_PER_CLIENT
    {
        tracing::warn!("admin sign-in refused: too many recent failures");
        return Ok(too_many(form.csrf, typed));
    }
    let admin = match &email {
        Some(email) => db::admins::find_by_email(&mut conn, email).await?,
        None => None,
    };
    drop(conn);

    let verified = form.password.len() <= MAX_PASSWORD_BYTES
        && accounts::verify_password(
            admin.as_ref().map(|a| a.password_hash.clone()),
            SecretString::from(form.password),
        )
        .await?;
    let mut conn = app.pool.acquire().await?;
    let Some(admin) = admin.filter(|_| verified) else {
        db::admins::record_failure(&mut conn, &email_hash, &client_hash, now).await?;
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
    db::admins::clear_failures(&mut conn, &email_hash).await?;
    db::admins::record_login(&mut conn, admin.id, now).await?;
    drop(conn);

    // A new id for a new privilege: a session id planted before sign-in is worthless.
    session.cycle_id().await?;
    session.remove::<String>(LOGIN_CSRF).await?;
    session
        .insert(KEY, AdminSession::new(admin.id, admin.email)?)
        .await?;
    tracing::info!(admin_id = %admin.id, "admin signed in");
    Ok(Redirect::to("/admin").into_response())
}

fn too_many(csrf: String, email: String) -> Response {
    let message = format!(
        "Too many failed sign-in attempts for this account or from this address. Wait {} minutes and try again.",
        FAILURE_WINDOW.whole_minutes()
    );
    let mut response = render_status(
        StatusCode::TOO_MANY_REQUESTS,
        &LoginPage {
            csrf,
            email,
            error: Some(message),
        },
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(FAILURE_WINDOW.whole_seconds()),
    );
    response
}

/// `POST /admin/logout`: the whole session is destroyed, server side and cookie.
async fn logout(session: Session) -> AdminResult<Response> {
    session.flush().await.map_err(AppError::from)?;
    Ok(Redirect::to("/admin/login").into_response())
}
