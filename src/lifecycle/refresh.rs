//! One refresh of one connection, across every instance: claim the lease (or wait for
//! whoever holds it), call the provider with no transaction open, commit the new refresh
//! token before anything else, and sort failures into their classes.

use std::time::{Duration as StdDuration, Instant};

use super::LifecycleError;
use super::credential::{Credential, build, fresh, load, usable};
use crate::connecting::api_user::{self, StoredCredentials};
use crate::db;
use crate::db::refresh::{GrantRow, Refreshed};
use crate::grants::{self, NewConnection, sealed_at};
use crate::model::{Actor, EventKind, FailureCode};
use crate::oauth::bullhorn;
use crate::oauth::establish;
use crate::oauth::token::{self, Grant, TokenError, TokenSet};
use crate::providers::{Context, Provider};
use crate::state::AppState;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};

const WAIT_STEP: StdDuration = StdDuration::from_millis(50);

/// Refreshes unless another instance is already doing it, in which case its result is
/// awaited. `seen_version` is the version the caller found stale.
pub async fn refresh(
    app: &AppState,
    row: GrantRow,
    seen_version: i64,
) -> Result<Credential, LifecycleError> {
    let give_up =
        Instant::now() + StdDuration::from_secs(app.settings.refresher.lease_secs as u64 + 2);
    let id = row.id;
    loop {
        let claimed = {
            let mut conn = app.pool.acquire().await?;
            db::refresh::claim_lease(
                &mut conn,
                id,
                &app.instance_id,
                app.settings.refresher.lease_secs,
            )
            .await?
        };
        if let Some(current) = claimed {
            // Re-read under the claim: another instance may have just finished.
            if current.version != seen_version && fresh(app, &current) {
                release(app, id).await?;
                return build(app, &current).await;
            }
            return refresh_claimed(app, current).await;
        }
        crate::telemetry::metrics::lease_contention(crate::telemetry::metrics::Trigger::OnDemand);
        if Instant::now() > give_up {
            return Err(LifecycleError::ProviderUnavailable(
                TokenError::Timeout,
                None,
            ));
        }
        tokio::time::sleep(WAIT_STEP).await;
        let current = load(app, id).await?;
        usable(&current)?;
        if current.version != seen_version && fresh(app, &current) {
            return build(app, &current).await;
        }
    }
}

/// Before a long post-step: the lease runs for another full term. A lease already lost
/// is logged; the version fence still decides whether the result is stored.
async fn extend_lease(app: &AppState, id: uuid::Uuid) -> Result<(), LifecycleError> {
    let mut conn = app.pool.acquire().await?;
    let held = db::refresh::extend_lease(
        &mut conn,
        id,
        &app.instance_id,
        app.settings.refresher.lease_secs,
    )
    .await?;
    if !held {
        tracing::warn!(connection = %id, "refresh lease ran out or changed hands before a post-step");
    }
    Ok(())
}

async fn release(app: &AppState, id: uuid::Uuid) -> Result<(), LifecycleError> {
    let mut conn = app.pool.acquire().await?;
    db::refresh::release_lease(&mut conn, id, &app.instance_id).await?;
    Ok(())
}

/// The alarm (and provider-level backoff) for client credentials the provider refused.
pub(crate) const INVALID_CLIENT: &str = "invalid_client";
/// How long a provider that refused our client credentials is left alone.
const INVALID_CLIENT_BACKOFF_SECS: i64 = 600;
/// The longest backoff a provider's `Retry-After` can ask for.
const MAX_BACKOFF_SECS: u64 = 24 * 3600;

/// Identifies the client credentials a provider-level backoff applies to, so corrected
/// credentials end it at once. Only a digest of the (provider-issued, random) secret.
pub(crate) fn client_fingerprint(provider: &Provider) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in [
        "keyhaven client credentials",
        provider.id.as_str(),
        provider.client_id.as_str(),
        provider.client_secret.expose_secret(),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize()[..16].to_vec()
}

/// Refreshes a connection whose lease this instance holds.
pub async fn refresh_claimed(app: &AppState, row: GrantRow) -> Result<Credential, LifecycleError> {
    let Some(provider) = app.settings.provider(&row.provider) else {
        release(app, row.id).await?;
        return Err(LifecycleError::ProviderMisconfigured);
    };
    let fingerprint = client_fingerprint(provider);
    let held_back = {
        let mut conn = app.pool.acquire().await?;
        db::refresh::provider_backoff(&mut conn, &provider.id, INVALID_CLIENT, &fingerprint).await?
    };
    if held_back.is_some() {
        // The provider refused these client credentials moments ago: not called again
        // until the backoff ends or the credentials are corrected.
        release(app, row.id).await?;
        return Err(LifecycleError::ProviderMisconfigured);
    }
    let ctx = Context::from_json(&row.metadata);
    let refresh_token = match &row.refresh_token {
        Some(sealed) => match app
            .settings
            .keys
            .open_string(sealed, sealed_at(&row.id, "refresh_token"))
        {
            Ok(token) => token,
            Err(e) => return Err(broken(app, &row, &e.to_string()).await),
        },
        None => {
            return dead_grant(
                app,
                &row,
                provider,
                FailureCode::NoRefreshToken,
                "the provider gave no refresh token",
            )
            .await;
        }
    };
    let request = || {
        token::request(
            &app.http,
            provider,
            &ctx,
            Grant::Refresh {
                refresh_token: &refresh_token,
            },
            app.clock.now(),
        )
    };
    let mut result = request().await;
    if matches!(result, Err(TokenError::Timeout)) {
        // The answer may have been lost after the provider rotated the grant: one retry
        // with the same token tells (invalid_grant then means the grant is gone).
        tracing::warn!(provider = %provider.id, "refresh timed out; retrying once with the same token");
        result = match request().await {
            Err(TokenError::InvalidGrant(_)) => {
                Err(TokenError::InvalidGrant("lost response".into()))
            }
            other => other,
        };
    }
    match result {
        Ok(tokens) => store(app, provider, &row, ctx, tokens).await,
        Err(TokenError::InvalidGrant(code)) => {
            dead_grant(
                app,
                &row,
                provider,
                FailureCode::InvalidGrant,
                &format!("refresh refused (invalid_grant: {code})"),
            )
            .await
        }
        Err(TokenError::InvalidClient) => {
            tracing::error!(provider = %provider.id, alarm = true, backoff_secs = INVALID_CLIENT_BACKOFF_SECS, "provider rejected Keyhaven's client credentials");
            let mut conn = app.pool.acquire().await?;
            db::refresh::record_alarm_with_backoff(
                &mut conn,
                &provider.id,
                INVALID_CLIENT,
                "the provider rejected the client credentials",
                &fingerprint,
                INVALID_CLIENT_BACKOFF_SECS,
                app.clock.now(),
            )
            .await?;
            db::refresh::release_lease(&mut conn, row.id, &app.instance_id).await?;
            Err(LifecycleError::ProviderMisconfigured)
        }
        Err(e) => degraded(app, &row, provider, e).await,
    }
}

/// Commits the new grant first, then runs post-steps (Bullhorn's REST login).
async fn store(
    app: &AppState,
    provider: &Provider,
    row: &GrantRow,
    ctx: Context,
    tokens: TokenSet,
) -> Result<Credential, LifecycleError> {
    let now = app.clock.now();
    let keys = &app.settings.keys;
    let seal = |column: &'static str, value: &SecretString| {
        keys.seal(value.expose_secret().as_bytes(), sealed_at(&row.id, column))
    };
    let access = seal("access_token", &tokens.access_token)?;
    let refresh = tokens
        .refresh_token
        .as_ref()
        .map(|r| seal("refresh_token", r))
        .transpose()?;
    let refresh_expires_at = match (&refresh, provider.refresh_token_lifetime) {
        (Some(_), Some(life)) => Some(now + life),
        _ => row.refresh_expires_at,
    };
    // A REST-session credential (Bullhorn) is made next; until then it counts as stale.
    let needs_session = provider.needs_rest_session();
    let access_expires_at = if needs_session {
        Some(now)
    } else {
        tokens.expires_at
    };
    let next_refresh_at = provider.next_refresh_at(
        refresh.is_some() || row.refresh_token.is_some(),
        tokens.expires_at,
        refresh_expires_at,
    );
    let refreshed = Refreshed {
        id: row.id,
        expected_version: row.version,
        access_token: &access,
        refresh_token: refresh.as_deref(),
        provider_session: row.provider_session.as_deref(),
        metadata: ctx.to_json(),
        access_expires_at,
        refresh_expires_at,
        next_refresh_at,
        event: EventKind::Refreshed,
        actor: &Actor::Keyhaven,
        release_lease: !needs_session,
        owner: &app.instance_id,
        now,
    };
    let stored = store_durably(app, refreshed).await?;
    let Some(stored) = stored else {
        // Replaced meanwhile (a reconnect): its tokens win.
        tracing::info!(provider = %provider.id, connection = %row.id, "refresh result discarded: the connection was replaced meanwhile");
        release(app, row.id).await?;
        let current = load(app, row.id).await?;
        usable(&current)?;
        return build(app, &current).await;
    };
    if !stored.held_lease {
        // The version still matched, so nobody else stored a grant: keep this one.
        tracing::warn!(provider = %provider.id, connection = %row.id, "refresh stored after this instance's lease ran out or changed hands");
    }
    let version = stored.version;
    tracing::info!(provider = %provider.id, "connection refreshed");
    if needs_session {
        // The REST login may take up to a client timeout: keep the lease alive for it.
        extend_lease(app, row.id).await?;
        let (ctx, session) = match establish::after_refresh(&app.http, provider, ctx, &tokens).await
        {
            Ok((ctx, Some(session))) => (ctx, session),
            Ok((_, None)) => {
                release(app, row.id).await?;
                return Err(LifecycleError::ProviderUnavailable(
                    TokenError::Malformed("no REST session"),
                    None,
                ));
            }
            Err(e) => {
                let current = load(app, row.id).await?;
                return degraded(app, &current, provider, e).await;
            }
        };
        let sealed = seal("provider_session", &session.token)?;
        let mut conn = app.pool.acquire().await?;
        db::refresh::store_session(
            &mut conn,
            row.id,
            version,
            &sealed,
            ctx.to_json(),
            session.expires_at,
            app.clock.now(),
        )
        .await?;
    }
    let current = load(app, row.id).await?;
    build(app, &current).await
}

/// The provider has already rotated the grant, so the new tokens exist only in memory:
/// a database that is briefly away (restart, failover) is retried for a few seconds
/// before giving up with a 503.
async fn store_durably(
    app: &AppState,
    refreshed: Refreshed<'_>,
) -> Result<Option<db::refresh::StoredRefresh>, LifecycleError> {
    let mut attempt = 0;
    loop {
        let result = match app.pool.acquire().await {
            Ok(mut conn) => db::refresh::store_refreshed(&mut conn, refreshed.clone()).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(version) => return Ok(version),
            Err(e) if attempt < DB_RETRIES && crate::error::is_unavailable(&e) => {
                // The retry must not get the same broken connection back.
                app.pool.note_failure(&e);
                attempt += 1;
                tracing::warn!(error = %e, attempt, "database unavailable while storing a refreshed grant; retrying");
                tokio::time::sleep(StdDuration::from_millis(500)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "a refreshed grant could not be stored");
                return Err(e.into());
            }
        }
    }
}

const DB_RETRIES: u32 = 8;

/// `invalid_grant`: re-read; if nothing replaced the grant it is dead. Bullhorn API-user
/// connections that kept their credentials start over from the headless login first.
async fn dead_grant(
    app: &AppState,
    row: &GrantRow,
    provider: &Provider,
    code: FailureCode,
    reason: &str,
) -> Result<Credential, LifecycleError> {
    let current = load(app, row.id).await?;
    if current.version != row.version {
        release(app, row.id).await?;
        usable(&current)?;
        return build(app, &current).await;
    }
    // Stored sign-in credentials (Bullhorn API users who opted in) allow starting over.
    if let Some(sealed) = &row.provider_credentials {
        // Recovery is several provider calls: keep the lease alive for them.
        extend_lease(app, row.id).await?;
        match recover_with_credentials(app, provider, row, sealed).await {
            Ok(credential) => return Ok(credential),
            Err(e) => {
                tracing::warn!(provider = %provider.id, error = %e, "automatic recovery failed")
            }
        }
    }
    tracing::warn!(provider = %provider.id, reason, "grant is dead; the user must reconnect");
    let mut conn = app.pool.acquire().await?;
    db::refresh::mark_needs_reconnect(
        &mut conn,
        row.id,
        row.version,
        code,
        reason,
        app.clock.now(),
    )
    .await?;
    Err(LifecycleError::NeedsReconnect)
}

/// The seed's "Important Notice": start over from step 1 with the stored credentials.
async fn recover_with_credentials(
    app: &AppState,
    provider: &Provider,
    row: &GrantRow,
    sealed: &[u8],
) -> Result<Credential, LifecycleError> {
    let opened = app
        .settings
        .keys
        .open_string(sealed, sealed_at(&row.id, "provider_credentials"))?;
    let stored: StoredCredentials =
        serde_json::from_str(&opened).map_err(crate::error::AppError::internal)?;
    let password = SecretString::from(stored.password);
    let ctx = bullhorn::login_info(&app.http, provider, &stored.username)
        .await
        .map_err(|e| {
            crate::alarms::note(app, &provider.id, &e);
            LifecycleError::ProviderUnavailable(e, None)
        })?;
    let (tokens, established) =
        api_user::authorize(app, provider, ctx, &stored.username, &password).await?;
    if row.account_id.is_some() && row.account_id != established.account.id {
        return Err(LifecycleError::NeedsReconnect);
    }
    let credentials = SecretString::from(opened);
    grants::store(
        app,
        NewConnection {
            provider,
            end_user_id: row.end_user_id,
            existing_id: Some(row.id),
            tokens: &tokens,
            established: &established,
            credentials: Some(&credentials),
            actor: &Actor::Keyhaven,
        },
    )
    .await?;
    let mut conn = app.pool.acquire().await?;
    db::events::record(
        &mut conn,
        row.id,
        EventKind::Recovered,
        Some("grant re-established with the stored API user"),
        &Actor::Keyhaven,
        app.clock.now(),
    )
    .await?;
    tracing::info!(provider = %provider.id, "grant recovered automatically");
    let current = load(app, row.id).await?;
    build(app, &current).await
}

/// A failure that may pass: keep the token, back off (capped, with jitter, honouring
/// `Retry-After`), and still hand out the current credential while it is valid.
async fn degraded(
    app: &AppState,
    row: &GrantRow,
    provider: &Provider,
    e: TokenError,
) -> Result<Credential, LifecycleError> {
    crate::alarms::note(app, &provider.id, &e);
    let retry_after = match &e {
        TokenError::Throttled { retry_after } => *retry_after,
        _ => None,
    };
    let failures = row.refresh_failures.clamp(0, 16) as u32;
    let backoff = (30u64 << failures).min(3600);
    let jitter = rand::rng().random_range(0..=backoff / 5);
    let wait = (backoff + jitter)
        .max(retry_after.map_or(0, |d| d.as_secs()))
        .min(MAX_BACKOFF_SECS);
    let now = app.clock.now();
    tracing::warn!(provider = %provider.id, error = %e, backoff_secs = wait, "refresh failed; will retry");
    {
        let mut conn = app.pool.acquire().await?;
        let reason = format!("{}: {e}", e.code());
        db::refresh::mark_degraded(
            &mut conn,
            row.id,
            &app.instance_id,
            e.failure_code(),
            &reason,
            wait as i64,
            now,
        )
        .await?;
    }
    let still_valid = row.access_expires_at.is_none_or(|at| at > now);
    if still_valid && row.access_token.is_some() {
        return build(app, row).await;
    }
    Err(LifecycleError::ProviderUnavailable(e, retry_after))
}

/// A sealed value that does not open: the connection is broken, and an alarm is logged.
pub(crate) async fn broken(app: &AppState, row: &GrantRow, detail: &str) -> LifecycleError {
    tracing::error!(provider = %row.provider, alarm = true, error = detail, "stored credentials could not be decrypted");
    let result = async {
        let mut conn = app.pool.acquire().await?;
        db::refresh::mark_needs_reconnect(
            &mut conn,
            row.id,
            row.version,
            FailureCode::CredentialsUnreadable,
            "stored credentials could not be decrypted",
            app.clock.now(),
        )
        .await?;
        db::refresh::release_lease(&mut conn, row.id, &app.instance_id).await
    }
    .await;
    match result {
        Ok(()) => LifecycleError::NeedsReconnect,
        Err(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use crate::model::FailureCode;
    use crate::oauth::token::TokenError;

    #[test]
    fn failures_are_stable_codes() {
        let code = |e: TokenError| e.failure_code().as_str();
        assert_eq!(
            code(TokenError::InvalidGrant("lost response".into())),
            "invalid_grant"
        );
        assert_eq!(
            code(TokenError::Throttled { retry_after: None }),
            "throttled"
        );
        assert_eq!(code(TokenError::Unavailable(503)), "provider_unavailable");
        assert_eq!(code(TokenError::Timeout), "timeout");
        assert_eq!(code(TokenError::Unreachable), "unreachable");
        assert_eq!(
            code(TokenError::Malformed("no access token")),
            "malformed_response"
        );
        assert_eq!(code(TokenError::BackingOff), "backing_off");
        // Whatever the provider wrote, its words never pick the code.
        assert_eq!(
            code(TokenError::Rejected("invalid_grant <b>odd</b>".into())),
            "rejected"
        );
        assert_eq!(
            code(TokenError::HostRefused("timeout.example".into())),
            "provider_error"
        );
        assert_eq!(
            FailureCode::CredentialsUnreadable.as_str(),
            "credentials_unreadable"
        );
        assert_eq!(FailureCode::NoRefreshToken.as_str(), "no_refresh_token");
    }
}
