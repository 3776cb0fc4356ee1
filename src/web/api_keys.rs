//! API keys: issuing (shown once), listing, revoking, and checking a presented key.
//!
//! A check remembers a valid key for less than a second (`state::api_key_cache`).
//! `last_used_at` is written at most about once a minute per key.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::crypto;
use crate::db;
use crate::db::api_keys::KeyRow;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Characters of a key kept readable to tell keys apart (`khk_` + 8 random characters).
const PREFIX_CHARS: usize = 12;
const KEY_PREFIX: &str = "khk_";
/// `last_used_at` is refreshed when it is older than this.
const TOUCH_EVERY: time::Duration = time::Duration::minutes(1);

/// The id of a valid key (not revoked, not expired), else `Unauthorized`.
pub async fn authenticate(app: &AppState, presented: &str) -> AppResult<Uuid> {
    let hash = crypto::token_hash(presented);
    let now = app.clock.now();
    if let Some(key) = app.api_keys.get(&hash, now) {
        return match key.expires_at {
            Some(at) if at <= now => Err(AppError::Unauthorized),
            _ => Ok(key.id),
        };
    }
    let mut conn = app.pool.acquire().await?;
    let key = db::api_keys::verify(&mut conn, &hash, now)
        .await?
        .ok_or(AppError::Unauthorized)?;
    if key.last_used_at.is_none_or(|at| at < now - TOUCH_EVERY) {
        db::api_keys::touch(&mut conn, key.id, now).await?;
    }
    app.api_keys.insert(hash, key, now);
    Ok(key.id)
}

/// A new key: its id and the key itself (shown once, never stored).
pub struct Issued {
    pub id: Uuid,
    pub key: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Longest key name accepted.
pub const MAX_NAME_CHARS: usize = 100;

pub async fn issue(
    app: &AppState,
    name: &str,
    expires_at: Option<OffsetDateTime>,
) -> AppResult<Issued> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(AppError::BadRequest(format!(
            "A key's name must be 1 to {MAX_NAME_CHARS} characters."
        )));
    }
    if expires_at.is_some_and(|at| at <= app.clock.now()) {
        return Err(AppError::BadRequest(
            "A key's expiry must be in the future.".into(),
        ));
    }
    let key = format!("{KEY_PREFIX}{}", crypto::random_token()?);
    let prefix: String = key.chars().take(PREFIX_CHARS).collect();
    let mut conn = app.pool.acquire().await?;
    let id = db::api_keys::create(
        &mut conn,
        name,
        &crypto::token_hash(&key),
        &prefix,
        expires_at,
    )
    .await?;
    Ok(Issued { id, key })
}

pub async fn list(app: &AppState) -> AppResult<Vec<KeyRow>> {
    let mut conn = app.pool.acquire().await?;
    Ok(db::api_keys::list(&mut conn).await?)
}

/// Revokes a key; every instance refuses it within a second.
pub async fn revoke(app: &AppState, id: Uuid) -> AppResult<()> {
    let mut conn = app.pool.acquire().await?;
    if !db::api_keys::revoke(&mut conn, id, app.clock.now()).await? {
        return Err(AppError::NotFound);
    }
    app.api_keys.forget_all();
    Ok(())
}

/// One line of `keyhaven api-key list`: id, name, prefix, created, last used, expires,
/// revoked, tab-separated (`-` where there is nothing).
pub fn list_line(key: &KeyRow) -> String {
    let when = |at: Option<OffsetDateTime>| {
        at.and_then(|t| {
            t.to_offset(time::UtcOffset::UTC)
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
    };
    // Tabs and line breaks in a name would break the columns.
    let name: String = key
        .name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    [
        key.id.to_string(),
        name,
        key.prefix.clone().unwrap_or_else(|| "-".into()),
        when(Some(key.created_at)),
        when(key.last_used_at),
        when(key.expires_at),
        when(key.revoked_at),
    ]
    .join("\t")
}
