//! HTTP surface: one router per feature, merged here with the shared layers.

pub mod admin;
pub mod api;
pub mod api_keys;
pub mod api_user;
pub mod assets;
pub mod callback;
pub mod connect;
pub mod health;
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

use crate::AppState;
use crate::error::AppError;
use session_store::Sessions;

pub const SESSION_COOKIE: &str = "keyhaven_session";

pub fn router(state: AppState, store: Sessions) -> Router {
    // End-user pages may read sessions from memory; admin pages always read Postgres.
    let end_user_pages = Router::new()
        .merge(connect::router())
        .merge(callback::router())
        .layer(session_layer(&state, store.with_cached_reads()));
    let admin_pages = admin::router(state.clone()).layer(session_layer(&state, store));

    let app = Router::new()
        .merge(end_user_pages)
        .merge(admin_pages)
        .nest("/api/v1", api::router().merge(openapi::router()))
        .merge(health::router())
        .merge(assets::router())
        .fallback(|| async { AppError::NotFound })
        .layer(RequestBodyLimitLayer::new(64 * 1024))
        .with_state(state);
    with_security_headers(app).layer(axum::middleware::from_fn(observe::observe))
}

fn session_layer(state: &AppState, store: Sessions) -> SessionManagerLayer<Sessions> {
    SessionManagerLayer::new(store)
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.settings.secure_cookies())
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(
            state.settings.server.session_hours,
        )))
}

/// Headers every response carries unless its handler set them.
const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
];

/// One layer for all of them: every layer costs each request a boxed future.
fn with_security_headers(router: Router) -> Router {
    router.layer(axum::middleware::map_response(
        |mut response: Response| async move {
            let headers = response.headers_mut();
            for (name, value) in SECURITY_HEADERS {
                if !headers.contains_key(&name) {
                    headers.insert(name, HeaderValue::from_static(value));
                }
            }
            response
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
            crate::db::pool::note_failure(&e);
            tracing::warn!(error = %e, "could not delete expired authorizations");
        }
        let before = state.clock.now() - admin::login_failures_kept();
        if let Ok(mut conn) = state.pool.acquire().await
            && let Err(e) = crate::db::admins::delete_old_failures(&mut conn, before).await
        {
            crate::db::pool::note_failure(&e);
            tracing::warn!(error = %e, "could not delete old admin sign-in failures");
        }
        if let Err(e) = store.delete_expired().await {
            tracing::warn!(error = %e, "could not delete expired sessions");
        }
    }
}
