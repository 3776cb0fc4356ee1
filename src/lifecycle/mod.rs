//! Keeping grants alive: fresh credentials on demand with one refresh at a time per
//! connection across all instances, the background refresher, reconnect links and
//! disconnecting.

pub mod credential;
pub mod disconnect;
pub mod reconnect;
pub mod refresh;
pub mod refresher;

pub use credential::{Credential, credential};

use crate::oauth::token::TokenError;

/// Why no credential could be handed out.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("connection not found")]
    NotFound,
    /// The grant is dead (or disconnected): the user must reconnect.
    #[error("the connection needs to be reconnected by its user")]
    NeedsReconnect,
    /// The provider failed for now; the grant is kept and retried later.
    #[error("the provider is unavailable: {0}")]
    ProviderUnavailable(TokenError, Option<std::time::Duration>),
    /// Keyhaven's own client credentials were refused: an operator must fix them.
    #[error("the provider rejected Keyhaven's client credentials")]
    ProviderMisconfigured,
    #[error(transparent)]
    App(#[from] crate::error::AppError),
}

impl LifecycleError {
    /// A stable code for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            LifecycleError::NotFound => "not_found",
            LifecycleError::NeedsReconnect => "needs_reconnect",
            LifecycleError::ProviderUnavailable(e, _) => e.code(),
            LifecycleError::ProviderMisconfigured => "provider_misconfigured",
            LifecycleError::App(_) => "error",
        }
    }
}

impl From<sqlx::Error> for LifecycleError {
    fn from(e: sqlx::Error) -> Self {
        LifecycleError::App(e.into())
    }
}

impl From<crate::crypto::CryptoError> for LifecycleError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        LifecycleError::App(e.into())
    }
}
