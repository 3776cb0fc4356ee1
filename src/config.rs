//! Typed settings, loaded once from an optional TOML file and `KEYHAVEN_*` environment
//! variables. Anything missing or invalid stops start-up with one line naming the setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use url::Url;

pub use crate::config_error::ConfigError;
use crate::crypto::KeyRing;
use crate::providers::settings::string_or_list;
pub use crate::providers::settings::{DataCenterSettings, ProviderSettings};
use crate::providers::{self, Provider};
pub use crate::telemetry::LogFormat;

const LOCAL_SOCKET_DIR: &str = "/var/run/postgresql";

/// The local Postgres: its Unix socket when there is one (cheaper per round trip than
/// TCP loopback), else 127.0.0.1:5432.
pub fn local_database_url(database: &str) -> String {
    if Path::new(LOCAL_SOCKET_DIR).join(".s.PGSQL.5432").exists() {
        format!("postgres://postgres@localhost/{database}?host={LOCAL_SOCKET_DIR}")
    } else {
        format!("postgres://postgres@127.0.0.1:5432/{database}")
    }
}

/// The raw shape of the configuration file and environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub database: DatabaseSettings,
    pub encryption_keys: Option<SecretString>,
    #[serde(default)]
    pub links: LinkSettings,
    #[serde(default)]
    pub refresher: RefresherSettings,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSettings>,
    #[serde(default)]
    pub housekeeping: HousekeepingSettings,
    #[serde(default)]
    pub logging: LoggingSettings,
    #[serde(default)]
    pub branding: crate::branding::BrandingSettings,
    #[serde(default)]
    pub webhooks: WebhookSettings,
}

/// What the periodic clean-up keeps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HousekeepingSettings {
    /// Days a connection's events are kept.
    pub event_retention_days: i64,
}

impl Default for HousekeepingSettings {
    fn default() -> Self {
        Self {
            event_retention_days: 180,
        }
    }
}

/// How log lines are written (always to stderr).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSettings {
    pub format: LogFormat,
}

/// Webhook deliveries (Standard Webhooks).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Development only: allow http endpoints and endpoints on loopback, private and
    /// link-local addresses.
    pub allow_insecure_urls: bool,
    /// Most deliveries in flight to one endpoint at once, across all instances.
    pub max_in_flight_per_endpoint: i64,
    /// How long a delivery is retried before it is marked failed, in hours.
    pub retry_hours: i64,
    /// Total timeout of one delivery attempt, in milliseconds.
    pub timeout_ms: u64,
    /// The first retry's delay in milliseconds; each later one doubles (with jitter), up
    /// to an hour.
    pub retry_base_ms: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_insecure_urls: false,
            max_in_flight_per_endpoint: 4,
            retry_hours: 24,
            timeout_ms: 10_000,
            retry_base_ms: 5_000,
        }
    }
}

/// Refreshing: on demand (credential API) and in the background.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RefresherSettings {
    /// Run the background refresher in `serve`.
    pub enabled: bool,
    /// Seconds between looks for connections due.
    pub interval_secs: u64,
    /// Most background refreshes in flight at once (per provider: `refresh_concurrency`).
    pub concurrency: usize,
    /// Connections claimed per look.
    pub batch: i64,
    /// How long a claimed refresh lease lasts, in seconds (longer than any refresh takes).
    pub lease_secs: i64,
    /// Hand out a credential only if it stays valid this many more seconds; refresh otherwise.
    pub margin_secs: i64,
}

impl Default for RefresherSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 30,
            concurrency: 16,
            batch: 200,
            lease_secs: 60,
            margin_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub public_url: Url,
    /// Total timeout of each call to a provider, in seconds (at most 10).
    pub http_timeout_secs: u64,
    /// Lifetime of an end user's browser session, in hours.
    pub session_hours: i64,
    /// An admin not seen for this many hours is signed out.
    pub admin_session_idle_hours: i64,
    /// An admin is signed out this many hours after signing in, active or not.
    pub admin_session_max_hours: i64,
    /// Behind a reverse proxy that appends the client's address to `X-Forwarded-For`:
    /// the admin sign-in limit then counts per that address instead of per proxy.
    pub trust_forwarded_for: bool,
    /// Accept plain-http provider hosts, and then only on loopback (the sandbox, tests).
    pub allow_insecure_provider_hosts: bool,
    /// On SIGTERM or Ctrl-C, how long refreshes and code exchanges already under way may
    /// take to finish and be stored, in seconds (default: twice `http_timeout_secs` + 5).
    pub drain_deadline_secs: Option<u64>,
    /// Where `/metrics` (Prometheus text) is served; off when unset.
    pub metrics_listen: Option<SocketAddr>,
    /// Origins (`https://app.example.com`) a connect link's `return_url` may lead back to.
    #[serde(deserialize_with = "string_or_list_plain")]
    pub allowed_return_origins: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            #[expect(clippy::expect_used, reason = "constant URL")]
            public_url: Url::parse("http://localhost:8080").expect("valid constant URL"),
            http_timeout_secs: 10,
            session_hours: 24,
            admin_session_idle_hours: 2,
            admin_session_max_hours: 12,
            trust_forwarded_for: false,
            allow_insecure_provider_hosts: false,
            drain_deadline_secs: None,
            metrics_listen: None,
            allowed_return_origins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    /// How long a request waits for a free connection before answering 503.
    pub acquire_timeout_secs: u64,
    /// An unused connection is closed after this long (0: never).
    pub idle_timeout_secs: u64,
    /// Every connection is replaced after this long (0: never).
    pub max_lifetime_secs: u64,
    /// Set on every pooled connection (0: the server's default).
    pub statement_timeout_secs: u64,
    pub lock_timeout_secs: u64,
    pub idle_in_transaction_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from(local_database_url("keyhaven")),
            max_connections: 10,
            acquire_timeout_secs: 3,
            idle_timeout_secs: 600,
            max_lifetime_secs: 1800,
            statement_timeout_secs: 30,
            lock_timeout_secs: 10,
            idle_in_transaction_timeout_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkSettings {
    pub connect_link_hours: i64,
    pub reconnect_link_days: i64,
}

impl Default for LinkSettings {
    fn default() -> Self {
        Self {
            connect_link_hours: 1,
            reconnect_link_days: 7,
        }
    }
}

/// One `server.allowed_return_origins` entry: `scheme://host[:port]`, nothing more.
pub fn parse_allowed_origin(raw: &str) -> Result<url::Origin, String> {
    let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL ({e})"))?;
    let bare = matches!(url.scheme(), "http" | "https")
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && !raw.trim_end_matches('/').ends_with('?');
    if !bare || url.host().is_none() {
        return Err(format!(
            "{raw:?} must be an origin such as https://app.example.com (no path, query or credentials)"
        ));
    }
    Ok(url.origin())
}

fn string_or_list_plain<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(string_or_list(d)?.unwrap_or_default())
}

/// Everything the application needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub keys: KeyRing,
    pub links: LinkSettings,
    pub refresher: RefresherSettings,
    pub webhooks: WebhookSettings,
    /// Offered providers in display order.
    pub providers: Vec<Provider>,
    /// Configured but not offered, with the reason (shown to admins).
    pub unavailable_providers: Vec<(String, String)>,
    pub housekeeping: HousekeepingSettings,
    /// Per provider id, the line its connect card shows (`providers.<id>.connect_hint`).
    pub connect_hints: BTreeMap<String, String>,
    pub logging: LoggingSettings,
    /// Shared: every page request puts it in scope (see `web::brand`).
    pub branding: std::sync::Arc<crate::branding::Branding>,
    /// `server.allowed_return_origins`, each as its parsed origin.
    pub return_origins: Vec<url::Origin>,
}

impl Settings {
    pub fn http_timeout(&self) -> Duration {
        Duration::from_secs(self.server.http_timeout_secs)
    }

    /// How long shutdown waits for work that already reached a provider.
    pub fn drain_deadline(&self) -> Duration {
        Duration::from_secs(
            self.server
                .drain_deadline_secs
                .unwrap_or(2 * self.server.http_timeout_secs + 5),
        )
    }

    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.id == id)
    }

    /// Cookies are Secure unless the portal is plain http on localhost.
    pub fn secure_cookies(&self) -> bool {
        let url = &self.server.public_url;
        !(url.scheme() == "http"
            && matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")))
    }

    /// A cookie's name: with the `__Host-` prefix on https, so that no other host (a
    /// sibling subdomain) can set or shadow it.
    pub fn cookie_name(&self, name: &str) -> String {
        if self.server.public_url.scheme() == "https" {
            format!("__Host-{name}")
        } else {
            name.to_string()
        }
    }

    /// `{public_url}/oauth/{provider}/callback`, the redirect URI to register.
    pub fn redirect_uri(&self, provider_id: &str) -> String {
        format!("{}/oauth/{provider_id}/callback", self.public_base())
    }

    pub fn public_base(&self) -> &str {
        self.server.public_url.as_str().trim_end_matches('/')
    }
}

/// Reads the file (if any) and the environment into raw settings.
pub fn load_raw(file: Option<&Path>) -> Result<RawSettings, ConfigError> {
    let mut figment = Figment::new();
    let file = file
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("KEYHAVEN_CONFIG").map(Into::into));
    if let Some(path) = &file {
        if !path.exists() {
            return Err(ConfigError::new(
                "KEYHAVEN_CONFIG",
                format!("file {} not found", path.display()),
            ));
        }
        figment = figment.merge(Toml::file(path));
    }
    // These variables name the file or steer tools; they are not settings.
    let not_settings = ["CONFIG", "PRINT_OPENAPI", "DEV_DATABASE_BASE"];
    figment = figment
        .merge(Env::prefixed("KEYHAVEN_").ignore(&not_settings).split("__"))
        .merge(
            Env::raw()
                .only(&["DATABASE_URL"])
                .map(|_| "database.url".into()),
        );
    figment.extract().map_err(|e| {
        let setting = if e.path.is_empty() {
            "configuration".to_string()
        } else {
            e.path.join(".")
        };
        ConfigError::new(setting, problem(&e.kind))
    })
}

/// What is wrong, without the value: a secret typed into the wrong place (or read from
/// the environment as a number) must not be echoed on the start-up error line, and a
/// TOML syntax error's later lines quote the file.
fn problem(kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    match kind {
        Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) => {
            format!("invalid value: expected {expected}")
        }
        Kind::Message(message) => message.lines().next().unwrap_or_default().to_string(),
        other => other.to_string(),
    }
}

impl RawSettings {
    /// Validates everything and builds the provider list.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        use secrecy::ExposeSecret;
        if !matches!(self.server.public_url.scheme(), "http" | "https") {
            return Err(ConfigError::new(
                "server.public_url",
                "must be an http or https URL",
            ));
        }
        if self.server.http_timeout_secs == 0 || self.server.http_timeout_secs > 10 {
            return Err(ConfigError::new(
                "server.http_timeout_secs",
                "must be between 1 and 10",
            ));
        }
        let r = &self.refresher;
        if r.concurrency == 0 || r.batch <= 0 || r.interval_secs == 0 {
            return Err(ConfigError::new(
                "refresher",
                "concurrency, batch and interval_secs must be positive",
            ));
        }
        if r.lease_secs < 3 * self.server.http_timeout_secs as i64 || r.margin_secs < 0 {
            return Err(ConfigError::new(
                "refresher.lease_secs",
                "must be at least three times server.http_timeout_secs (a refresh may retry once and log in)",
            ));
        }
        let w = &self.webhooks;
        if w.max_in_flight_per_endpoint <= 0 || w.retry_hours <= 0 || w.timeout_ms == 0 {
            return Err(ConfigError::new(
                "webhooks",
                "max_in_flight_per_endpoint, retry_hours and timeout_ms must be positive",
            ));
        }
        if self.database.acquire_timeout_secs == 0 {
            return Err(ConfigError::new(
                "database.acquire_timeout_secs",
                "must be positive",
            ));
        }
        let s = &self.server;
        if s.admin_session_idle_hours <= 0 || s.admin_session_idle_hours > 24 {
            return Err(ConfigError::new(
                "server.admin_session_idle_hours",
                "must be between 1 and 24",
            ));
        }
        if s.admin_session_max_hours < s.admin_session_idle_hours
            || s.admin_session_max_hours > 24 * 7
        {
            return Err(ConfigError::new(
                "server.admin_session_max_hours",
                "must be at least server.admin_session_idle_hours and at most 168",
            ));
        }
        let ranges: [(&str, i64, i64, i64); 7] = [
            (
                "server.session_hours",
                self.server.session_hours,
                1,
                24 * 30,
            ),
            (
                "links.connect_link_hours",
                self.links.connect_link_hours,
                1,
                24 * 30,
            ),
            (
                "links.reconnect_link_days",
                self.links.reconnect_link_days,
                1,
                90,
            ),
            (
                "housekeeping.event_retention_days",
                self.housekeeping.event_retention_days,
                1,
                3650,
            ),
            (
                "database.max_connections",
                i64::from(self.database.max_connections),
                1,
                1000,
            ),
            (
                "refresher.interval_secs",
                i64::try_from(r.interval_secs).unwrap_or(i64::MAX),
                1,
                3600,
            ),
            ("refresher.margin_secs", r.margin_secs, 0, 3600),
        ];
        for (setting, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::new(
                    setting,
                    format!("must be between {min} and {max} (got {value})"),
                ));
            }
        }
        let keys = match &self.encryption_keys {
            None => {
                return Err(ConfigError::new(
                    "KEYHAVEN_ENCRYPTION_KEYS",
                    "missing: set it to kid:base64-32-byte-key (generate one with `keyhaven keys generate`)",
                ));
            }
            Some(list) => KeyRing::parse(list.expose_secret())
                .map_err(|e| ConfigError::new("KEYHAVEN_ENCRYPTION_KEYS", e.to_string()))?,
        };
        let mut offered = Vec::new();
        let mut unavailable = Vec::new();
        for (id, raw) in &self.providers {
            match providers::from_settings(id, raw, self.server.allow_insecure_provider_hosts)? {
                Ok(provider) => offered.push(provider),
                Err(reason) => unavailable.push((id.clone(), reason)),
            }
        }
        offered.sort_by(|a, b| a.display_name.cmp(&b.display_name));
        let connect_hints = self
            .providers
            .iter()
            .filter_map(|(id, raw)| Some((id.clone(), raw.connect_hint.clone()?)))
            .filter(|(_, hint)| !hint.trim().is_empty())
            .collect();
        let return_origins = self
            .server
            .allowed_return_origins
            .iter()
            .map(|o| parse_allowed_origin(o))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|problem| ConfigError::new("server.allowed_return_origins", problem))?;
        let branding = crate::branding::Branding::from_settings(&self.branding)
            .map_err(|(setting, problem)| ConfigError::new(setting, problem))?;
        Ok(Settings {
            branding: branding.into(),
            return_origins,
            server: self.server,
            database: self.database,
            keys,
            links: self.links,
            refresher: self.refresher,
            webhooks: self.webhooks,
            providers: offered,
            unavailable_providers: unavailable,
            housekeeping: self.housekeeping,
            connect_hints,
            logging: self.logging,
        })
    }
}
