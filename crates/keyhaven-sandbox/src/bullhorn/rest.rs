//! Bullhorn's REST host: `loginInfo` (which sends users of another data center there
//! with a 307), the login that spends an OAuth access token on a BhRestToken session,
//! and the session calls (`ping`, `settings/userId`, `logout`).
#![expect(
    clippy::result_large_err,
    reason = "handlers return a ready axum Response as the error"
)]

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{KEY, Session, auth_url, data_center, rest_url};
use crate::Sandbox;
use crate::fault::{self, Failure, Plan};
use crate::world::FaultTarget;

/// Bullhorn's REST errors: `{"errorMessage", "errorCode"}`.
fn rest_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({ "errorMessage": message, "errorCode": status.as_u16() })),
    )
        .into_response()
}

fn rest_failure(failure: Failure) -> Response {
    match failure {
        Failure::Status(status) => rest_error(status, "injected failure"),
        Failure::TooManyRequests { retry_after_secs } => {
            let mut response = rest_error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            if let Ok(v) = retry_after_secs.to_string().parse() {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
        Failure::Throttled(_) => rest_error(StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
        Failure::InvalidGrant => rest_error(StatusCode::UNAUTHORIZED, "Bad access token"),
        Failure::EmptyOk => (StatusCode::OK, Json(json!({}))).into_response(),
    }
}

/// `GET …/loginInfo?username=U` (no auth): this data center's hosts for its own users,
/// a 307 to the user's data center for everyone else's.
pub async fn login_info(
    State(sb): State<Sandbox>,
    Path(dc): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(dc) = data_center(&dc) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let fault = {
        let mut w = sb.world();
        w.count(format!("{KEY}.login_info"));
        w.take_fault(KEY, FaultTarget::LoginInfo)
    };
    let hang = match fault::plan(fault).await {
        Plan::Proceed { hang } => hang,
        Plan::Fail(failure) => return rest_failure(failure),
    };
    let username = q.get("username").map(String::as_str).unwrap_or_default();
    if username.is_empty() {
        return rest_error(StatusCode::BAD_REQUEST, "username is required");
    }
    let response = {
        let mut w = sb.world();
        // A lookup starts at east whatever the host asked; a new user lives there.
        super::sign_up_on_first_sight(&mut w, username, "east");
        match w.bullhorn.user(username).map(|u| u.dc) {
            None => rest_error(StatusCode::NOT_FOUND, "Unknown username"),
            Some(home) if home == dc => Json(json!({
                "oauthUrl": auth_url(&w.base_url, dc),
                "restUrl": rest_url(&w.base_url, dc),
            }))
            .into_response(),
            Some(home) => {
                let encoded: String =
                    url::form_urlencoded::byte_serialize(username.as_bytes()).collect();
                let location = format!(
                    "{}/loginInfo?username={encoded}",
                    rest_url(&w.base_url, home)
                );
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, location)],
                )
                    .into_response()
            }
        }
    };
    fault::deliver(hang, response).await
}

/// `…/login?version=*&access_token=AT[&ttl=minutes]`: spends the access token (usable
/// once, and only in its own data center) on a session.
pub async fn login(
    State(sb): State<Sandbox>,
    Path(dc): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(dc) = data_center(&dc) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let access_token = q.get("access_token").cloned().unwrap_or_default();
    let fault = {
        let mut w = sb.world();
        w.count(format!("{KEY}.rest_login"));
        w.remember(&access_token);
        w.take_fault(KEY, FaultTarget::RestLogin)
    };
    let hang = match fault::plan(fault).await {
        Plan::Proceed { hang } => hang,
        Plan::Fail(failure) => {
            if let Failure::InvalidGrant = failure
                && let Some(g) = sb.world().access_tokens.get_mut(&access_token)
            {
                g.alive = false;
            }
            return rest_failure(failure);
        }
    };
    if !q.contains_key("version") {
        return rest_error(StatusCode::BAD_REQUEST, "version is required");
    }
    let ttl_minutes = match q.get("ttl").map(|t| t.parse::<u32>()) {
        None => 10,
        Some(Ok(minutes)) if minutes > 0 => minutes,
        Some(_) => return rest_error(StatusCode::BAD_REQUEST, "ttl must be a number of minutes"),
    };
    let response = {
        let mut w = sb.world();
        let now = w.clock.now();
        let grant = w
            .access_tokens
            .get(&access_token)
            .filter(|g| g.alive && g.provider == KEY && g.dc == Some(dc) && now <= g.expires_at)
            .cloned();
        let corp = grant
            .as_ref()
            .and_then(|g| w.bullhorn.user(&g.login))
            .map(|u| u.corp.clone());
        match (grant, corp) {
            (Some(grant), Some(corp)) => {
                // The access token is good for one login.
                if let Some(g) = w.access_tokens.get_mut(&access_token) {
                    g.alive = false;
                }
                let rest_token = uuid::Uuid::new_v4().to_string();
                w.remember(&rest_token);
                w.bullhorn.sessions.insert(
                    rest_token.clone(),
                    Session {
                        username: grant.login,
                        dc,
                        corp: corp.clone(),
                        expires_at: now + time::Duration::minutes(i64::from(ttl_minutes)),
                    },
                );
                Json(json!({
                    "BhRestToken": rest_token,
                    "restUrl": format!("{}/{corp}/", rest_url(&w.base_url, dc)),
                }))
                .into_response()
            }
            _ => rest_error(StatusCode::UNAUTHORIZED, "Bad access token or timed-out."),
        }
    };
    fault::deliver(hang, response).await
}

/// A session call carries its token as `BhRestToken` header or query parameter.
fn presented<'a>(headers: &'a HeaderMap, q: &'a HashMap<String, String>) -> Option<&'a str> {
    headers
        .get("BhRestToken")
        .and_then(|v| v.to_str().ok())
        .or_else(|| q.get("BhRestToken").map(String::as_str))
}

/// The session a call presents: missing is a 412, unknown or expired a 401.
fn session(
    sb: &Sandbox,
    dc: &str,
    corp: &str,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<Session, Response> {
    let Some(token) = presented(headers, q) else {
        return Err(rest_error(
            StatusCode::PRECONDITION_FAILED,
            "Missing BhRestToken header or query parameter.",
        ));
    };
    let w = sb.world();
    let now = w.clock.now();
    match w.bullhorn.sessions.get(token) {
        Some(s) if s.dc == dc && s.corp == corp && now <= s.expires_at => Ok(s.clone()),
        _ => Err(rest_error(
            StatusCode::UNAUTHORIZED,
            "Bad 'BhRestToken' or timed-out.",
        )),
    }
}

pub async fn ping(
    State(sb): State<Sandbox>,
    Path((dc, corp)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    sb.world().count(format!("{KEY}.ping"));
    match session(&sb, &dc, &corp, &headers, &q) {
        Ok(s) => {
            let expires_ms =
                i64::try_from(s.expires_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
            Json(json!({ "sessionExpires": expires_ms })).into_response()
        }
        Err(response) => response,
    }
}

/// The who-am-I of a session.
pub async fn user_id(
    State(sb): State<Sandbox>,
    Path((dc, corp)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let fault = {
        let mut w = sb.world();
        w.count(format!("{KEY}.user_id"));
        w.take_fault(KEY, FaultTarget::Userinfo)
    };
    let hang = match fault::plan(fault).await {
        Plan::Proceed { hang } => hang,
        Plan::Fail(failure) => return rest_failure(failure),
    };
    let response = match session(&sb, &dc, &corp, &headers, &q) {
        Ok(s) => match sb.world().bullhorn.user(&s.username) {
            Some(u) => Json(json!({ "userId": u.user_id })).into_response(),
            None => rest_error(StatusCode::UNAUTHORIZED, "Bad 'BhRestToken' or timed-out."),
        },
        Err(response) => response,
    };
    fault::deliver(hang, response).await
}

pub async fn logout(
    State(sb): State<Sandbox>,
    Path((dc, corp)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    sb.world().count(format!("{KEY}.logout"));
    if let Err(response) = session(&sb, &dc, &corp, &headers, &q) {
        return response;
    }
    if let Some(token) = presented(&headers, &q) {
        sb.world().bullhorn.sessions.remove(token);
    }
    Json(json!({})).into_response()
}
