//! HTTP surface: one router per feature, merged here with the shared layers.

pub mod admin;
pub mod api;
pub mod api_keys;
pub mod assets;
pub mod brand;
pub mod callback;
pub mod connect;
pub mod csrf;
pub mod error;
pub mod health;
pub mod home;
pub mod observe;
pub mod openapi;
pub mod session;
pub mod session_store;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use tower_http::limit::RequestBodyLimitLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::error::AppError;
use crate::state::AppState;
use error::DatabaseFailure;
use session_store::Sessions;

/// The end user's session cookie (`__Host-` prefixed on https).
pub const SESSION_COOKIE: &str = "keyhaven_session";
/// The admin's session cookie: a separate session, with its own timeouts.
pub const ADMIN_COOKIE: &str = "keyhaven_admin";

pub fn router(state: AppState, store: Sessions) -> Router {
    // End-user pages may read sessions from memory; admin pages always read Postgres.
    let end_user_pages = Router::new()
        .merge(connect::router())
        .merge(callback::router())
        .layer(session_layer(
            &state,
            store.with_cached_reads(),
            SESSION_COOKIE,
            state.settings.server.session_hours,
        ));
    let admin_pages = admin::router(state.clone()).layer(session_layer(
        &state,
        store,
        ADMIN_COOKIE,
        state.settings.server.admin_session_idle_hours,
    ));
    let headers = security_headers(&state.settings);

    let pool = state.pool.clone();
    let app = Router::new()
        .merge(end_user_pages)
        .merge(admin_pages)
        .nest("/api/v1", api::router().merge(openapi::router()))
        .merge(health::router())
        .merge(assets::router())
        .merge(brand::router())
        .merge(home::router())
        .fallback(|| async { AppError::NotFound })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            brand::scope,
        ))
        .layer(RequestBodyLimitLayer::new(64 * 1024))
        .with_state(state);
    finish_responses(app, headers, pool).layer(axum::middleware::from_fn(observe::observe))
}

fn session_layer(
    state: &AppState,
    store: Sessions,
    cookie: &str,
    idle_hours: i64,
) -> SessionManagerLayer<Sessions> {
    SessionManagerLayer::new(store)
        .with_name(state.settings.cookie_name(cookie))
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.settings.secure_cookies())
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(idle_hours)))
}

/// Headers every response carries unless its handler set them.
const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// The fixed headers, the CSP (whose `form-action` names the origins our forms may lead
/// to: this site, each provider's authorize hosts and the allowed return origins), and HSTS when served over https.
pub fn security_headers(settings: &crate::config::Settings) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers: Vec<(HeaderName, HeaderValue)> = SECURITY_HEADERS
        .into_iter()
        .map(|(name, value)| (name, HeaderValue::from_static(value)))
        .collect();
    let mut form_action = vec!["'self'".to_string()];
    for origin in settings.providers.iter().flat_map(|p| p.form_origins()) {
        // Only plain scheme://host[:port] sources; anything else would break the policy.
        let clean = origin.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '.' | '-' | '*' | '[' | ']')
        });
        if clean && origin != "null" && !form_action.contains(&origin) {
            form_action.push(origin);
        }
    }
    // A form whose answer leads back to the product (a connect link's return URL).
    for origin in &settings.return_origins {
        let origin = origin.ascii_serialization();
        if origin != "null" && !form_action.contains(&origin) {
            form_action.push(origin);
        }
    }
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action {}",
        form_action.join(" ")
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.push((header::CONTENT_SECURITY_POLICY, value));
    }
    if settings.server.public_url.scheme() == "https" {
        headers.push((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    headers
}

/// One layer for the security headers and for telling the pool about a broken database
/// connection a request saw: every layer costs each request a boxed future.
fn finish_responses(
    router: Router,
    fixed: Vec<(HeaderName, HeaderValue)>,
    pool: crate::db::Pool,
) -> Router {
    let fixed = std::sync::Arc::new(fixed);
    router.layer(axum::middleware::map_response(
        move |mut response: Response| {
            if response.extensions().get::<DatabaseFailure>().is_some() {
                pool.note_connection_failure();
            }
            let fixed = fixed.clone();
            async move {
                let headers = response.headers_mut();
                for (name, value) in fixed.iter() {
                    if !headers.contains_key(name) {
                        headers.insert(name.clone(), value.clone());
                    }
                }
                response
            }
        },
    ))
}

/// Periodic clean-up of expired pending authorizations, old failed admin sign-ins and
/// sessions.
pub async fn housekeeping(state: AppState, store: Sessions) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        if let Ok(mut conn) = state.pool.acquire().await
            && let Err(e) = crate::db::pending::delete_expired(&mut conn, state.clock.now()).await
        {
            state.pool.note_failure(&e);
            tracing::warn!(error = %e, "could not delete expired authorizations");
        }
        let before = state.clock.now() - admin::login_failures_kept();
        if let Ok(mut conn) = state.pool.acquire().await
            && let Err(e) = crate::db::admins::delete_old_failures(&mut conn, before).await
        {
            state.pool.note_failure(&e);
            tracing::warn!(error = %e, "could not delete old admin sign-in failures");
        }
        if let Err(e) = crate::housekeeping::sweep(&state).await {
            state.pool.note_failure(&e);
            tracing::warn!(error = %e, "could not delete links and events past their retention");
        }
        if let Err(e) = store.delete_expired().await {
            tracing::warn!(error = %e, "could not delete expired sessions");
        }
    }
}
