//! The end user bound to a browser session.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use uuid::Uuid;

use crate::crypto;
use crate::error::AppError;
use crate::link_options::LinkOptions;

pub const KEY: &str = "end_user";

/// Stored in the session when a connect link is opened.
#[derive(Clone, Serialize, Deserialize)]
pub struct EndUserSession {
    pub end_user_id: Uuid,
    /// Random value binding pending authorizations to this browser; only its hash is
    /// stored with them.
    binding: String,
    /// Form token for the connect page's POSTs.
    pub csrf: String,
    /// The connection a reconnect link was opened for: flows for its provider repair it.
    #[serde(default)]
    pub reconnect: Option<Uuid>,
    /// What the link was made for: the return to the product, the providers offered.
    #[serde(default)]
    pub options: LinkOptions,
}

impl EndUserSession {
    pub fn binding_hash(&self) -> Vec<u8> {
        crypto::token_hash(&self.binding)
    }

    pub fn csrf_matches(&self, presented: &str) -> bool {
        crate::web::csrf::token_matches(&self.csrf, presented)
    }
}

/// Binds the session to an end user with a new session id and fresh binding values,
/// carrying the link's options; returns what was bound.
pub async fn bind(
    session: &Session,
    end_user_id: Uuid,
    reconnect: Option<Uuid>,
    options: LinkOptions,
) -> Result<EndUserSession, AppError> {
    // A browser arriving with a session gets a new id; a brand-new one has none to cycle.
    if session.id().is_some() {
        session.cycle_id().await?;
    }
    let value = EndUserSession {
        end_user_id,
        binding: crypto::random_token()?,
        csrf: crypto::random_token()?,
        reconnect,
        options,
    };
    session.insert(KEY, value.clone()).await?;
    Ok(value)
}

/// Extractor: the bound end user, or a friendly "open your link again" page.
impl std::fmt::Debug for EndUserSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndUserSession")
            .field("end_user_id", &self.end_user_id)
            .field("reconnect", &self.reconnect)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

pub struct CurrentEndUser(pub EndUserSession, pub Session);

impl<S: Send + Sync> FromRequestParts<S> for CurrentEndUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::internal(anyhow::anyhow!("session layer missing")))?;
        match session.get::<EndUserSession>(KEY).await? {
            Some(user) => Ok(CurrentEndUser(user, session)),
            None => Err(AppError::NoSession),
        }
    }
}
