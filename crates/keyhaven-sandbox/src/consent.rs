//! The authorize endpoint: checks the request as the provider would, shows a consent
//! page with Approve and Deny (or approves at once in auto-approve mode), and sends the
//! browser back with a code or an error.
#![expect(
    clippy::result_large_err,
    reason = "handlers return a ready axum Response as the error"
)]

use std::collections::HashMap;
use std::time::Instant;

use askama::Template;
use axum::Extension;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use url::Url;

use super::world::{CodeGrant, random_hex};
use super::{Flavor, Sandbox, zoho};

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    provider_name: &'static str,
    scope: String,
    action: &'static str,
    hidden: Vec<(String, String)>,
    login: String,
}

/// The parameters the authorize request carried, re-checked on the decision POST.
struct AuthorizeParams {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    scope: String,
    challenge: Option<String>,
    access_type: Option<String>,
    prompt: Option<String>,
}

pub(super) fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<h1>Invalid request</h1><p>{}</p>",
            askama_escape(message)
        )),
    )
        .into_response()
}

fn askama_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Validates client, redirect URI and scope the way the provider does. Errors that can
/// be sent back to a verified redirect URI are returned as redirects.
fn validate(
    sb: &Sandbox,
    flavor: Flavor,
    q: &HashMap<String, String>,
) -> Result<AuthorizeParams, Response> {
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    let registered = sb
        .world()
        .clients
        .get(&(flavor.key().to_string(), client_id.clone()))
        .cloned();
    let Some(registration) = registered else {
        return Err(bad_request("Unknown client_id."));
    };
    // Redirect URIs must match a registered one exactly.
    if !registration
        .redirect_uris
        .iter()
        .any(|r| r == &redirect_uri)
    {
        return Err(bad_request(
            "redirect_uri does not match the registered one.",
        ));
    }
    let state = q.get("state").cloned();
    let scope = q.get("scope").cloned();
    let redirect_error = |error: &str, description: &str| {
        redirect_with(
            &redirect_uri,
            &[("error", error), ("error_description", description)],
            state.as_deref(),
        )
    };
    // SmartRecruiters rejects an empty `scope=`; Zoho requires a scope.
    if scope.as_deref() == Some("") || (flavor == Flavor::Zoho && scope.is_none()) {
        return Err(redirect_error("invalid_scope", "scope must not be empty"));
    }
    if flavor == Flavor::Zoho && q.get("response_type").map(String::as_str) != Some("code") {
        return Err(redirect_error(
            "unsupported_response_type",
            "response_type must be code",
        ));
    }
    let challenge = q.get("code_challenge").cloned();
    if flavor.requires_pkce() {
        if challenge.as_deref().is_none_or(str::is_empty)
            || q.get("code_challenge_method").map(String::as_str) != Some("S256")
        {
            return Err(redirect_error(
                "invalid_request",
                "PKCE with S256 is required",
            ));
        }
        if q.get("response_type").map(String::as_str) != Some("code") {
            return Err(redirect_error(
                "unsupported_response_type",
                "response_type must be code",
            ));
        }
    }
    Ok(AuthorizeParams {
        client_id,
        redirect_uri,
        state,
        scope: scope.unwrap_or_default(),
        challenge,
        access_type: q.get("access_type").cloned(),
        prompt: q.get("prompt").cloned(),
    })
}

pub(super) fn redirect_with(
    redirect_uri: &str,
    params: &[(&str, &str)],
    state: Option<&str>,
) -> Response {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return bad_request("redirect_uri is not a URL.");
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

pub async fn show(
    State(sb): State<Sandbox>,
    Extension(flavor): Extension<Flavor>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    sb.world().count(format!("{}.authorize", flavor.key()));
    let params = match validate(&sb, flavor, &q) {
        Ok(p) => p,
        Err(response) => return response,
    };
    if sb.world().auto_approve {
        // A different upstream user each time, as real end users are (Zoho limits grant
        // creations per user and minute).
        let login = format!("auto.{}", random_hex(6));
        return approve(&sb, flavor, params, &login);
    }
    let mut hidden: Vec<(String, String)> = q
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "decision" | "login"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    hidden.sort();
    let page = ConsentPage {
        provider_name: flavor.name(),
        scope: params.scope,
        action: flavor.authorize_path(),
        hidden,
        login: "sam.sandbox".into(),
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

pub async fn decide(
    State(sb): State<Sandbox>,
    Extension(flavor): Extension<Flavor>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let params = match validate(&sb, flavor, &form) {
        Ok(p) => p,
        Err(response) => return response,
    };
    if form.get("decision").map(String::as_str) != Some("approve") {
        sb.world().count(format!("{}.denied", flavor.key()));
        let description = "The user denied access to your application";
        // Zoho's denial carries no description.
        let mut error = vec![("error", "access_denied")];
        if flavor != Flavor::Zoho {
            error.push(("error_description", description));
        }
        // RFC 9207: an issuer names itself on error answers too.
        let iss = flavor.issuer(&sb.world().base_url);
        if let Some(iss) = iss.as_deref() {
            error.push(("iss", iss));
        }
        return redirect_with(&params.redirect_uri, &error, params.state.as_deref());
    }
    let login = form
        .get("login")
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .unwrap_or("sam.sandbox")
        .to_string();
    approve(&sb, flavor, params, &login)
}

fn approve(sb: &Sandbox, flavor: Flavor, params: AuthorizeParams, login: &str) -> Response {
    let (code, iss, zoho_home) = {
        let mut w = sb.world();
        let now = w.clock.now();
        // Zoho sends the code from the user's own data center.
        let zoho_home = (flavor == Flavor::Zoho).then(|| zoho::home(&w, login));
        let dc = zoho_home.map(|dc| dc.location);
        let code = flavor.new_code(dc);
        w.count(format!("{}.approved", flavor.key()));
        w.remember(&code);
        w.codes.insert(
            code.clone(),
            CodeGrant {
                provider: flavor.key().into(),
                client_id: params.client_id,
                redirect_uri: params.redirect_uri.clone(),
                login: login.into(),
                scope: params.scope,
                challenge: params.challenge,
                access_type: params.access_type,
                prompt: params.prompt,
                dc,
                issued_at: now,
                issued_instant: Instant::now(),
                used: false,
            },
        );
        let iss = flavor.issuer(&w.base_url);
        let zoho_home = zoho_home.map(|dc| (dc.location, dc.accounts_url(&w.base_url)));
        (code, iss, zoho_home)
    };
    let mut out = vec![("code", code.as_str())];
    if let Some(iss) = iss.as_deref() {
        out.push(("iss", iss));
    }
    if let Some((location, accounts_server)) = &zoho_home {
        // Zoho: the token call must go to this accounts server.
        if let Some(state) = params.state.as_deref() {
            out.push(("state", state));
        }
        out.push(("location", location));
        out.push(("accounts-server", accounts_server));
        return redirect_with(&params.redirect_uri, &out, None);
    }
    redirect_with(&params.redirect_uri, &out, params.state.as_deref())
}
