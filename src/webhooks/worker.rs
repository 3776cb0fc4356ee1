//! The delivery worker that runs in every `serve`: claims due deliveries (a lease per
//! delivery, at most `max_in_flight_per_endpoint` out at once per endpoint across all
//! instances), sends each signed with the wall clock at that attempt, and records the
//! outcome: delivered on 2xx; retried with exponential backoff and jitter on timeouts,
//! connection failures, 5xx and 429 (honouring `Retry-After`) until `retry_hours` have
//! passed; failed at once on anything else (a redirect is never followed). It wakes on
//! the outbox's notification, when an attempt ends, or when the next retry is due, and
//! stops claiming when the drain starts.

use crate::telemetry::metrics;
use std::time::Duration;

use rand::Rng;
use secrecy::SecretString;
use sqlx::postgres::PgListener;
use tokio::task::JoinSet;

use super::{sealed_at, signature_header};
use crate::db::webhooks::{self as store, Claimed};
use crate::model::ConnectionStatus;
use crate::outbound::webhook_guard as guard;
use crate::state::AppState;

/// Longest sleep between looks when nothing is due (also catches expired leases).
const IDLE_LOOK: Duration = Duration::from_secs(5);
/// Sleep when deliveries are due but every endpoint is at its in-flight limit.
const BUSY_LOOK: Duration = Duration::from_millis(250);
/// Longest backoff between two attempts, and longest `Retry-After` honoured.
const MAX_DELAY_MS: u64 = 3_600_000;
const MAX_RETRY_AFTER_MS: u64 = 24 * 3_600_000;
/// Outbox and delivery log are kept this long.
pub const RETENTION_DAYS: i64 = 30;

/// Opens the connection that hears about new events (only once an endpoint exists, so an
/// instance without webhooks holds no extra database connection).
async fn listen(app: &AppState) -> Option<PgListener> {
    use secrecy::ExposeSecret;
    let listener = async {
        let mut listener = PgListener::connect(app.settings.database.url.expose_secret()).await?;
        listener.listen(store::CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    }
    .await;
    match listener {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::warn!(error = %e, "webhooks: cannot listen for new events; polling");
            None
        }
    }
}

pub async fn run(app: AppState) {
    let stop = app.custody.stopped();
    tokio::pin!(stop);
    let mut listener: Option<PgListener> = None;
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut last_purge: Option<tokio::time::Instant> = None;
    loop {
        if app.custody.draining() {
            break;
        }
        let (endpoints, claimed) = claim_and_spawn(&app, &mut tasks).await;
        if endpoints > 0 && listener.is_none() {
            listener = listen(&app).await;
        }
        if last_purge.is_none_or(|at| at.elapsed() > Duration::from_secs(3600)) {
            purge(&app).await;
            last_purge = Some(tokio::time::Instant::now());
        }
        let mut wait = next_look(&app).await;
        if claimed == 0 && wait < BUSY_LOOK {
            // Due deliveries but no room (endpoints at their in-flight limit, here or on
            // another instance): an attempt ending here wakes the loop sooner.
            wait = BUSY_LOOK;
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(wait) => {}
            () = app.webhooks.woken() => {}
            notified = recv(&mut listener) => {
                if notified {
                    // Many commits, one look.
                    if let Some(l) = listener.as_mut() {
                        while l.next_buffered().is_some() {}
                    }
                } else {
                    listener = None;
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    // Attempts under way finish within the drain deadline (each is bounded by its
    // timeout); whatever is cut off keeps its lease and is retried once the lease ends.
    let deadline = app.settings.drain_deadline();
    if tokio::time::timeout(deadline, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!(
            cut_off = tasks.len(),
            "webhooks: deliveries cut off at the drain deadline; they will be retried"
        );
        tasks.abort_all();
    }
}

async fn recv(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(l) => match l.recv().await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: listening failed; polling");
                false
            }
        },
        None => std::future::pending().await,
    }
}

/// Claims what has room and starts it; returns how many endpoints there are and how
/// many deliveries were claimed.
async fn claim_and_spawn(app: &AppState, tasks: &mut JoinSet<()>) -> (usize, usize) {
    let w = &app.settings.webhooks;
    // A lease outlives the attempt's timeout and the recording of its outcome.
    let lease_secs = (w.timeout_ms / 1000) as i64 + 30;
    let claimed = async {
        let mut conn = app.pool.acquire().await?;
        store::claim(
            &mut conn,
            &app.instance_id,
            w.max_in_flight_per_endpoint,
            lease_secs,
        )
        .await
    }
    .await;
    match claimed {
        Ok((endpoints, list)) => {
            let n = list.len();
            for delivery in list {
                tasks.spawn(deliver(app.clone(), delivery));
            }
            (endpoints, n)
        }
        Err(e) => {
            tracing::warn!(error = %e, "webhooks: claiming deliveries failed");
            (0, 0)
        }
    }
}

async fn next_look(app: &AppState) -> Duration {
    let due = async {
        let mut conn = app.pool.acquire().await?;
        store::next_due_in(&mut conn).await
    }
    .await;
    match due {
        Ok(Some(secs)) if secs <= 0.0 => Duration::from_millis(5),
        Ok(Some(secs)) => Duration::from_secs_f64(secs).min(IDLE_LOOK),
        _ => IDLE_LOOK,
    }
}

async fn purge(app: &AppState) {
    let result = async {
        let mut conn = app.pool.acquire().await?;
        store::purge(&mut conn, RETENTION_DAYS).await
    }
    .await;
    match result {
        Ok(0) => {}
        Ok(n) => tracing::info!(events = n, "webhooks: old events removed"),
        Err(e) => tracing::warn!(error = %e, "webhooks: removing old events failed"),
    }
}

/// What one attempt came to.
#[derive(Debug)]
enum Outcome {
    Delivered(u16),
    /// May pass: try again (after at least `retry_after`, when the receiver said so).
    Retry {
        code: Option<u16>,
        error: &'static str,
        retry_after: Option<Duration>,
    },
    /// Retrying will not change it.
    Failed {
        code: Option<u16>,
        error: &'static str,
    },
}

async fn deliver(app: AppState, delivery: Claimed) {
    let outcome = attempt(&app, &delivery).await;
    let w = &app.settings.webhooks;
    let recorded = async {
        let mut conn = app.pool.acquire().await?;
        match &outcome {
            Outcome::Delivered(code) => {
                metrics::webhook_delivery("delivered");
                store::mark_delivered(&mut conn, delivery.id, i32::from(*code)).await
            }
            Outcome::Retry {
                code,
                error,
                retry_after,
            } => {
                let delay = backoff_ms(w.retry_base_ms, delivery.attempts, *retry_after);
                let status = store::mark_retry(
                    &mut conn,
                    delivery.id,
                    &app.instance_id,
                    code.map(i32::from),
                    error,
                    delay as i64,
                    w.retry_hours * 3600,
                )
                .await?;
                let gave_up = status.as_deref() == Some("failed");
                metrics::webhook_delivery(if gave_up { "gave_up" } else { "retried" });
                if gave_up {
                    tracing::warn!(delivery = delivery.id, endpoint = %delivery.endpoint_id, "webhook delivery failed: retry window over");
                }
                Ok(())
            }
            Outcome::Failed { code, error } => {
                metrics::webhook_delivery("failed");
                store::mark_failed(&mut conn, delivery.id, code.map(i32::from), error).await
            }
        }
    }
    .await;
    if let Err(e) = recorded {
        // The lease runs out and the delivery is tried again: at least once, not exactly once.
        tracing::warn!(delivery = delivery.id, error = %e, "webhooks: recording an attempt failed");
    }
    tracing::debug!(delivery = delivery.id, endpoint = %delivery.endpoint_id, event = %delivery.event_type, attempt = delivery.attempts, ?outcome, "webhook attempt");
    app.webhooks.attempt_finished();
}

/// Exponential backoff from `base_ms`, doubling per attempt up to an hour, with jitter
/// (between half and all of it); at least the receiver's `Retry-After`.
pub(crate) fn backoff_ms(base_ms: u64, attempts: i32, retry_after: Option<Duration>) -> u64 {
    let exp = attempts.clamp(1, 30) as u32 - 1;
    let full = base_ms
        .saturating_mul(1u64 << exp.min(20))
        .min(MAX_DELAY_MS);
    let jittered = full / 2 + rand::rng().random_range(0..=full / 2);
    let asked = retry_after.map_or(0, |d| (d.as_millis() as u64).min(MAX_RETRY_AFTER_MS));
    jittered.max(asked)
}

async fn attempt(app: &AppState, d: &Claimed) -> Outcome {
    let insecure = app.settings.webhooks.allow_insecure_urls;
    let url = match guard::check_url(&d.url, insecure) {
        Ok(url) => url,
        Err(guard::Refused::Address) => {
            return Outcome::Retry {
                code: None,
                error: "address_refused",
                retry_after: None,
            };
        }
        Err(_) => {
            return Outcome::Failed {
                code: None,
                error: "url_refused",
            };
        }
    };
    let body = match body(app, d).await {
        Ok(body) => body,
        Err(error) => {
            return Outcome::Retry {
                code: None,
                error,
                retry_after: None,
            };
        }
    };
    let keys = &app.settings.keys;
    let mut secrets = Vec::with_capacity(2);
    match keys.open_string(&d.secret_sealed, sealed_at(&d.endpoint_id, "secret_sealed")) {
        Ok(s) => secrets.push(SecretString::from(s)),
        Err(e) => {
            tracing::error!(endpoint = %d.endpoint_id, alarm = true, error = %e, "webhook secret could not be decrypted");
            return Outcome::Retry {
                code: None,
                error: "secret_unreadable",
                retry_after: None,
            };
        }
    }
    if let Some(previous) = &d.previous_secret_sealed
        && let Ok(s) = keys.open_string(
            previous,
            sealed_at(&d.endpoint_id, "previous_secret_sealed"),
        )
    {
        secrets.push(SecretString::from(s));
    }
    let id = format!("msg_{}", d.event_id.simple());
    // The wall clock at this attempt: receivers compare it with theirs.
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let signature = signature_header(&secrets, &id, timestamp, &body);
    let sent = app
        .webhooks
        .client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status();
            let code = status.as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            // The body is not needed; dropping the response closes or reuses the connection.
            drop(response);
            if status.is_success() {
                Outcome::Delivered(code)
            } else if code == 429 || status.is_server_error() || code == 408 {
                Outcome::Retry {
                    code: Some(code),
                    error: if code == 429 {
                        "throttled"
                    } else {
                        "server_error"
                    },
                    retry_after,
                }
            } else if status.is_redirection() {
                Outcome::Failed {
                    code: Some(code),
                    error: "redirect_not_followed",
                }
            } else {
                Outcome::Failed {
                    code: Some(code),
                    error: "rejected",
                }
            }
        }
        Err(e) if guard::is_refusal(&e) => Outcome::Retry {
            code: None,
            error: "address_refused",
            retry_after: None,
        },
        Err(e) if e.is_timeout() => Outcome::Retry {
            code: None,
            error: "timeout",
            retry_after: None,
        },
        Err(_) => Outcome::Retry {
            code: None,
            error: "connect_failed",
            retry_after: None,
        },
    }
}

/// The body: `{"type", "timestamp", "data"}`; a `needs_reconnect` event carries a
/// reconnect URL made now (the outbox stores none: no bearer token at rest in plaintext).
async fn body(app: &AppState, d: &Claimed) -> Result<Vec<u8>, &'static str> {
    let mut data = d.data.clone();
    if d.event_type == "connection.needs_reconnect" {
        let url = reconnect_url(app, d).await?;
        if let Some(map) = data.as_object_mut() {
            map.insert("reconnect_url".into(), url.into());
        }
    }
    let timestamp = d
        .occurred_at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|_| "timestamp_unformattable")?;
    serde_json::to_vec(&serde_json::json!({
        "type": d.event_type,
        "timestamp": timestamp,
        "data": data,
    }))
    .map_err(|_| "body_unserializable")
}

/// A live reconnect link while the connection still needs one; null once it is back.
async fn reconnect_url(app: &AppState, d: &Claimed) -> Result<Option<String>, &'static str> {
    let status = async {
        let mut conn = app.pool.acquire().await?;
        crate::db::connections::get(&mut conn, d.connection_id).await
    }
    .await
    .map_err(|_| "database_unavailable")?;
    match status {
        Some(c) if c.status == ConnectionStatus::NeedsReconnect => {
            crate::lifecycle::reconnect::issue_link(app, d.connection_id)
                .await
                .map(|(url, _)| Some(url))
                .map_err(|_| "reconnect_link_unavailable")
        }
        _ => Ok(None),
    }
}

/// `Retry-After` in seconds or as an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let left = at - time::OffsetDateTime::now_utc();
    Some(Duration::from_secs(left.whole_seconds().max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        for attempts in 1..=5 {
            let full = 1000u64 << (attempts - 1);
            let d = backoff_ms(1000, attempts, None);
            assert!(d >= full / 2 && d <= full, "attempt {attempts}: {d}");
        }
        assert!(backoff_ms(1000, 40, None) <= MAX_DELAY_MS);
        assert!(backoff_ms(10, 1, Some(Duration::from_secs(3))) >= 3000);
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
