//! `credential()`: a valid credential for a connection, refreshed first when it expires
//! within the margin (or when forced).

use std::fmt;

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{LifecycleError, refresh};
use crate::db::refresh::{self as db, GrantRow};
use crate::grants::sealed_at;
use crate::model::ConnectionStatus;
use crate::oauth::token::TokenError;
use crate::providers::Context;
use crate::state::AppState;

/// What a backend uses to call the provider. Never logged.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Credential {
    pub connection_id: Uuid,
    pub provider: String,
    pub access_token: String,
    pub token_type: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Provider extras: Bullhorn `BhRestToken` and `restUrl`, Zoho `api_host`.
    #[schema(value_type = Object)]
    pub extras: serde_json::Map<String, serde_json::Value>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("connection_id", &self.connection_id)
            .field("provider", &self.provider)
            .field("access_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

pub async fn credential(
    app: &AppState,
    id: Uuid,
    force: bool,
) -> Result<Credential, LifecycleError> {
    let first = load(app, id).await?;
    usable(&first)?;
    if !force && fresh(app, &first) {
        return build(app, &first).await;
    }
    if let Some(answer) = backing_off(app, &first, force).await {
        return answer;
    }
    // The refresh and the store of what it brings run on their own task: a caller that
    // goes away detaches it, never cancels it, and finds the result on its next call.
    let task = app.clone();
    let seen_version = first.version;
    let handle = app
        .custody
        .spawn(format!("refresh of connection {id}"), async move {
            single_flight(&task, id, force, seen_version).await
        });
    crate::custody::join(handle).await?
}

/// One refresh per connection in this process: the lock is taken inside the detached
/// task, so later callers queue behind it and find its result.
async fn single_flight(
    app: &AppState,
    id: Uuid,
    force: bool,
    seen_version: i64,
) -> Result<Credential, LifecycleError> {
    let _guard = app.refresh_locks.lock(id).await;
    let row = load(app, id).await?;
    usable(&row)?;
    if fresh(app, &row) && (!force || row.version != seen_version) {
        return build(app, &row).await;
    }
    if let Some(answer) = backing_off(app, &row, force).await {
        return answer;
    }
    let result = refresh::refresh(app, row, seen_version).await;
    crate::telemetry::metrics::refresh(
        crate::telemetry::metrics::Trigger::OnDemand,
        result
            .as_ref()
            .map_or_else(LifecycleError::outcome, |_| "ok"),
    );
    result
}

/// Inside a degraded connection's backoff (database clock) the provider is not called,
/// whoever asks: a credential still valid is served unless a refresh is forced, else
/// `provider_unavailable` with the time left.
async fn backing_off(
    app: &AppState,
    row: &GrantRow,
    force: bool,
) -> Option<Result<Credential, LifecycleError>> {
    let left = row.retry_in_secs.filter(|s| *s > 0)?;
    let still_valid =
        row.access_token.is_some() && row.access_expires_at.is_none_or(|at| at > app.clock.now());
    if still_valid && !force {
        return Some(build(app, row).await);
    }
    Some(Err(LifecycleError::ProviderUnavailable(
        crate::oauth::token::TokenError::BackingOff,
        Some(std::time::Duration::from_secs(left.unsigned_abs())),
    )))
}

pub(crate) async fn load(app: &AppState, id: Uuid) -> Result<GrantRow, LifecycleError> {
    let mut conn = app.pool.acquire().await?;
    db::load(&mut conn, id)
        .await?
        .ok_or(LifecycleError::NotFound)
}

pub(crate) fn usable(row: &GrantRow) -> Result<(), LifecycleError> {
    match row.status {
        ConnectionStatus::Active | ConnectionStatus::Degraded => Ok(()),
        ConnectionStatus::NeedsReconnect | ConnectionStatus::Revoked => {
            Err(LifecycleError::NeedsReconnect)
        }
    }
}

/// Valid for at least the margin (an unknown expiry counts as valid).
pub(crate) fn fresh(app: &AppState, row: &GrantRow) -> bool {
    let margin = Duration::seconds(app.settings.refresher.margin_secs);
    // Bullhorn's credential is the REST session made from the grant.
    let needs_session = app
        .settings
        .provider(&row.provider)
        .is_some_and(|p| p.needs_rest_session());
    let has_credential =
        row.access_token.is_some() && (!needs_session || row.provider_session.is_some());
    has_credential
        && row
            .access_expires_at
            .is_none_or(|at| at - margin > app.clock.now())
}

/// Opens the stored credential. A value that fails to open (moved, tampered, key
/// removed) marks the connection broken instead of failing every call.
pub(crate) async fn build(app: &AppState, row: &GrantRow) -> Result<Credential, LifecycleError> {
    let provider = app
        .settings
        .provider(&row.provider)
        .ok_or(LifecycleError::ProviderMisconfigured)?;
    let ctx = Context::from_json(&row.metadata);
    let keys = &app.settings.keys;
    let open = |column: &'static str, sealed: &Option<Vec<u8>>| match sealed {
        Some(bytes) => keys
            .open_string(bytes, sealed_at(&row.id, column))
            .map(Some),
        None => Ok(None),
    };
    let opened = if provider.needs_rest_session() {
        open("provider_session", &row.provider_session)
    } else {
        open("access_token", &row.access_token)
    };
    let token = match opened {
        Ok(Some(token)) => token,
        Ok(None) => return Err(LifecycleError::NeedsReconnect),
        Err(e) => return Err(refresh::broken(app, row, &e.to_string()).await),
    };
    let shape = match provider.credential_shape(&ctx, &token) {
        Ok(shape) => shape,
        Err(e) => {
            let e = TokenError::from(e);
            crate::alarms::note(app, &provider.id, &e);
            return Err(LifecycleError::ProviderUnavailable(e, None));
        }
    };
    Ok(Credential {
        connection_id: row.id,
        provider: row.provider.clone(),
        access_token: token,
        token_type: shape.token_type.into(),
        expires_at: row.access_expires_at,
        extras: shape.extras,
    })
}
