//! `GET /oauth/{provider}/callback`: state first, then the code exchange at once, then
//! the provider's post-steps and who-am-I, then one statement that stores the sealed grant.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tower_sessions::Session;

use super::connect;
use super::error::ErrorPage;
use super::session::EndUserSession;
use crate::connecting;
use crate::crypto::{self, SealedAt};
use crate::db;
use crate::error::{AppError, AppResult};
use crate::link_options::{LinkOptions, Outcome};
use crate::oauth::callback_params::CallbackParams;
use crate::oauth::token::{self};
use crate::providers::{Context, Provider};
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

/// Marks the answer to a callback where the user declined or the provider reported an
/// error: the flow ended without a connection, whatever the answer looks like.
#[derive(Clone, Copy)]
struct Declined;

/// Counts the flow's end for a configured provider.
fn count_flow_end(app: &AppState, provider_id: &str, result: &AppResult<Response>) {
    use crate::telemetry::metrics;
    let Some(provider) = app.settings.provider(provider_id) else {
        return;
    };
    match result {
        Ok(r) if r.extensions().get::<Declined>().is_some() => {
            metrics::connect_flow_failed(&provider.id, "declined")
        }
        Ok(_) => metrics::connect_flow_completed(&provider.id),
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
            let mut answer = declined(
                provider,
                error,
                params.get("error_description"),
                &user.options,
            );
            answer.extensions_mut().insert(Declined);
            return Ok(answer);
        }
        _ => {
            return Err(AppError::BadRequest(
                "The provider's answer was not understood. Nothing was changed.".into(),
            ));
        }
    };
    // Zoho names its data center in the URL, where anyone can write anything: only a
    // known accounts server is ever called.
    let ctx = provider
        .context_from_callback(
            Context::from_json(&pending.context),
            params.get("accounts-server"),
            params.get("location"),
        )
        .ok_or_else(|| {
            tracing::warn!(provider = %provider.id, "callback named an unknown accounts server");
            AppError::BadRequest(
                "The answer named an unknown Zoho data center. Nothing was changed.".into(),
            )
        })?;

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
    let exchange = connecting::Exchange {
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
        connecting::exchange_and_store(&task, exchange).await
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
