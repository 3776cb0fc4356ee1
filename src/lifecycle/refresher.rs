//! The background refresher: claims due connections with `FOR UPDATE SKIP LOCKED` (any
//! number of instances can run it), refreshes them with bounded concurrency overall and
//! per provider, and keeps single-use or expiring refresh tokens alive before they lapse.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::LifecycleError;
use super::refresh::{INVALID_CLIENT, client_fingerprint, refresh_claimed};
use crate::db;
use crate::state::AppState;
use crate::telemetry::metrics;

/// Runs until the drain starts; the refreshes it started are left to the drain (they
/// are tracked as detached work), never aborted.
pub async fn run(app: AppState) {
    let interval = StdDuration::from_secs(app.settings.refresher.interval_secs);
    let limits = Limits::new(&app);
    let mut running = JoinSet::new();
    let stopped = app.custody.stopped();
    tokio::pin!(stopped);
    loop {
        // Jitter spreads instances that started together.
        let jitter = rand::rng().random_range(0..=interval.as_millis() as u64 / 10);
        tokio::select! {
            () = &mut stopped => break,
            () = tokio::time::sleep(interval + StdDuration::from_millis(jitter)) => {}
        }
        if let Err(e) = run_once(&app, &limits, &mut running).await {
            tracing::warn!(error = %e, "background refresh round failed");
        }
    }
    running.detach_all();
}

/// Concurrency limits: one overall, one per provider that sets its own.
pub struct Limits {
    overall: Arc<Semaphore>,
    per_provider: HashMap<String, Arc<Semaphore>>,
}

impl Limits {
    pub fn new(app: &AppState) -> Self {
        let per_provider = app
            .settings
            .providers
            .iter()
            .filter_map(|p| {
                p.refresh_concurrency
                    .map(|n| (p.id.clone(), Arc::new(Semaphore::new(n))))
            })
            .collect();
        Self {
            overall: Arc::new(Semaphore::new(app.settings.refresher.concurrency)),
            per_provider,
        }
    }
}

/// One round: claim what is due (as much as there is room for) and start refreshing it.
/// Returns how many connections were claimed. Up to a quarter more connections than
/// may refresh at once are claimed, so a finished refresh is followed at once by the
/// next; claims wait until that quarter is free because each claim walks the due index,
/// and many small claims would cost more than the refreshes.
pub async fn run_once(
    app: &AppState,
    limits: &Limits,
    running: &mut JoinSet<()>,
) -> anyhow::Result<usize> {
    let providers: Vec<String> = app
        .settings
        .providers
        .iter()
        .filter(|p| p.keep_alive)
        .map(|p| p.id.clone())
        .collect();
    if providers.is_empty() {
        return Ok(0);
    }
    while running.try_join_next().is_some() {}
    let concurrency = app.settings.refresher.concurrency;
    let headroom = (concurrency / 4).max(1);
    let room = (concurrency + headroom).saturating_sub(running.len());
    if !running.is_empty() && room < headroom {
        return Ok(0);
    }
    let limit = app.settings.refresher.batch.min(room.max(1) as i64);
    let now = app.clock.now();
    let claimed = {
        let mut conn = app.pool.acquire().await?;
        // Providers that refused our client credentials are left alone until their
        // backoff ends (or the credentials change).
        let held_back = db::refresh::providers_backing_off(&mut conn, INVALID_CLIENT).await?;
        let providers: Vec<String> = providers
            .into_iter()
            .filter(|id| {
                !held_back.iter().any(|(p, fingerprint)| {
                    p == id
                        && app
                            .settings
                            .provider(id)
                            .is_some_and(|provider| client_fingerprint(provider) == *fingerprint)
                })
            })
            .collect();
        if providers.is_empty() {
            return Ok(0);
        }
        db::refresh::claim_due(
            &mut conn,
            &app.instance_id,
            &providers,
            now,
            app.settings.refresher.lease_secs,
            limit,
        )
        .await?
    };
    let count = claimed.len();
    for row in claimed {
        let overall = limits.overall.clone();
        let provider_limit = limits.per_provider.get(&row.provider).cloned();
        let app = app.clone();
        let label = format!("refresh of connection {}", row.id);
        let custody = app.custody.clone();
        running.spawn(custody.track(label, async move {
            let Ok(_overall) = overall.acquire_owned().await else {
                return;
            };
            let _provider = match provider_limit {
                Some(limit) => limit.acquire_owned().await.ok(),
                None => None,
            };
            let _in_flight = metrics::InFlight::start("background_refresh");
            let result = refresh_claimed(&app, row).await;
            metrics::refresh(
                metrics::Trigger::Background,
                result
                    .as_ref()
                    .map_or_else(LifecycleError::outcome, |_| "ok"),
            );
            if let Err(e) = result {
                tracing::info!(error = %e, "background refresh did not succeed");
            }
        }));
    }
    Ok(count)
}

/// Refreshes everything due now and waits for it (tests and benchmarks).
pub async fn drain(app: &AppState) -> anyhow::Result<usize> {
    let limits = Limits::new(app);
    let mut running = JoinSet::new();
    let mut total = 0;
    loop {
        let claimed = run_once(app, &limits, &mut running).await?;
        total += claimed;
        if claimed == 0 && running.is_empty() {
            return Ok(total);
        }
        if claimed == 0 {
            running.join_next().await;
        }
    }
}
