//! Storing a fresh grant: sealing every secret for its row and column, choosing when
//! the background refresher should next renew it, and writing it in one statement.

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::crypto::SealedAt;
use crate::db;
use crate::db::connections::Stored;
use crate::error::{AppError, AppResult};
use crate::oauth::establish::Established;
use crate::oauth::token::TokenSet;
use crate::providers::Provider;
use crate::state::AppState;

/// Where a connection's sealed value lives (the AAD binds it there).
pub fn sealed_at<'a>(id: &'a Uuid, column: &'static str) -> SealedAt<'a> {
    SealedAt {
        table: "connections",
        column,
        row: id.as_bytes(),
    }
}

pub struct NewConnection<'a> {
    pub provider: &'a Provider,
    pub end_user_id: Uuid,
    pub existing_id: Option<Uuid>,
    pub tokens: &'a TokenSet,
    pub established: &'a Established,
    /// Bullhorn API-user credentials, when the user asked for automatic recovery.
    pub credentials: Option<&'a SecretString>,
    pub actor: &'a crate::model::Actor,
}

/// Seals and stores the grant, creating the connection or replacing its grant in place.
/// A row created concurrently under another id means sealing once more for that id.
pub async fn store(app: &AppState, new: NewConnection<'_>) -> AppResult<Uuid> {
    let now = app.clock.now();
    let provider = new.provider;
    let tokens = new.tokens;
    let has_refresh = tokens.refresh_token.is_some();
    let refresh_expires_at = provider
        .refresh_token_lifetime
        .filter(|_| has_refresh)
        .map(|life| now + life);
    let session = new.established.session.as_ref();
    // For Bullhorn the credential a backend uses is the REST session, so its expiry counts.
    let access_expires_at = session.map_or(tokens.expires_at, |s| s.expires_at);
    let next_refresh_at =
        provider.next_refresh_at(has_refresh, access_expires_at, refresh_expires_at);
    let scopes = tokens.scope.clone().or_else(|| provider.scope_param());
    let account = &new.established.account;
    let metadata = new.established.ctx.to_json();
    let mut id = new.existing_id.unwrap_or_else(Uuid::new_v4);
    let mut conn = app.pool.acquire().await?;
    for _ in 0..3 {
        let keys = &app.settings.keys;
        let seal = |column: &'static str, value: &SecretString| {
            keys.seal(value.expose_secret().as_bytes(), sealed_at(&id, column))
        };
        let access = seal("access_token", &tokens.access_token)?;
        let refresh = tokens
            .refresh_token
            .as_ref()
            .map(|r| seal("refresh_token", r))
            .transpose()?;
        let provider_session = session
            .map(|s| seal("provider_session", &s.token))
            .transpose()?;
        let credentials = new
            .credentials
            .map(|c| seal("provider_credentials", c))
            .transpose()?;
        let grant = db::connections::NewGrant {
            id,
            end_user_id: new.end_user_id,
            provider: &provider.id,
            account_id: account.id.as_deref(),
            account_label: account.label.as_deref(),
            scopes: scopes.as_deref(),
            metadata: metadata.clone(),
            access_token: &access,
            refresh_token: refresh.as_deref(),
            provider_session: provider_session.as_deref(),
            provider_credentials: credentials.as_deref(),
            access_expires_at,
            refresh_expires_at,
            next_refresh_at,
            actor: new.actor,
            now,
        };
        match db::connections::store_grant(&mut conn, grant).await? {
            Stored::Created | Stored::Replaced => return Ok(id),
            Stored::SealedForOtherRow(other) => id = other,
        }
    }
    Err(AppError::internal(anyhow::anyhow!(
        "connection row kept changing while storing a grant"
    )))
}
