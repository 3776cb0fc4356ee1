//! Reconnect links: random, stored hashed, single use, bound to one connection. The raw
//! token is also kept sealed (AAD = the link's row), so asking again while a link is
//! live returns that same link instead of minting one per call.

use sqlx::Connection;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::crypto::{self, SealedAt};
use crate::db;
use crate::error::{AppError, AppResult};
use crate::model::LinkKind;
use crate::state::AppState;

/// Where a link's sealed token lives (the AAD binds it to that row).
pub fn sealed_at(token_hash: &[u8]) -> SealedAt<'_> {
    SealedAt {
        table: "links",
        column: "token_sealed",
        row: token_hash,
    }
}

/// A reconnect link for the connection (its URL and expiry): the live one when it still
/// has at least half its lifetime ahead, else a new one.
pub async fn issue_link(
    app: &AppState,
    connection_id: Uuid,
) -> AppResult<(String, OffsetDateTime)> {
    let now = app.clock.now();
    let lifetime = Duration::days(app.settings.links.reconnect_link_days);
    let keys = &app.settings.keys;
    let mut conn = app.pool.acquire().await?;
    let end_user_id = db::connections::end_user_of(&mut conn, connection_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut tx = conn.begin().await?;
    // Concurrent callers for one connection wait here, then find the link just made.
    db::links::lock_reconnect_issuing(&mut tx, connection_id).await?;
    if let Some(live) =
        db::links::live_reconnect(&mut tx, connection_id, now + lifetime / 2).await?
    {
        match keys.open_string(&live.token_sealed, sealed_at(&live.token_hash)) {
            Ok(token) if crypto::token_hash(&token) == live.token_hash => {
                tx.commit().await?;
                return Ok((link_url(app, &token), live.expires_at));
            }
            // Moved, tampered with, or its key removed: mint a new link instead.
            _ => {
                tracing::warn!(connection = %connection_id, "a stored reconnect link could not be opened")
            }
        }
    }
    let token = crypto::random_token()?;
    let token_hash = crypto::token_hash(&token);
    let sealed = keys.seal(token.as_bytes(), sealed_at(&token_hash))?;
    let expires_at = now + lifetime;
    db::links::create_sealed(
        &mut tx,
        &token_hash,
        Some(&sealed),
        LinkKind::Reconnect,
        end_user_id,
        Some(connection_id),
        expires_at,
    )
    .await?;
    tx.commit().await?;
    Ok((link_url(app, &token), expires_at))
}

fn link_url(app: &AppState, token: &str) -> String {
    format!("{}/c/{token}", app.settings.public_base())
}
