//! The Recruit host's who-am-I: `GET /recruit/v2/users?type=CurrentUser` with Zoho's own
//! `Authorization: Zoho-oauthtoken` scheme, answered only in the token's data center.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{DataCenter, KEY, user};
use crate::Sandbox;
use crate::fault::{self, Failure, Plan};
use crate::world::FaultTarget;

fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "code": code, "details": {}, "message": message, "status": "error" })),
    )
        .into_response()
}

fn invalid_token() -> Response {
    api_error(
        StatusCode::UNAUTHORIZED,
        "INVALID_TOKEN",
        "invalid oauth token",
    )
}

pub async fn current_user(
    State(sb): State<Sandbox>,
    Path(dc): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(dc) = DataCenter::find(&dc) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let fault = {
        let mut w = sb.world();
        w.count(format!("{KEY}.userinfo"));
        w.count(format!("{KEY}.{}.userinfo", dc.location));
        w.take_fault(KEY, FaultTarget::Userinfo)
    };
    let hang = match fault::plan(fault).await {
        Plan::Proceed { hang } => hang,
        Plan::Fail(Failure::Status(status)) => {
            return api_error(status, "INTERNAL_ERROR", "injected failure");
        }
        Plan::Fail(_) => return invalid_token(),
    };
    let response = answer(&sb, dc, &q, &headers);
    fault::deliver(hang, response).await
}

fn answer(
    sb: &Sandbox,
    dc: DataCenter,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let Some(authorization) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return api_error(
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION_FAILURE",
            "Authentication failed",
        );
    };
    // Zoho's scheme is `Zoho-oauthtoken`; a `Bearer` header is refused.
    let Some(token) = authorization.strip_prefix("Zoho-oauthtoken ") else {
        return invalid_token();
    };
    if q.get("type").map(String::as_str) != Some("CurrentUser") {
        return api_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "only type=CurrentUser is imitated",
        );
    }
    let w = sb.world();
    let now = w.clock.now();
    match w.access_tokens.get(token.trim()) {
        Some(g)
            if g.alive && g.provider == KEY && g.dc == Some(dc.location) && now <= g.expires_at =>
        {
            Json(json!({ "users": [user(&w, &g.login)] })).into_response()
        }
        _ => invalid_token(),
    }
}
