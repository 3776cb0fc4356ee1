//! Token, who-am-I and revocation endpoints, with queued faults applied first.
#![expect(
    clippy::result_large_err,
    reason = "handlers return a ready axum Response as the error"
)]

use std::collections::HashMap;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::fault::{self, Failure, Plan, oauth_error as error};
use super::world::{FaultEffect, FaultTarget, TokenGrant, World};
use super::{Flavor, Sandbox, hurdlr};

/// Token endpoints accept a form body, or (SmartRecruiters' own example) a JSON object
/// under any content type.
fn parse_params(body: &[u8]) -> HashMap<String, String> {
    let trimmed = body.trim_ascii_start();
    if trimmed.first() == Some(&b'{')
        && let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(trimmed)
    {
        return map
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
            .collect();
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .map(|pairs| pairs.into_iter().collect())
        .unwrap_or_default()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(value).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let dec = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((dec(id)?, dec(secret)?))
}

pub async fn token(
    State(sb): State<Sandbox>,
    Extension(flavor): Extension<Flavor>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&sb, flavor, None, parse_params(&body), &headers).await
}

/// The token endpoint's work once the parameters are read (each provider reads them its
/// own way); `dc` is the data center the call reached, for providers with several.
pub async fn serve(
    sb: &Sandbox,
    flavor: Flavor,
    dc: Option<&'static str>,
    params: HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let grant_type = params.get("grant_type").cloned().unwrap_or_default();
    let target = if grant_type == "refresh_token" {
        FaultTarget::Refresh
    } else {
        FaultTarget::Exchange
    };
    let _in_flight = (target == FaultTarget::Refresh).then(|| RefreshInFlight::enter(sb));
    let fault = {
        let mut w = sb.world();
        w.count(format!(
            "{}.token.{}",
            flavor.key(),
            if grant_type.is_empty() {
                "none"
            } else {
                &grant_type
            }
        ));
        for key in ["code", "refresh_token", "code_verifier"] {
            if let Some(v) = params.get(key) {
                w.remember(v);
            }
        }
        w.take_fault(flavor.key(), target)
    };
    let huge_expiry = fault == Some(FaultEffect::HugeExpiry);
    let hang = match fault::plan(fault).await {
        Plan::Proceed { hang } => hang,
        Plan::Fail(failure) => {
            if let Failure::InvalidGrant = failure
                && let Some(rt) = params.get("refresh_token")
                && let Some(g) = sb.world().refresh_tokens.get_mut(rt)
            {
                g.alive = false;
            }
            return fault::oauth_answer(failure);
        }
    };
    let response = {
        let mut w = sb.world();
        match authenticate(&w, flavor, &params, headers) {
            Err(r) => r,
            Ok(client_id) => match grant_type.as_str() {
                "authorization_code" => exchange(&mut w, flavor, dc, &client_id, &params),
                "refresh_token" => refresh(&mut w, flavor, dc, &client_id, &params),
                _ => error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "unsupported grant_type",
                ),
            },
        }
    };
    let response = if huge_expiry {
        with_huge_expiry(response).await
    } else {
        response
    };
    // With a dropped response the provider has acted; the answer never arrives in time.
    fault::deliver(hang, response).await
}

/// The same answer with `expires_in` (and Hurdlr's `created_at`) as large as JSON allows.
async fn with_huge_expiry(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Some(map) = json
        .as_object_mut()
        .filter(|m| m.contains_key("access_token"))
    {
        map.insert("expires_in".into(), i64::MAX.into());
        if map.contains_key("created_at") {
            map.insert("created_at".into(), i64::MAX.into());
        }
    }
    let mut response = axum::Json(json).into_response();
    *response.status_mut() = parts.status;
    response
}

/// Counts a refresh request from arrival until its answer is sent (or abandoned).
struct RefreshInFlight(Sandbox);

impl RefreshInFlight {
    fn enter(sb: &Sandbox) -> Self {
        let mut w = sb.world();
        w.refreshes_in_flight += 1;
        w.max_refreshes_in_flight = w.max_refreshes_in_flight.max(w.refreshes_in_flight);
        Self(sb.clone())
    }
}

impl Drop for RefreshInFlight {
    fn drop(&mut self) {
        let mut w = self.0.world();
        w.refreshes_in_flight = w.refreshes_in_flight.saturating_sub(1);
    }
}

fn authenticate(
    w: &World,
    flavor: Flavor,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<String, Response> {
    let (id, secret) = match basic_credentials(headers) {
        Some(pair) => pair,
        None => (
            params.get("client_id").cloned().unwrap_or_default(),
            params.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    match w.clients.get(&(flavor.key().to_string(), id.clone())) {
        Some(reg) if reg.secret == secret => Ok(id),
        _ => Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )),
    }
}

fn exchange(
    w: &mut World,
    flavor: Flavor,
    dc: Option<&'static str>,
    client_id: &str,
    params: &HashMap<String, String>,
) -> Response {
    let now = w.clock.now();
    let code = params.get("code").cloned().unwrap_or_default();
    // Another data center never saw the code: it stays unused.
    let Some(grant) = w
        .codes
        .get_mut(&code)
        .filter(|g| g.provider == flavor.key() && g.dc == dc)
    else {
        return error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown code");
    };
    if grant.used {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code already used",
        );
    }
    grant.used = true;
    let grant = grant.clone();
    w.code_ages.push(grant.issued_instant.elapsed());
    if now > grant.issued_at + flavor.code_ttl() {
        return error(StatusCode::BAD_REQUEST, "invalid_grant", "code expired");
    }
    if grant.client_id != client_id || grant.provider != flavor.key() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code was issued to another client",
        );
    }
    let redirect_uri = params.get("redirect_uri");
    let redirect_mismatch = match flavor {
        Flavor::OAuth2 => redirect_uri != Some(&grant.redirect_uri),
        // Bullhorn's redirect_uri is optional at the token call, but must match if sent.
        Flavor::Bullhorn => redirect_uri.is_some_and(|r| *r != grant.redirect_uri),
        _ => false,
    };
    if redirect_mismatch {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri mismatch",
        );
    }
    if let Some(challenge) = &grant.challenge {
        let verifier = params.get("code_verifier").cloned().unwrap_or_default();
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "PKCE verification failed",
            );
        }
    }
    w.count(format!("{}.exchanged", flavor.key()));
    issue(w, flavor, dc, client_id, &grant.login, &grant.scope, true)
}

fn refresh(
    w: &mut World,
    flavor: Flavor,
    dc: Option<&'static str>,
    client_id: &str,
    params: &HashMap<String, String>,
) -> Response {
    let now = w.clock.now();
    let token = params.get("refresh_token").cloned().unwrap_or_default();
    *w.refresh_token_uses.entry(token.clone()).or_default() += 1;
    let Some(grant) = w
        .refresh_tokens
        .get(&token)
        .filter(|g| g.provider == flavor.key())
        .cloned()
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown refresh token",
        );
    };
    if !grant.alive {
        w.dead_refresh_token_uses += 1;
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh token is no longer valid",
        );
    }
    if grant.dc != dc {
        // Bullhorn: calls to the wrong data center invalidate the refresh token.
        if let Some(g) = w.refresh_tokens.get_mut(&token) {
            g.alive = false;
        }
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh token presented at the wrong data center",
        );
    }
    if grant.client_id != client_id {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh token was issued to another client",
        );
    }
    if now > grant.expires_at {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh token expired",
        );
    }
    // Rotation: the old refresh token dies the moment a new one is issued.
    if let Some(g) = w.refresh_tokens.get_mut(&token) {
        g.alive = false;
    }
    w.count(format!("{}.refreshed", flavor.key()));
    issue(w, flavor, dc, client_id, &grant.login, &grant.scope, false)
}

fn issue(
    w: &mut World,
    flavor: Flavor,
    dc: Option<&'static str>,
    client_id: &str,
    login: &str,
    scope: &str,
    first: bool,
) -> Response {
    let now = w.clock.now();
    let access = flavor.new_access_token(dc);
    let refresh = flavor.new_refresh_token(dc);
    w.remember(&access);
    w.remember(&refresh);
    let base = TokenGrant {
        provider: flavor.key().into(),
        client_id: client_id.into(),
        login: login.into(),
        scope: scope.into(),
        dc,
        expires_at: now + time::Duration::seconds(flavor.access_ttl()),
        alive: true,
    };
    w.access_tokens.insert(access.clone(), base.clone());
    w.refresh_tokens.insert(
        refresh.clone(),
        TokenGrant {
            expires_at: now + flavor.refresh_ttl(),
            ..base
        },
    );
    let body = match flavor {
        // SmartRecruiters' refresh answer has no token_type (its documented example).
        Flavor::SmartRecruiters if first => json!({
            "token_type": "bearer", "access_token": access, "expires_in": flavor.access_ttl(), "refresh_token": refresh
        }),
        Flavor::SmartRecruiters => {
            json!({ "access_token": access, "expires_in": flavor.access_ttl(), "refresh_token": refresh })
        }
        Flavor::Bullhorn => json!({
            "access_token": access, "token_type": "Bearer", "expires_in": flavor.access_ttl(),
            "refresh_token": refresh
        }),
        // Hurdlr: no token_type; the expiry is created_at + expires_in.
        Flavor::Hurdlr => json!({
            "access_token": access, "refresh_token": refresh, "expires_in": flavor.access_ttl(),
            "created_at": now.unix_timestamp(), "scope": "token"
        }),
        // Zoho answers from its own module; this is the standard shape.
        Flavor::OAuth2 | Flavor::Zoho => json!({
            "access_token": access, "token_type": "Bearer", "expires_in": flavor.access_ttl(),
            "refresh_token": refresh, "scope": scope
        }),
    };
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

pub async fn userinfo(
    State(sb): State<Sandbox>,
    Extension(flavor): Extension<Flavor>,
    headers: HeaderMap,
) -> Response {
    let fault = {
        let mut w = sb.world();
        w.count(format!("{}.userinfo", flavor.key()));
        w.take_fault(flavor.key(), FaultTarget::Userinfo)
    };
    match fault {
        Some(FaultEffect::Latency { ms }) | Some(FaultEffect::DropResponse { hang_ms: ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await
        }
        Some(FaultEffect::Status { status }) => {
            return StatusCode::from_u16(status)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response();
        }
        Some(_) => return StatusCode::UNAUTHORIZED.into_response(),
        None => {}
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let w = sb.world();
    let grant = match w.access_tokens.get(bearer) {
        Some(g) if g.alive && g.provider == flavor.key() && w.clock.now() <= g.expires_at => {
            g.clone()
        }
        _ => {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "access token is not valid",
            );
        }
    };
    let p = w.profile(flavor.key(), &grant.login);
    let body = match flavor {
        Flavor::SmartRecruiters => json!({
            "id": p.id, "email": p.email, "firstName": p.first_name, "lastName": p.last_name,
            "active": true, "systemRole": { "id": "EMPLOYEE" }
        }),
        Flavor::Hurdlr => hurdlr::user_info(&w, &grant.login),
        // Bullhorn and Zoho answer who-am-I from their own modules; this is the standard shape.
        Flavor::OAuth2 | Flavor::Bullhorn | Flavor::Zoho => json!({
            "sub": p.id, "email": p.email, "name": format!("{} {}", p.first_name, p.last_name)
        }),
    };
    axum::Json(body).into_response()
}

/// RFC 7009: always 200, whether or not the token was known.
pub async fn revoke(
    State(sb): State<Sandbox>,
    Extension(flavor): Extension<Flavor>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = parse_params(&body);
    let mut w = sb.world();
    w.count(format!("{}.revoke", flavor.key()));
    if let Err(r) = authenticate(&w, flavor, &params, &headers) {
        return r;
    }
    let token = params.get("token").cloned().unwrap_or_default();
    if let Some(g) = w.refresh_tokens.get_mut(&token) {
        g.alive = false;
    }
    if let Some(g) = w.access_tokens.get_mut(&token) {
        g.alive = false;
    }
    StatusCode::OK.into_response()
}
