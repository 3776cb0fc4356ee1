//! The admin console under `/admin`: sign-in, dashboard, connection list and detail
//! with actions. One guard in front of every page but the login form checks the
//! signed-in admin and, for every POST, the cross-site header and the form's CSRF token,
//! so no handler can forget either.

pub mod accounts;
mod api_keys;
mod connections;
mod dashboard;
mod detail;
mod login;
mod password;
mod view;
mod webhooks;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use uuid::Uuid;

use crate::crypto;
use crate::db;
use crate::error::AppError;
use crate::model::Actor;
use crate::state::AppState;

/// The admin's own session key: an end user's binding (`end_user`) never grants
/// anything here, and this never grants anything on the connect pages.
const KEY: &str = "admin";
/// Largest admin form body read by the guard.
const MAX_FORM_BYTES: usize = 16 * 1024;

pub fn router(app: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .merge(dashboard::router())
        .merge(connections::router())
        .merge(detail::router())
        .merge(api_keys::router())
        .merge(webhooks::router())
        .merge(login::signed_in_router())
        .merge(password::router())
        .route_layer(middleware::from_fn_with_state(app, guard));
    Router::new().merge(login::router()).merge(signed_in)
}

/// Stored in the session at sign-in.
#[derive(Clone, Serialize, Deserialize)]
pub struct AdminSession {
    pub admin_id: Uuid,
    pub email: String,
    /// Form token for every admin POST.
    csrf: String,
    /// The admin's password epoch at sign-in: a password change since signs this out.
    epoch: i32,
    /// Sign-in time (Unix seconds, the app's clock): the absolute lifetime counts from it.
    signed_in_at: i64,
    /// Last request seen (Unix seconds), refreshed at most every [`TOUCH_EVERY`].
    seen_at: i64,
}

/// How often a signed-in admin's activity is written back (which also moves the
/// session row's expiry): often enough for an honest idle timeout, rarely enough not
/// to write on every page.
const TOUCH_EVERY: time::Duration = time::Duration::minutes(1);

impl std::fmt::Debug for AdminSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSession")
            .field("admin_id", &self.admin_id)
            .finish_non_exhaustive()
    }
}

impl AdminSession {
    fn new(
        admin_id: Uuid,
        email: String,
        epoch: i32,
        now: time::OffsetDateTime,
    ) -> Result<Self, AppError> {
        Ok(Self {
            admin_id,
            email,
            csrf: crypto::random_token()?,
            epoch,
            signed_in_at: now.unix_timestamp(),
            seen_at: now.unix_timestamp(),
        })
    }

    /// Whether the session is past its inactivity timeout or its absolute lifetime.
    fn timed_out(&self, app: &AppState, now: i64) -> bool {
        let server = &app.settings.server;
        let idle = time::Duration::hours(server.admin_session_idle_hours).whole_seconds();
        let max = time::Duration::hours(server.admin_session_max_hours).whole_seconds();
        now - self.seen_at >= idle || now - self.signed_in_at >= max
    }

    fn csrf_matches(&self, presented: &str) -> bool {
        crate::web::csrf::token_matches(&self.csrf, presented)
    }

    /// The actor recorded on events this admin causes.
    pub fn actor(&self) -> Actor {
        Actor::Admin(self.email.clone())
    }

    /// What every signed-in page's layout needs.
    pub fn nav(&self) -> Nav {
        Nav {
            email: self.email.clone(),
            csrf: self.csrf.clone(),
        }
    }
}

/// The layout's part of a page: who is signed in, and the token for its forms.
pub struct Nav {
    pub email: String,
    pub csrf: String,
}

/// Anonymous → the login form. A POST must come from our own pages: not cross-site,
/// and with the session's token in its `csrf` field.
async fn guard(
    State(app): State<AppState>,
    session: Session,
    request: Request,
    next: Next,
) -> Response {
    match check(&app, &session, request).await {
        Ok(request) => next.run(request).await,
        Err(response) => response,
    }
}

async fn check(app: &AppState, session: &Session, request: Request) -> Result<Request, Response> {
    let mut admin = match session.get::<AdminSession>(KEY).await {
        Ok(Some(admin)) => admin,
        Ok(None) => return Err(Redirect::to("/admin/login").into_response()),
        Err(e) => return Err(AdminError::from(e).into_response()),
    };
    let now = app.clock.now().unix_timestamp();
    // A session outlives nothing: an admin removed, or whose password changed, since
    // it signed in is signed out; so is one idle or old past its limits.
    let epoch = async {
        let mut conn = app.pool.acquire().await?;
        db::admins::password_epoch(&mut conn, admin.admin_id).await
    }
    .await
    .map_err(|e| AdminError::from(e).into_response())?;
    if epoch != Some(admin.epoch) || admin.timed_out(app, now) {
        let _ = session.flush().await;
        return Err(Redirect::to("/admin/login").into_response());
    }
    if now - admin.seen_at >= TOUCH_EVERY.whole_seconds() {
        admin.seen_at = now;
        session
            .insert(KEY, &admin)
            .await
            .map_err(|e| AdminError::from(e).into_response())?;
    }
    let (mut parts, body) = request.into_parts();
    let body = if matches!(parts.method, Method::GET | Method::HEAD) {
        body
    } else {
        crate::web::csrf::refuse_cross_site(&parts.headers)
            .map_err(|e| AdminError(e).into_response())?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                AdminError(AppError::BadRequest("The form is too large.".into())).into_response()
            })?;
        if !form_token(&bytes).is_some_and(|token| admin.csrf_matches(&token)) {
            return Err(expired_form().into_response());
        }
        Body::from(bytes)
    };
    parts.extensions.insert(admin);
    Ok(Request::from_parts(parts, body))
}

/// The single `csrf` field of a urlencoded form.
fn form_token(body: &[u8]) -> Option<String> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    let mut tokens = fields
        .into_iter()
        .filter(|(k, _)| k == "csrf")
        .map(|(_, v)| v);
    let token = tokens.next()?;
    tokens.next().is_none().then_some(token)
}

fn expired_form() -> AdminError {
    AdminError(AppError::Forbidden(
        "This form has expired or did not come from this console. Go back, reload the page and try again.".into(),
    ))
}

/// A one-time message shown on the next page (after a POST that redirects).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

const FLASH: &str = "admin_flash";

async fn set_flash(session: &Session, ok: bool, text: String) -> Result<(), AdminError> {
    session.insert(FLASH, Flash { ok, text }).await?;
    Ok(())
}

async fn take_flash(session: &Session) -> Result<Option<Flash>, AdminError> {
    Ok(session.remove::<Flash>(FLASH).await?)
}

/// Errors on admin pages: the same classes as everywhere, on a page that leads back to
/// the console rather than to an end user's connections.
#[derive(Debug)]
pub struct AdminError(pub AppError);

pub type AdminResult<T> = Result<T, AdminError>;

impl<E: Into<AppError>> From<E> for AdminError {
    fn from(e: E) -> Self {
        AdminError(e.into())
    }
}

#[derive(Template)]
#[template(path = "admin/error.html")]
struct AdminErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        self.0.log();
        let status = crate::web::error::status(&self.0);
        let message = match &self.0 {
            AppError::NoSession => "Sign in again.".to_string(),
            other => other.public_message(),
        };
        render_status(
            status,
            &AdminErrorPage {
                title: status.canonical_reason().unwrap_or("Error"),
                message: &message,
            },
        )
    }
}

/// Renders a page with a status other than 200; never panics on a template error.
fn render_status(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "admin template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

pub use login::unlock;

/// How long failed sign-ins are kept: well past the window that counts them.
pub fn login_failures_kept() -> time::Duration {
    login::FAILURE_WINDOW * 4
}
