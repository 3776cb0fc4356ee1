//! What happens after a token response and before storing: each provider's post-steps
//! (Bullhorn's REST login, who-am-I on the right host).

use secrecy::SecretString;
use time::OffsetDateTime;

use super::identity::{self, Account};
use super::token::{TokenError, TokenSet};
use super::{bullhorn, zoho};
use crate::providers::{Context, Provider, WhoAmI};

/// A provider session derived from the OAuth grant (Bullhorn's BhRestToken).
pub struct ProviderSession {
    pub token: SecretString,
    pub expires_at: Option<OffsetDateTime>,
}

/// A grant ready to be stored.
pub struct Established {
    pub account: Account,
    pub ctx: Context,
    pub session: Option<ProviderSession>,
}

/// Runs the post-steps of a fresh grant and identifies the upstream account.
pub async fn after_exchange(
    http: &reqwest::Client,
    provider: &Provider,
    ctx: Context,
    tokens: &TokenSet,
) -> Result<Established, TokenError> {
    let (ctx, session) = after_refresh(http, provider, ctx, tokens).await?;
    let account = match (provider.who_am_i(), &session) {
        (WhoAmI::RestSession, Some(s)) => {
            let rest = bullhorn::RestSession {
                bh_rest_token: s.token.clone(),
                rest_url: ctx.session_rest_url.clone().unwrap_or_default(),
                expires_at: s.expires_at,
            };
            bullhorn::identify(http, provider, &rest).await?
        }
        (WhoAmI::RecruitUser, _) => {
            zoho::identify(http, provider, &ctx, &tokens.access_token).await?
        }
        (WhoAmI::UserInfo(info), _) => {
            identity::identify(http, provider, info, &tokens.access_token).await?
        }
        (WhoAmI::RestSession | WhoAmI::Unnamed, _) => Account::default(),
    };
    Ok(Established {
        account,
        ctx,
        session,
    })
}

/// Post-steps after any token response (exchange or refresh): Bullhorn spends the
/// OAuth access token on REST login right away (it is short-lived and one-shot).
pub async fn after_refresh(
    http: &reqwest::Client,
    provider: &Provider,
    mut ctx: Context,
    tokens: &TokenSet,
) -> Result<(Context, Option<ProviderSession>), TokenError> {
    if !provider.needs_rest_session() {
        return Ok((ctx, None));
    }
    let session = bullhorn::rest_login(http, provider, &ctx, &tokens.access_token).await?;
    ctx.session_rest_url = Some(session.rest_url.clone());
    Ok((
        ctx,
        Some(ProviderSession {
            token: session.bh_rest_token,
            expires_at: session.expires_at,
        }),
    ))
}
