//! Start-up: binds the listeners, starts the background loops and serves until shutdown.

use std::net::SocketAddr;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::Settings;
use crate::state::AppState;
use crate::{db, lifecycle, telemetry, web, webhooks};

/// Accepted connections send each response as soon as it is written, not after the
/// peer's delayed ACK. Failing to set the option only costs latency, so it is not an error.
pub fn without_nagle(
    listener: TcpListener,
) -> axum::serve::TapIo<TcpListener, fn(&mut tokio::net::TcpStream)> {
    fn no_delay(tcp: &mut tokio::net::TcpStream) {
        let _ = tcp.set_nodelay(true);
    }
    listener.tap_io(no_delay as fn(&mut tokio::net::TcpStream))
}

/// Shutdown reached its drain deadline with work still running (each piece logged).
#[derive(Debug, thiserror::Error)]
#[error("{count} refreshes or code exchanges were cut off at the drain deadline")]
pub struct DrainCutOff {
    pub count: usize,
}

/// A bound, ready-to-run portal.
pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: AppState,
    store: web::session_store::Sessions,
}

impl Application {
    /// Connects to Postgres (creating and migrating the database) and binds the listener.
    pub async fn build(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let pool = db::connect_and_migrate(&settings.database).await?;
        Self::build_with_pool(settings, pool, clock).await
    }

    pub async fn build_with_pool(
        settings: Settings,
        pool: db::Pool,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.server.listen).await?;
        Self::build_on(listener, settings, pool, clock).await
    }

    /// Uses an already bound listener (tests bind port 0 first to learn the public URL).
    pub async fn build_on(
        listener: TcpListener,
        settings: Settings,
        pool: db::Pool,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let store = web::session_store::Sessions::new(pool.pg().clone());
        let metrics_listener = web::observe::bind_metrics(settings.server.metrics_listen).await?;
        let state = AppState::new(settings, pool, clock)?;
        Ok(Self {
            listener,
            metrics_listener,
            state,
            store,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where `/metrics` is served, when `server.metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then drains: stops accepting and claiming, lets
    /// requests, refreshes and code exchanges under way finish within the drain deadline.
    /// An error [`DrainCutOff`] means work was still running at the deadline.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let custody = state.custody.clone();
        let housekeeping = tokio::spawn(web::housekeeping(state.clone(), self.store.clone()));
        let refresher = state
            .settings
            .refresher
            .enabled
            .then(|| tokio::spawn(lifecycle::refresher::run(state.clone())));
        // Metrics stay up through the drain, so it can be watched.
        let metrics = self
            .metrics_listener
            .map(|l| tokio::spawn(web::observe::serve_metrics(l, state.clone())));
        let deliveries = tokio::spawn(webhooks::worker::run(state.clone()));
        let app = web::router(self.state, self.store);
        // The peer address identifies a client for the admin sign-in limit.
        let server = axum::serve(
            without_nagle(self.listener),
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(custody.stopped());
        let mut server = tokio::spawn(async move { server.await });
        tokio::select! {
            result = &mut server => {
                housekeeping.abort();
                if let Some(task) = &metrics {
                    task.abort();
                }
                deliveries.abort();
                return match result {
                    Ok(result) => Ok(result?),
                    Err(e) => Err(e.into()),
                };
            }
            () = shutdown => {}
        }
        let deadline = state.settings.drain_deadline();
        tracing::info!(
            in_flight = custody.in_flight(),
            deadline_secs = deadline.as_secs(),
            "draining: no new requests or claims; waiting for work under way"
        );
        custody.begin_drain();
        housekeeping.abort();
        let started = tokio::time::Instant::now();
        if let Some(task) = refresher {
            // It stops at its next look; the refreshes it started are tracked by custody.
            let _ = tokio::time::timeout(deadline, task).await;
        }
        // It stops claiming at once and lets attempts under way end within the deadline.
        let _ = tokio::time::timeout(deadline.saturating_sub(started.elapsed()), deliveries).await;
        let left = deadline.saturating_sub(started.elapsed());
        // Requests in flight end on their own (their work is tracked), bounded by the deadline.
        let _ = tokio::time::timeout(left, server).await;
        let cut_off = custody
            .drain(deadline.saturating_sub(started.elapsed()))
            .await;
        if let Some(task) = metrics {
            task.abort();
        }
        if cut_off.is_empty() {
            tracing::info!("drained; exiting");
            return Ok(());
        }
        for work in &cut_off {
            telemetry::metrics::cut_off_at_shutdown("refresh_or_exchange");
            tracing::error!(work = %work, "shutdown deadline reached; work cut off");
        }
        Err(DrainCutOff {
            count: cut_off.len(),
        }
        .into())
    }
}
