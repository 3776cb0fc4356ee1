//! The sandbox's memory: registered clients, codes and tokens, user profiles, queued
//! faults and call counters. One lock, never held across an await.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyhaven_clock::Clock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::{bullhorn, zoho};

#[derive(Debug, Clone)]
pub struct ClientRegistration {
    pub secret: String,
    pub redirect_uris: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub provider: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub login: String,
    pub scope: String,
    pub challenge: Option<String>,
    /// Zoho's `access_type` and `prompt`, which decide whether a refresh token is issued.
    pub access_type: Option<String>,
    pub prompt: Option<String>,
    /// The data center that issued the code, for providers with several (only it honours it).
    pub dc: Option<&'static str>,
    pub issued_at: OffsetDateTime,
    pub issued_instant: Instant,
    pub used: bool,
}

#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub provider: String,
    pub client_id: String,
    pub login: String,
    pub scope: String,
    /// The data center that issued the token, for providers with several.
    pub dc: Option<&'static str>,
    pub expires_at: OffsetDateTime,
    pub alive: bool,
}

/// Which calls a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    /// Code exchange at the token endpoint.
    Exchange,
    /// Refresh at the token endpoint.
    Refresh,
    /// Either kind of token request.
    Token,
    /// The who-am-I endpoint.
    Userinfo,
    /// Bullhorn's data-center discovery (`loginInfo`).
    LoginInfo,
    /// Bullhorn's REST login, where the access token is spent on a session.
    RestLogin,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FaultEffect {
    /// Wait this long, then answer normally.
    Latency { ms: u64 },
    /// Answer with this status and a JSON error body, doing nothing.
    Status { status: u16 },
    /// 429 with `Retry-After`.
    TooManyRequests { retry_after_secs: u64 },
    /// `invalid_grant`, and the grant presented is dead from now on.
    InvalidGrant,
    /// SmartRecruiters' documented failure mode: `200 {}`.
    EmptyOk,
    /// Process the request (codes consumed, tokens rotated), then never answer in time.
    DropResponse { hang_ms: u64 },
    /// The provider's own throttle answer (Zoho's `Access Denied` body, sent with
    /// `status` or else the configured throttle status; elsewhere a plain 429).
    Throttled {
        #[serde(default)]
        status: Option<u16>,
    },
    /// Answer normally, but claim a lifetime no time arithmetic can hold
    /// (`expires_in: 9223372036854775807`).
    HugeExpiry,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Fault {
    pub provider: String,
    pub target: FaultTarget,
    #[serde(flatten)]
    pub effect: FaultEffect,
    #[serde(default = "one")]
    pub times: u32,
}

impl Fault {
    /// A fault that happens once.
    pub fn once(provider: &str, target: FaultTarget, effect: FaultEffect) -> Self {
        Self {
            provider: provider.into(),
            target,
            effect,
            times: 1,
        }
    }
}

fn one() -> u32 {
    1
}

#[derive(Debug)]
pub struct World {
    pub clock: Clock,
    pub base_url: String,
    pub auto_approve: bool,
    pub clients: HashMap<(String, String), ClientRegistration>,
    pub codes: HashMap<String, CodeGrant>,
    pub refresh_tokens: HashMap<String, TokenGrant>,
    pub access_tokens: HashMap<String, TokenGrant>,
    pub profiles: HashMap<(String, String), Profile>,
    pub faults: Vec<Fault>,
    pub counters: BTreeMap<String, u64>,
    /// Woken on every count, so a test can wait for a request to arrive.
    pub signal: Arc<Notify>,
    /// Refresh requests being answered right now, and the most there ever were at once.
    pub refreshes_in_flight: u64,
    pub max_refreshes_in_flight: u64,
    pub refresh_token_uses: HashMap<String, u64>,
    pub dead_refresh_token_uses: u64,
    /// Age of each code when it was presented for exchange.
    pub code_ages: Vec<Duration>,
    /// Every code, token and verifier the sandbox issued or received, for leak tests.
    pub secrets_seen: Vec<String>,
    pub(crate) bullhorn: bullhorn::State,
    pub(crate) zoho: zoho::State,
}

impl World {
    pub fn new(clock: Clock) -> Self {
        let mut world = Self {
            clock,
            base_url: String::new(),
            auto_approve: false,
            clients: HashMap::new(),
            codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            profiles: HashMap::new(),
            faults: Vec::new(),
            counters: BTreeMap::new(),
            signal: Arc::new(Notify::new()),
            refreshes_in_flight: 0,
            max_refreshes_in_flight: 0,
            refresh_token_uses: HashMap::new(),
            dead_refresh_token_uses: 0,
            code_ages: Vec::new(),
            secrets_seen: Vec::new(),
            bullhorn: bullhorn::State::default(),
            zoho: zoho::State::default(),
        };
        bullhorn::add_default_users(&mut world);
        world
    }

    pub fn count(&mut self, name: impl Into<String>) {
        *self.counters.entry(name.into()).or_default() += 1;
        self.signal.notify_waiters();
    }

    pub fn remember(&mut self, secret: &str) {
        // An empty value is no secret (and would match every log line).
        if !secret.is_empty() && self.secrets_seen.len() < 100_000 {
            self.secrets_seen.push(secret.to_string());
        }
    }

    /// Takes the next queued fault for this provider and call, if any.
    pub fn take_fault(&mut self, provider: &str, target: FaultTarget) -> Option<FaultEffect> {
        let matches = |f: &Fault| {
            f.provider == provider
                && (f.target == target
                    || (f.target == FaultTarget::Token
                        && matches!(target, FaultTarget::Exchange | FaultTarget::Refresh)))
        };
        let index = self.faults.iter().position(matches)?;
        let fault = &mut self.faults[index];
        let effect = fault.effect.clone();
        fault.times = fault.times.saturating_sub(1);
        if fault.times == 0 {
            self.faults.remove(index);
        }
        Some(effect)
    }

    pub fn profile(&self, provider: &str, login: &str) -> Profile {
        if let Some(p) = self
            .profiles
            .get(&(provider.to_string(), login.to_string()))
        {
            return p.clone();
        }
        let digest = Sha256::digest(format!("{provider}/{login}").as_bytes());
        let id: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        let local = login.split('@').next().unwrap_or(login);
        let mut first = local
            .split(['.', '_', '-'])
            .next()
            .unwrap_or(local)
            .to_string();
        if let Some(c) = first.get_mut(0..1) {
            c.make_ascii_uppercase();
        }
        Profile {
            id: format!("u{id}"),
            email: if login.contains('@') {
                login.to_string()
            } else {
                format!("{login}@example.com")
            },
            first_name: first,
            last_name: "Sandbox".into(),
        }
    }

    /// A stable number for a user, for providers whose ids are numeric: the profile's id
    /// when a test set a numeric one, else one derived from the login.
    pub fn numeric_id(&self, provider: &str, login: &str) -> u64 {
        if let Some(id) = self
            .profiles
            .get(&(provider.to_string(), login.to_string()))
            .and_then(|p| p.id.parse().ok())
        {
            return id;
        }
        let digest = Sha256::digest(format!("{provider}#{login}").as_bytes());
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        // Nine digits after a fixed leading one: plausible, never zero, never too large.
        1_000_000_000 + u64::from_be_bytes(bytes) % 1_000_000_000
    }

    /// Ends every grant of one upstream user, as when an account is deleted upstream.
    /// Bullhorn REST sessions of that user end too (not counted).
    pub fn revoke_user(&mut self, provider: &str, login: &str) -> usize {
        let mut n = 0;
        for grant in self
            .refresh_tokens
            .values_mut()
            .chain(self.access_tokens.values_mut())
        {
            if grant.provider == provider && grant.login == login && grant.alive {
                grant.alive = false;
                n += 1;
            }
        }
        if provider == bullhorn::KEY {
            self.bullhorn.end_sessions_of(login);
        }
        n
    }
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::Rng::fill(&mut rand::rng(), buf.as_mut_slice());
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
