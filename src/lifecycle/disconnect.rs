//! Disconnecting: revoke at the provider where it can, then wipe the tokens; the row and
//! its history stay, as `revoked`. A failed revoke is recorded, not hidden.

use secrecy::SecretString;
use uuid::Uuid;

use super::LifecycleError;
use super::credential::load;
use crate::db;
use crate::grants::sealed_at;
use crate::model::{Actor, EventKind};
use crate::oauth::revoke;
use crate::providers::Context;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Revocation {
    Revoked,
    Failed,
    NotSupported,
}

pub async fn disconnect(
    app: &AppState,
    id: Uuid,
    actor: &Actor,
) -> Result<Revocation, LifecycleError> {
    let row = load(app, id).await?;
    let now = app.clock.now();
    let provider = app.settings.provider(&row.provider);
    let refresh_token = row.refresh_token.as_ref().and_then(|sealed| {
        app.settings
            .keys
            .open_string(sealed, sealed_at(&row.id, "refresh_token"))
            .ok()
    });
    let outcome = match (provider, refresh_token) {
        (Some(p), Some(token)) if revoke::supported(p) => {
            let ctx = Context::from_json(&row.metadata);
            match revoke::revoke(&app.http, p, &ctx, &SecretString::from(token)).await {
                Ok(()) => Revocation::Revoked,
                Err(e) => {
                    tracing::warn!(provider = %row.provider, error = %e, "revocation at the provider failed");
                    let mut conn = app.pool.acquire().await?;
                    let detail = format!("revocation at the provider failed: {}", e.code());
                    db::events::record(
                        &mut conn,
                        id,
                        EventKind::RevokeFailed,
                        Some(&detail),
                        actor,
                        now,
                    )
                    .await?;
                    Revocation::Failed
                }
            }
        }
        _ => Revocation::NotSupported,
    };
    let detail = match outcome {
        Revocation::Revoked => "revoked at the provider; tokens wiped",
        Revocation::Failed => "tokens wiped; the provider did not confirm revocation",
        Revocation::NotSupported => "tokens wiped (the provider offers no revocation)",
    };
    let mut conn = app.pool.acquire().await?;
    db::refresh::wipe(&mut conn, id, detail, actor, now).await?;
    tracing::info!(provider = %row.provider, ?outcome, "connection disconnected");
    Ok(outcome)
}
