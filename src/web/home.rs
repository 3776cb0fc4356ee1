//! `GET /`: what this site is, for someone who arrives without a link.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::routing::get;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(home))
}

#[derive(Template, WebTemplate)]
#[template(path = "home.html")]
pub struct HomePage;

async fn home() -> HomePage {
    HomePage
}
