//! Prometheus metrics: every name and label set in one place, behind small helpers the
//! rest of the code calls. Names carry the `keyhaven_` prefix, counters end in `_total`,
//! durations are histograms in `_seconds`.
//!
//! Label values are never user input: routes are templates (`/api/v1/connections/{id}`),
//! providers are configured ids, everything else comes from fixed lists. Until
//! [`install`] runs (no `server.metrics_listen`), every helper returns at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::model::ConnectionStatus;

pub const HTTP_REQUESTS: &str = "keyhaven_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "keyhaven_http_request_duration_seconds";
pub const CONNECT_FLOWS_STARTED: &str = "keyhaven_connect_flows_started_total";
pub const CONNECT_FLOWS_COMPLETED: &str = "keyhaven_connect_flows_completed_total";
pub const CONNECT_FLOWS_FAILED: &str = "keyhaven_connect_flows_failed_total";
pub const CODE_AGE_AT_EXCHANGE: &str = "keyhaven_code_age_at_exchange_seconds";
pub const TOKEN_REQUESTS: &str = "keyhaven_token_requests_total";
pub const TOKEN_REQUEST_DURATION: &str = "keyhaven_token_request_duration_seconds";
pub const REFRESHES: &str = "keyhaven_refreshes_total";
pub const REFRESH_LEASE_CONTENTION: &str = "keyhaven_refresh_lease_contention_total";
pub const REFRESH_BACKLOG: &str = "keyhaven_refresh_backlog";
pub const WEBHOOK_DELIVERIES: &str = "keyhaven_webhook_deliveries_total";
pub const WEBHOOK_OUTBOX_BACKLOG: &str = "keyhaven_webhook_outbox_backlog";
pub const DB_POOL_CONNECTIONS: &str = "keyhaven_db_pool_connections";
pub const CONNECTIONS: &str = "keyhaven_connections";
pub const DETACHED_TASKS_IN_FLIGHT: &str = "keyhaven_detached_tasks_in_flight";
pub const SHUTDOWN_CUT_OFF: &str = "keyhaven_shutdown_cut_off_total";

/// Every metric name above (the dashboard and alert rules use no other).
pub const ALL: [&str; 17] = [
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    CONNECT_FLOWS_STARTED,
    CONNECT_FLOWS_COMPLETED,
    CONNECT_FLOWS_FAILED,
    CODE_AGE_AT_EXCHANGE,
    TOKEN_REQUESTS,
    TOKEN_REQUEST_DURATION,
    REFRESHES,
    REFRESH_LEASE_CONTENTION,
    REFRESH_BACKLOG,
    WEBHOOK_DELIVERIES,
    WEBHOOK_OUTBOX_BACKLOG,
    DB_POOL_CONNECTIONS,
    CONNECTIONS,
    DETACHED_TASKS_IN_FLIGHT,
    SHUTDOWN_CUT_OFF,
];

/// Histogram buckets (seconds): from a cached credential read to a slow provider.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static ENABLED: AtomicBool = AtomicBool::new(false);
static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the process-wide recorder (once; later calls return the same handle).
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let mut slot = HANDLE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(handle) = slot.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(&BUCKETS)?
        .install_recorder()?;
    describe();
    ENABLED.store(true, Ordering::Release);
    *slot = Some(handle.clone());
    Ok(handle)
}

/// Whether a recorder is installed (metrics cost nothing otherwise).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The Prometheus text exposition of everything recorded so far.
pub fn render(handle: &PrometheusHandle) -> String {
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests by route template, method and status"
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "HTTP request duration"
    );
    describe_counter!(CONNECT_FLOWS_STARTED, "Connect flows sent to a provider");
    describe_counter!(
        CONNECT_FLOWS_COMPLETED,
        "Connect flows that stored a connection"
    );
    describe_counter!(
        CONNECT_FLOWS_FAILED,
        "Connect flows that ended without a connection, by reason"
    );
    describe_histogram!(
        CODE_AGE_AT_EXCHANGE,
        Unit::Seconds,
        "From the callback's arrival to the token request carrying its code"
    );
    describe_counter!(
        TOKEN_REQUESTS,
        "Token-endpoint calls by grant type and outcome class"
    );
    describe_histogram!(
        TOKEN_REQUEST_DURATION,
        Unit::Seconds,
        "Token-endpoint call duration"
    );
    describe_counter!(
        REFRESHES,
        "Refreshes by trigger (on_demand, background) and outcome"
    );
    describe_counter!(
        REFRESH_LEASE_CONTENTION,
        "Refresh lease claims that found another holder"
    );
    describe_gauge!(
        REFRESH_BACKLOG,
        "Connections due for a background refresh now"
    );
    describe_counter!(WEBHOOK_DELIVERIES, "Webhook delivery attempts by outcome");
    describe_gauge!(
        WEBHOOK_OUTBOX_BACKLOG,
        "Webhook messages waiting for delivery"
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Database pool connections by state (in_use, idle)"
    );
    describe_gauge!(CONNECTIONS, "Connections by provider and status");
    describe_gauge!(
        DETACHED_TASKS_IN_FLIGHT,
        "Work running detached from the request that started it, by kind"
    );
    describe_counter!(
        SHUTDOWN_CUT_OFF,
        "Detached work cut off by the shutdown deadline, by kind"
    );
}

/// One answered HTTP request. `route` is the matched route template ("unmatched" for
/// none); `method` comes from [`method_label`].
pub fn http_request(route: &str, method: &'static str, status: u16, elapsed: Duration) {
    if !enabled() {
        return;
    }
    let route = route.to_owned();
    counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_REQUEST_DURATION, "route" => route, "method" => method).record(elapsed);
}

/// A fixed label for an HTTP method: anything unusual is "other", never the raw name.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    match *method {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A configured provider's id.
fn provider_label(provider: &str) -> String {
    provider.to_owned()
}

pub fn connect_flow_started(provider: &str) {
    if enabled() {
        counter!(CONNECT_FLOWS_STARTED, "provider" => provider_label(provider)).increment(1);
    }
}

pub fn connect_flow_completed(provider: &str) {
    if enabled() {
        counter!(CONNECT_FLOWS_COMPLETED, "provider" => provider_label(provider)).increment(1);
    }
}

/// `reason` is a stable code (`declined`, `invalid_callback`, a token error's code, …).
pub fn connect_flow_failed(provider: &str, reason: &'static str) {
    if enabled() {
        counter!(CONNECT_FLOWS_FAILED, "provider" => provider_label(provider), "reason" => reason)
            .increment(1);
    }
}

pub fn code_age_at_exchange(provider: &str, age: Duration) {
    if enabled() {
        histogram!(CODE_AGE_AT_EXCHANGE, "provider" => provider_label(provider)).record(age);
    }
}

/// One token-endpoint call; `outcome` is "ok" or a failure class code.
pub fn token_request(
    provider: &str,
    grant_type: &'static str,
    outcome: &'static str,
    elapsed: Duration,
) {
    if !enabled() {
        return;
    }
    let provider = provider_label(provider);
    counter!(TOKEN_REQUESTS, "provider" => provider.clone(), "grant_type" => grant_type, "outcome" => outcome)
        .increment(1);
    histogram!(TOKEN_REQUEST_DURATION, "provider" => provider, "grant_type" => grant_type)
        .record(elapsed);
}

/// What started a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A credential request (the API's `credentials`, or `force_refresh`).
    OnDemand,
    /// The background refresher.
    Background,
}

impl Trigger {
    pub fn label(self) -> &'static str {
        match self {
            Trigger::OnDemand => "on_demand",
            Trigger::Background => "background",
        }
    }
}

/// One finished refresh; `outcome` is "ok" or a stable failure code.
pub fn refresh(trigger: Trigger, outcome: &'static str) {
    if enabled() {
        counter!(REFRESHES, "trigger" => trigger.label(), "outcome" => outcome).increment(1);
    }
}

/// A refresh lease claim that found another instance (or task) holding it.
pub fn lease_contention(trigger: Trigger) {
    if enabled() {
        counter!(REFRESH_LEASE_CONTENTION, "trigger" => trigger.label()).increment(1);
    }
}

/// One webhook delivery attempt; `outcome` is a fixed class (`delivered`, `retried`,
/// `failed`, `gave_up`).
pub fn webhook_delivery(outcome: &'static str) {
    if enabled() {
        counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
    }
}

pub fn set_webhook_outbox_backlog(waiting: u64) {
    if enabled() {
        gauge!(WEBHOOK_OUTBOX_BACKLOG).set(waiting as f64);
    }
}

pub fn set_refresh_backlog(due: u64) {
    if enabled() {
        gauge!(REFRESH_BACKLOG).set(due as f64);
    }
}

pub fn set_pool_connections(in_use: u64, idle: u64) {
    if enabled() {
        gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(in_use as f64);
        gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(idle as f64);
    }
}

/// `provider` is a configured id (or "other" for rows of a provider no longer configured).
pub fn set_connections(provider: &str, status: ConnectionStatus, count: u64) {
    if enabled() {
        gauge!(CONNECTIONS, "provider" => provider_label(provider), "status" => status.as_str())
            .set(count as f64);
    }
}

/// Detached work of one kind (`background_refresh`, `refresh`, `exchange`, …) while it
/// runs: counts up now and down when dropped.
#[must_use = "the work counts as in flight until this is dropped"]
pub struct InFlight {
    kind: &'static str,
    counted: bool,
}

impl InFlight {
    pub fn start(kind: &'static str) -> Self {
        let counted = enabled();
        if counted {
            gauge!(DETACHED_TASKS_IN_FLIGHT, "kind" => kind).increment(1.0);
        }
        Self { kind, counted }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.counted {
            gauge!(DETACHED_TASKS_IN_FLIGHT, "kind" => self.kind).decrement(1.0);
        }
    }
}

/// Detached work of one kind that the shutdown deadline cut off.
pub fn cut_off_at_shutdown(kind: &'static str) {
    if enabled() {
        counter!(SHUTDOWN_CUT_OFF, "kind" => kind).increment(1);
    }
}
