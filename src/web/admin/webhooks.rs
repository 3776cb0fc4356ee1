//! `GET /admin/webhooks`: the endpoints and their recent deliveries (event, status,
//! attempts, response code, next attempt), with a button to send a delivery again.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower_sessions::Session;

use super::view;
use super::{AdminResult, AdminSession, Flash, Nav, set_flash, take_flash};
use crate::db;
use crate::error::AppError;
use crate::state::AppState;
use crate::webhooks;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/webhooks", get(show))
        .route("/admin/webhooks/deliveries/{id}/redeliver", post(redeliver))
}

const RECENT: i64 = 50;

pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub events: String,
    pub created: String,
    /// Until when the previous secret still signs, after a rotation.
    pub rotating_until: Option<String>,
}

pub struct DeliveryRow {
    pub id: i64,
    pub event: String,
    pub connection_id: String,
    pub endpoint: String,
    pub status: String,
    pub status_class: &'static str,
    pub attempts: i32,
    pub code: String,
    pub error: String,
    pub next_attempt: String,
    pub created: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/webhooks.html")]
pub struct WebhooksPage {
    pub nav: Nav,
    pub flash: Option<Flash>,
    pub endpoints: Vec<EndpointRow>,
    pub deliveries: Vec<DeliveryRow>,
}

async fn show(
    State(app): State<AppState>,
    Extension(admin): Extension<AdminSession>,
    session: Session,
) -> AdminResult<WebhooksPage> {
    let flash = take_flash(&session).await?;
    let mut conn = app.pool.acquire().await?;
    let endpoints = db::webhooks::list_endpoints(&mut conn)
        .await?
        .into_iter()
        .map(|e| EndpointRow {
            id: e.id.to_string(),
            url: e.url,
            events: e
                .events
                .map_or_else(|| "all".to_string(), |list| list.join(", ")),
            created: view::when(Some(e.created_at)),
            rotating_until: e.previous_secret_until.map(|t| view::when(Some(t))),
        })
        .collect();
    let deliveries = db::webhooks::recent_deliveries(&mut conn, RECENT)
        .await?
        .into_iter()
        .map(|d| DeliveryRow {
            id: d.id,
            event: d.event_type,
            connection_id: d.connection_id.to_string(),
            endpoint: d.endpoint_url,
            status_class: match d.status.as_str() {
                "delivered" => "badge-ok",
                "pending" => "badge-warn",
                _ => "badge-bad",
            },
            status: d.status,
            attempts: d.attempts,
            code: d
                .last_status_code
                .map(|c| c.to_string())
                .unwrap_or_default(),
            error: view::short_error(d.last_error.as_deref(), 60),
            next_attempt: view::when(d.next_attempt_at),
            created: view::when(Some(d.created_at)),
        })
        .collect();
    Ok(WebhooksPage {
        nav: admin.nav(),
        flash,
        endpoints,
        deliveries,
    })
}

/// `POST …/redeliver`: the delivery is due again at once, with a fresh retry window.
async fn redeliver(
    State(app): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> AdminResult<Response> {
    let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    let (ok, text) = match webhooks::redeliver(&app, id).await {
        Ok(true) => (true, format!("Delivery {id} will be sent again.")),
        Ok(false) => (
            false,
            format!("Delivery {id} is unknown or being sent right now."),
        ),
        Err(webhooks::WebhookError::Database(e)) => return Err(e.into()),
        Err(e) => return Err(AppError::internal(anyhow::anyhow!("{e}")).into()),
    };
    set_flash(&session, ok, text).await?;
    Ok(Redirect::to("/admin/webhooks").into_response())
}
