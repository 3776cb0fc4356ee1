//! `/admin/connections/{id}`: one connection (provider context, end user, history) and
//! the admin's actions on it. Actions report outcomes in words; no token, and no link
//! except a reconnect link right after it was made, ever reaches a page.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower_sessions::Session;
use uuid::Uuid;

use super::view;
use super::{AdminResult, AdminSession, Flash, Nav, set_flash, take_flash};
use crate::db;
use crate::error::AppError;
use crate::lifecycle::disconnect::Revocation;
use crate::lifecycle::{self, LifecycleError, disconnect, reconnect};
use crate::model::{Actor, ConnectionStatus, EventKind};
use crate::providers::Context;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/connections/{id}", get(show))
        .route("/admin/connections/{id}/refresh", post(refresh_now))
        .route(
            "/admin/connections/{id}/reconnect-link",
            post(reconnect_link),
        )
        .route("/admin/connections/{id}/disconnect", post(disconnect_now))
}

const HISTORY: i64 = 100;

fn parse_id(raw: &str) -> AdminResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound.into())
}

pub struct EventRow {
    pub kind: String,
    pub detail: String,
    pub actor: String,
    pub at: String,
}

/// A reconnect link, shown once on the page that created it.
pub struct NewLink {
    pub url: String,
    pub expires: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/connection.html")]
pub struct DetailPage {
    pub nav: Nav,
    pub id: String,
    pub provider: String,
    pub provider_id: String,
    pub status: String,
    pub status_label: &'static str,
    pub status_class: &'static str,
    pub account_label: String,
    pub account_id: String,
    pub scopes: String,
    /// Provider context (data center, hosts) as label/value pairs.
    pub context: Vec<(&'static str, String)>,
    pub facts: Vec<(&'static str, String)>,
    pub user_name: String,
    pub external_id: String,
    pub email: String,
    pub last_error: String,
    pub events: Vec<EventRow>,
    pub flash: Option<Flash>,
    pub new_link: Option<NewLink>,
}

/// The context facts worth showing, by name: `Context` holds only these (no secrets).
fn context_rows(metadata: &serde_json::Value) -> Vec<(&'static str, String)> {
    let ctx = Context::from_json(metadata);
    [
        ("Data center", ctx.location),
        ("Accounts server", ctx.accounts_server),
        ("API host", ctx.api_host),
        ("REST URL", ctx.session_rest_url),
        ("REST login URL", ctx.rest_url),
        ("OAuth URL", ctx.oauth_url),
    ]
    .into_iter()
    .filter_map(|(label, value)| value.map(|v| (label, v)))
    .collect()
}

async fn page(
    app: &AppState,
    admin: &AdminSession,
    id: Uuid,
    flash: Option<Flash>,
    new_link: Option<NewLink>,
) -> AdminResult<DetailPage> {
    let mut conn = app.pool.acquire().await?;
    let c = db::console::detail(&mut conn, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let events = db::events::list(&mut conn, id, HISTORY).await?;
    drop(conn);
    let facts = vec![
        ("Created", view::when(Some(c.created_at))),
        ("Updated", view::when(Some(c.updated_at))),
        ("Last refresh", view::when(c.last_refreshed_at)),
        ("Access expires", view::when(c.access_expires_at)),
        ("Refresh grant lapses", view::when(c.refresh_expires_at)),
        ("Next background refresh", view::when(c.next_refresh_at)),
        ("Failed refreshes in a row", c.refresh_failures.to_string()),
    ];
    Ok(DetailPage {
        nav: admin.nav(),
        id: c.id.to_string(),
        provider: view::provider_name(app, &c.provider),
        provider_id: c.provider.clone(),
        status_label: view::status_label(c.status),
        status_class: view::status_class(c.status),
        status: c.status.as_str().to_string(),
        account_label: c.account_label.unwrap_or_default(),
        account_id: c.account_id.unwrap_or_default(),
        scopes: c.scopes.unwrap_or_default(),
        context: context_rows(&c.metadata),
        facts,
        user_name: view::person(c.display_name.as_deref(), None, &c.external_id),
        external_id: c.external_id,
        email: c.email.unwrap_or_default(),
        last_error: view::short_error(c.last_error.as_deref(), 500),
        events: events
            .into_iter()
            .map(|e| EventRow {
                kind: e.kind.as_str().replace('_', " "),
                detail: view::short_error(e.detail.as_deref(), 300),
                actor: e.actor.to_string(),
                at: view::when(Some(e.at)),
            })
            .collect(),
        flash,
        new_link,
    })
}

/// `GET /admin/connections/{id}`.
async fn show(
    State(app): State<AppState>,
    Extension(admin): Extension<AdminSession>,
    session: Session,
    Path(id): Path<String>,
) -> AdminResult<DetailPage> {
    let id = parse_id(&id)?;
    let flash = take_flash(&session).await?;
    page(&app, &admin, id, flash, None).await
}

fn back_to(id: Uuid) -> Response {
    Redirect::to(&format!("/admin/connections/{id}")).into_response()
}

async fn status_of(app: &AppState, id: Uuid) -> AdminResult<ConnectionStatus> {
    Ok(current(app, id).await?.0)
}

/// The connection's status and last error as stored now.
async fn current(app: &AppState, id: Uuid) -> AdminResult<(ConnectionStatus, Option<String>)> {
    let mut conn = app.pool.acquire().await?;
    let c = db::connections::get(&mut conn, id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok((c.status, c.last_error))
}

async fn record(
    app: &AppState,
    id: Uuid,
    kind: EventKind,
    detail: &str,
    actor: &Actor,
) -> AdminResult<()> {
    let mut conn = app.pool.acquire().await?;
    db::events::record(&mut conn, id, kind, Some(detail), actor, app.clock.now()).await?;
    Ok(())
}

/// `POST …/refresh`: a forced refresh through the same path the API uses.
async fn refresh_now(
    State(app): State<AppState>,
    Extension(admin): Extension<AdminSession>,
    session: Session,
    Path(id): Path<String>,
) -> AdminResult<Response> {
    let id = parse_id(&id)?;
    let before = {
        let mut conn = app.pool.acquire().await?;
        db::connections::get(&mut conn, id)
            .await?
            .ok_or(AppError::NotFound)?
    };
    let provider = view::provider_name(&app, &before.provider);
    let (ok, outcome, text) = match lifecycle::credential(&app, id, true).await {
        // A refresh that failed for a passing reason still hands out the current,
        // valid credential: the connection's status tells the two apart.
        Ok(credential) => match current(&app, id).await? {
            (ConnectionStatus::Degraded, error) => (
                false,
                ConnectionStatus::Degraded.to_string(),
                format!(
                    "Not refreshed: {provider} failed ({}). The current credential stays valid until {}; the refresh will be retried.",
                    view::short_error(error.as_deref(), 120),
                    view::when(credential.expires_at)
                ),
            ),
            _ => (
                true,
                "refreshed".to_string(),
                match credential.expires_at {
                    Some(at) => format!(
                        "Refreshed: {provider} issued a new access credential, valid until {}.",
                        view::when(Some(at))
                    ),
                    None => format!("Refreshed: {provider} issued a new access credential."),
                },
            ),
        },
        Err(LifecycleError::NeedsReconnect) => (
            false,
            ConnectionStatus::NeedsReconnect.to_string(),
            match before.status {
                ConnectionStatus::Revoked => "Not refreshed: this connection was disconnected. A reconnect link lets its user connect again.".to_string(),
                ConnectionStatus::NeedsReconnect => "Not refreshed: this connection already needs reconnect by its user. Create a reconnect link and send it to them.".to_string(),
                ConnectionStatus::Active | ConnectionStatus::Degraded => format!("Not refreshed: {provider} no longer accepts this grant, so the connection now needs reconnect. Create a reconnect link and send it to the user."),
            },
        ),
        Err(LifecycleError::ProviderUnavailable(e, retry_after)) => (
            false,
            format!("provider_unavailable: {}", e.code()),
            match retry_after {
                Some(after) => format!(
                    "Not refreshed: {provider} is unavailable ({}). The grant is kept; the next attempt is in {} seconds.",
                    e.code(),
                    after.as_secs()
                ),
                None => format!("Not refreshed: {provider} is unavailable ({}). The grant is kept and will be retried.", e.code()),
            },
        ),
        Err(LifecycleError::ProviderMisconfigured) => (
            false,
            "provider_misconfigured".to_string(),
            format!("Not refreshed: {provider} rejected Keyhaven's client credentials. Check this provider's client id and secret."),
        ),
        Err(LifecycleError::NotFound) => return Err(AppError::NotFound.into()),
        Err(LifecycleError::App(e)) => return Err(e.into()),
    };
    record(
        &app,
        id,
        EventKind::RefreshRequested,
        &outcome,
        &admin.actor(),
    )
    .await?;
    set_flash(&session, ok, text).await?;
    Ok(back_to(id))
}

/// `POST …/reconnect-link`: the link is shown on this response only (it is stored
/// hashed, so it cannot be shown again).
async fn reconnect_link(
    State(app): State<AppState>,
    Extension(admin): Extension<AdminSession>,
    Path(id): Path<String>,
) -> AdminResult<DetailPage> {
    let id = parse_id(&id)?;
    let (url, expires_at) = reconnect::issue_link(&app, id).await?;
    let expires = view::when(Some(expires_at));
    record(
        &app,
        id,
        EventKind::ReconnectLinkCreated,
        &format!("expires {expires}"),
        &admin.actor(),
    )
    .await?;
    page(&app, &admin, id, None, Some(NewLink { url, expires })).await
}

/// `POST …/disconnect`: revoke where the provider can, wipe the tokens, keep the row.
async fn disconnect_now(
    State(app): State<AppState>,
    Extension(admin): Extension<AdminSession>,
    session: Session,
    Path(id): Path<String>,
) -> AdminResult<Response> {
    let id = parse_id(&id)?;
    if status_of(&app, id).await? == ConnectionStatus::Revoked {
        set_flash(
            &session,
            true,
            "This connection is already disconnected.".into(),
        )
        .await?;
        return Ok(back_to(id));
    }
    let (ok, text) = match disconnect::disconnect(&app, id, &admin.actor()).await {
        Ok(Revocation::Revoked) => (
            true,
            "Disconnected: the grant was revoked at the provider and the tokens were wiped.",
        ),
        Ok(Revocation::Failed) => (
            false,
            "Disconnected: the tokens were wiped, but the provider did not confirm the revocation (recorded in the history).",
        ),
        Ok(Revocation::NotSupported) => (
            true,
            "Disconnected: the tokens were wiped (this provider offers no revocation).",
        ),
        Err(LifecycleError::NotFound) => return Err(AppError::NotFound.into()),
        Err(LifecycleError::App(e)) => return Err(e.into()),
        Err(e) => return Err(AppError::internal(anyhow::anyhow!("{e}")).into()),
    };
    set_flash(&session, ok, text.into()).await?;
    Ok(back_to(id))
}
