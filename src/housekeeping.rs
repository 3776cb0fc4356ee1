//! Retention: links are deleted a week after they expired or were used, connection
//! events after `housekeeping.event_retention_days`, API-user sign-in attempts once
//! they no longer count. Run every minute by each instance (the deletes are idempotent).

use time::Duration;

use crate::db;
use crate::state::AppState;

/// How long a spent (expired or used) link is kept, for support questions.
pub const SPENT_LINKS_KEPT: Duration = Duration::days(7);
/// Rows deleted per statement, so one sweep never holds long locks or a long transaction
/// (the first sweep after an upgrade may find years of history).
const BATCH: i64 = 5_000;
/// At most this many batches per table and sweep; the next sweep continues.
const BATCHES: usize = 20;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub links: u64,
    pub events: u64,
    pub sign_in_attempts: u64,
}

pub async fn sweep(app: &AppState) -> sqlx::Result<Swept> {
    let now = app.clock.now();
    let mut conn = app.pool.acquire().await?;
    let mut links = 0;
    for _ in 0..BATCHES {
        let n = db::links::delete_spent(&mut conn, now - SPENT_LINKS_KEPT, BATCH).await?;
        links += n;
        if n < BATCH as u64 {
            break;
        }
    }
    let before = now - Duration::days(app.settings.housekeeping.event_retention_days);
    let mut events = 0;
    for _ in 0..BATCHES {
        let n = db::events::delete_before(&mut conn, before, BATCH).await?;
        events += n;
        if n < BATCH as u64 {
            break;
        }
    }
    let sign_in_attempts = db::api_user_attempts::delete_before(
        &mut conn,
        now - crate::connecting::api_user::ATTEMPT_WINDOW,
    )
    .await?;
    Ok(Swept {
        links,
        events,
        sign_in_attempts,
    })
}
