//! Reconnect links: random, stored hashed, single use, bound to one connection.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::AppState;
use crate::crypto;
use crate::db;
use crate::error::{AppError, AppResult};

/// Creates a reconnect link for the connection; returns its URL and expiry.
pub async fn issue_link(
    app: &AppState,
    connection_id: Uuid,
) -> AppResult<(String, OffsetDateTime)> {
    let mut conn = app.pool.acquire().await?;
    let end_user_id = db::connections::end_user_of(&mut conn, connection_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let token = crypto::random_token()?;
    let expires_at = app.clock.now() + Duration::days(app.settings.links.reconnect_link_days);
    db::links::create(
        &mut conn,
        &crypto::token_hash(&token),
        "reconnect",
        end_user_id,
        Some(connection_id),
        expires_at,
    )
    .await?;
    Ok((
        format!("{}/c/{token}", app.settings.public_base()),
        expires_at,
    ))
}
