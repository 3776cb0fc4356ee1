//! Bullhorn: one auth host (`/bullhorn/{dc}/oauth`) and one REST host
//! (`/bullhorn/{dc}/rest-services`) per data center. Owns Bullhorn's users (with
//! passwords: its login page asks for them) and the REST sessions.

mod oauth;
mod rest;

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::State as Shared;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::Sandbox;
use super::world::World;

pub const KEY: &str = "bullhorn";

/// The data centers, each with the cluster number that prefixes its codes and tokens
/// (`N:uuid`).
const DATA_CENTERS: [(&str, u32); 3] = [("east", 2), ("west", 5), ("emea", 40)];

/// The data center of this name, as the one static string the sandbox keeps for it.
pub fn data_center(name: &str) -> Option<&'static str> {
    DATA_CENTERS
        .iter()
        .find(|(dc, _)| *dc == name)
        .map(|(dc, _)| *dc)
}

/// Codes and tokens look like `5:9a860297-de13-4c61-9541-7c3191cc51eb`.
pub fn new_token(dc: Option<&str>) -> String {
    let cluster = DATA_CENTERS
        .iter()
        .find(|(name, _)| Some(*name) == dc)
        .map_or(0, |(_, n)| *n);
    format!("{cluster}:{}", uuid::Uuid::new_v4())
}

pub fn auth_url(base_url: &str, dc: &str) -> String {
    format!("{base_url}/bullhorn/{dc}/oauth")
}

pub fn rest_url(base_url: &str, dc: &str) -> String {
    format!("{base_url}/bullhorn/{dc}/rest-services")
}

#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
    pub password: String,
    pub dc: &'static str,
    pub user_id: u64,
    /// The corporation token in REST URLs (`…/rest-services/{corp}/`).
    pub corp: String,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub username: String,
    pub dc: &'static str,
    pub corp: String,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Default)]
pub struct State {
    /// In registration order: auto-approve signs in the first user of a data center.
    users: Vec<User>,
    /// REST sessions by BhRestToken.
    sessions: HashMap<String, Session>,
    /// The demo's sign-up on first sight: any username and password sign in.
    open_sign_in: bool,
}

impl State {
    pub fn user(&self, username: &str) -> Option<&User> {
        self.users.iter().find(|u| u.username == username)
    }

    fn first_in(&self, dc: &str) -> Option<&User> {
        self.users.iter().find(|u| u.dc == dc)
    }

    /// Whether any username and password sign in (the demo).
    pub fn open_sign_in(&self) -> bool {
        self.open_sign_in
    }

    pub fn end_sessions_of(&mut self, username: &str) {
        self.sessions.retain(|_, s| s.username != username);
    }
}

/// Present from the start: `east.user`, `west.user` and `emea.user`, each in its own
/// data center, password `bullhorn-pass`.
pub fn add_default_users(w: &mut World) {
    for (dc, _) in DATA_CENTERS {
        add_user(w, &format!("{dc}.user"), "bullhorn-pass", dc);
    }
}

/// With open sign-in, a username seen for the first time becomes a user in the data
/// center its ending names (`jane.west`, `jane.emea`; `emea.jane` too, like the default
/// users), otherwise in `home`. Without it, or for a blank or overlong name, nothing.
pub fn sign_up_on_first_sight(w: &mut World, username: &str, home: &'static str) {
    if !w.bullhorn.open_sign_in
        || username.is_empty()
        || username.len() > 100
        || username.chars().any(char::is_control)
        || w.bullhorn.user(username).is_some()
    {
        return;
    }
    add_user(w, username, "", named_data_center(username).unwrap_or(home));
}

/// The data center a username's ending (or beginning) names, if any.
pub fn named_data_center(username: &str) -> Option<&'static str> {
    let lower = username.to_ascii_lowercase();
    let suffix = lower.rsplit_once('.').and_then(|(_, s)| data_center(s));
    let prefix = lower.split_once('.').and_then(|(p, _)| data_center(p));
    suffix.or(prefix)
}

/// The password joins `secrets_seen` only when a client sends it: the default one is too
/// short for the leak tests' search.
fn add_user(w: &mut World, username: &str, password: &str, dc: &'static str) {
    let user = User {
        username: username.into(),
        password: password.into(),
        dc,
        user_id: w.numeric_id(KEY, username),
        corp: corp_token(username),
    };
    match w.bullhorn.users.iter_mut().find(|u| u.username == username) {
        Some(existing) => *existing = user,
        None => w.bullhorn.users.push(user),
    }
}

/// Six stable characters per user, like Bullhorn's corporation tokens.
fn corp_token(username: &str) -> String {
    let digest = Sha256::digest(format!("corp/{username}").as_bytes());
    digest.iter().take(3).map(|b| format!("{b:02x}")).collect()
}

pub fn router(authorize: &'static str) -> Router<Sandbox> {
    Router::new()
        .route(authorize, get(oauth::authorize).post(oauth::sign_in))
        .route("/bullhorn/{dc}/oauth/token", post(oauth::token))
        .route(
            "/bullhorn/{dc}/rest-services/loginInfo",
            get(rest::login_info),
        )
        .route(
            "/bullhorn/{dc}/rest-services/login",
            get(rest::login).post(rest::login),
        )
        .route("/bullhorn/{dc}/rest-services/{corp}/ping", get(rest::ping))
        .route(
            "/bullhorn/{dc}/rest-services/{corp}/settings/userId",
            get(rest::user_id),
        )
        .route(
            "/bullhorn/{dc}/rest-services/{corp}/logout",
            get(rest::logout).post(rest::logout),
        )
        .route("/_sandbox/bullhorn/users", post(add_user_endpoint))
        .route(
            "/_sandbox/bullhorn/password",
            post(change_password_endpoint),
        )
        .route(
            "/_sandbox/bullhorn/expire-sessions",
            post(expire_sessions_endpoint),
        )
}

/// Bullhorn's test knobs.
impl Sandbox {
    /// Registers (or replaces) a Bullhorn user in a data center (`east`, `west`, `emea`).
    pub fn add_bullhorn_user(
        &self,
        username: &str,
        password: &str,
        dc: &str,
    ) -> anyhow::Result<()> {
        let Some(dc) = data_center(dc) else {
            anyhow::bail!("unknown Bullhorn data center {dc:?}");
        };
        add_user(&mut self.world(), username, password, dc);
        Ok(())
    }

    /// The demo's Bullhorn: any username and password sign in, a new username becoming
    /// a user in the data center its ending names (`.west`, `.emea`), otherwise in east
    /// (looked up first) or in the data center whose sign-in page it was typed into.
    pub fn set_bullhorn_open_sign_in(&self, on: bool) {
        self.world().bullhorn.open_sign_in = on;
    }

    /// Changes a user's password. As at Bullhorn, a change to the user's account ends
    /// their grants (refresh and access tokens) and REST sessions; returns the number
    /// of tokens ended.
    pub fn change_bullhorn_password(&self, username: &str, new: &str) -> anyhow::Result<usize> {
        let mut w = self.world();
        let Some(dc) = w.bullhorn.user(username).map(|u| u.dc) else {
            anyhow::bail!("unknown Bullhorn user {username:?}");
        };
        add_user(&mut w, username, new, dc);
        Ok(w.revoke_user(KEY, username))
    }

    /// Ends every REST session, so the next session call answers 401; returns how many
    /// were still live.
    pub fn expire_bullhorn_sessions(&self) -> usize {
        let mut w = self.world();
        let now = w.clock.now();
        let live = w
            .bullhorn
            .sessions
            .values()
            .filter(|s| now <= s.expires_at)
            .count();
        w.bullhorn.sessions.clear();
        live
    }
}

fn knob_answer<T: serde::Serialize>(result: anyhow::Result<T>) -> (StatusCode, Json<Value>) {
    match result {
        Ok(v) => (StatusCode::OK, Json(json!({ "ok": true, "result": v }))),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": e.to_string() })),
        ),
    }
}

#[derive(Deserialize)]
struct UserBody {
    username: String,
    password: String,
    dc: String,
}

async fn add_user_endpoint(
    Shared(sb): Shared<Sandbox>,
    Json(body): Json<UserBody>,
) -> (StatusCode, Json<Value>) {
    knob_answer(sb.add_bullhorn_user(&body.username, &body.password, &body.dc))
}

#[derive(Deserialize)]
struct PasswordBody {
    username: String,
    password: String,
}

async fn change_password_endpoint(
    Shared(sb): Shared<Sandbox>,
    Json(body): Json<PasswordBody>,
) -> (StatusCode, Json<Value>) {
    knob_answer(sb.change_bullhorn_password(&body.username, &body.password))
}

async fn expire_sessions_endpoint(Shared(sb): Shared<Sandbox>) -> (StatusCode, Json<Value>) {
    knob_answer(Ok(sb.expire_bullhorn_sessions()))
}

#[cfg(test)]
mod tests {
    use super::named_data_center;

    #[test]
    fn a_new_usernames_ending_picks_its_data_center() {
        assert_eq!(named_data_center("jane.emea"), Some("emea"));
        assert_eq!(named_data_center("jane.doe.West"), Some("west"));
        assert_eq!(named_data_center("emea.jane"), Some("emea"));
        assert_eq!(named_data_center("jane"), None);
        assert_eq!(named_data_center("jane.mars"), None);
    }
}
