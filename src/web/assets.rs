//! The stylesheet and the admin console's small script, compiled into the binary so a
//! deployment is one file (and the CSP can stay `script-src 'self'`).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::AppState;

const STYLESHEET: &str = include_str!("../../static/keyhaven.css");
const ADMIN_SCRIPT: &str = include_str!("../../static/admin.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/static/keyhaven.css", get(stylesheet))
        .route("/static/admin.js", get(admin_script))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}

async fn admin_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        ADMIN_SCRIPT,
    )
}
