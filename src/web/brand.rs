//! The host product's branding on our pages: `/branding.css` (the accent colour), the
//! logo from our own origin, and the branding each page renders with.
//!
//! Pages, error pages included, render deep inside handlers and error conversions that
//! have no state at hand; a layer puts the branding in a task-local for the request.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::branding::Branding;
use crate::state::AppState;

tokio::task_local! {
    static BRANDING: Arc<Branding>;
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/branding.css", get(stylesheet))
        .route("/branding/logo", get(logo))
}

/// The branding of the request being answered (Keyhaven's own outside a request).
pub fn current() -> Arc<Branding> {
    BRANDING.try_with(Arc::clone).unwrap_or_default()
}

/// Layer: answers the request with the configured branding in scope.
pub async fn scope(State(app): State<AppState>, request: Request, next: Next) -> Response {
    BRANDING
        .scope(app.settings.branding.clone(), next.run(request))
        .await
}

async fn stylesheet(State(app): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        app.settings.branding.stylesheet(),
    )
        .into_response()
}

async fn logo(State(app): State<AppState>) -> Response {
    let Some(logo) = &app.settings.branding.logo else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, logo.content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
            // An SVG opened on its own must not run anything in our origin.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; sandbox",
            ),
        ],
        logo.bytes.to_vec(),
    )
        .into_response()
}
