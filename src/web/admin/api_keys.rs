//! `/admin/api-keys`: the host product's API keys — create (the key is shown once, on
//! the answer to the POST, and never stored readable), see when each was last used,
//! revoke.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use tower_sessions::Session;
use uuid::Uuid;

use super::view;
use super::{AdminResult, AdminSession, Flash, Nav, set_flash, take_flash};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::api_keys;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/api-keys", get(show).post(create))
        .route("/admin/api-keys/{id}/revoke", post(revoke))
}

pub struct KeyView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    pub state: &'static str,
    pub revocable: bool,
}

/// A key just created, shown on this one page only.
pub struct NewKey {
    pub name: String,
    pub key: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/api_keys.html")]
pub struct KeysPage {
    pub nav: Nav,
    pub keys: Vec<KeyView>,
    pub flash: Option<Flash>,
    pub new_key: Option<NewKey>,
}

async fn page(
    app: &AppState,
    admin: &AdminSession,
    flash: Option<Flash>,
    new_key: Option<NewKey>,
) -> AdminResult<KeysPage> {
    let now = app.clock.now();
    let keys = api_keys::list(app)
        .await?
        .into_iter()
        .map(|k| {
            let state = match (k.revoked_at, k.expires_at) {
                (Some(_), _) => "revoked",
                (None, Some(at)) if at <= now => "expired",
                _ => "active",
            };
            KeyView {
                id: k.id.to_string(),
                name: k.name,
                prefix: k.prefix.unwrap_or_else(|| "—".into()),
                created: view::when(Some(k.created_at)),
                last_used: view::when(k.last_used_at),
                expires: k
                    .expires_at
                    .map_or_else(|| "never".into(), |at| view::when(Some(at))),
                state,
                revocable: state != "revoked",
            }
        })
        .collect();
    Ok(KeysPage {
        nav: admin.nav(),
        keys,
        flash,
        new_key,
    })
}

async fn show(
    State(app): State<AppState>,
    Extension(admin): Extension<AdminSession>,
    session: Session,
) -> AdminResult<KeysPage> {
    let flash = take_flash(&session).await?;
    page(&app, &admin, flash, None).await
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
    #[serde(default)]
    expires_in_days: String,
}

async fn create(
    State(app): State<AppState>,
    Extension(admin): Extension<AdminSession>,
    form: Result<Form<CreateForm>, FormRejection>,
) -> AdminResult<KeysPage> {
    let Ok(Form(form)) = form else {
        return Err(AppError::BadRequest("The form was incomplete.".into()).into());
    };
    let expires_at = match form.expires_in_days.trim() {
        "" => None,
        days => match days.parse::<i64>() {
            Ok(d @ 1..=3650) => Some(app.clock.now() + time::Duration::days(d)),
            _ => {
                return Err(AppError::BadRequest(
                    "The expiry must be a number of days from 1 to 3650, or empty.".into(),
                )
                .into());
            }
        },
    };
    let issued = api_keys::issue(&app, &form.name, expires_at).await?;
    tracing::info!(key = %issued.id, admin = %admin.admin_id, "API key created");
    let flash = Flash {
        ok: true,
        text: "The key was created.".into(),
    };
    let new_key = NewKey {
        name: form.name.trim().to_string(),
        key: issued.key,
    };
    page(&app, &admin, Some(flash), Some(new_key)).await
}

async fn revoke(
    State(app): State<AppState>,
    Extension(admin): Extension<AdminSession>,
    session: Session,
    Path(id): Path<String>,
) -> AdminResult<Response> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
    api_keys::revoke(&app, id).await?;
    tracing::info!(key = %id, admin = %admin.admin_id, "API key revoked");
    set_flash(
        &session,
        true,
        "The key was revoked; every instance refuses it within a second.".into(),
    )
    .await?;
    Ok(Redirect::to("/admin/api-keys").into_response())
}
