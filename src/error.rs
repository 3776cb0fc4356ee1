//! One error type for the whole portal. Pages render it as a friendly HTML page, the
//! JSON API as `{"code", "message"}`; the cause is logged once and never shown.

use askama::Template;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::crypto::CryptoError;

pub type AppResult<T> = Result<T, AppError>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    /// Bad input; the message is safe to show.
    #[error("{0}")]
    BadRequest(String),
    /// The browser has no end user bound: the connect link must be opened first.
    #[error("no connect session")]
    NoSession,
    #[error("{0}")]
    Forbidden(String),
    /// Too many attempts; the message says when to try again.
    #[error("{0}")]
    TooManyRequests(String),
    #[error("missing or invalid API key")]
    Unauthorized,
    /// Well-formed input the server will not accept, with a stable code and a safe message.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// A state conflict with a stable code and a safe message.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A provider call failed; nothing was stored.
    #[error("{provider}: {error}")]
    Upstream {
        provider: String,
        error: crate::oauth::token::TokenError,
    },
    /// The database is unreachable or saturated; the request can be retried.
    #[error("service temporarily unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(e.into())
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
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

    /// Stable machine-readable code for the JSON API.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::NotFound => "not_found",
            AppError::BadRequest(_) => "bad_request",
            AppError::NoSession => "no_session",
            AppError::Forbidden(_) => "forbidden",
            AppError::TooManyRequests(_) => "rate_limited",
            AppError::Unauthorized => "unauthorized",
            AppError::Conflict { code, .. } | AppError::Unprocessable { code, .. } => code,
            AppError::Upstream { .. } => "provider_error",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    /// What a person may read.
    pub(crate) fn public_message(&self) -> String {
        match self {
            AppError::NotFound => "This page does not exist.".into(),
            AppError::BadRequest(m) | AppError::Forbidden(m) | AppError::TooManyRequests(m) => {
                m.clone()
            }
            AppError::NoSession => {
                "Your connect session has ended. Open the connect link you were given again.".into()
            }
            AppError::Unauthorized => "A valid API key is required.".into(),
            AppError::Conflict { message, .. } | AppError::Unprocessable { message, .. } => {
                message.clone()
            }
            AppError::Upstream { provider, error } => format!(
                "{provider} did not complete the connection: {error}. Nothing was changed; you can start again."
            ),
            AppError::Unavailable(_) => {
                "Keyhaven is briefly unavailable. Please try again in a moment.".into()
            }
            AppError::Internal(_) => "Something went wrong on our side. Please try again.".into(),
        }
    }

    /// Whether this error may mean broken database connections (see [`DatabaseFailure`]).
    fn database_failure(&self) -> bool {
        match self {
            AppError::Unavailable(e) => crate::db::is_connection_failure(e),
            AppError::Internal(e) => e
                .downcast_ref::<sqlx::Error>()
                .is_some_and(crate::db::is_connection_failure),
            _ => false,
        }
    }

    /// The response, marked for the pool when the error may mean broken connections.
    fn mark(&self, mut response: Response) -> Response {
        if self.database_failure() {
            response.extensions_mut().insert(DatabaseFailure);
        }
        response
    }

    pub(crate) fn log(&self) {
        match self {
            AppError::Unavailable(e) => tracing::warn!(error = %e, "database unavailable"),
            AppError::Internal(e) => tracing::error!(error = %format!("{e:#}"), "internal error"),
            _ => {}
        }
    }
}

/// Marks a response whose request saw a broken database connection; the router tells the
/// pool, which then checks its other connections before reusing them.
#[derive(Clone, Copy, Debug)]
pub struct DatabaseFailure;

/// The database is (briefly) unreachable, as opposed to the request being wrong.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        // 57P: operator intervention (shutdown, terminated); 08: connection exceptions.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")),
        _ => false,
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            AppError::Unavailable(e)
        } else {
            AppError::Internal(e.into())
        }
    }
}

impl From<CryptoError> for AppError {
    fn from(e: CryptoError) -> Self {
        AppError::Internal(e.into())
    }
}

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
        let status = self.status();
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
        self.mark(page)
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
        self.0.mark((self.0.status(), Json(body)).into_response())
    }
}
