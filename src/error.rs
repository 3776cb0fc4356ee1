//! The services' error type: what went wrong, a stable code and a message safe to
//! show. `web::error` turns it into an HTML page or a JSON body; the cause is logged once
//! and never shown.

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
    pub fn public_message(&self) -> String {
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

    /// Whether this error may mean broken database connections (the web layer then tells the pool).
    pub fn database_failure(&self) -> bool {
        match self {
            AppError::Unavailable(e) => crate::db::is_connection_failure(e),
            AppError::Internal(e) => e
                .downcast_ref::<sqlx::Error>()
                .is_some_and(crate::db::is_connection_failure),
            _ => false,
        }
    }

    pub fn log(&self) {
        match self {
            AppError::Unavailable(e) => tracing::warn!(error = %e, "database unavailable"),
            AppError::Internal(e) => tracing::error!(error = %format!("{e:#}"), "internal error"),
            _ => {}
        }
    }
}

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
