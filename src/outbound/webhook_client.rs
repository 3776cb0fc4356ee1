//! The webhook delivery client: its own address guard, no proxies, no redirects.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::webhook_guard;
use crate::config::WebhookSettings;

/// The delivery client and a counter of finished attempts (tests wait on it).
#[derive(Clone)]
pub struct Webhooks {
    pub client: reqwest::Client,
    attempts: Arc<watch::Sender<u64>>,
    /// Wakes this instance's worker (an endpoint was added here).
    wake: Arc<tokio::sync::Notify>,
}

impl Webhooks {
    pub fn new(settings: &WebhookSettings) -> anyhow::Result<Self> {
        let total = Duration::from_millis(settings.timeout_ms);
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(5).min(total))
            .timeout(total)
            .user_agent(concat!("keyhaven-webhooks/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_insecure_urls {
            builder = builder
                .https_only(true)
                .dns_resolver(Arc::new(webhook_guard::GuardedResolver));
        }
        Ok(Self {
            client: builder.build()?,
            attempts: Arc::new(watch::channel(0).0),
            wake: Arc::default(),
        })
    }

    /// Counts finished delivery attempts (whatever their outcome).
    pub fn attempts(&self) -> watch::Receiver<u64> {
        self.attempts.subscribe()
    }

    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Wakes this instance's worker at once.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn attempt_finished(&self) {
        self.attempts.send_modify(|n| *n += 1);
    }
}
