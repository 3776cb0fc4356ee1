//! Outbound HTTP clients: one for provider calls, one for webhook deliveries (with its
//! own guard against internal addresses).

pub mod webhook_client;
pub mod webhook_guard;

use std::time::Duration;

pub use webhook_client::Webhooks;

/// The one client for provider calls: no redirects followed, bounded timeouts, rustls.
pub fn provider_client(total: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5).min(total))
        .timeout(total)
        .user_agent(concat!("keyhaven/", env!("CARGO_PKG_VERSION")))
        .build()?)
}
