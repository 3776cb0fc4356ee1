//! The application state every handler and service receives; cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::Settings;
use crate::{custody, db, lifecycle, web, webhooks};

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub pool: db::Pool,
    pub http: reqwest::Client,
    pub clock: Clock,
    /// Names this process as the holder of refresh leases.
    pub instance_id: String,
    pub refresh_locks: lifecycle::RefreshLocks,
    pub api_keys: web::api_keys::ApiKeyCache,
    /// Refreshes and code exchanges running on their own tasks; drained at shutdown.
    pub custody: custody::Custody,
    /// The webhook delivery client (its own address guard) and attempt counter.
    pub webhooks: webhooks::Webhooks,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(settings: Settings, pool: db::Pool, clock: Clock) -> anyhow::Result<Self> {
        let http = outbound_client(settings.http_timeout())?;
        let instance_id = format!("keyhaven-{}", uuid::Uuid::new_v4().simple());
        let webhooks = webhooks::Webhooks::new(&settings.webhooks)?;
        Ok(Self(Arc::new(Inner {
            settings,
            pool,
            http,
            clock,
            instance_id,
            refresh_locks: lifecycle::RefreshLocks::default(),
            api_keys: web::api_keys::ApiKeyCache::default(),
            custody: custody::Custody::default(),
            webhooks,
        })))
    }
}

/// The one client for provider calls: no redirects followed, bounded timeouts, rustls.
pub fn outbound_client(total: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5).min(total))
        .timeout(total)
        .user_agent(concat!("keyhaven/", env!("CARGO_PKG_VERSION")))
        .build()?)
}
