//! HTTP surface: one router per feature, merged here with the shared layers.

pub mod admin;
pub mod api;
pub mod api_keys;
pub mod api_user;
pub mod assets;
pub mod callback;
pub mod connect;
pub mod health;
pub mod session;

use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::PostgresStore;

use crate::AppState;
use crate::error::AppError;

pub const SESSION_COOKIE: &str = "keyhaven_session";

pub fn router(state: AppState, store: PostgresStore) -> Router {
    let sessions = SessionManagerLayer::new(store)
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.settings.secure_cookies())
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(
            state.settings.server.session_hours,
        )));

    let pages = Router::new()
        .merge(connect::router())
        .merge(callback::router())
        .merge(admin::router(state.clone()))
        .layer(sessions);

    let app = Router::new()
        .merge(pages)
        .nest("/api/v1", api::router())
        .merge(health::router())
        .merge(assets::router())
        .fallback(|| async { AppError::NotFound })
        .layer(RequestBodyLimitLayer::new(64 * 1024))
        .with_state(state);
    with_security_headers(app).layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
        // The route template only: raw paths and queries carry links, codes and states.
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str)
            .unwrap_or("unmatched");
        tracing::info_span!("request", method = %req.method(), route)
    }))
}

/// Headers every response carries unless its handler set them.
fn with_security_headers(router: Router) -> Router {
    const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'";
    let headers: [(HeaderName, &'static str); 5] = [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, CSP),
    ];
    headers.into_iter().fold(router, |router, (name, value)| {
        router.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ))
    })
}

/// Periodic clean-up of expired pending authorizations, old failed admin sign-ins and
/// sessions.
pub async fn housekeeping(state: AppState, store: PostgresStore) {
    use tower_sessions::ExpiredDeletion;
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        if let Ok(mut conn) = state.pool.acquire().await
            && let Err(e) = crate::db::pending::delete_expired(&mut conn, state.clock.now()).await
        {
            tracing::warn!(error = %e, "could not delete expired authorizations");
        }
        let before = state.clock.now() - admin::login_failures_kept();
        if let Ok(mut conn) = state.pool.acquire().await
            && let Err(e) = crate::db::admins::delete_old_failures(&mut conn, before).await
        {
            tracing::warn!(error = %e, "could not delete old admin sign-in failures");
        }
        if let Err(e) = store.delete_expired().await {
            tracing::warn!(error = %e, "could not delete expired sessions");
        }
    }
}
