//! Bullhorn API-user mode: the user types the API user's credentials on our page and
//! Keyhaven performs Bullhorn's headless authorize server-side, reading the code from
//! the redirect without following it, and exchanging it at once. The password is never
//! logged or shown; it is kept (sealed) only when the user opts in to automatic recovery.
//! Sign-ins are limited per end user and per username, and an unknown username gets the
//! same answer as a wrong password.

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::{discard_grant, ensure_same_account, guard_for, upstream_failure};
use crate::db;
use crate::error::{AppError, AppResult};
use crate::grants::{self, NewConnection};
use crate::model::Actor;
use crate::oauth::bullhorn::{self, HeadlessError};
use crate::oauth::establish::{self, Established};
use crate::oauth::token::{self, Grant, TokenSet};
use crate::providers::{Context, Provider};
use crate::state::AppState;

pub struct ApiUserLogin<'a> {
    pub username: &'a str,
    pub password: SecretString,
    pub remember: bool,
    /// The user chose "Connect a different account" on the card.
    pub replace_account: bool,
}

impl std::fmt::Debug for ApiUserLogin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiUserLogin")
            .field("remember", &self.remember)
            .finish_non_exhaustive()
    }
}

/// Kept (sealed) for automatic recovery: the seed's step-1 credentials.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct StoredCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredentials").finish_non_exhaustive()
    }
}

/// Failed sign-ins counted per end user and per username within this window.
pub const ATTEMPT_WINDOW: time::Duration = time::Duration::minutes(15);
/// Sign-ins (failed or in flight) allowed per end user and per username in the window.
pub const MAX_ATTEMPTS: i64 = 5;

const WRONG_CREDENTIALS: &str =
    "Bullhorn did not accept that username and password. Nothing was changed.";

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
                HeadlessError::WrongCredentials => AppError::BadRequest(WRONG_CREDENTIALS.into()),
                HeadlessError::Provider(e) => {
                    upstream_failure(app, provider, "headless authorize", e)
                }
            })?;
    let grant = Grant::Code {
        code: &code,
        redirect_uri: &redirect_uri,
        verifier: None,
    };
    let tokens = token::request(&app.http, provider, &ctx, grant, app.clock.now())
        .await
        .map_err(|e| upstream_failure(app, provider, "code exchange", e))?;
    let established = establish::after_exchange(&app.http, provider, ctx, &tokens)
        .await
        .map_err(|e| upstream_failure(app, provider, "post-exchange", e))?;
    Ok((tokens, established))
}

/// Signs in on our page: counted against the limits first, then loginInfo (an unknown
/// username answers like a wrong password), the headless authorize, and storing; the
/// connection's id.
pub async fn connect(
    app: &AppState,
    provider: &Provider,
    end_user_id: Uuid,
    reconnecting: Option<Uuid>,
    login: ApiUserLogin<'_>,
) -> AppResult<Uuid> {
    let keys = [
        app.settings
            .keys
            .mac("bullhorn-api-user/end-user", end_user_id.as_bytes()),
        app.settings.keys.mac(
            "bullhorn-api-user/username",
            login.username.to_lowercase().as_bytes(),
        ),
    ];
    let now = app.clock.now();
    let reserved = {
        let mut conn = app.pool.acquire().await?;
        let ids = db::api_user_attempts::reserve(&mut conn, &keys, now).await?;
        let seen =
            db::api_user_attempts::most_recent(&mut conn, &keys, now - ATTEMPT_WINDOW).await?;
        if seen > MAX_ATTEMPTS {
            db::api_user_attempts::forgive(&mut conn, &ids).await?;
            tracing::warn!(provider = %provider.id, "API-user sign-in refused: too many attempts");
            return Err(AppError::TooManyRequests(format!(
                "Too many sign-in attempts. Nothing was changed; try again in {} minutes.",
                ATTEMPT_WINDOW.whole_minutes()
            )));
        }
        ids
    };
    let result = sign_in(app, provider, end_user_id, reconnecting, login).await;
    // Wrong credentials keep counting; anything else (success, the provider being
    // down) is not the person's guess.
    let wrong = matches!(&result, Err(AppError::BadRequest(m)) if m == WRONG_CREDENTIALS);
    if !wrong {
        let mut conn = app.pool.acquire().await?;
        db::api_user_attempts::forgive(&mut conn, &reserved).await?;
    }
    result
}

async fn sign_in(
    app: &AppState,
    provider: &Provider,
    end_user_id: Uuid,
    reconnecting: Option<Uuid>,
    login: ApiUserLogin<'_>,
) -> AppResult<Uuid> {
    let ctx = match bullhorn::login_info(&app.http, provider, login.username).await {
        Ok(ctx) => ctx,
        Err(token::TokenError::Rejected(_)) => {
            return Err(AppError::BadRequest(WRONG_CREDENTIALS.into()));
        }
        Err(e) => return Err(upstream_failure(app, provider, "loginInfo", e)),
    };
    // From here the work runs on its own task: a browser that goes away does not lose a
    // grant the headless login may already have created.
    let task = app.clone();
    let provider_id = provider.id.clone();
    let (username, password, remember, replace_account) = (
        login.username.to_string(),
        login.password,
        login.remember,
        login.replace_account,
    );
    let label = format!(
        "API-user connect for {}, end user {}",
        provider.id, end_user_id
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
            replace_account,
        };
        connect_here(&task, provider, end_user_id, ctx, reconnecting, login).await
    }))
    .await?
}

async fn connect_here(
    app: &AppState,
    provider: &Provider,
    end_user_id: Uuid,
    ctx: Context,
    reconnecting: Option<Uuid>,
    login: ApiUserLogin<'_>,
) -> AppResult<Uuid> {
    let (tokens, established) =
        authorize(app, provider, ctx, login.username, &login.password).await?;
    let existing_id = {
        let mut conn = app.pool.acquire().await?;
        db::connections::find_for_end_user(&mut conn, end_user_id, &provider.id)
            .await?
            .map(|c| c.id)
    };
    // As in the browser flow: the connected account stays unless the user chose to
    // replace it.
    if let Some((id, guard)) = guard_for(reconnecting, existing_id, login.replace_account)
        && let Err(refused) =
            ensure_same_account(app, provider, id, &established.account, guard).await
    {
        discard_grant(app, provider, &established.ctx, &tokens).await;
        return Err(refused);
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
    let stored = grants::store(
        app,
        NewConnection {
            provider,
            end_user_id,
            existing_id,
            tokens: &tokens,
            established: &established,
            credentials: credentials.as_ref(),
            actor: &Actor::EndUser,
        },
    )
    .await;
    let connection_id = match stored {
        Ok(id) => id,
        Err(e) => {
            discard_grant(app, provider, &established.ctx, &tokens).await;
            return Err(e);
        }
    };
    tracing::info!(provider = %provider.id, remembered = login.remember, "API user connected");
    Ok(connection_id)
}
