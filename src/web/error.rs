//! One error → HTML mapping for pages and one error → JSON mapping for the API.

use askama::Template;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::error::AppError;
use crate::lifecycle::LifecycleError;
use crate::oauth::token::TokenError;

/// The HTTP status for an error, the same for pages and the API.
pub fn status(e: &AppError) -> StatusCode {
    match e {
        AppError::NotFound => StatusCode::NOT_FOUND,
        AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
        AppError::NoSession => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
        AppError::Unauthorized => StatusCode::UNAUTHORIZED,
        AppError::Conflict { .. } => StatusCode::CONFLICT,
        AppError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        AppError::Upstream { .. } => StatusCode::BAD_GATEWAY,
        AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The response, marked for the pool when the error may mean broken connections.
fn mark(e: &AppError, mut response: Response) -> Response {
    if e.database_failure() {
        response.extensions_mut().insert(DatabaseFailure);
    }
    response
}

/// Marks a response whose request saw a broken database connection; the router tells the
/// pool, which then checks its other connections before reusing them.
#[derive(Clone, Copy, Debug)]
pub struct DatabaseFailure;

impl From<tower_sessions::session::Error> for AppError {
    fn from(e: tower_sessions::session::Error) -> Self {
        AppError::Internal(anyhow::anyhow!("session store: {e}"))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub retry_href: Option<&'a str>,
}

impl ErrorPage<'_> {
    pub fn response(&self, status: StatusCode) -> Response {
        match self.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, self.message.to_string()).into_response(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let status = status(&self);
        let title = status.canonical_reason().unwrap_or("Error");
        let message = self.public_message();
        let retry = matches!(
            self,
            AppError::Unavailable(_)
                | AppError::Internal(_)
                | AppError::Upstream { .. }
                | AppError::Conflict { .. }
        )
        .then_some("/connect");
        let page = ErrorPage {
            title,
            message: &message,
            retry_href: retry,
        }
        .response(status);
        mark(&self, page)
    }
}

/// The same errors, as JSON for `/api`.
#[derive(Debug)]
pub struct ApiError(pub AppError);

pub type ApiResult<T> = Result<T, ApiError>;

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.log();
        let body = serde_json::json!({ "code": self.0.code(), "message": self.0.public_message() });
        mark(&self.0, (status(&self.0), Json(body)).into_response())
    }
}

/// A service's refusal to hand out or change a grant, as JSON with a stable code.
pub fn lifecycle_response(e: LifecycleError) -> Response {
    let error = |status: StatusCode, code: &str, message: &str| {
        (
            status,
            Json(serde_json::json!({ "code": code, "message": message })),
        )
            .into_response()
    };
    match e {
        LifecycleError::NotFound => ApiError(AppError::NotFound).into_response(),
        LifecycleError::NeedsReconnect => error(
            StatusCode::CONFLICT,
            "needs_reconnect",
            "The grant is no longer valid; the user must reconnect.",
        ),
        LifecycleError::ProviderUnavailable(e @ TokenError::HostRefused(_), _) => error(
            StatusCode::BAD_GATEWAY,
            "host_refused",
            &format!("{e}. An administrator has been alerted."),
        ),
        LifecycleError::ProviderUnavailable(e, retry_after) => {
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "provider_unavailable",
                &format!(
                    "The provider is unavailable ({}); the grant is kept and retried.",
                    e.code()
                ),
            );
            if let Some(after) = retry_after.and_then(|d| d.as_secs().to_string().parse().ok()) {
                response.headers_mut().insert(header::RETRY_AFTER, after);
            }
            response
        }
        LifecycleError::ProviderMisconfigured => error(
            StatusCode::BAD_GATEWAY,
            "provider_misconfigured",
            "The provider rejected Keyhaven's client credentials; an administrator has been alerted.",
        ),
        LifecycleError::App(e) => ApiError(e).into_response(),
    }
}
