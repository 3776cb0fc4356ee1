//! Bullhorn's auth host: the login page (or its headless `action=Login` variant) that
//! hands out a code, and the token endpoint, which reads only the query string.
#![expect(
    clippy::result_large_err,
    reason = "handlers return a ready axum Response as the error"
)]

use std::collections::HashMap;
use std::time::Instant;

use askama::Template;
use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::{KEY, data_center, new_token};
use crate::consent::{bad_request, redirect_with};
use crate::fault::oauth_error;
use crate::world::CodeGrant;
use crate::{Flavor, Sandbox, token};

#[derive(Template)]
#[template(path = "bullhorn_login.html")]
struct LoginPage<'a> {
    dc: &'static str,
    action: String,
    hidden: &'a [(String, String)],
    username: &'a str,
    error: Option<&'static str>,
    /// The demo: any username and password sign in.
    open: bool,
}

/// An authorize request whose client and redirect URI checked out.
struct Authorize {
    dc: &'static str,
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    /// What the login form posts back.
    hidden: Vec<(String, String)>,
}

fn validate(
    sb: &Sandbox,
    dc: &'static str,
    q: &HashMap<String, String>,
) -> Result<Authorize, Response> {
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    let registered = sb
        .world()
        .clients
        .get(&(KEY.to_string(), client_id.clone()))
        .cloned();
    let Some(registration) = registered else {
        return Err(bad_request("Unknown client_id."));
    };
    // Bullhorn support registers the redirect URIs; a request without one gets the first.
    let redirect_uri = match q.get("redirect_uri") {
        Some(r) if registration.redirect_uris.contains(r) => r.clone(),
        Some(_) => {
            return Err(bad_request(
                "redirect_uri does not match the registered one.",
            ));
        }
        None => match registration.redirect_uris.first() {
            Some(r) => r.clone(),
            None => return Err(bad_request("No redirect URI is registered.")),
        },
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return Err(bad_request("response_type must be code."));
    }
    let mut hidden: Vec<(String, String)> = q
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "client_id" | "response_type" | "state" | "redirect_uri"
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    hidden.sort();
    Ok(Authorize {
        dc,
        client_id,
        redirect_uri,
        state: q.get("state").cloned(),
        hidden,
    })
}

fn login_page(
    sb: &Sandbox,
    request: &Authorize,
    username: &str,
    error: Option<&'static str>,
) -> Response {
    let page = LoginPage {
        open: sb.world().bullhorn.open_sign_in(),
        dc: request.dc,
        action: format!("/bullhorn/{}/oauth/authorize", request.dc),
        hidden: &request.hidden,
        username,
        error,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

pub async fn authorize(
    State(sb): State<Sandbox>,
    Path(dc): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(dc) = data_center(&dc) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    sb.world().count(format!("{KEY}.authorize"));
    let request = match validate(&sb, dc, &q) {
        Ok(r) => r,
        Err(response) => return response,
    };
    // The headless variant: credentials in the query, the code in the 302's Location.
    if q.get("action").map(String::as_str) == Some("Login") {
        sb.world().count(format!("{KEY}.authorize_login"));
        let username = q.get("username").map(String::as_str).unwrap_or_default();
        let password = q.get("password").map(String::as_str).unwrap_or_default();
        return sign_in_as(&sb, &request, username, password);
    }
    let (auto_approve, first_user) = {
        let w = sb.world();
        let first = w.bullhorn.first_in(dc).map(|u| u.username.clone());
        (w.auto_approve, first)
    };
    if auto_approve {
        return match first_user {
            Some(username) => issue_code(&sb, &request, &username),
            None => login_page(&sb, &request, "", Some("No user to sign in automatically.")),
        };
    }
    // The portal asked for the username already; the page can show it.
    let username = q.get("username").map(String::as_str).unwrap_or_default();
    login_page(&sb, &request, username, None)
}

/// The login form's POST.
pub async fn sign_in(
    State(sb): State<Sandbox>,
    Path(dc): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(dc) = data_center(&dc) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let request = match validate(&sb, dc, &form) {
        Ok(r) => r,
        Err(response) => return response,
    };
    if form.get("decision").map(String::as_str) == Some("cancel") {
        // Bullhorn's error callback is undocumented: the standard shape, so the
        // portal's error path can be exercised.
        sb.world().count(format!("{KEY}.denied"));
        return redirect_with(
            &request.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "The user cancelled the sign-in"),
            ],
            request.state.as_deref(),
        );
    }
    let username = form.get("username").map(|u| u.trim()).unwrap_or_default();
    let password = form.get("password").map(String::as_str).unwrap_or_default();
    sign_in_as(&sb, &request, username, password)
}

/// Wrong credentials, or a user of another data center: the page again with an error,
/// never a redirect. With open sign-in (the demo) the password is not checked and a new
/// username is signed up first.
fn sign_in_as(sb: &Sandbox, request: &Authorize, username: &str, password: &str) -> Response {
    let refused = {
        let mut w = sb.world();
        w.remember(password);
        super::sign_up_on_first_sight(&mut w, username, request.dc);
        let open = w.bullhorn.open_sign_in();
        let refused = match w.bullhorn.user(username) {
            Some(u) if !open && u.password != password => Some("Invalid username or password."),
            Some(u) if u.dc != request.dc => Some("This user signs in at another data center."),
            Some(_) => None,
            None => Some("Invalid username or password."),
        };
        if refused.is_some() {
            w.count(format!("{KEY}.login_failed"));
        }
        refused
    };
    match refused {
        Some(error) => login_page(sb, request, username, Some(error)),
        None => issue_code(sb, request, username),
    }
}

/// Sends the browser back with `code`, `client_id` (Bullhorn echoes it) and `state`.
fn issue_code(sb: &Sandbox, request: &Authorize, username: &str) -> Response {
    let code = new_token(Some(request.dc));
    {
        let mut w = sb.world();
        let now = w.clock.now();
        w.count(format!("{KEY}.approved"));
        w.remember(&code);
        w.codes.insert(
            code.clone(),
            CodeGrant {
                provider: KEY.into(),
                client_id: request.client_id.clone(),
                redirect_uri: request.redirect_uri.clone(),
                login: username.into(),
                scope: String::new(),
                challenge: None,
                access_type: None,
                prompt: None,
                dc: Some(request.dc),
                issued_at: now,
                issued_instant: Instant::now(),
                used: false,
            },
        );
    }
    redirect_with(
        &request.redirect_uri,
        &[("code", &code), ("client_id", &request.client_id)],
        request.state.as_deref(),
    )
}

/// `POST …/oauth/token?grant_type=…`: Bullhorn reads the query string only, so
/// parameters sent in a body are refused.
pub async fn token(
    State(sb): State<Sandbox>,
    Path(dc): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(dc) = data_center(&dc) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !body.trim_ascii().is_empty() {
        let mut w = sb.world();
        w.count(format!("{KEY}.token.rejected_body"));
        for (key, value) in url::form_urlencoded::parse(&body) {
            if matches!(key.as_ref(), "code" | "refresh_token") {
                w.remember(&value);
            }
        }
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "parameters must be sent in the query string",
        );
    }
    let params: HashMap<String, String> = query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    token::serve(&sb, Flavor::Bullhorn, Some(dc), params, &headers).await
}
