//! `GET /oauth/{provider}/callback`: state first, then the code exchange at once, then
//! the provider's post-steps and who-am-I, then one statement that stores the sealed grant.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tower_sessions::Session;

use super::connect;
use super::session::EndUserSession;
use crate::crypto::{self, SealedAt};
use crate::db;
use crate::error::{AppError, AppResult, ErrorPage};
use crate::grants::{self, NewConnection};
use crate::link_options::{LinkOptions, Outcome};
use crate::model::{Actor, ConnectionStatus};
use crate::oauth::callback_params::CallbackParams;
use crate::oauth::token::{self, Grant, TokenError};
use crate::oauth::{establish, revoke};
use crate::providers::{Context, Kind, Provider};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/oauth/{provider}/callback", get(callback))
}

const STALE: &str = "This sign-in attempt is no longer valid (it was already used, has expired, or was started in another browser). Nothing was changed; start again from your connections page.";

/// Completes the flow; once the flow is known to be this browser's, a link made with a
/// return URL hears how it ended (`failed` included) instead of seeing our error page.
async fn callback(
    State(app): State<AppState>,
    session: Session,
    Path(provider_id): Path<String>,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let mut returning = None;
    let result = complete(
        app.clone(),
        session,
        provider_id.clone(),
        query,
        &mut returning,
    )
    .await;
    count_flow_end(&app, &provider_id, &result);
    match (result, returning) {
        (Err(e), Some(options)) => {
            match connect::finish(&options, Outcome::Failed, &provider_id, None) {
                Some(back) => {
                    e.log();
                    tracing::info!(provider = %provider_id, code = e.code(), "flow failed; returning to the product");
                    Ok(back)
                }
                None => Err(e),
            }
        }
        (result, _) => result,
    }
}

/// Counts the flow's end for a configured provider. A flow that returns to the product
/// says how it ended in the address it returns to.
fn count_flow_end(app: &AppState, provider_id: &str, result: &AppResult<Response>) {
    use crate::telemetry::metrics;
    let Some(provider) = app.settings.provider(provider_id) else {
        return;
    };
    match result {
        Ok(r) if r.status().is_redirection() => {
            let cancelled = r
                .headers()
                .get(axum::http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|l| l.contains("keyhaven_status=cancelled"));
            if cancelled {
                metrics::connect_flow_failed(&provider.id, "declined");
            } else {
                metrics::connect_flow_completed(&provider.id);
            }
        }
        Ok(_) => metrics::connect_flow_failed(&provider.id, "declined"),
        Err(AppError::BadRequest(_)) => {
            metrics::connect_flow_failed(&provider.id, "invalid_callback")
        }
        Err(AppError::Upstream { error, .. }) => {
            metrics::connect_flow_failed(&provider.id, error.code())
        }
        Err(e) => metrics::connect_flow_failed(&provider.id, e.code()),
    }
}

async fn complete(
    app: AppState,
    session: Session,
    provider_id: String,
    query: Option<String>,
    returning: &mut Option<LinkOptions>,
) -> AppResult<Response> {
    let arrived = std::time::Instant::now();
    let params = CallbackParams::parse(query.as_deref())
        .map_err(|e| AppError::BadRequest(format!("The provider's answer was malformed: {e}.")))?;
    let provider = app
        .settings
        .provider(&provider_id)
        .ok_or(AppError::NotFound)?;
    let state = params
        .get("state")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AppError::BadRequest(STALE.into()))?;
    let user: EndUserSession = session
        .get("end_user")
        .await?
        .ok_or_else(|| AppError::BadRequest(STALE.into()))?;

    // The state is consumed here, whatever happens next: a callback works once.
    let state_hash = crypto::token_hash(state);
    let pending = {
        let mut conn = app.pool.acquire().await?;
        db::pending::take(&mut conn, &state_hash, &user.binding_hash()).await?
    }
    .ok_or_else(|| AppError::BadRequest(STALE.into()))?;
    if pending.provider != provider.id
        || pending.end_user_id != user.end_user_id
        || pending.expires_at <= app.clock.now()
    {
        return Err(AppError::BadRequest(STALE.into()));
    }
    if user.options.return_url.is_some() {
        *returning = Some(user.options.clone());
    }
    // RFC 9207: with an issuer configured, every answer must name it; a missing `iss`
    // is refused like a wrong one (a mix-up attacker would simply leave it out).
    if let Some(expected) = &provider.issuer
        && params.get("iss") != Some(expected.as_str())
    {
        tracing::warn!(provider = %provider.id, "callback issuer mismatch");
        return Err(AppError::BadRequest(
            "The answer came from an unexpected issuer. Nothing was changed.".into(),
        ));
    }
    let code = match (params.get("code"), params.get("error")) {
        (Some(code), None) if !code.is_empty() => code,
        (None, Some(error)) => {
            return Ok(declined(
                provider,
                error,
                params.get("error_description"),
                &user.options,
            ));
        }
        _ => {
            return Err(AppError::BadRequest(
                "The provider's answer was not understood. Nothing was changed.".into(),
            ));
        }
    };
    let mut ctx = Context::from_json(&pending.context);
    if let Kind::Zoho(zoho) = &provider.kind {
        // The data center arrives in the URL, where anyone can write anything: only a
        // known Zoho accounts server is ever called.
        ctx = zoho
            .context_from_callback(params.get("accounts-server"), params.get("location"))
            .ok_or_else(|| {
                tracing::warn!(provider = %provider.id, "callback named an unknown accounts server");
                AppError::BadRequest(
                    "The answer named an unknown Zoho data center. Nothing was changed.".into(),
                )
            })?;
    }

    let verifier = match &pending.pkce_verifier {
        Some(sealed) => Some(app.settings.keys.open_string(
            sealed,
            SealedAt {
                table: "pending_authorizations",
                column: "pkce_verifier",
                row: &state_hash,
            },
        )?),
        None => None,
    };
    // From the exchange on, the work runs on its own task: a browser that goes away
    // does not lose a code already spent at the provider, nor the grant it brought.
    let exchange = Exchange {
        provider_id: provider.id.clone(),
        ctx,
        code: code.to_string(),
        verifier,
        end_user_id: pending.end_user_id,
        existing_id: pending.existing_connection_id,
        reconnecting: pending.connection_id,
        replacing: pending.context.get(super::connect::REPLACE_ACCOUNT)
            == Some(&serde_json::Value::Bool(true)),
    };
    // Code age: from the callback's arrival to the exchange being sent (at once, below).
    crate::telemetry::metrics::code_age_at_exchange(&provider.id, arrived.elapsed());
    let label = format!(
        "code exchange for {}, end user {}",
        provider.id, pending.end_user_id
    );
    let task = app.clone();
    let connection_id = crate::custody::join(app.custody.spawn(label, async move {
        exchange_and_store(&task, exchange).await
    }))
    .await??;
    if let Some(back) = connect::finish(
        &user.options,
        Outcome::Connected,
        &provider.id,
        Some(connection_id),
    ) {
        return Ok(back);
    }

    let target = pending
        .context
        .get("return_to")
        .and_then(|v| v.as_str())
        .filter(|r| super::connect::is_relative_path(r))
        .map(String::from)
        .unwrap_or_else(|| format!("/connect?connected={}", provider.id));
    Ok(Redirect::to(&target).into_response())
}

/// What the detached part of a callback needs (secrets included: never logged).
struct Exchange {
    provider_id: String,
    ctx: Context,
    code: String,
    verifier: Option<String>,
    end_user_id: uuid::Uuid,
    existing_id: Option<uuid::Uuid>,
    reconnecting: Option<uuid::Uuid>,
    /// The user chose to replace the connected upstream account.
    replacing: bool,
}

/// Code exchange, the provider's post-steps and who-am-I, then the store.
async fn exchange_and_store(app: &AppState, x: Exchange) -> AppResult<uuid::Uuid> {
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
    let guarded = match (x.reconnecting, x.existing_id) {
        (Some(id), _) => Some((id, Guard::Link)),
        (None, Some(id)) if !x.replacing => Some((id, Guard::Page)),
        _ => None,
    };
    if let Some((id, guard)) = guarded
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
pub(crate) async fn discard_grant(
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
pub(crate) enum Guard {
    /// A reconnect link: it repairs one connection, whatever its status.
    Link,
    /// The connect page's Connect/Reconnect: a disconnected connection may change hands.
    Page,
}

/// A different upstream account is refused, naming both accounts.
pub(crate) async fn ensure_same_account(
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

pub(crate) fn upstream_failure(
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

/// The user declined, or the provider reported an error: say so, escaped, change nothing.
/// A link made with a return URL goes back to the product: `cancelled` when the user
/// said no (`access_denied`), else `failed`.
fn declined(
    provider: &Provider,
    error: &str,
    description: Option<&str>,
    options: &LinkOptions,
) -> Response {
    tracing::info!(provider = %provider.id, error = %token::sanitize(error), "authorization declined");
    let outcome = if error == "access_denied" {
        Outcome::Cancelled
    } else {
        Outcome::Failed
    };
    if let Some(back) = connect::finish(options, outcome, &provider.id, None) {
        return back;
    }
    let detail: String = description.unwrap_or(error).chars().take(300).collect();
    let message = format!(
        "{} did not grant access, so nothing was connected or changed. The provider said: “{}”.",
        provider.display_name, detail
    );
    ErrorPage {
        title: "Connection not completed",
        message: &message,
        retry_href: Some("/connect"),
    }
    .response(StatusCode::OK)
}
