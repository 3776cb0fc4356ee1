//! Complete connect flows through the real HTTP stack and a real Postgres:
//! open link → connect page → start → sandbox authorize (auto-approve) → callback →
//! success page, each flow with a fresh cookie jar. Prints flows/s, failures, and
//! p50/p99 of the callback request and of the code's age when the sandbox receives the
//! exchange, at concurrency 1, 16 and 64.
//!
//! Run: `cargo bench --bench connect_flow` (the local Postgres, as the portal's default
//! finds it; or BENCH_DATABASE_URL, a URL with `{db}` where the database name goes).
//! BENCH_FLOWS (default 2000), BENCH_POOL and BENCH_PROVIDER narrow a run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keyhaven::sandbox::Sandbox;
use keyhaven::web::api::{EndUserInput, create_link_for};
use keyhaven::{AppState, Application, Clock};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use tokio::net::TcpListener;

const SECRET: &str = "bench-client-secret";

struct Portal {
    url: String,
    state: AppState,
    sandbox: Sandbox,
}

async fn start() -> Portal {
    let template = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| keyhaven::config::local_database_url("{db}"));
    let database_url = template.replace(
        "{db}",
        &format!("keyhaven_bench_{}", uuid::Uuid::new_v4().simple()),
    );
    let clock = Clock::default();
    let sandbox = Sandbox::new(clock.clone());
    sandbox.set_auto_approve(true);
    let sandbox_url = sandbox.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://127.0.0.1:{}", addr.port());
    let keys = keyhaven::crypto::KeyRing::generate_entry("bench").unwrap();
    let mut settings =
        keyhaven::cli::sandbox_settings(&url, addr, &sandbox_url, &database_url, &keys, SECRET)
            .unwrap();
    if let Some(size) = std::env::var("BENCH_POOL")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.database.max_connections = size;
    }
    keyhaven::cli::register_sandbox_clients(&sandbox, &settings, SECRET);
    let pool = keyhaven::db::connect_and_migrate(&database_url, settings.database.max_connections)
        .await
        .unwrap();
    let app = Application::build_on(listener, settings, pool, clock)
        .await
        .unwrap();
    let state = app.state().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    Portal {
        url,
        state,
        sandbox,
    }
}

/// One flow's cookie jar: the session cookie, nothing else.
#[derive(Default)]
struct Jar(Option<String>);

impl Jar {
    fn take_from(&mut self, r: &reqwest::Response) {
        if let Some(c) = r.headers().get(SET_COOKIE).and_then(|v| v.to_str().ok()) {
            self.0 = c.split(';').next().map(String::from);
        }
    }
    fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.0 {
            Some(c) => req.header(COOKIE, c),
            None => req,
        }
    }
}

fn location(r: &reqwest::Response) -> Result<String, String> {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .ok_or_else(|| format!("no Location (status {})", r.status()))
}

fn expect(r: &reqwest::Response, status: u16, step: &str) -> Result<(), String> {
    if r.status().as_u16() == status {
        Ok(())
    } else {
        Err(format!("{step}: status {}", r.status()))
    }
}

/// One complete flow; returns the callback request's duration.
async fn flow(
    http: &reqwest::Client,
    portal: &str,
    link: &str,
    provider: &str,
) -> Result<Duration, String> {
    let mut jar = Jar::default();
    let send =
        |r: reqwest::RequestBuilder| async move { r.send().await.map_err(|e| e.to_string()) };

    let r = send(jar.apply(http.get(link))).await?;
    expect(&r, 303, "open link")?;
    jar.take_from(&r);
    let page = send(jar.apply(http.get(format!("{portal}/connect")))).await?;
    jar.take_from(&page);
    let html = page.text().await.map_err(|e| e.to_string())?;
    let marker = "name=\"csrf\" value=\"";
    let csrf = html
        .split(marker)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .ok_or("no csrf field")?
        .to_string();
    let r = send(
        jar.apply(
            http.post(format!("{portal}/connect/{provider}"))
                .form(&[("csrf", csrf)]),
        ),
    )
    .await?;
    expect(&r, 303, "start")?;
    jar.take_from(&r);
    let authorize = location(&r)?;
    let r = send(http.get(authorize)).await?;
    expect(&r, 302, "authorize")?;
    let callback = location(&r)?;
    let started = Instant::now();
    let r = send(jar.apply(http.get(callback))).await?;
    let callback_time = started.elapsed();
    expect(&r, 303, "callback")?;
    jar.take_from(&r);
    let done = location(&r)?;
    let r = send(jar.apply(http.get(format!("{portal}{done}")))).await?;
    expect(&r, 200, "success page")?;
    Ok(callback_time)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn run(portal: &Portal, provider: &str, sandbox_key: &str, concurrency: usize, flows: usize) {
    let mut links = Vec::with_capacity(flows);
    for i in 0..flows {
        let input = EndUserInput {
            external_id: format!("{provider}-{concurrency}-{i}"),
            email: None,
            name: None,
        };
        links.push(create_link_for(&portal.state, &input).await.unwrap().0);
    }
    let links = Arc::new(links);
    let next = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    portal.sandbox.take_code_ages();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (links, next, http, url, provider) = (
            links.clone(),
            next.clone(),
            http.clone(),
            portal.url.clone(),
            provider.to_string(),
        );
        workers.push(tokio::spawn(async move {
            let mut times = Vec::new();
            let mut failures = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(link) = links.get(i) else { break };
                match flow(&http, &url, link, &provider).await {
                    Ok(t) => times.push(t),
                    Err(e) => failures.push(e),
                }
            }
            (times, failures)
        }));
    }
    let mut times = Vec::new();
    let mut failures = Vec::new();
    for w in workers {
        let (t, f) = w.await.unwrap();
        times.extend(t);
        failures.extend(f);
    }
    let elapsed = started.elapsed();
    times.sort();
    let mut ages = portal.sandbox.take_code_ages();
    ages.sort();
    println!(
        "{provider:<16} c={concurrency:<3} flows={:<5} {:>7.1} flows/s  failures={}  callback p50={} p99={}  code age at exchange p50={} p99={}",
        times.len(),
        times.len() as f64 / elapsed.as_secs_f64(),
        failures.len(),
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
        ms(percentile(&ages, 0.50)),
        ms(percentile(&ages, 0.99)),
    );
    if let Some(first) = failures.first() {
        println!("    first failure: {first}");
    }
    let _ = sandbox_key;
}

#[tokio::main]
async fn main() {
    let portal = start().await;
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
    for (provider, key) in [("smartrecruiters", "smartrecruiters"), ("acme", "oauth2")] {
        if only.as_deref().is_some_and(|o| o != provider) {
            continue;
        }
        // Warm-up: connections, caches, prepared statements.
        run(&portal, provider, key, 16, 200).await;
        for concurrency in [1, 16, 64] {
            let flows = if concurrency == 1 { scale / 10 } else { scale };
            run(&portal, provider, key, concurrency, flows).await;
        }
    }
}
