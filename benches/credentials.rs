//! The credential API for connections with valid tokens, 64 concurrent clients over real
//! HTTP: requests/s and p50/p99. In the same run, `pgbench -S -c 64` against the same
//! Postgres gives the natural limit (one indexed read per request); the target is half
//! of it. pgbench at its fastest (`-M prepared -j 2`) is printed too, for reference.
//!
//! Run: `cargo bench --bench credentials` (BENCH_SECONDS, default 10).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use support::{RawConnection, ms, percentile};

const CONCURRENCY: usize = 64;

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let portal = support::start(|_| {}).await;
    let ids = Arc::new(support::connect_many(&portal, "smartrecruiters", 1000, 32).await);
    let key = keyhaven::cli::create_api_key(&portal.state, "bench")
        .await
        .unwrap();
    let bearer = format!("Bearer {key}");
    println!(
        "credentials: {} connections with valid tokens, {CONCURRENCY} clients, {seconds} s",
        ids.len()
    );

    // Warm-up.
    let mut warm = RawConnection::open(&portal.url).await;
    for id in ids.iter().take(200) {
        let (status, _) = warm
            .get(&format!("/api/v1/connections/{id}/credentials"), &bearer)
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    let refreshes_before = portal
        .sandbox
        .counter("smartrecruiters.token.refresh_token");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (ids, bearer, url) = (ids.clone(), bearer.clone(), portal.url.clone());
        workers.push(tokio::spawn(async move {
            // Each client keeps one connection, as pgbench's clients do.
            let mut connection = RawConnection::open(&url).await;
            let mut times = Vec::new();
            let mut failures = 0u64;
            while Instant::now() < deadline {
                let id = ids[rand::rng().random_range(0..ids.len())];
                let path = format!("/api/v1/connections/{id}/credentials");
                let t = Instant::now();
                match connection.get(&path, &bearer).await {
                    Ok((200, len)) if len > 0 => times.push(t.elapsed()),
                    _ => failures += 1,
                }
            }
            (times, failures)
        }));
    }
    let mut times = Vec::new();
    let mut failures = 0;
    for w in workers {
        let (t, f) = w.await.unwrap();
        times.extend(t);
        failures += f;
    }
    let elapsed = started.elapsed();
    times.sort();
    let rps = times.len() as f64 / elapsed.as_secs_f64();
    println!(
        "keyhaven credentials: {rps:.0} req/s  failures={failures}  p50={} p99={}  refreshes during run={}  {}",
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
        portal
            .sandbox
            .counter("smartrecruiters.token.refresh_token")
            - refreshes_before,
        support::rss(),
    );

    // The comparison the target names, then pgbench at its fastest for reference.
    match pgbench(seconds, &[]) {
        Some(tps) => println!(
            "pgbench -S -c {CONCURRENCY}: {tps:.0} tps  →  keyhaven at {:.0}% (target ≥ 50%)",
            100.0 * rps / tps
        ),
        None => println!("pgbench not available: comparison skipped"),
    }
    if let Some(tps) = pgbench(seconds, &["-M", "prepared", "-j", "2"]) {
        println!(
            "pgbench -S -c {CONCURRENCY} -M prepared -j 2: {tps:.0} tps  →  keyhaven at {:.0}%",
            100.0 * rps / tps
        );
    }
}

/// `pgbench -S -c 64` (plus `extra` options) against the same server, in a scratch
/// database.
fn pgbench(seconds: u64, extra: &[&str]) -> Option<f64> {
    let host = if std::path::Path::new("/var/run/postgresql/.s.PGSQL.5432").exists() {
        "/var/run/postgresql"
    } else {
        "127.0.0.1"
    };
    let common = ["-h", host, "-U", "postgres"];
    let db = "keyhaven_bench_pgbench";
    let _ = Command::new("createdb").args(common).arg(db).output();
    let init = Command::new("pgbench")
        .args(common)
        .args(["-i", "-q", db])
        .output()
        .ok()?;
    if !init.status.success() {
        return None;
    }
    let out = Command::new("pgbench")
        .args(common)
        .args(["-S", "-c", &CONCURRENCY.to_string()])
        .args(extra)
        .args(["-T", &seconds.to_string(), db])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
