//! Hurdlr: the consent page at `/hurdlr/oauth/authorize` (the real address is
//! undocumented), token calls at `/hurdlr/rest/v4/auth/token` and `/v5/…` that read a
//! form body only, and `/hurdlr/rest/v5/auth/userInfo`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::fault::oauth_error;
use super::world::{World, random_hex};
use super::{Flavor, Sandbox, consent, token};

pub const KEY: &str = "hurdlr";

pub fn router(authorize: &'static str) -> Router<Sandbox> {
    Router::new()
        .route(authorize, get(consent::show).post(consent::decide))
        .route("/hurdlr/rest/v4/auth/token", post(token_endpoint))
        .route("/hurdlr/rest/v5/auth/token", post(token_endpoint))
        .route("/hurdlr/rest/v5/auth/userInfo", get(token::userinfo))
}

/// Tokens look like `<64 hex>.<32 hex>`.
pub fn new_token() -> String {
    format!("{}.{}", random_hex(32), random_hex(16))
}

/// `userInfo`: a numeric `userId` and a business name.
pub fn user_info(w: &World, login: &str) -> Value {
    let p = w.profile(KEY, login);
    json!({
        "userId": w.numeric_id(KEY, login),
        "email": p.email,
        "firstName": p.first_name,
        "lastName": p.last_name,
        "bizName": format!("{} {} Bookkeeping", p.first_name, p.last_name),
    })
}

/// Hurdlr reads an `application/x-www-form-urlencoded` body; a JSON body is refused.
async fn token_endpoint(State(sb): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    if json_type || body.trim_ascii_start().first() == Some(&b'{') {
        let mut w = sb.world();
        w.count(format!("{KEY}.token.rejected_body"));
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) {
            for key in ["code", "refresh_token"] {
                if let Some(v) = map.get(key).and_then(Value::as_str) {
                    w.remember(v);
                }
            }
        }
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let params = url::form_urlencoded::parse(&body).into_owned().collect();
    token::serve(&sb, Flavor::Hurdlr, None, params, &headers).await
}
