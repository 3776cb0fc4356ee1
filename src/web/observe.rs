//! What every request leaves behind: a `request` span (request id, method, route
//! template) whose last line adds status and duration, the `x-request-id` header, and
//! the HTTP metrics. Also the `/metrics` listener.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::model::ConnectionStatus;
use crate::state::AppState;
use crate::telemetry::metrics;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A caller's request id is kept when it is 1 to 64 characters of `[A-Za-z0-9-]`.
pub fn acceptable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

fn new_request_id() -> HeaderValue {
    let id = format!("{:032x}", rand::random::<u128>());
    // 32 hex digits are always a valid header value.
    HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("unavailable"))
}

/// The middleware: span, request id, one closing log line and the metrics.
pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route_str = route
        .as_ref()
        .map(MatchedPath::as_str)
        .unwrap_or("unmatched");
    let method = metrics::method_label(request.method());
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| acceptable_request_id(v))
        .cloned()
        .unwrap_or_else(new_request_id);
    // The route template only: raw paths and queries carry links, codes and states.
    let span = tracing::info_span!(
        "request",
        request_id = request_id.to_str().unwrap_or_default(),
        method,
        route = route_str,
        status = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.record("status", status);
    span.record("duration_ms", elapsed.as_secs_f64() * 1000.0);
    span.in_scope(|| tracing::info!("request finished"));
    response.headers_mut().insert(REQUEST_ID, request_id);
    metrics::http_request(route_str, method, status, elapsed);
    response
}

/// The `/metrics` listener's state: the recorder and the portal whose gauges it reads.
#[derive(Clone)]
struct Exporter {
    handle: PrometheusHandle,
    app: AppState,
}

/// Serves `GET /metrics` (Prometheus text) on its own listener until the task ends.
pub async fn serve_metrics(listener: TcpListener, app: AppState) -> anyhow::Result<()> {
    let handle = metrics::install()?;
    let router = Router::new()
        .route("/metrics", get(scrape))
        .with_state(Exporter { handle, app });
    axum::serve(listener, router).await?;
    Ok(())
}

/// Binds the metrics address if one is configured.
pub async fn bind_metrics(addr: Option<SocketAddr>) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await?;
            // Recording starts now, not at the first scrape.
            metrics::install()?;
            Ok(Some(listener))
        }
        None => Ok(None),
    }
}

async fn scrape(State(exporter): State<Exporter>) -> Response {
    update_gauges(&exporter.app).await;
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        metrics::render(&exporter.handle),
    )
        .into_response()
}

/// Counts read from Postgres when scraped. The counts by provider and status come from
/// `connection_counts` (kept by a trigger) when that table exists; otherwise from a
/// grouped count over `connections` (a slow one is reused for a while).
async fn update_gauges(app: &AppState) {
    let (in_use, idle) = app.pool.usage();
    metrics::set_pool_connections(in_use as u64, idle as u64);
    let Ok(mut conn) = app.pool.acquire().await else {
        return;
    };
    match crate::db::connections::refresh_backlog(&mut conn).await {
        Ok(due) => metrics::set_refresh_backlog(due),
        Err(e) => tracing::warn!(error = %e, "could not count the refresh backlog"),
    }
    match crate::db::webhooks::pending_count(&mut conn).await {
        Ok(waiting) => metrics::set_webhook_outbox_backlog(waiting.max(0) as u64),
        Err(e) => tracing::warn!(error = %e, "could not count the webhook outbox"),
    }
    // The trigger-maintained table: a few rows, whatever the number of connections.
    let counts = match crate::db::console::counts_by_provider_and_status(&mut conn).await {
        Ok(counts) => counts,
        Err(e) => {
            tracing::warn!(error = %e, "could not count connections");
            return;
        }
    };
    for provider in &app.settings.providers {
        for status in ConnectionStatus::ALL {
            let n = counts
                .iter()
                .filter(|c| c.provider == provider.id && c.status == status)
                .map(|c| c.n)
                .sum::<i64>();
            metrics::set_connections(&provider.id, status, n.max(0) as u64);
        }
    }
    for status in ConnectionStatus::ALL {
        let other = counts
            .iter()
            .filter(|c| c.status == status && app.settings.provider(&c.provider).is_none())
            .map(|c| c.n)
            .sum::<i64>();
        metrics::set_connections("other", status, other.max(0) as u64);
    }
}
