//! The JSON API for the host product's backend (Bearer API key).

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::Connection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, lifecycle_response};
use crate::crypto;
use crate::db;
use crate::error::AppError;
use crate::lifecycle::{self, LifecycleError, disconnect, reconnect};
use crate::link_options::{LinkOptions, OptionsError, RequestedOptions};
use crate::model::{Actor, ConnectionStatus};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/connect-links", post(create_connect_link))
        .route(
            "/end-users/{external_id}/connections",
            get(list_connections),
        )
        .route(
            "/connections/{id}",
            get(get_connection).delete(delete_connection),
        )
        .route("/connections/{id}/credentials", get(credentials))
        .route("/connections/{id}/reconnect-link", post(reconnect_link))
        .route(
            "/end-users/{external_id}/connections/{provider}",
            get(get_user_connection).delete(delete_user_connection),
        )
        .route(
            "/end-users/{external_id}/connections/{provider}/credentials",
            get(user_credentials),
        )
        .route(
            "/end-users/{external_id}/connections/{provider}/reconnect-link",
            post(user_reconnect_link),
        )
        .fallback(|| async { ApiError(AppError::NotFound) })
}

/// Extractor: a valid, unrevoked API key in `Authorization: Bearer …`.
pub struct ApiKey(pub Uuid);

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|k| !k.is_empty() && k.len() <= 128)
            .ok_or(ApiError(AppError::Unauthorized))?;
        let id = super::api_keys::authenticate(app, presented).await?;
        Ok(ApiKey(id))
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct EndUserInput {
    pub external_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ConnectLinkRequest {
    pub end_user: EndUserInput,
    /// Where the browser returns when the flow ends (on an allowed origin).
    pub return_url: Option<String>,
    /// The providers the connect page offers.
    pub providers: Option<Vec<String>>,
    /// Go straight to this provider.
    pub provider: Option<String>,
    /// `page` (default) or `popup`.
    pub mode: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectLinkResponse {
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

#[utoipa::path(
    post,
    path = "/api/v1/connect-links",
    tag = "connections",
    summary = "Create a connect link for an end user (created or updated by external id)",
    request_body = ConnectLinkRequest,
    responses(
        (status = 201, description = "A new link and when it expires", body = ConnectLinkResponse),
        (status = 400, description = "`bad_request`: the body is not valid JSON of this shape, or a field is out of bounds", body = crate::web::openapi::ErrorBody)
    )
)]
async fn create_connect_link(
    State(app): State<AppState>,
    _key: ApiKey,
    body: Result<Json<ConnectLinkRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<ConnectLinkResponse>)> {
    let Json(req) =
        body.map_err(|e| AppError::BadRequest(format!("invalid request body: {}", e.body_text())))?;
    let options = LinkOptions::check(
        RequestedOptions {
            return_url: req.return_url,
            providers: req.providers,
            provider: req.provider,
            mode: req.mode,
        },
        &app.settings,
    )
    .map_err(unprocessable)?;
    let (url, expires_at) = create_link_with(&app, &req.end_user, &options).await?;
    Ok((
        StatusCode::CREATED,
        Json(ConnectLinkResponse { url, expires_at }),
    ))
}

/// Options refused: `422` with their stable code.
pub fn unprocessable(e: OptionsError) -> AppError {
    AppError::Unprocessable {
        code: e.code,
        message: e.message,
    }
}

/// Creates (or updates) the end user and a fresh connect link offering everything.
pub async fn create_link_for(
    app: &AppState,
    input: &EndUserInput,
) -> Result<(String, OffsetDateTime), AppError> {
    create_link_with(app, input, &LinkOptions::default()).await
}

/// Creates (or updates) the end user and a fresh connect link with checked options;
/// shared with the CLI.
pub async fn create_link_with(
    app: &AppState,
    input: &EndUserInput,
    options: &LinkOptions,
) -> Result<(String, OffsetDateTime), AppError> {
    validate_text("end_user.external_id", Some(&input.external_id), 1, 200)?;
    validate_text("end_user.email", input.email.as_deref(), 3, 320)?;
    validate_text("end_user.name", input.name.as_deref(), 1, 200)?;
    let token = crypto::random_token()?;
    let expires_at = app.clock.now() + time::Duration::hours(app.settings.links.connect_link_hours);
    let mut conn = app.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let end_user_id = db::end_users::upsert(
        &mut tx,
        &input.external_id,
        input.email.as_deref(),
        input.name.as_deref(),
    )
    .await?;
    db::links::create_connect(
        &mut tx,
        &crypto::token_hash(&token),
        end_user_id,
        expires_at,
        db::links::StoredOptions {
            return_url: options.return_url.as_ref().map(url::Url::as_str),
            providers: options.providers.as_deref(),
            provider: options.provider.as_deref(),
            mode: options.mode.as_str(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((
        format!("{}/c/{token}", app.settings.public_base()),
        expires_at,
    ))
}

fn validate_text(field: &str, value: Option<&str>, min: usize, max: usize) -> Result<(), AppError> {
    match value {
        Some(v)
            if v.chars().count() < min
                || v.chars().count() > max
                || v.chars().any(char::is_control) =>
        {
            Err(AppError::BadRequest(format!(
                "{field} must be {min} to {max} characters without control characters"
            )))
        }
        _ => Ok(()),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectionView {
    pub id: Uuid,
    pub provider: String,
    #[schema(value_type = String)]
    pub status: ConnectionStatus,
    pub account_id: Option<String>,
    pub account_label: Option<String>,
    pub scopes: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub access_expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_refreshed_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<db::connections::ConnectionSummary> for ConnectionView {
    fn from(c: db::connections::ConnectionSummary) -> Self {
        Self {
            id: c.id,
            provider: c.provider,
            status: c.status,
            account_id: c.account_id,
            account_label: c.account_label,
            scopes: c.scopes,
            access_expires_at: c.access_expires_at,
            last_refreshed_at: c.last_refreshed_at,
            last_error: c.last_error,
            created_at: c.created_at,
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/end-users/{external_id}/connections",
    tag = "connections",
    summary = "List an end user's connections",
    params(("external_id" = String, Path, description = "The end user's id in the host product")),
    responses(
        (status = 200, description = "The end user's connections", body = [ConnectionView]),
        (status = 404, description = "`not_found`: no such end user", body = crate::web::openapi::ErrorBody)
    )
)]
async fn list_connections(
    State(app): State<AppState>,
    _key: ApiKey,
    Path(external_id): Path<String>,
) -> ApiResult<Json<Vec<ConnectionView>>> {
    let mut conn = app.pool.acquire().await?;
    let user = db::end_users::find_by_external_id(&mut conn, &external_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let list = db::connections::list_for_end_user(&mut conn, user.id).await?;
    Ok(Json(list.into_iter().map(ConnectionView::from).collect()))
}

/// `{id}` as a connection id; anything else is simply not found.
fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError(AppError::NotFound))
}

async fn connection_of(
    app: &AppState,
    external_id: &str,
    provider: &str,
) -> Result<Uuid, ApiError> {
    let mut conn = app.pool.acquire().await?;
    let user = db::end_users::find_by_external_id(&mut conn, external_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let found = db::connections::find_for_end_user(&mut conn, user.id, provider).await?;
    Ok(found.ok_or(AppError::NotFound)?.id)
}

async fn view(app: &AppState, id: Uuid) -> ApiResult<Json<ConnectionView>> {
    let mut conn = app.pool.acquire().await?;
    let found = db::connections::get(&mut conn, id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(found.into()))
}

#[utoipa::path(
    get,
    path = "/api/v1/connections/{id}",
    tag = "connections",
    summary = "Get a connection",
    params(("id" = String, Path, description = "The connection's id (a UUID)")),
    responses(
        (status = 200, description = "The connection", body = ConnectionView),
        (status = 404, description = "`not_found`: no such connection", body = crate::web::openapi::ErrorBody)
    )
)]
async fn get_connection(
    State(app): State<AppState>,
    _key: ApiKey,
    Path(id): Path<String>,
) -> ApiResult<Json<ConnectionView>> {
    view(&app, parse_id(&id)?).await
}

#[utoipa::path(
    get,
    path = "/api/v1/end-users/{external_id}/connections/{provider}",
    tag = "connections",
    summary = "Get an end user's connection to a provider",
    params(("external_id" = String, Path, description = "The end user's id in the host product"), ("provider" = String, Path, description = "A configured provider id")),
    responses(
        (status = 200, description = "The connection", body = ConnectionView),
        (status = 404, description = "`not_found`: no such end user or connection", body = crate::web::openapi::ErrorBody)
    )
)]
async fn get_user_connection(
    State(app): State<AppState>,
    _key: ApiKey,
    Path((external_id, provider)): Path<(String, String)>,
) -> ApiResult<Json<ConnectionView>> {
    let id = connection_of(&app, &external_id, &provider).await?;
    view(&app, id).await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CredentialQuery {
    /// Refresh now even if the stored access token is still fresh.
    #[serde(default)]
    force_refresh: bool,
}

#[utoipa::path(
    get,
    path = "/api/v1/connections/{id}/credentials",
    tag = "connections",
    summary = "Get a fresh access credential",
    params(("id" = String, Path, description = "The connection's id (a UUID)"), CredentialQuery),
    responses(
        (status = 200, description = "A valid access credential (refreshed first when it was about to expire or when forced)", body = crate::lifecycle::Credential),
        (status = 400, description = "`bad_request`: `force_refresh` is not true or false", body = crate::web::openapi::ErrorBody),
        (status = 409, description = "`needs_reconnect`: the grant is dead; a fresh reconnect link for the user is included", body = crate::web::openapi::NeedsReconnectBody),
        (status = 502, description = "`provider_misconfigured`: the provider refused Keyhaven's client credentials", body = crate::web::openapi::ErrorBody),
        (status = 503, description = "`provider_unavailable`: the provider failed for now (grant kept, retried; may carry `Retry-After`), or `unavailable`: the database is unreachable", body = crate::web::openapi::ErrorBody),
        (status = 404, description = "`not_found`: no such connection", body = crate::web::openapi::ErrorBody)
    )
)]
async fn credentials(
    State(app): State<AppState>,
    _key: ApiKey,
    Path(id): Path<String>,
    query: Result<Query<CredentialQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return ApiError(AppError::BadRequest(
            "force_refresh must be true or false".into(),
        ))
        .into_response();
    };
    match parse_id(&id) {
        Ok(id) => credential_response(&app, id, query.force_refresh).await,
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/end-users/{external_id}/connections/{provider}/credentials",
    tag = "connections",
    summary = "Get a fresh access credential for an end user's connection",
    params(("external_id" = String, Path, description = "The end user's id in the host product"), ("provider" = String, Path, description = "A configured provider id"), CredentialQuery),
    responses(
        (status = 200, description = "A valid access credential (refreshed first when it was about to expire or when forced)", body = crate::lifecycle::Credential),
        (status = 400, description = "`bad_request`: `force_refresh` is not true or false", body = crate::web::openapi::ErrorBody),
        (status = 409, description = "`needs_reconnect`: the grant is dead; a fresh reconnect link for the user is included", body = crate::web::openapi::NeedsReconnectBody),
        (status = 502, description = "`provider_misconfigured`: the provider refused Keyhaven's client credentials", body = crate::web::openapi::ErrorBody),
        (status = 503, description = "`provider_unavailable`: the provider failed for now (grant kept, retried; may carry `Retry-After`), or `unavailable`: the database is unreachable", body = crate::web::openapi::ErrorBody),
        (status = 404, description = "`not_found`: no such end user or connection", body = crate::web::openapi::ErrorBody)
    )
)]
async fn user_credentials(
    State(app): State<AppState>,
    _key: ApiKey,
    Path((external_id, provider)): Path<(String, String)>,
    query: Result<Query<CredentialQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return ApiError(AppError::BadRequest(
            "force_refresh must be true or false".into(),
        ))
        .into_response();
    };
    match connection_of(&app, &external_id, &provider).await {
        Ok(id) => credential_response(&app, id, query.force_refresh).await,
        Err(e) => e.into_response(),
    }
}

/// A credential, or a JSON error with a stable code; a dead grant answers 409 with a
/// fresh reconnect link for its user.
async fn credential_response(app: &AppState, id: Uuid, force: bool) -> Response {
    match lifecycle::credential(app, id, force).await {
        Ok(credential) => Json(credential).into_response(),
        Err(LifecycleError::NeedsReconnect) => match reconnect::issue_link(app, id).await {
            Ok((url, expires_at)) => (
                StatusCode::CONFLICT,
                Json(serde_json::json!({
                    "code": "needs_reconnect",
                    "message": "The grant is no longer valid; the user must reconnect.",
                    "reconnect_url": url,
                    "reconnect_url_expires_at": expires_at.format(&time::format_description::well_known::Rfc3339).ok(),
                })),
            )
                .into_response(),
            Err(e) => ApiError(e).into_response(),
        },
        Err(e) => lifecycle_response(e),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/connections/{id}/reconnect-link",
    tag = "connections",
    summary = "Create a reconnect link",
    params(("id" = String, Path, description = "The connection's id (a UUID)")),
    responses(
        (status = 201, description = "A reconnect link for the connection's user", body = ConnectLinkResponse),
        (status = 404, description = "`not_found`: no such connection", body = crate::web::openapi::ErrorBody)
    )
)]
async fn reconnect_link(
    State(app): State<AppState>,
    _key: ApiKey,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<ConnectLinkResponse>)> {
    let id = parse_id(&id)?;
    let (url, expires_at) = reconnect::issue_link(&app, id).await?;
    Ok((
        StatusCode::CREATED,
        Json(ConnectLinkResponse { url, expires_at }),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/end-users/{external_id}/connections/{provider}/reconnect-link",
    tag = "connections",
    summary = "Create a reconnect link for an end user's connection",
    params(("external_id" = String, Path, description = "The end user's id in the host product"), ("provider" = String, Path, description = "A configured provider id")),
    responses(
        (status = 201, description = "A reconnect link for the connection's user", body = ConnectLinkResponse),
        (status = 404, description = "`not_found`: no such end user or connection", body = crate::web::openapi::ErrorBody)
    )
)]
async fn user_reconnect_link(
    State(app): State<AppState>,
    _key: ApiKey,
    Path((external_id, provider)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<ConnectLinkResponse>)> {
    let id = connection_of(&app, &external_id, &provider).await?;
    let (url, expires_at) = reconnect::issue_link(&app, id).await?;
    Ok((
        StatusCode::CREATED,
        Json(ConnectLinkResponse { url, expires_at }),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/connections/{id}",
    tag = "connections",
    summary = "Disconnect a connection",
    params(("id" = String, Path, description = "The connection's id (a UUID)")),
    responses(
        (status = 200, description = "Revoked where the provider can, tokens wiped; the row stays as `revoked`", body = crate::web::openapi::DisconnectBody),
        (status = 404, description = "`not_found`: no such connection", body = crate::web::openapi::ErrorBody)
    )
)]
async fn delete_connection(
    State(app): State<AppState>,
    _key: ApiKey,
    Path(id): Path<String>,
) -> Response {
    match parse_id(&id) {
        Ok(id) => disconnect_response(&app, id).await,
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(
    delete,
    path = "/api/v1/end-users/{external_id}/connections/{provider}",
    tag = "connections",
    summary = "Disconnect an end user's connection to a provider",
    params(("external_id" = String, Path, description = "The end user's id in the host product"), ("provider" = String, Path, description = "A configured provider id")),
    responses(
        (status = 200, description = "Revoked where the provider can, tokens wiped; the row stays as `revoked`", body = crate::web::openapi::DisconnectBody),
        (status = 404, description = "`not_found`: no such end user or connection", body = crate::web::openapi::ErrorBody)
    )
)]
async fn delete_user_connection(
    State(app): State<AppState>,
    _key: ApiKey,
    Path((external_id, provider)): Path<(String, String)>,
) -> Response {
    match connection_of(&app, &external_id, &provider).await {
        Ok(id) => disconnect_response(&app, id).await,
        Err(e) => e.into_response(),
    }
}

async fn disconnect_response(app: &AppState, id: Uuid) -> Response {
    match disconnect::disconnect(app, id, &Actor::Api).await {
        Ok(revocation) => Json(serde_json::json!({
            "status": ConnectionStatus::Revoked,
            "revocation": revocation
        }))
        .into_response(),
        Err(e) => lifecycle_response(e),
    }
}
