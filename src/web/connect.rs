//! The end user's side: opening a connect link, the connect page, starting a flow.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use time::Duration;
use tower_sessions::Session;

use super::csrf;
use super::session::{self, CurrentEndUser, EndUserSession};
use crate::connecting::api_user::{self, ApiUserLogin};
use crate::connecting::upstream_failure;
use crate::crypto::{self, SealedAt};
use crate::db;
use crate::error::{AppError, AppResult};
use crate::link_options::{LinkOptions, Mode, Outcome};
use crate::model::{ConnectionStatus, FailureCode, LinkKind};
use crate::oauth::authorize::{self, AuthorizeRequest, authorize_url};
use crate::providers::{CardForm, Context, Provider};
use crate::state::AppState;
use secrecy::SecretString;

/// Marks, in a pending authorization's context, a flow meant to replace the connected
/// upstream account with a different one.
pub const REPLACE_ACCOUNT: &str = "replace_account";

/// How long a user has to approve at the provider.
pub const PENDING_TTL: Duration = Duration::minutes(10);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/c/{token}", get(open_link).post(continue_link))
        .route("/connect", get(connect_page))
        .route("/connect/{provider}", post(start))
        .route("/connect/finished", get(finished))
}

/// The browser cookie that claims connect links: a connect link belongs to the first
/// browser that continues with it. Only its SHA-256 is stored, on the link.
const DEVICE_COOKIE: &str = "keyhaven_device";
const DEVICE_COOKIE_LIFETIME: Duration = Duration::days(30);

/// A link that can still be used, looked up by its token (nothing is written).
async fn live_link(app: &AppState, token: &str) -> AppResult<(Vec<u8>, db::links::Link)> {
    let invalid = || AppError::BadRequest("This link is not valid. Ask for a new one.".into());
    if token.is_empty() || token.len() > 128 {
        return Err(invalid());
    }
    let hash = crypto::token_hash(token);
    let mut conn = app.pool.acquire().await?;
    let link = db::links::find(&mut conn, &hash)
        .await?
        .ok_or_else(invalid)?;
    if link.expires_at <= app.clock.now() {
        return Err(AppError::BadRequest(
            "This link has expired. Ask for a new one.".into(),
        ));
    }
    if link.kind == LinkKind::Reconnect && link.used_at.is_some() {
        return Err(used_reconnect_link());
    }
    Ok((hash, link))
}

fn used_reconnect_link() -> AppError {
    AppError::BadRequest("This reconnect link was already used. Ask for a new one.".into())
}

fn claimed_elsewhere() -> AppError {
    AppError::Forbidden(
        "This link was already opened in another browser. Open it there, or ask for a new one."
            .into(),
    )
}

/// The form token of a link's Continue page is bound to that link.
fn link_purpose(hash: &[u8]) -> String {
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("link:{hex}")
}

/// This browser's link-claiming value, if it sent a well-formed one.
fn device(app: &AppState, headers: &HeaderMap) -> Option<String> {
    csrf::cookie(headers, &app.settings.cookie_name(DEVICE_COOKIE))
        .filter(|v| {
            v.len() == 43
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(String::from)
}

/// How a person is named on our pages: their name, else their email, else the product's id.
fn label(user: &db::end_users::EndUser) -> String {
    user.display_name
        .clone()
        .or_else(|| user.email.clone())
        .unwrap_or_else(|| user.external_id.clone())
}

async fn end_user_label(app: &AppState, id: uuid::Uuid) -> AppResult<Option<String>> {
    let mut conn = app.pool.acquire().await?;
    Ok(db::connections::end_user_with_connections(&mut conn, id)
        .await?
        .map(|(user, _)| label(&user)))
}

#[derive(Template, WebTemplate)]
#[template(path = "connect/link.html")]
pub struct LinkPage {
    pub product: String,
    pub user_label: String,
    /// The end user this browser acts for now, when it is someone else.
    pub current_label: Option<String>,
    pub reconnect: bool,
    pub csrf: String,
}

/// `GET /c/{token}`: a short page naming whom the link is for, with a Continue button.
/// Opening a link changes nothing, so a link scanner can neither use up nor claim it;
/// a browser acting for another end user is asked to confirm the switch.
async fn open_link(
    State(app): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> AppResult<Response> {
    let (hash, link) = live_link(&app, &token).await?;
    if link.kind == LinkKind::Connect {
        let mut conn = app.pool.acquire().await?;
        let claimed = db::links::claimed_by(&mut conn, &hash).await?;
        drop(conn);
        let mine = device(&app, &headers).map(|d| crypto::token_hash(&d));
        if claimed.is_some() && claimed != mine {
            return Err(claimed_elsewhere());
        }
    }
    let user_label = end_user_label(&app, link.end_user_id)
        .await?
        .ok_or_else(|| AppError::BadRequest("This link is not valid. Ask for a new one.".into()))?;
    let current = session.get::<EndUserSession>(session::KEY).await?;
    let current_label = match current {
        Some(bound) if bound.end_user_id != link.end_user_id => {
            end_user_label(&app, bound.end_user_id).await?
        }
        _ => None,
    };
    let (csrf, cookie) = csrf::issue(&app, &headers, &link_purpose(&hash))?;
    let page = LinkPage {
        product: app.settings.branding.name().to_string(),
        user_label,
        current_label,
        reconnect: link.kind == LinkKind::Reconnect,
        csrf,
    };
    let mut response = page.into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct ContinueForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /c/{token}`: binds this browser to the link's end user (a new session id) and
/// goes to the connect page. A connect link is claimed by the first browser that
/// continues with it and works until it expires there; a reconnect link works once.
async fn continue_link(
    State(app): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path(token): Path<String>,
    form: Result<Form<ContinueForm>, FormRejection>,
) -> AppResult<Response> {
    csrf::refuse_cross_site(&headers)?;
    let (hash, link) = live_link(&app, &token).await?;
    let presented = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !csrf::verify(&app, &headers, &link_purpose(&hash), &presented) {
        return Err(AppError::Forbidden(
            "This page has expired. Open your link again.".into(),
        ));
    }
    let now = app.clock.now();
    let mut new_device = None;
    let mut conn = app.pool.acquire().await?;
    let reconnect = if link.kind == LinkKind::Connect {
        let device = match device(&app, &headers) {
            Some(d) => d,
            None => new_device.insert(crypto::random_token()?).clone(),
        };
        if !db::links::claim(&mut conn, &hash, &crypto::token_hash(&device)).await? {
            return Err(claimed_elsewhere());
        }
        None
    } else {
        db::links::consume_reconnect(&mut conn, &hash, now)
            .await?
            .ok_or_else(used_reconnect_link)?
            .connection_id
    };
    drop(conn);
    let mut response = enter(&app, &session, &link, reconnect).await?;
    if let Some(device) = new_device {
        response.headers_mut().append(
            header::SET_COOKIE,
            csrf::set_cookie(&app, DEVICE_COOKIE, &device, DEVICE_COOKIE_LIFETIME),
        );
    }
    Ok(response)
}

/// Binds the browser to the link's end user with the link's options, then leaves the
/// link's URL at once (so it does not linger in history or referrers): straight to the
/// provider when the link names one that needs nothing more, else the connect page.
pub async fn enter(
    app: &AppState,
    session: &Session,
    link: &db::links::Link,
    reconnect: Option<uuid::Uuid>,
) -> AppResult<Response> {
    let options = LinkOptions::from_stored(
        link.return_url.as_deref(),
        link.providers.clone(),
        link.provider.clone(),
        &link.mode,
        &app.settings,
    );
    let user = session::bind(session, link.end_user_id, reconnect, options).await?;
    let direct = user
        .options
        .provider
        .as_deref()
        .and_then(|id| app.settings.provider(id))
        .filter(|p| p.card_form() == CardForm::Button);
    match direct {
        Some(provider) => {
            let reconnecting = reconnecting(app, &user, provider).await?;
            authorize(
                app,
                &user,
                provider,
                reconnecting,
                Context::default(),
                None,
                false,
            )
            .await
        }
        None => Ok(Redirect::to("/connect").into_response()),
    }
}

/// The connection a reconnect link repairs, when this flow is for its provider.
async fn reconnecting(
    app: &AppState,
    user: &EndUserSession,
    provider: &Provider,
) -> AppResult<Option<uuid::Uuid>> {
    let Some(id) = user.reconnect else {
        return Ok(None);
    };
    let mut conn = app.pool.acquire().await?;
    Ok(db::connections::get(&mut conn, id)
        .await?
        .filter(|c| c.provider == provider.id)
        .map(|c| c.id))
}

/// How a flow ends for a link made with a `return_url`: page mode goes to the product's
/// page with the result in its query; popup mode goes to our last page, which posts the
/// result to the product's window. `None` without a return URL.
pub fn finish(
    options: &LinkOptions,
    outcome: Outcome,
    provider: &str,
    connection_id: Option<uuid::Uuid>,
) -> Option<Response> {
    let back = options.return_with(outcome, Some(provider), connection_id)?;
    let target = match options.mode {
        Mode::Page => back.to_string(),
        Mode::Popup => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("keyhaven_status", outcome.as_str());
            query.append_pair("provider", provider);
            if let Some(id) = connection_id {
                query.append_pair("connection_id", &id.to_string());
            }
            format!("/connect/finished?{}", query.finish())
        }
    };
    Some(Redirect::to(&target).into_response())
}

pub struct Card {
    pub id: String,
    pub name: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub account: Option<String>,
    pub reason: Option<String>,
    pub action: &'static str,
    pub form: CardForm,
    pub note: Option<&'static str>,
    /// The upstream account a "Connect a different account" button would replace.
    pub replaces: Option<String>,
    /// The operator's line for this provider (`connect_hint`).
    pub hint: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "connect/page.html")]
pub struct ConnectPage {
    pub user_label: String,
    pub cards: Vec<Card>,
    pub csrf: String,
    pub notice: Option<String>,
    /// "Back to ⟨product⟩" when the link was made with a return URL.
    pub back: Option<Back>,
}

pub struct Back {
    pub href: String,
    pub product: String,
}

/// The way back to the product: its page (page mode), or our last page reporting a
/// cancelled flow to the opener (popup mode).
fn back_link(app: &AppState, options: &LinkOptions) -> Option<Back> {
    let url = options.return_url.as_ref()?;
    let product = app
        .settings
        .branding
        .product_name
        .clone()
        .or_else(|| url.host_str().map(String::from))?;
    let href = match options.mode {
        Mode::Page => url.to_string(),
        Mode::Popup => "/connect/finished?keyhaven_status=cancelled".into(),
    };
    Some(Back { href, product })
}

fn card(
    provider: &Provider,
    existing: Option<&db::connections::ConnectionSummary>,
    hint: Option<&String>,
) -> Card {
    let (status, status_label, action) = match existing.map(|c| c.status) {
        None | Some(ConnectionStatus::Revoked) => ("none", "Not connected", "Connect"),
        Some(ConnectionStatus::NeedsReconnect) => ("broken", "Needs reconnect", "Reconnect"),
        Some(ConnectionStatus::Degraded) => (
            "degraded",
            "Connected (the provider is having trouble)",
            "Reconnect",
        ),
        Some(ConnectionStatus::Active) => ("ok", "Connected", "Reconnect"),
    };
    let form = provider.card_form();
    let note = provider.reconnect_note().filter(|_| action == "Reconnect");
    let account = existing
        .filter(|_| status != "none")
        .and_then(|c| c.account_label.clone().or_else(|| c.account_id.clone()));
    Card {
        id: provider.id.clone(),
        name: provider.display_name.clone(),
        status,
        status_label,
        replaces: account.clone(),
        account,
        reason: existing
            .filter(|_| status == "broken")
            .map(|c| plain_reason(c.failure_code)),
        action,
        form,
        note,
        hint: hint.cloned(),
    }
}

/// Why a connection needs reconnecting, in words an end user understands: chosen by
/// the stored failure code, never by the wording of the error.
pub fn plain_reason(code: Option<FailureCode>) -> String {
    code.unwrap_or(FailureCode::GrantDead).explanation().into()
}

#[derive(Deserialize)]
pub struct PageQuery {
    connected: Option<String>,
}

/// `GET /connect`: a card per offered provider with its status.
async fn connect_page(
    State(app): State<AppState>,
    CurrentEndUser(user, _): CurrentEndUser,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> AppResult<ConnectPage> {
    let query = query
        .map(|Query(q)| q)
        .unwrap_or(PageQuery { connected: None });
    let mut conn = app.pool.acquire().await?;
    let (end_user, connections) =
        db::connections::end_user_with_connections(&mut conn, user.end_user_id)
            .await?
            .ok_or(AppError::NoSession)?;
    drop(conn);
    let cards = app
        .settings
        .providers
        .iter()
        .filter(|p| user.options.offers(&p.id))
        .map(|p| {
            let existing = connections.iter().find(|c| c.provider == p.id);
            card(p, existing, app.settings.connect_hints.get(&p.id))
        })
        .collect();
    let notice = query.connected.and_then(|id| {
        app.settings
            .provider(&id)
            .map(|p| format!("{} is connected.", p.display_name))
    });
    Ok(ConnectPage {
        user_label: end_user
            .display_name
            .or(end_user.email)
            .unwrap_or(end_user.external_id),
        cards,
        csrf: user.csrf.clone(),
        notice,
        back: back_link(&app, &user.options),
    })
}

#[derive(Deserialize)]
pub struct StartForm {
    csrf: String,
    return_to: Option<String>,
    /// Bullhorn: the user's Bullhorn username (decides the data center).
    username: Option<String>,
    /// Bullhorn API-user mode only.
    password: Option<String>,
    /// Bullhorn API-user mode: keep the password, sealed, for automatic recovery.
    remember: Option<String>,
    /// Present when the user chose to replace the connected upstream account with
    /// another; without it, a different account is refused.
    replace_account: Option<String>,
}

/// `POST /connect/{provider}`: records a pending authorization and sends the browser
/// to the provider (Bullhorn API-user mode connects right here instead).
async fn start(
    State(app): State<AppState>,
    CurrentEndUser(user, _): CurrentEndUser,
    Path(provider_id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<StartForm>, FormRejection>,
) -> AppResult<Response> {
    let Ok(Form(form)) = form else {
        return Err(AppError::BadRequest(
            "This form was incomplete. Go back, reload the page and try again.".into(),
        ));
    };
    csrf::refuse_cross_site(&headers)?;
    if !user.csrf_matches(&form.csrf) {
        return Err(AppError::Forbidden(
            "This form has expired. Go back, reload the page and try again.".into(),
        ));
    }
    let provider = app
        .settings
        .provider(&provider_id)
        .ok_or(AppError::NotFound)?;
    let return_to = match form.return_to.as_deref().filter(|r| !r.is_empty()) {
        None => None,
        Some(r) if is_relative_path(r) => Some(r.to_string()),
        Some(_) => {
            return Err(AppError::BadRequest(
                "The return address must be a path on this site.".into(),
            ));
        }
    };
    // A reconnect link repairs its own connection; other flows connect or replace as usual.
    let reconnecting = reconnecting(&app, &user, provider).await?;

    let mut ctx = Context::default();
    if provider.card_form() != CardForm::Button {
        let username = form.username.as_deref().map(str::trim).unwrap_or_default();
        if !provider.valid_username(username) {
            return Err(AppError::BadRequest("Enter your Bullhorn username.".into()));
        }
        if provider.card_form() == CardForm::ApiUser {
            let password = form
                .password
                .filter(|p| !p.is_empty() && p.len() <= 200)
                .ok_or_else(|| AppError::BadRequest("Enter the API user's password.".into()))?;
            let remember = form.remember.is_some();
            let login = ApiUserLogin {
                username,
                password: SecretString::from(password),
                remember,
                replace_account: form.replace_account.is_some(),
            };
            use crate::telemetry::metrics;
            metrics::connect_flow_started(&provider.id);
            let id = match api_user::connect(&app, provider, user.end_user_id, reconnecting, login)
                .await
            {
                Ok(id) => id,
                Err(e) => {
                    let reason = match &e {
                        AppError::Upstream { error, .. } => error.code(),
                        other => other.code(),
                    };
                    metrics::connect_flow_failed(&provider.id, reason);
                    return Err(e);
                }
            };
            metrics::connect_flow_completed(&provider.id);
            if let Some(done) = finish(&user.options, Outcome::Connected, &provider.id, Some(id)) {
                return Ok(done);
            }
            return Ok(Redirect::to(
                &return_to.unwrap_or_else(|| format!("/connect?connected={}", provider.id)),
            )
            .into_response());
        }
        ctx = crate::oauth::bullhorn::login_info(&app.http, provider, username)
            .await
            .map_err(|e| upstream_failure(&app, provider, "loginInfo", e))?;
    }
    authorize(
        &app,
        &user,
        provider,
        reconnecting,
        ctx,
        return_to,
        form.replace_account.is_some(),
    )
    .await
}

/// Records a pending authorization with a fresh state (and PKCE verifier) and sends
/// the browser to the provider's authorize URL.
async fn authorize(
    app: &AppState,
    user: &EndUserSession,
    provider: &Provider,
    reconnecting: Option<uuid::Uuid>,
    ctx: Context,
    return_to: Option<String>,
    replace_account: bool,
) -> AppResult<Response> {
    let state = crypto::random_token()?;
    let state_hash = crypto::token_hash(&state);
    let pkce = if provider.pkce {
        Some(authorize::pkce()?)
    } else {
        None
    };
    let sealed_verifier = match &pkce {
        Some((verifier, _)) => Some(app.settings.keys.seal(
            verifier.secret().as_bytes(),
            SealedAt {
                table: "pending_authorizations",
                column: "pkce_verifier",
                row: &state_hash,
            },
        )?),
        None => None,
    };
    let mut context = ctx.to_json();
    if let Some(map) = context.as_object_mut() {
        if let Some(r) = return_to {
            map.insert("return_to".into(), serde_json::Value::String(r));
        }
        if replace_account {
            map.insert(REPLACE_ACCOUNT.into(), serde_json::Value::Bool(true));
        }
    }
    let now = app.clock.now();
    let mut conn = app.pool.acquire().await?;
    db::pending::insert(
        &mut conn,
        db::pending::NewPending {
            state_hash: &state_hash,
            session_hash: &user.binding_hash(),
            provider: &provider.id,
            end_user_id: user.end_user_id,
            connection_id: reconnecting,
            pkce_verifier: sealed_verifier.as_deref(),
            context,
            created_at: now,
            expires_at: now + PENDING_TTL,
        },
    )
    .await?;
    drop(conn);
    let redirect_uri = app.settings.redirect_uri(&provider.id);
    let url = authorize_url(
        provider,
        provider.authorize_endpoint(&ctx),
        &AuthorizeRequest {
            redirect_uri: &redirect_uri,
            state: &state,
            pkce_challenge: pkce.as_ref().map(|(_, c)| c),
        },
    )
    .map_err(AppError::internal)?;
    tracing::info!(provider = %provider.id, "authorization started");
    crate::telemetry::metrics::connect_flow_started(&provider.id);
    Ok(Redirect::to(url.as_str()).into_response())
}

#[derive(Deserialize)]
pub struct FinishedQuery {
    keyhaven_status: Option<String>,
    provider: Option<String>,
    connection_id: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "connect/finished.html")]
pub struct FinishedPage {
    pub status: &'static str,
    pub heading: String,
    pub provider: Option<String>,
    pub connection_id: Option<String>,
    /// The product's origin, where the popup posts the result.
    pub target_origin: Option<String>,
}

/// `GET /connect/finished`: a popup's last page. Its script posts the result to the
/// product's window (only to the link's allowed origin) and closes the popup. Every
/// value is checked, so a crafted address can say nothing we would not say.
async fn finished(
    State(app): State<AppState>,
    session: Session,
    query: Result<Query<FinishedQuery>, QueryRejection>,
) -> AppResult<FinishedPage> {
    let Ok(Query(query)) = query else {
        return Err(AppError::BadRequest("This address is not valid.".into()));
    };
    let outcome = query
        .keyhaven_status
        .as_deref()
        .and_then(Outcome::parse)
        .ok_or_else(|| AppError::BadRequest("This address is not valid.".into()))?;
    let provider = query
        .provider
        .as_deref()
        .and_then(|id| app.settings.provider(id));
    let connection_id = query
        .connection_id
        .as_deref()
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .filter(|_| outcome == Outcome::Connected);
    let user = session.get::<EndUserSession>(session::KEY).await?;
    let target_origin = user.and_then(|u| u.options.popup_target());
    let name = provider.map_or("The account", |p| p.display_name.as_str());
    let heading = match outcome {
        Outcome::Connected => format!("{name} is connected."),
        Outcome::Cancelled => "Nothing was connected.".into(),
        Outcome::Failed => format!("{name} could not be connected."),
    };
    Ok(FinishedPage {
        status: outcome.as_str(),
        heading,
        provider: provider.map(|p| p.id.clone()),
        connection_id: connection_id.map(|id| id.to_string()),
        target_origin,
    })
}

/// A return address must stay on this site: `/path`, never `//host`, `/\host` or a URL.
pub fn is_relative_path(candidate: &str) -> bool {
    candidate.starts_with('/')
        && !candidate.starts_with("//")
        && !candidate.starts_with("/\\")
        && !candidate.contains('\\')
        && !candidate.chars().any(char::is_control)
        && candidate.len() <= 512
}

#[cfg(test)]
mod tests {
    use super::is_relative_path;

    #[test]
    fn return_paths() {
        assert!(is_relative_path("/connect"));
        assert!(is_relative_path("/connect?x=1"));
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil",
            "/a\\b",
            "/a\nb",
            "",
        ] {
            assert!(!is_relative_path(bad), "{bad:?}");
        }
    }
}
