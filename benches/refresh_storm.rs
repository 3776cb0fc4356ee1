//! Refresh storm: 10,000 SmartRecruiters connections come due at once, the sandbox takes
//! 100 ms per refresh, and the background refresher drains them with concurrency C.
//! Prints time to drain, refreshes/s against the ideal C / 0.1 s, duplicate refreshes
//! (a refresh token presented twice), lost refresh tokens (a second full round must
//! succeed everywhere) and this process's RSS.
//!
//! Run: `cargo bench --bench refresh_storm` (BENCH_CONNECTIONS, default 10000;
//! BENCH_CONCURRENCY, default "64,256").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use keyhaven::lifecycle::refresher;
use keyhaven_sandbox::{Fault, FaultEffect, FaultTarget};

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let levels: Vec<usize> = std::env::var("BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "64,256".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    for c in levels {
        storm(n, c).await;
    }
}

async fn storm(n: usize, concurrency: usize) {
    let portal = support::start(|s| {
        s.refresher.concurrency = concurrency;
        s.refresher.batch = 500;
        s.database.max_connections = 16;
    })
    .await;
    let seeded = Instant::now();
    let ids = support::connect_many(&portal, "smartrecruiters", n, 64).await;
    println!(
        "refresh_storm C={concurrency}: {} connections seeded through real flows in {:.1} s",
        ids.len(),
        seeded.elapsed().as_secs_f64()
    );
    for round in 1..=2 {
        // Everything comes due at once (the refresh tokens would lapse in under two days).
        portal
            .clock
            .advance(time::Duration::days(26) + time::Duration::hours(1));
        portal.sandbox.add_fault(Fault {
            provider: "smartrecruiters".into(),
            target: FaultTarget::Refresh,
            effect: FaultEffect::Latency { ms: 100 },
            times: n as u32,
        });
        let before = portal.sandbox.counter("smartrecruiters.refreshed");
        let started = Instant::now();
        let drained = refresher::drain(&portal.state).await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        let refreshed = portal.sandbox.counter("smartrecruiters.refreshed") - before;
        let ideal = concurrency as f64 / 0.1;
        let rate = refreshed as f64 / secs;
        let not_active: i64 =
            sqlx::query_scalar("SELECT count(*) FROM connections WHERE status <> 'active'")
                .fetch_one(&mut *portal.state.pool.acquire().await.unwrap())
                .await
                .unwrap();
        println!(
            "  round {round}: claimed {drained}, refreshed {refreshed} in {secs:.1} s = {rate:.0}/s  (ideal C/0.1 s = {ideal:.0}/s, {:.0}% of it; target ≥ 80%)  duplicates: {} stale-token uses: {}  not active: {not_active}  {}",
            100.0 * rate / ideal,
            portal.sandbox.max_refresh_token_uses().saturating_sub(1),
            portal.sandbox.dead_refresh_token_uses(),
            support::rss(),
        );
    }
}
