//! Zoho's accounts-server token endpoint and revocation. Every failure is an HTTP 200
//! with an `error` key (the throttle answer may be a 400); refresh tokens never rotate
//! but are capped per user, and access tokens are capped per refresh token.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{DataCenter, KEY, new_token};
use crate::fault::{self, Failure, Plan};
use crate::world::{FaultTarget, TokenGrant, World};
use crate::{Flavor, Sandbox};

const MAX_REFRESH_TOKENS_PER_USER: usize = 20;
const MAX_ACCESS_TOKENS_PER_REFRESH_TOKEN: usize = 30;
const MAX_REFRESH_TOKENS_PER_MINUTE: usize = 5;

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response()
}

/// Zoho reports failures as a 200 whose body has an `error` key.
fn zoho_error(code: &str) -> Response {
    ok(json!({ "error": code }))
}

fn throttled(status: StatusCode) -> Response {
    (
        status,
        Json(json!({
            "error": "Access Denied",
            "error_description": "You have made too many requests continuously. Please try again after some time.",
            "status": "failure",
        })),
    )
        .into_response()
}

/// Zoho's docs put the parameters in the query string, its SDKs in a form body: both
/// are read, the body winning.
fn read_params(query: Option<&str>, body: &[u8]) -> HashMap<String, String> {
    let mut params: HashMap<String, String> = query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    params.extend(url::form_urlencoded::parse(body).into_owned());
    params
}

pub async fn token(
    State(sb): State<Sandbox>,
    Path(dc): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some(dc) = DataCenter::find(&dc) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let params = read_params(query.as_deref(), &body);
    let grant_type = params.get("grant_type").cloned().unwrap_or_default();
    let target = if grant_type == "refresh_token" {
        FaultTarget::Refresh
    } else {
        FaultTarget::Exchange
    };
    let fault = {
        let mut w = sb.world();
        let kind = if grant_type.is_empty() {
            "none"
        } else {
            &grant_type
        };
        w.count(format!("{KEY}.token.{kind}"));
        w.count(format!("{KEY}.{}.token", dc.location));
        for key in ["code", "refresh_token"] {
            if let Some(v) = params.get(key) {
                w.remember(v);
            }
        }
        w.take_fault(KEY, target)
    };
    let hang = match fault::plan(fault).await {
        Plan::Proceed { hang } => hang,
        Plan::Fail(failure) => return answer_failure(&sb, failure, &params),
    };
    let response = {
        let mut guard = sb.world();
        let w: &mut World = &mut guard;
        match authenticate(w, &params) {
            None => zoho_error("invalid_client"),
            Some(client_id) => match grant_type.as_str() {
                "authorization_code" => exchange(w, dc, &client_id, &params),
                "refresh_token" => refresh(w, dc, &client_id, &params),
                _ => zoho_error("unsupported_grant_type"),
            },
        }
    };
    fault::deliver(hang, response).await
}

fn answer_failure(sb: &Sandbox, failure: Failure, params: &HashMap<String, String>) -> Response {
    match failure {
        Failure::InvalidGrant => {
            if let Some(rt) = params.get("refresh_token") {
                kill_refresh_token(&mut sb.world(), rt);
            }
            zoho_error("invalid_code")
        }
        Failure::Throttled(status) => {
            let status = status.unwrap_or_else(|| sb.world().zoho.throttle_status);
            throttled(status)
        }
        other => fault::oauth_answer(other),
    }
}

fn authenticate(w: &World, params: &HashMap<String, String>) -> Option<String> {
    let id = params.get("client_id")?;
    let secret = params.get("client_secret")?;
    let registration = w.clients.get(&(KEY.to_string(), id.clone()))?;
    (registration.secret == *secret).then(|| id.clone())
}

fn exchange(
    w: &mut World,
    dc: DataCenter,
    client_id: &str,
    params: &HashMap<String, String>,
) -> Response {
    let now = w.clock.now();
    let code = params.get("code").cloned().unwrap_or_default();
    // Another data center never saw the code: it stays unused.
    let Some(grant) = w
        .codes
        .get(&code)
        .filter(|g| g.provider == KEY && g.dc == Some(dc.location))
        .cloned()
    else {
        return zoho_error("invalid_code");
    };
    if grant.used {
        return zoho_error("invalid_code");
    }
    w.code_ages.push(grant.issued_instant.elapsed());
    if now > grant.issued_at + Flavor::Zoho.code_ttl() || grant.client_id != client_id {
        return zoho_error("invalid_code");
    }
    if params
        .get("redirect_uri")
        .is_some_and(|r| *r != grant.redirect_uri)
    {
        return zoho_error("invalid_redirect_uri");
    }
    // A refresh token only with access_type=offline, and for a user who already granted
    // this client only when the consent was asked again (prompt=consent).
    let offline = grant.access_type.as_deref() == Some("offline");
    let consented = grant.prompt.as_deref() == Some("consent");
    let wants_refresh = offline && (consented || !has_live_grant(w, &grant.login, client_id));
    if wants_refresh && creations_last_minute(w, &grant.login, now) >= MAX_REFRESH_TOKENS_PER_MINUTE
    {
        w.count(format!("{KEY}.throttled"));
        return throttled(w.zoho.throttle_status);
    }
    if let Some(g) = w.codes.get_mut(&code) {
        g.used = true;
    }
    w.count(format!("{KEY}.exchanged"));
    let refresh = wants_refresh
        .then(|| create_refresh_token(w, dc, client_id, &grant.login, &grant.scope, now));
    let access = create_access_token(
        w,
        dc,
        client_id,
        &grant.login,
        &grant.scope,
        refresh.as_deref(),
        now,
    );
    let mut body = json!({
        "access_token": access,
        "api_domain": dc.api_domain(),
        "token_type": "Bearer",
        "expires_in": Flavor::Zoho.access_ttl(),
    });
    if let (Some(rt), Some(map)) = (refresh, body.as_object_mut()) {
        map.insert("refresh_token".into(), Value::String(rt));
    }
    ok(body)
}

fn refresh(
    w: &mut World,
    dc: DataCenter,
    client_id: &str,
    params: &HashMap<String, String>,
) -> Response {
    let now = w.clock.now();
    let token = params.get("refresh_token").cloned().unwrap_or_default();
    *w.refresh_token_uses.entry(token.clone()).or_default() += 1;
    let Some(grant) = w
        .refresh_tokens
        .get(&token)
        .filter(|g| g.provider == KEY && g.dc == Some(dc.location))
        .cloned()
    else {
        return zoho_error("invalid_code");
    };
    if !grant.alive {
        w.dead_refresh_token_uses += 1;
        return zoho_error("invalid_code");
    }
    if grant.client_id != client_id {
        return zoho_error("invalid_code");
    }
    w.count(format!("{KEY}.refreshed"));
    let access = create_access_token(
        w,
        dc,
        client_id,
        &grant.login,
        &grant.scope,
        Some(&token),
        now,
    );
    // No rotation: the answer carries no refresh token, the old one lives on.
    ok(json!({
        "access_token": access,
        "api_domain": dc.api_domain(),
        "token_type": "Bearer",
        "expires_in": Flavor::Zoho.access_ttl(),
    }))
}

fn is_live(w: &World, token: &str) -> bool {
    w.refresh_tokens.get(token).is_some_and(|g| g.alive)
}

fn has_live_grant(w: &World, login: &str, client_id: &str) -> bool {
    w.zoho.refresh_by_user.get(login).is_some_and(|tokens| {
        tokens.iter().any(|t| {
            w.refresh_tokens
                .get(t)
                .is_some_and(|g| g.alive && g.client_id == client_id)
        })
    })
}

fn creations_last_minute(w: &mut World, login: &str, now: OffsetDateTime) -> usize {
    let times = w.zoho.created.entry(login.to_string()).or_default();
    times.retain(|t| now - *t < time::Duration::minutes(1));
    times.len()
}

fn create_refresh_token(
    w: &mut World,
    dc: DataCenter,
    client_id: &str,
    login: &str,
    scope: &str,
    now: OffsetDateTime,
) -> String {
    let token = new_token();
    w.remember(&token);
    w.refresh_tokens.insert(
        token.clone(),
        TokenGrant {
            provider: KEY.into(),
            client_id: client_id.into(),
            login: login.into(),
            scope: scope.into(),
            dc: Some(dc.location),
            expires_at: now + Flavor::Zoho.refresh_ttl(),
            alive: true,
        },
    );
    w.zoho
        .created
        .entry(login.to_string())
        .or_default()
        .push_back(now);
    let mut tokens = w.zoho.refresh_by_user.remove(login).unwrap_or_default();
    tokens.retain(|t| is_live(w, t));
    tokens.push_back(token.clone());
    // The 21st refresh token silently deletes the user's oldest, whichever client has it.
    while tokens.len() > MAX_REFRESH_TOKENS_PER_USER {
        if let Some(oldest) = tokens.pop_front() {
            kill_refresh_token(w, &oldest);
            w.count(format!("{KEY}.evicted.refresh_token"));
        }
    }
    w.zoho.refresh_by_user.insert(login.to_string(), tokens);
    token
}

fn create_access_token(
    w: &mut World,
    dc: DataCenter,
    client_id: &str,
    login: &str,
    scope: &str,
    parent: Option<&str>,
    now: OffsetDateTime,
) -> String {
    let token = new_token();
    w.remember(&token);
    w.access_tokens.insert(
        token.clone(),
        TokenGrant {
            provider: KEY.into(),
            client_id: client_id.into(),
            login: login.into(),
            scope: scope.into(),
            dc: Some(dc.location),
            expires_at: now + time::Duration::seconds(Flavor::Zoho.access_ttl()),
            alive: true,
        },
    );
    let Some(parent) = parent else {
        return token;
    };
    let mut tokens = w.zoho.access_by_refresh.remove(parent).unwrap_or_default();
    tokens.retain(|t| {
        w.access_tokens
            .get(t)
            .is_some_and(|g| g.alive && g.expires_at >= now)
    });
    tokens.push_back(token.clone());
    // The 31st live access token of one refresh token deletes the oldest.
    while tokens.len() > MAX_ACCESS_TOKENS_PER_REFRESH_TOKEN {
        if let Some(oldest) = tokens.pop_front()
            && let Some(g) = w.access_tokens.get_mut(&oldest)
        {
            g.alive = false;
            w.count(format!("{KEY}.evicted.access_token"));
        }
    }
    w.zoho.access_by_refresh.insert(parent.to_string(), tokens);
    token
}

/// A refresh token dies with every access token it minted.
fn kill_refresh_token(w: &mut World, token: &str) {
    if let Some(g) = w.refresh_tokens.get_mut(token)
        && g.provider == KEY
    {
        g.alive = false;
    }
    for access in w.zoho.access_by_refresh.remove(token).unwrap_or_default() {
        if let Some(g) = w.access_tokens.get_mut(&access) {
            g.alive = false;
        }
    }
}

/// `POST …/oauth/v2/token/revoke?token=RT`: answered alike whether or not the token was
/// known here, so only the counters tell a revocation sent to the wrong data center.
pub async fn revoke(
    State(sb): State<Sandbox>,
    Path(dc): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some(dc) = DataCenter::find(&dc) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let params = read_params(query.as_deref(), &body);
    let mut guard = sb.world();
    let w: &mut World = &mut guard;
    w.count(format!("{KEY}.revoke"));
    w.count(format!("{KEY}.{}.revoke", dc.location));
    let token = params.get("token").cloned().unwrap_or_default();
    w.remember(&token);
    let here = w
        .refresh_tokens
        .get(&token)
        .is_some_and(|g| g.provider == KEY && g.dc == Some(dc.location));
    if here {
        kill_refresh_token(w, &token);
        w.count(format!("{KEY}.revoked"));
    }
    ok(json!({ "status": "success" }))
}
