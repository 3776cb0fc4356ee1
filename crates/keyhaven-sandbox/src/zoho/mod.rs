//! Zoho Recruit: one accounts server per data center (`/zoho/accounts/{dc}`) and one
//! Recruit host (`/zoho/recruit/{dc}`). Every user starts authorizing at the US accounts
//! server and comes back with their own data center in the callback; only that data
//! center honours their code and tokens. Owns Zoho's users and token bookkeeping.

mod recruit;
mod token;

use std::collections::{HashMap, VecDeque};

use axum::Json;
use axum::Router;
use axum::extract::State as Shared;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::world::{World, random_hex};
use super::{Sandbox, consent};

pub const KEY: &str = "zoho";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataCenter {
    /// The `location` Zoho names in the callback.
    pub location: &'static str,
    /// The top-level domain of the real API host (`www.zohoapis.{tld}`).
    api_tld: &'static str,
}

/// Zoho's data centers (accounts.zoho.com, .eu, .in, .com.au, .jp, .uk, zoho.sa,
/// zohocloud.ca, zoho.com.cn), each emulated under its location.
const DATA_CENTERS: [DataCenter; 9] = [
    dc("us", "com"),
    dc("eu", "eu"),
    dc("in", "in"),
    dc("au", "com.au"),
    dc("jp", "jp"),
    dc("uk", "uk"),
    dc("sa", "sa"),
    dc("ca", "ca"),
    dc("cn", "com.cn"),
];

const fn dc(location: &'static str, api_tld: &'static str) -> DataCenter {
    DataCenter { location, api_tld }
}

const US: DataCenter = DATA_CENTERS[0];

impl DataCenter {
    pub fn find(location: &str) -> Option<DataCenter> {
        DATA_CENTERS.into_iter().find(|d| d.location == location)
    }

    /// The emulated accounts server, sent as `accounts-server` in the callback.
    pub fn accounts_url(self, base_url: &str) -> String {
        format!("{base_url}/zoho/accounts/{}", self.location)
    }

    /// `api_domain` in token answers: the real host, as Zoho sends it (Recruit itself
    /// lives elsewhere, which is the quirk).
    fn api_domain(self) -> String {
        format!("https://www.zohoapis.{}", self.api_tld)
    }
}

/// Zoho's memory beyond the shared code and token maps.
#[derive(Debug)]
pub struct State {
    /// Users a test placed in a data center; everyone else is placed by `home`.
    homes: HashMap<String, DataCenter>,
    /// Each user's refresh tokens, oldest first (at most 20 live).
    refresh_by_user: HashMap<String, VecDeque<String>>,
    /// Each refresh token's access tokens, oldest first (at most 30 live).
    access_by_refresh: HashMap<String, VecDeque<String>>,
    /// When each user's refresh tokens were created (at most 5 a minute).
    created: HashMap<String, VecDeque<OffsetDateTime>>,
    /// The throttle answer was seen both as 400 and as 200.
    throttle_status: StatusCode,
}

impl Default for State {
    fn default() -> Self {
        Self {
            homes: HashMap::new(),
            refresh_by_user: HashMap::new(),
            access_by_refresh: HashMap::new(),
            created: HashMap::new(),
            throttle_status: StatusCode::BAD_REQUEST,
        }
    }
}

/// The user's data center: the one a test set with `add_zoho_user`, else the login's
/// first dot-separated part when it names one (`eu.alice` lives in `eu`, `jp.bob` in
/// `jp`), else `us`.
pub fn home(w: &World, login: &str) -> DataCenter {
    if let Some(dc) = w.zoho.homes.get(login) {
        return *dc;
    }
    login
        .split_once('.')
        .and_then(|(prefix, _)| DataCenter::find(prefix))
        .unwrap_or(US)
}

/// Zoho's codes and tokens look like `1000.<hex>.<hex>`.
pub fn new_token() -> String {
    format!("1000.{}.{}", random_hex(16), random_hex(16))
}

/// The user as Recruit's `users?type=CurrentUser` shows them.
fn user(w: &World, login: &str) -> Value {
    let p = w.profile(KEY, login);
    json!({
        "id": w.numeric_id(KEY, login).to_string(),
        "zuid": w.numeric_id("zoho/zuid", login).to_string(),
        "full_name": format!("{} {}", p.first_name, p.last_name),
        "first_name": p.first_name,
        "last_name": p.last_name,
        "email": p.email,
        "status": "active",
    })
}

pub fn router(authorize: &'static str) -> Router<Sandbox> {
    Router::new()
        .route(authorize, get(consent::show).post(consent::decide))
        .route("/zoho/accounts/{dc}/oauth/v2/token", post(token::token))
        .route(
            "/zoho/accounts/{dc}/oauth/v2/token/revoke",
            post(token::revoke),
        )
        .route(
            "/zoho/recruit/{dc}/recruit/v2/users",
            get(recruit::current_user),
        )
        .route("/_sandbox/zoho/users", post(add_user))
        .route("/_sandbox/zoho/throttle-status", post(set_throttle_status))
}

/// Zoho's test knobs.
impl Sandbox {
    /// Places a Zoho user in a data center (`us`, `eu`, `in`, `au`, `jp`, `uk`, `sa`,
    /// `ca`, `cn`).
    pub fn add_zoho_user(&self, login: &str, dc: &str) -> anyhow::Result<()> {
        let Some(dc) = DataCenter::find(dc) else {
            anyhow::bail!("unknown Zoho data center {dc:?}");
        };
        self.world().zoho.homes.insert(login.into(), dc);
        Ok(())
    }

    /// The HTTP status of Zoho's throttle answer (400 by default; 200 was seen too).
    pub fn set_zoho_throttle_status(&self, status: u16) -> anyhow::Result<()> {
        self.world().zoho.throttle_status = StatusCode::from_u16(status)?;
        Ok(())
    }
}

#[derive(Deserialize)]
struct UserBody {
    login: String,
    dc: String,
}

async fn add_user(
    Shared(sb): Shared<Sandbox>,
    Json(body): Json<UserBody>,
) -> (StatusCode, Json<Value>) {
    match sb.add_zoho_user(&body.login, &body.dc) {
        Ok(()) => (StatusCode::OK, Json(json!({ "ok": true }))),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": e.to_string() })),
        ),
    }
}

#[derive(Deserialize)]
struct ThrottleBody {
    status: u16,
}

async fn set_throttle_status(
    Shared(sb): Shared<Sandbox>,
    Json(body): Json<ThrottleBody>,
) -> (StatusCode, Json<Value>) {
    match sb.set_zoho_throttle_status(body.status) {
        Ok(()) => (StatusCode::OK, Json(json!({ "ok": true }))),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": e.to_string() })),
        ),
    }
}
