//! Bullhorn API-user mode: the user types the API user's credentials on our page and
//! Keyhaven performs Bullhorn's headless authorize server-side, reading the code from
//! the redirect without following it, and exchanging it at once. The password is never
//! logged or shown; it is kept (sealed) only when the user opts in to automatic recovery.

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::callback::{ensure_same_account, upstream_failure};
use super::session::EndUserSession;
use crate::AppState;
use crate::db;
use crate::error::{AppError, AppResult};
use crate::grants::{self, NewConnection};
use crate::oauth::establish::{self, Established};
use crate::oauth::token::{self, Grant, TokenSet};
use crate::providers::{Context, Provider, bullhorn};

pub struct ApiUserLogin<'a> {
    pub username: &'a str,
    pub password: SecretString,
    pub remember: bool,
}

/// Kept (sealed) for automatic recovery: the seed's step-1 credentials.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct StoredCredentials {
    pub username: String,
    pub password: String,
}

/// Headless authorize → code exchange → REST login → who-am-I.
pub async fn authorize(
    app: &AppState,
    provider: &Provider,
    ctx: Context,
    username: &str,
    password: &SecretString,
) -> AppResult<(TokenSet, Established)> {
    let redirect_uri = app.settings.redirect_uri(&provider.id);
    let code =
        bullhorn::headless_code(&app.http, provider, &ctx, &redirect_uri, username, password)
            .await
            .map_err(|e| match e {
                bullhorn::HeadlessError::WrongCredentials => AppError::BadRequest(
                    "Bullhorn did not accept that username and password. Nothing was changed."
                        .into(),
                ),
                bullhorn::HeadlessError::Provider(e) => {
                    upstream_failure(provider, "headless authorize", e)
                }
            })?;
    let grant = Grant::Code {
        code: &code,
        redirect_uri: &redirect_uri,
        verifier: None,
    };
    let tokens = token::request(&app.http, provider, &ctx, grant, app.clock.now())
        .await
        .map_err(|e| upstream_failure(provider, "code exchange", e))?;
    let established = establish::after_exchange(&app.http, provider, ctx, &tokens)
        .await
        .map_err(|e| upstream_failure(provider, "post-exchange", e))?;
    Ok((tokens, established))
}

/// Connects on its own task: a browser that goes away does not lose a grant the
/// headless login may already have created.
pub async fn connect(
    app: &AppState,
    provider: &Provider,
    user: &EndUserSession,
    ctx: Context,
    reconnecting: Option<Uuid>,
    login: ApiUserLogin<'_>,
) -> AppResult<()> {
    let task = app.clone();
    let provider_id = provider.id.clone();
    let user = user.clone();
    let (username, password, remember) =
        (login.username.to_string(), login.password, login.remember);
    let label = format!(
        "API-user connect for {}, end user {}",
        provider.id, user.end_user_id
    );
    crate::custody::join(app.custody.spawn(label, async move {
        let provider = task
            .settings
            .provider(&provider_id)
            .ok_or(AppError::NotFound)?;
        let login = ApiUserLogin {
            username: &username,
            password,
            remember,
        };
        connect_here(&task, provider, &user, ctx, reconnecting, login).await
    }))
    .await?
}

async fn connect_here(
    app: &AppState,
    provider: &Provider,
    user: &EndUserSession,
    ctx: Context,
    reconnecting: Option<Uuid>,
    login: ApiUserLogin<'_>,
) -> AppResult<()> {
    let (tokens, established) =
        authorize(app, provider, ctx, login.username, &login.password).await?;
    if let Some(id) = reconnecting {
        ensure_same_account(app, provider, id, &established.account).await?;
    }
    let credentials = if login.remember {
        let stored = StoredCredentials {
            username: login.username.to_string(),
            password: login.password.expose_secret().to_string(),
        };
        Some(SecretString::from(
            serde_json::to_string(&stored).map_err(AppError::internal)?,
        ))
    } else {
        None
    };
    let existing_id = {
        let mut conn = app.pool.acquire().await?;
        db::connections::find_for_end_user(&mut conn, user.end_user_id, &provider.id)
            .await?
            .map(|c| c.id)
    };
    grants::store(
        app,
        NewConnection {
            provider,
            end_user_id: user.end_user_id,
            existing_id,
            tokens: &tokens,
            established: &established,
            credentials: credentials.as_ref(),
            actor: "end_user",
        },
    )
    .await?;
    tracing::info!(provider = %provider.id, remembered = login.remember, "API user connected");
    Ok(())
}
