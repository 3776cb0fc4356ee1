//! Completing a connection once the provider has acted: the code exchange and its
//! post-steps, the same-account guard, storing the grant, and Bullhorn's headless
//! API-user sign-in. Runs detached from the request (see `custody`).

pub mod api_user;

use crate::db;
use crate::error::{AppError, AppResult};
use crate::grants::{self, NewConnection};
use crate::model::{Actor, ConnectionStatus};
use crate::oauth::token::{self, Grant, TokenError};
use crate::oauth::{establish, revoke};
use crate::providers::{Context, Provider};
use crate::state::AppState;
use uuid::Uuid;

/// What the detached part of a callback needs (secrets included: never logged).
pub struct Exchange {
    pub provider_id: String,
    pub ctx: Context,
    pub code: String,
    pub verifier: Option<String>,
    pub end_user_id: uuid::Uuid,
    pub existing_id: Option<uuid::Uuid>,
    pub reconnecting: Option<uuid::Uuid>,
    /// The user chose to replace the connected upstream account.
    pub replacing: bool,
}

/// Code exchange, the provider's post-steps and who-am-I, then the store.
pub async fn exchange_and_store(app: &AppState, x: Exchange) -> AppResult<uuid::Uuid> {
    let provider = app
        .settings
        .provider(&x.provider_id)
        .ok_or(AppError::NotFound)?;
    let redirect_uri = app.settings.redirect_uri(&provider.id);
    let grant = Grant::Code {
        code: &x.code,
        redirect_uri: &redirect_uri,
        verifier: x.verifier.as_deref(),
    };
    let tokens = token::request(&app.http, provider, &x.ctx, grant, app.clock.now())
        .await
        .map_err(|e| upstream_failure(app, provider, "code exchange", e))?;
    let established =
        match establish::after_exchange(&app.http, provider, x.ctx.clone(), &tokens).await {
            Ok(established) => established,
            Err(e) => {
                // The grant exists at the provider but will not be stored: end it there.
                discard_grant(app, provider, &x.ctx, &tokens).await;
                return Err(upstream_failure(app, provider, "post-exchange", e));
            }
        };
    // A reconnect link repairs its own connection; from the connect page, an existing
    // connection keeps its upstream account unless the user chose to replace it.
    if let Some((id, guard)) = guard_for(x.reconnecting, x.existing_id, x.replacing)
        && let Err(refused) =
            ensure_same_account(app, provider, id, &established.account, guard).await
    {
        discard_grant(app, provider, &established.ctx, &tokens).await;
        return Err(refused);
    }
    let stored = grants::store(
        app,
        NewConnection {
            provider,
            end_user_id: x.end_user_id,
            existing_id: x.existing_id,
            tokens: &tokens,
            established: &established,
            credentials: None,
            actor: &Actor::EndUser,
        },
    )
    .await;
    match stored {
        Ok(connection_id) => {
            tracing::info!(provider = %provider.id, "connection established");
            Ok(connection_id)
        }
        Err(e) => {
            discard_grant(app, provider, &established.ctx, &tokens).await;
            Err(e)
        }
    }
}

/// Revokes a grant that will not be kept, where the provider can revoke; a failure is
/// logged (the grant then lapses at the provider on its own terms).
pub async fn discard_grant(
    app: &AppState,
    provider: &Provider,
    ctx: &Context,
    tokens: &token::TokenSet,
) {
    if !revoke::supported(provider) {
        return;
    }
    let token = tokens
        .refresh_token
        .as_ref()
        .unwrap_or(&tokens.access_token);
    match revoke::revoke(&app.http, provider, ctx, token).await {
        Ok(()) => tracing::info!(provider = %provider.id, "unused grant revoked at the provider"),
        Err(e) => {
            tracing::warn!(provider = %provider.id, error = %e, "unused grant could not be revoked")
        }
    }
}

/// Where a flow that must keep its upstream account came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// A reconnect link: it repairs one connection, whatever its status.
    Link,
    /// The connect page's Connect/Reconnect: a disconnected connection may change hands.
    Page,
}

/// Which connection must keep its upstream account, and why: a reconnect link's own,
/// or the existing one unless the user chose to replace it.
pub fn guard_for(
    reconnecting: Option<Uuid>,
    existing_id: Option<Uuid>,
    replacing: bool,
) -> Option<(Uuid, Guard)> {
    match (reconnecting, existing_id) {
        (Some(id), _) => Some((id, Guard::Link)),
        (None, Some(id)) if !replacing => Some((id, Guard::Page)),
        _ => None,
    }
}

/// A different upstream account is refused, naming both accounts.
pub async fn ensure_same_account(
    app: &AppState,
    provider: &Provider,
    connection_id: uuid::Uuid,
    account: &crate::oauth::identity::Account,
    guard: Guard,
) -> AppResult<()> {
    let mut conn = app.pool.acquire().await?;
    let existing = db::connections::get(&mut conn, connection_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if guard == Guard::Page && existing.status == ConnectionStatus::Revoked {
        return Ok(());
    }
    if existing.account_id.is_some() && existing.account_id != account.id {
        tracing::warn!(provider = %provider.id, "a different upstream account was refused");
        let current = existing
            .account_label
            .or(existing.account_id)
            .unwrap_or_default();
        let signed_in = account
            .label
            .clone()
            .or_else(|| account.id.clone())
            .unwrap_or_else(|| "another account".into());
        let hint = match guard {
            Guard::Link => "sign in with that account and try again.",
            Guard::Page => {
                "sign in with that account, or choose “Connect a different account” on your connections page to replace it."
            }
        };
        return Err(AppError::Conflict {
            code: "account_mismatch",
            message: format!(
                "You signed in to {} as {signed_in}, a different account than the one this connection belongs to ({current}). Nothing was changed; {hint}",
                provider.display_name,
            ),
        });
    }
    Ok(())
}

pub fn upstream_failure(
    app: &AppState,
    provider: &Provider,
    step: &str,
    e: TokenError,
) -> AppError {
    tracing::warn!(provider = %provider.id, step, error = %e, "connection not completed");
    crate::alarms::note(app, &provider.id, &e);
    AppError::Upstream {
        provider: provider.display_name.clone(),
        error: e,
    }
}
