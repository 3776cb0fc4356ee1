//! The application state every handler and service receives; cheap to clone.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Settings;
use crate::outbound::{self, Webhooks};
use crate::{custody, db};

pub mod api_key_cache;
pub mod refresh_locks;

use api_key_cache::ApiKeyCache;
use refresh_locks::RefreshLocks;

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
    pub refresh_locks: RefreshLocks,
    pub api_keys: ApiKeyCache,
    /// Refreshes and code exchanges running on their own tasks; drained at shutdown.
    pub custody: custody::Custody,
    /// The webhook delivery client (its own address guard) and attempt counter.
    pub webhooks: Webhooks,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(settings: Settings, pool: db::Pool, clock: Clock) -> anyhow::Result<Self> {
        let http = outbound::provider_client(settings.http_timeout())?;
        let instance_id = format!("keyhaven-{}", uuid::Uuid::new_v4().simple());
        let webhooks = Webhooks::new(&settings.webhooks)?;
        Ok(Self(Arc::new(Inner {
            settings,
            pool,
            http,
            clock,
            instance_id,
            refresh_locks: RefreshLocks::default(),
            api_keys: ApiKeyCache::default(),
            custody: custody::Custody::default(),
            webhooks,
        })))
    }
}
