//! Shared by the benchmarks: a portal and sandbox in this process on a fresh database,
//! one complete connect flow over real HTTP, and percentile helpers.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use keyhaven::sandbox::Sandbox;
use keyhaven::{AppState, Application, Clock};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use tokio::net::TcpListener;

const SECRET: &str = "bench-client-secret";

pub struct Portal {
    pub url: String,
    pub state: AppState,
    pub sandbox: Sandbox,
    pub clock: Clock,
}

/// Portal and sandbox (auto-approve) on a fresh database; `tune` adjusts settings.
pub async fn start(tune: impl FnOnce(&mut keyhaven::Settings)) -> Portal {
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
    settings.refresher.enabled = false;
    tune(&mut settings);
    keyhaven::cli::register_sandbox_clients(&sandbox, &settings, SECRET);
    let pool = keyhaven::db::connect_and_migrate(&database_url, settings.database.max_connections)
        .await
        .unwrap();
    let app = Application::build_on(listener, settings, pool, clock.clone())
        .await
        .unwrap();
    let state = app.state().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    Portal {
        url,
        state,
        sandbox,
        clock,
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
/// The start form; Bullhorn asks for the username that picks the data center.
fn start_form(provider: &str, csrf: String) -> Vec<(&'static str, String)> {
    let mut form = vec![("csrf", csrf)];
    if provider == "bullhorn" {
        form.push(("username", "east.user".into()));
    }
    form
}

pub async fn flow(
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
                .form(&start_form(provider, csrf)),
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

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Resident memory of this process (current and peak), from /proc.
pub fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| format!("{:.1} MiB", kb as f64 / 1024.0))
            .unwrap_or_else(|| "n/a".into())
    };
    format!("RSS {} (peak {})", field("VmRSS:"), field("VmHWM:"))
}

/// Connects `n` new end users to `provider` through real flows; returns the connection ids.
pub async fn connect_many(
    portal: &Portal,
    provider: &str,
    n: usize,
    concurrency: usize,
) -> Vec<uuid::Uuid> {
    use keyhaven::web::api::{EndUserInput, create_link_for};
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    let mut links = Vec::with_capacity(n);
    for i in 0..n {
        let input = EndUserInput {
            external_id: format!("seed-{prefix}-{i}"),
            email: None,
            name: None,
        };
        links.push(create_link_for(&portal.state, &input).await.unwrap().0);
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let links = std::sync::Arc::new(tokio::sync::Mutex::new(links));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (links, http, url, provider) = (
            links.clone(),
            http.clone(),
            portal.url.clone(),
            provider.to_string(),
        );
        workers.push(tokio::spawn(async move {
            while let Some(link) = links.lock().await.pop() {
                flow(&http, &url, &link, &provider).await.unwrap();
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT c.id FROM connections c JOIN end_users e ON e.id = c.end_user_id WHERE e.external_id LIKE $1 AND c.provider = $2",
    )
    .bind(format!("seed-{prefix}-%"))
    .bind(provider)
    .fetch_all(&mut *portal.state.pool.acquire().await.unwrap())
    .await
    .unwrap();
    assert_eq!(ids.len(), n);
    ids
}

/// One keep-alive HTTP/1.1 connection driven directly through hyper: a load generator
/// as lean as `wrk` or `pgbench`'s client, so the portal rather than the client is what
/// the machine's two cores spend their time on.
pub struct RawConnection {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    host: String,
}

impl RawConnection {
    pub async fn open(base_url: &str) -> RawConnection {
        let host = base_url.trim_start_matches("http://").to_string();
        let stream = tokio::net::TcpStream::connect(&host).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        RawConnection { sender, host }
    }

    /// GET `path` with a bearer token; returns the status and the body's length.
    pub async fn get(&mut self, path: &str, bearer: &str) -> Result<(u16, usize), String> {
        use http_body_util::BodyExt;
        let request = hyper::Request::get(path)
            .header("host", &self.host)
            .header("authorization", bearer)
            .body(http_body_util::Empty::new())
            .map_err(|e| e.to_string())?;
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok((status, body.to_bytes().len()))
    }
}
