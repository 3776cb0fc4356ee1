//! Complete connect flows through the real HTTP stack and a real Postgres: Connect →
//! sandbox authorize (auto-approve) → callback → success page, each flow in its own
//! browser session (a fresh cookie jar that has opened its own connect link and loaded
//! the connect page just before, untimed; that step's rate is printed too). Browsers are
//! lean keep-alive HTTP/1.1 clients, one per concurrent flow. Prints flows/s, failures,
//! the machine's busy CPU time per flow (all processes, Postgres included) and the share
//! of time a virtual machine's host took away (steal), and p50/p99 of the callback request
//! and of the code's age when the sandbox receives the exchange, at concurrency 1, 16 and
//! 64, for each provider (SmartRecruiters, a generic OAuth 2.0 server with PKCE, Bullhorn,
//! Zoho Recruit, Hurdlr).
//!
//! Run: `cargo bench --bench connect_flow` (the local Postgres, as the portal's default
//! finds it; or BENCH_DATABASE_URL, a URL with `{db}` where the database name goes).
//! BENCH_FLOWS (default 2000), BENCH_POOL, BENCH_PROVIDER and BENCH_CONCURRENCY (a
//! comma-separated list) narrow a run. BENCH_WEBHOOK=1 adds a webhook endpoint (a local
//! receiver), so every flow also writes and delivers a `connection.created` event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use keyhaven::web::api::{EndUserInput, create_link_for};
use support::{Portal, Visit, in_parallel, ms, percentile};

async fn run(portal: &Portal, provider: &str, concurrency: usize, flows: usize) {
    let mut links = Vec::with_capacity(flows);
    for i in 0..flows {
        let input = EndUserInput {
            external_id: format!("{provider}-{concurrency}-{i}"),
            email: None,
            name: None,
        };
        links.push(create_link_for(&portal.state, &input).await.unwrap().0);
    }
    // Each flow's browser first opens its own link and loads the connect page (untimed).
    let (visits, visiting) = in_parallel(
        portal,
        concurrency,
        links,
        |mut b, link: String| async move {
            let visit = b.visit(&link).await;
            (b, visit)
        },
    )
    .await;
    let mut failures: Vec<String> = Vec::new();
    let visits: Vec<Visit> = visits
        .into_iter()
        .filter_map(|v| v.map_err(|e| failures.push(e)).ok())
        .collect();
    let visit_rate = visits.len() as f64 / visiting.as_secs_f64();

    // The timed flows: Connect → authorize → callback → success page.
    portal.sandbox.take_code_ages();
    let cpu_before = support::CpuTime::now();
    let who = provider.to_string();
    let (results, elapsed) = in_parallel(portal, concurrency, visits, move |mut b, visit| {
        let provider = who.clone();
        async move {
            let r = b.connect(visit, &provider).await;
            (b, r)
        }
    })
    .await;
    let mut times = Vec::new();
    for r in results {
        match r {
            Ok(t) => times.push(t),
            Err(e) => failures.push(e),
        }
    }
    let cpu = support::CpuTime::now().since(cpu_before, times.len());
    times.sort();
    let mut ages = portal.sandbox.take_code_ages();
    ages.sort();
    println!(
        "{provider:<16} c={concurrency:<3} flows={:<5} {:>7.1} flows/s  failures={}  {}  callback p50={} p99={}  code age at exchange p50={} p99={}  (before: link → connect page {:.0}/s)",
        times.len(),
        times.len() as f64 / elapsed.as_secs_f64(),
        failures.len(),
        cpu,
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
        ms(percentile(&ages, 0.50)),
        ms(percentile(&ages, 0.99)),
        visit_rate,
    );
    if let Some(first) = failures.first() {
        println!("    first failure: {first}");
    }
}

#[tokio::main]
async fn main() {
    let webhook = std::env::var("BENCH_WEBHOOK").is_ok_and(|v| v == "1");
    let portal = support::start(|s| s.webhooks.allow_insecure_urls = webhook).await;
    let receiver = if webhook {
        let receiver = support::webhook_receiver().await;
        keyhaven::webhooks::add_endpoint(&portal.state, &receiver.url, None)
            .await
            .unwrap();
        println!("connect_flow: with a webhook endpoint at {}", receiver.url);
        Some(receiver)
    } else {
        None
    };
    let scale: usize = std::env::var("BENCH_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    println!(
        "connect_flow: portal {} (sandbox in process, {} cores)",
        portal.url,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let only = std::env::var("BENCH_PROVIDER").ok();
    let levels: Vec<usize> = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 16, 64]);
    for provider in ["smartrecruiters", "acme", "bullhorn", "zoho", "hurdlr"] {
        if only.as_deref().is_some_and(|o| o != provider) {
            continue;
        }
        // Warm-up: connections, caches, prepared statements.
        run(&portal, provider, 16, 200).await;
        for &concurrency in &levels {
            let flows = if concurrency == 1 { scale / 10 } else { scale };
            run(&portal, provider, concurrency, flows).await;
        }
    }
    if let Some(r) = receiver {
        println!("webhooks delivered: {}", *r.arrived.borrow());
    }
}
