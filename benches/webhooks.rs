//! Webhook delivery to one fast local receiver: events committed to the outbox (each in
//! its own transaction, as a change would), delivered by the portal's worker. Prints
//! delivery throughput (events/s, first commit to last 2xx) and p50/p99 of the time from
//! each event's commit to the receiver's 2xx, for a burst (as fast as 8 producers commit)
//! and for a steady rate (half the burst's throughput).
//!
//! Run: `cargo bench --bench webhooks` (BENCH_EVENTS, default 10000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Connection;
use support::{Portal, WebhookReceiver, ms, percentile};

const PRODUCERS: usize = 8;

async fn run(
    portal: &Portal,
    receiver: &WebhookReceiver,
    connection: uuid::Uuid,
    events: usize,
    rate: Option<f64>,
) -> f64 {
    let committed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let before = *receiver.arrived.borrow();
    let start = Instant::now();
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let (state, committed) = (portal.state.clone(), committed.clone());
        let mine = events / PRODUCERS + usize::from(p < events % PRODUCERS);
        producers.push(tokio::spawn(async move {
            let mut conn = state.pool.acquire().await.unwrap();
            for i in 0..mine {
                if let Some(rate) = rate {
                    // Each producer keeps its share of the rate.
                    let due = start + Duration::from_secs_f64((i * PRODUCERS + p) as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let mut tx = conn.begin().await.unwrap();
                let id = keyhaven::db::webhooks::enqueue(
                    &mut tx,
                    "connection.reconnected",
                    connection,
                    None,
                    time::OffsetDateTime::now_utc(),
                )
                .await
                .unwrap()
                .unwrap();
                tx.commit().await.unwrap();
                committed
                    .lock()
                    .unwrap()
                    .insert(format!("msg_{}", id.simple()), Instant::now());
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    let produced = start.elapsed();
    let mut arrived = receiver.arrived.clone();
    arrived.wait_for(|n| *n >= before + events).await.unwrap();
    let committed = committed.lock().unwrap();
    let arrivals = receiver.arrivals.lock().unwrap();
    let mut latencies = Vec::with_capacity(events);
    let mut last = start;
    for (id, at) in arrivals.iter().skip(before) {
        if let Some(c) = committed.get(id) {
            latencies.push(at.saturating_duration_since(*c));
            last = last.max(*at);
        }
    }
    latencies.sort();
    let total = last - start;
    let throughput = latencies.len() as f64 / total.as_secs_f64();
    println!(
        "{:<22} events={:<6} committed in {:>6.2} s  delivered in {:>6.2} s  {:>7.1} events/s  commit→2xx p50={} p99={}",
        rate.map_or("burst (8 producers)".to_string(), |r| format!(
            "steady {r:.0}/s"
        )),
        latencies.len(),
        produced.as_secs_f64(),
        total.as_secs_f64(),
        throughput,
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
    );
    throughput
}

#[tokio::main]
async fn main() {
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let portal = support::start(|s| s.webhooks.allow_insecure_urls = true).await;
    let receiver = support::webhook_receiver().await;
    keyhaven::webhooks::add_endpoint(&portal.state, &receiver.url, None)
        .await
        .unwrap();
    let link = keyhaven::web::api::create_link_for(
        &portal.state,
        &keyhaven::web::api::EndUserInput {
            external_id: "webhook-bench".into(),
            email: None,
            name: None,
        },
    )
    .await
    .unwrap()
    .0;
    let mut browser = support::Browser::open(&portal).await;
    browser.flow(&link, "smartrecruiters").await.unwrap();
    let connection: uuid::Uuid = {
        let mut conn = portal.state.pool.acquire().await.unwrap();
        sqlx::query_scalar("SELECT id FROM connections")
            .fetch_one(&mut *conn)
            .await
            .unwrap()
    };
    println!(
        "webhooks: one receiver at {}, max in flight per endpoint {}",
        receiver.url, portal.state.settings.webhooks.max_in_flight_per_endpoint
    );
    // Warm-up.
    run(&portal, &receiver, connection, 500, None).await;
    let burst = run(&portal, &receiver, connection, events, None).await;
    run(&portal, &receiver, connection, events, Some(burst / 2.0)).await;
}
