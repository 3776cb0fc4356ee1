//! The stylesheet and the admin console's small script, compiled into the binary so a
//! deployment is one file (and the CSP can stay `script-src 'self'`).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

const STYLESHEET: &str = include_str!("../../static/keyhaven.css");
const ADMIN_SCRIPT: &str = include_str!("../../static/admin.js");
const POPUP_SCRIPT: &str = include_str!("../../static/keyhaven-popup.js");
const CONNECT_SCRIPT: &str = include_str!("../../static/keyhaven-connect.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/static/keyhaven.css", get(stylesheet))
        .route("/static/admin.js", get(admin_script))
        .route("/static/keyhaven-popup.js", get(|| script(POPUP_SCRIPT)))
        .route(
            "/static/keyhaven-connect.js",
            get(|| script(CONNECT_SCRIPT)),
        )
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

async fn script(body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
}
