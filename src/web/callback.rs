//! `GET /oauth/{provider}/callback`: state first, then the code exchange at once, then
//! who-am-I, then one transaction that stores the sealed grant.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use secrecy::{ExposeSecret, SecretString};
use tower_sessions::Session;

use super::session::EndUserSession;
use crate::AppState;
use crate::crypto::{self, SealedAt};
use crate::db;
use crate::db::connections::Stored;
use crate::error::{AppError, AppResult, ErrorPage};
use crate::oauth::callback_params::CallbackParams;
use crate::oauth::identity::{self, Account};
use crate::oauth::token::{self, Grant, TokenError, TokenSet};
use crate::providers::Provider;

pub fn router() -> Router<AppState> {
    Router::new().route("/oauth/{provider}/callback", get(callback))
}

const STALE: &str = "This sign-in attempt is no longer valid (it was already used, has expired, or was started in another browser). Nothing was changed; start again from your connections page.";

async fn callback(
    State(app): State<AppState>,
    session: Session,
    Path(provider_id): Path<String>,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
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
    // RFC 9207: where the provider names itself, it must be the one we configured.
    if let (Some(expected), Some(iss)) = (&provider.issuer, params.get("iss"))
        && expected != iss
    {
        tracing::warn!(provider = %provider.id, "callback issuer mismatch");
        return Err(AppError::BadRequest(
            "The answer came from an unexpected issuer. Nothing was changed.".into(),
        ));
    }
    let code = match (params.get("code"), params.get("error")) {
        (Some(code), None) if !code.is_empty() => code,
        (None, Some(error)) => {
            return Ok(declined(provider, error, params.get("error_description")));
        }
        _ => {
            return Err(AppError::BadRequest(
                "The provider's answer was not understood. Nothing was changed.".into(),
            ));
        }
    };

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
    let redirect_uri = app.settings.redirect_uri(&provider.id);
    let grant = Grant::Code {
        code,
        redirect_uri: &redirect_uri,
        verifier: verifier.as_deref(),
    };
    let tokens = token::request(&app.http, provider, grant, app.clock.now())
        .await
        .map_err(|e| upstream_failure(provider, "code exchange", e))?;
    let account = identity::identify(&app.http, provider, &tokens.access_token)
        .await
        .map_err(|e| upstream_failure(provider, "who-am-I", e))?;
    store(
        &app,
        provider,
        pending.end_user_id,
        pending.existing_connection_id,
        &tokens,
        &account,
    )
    .await?;
    tracing::info!(provider = %provider.id, "connection established");

    let target = pending
        .context
        .get("return_to")
        .and_then(|v| v.as_str())
        .filter(|r| super::connect::is_relative_path(r))
        .map(String::from)
        .unwrap_or_else(|| format!("/connect?connected={}", provider.id));
    Ok(Redirect::to(&target).into_response())
}

fn upstream_failure(provider: &Provider, step: &str, e: TokenError) -> AppError {
    tracing::warn!(provider = %provider.id, step, error = %e, "connection not completed");
    AppError::Upstream {
        provider: provider.display_name.clone(),
        error: e,
    }
}

/// The user declined, or the provider reported an error: say so, escaped, change nothing.
fn declined(provider: &Provider, error: &str, description: Option<&str>) -> Response {
    tracing::info!(provider = %provider.id, error = %token::sanitize(error), "authorization declined");
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

/// Seals the grant for its row and stores it with its event in one statement. The row
/// id is bound into the sealed values, so a row created concurrently under another id
/// means sealing once more for that id.
async fn store(
    app: &AppState,
    provider: &Provider,
    end_user_id: uuid::Uuid,
    existing_id: Option<uuid::Uuid>,
    tokens: &TokenSet,
    account: &Account,
) -> AppResult<()> {
    let now = app.clock.now();
    let refresh_expires_at = provider
        .refresh_token_lifetime
        .filter(|_| tokens.refresh_token.is_some())
        .map(|life| now + life);
    // Single-use refresh tokens are renewed by the background refresher before they lapse.
    let next_refresh_at = refresh_expires_at.map(|at| at - time::Duration::days(2));
    let scopes = tokens.scope.clone().or_else(|| provider.scope_param());
    let mut id = existing_id.unwrap_or_else(uuid::Uuid::new_v4);
    let mut conn = app.pool.acquire().await?;
    for _ in 0..3 {
        let seal = |column: &'static str, value: &SecretString| {
            let at = SealedAt {
                table: "connections",
                column,
                row: id.as_bytes(),
            };
            app.settings.keys.seal(value.expose_secret().as_bytes(), at)
        };
        let access = seal("access_token", &tokens.access_token)?;
        let refresh = tokens
            .refresh_token
            .as_ref()
            .map(|r| seal("refresh_token", r))
            .transpose()?;
        let grant = db::connections::NewGrant {
            id,
            end_user_id,
            provider: &provider.id,
            account_id: account.id.as_deref(),
            account_label: account.label.as_deref(),
            scopes: scopes.as_deref(),
            metadata: serde_json::json!({}),
            access_token: &access,
            refresh_token: refresh.as_deref(),
            access_expires_at: tokens.expires_at,
            refresh_expires_at,
            next_refresh_at,
            actor: "end_user",
            now,
        };
        match db::connections::store_grant(&mut conn, grant).await? {
            Stored::Created | Stored::Replaced => return Ok(()),
            Stored::SealedForOtherRow(other) => id = other,
        }
    }
    Err(AppError::internal(anyhow::anyhow!(
        "connection row kept changing while storing a grant"
    )))
}
