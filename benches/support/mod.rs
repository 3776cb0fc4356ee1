//! Shared by the benchmarks: a portal and sandbox in this process on a scratch database
//! (the set-up is `keyhaven-testkit`'s, as the tests'), one complete connect flow over
//! real HTTP, and percentile helpers.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use hyper::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST, LOCATION, SET_COOKIE};
pub use keyhaven_testkit::Portal;
use keyhaven_testkit::Stage;
use tokio::net::TcpListener;

// The portal binary runs on mimalloc (src/main.rs); measure with the same allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "bench-client-secret";

/// Portal and sandbox (auto-approve) on a scratch database; `tune` adjusts settings.
pub async fn start(tune: impl FnOnce(&mut keyhaven::config::Settings)) -> Portal {
    let template = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| keyhaven::config::local_database_url("{db}"));
    let mut stage = Stage::new(&template, "bench", SECRET).await;
    stage.sandbox.set_auto_approve(true);
    let settings = &mut stage.settings;
    if let Some(size) = std::env::var("BENCH_POOL")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.database.max_connections = size;
    }
    // BENCH_METRICS=1 records Prometheus metrics (and serves /metrics on a spare port).
    if std::env::var("BENCH_METRICS").is_ok_and(|v| v == "1") {
        settings.server.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        println!("metrics: recorded");
    } else {
        println!("metrics: off");
    }
    tune(settings);
    stage.start(std::future::pending()).await
}

/// One flow's cookie jar: the cookies a browser holds for the portal, by name (one `Cookie` header's worth).
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn take_from(&mut self, r: &Response) {
        for line in r.headers().get_all(SET_COOKIE) {
            let Some((name, value)) = line
                .to_str()
                .ok()
                .and_then(|l| l.split(';').next())
                .and_then(|pair| pair.split_once('='))
            else {
                continue;
            };
            self.0.retain(|(n, _)| n != name);
            self.0.push((name.to_string(), value.to_string()));
        }
    }

    fn header(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

type Response = hyper::Response<bytes::Bytes>;

fn location(r: &Response) -> Result<String, String> {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .ok_or_else(|| format!("no Location (status {})", r.status()))
}

fn expect(r: &Response, status: u16, step: &str) -> Result<(), String> {
    if r.status().as_u16() == status {
        Ok(())
    } else {
        Err(format!("{step}: status {}", r.status()))
    }
}

/// The `csrf` field of the page's form.
fn form_token(page: &Response) -> Result<String, String> {
    let html = std::str::from_utf8(page.body()).map_err(|e| e.to_string())?;
    let marker = "name=\"csrf\" value=\"";
    html.split(marker)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(String::from)
        .ok_or_else(|| "no csrf field".to_string())
}

/// The start form; Bullhorn asks for the username that picks the data center.
fn start_form(provider: &str, csrf: &str) -> String {
    let mut form = format!("csrf={csrf}");
    if provider == "bullhorn" {
        form.push_str("&username=east.user");
    }
    form
}

/// A browser as the load generator plays it: one keep-alive connection to the portal and
/// one to the sandbox provider, reused flow after flow, with a fresh cookie jar per flow.
pub struct Browser {
    portal: RawConnection,
    portal_origin: String,
    sandbox: RawConnection,
    sandbox_origin: String,
}

impl Browser {
    pub async fn open(portal: &Portal) -> Browser {
        Browser {
            portal: RawConnection::open(&portal.url).await,
            portal_origin: portal.url.clone(),
            sandbox: RawConnection::open(&portal.sandbox_url).await,
            sandbox_origin: portal.sandbox_url.clone(),
        }
    }

    /// Sends to whichever of the two origins `url` names (a path means the portal).
    async fn send(
        &mut self,
        method: hyper::Method,
        url: &str,
        jar: &Jar,
        form: Option<String>,
    ) -> Result<Response, String> {
        let (connection, path) = if let Some(path) = url.strip_prefix(&self.sandbox_origin) {
            (&mut self.sandbox, path)
        } else {
            (
                &mut self.portal,
                url.strip_prefix(&self.portal_origin).unwrap_or(url),
            )
        };
        let mut request = hyper::Request::builder().method(method).uri(path);
        if let Some(cookie) = jar.header() {
            request = request.header(COOKIE, cookie);
        }
        if form.is_some() {
            request = request.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let body = form.map(bytes::Bytes::from).unwrap_or_default();
        connection.send(request, body).await
    }

    /// Opens a connect link with a fresh cookie jar and loads the connect page: a browser
    /// ready to click Connect.
    pub async fn visit(&mut self, link: &str) -> Result<Visit, String> {
        use hyper::Method;
        let mut jar = Jar::default();
        // The link's page, then its Continue button.
        let r = self.send(Method::GET, link, &jar, None).await?;
        expect(&r, 200, "open link")?;
        jar.take_from(&r);
        let csrf = form_token(&r)?;
        let r = self
            .send(Method::POST, link, &jar, Some(format!("csrf={csrf}")))
            .await?;
        expect(&r, 303, "continue")?;
        jar.take_from(&r);
        let page = self.send(Method::GET, "/connect", &jar, None).await?;
        expect(&page, 200, "connect page")?;
        jar.take_from(&page);
        let csrf = form_token(&page)?;
        Ok(Visit { jar, csrf })
    }

    /// Connect → sandbox authorize (auto-approve) → callback → success page; returns the
    /// callback request's duration.
    pub async fn connect(&mut self, visit: Visit, provider: &str) -> Result<Duration, String> {
        use hyper::Method;
        let Visit { mut jar, csrf } = visit;
        let form = start_form(provider, &csrf);
        let start = format!("/connect/{provider}");
        let r = self.send(Method::POST, &start, &jar, Some(form)).await?;
        expect(&r, 303, "start")?;
        jar.take_from(&r);
        let r = self
            .send(Method::GET, &location(&r)?, &Jar::default(), None)
            .await?;
        expect(&r, 302, "authorize")?;
        let callback = location(&r)?;
        let started = Instant::now();
        let r = self.send(Method::GET, &callback, &jar, None).await?;
        let callback_time = started.elapsed();
        expect(&r, 303, "callback")?;
        jar.take_from(&r);
        let r = self.send(Method::GET, &location(&r)?, &jar, None).await?;
        expect(&r, 200, "success page")?;
        Ok(callback_time)
    }

    /// The whole journey from the link to the success page.
    pub async fn flow(&mut self, link: &str, provider: &str) -> Result<Duration, String> {
        let visit = self.visit(link).await?;
        self.connect(visit, provider).await
    }
}

/// One end user's browser on the connect page: its cookie jar and the page's form token.
pub struct Visit {
    jar: Jar,
    csrf: String,
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

/// The machine's CPU time so far (every process, Postgres included), from /proc/stat.
#[derive(Clone, Copy)]
pub struct CpuTime {
    /// Time spent running: user, nice, system, irq, softirq.
    busy: Duration,
    /// Time a virtual machine's CPUs were ready to run but the host ran something else.
    steal: Duration,
    total: Duration,
}

impl CpuTime {
    pub fn now() -> CpuTime {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|n| n.parse().ok())
            .collect();
        // USER_HZ, which Linux fixes at 100 per second.
        let at = |i: usize| Duration::from_millis(ticks.get(i).copied().unwrap_or(0) * 10);
        // user nice system idle iowait irq softirq steal
        CpuTime {
            busy: at(0) + at(1) + at(2) + at(5) + at(6),
            steal: at(7),
            total: (0..8).map(at).sum(),
        }
    }

    /// Busy time per item since `earlier`, and the share of time the host took away:
    /// a run with much steal is slower than the code is.
    pub fn since(self, earlier: CpuTime, items: usize) -> String {
        let busy = self.busy.saturating_sub(earlier.busy);
        let steal = self.steal.saturating_sub(earlier.steal);
        let total = self.total.saturating_sub(earlier.total);
        format!(
            "cpu/flow={:.2} ms steal={:.0}%",
            busy.as_secs_f64() * 1000.0 / items.max(1) as f64,
            100.0 * steal.as_secs_f64() / total.as_secs_f64().max(f64::EPSILON),
        )
    }
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

/// Runs `job` on every item with `concurrency` browsers; returns the results and the time
/// taken.
pub async fn in_parallel<T, R, F, Fut>(
    portal: &Portal,
    concurrency: usize,
    items: Vec<T>,
    job: F,
) -> (Vec<R>, Duration)
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(Browser, T) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (Browser, R)> + Send,
{
    let items = std::sync::Arc::new(std::sync::Mutex::new(items));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (items, job) = (items.clone(), job.clone());
        let mut browser = Browser::open(portal).await;
        workers.push(tokio::spawn(async move {
            let mut results = Vec::new();
            loop {
                let Some(item) = items.lock().unwrap().pop() else {
                    break;
                };
                let (b, r) = job(browser, item).await;
                browser = b;
                results.push(r);
            }
            results
        }));
    }
    let mut results = Vec::new();
    for w in workers {
        results.extend(w.await.unwrap());
    }
    (results, started.elapsed())
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
    let who = provider.to_string();
    let (results, _) = in_parallel(portal, concurrency, links, move |mut b, link: String| {
        let provider = who.clone();
        async move {
            let r = b.flow(&link, &provider).await;
            (b, r)
        }
    })
    .await;
    for r in results {
        r.unwrap();
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
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
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

    /// Sends `request` (its Host header added) and reads the whole response.
    pub async fn send(
        &mut self,
        request: hyper::http::request::Builder,
        body: bytes::Bytes,
    ) -> Result<Response, String> {
        use http_body_util::BodyExt;
        let request = request
            .header(HOST, &self.host)
            .body(http_body_util::Full::new(body))
            .map_err(|e| e.to_string())?;
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?;
        Ok(Response::from_parts(parts, body.to_bytes()))
    }

    /// GET `path` with a bearer token; returns the status and the body's length.
    pub async fn get(&mut self, path: &str, bearer: &str) -> Result<(u16, usize), String> {
        let request = hyper::Request::get(path).header(AUTHORIZATION, bearer);
        let response = self.send(request, bytes::Bytes::new()).await?;
        Ok((response.status().as_u16(), response.body().len()))
    }
}

/// A webhook receiver on port 0 that answers 204 at once and notes when each message
/// (by `webhook-id`) arrived; `arrived` counts them.
pub struct WebhookReceiver {
    pub url: String,
    pub arrivals: std::sync::Arc<std::sync::Mutex<Vec<(String, std::time::Instant)>>>,
    pub arrived: tokio::sync::watch::Receiver<usize>,
}

pub async fn webhook_receiver() -> WebhookReceiver {
    use std::sync::{Arc, Mutex};
    let arrivals: Arc<Mutex<Vec<(String, std::time::Instant)>>> = Arc::default();
    let (tx, arrived) = tokio::sync::watch::channel(0usize);
    let tx = Arc::new(tx);
    let seen = arrivals.clone();
    let handler = move |headers: axum::http::HeaderMap| {
        let (seen, tx) = (seen.clone(), tx.clone());
        async move {
            let id = headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let n = {
                let mut seen = seen.lock().unwrap();
                seen.push((id, std::time::Instant::now()));
                seen.len()
            };
            tx.send_replace(n);
            axum::http::StatusCode::NO_CONTENT
        }
    };
    let app = axum::Router::new().route("/hook", axum::routing::post(handler));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    WebhookReceiver {
        url,
        arrivals,
        arrived,
    }
}
