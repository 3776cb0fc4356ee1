//! `keyhaven sandbox`: a local imitation of the providers, quirks included, with a
//! consent page, fault injection and call counters that tests read.
//!
//! Each provider lives under its own path prefix; hosts of the real services become
//! path segments on this one server:
//!
//! - SmartRecruiters: `/smartrecruiters/…`
//! - a standards-compliant OAuth 2.0 server: `/oauth2/…`
//! - Bullhorn: `/bullhorn/{dc}/oauth/…` (auth host) and `/bullhorn/{dc}/rest-services/…`
//!   (REST host), `dc` one of `east`, `west`, `emea`
//! - Zoho Recruit: `/zoho/accounts/{dc}/…` (accounts server) and `/zoho/recruit/{dc}/…`
//!   (Recruit host), `dc` one of `us`, `eu`, `in`, `au`, `jp`, `uk`, `sa`, `ca`, `cn`
//! - Hurdlr: `/hurdlr/oauth/authorize` and `/hurdlr/rest/…`
//!
//! Test knobs are `Sandbox` methods, and JSON endpoints under `/_sandbox/…`.

mod bullhorn;
mod consent;
mod fault;
mod flavor;
mod hurdlr;
mod token;
pub mod world;
mod zoho;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use keyhaven_clock::Clock;
use serde::Deserialize;
use tokio::net::TcpListener;

pub use flavor::Flavor;
pub use world::{Fault, FaultEffect, FaultTarget, Profile, World};

/// A handle on a running (or routable) sandbox; clones share one world.
#[derive(Clone)]
pub struct Sandbox {
    world: Arc<Mutex<World>>,
}

impl Sandbox {
    pub fn new(clock: Clock) -> Self {
        Self {
            world: Arc::new(Mutex::new(World::new(clock))),
        }
    }

    /// The world, even if a panicking holder poisoned the lock (its data stays usable).
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Binds and serves in the background; returns the base URL.
    pub async fn spawn(&self, addr: SocketAddr) -> anyhow::Result<String> {
        let listener = TcpListener::bind(addr).await?;
        let base = format!("http://{}", listener.local_addr()?);
        self.world().base_url = base.clone();
        let app = self.router();
        let listener = listener.tap_io(no_delay as fn(&mut tokio::net::TcpStream));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "sandbox server stopped");
            }
        });
        Ok(base)
    }

    pub fn router(&self) -> Router {
        let mut router = Router::new()
            .route("/_sandbox/counters", get(counters))
            .route("/_sandbox/faults", post(add_fault))
            .route("/_sandbox/clock", post(advance_clock))
            .route("/_sandbox/auto-approve", post(set_auto_approve))
            .route("/_sandbox/profiles", post(set_profile))
            .route("/_sandbox/revoke-user", post(revoke_user));
        for flavor in Flavor::all() {
            router = router.merge(flavor.router());
        }
        router.with_state(self.clone())
    }

    /// Registers a client of one provider with its exact redirect URIs.
    pub fn register_client(
        &self,
        provider: &str,
        client_id: &str,
        secret: &str,
        redirect_uris: Vec<String>,
    ) {
        self.world().clients.insert(
            (provider.into(), client_id.into()),
            world::ClientRegistration {
                secret: secret.into(),
                redirect_uris,
            },
        );
    }

    pub fn set_auto_approve(&self, on: bool) {
        self.world().auto_approve = on;
    }

    pub fn add_fault(&self, fault: Fault) {
        self.world().faults.push(fault);
    }

    pub fn set_profile(&self, provider: &str, login: &str, profile: Profile) {
        self.world()
            .profiles
            .insert((provider.into(), login.into()), profile);
    }

    pub fn revoke_user(&self, provider: &str, login: &str) -> usize {
        self.world().revoke_user(provider, login)
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.world().counters.get(name).copied().unwrap_or(0)
    }

    /// Waits until counter `name` reaches `at_least` (e.g. until a refresh request has
    /// arrived: `smartrecruiters.token.refresh_token`; until the sandbox has rotated the
    /// grant: `smartrecruiters.refreshed`). Tests wait on this instead of sleeping.
    pub async fn wait_for(&self, name: &str, at_least: u64) {
        let signal = self.world().signal.clone();
        loop {
            let notified = signal.notified();
            tokio::pin!(notified);
            // Registered before the check, so a count in between is not missed.
            notified.as_mut().enable();
            if self.counter(name) >= at_least {
                return;
            }
            notified.await;
        }
    }

    /// The most refresh requests the sandbox was answering at the same moment.
    pub fn max_refreshes_in_flight(&self) -> u64 {
        self.world().max_refreshes_in_flight
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.world().counters.clone()
    }

    /// The most times any single refresh token was presented.
    pub fn max_refresh_token_uses(&self) -> u64 {
        self.world()
            .refresh_token_uses
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// How often a refresh token was presented after it had died.
    pub fn dead_refresh_token_uses(&self) -> u64 {
        self.world().dead_refresh_token_uses
    }

    /// Drains the recorded ages of codes at exchange time.
    pub fn take_code_ages(&self) -> Vec<Duration> {
        std::mem::take(&mut self.world().code_ages)
    }

    /// Every code, token and verifier issued or received so far.
    pub fn secrets_seen(&self) -> Vec<String> {
        self.world().secrets_seen.clone()
    }
}

async fn counters(State(sb): State<Sandbox>) -> Json<serde_json::Value> {
    let w = sb.world();
    Json(serde_json::json!({
        "counters": w.counters,
        "max_refresh_token_uses": w.refresh_token_uses.values().copied().max().unwrap_or(0),
        "dead_refresh_token_uses": w.dead_refresh_token_uses,
        "max_refreshes_in_flight": w.max_refreshes_in_flight,
    }))
}

async fn add_fault(State(sb): State<Sandbox>, Json(fault): Json<Fault>) -> Json<serde_json::Value> {
    sb.add_fault(fault);
    Json(serde_json::json!({ "ok": true }))
}

#[derive(Deserialize)]
struct ClockBody {
    advance_secs: i64,
}

async fn advance_clock(
    State(sb): State<Sandbox>,
    Json(body): Json<ClockBody>,
) -> Json<serde_json::Value> {
    let w = sb.world();
    w.clock.advance(time::Duration::seconds(body.advance_secs));
    Json(serde_json::json!({ "now": w.clock.now().unix_timestamp() }))
}

#[derive(Deserialize)]
struct AutoApprove {
    on: bool,
}

async fn set_auto_approve(
    State(sb): State<Sandbox>,
    Json(body): Json<AutoApprove>,
) -> Json<serde_json::Value> {
    sb.set_auto_approve(body.on);
    Json(serde_json::json!({ "auto_approve": body.on }))
}

#[derive(Deserialize)]
struct ProfileBody {
    provider: String,
    login: String,
    #[serde(flatten)]
    profile: Profile,
}

async fn set_profile(
    State(sb): State<Sandbox>,
    Json(body): Json<ProfileBody>,
) -> Json<serde_json::Value> {
    sb.set_profile(&body.provider, &body.login, body.profile);
    Json(serde_json::json!({ "ok": true }))
}

#[derive(Deserialize)]
struct RevokeBody {
    provider: String,
    login: String,
}

async fn revoke_user(
    State(sb): State<Sandbox>,
    Json(body): Json<RevokeBody>,
) -> Json<serde_json::Value> {
    let revoked = sb.revoke_user(&body.provider, &body.login);
    Json(serde_json::json!({ "revoked": revoked }))
}

/// Responses leave as soon as they are written, not after the peer's delayed ACK; failing
/// to set the option only costs latency.
fn no_delay(tcp: &mut tokio::net::TcpStream) {
    let _ = tcp.set_nodelay(true);
}
