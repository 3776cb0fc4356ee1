//! The stylesheet, compiled into the binary so a deployment is one file.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::AppState;

const STYLESHEET: &str = include_str!("../../static/keyhaven.css");

pub fn router() -> Router<AppState> {
    Router::new().route("/static/keyhaven.css", get(stylesheet))
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
