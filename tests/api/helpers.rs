use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

use keyhaven::app::Application;
use keyhaven::clock::Clock;
use keyhaven::state::AppState;
use keyhaven_sandbox::Sandbox;
use keyhaven_testkit::{Portal, ScratchDatabase, Stage};
use reqwest::StatusCode;
use sqlx::PgPool;
use tokio::net::TcpListener;
use url::Url;

pub const CLIENT_SECRET: &str = "sentinel-client-secret-0f9e8d7c";

/// One test's log lines, at trace level.
type Logs = Arc<Mutex<Vec<u8>>>;

struct Capture(Logs);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn trace_to<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_ansi(false)
        .with_writer(writer)
        .finish()
}

thread_local! {
    /// The capture of the test running on this thread, installed as the thread's default
    /// subscriber. Each test has its own thread, and its runtime (current-thread) polls
    /// every task the test spawns there: its portals', its sandbox's and its own.
    static TEST_LOGS: RefCell<Option<(Logs, tracing::dispatcher::DefaultGuard)>> =
        const { RefCell::new(None) };
}

/// Starts capturing this test's logs (once per test).
fn init_logs() {
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::CurrentThread,
        "logs are captured per test thread: tests run on the current-thread runtime"
    );
    // Lines logged outside a capture (tests without a portal) go to the test's output,
    // shown when it fails; `log` records (e.g. reqwest's cookie store) become events.
    static GLOBAL: Once = Once::new();
    GLOBAL.call_once(|| {
        use tracing_subscriber::util::SubscriberInitExt;
        let _ = trace_to(tracing_subscriber::fmt::TestWriter::new()).try_init();
    });
    TEST_LOGS.with_borrow_mut(|capture| {
        if capture.is_none() {
            let logs = Logs::default();
            let writer = logs.clone();
            let dispatch = tracing::Dispatch::new(trace_to(move || Capture(writer.clone())));
            *capture = Some((logs, tracing::dispatcher::set_default(&dispatch)));
        }
    });
}

/// Everything logged so far by this test: its portals, its sandbox and its own code.
pub fn captured_logs() -> String {
    TEST_LOGS.with_borrow(|capture| {
        let (logs, _) = capture
            .as_ref()
            .expect("logs are captured from the test's first spawn_app");
        String::from_utf8_lossy(&logs.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    })
}

pub fn base_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub struct TestApp {
    pub url: String,
    pub sandbox: Sandbox,
    pub sandbox_url: String,
    pub clock: Clock,
    pub state: AppState,
    pub database_url: String,
    /// The `KEYHAVEN_ENCRYPTION_KEYS` value the portal runs with.
    pub keys: String,
    /// `http://…` of the `/metrics` listener, when `server.metrics_listen` was set.
    pub metrics_url: Option<String>,
    /// The tests' own connections, for looking at and changing rows directly.
    db: PgPool,
    /// The app's `run_until` task (ends after a shutdown given in the options).
    pub run: std::sync::Mutex<Option<tokio::task::JoinHandle<anyhow::Result<()>>>>,
    /// Dropped last: its pools closed, then the database.
    scratch: ScratchDatabase,
}

pub struct Options {
    pub http_timeout_secs: u64,
    pub pool_size: u32,
    /// Bullhorn connects with an API user's credentials on our page.
    pub bullhorn_api_user: bool,
    /// Last changes to the settings before the app starts.
    pub tweak: fn(&mut keyhaven::config::Settings),
    /// Bullhorn's loginInfo at another address (a stub), and its host allow-list.
    pub bullhorn_login_info: Option<String>,
    pub bullhorn_hosts: Option<keyhaven::providers::hosts::HostPolicy>,
    /// Set up as `keyhaven demo` is (`cli::demo_setup`).
    pub demo: bool,
    /// `server.allowed_return_origins`.
    pub allowed_return_origins: Vec<String>,
    /// Shuts the app down (a drain) when it resolves; it runs until the test ends without.
    pub shutdown: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            http_timeout_secs: 10,
            pool_size: 10,
            bullhorn_api_user: false,
            tweak: |_| {},
            bullhorn_login_info: None,
            bullhorn_hosts: None,
            demo: false,
            allowed_return_origins: Vec::new(),
            shutdown: None,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    init_logs();
    let template = format!("{}/{{db}}", base_database_url());
    let mut stage = Stage::new(&template, "test", CLIENT_SECRET).await;
    let settings = &mut stage.settings;
    settings.server.http_timeout_secs = options.http_timeout_secs;
    settings.database.max_connections = options.pool_size;
    for provider in &mut settings.providers {
        if let keyhaven::providers::Kind::Bullhorn(cfg) = &mut provider.kind {
            cfg.api_user_mode = options.bullhorn_api_user;
            if let Some(url) = &options.bullhorn_login_info {
                cfg.login_info_url = url.parse().unwrap();
            }
            if let Some(hosts) = &options.bullhorn_hosts {
                cfg.hosts = hosts.clone();
            }
        }
    }
    settings.return_origins = options
        .allowed_return_origins
        .iter()
        .map(|o| keyhaven::config::parse_allowed_origin(o).unwrap())
        .collect();
    (options.tweak)(settings);
    if options.demo {
        keyhaven::cli::demo_setup(&stage.sandbox, &mut stage.settings);
    }
    let shutdown = options.shutdown;
    let Portal {
        url,
        state,
        sandbox,
        sandbox_url,
        clock,
        keys,
        metrics_url,
        run,
        database,
    } = stage
        .start(async move {
            match shutdown {
                Some(signal) => {
                    let _ = signal.await;
                }
                None => std::future::pending().await,
            }
        })
        .await;
    let db = PgPool::connect(&database.url).await.unwrap();
    database.close_before_drop(&db);
    TestApp {
        run: std::sync::Mutex::new(Some(run)),
        url,
        keys,
        metrics_url,
        sandbox,
        sandbox_url,
        clock,
        state,
        db,
        database_url: database.url.clone(),
        scratch: database,
    }
}

/// A browser: its own cookie jar, redirects not followed so every hop is asserted.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_string()
}

pub fn query_param(url: &str, key: &str) -> Option<String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

impl TestApp {
    pub fn pool(&self) -> &PgPool {
        &self.db
    }

    pub async fn create_link(&self, external_id: &str) -> String {
        let input = keyhaven::web::api::EndUserInput {
            external_id: external_id.into(),
            email: Some(format!("{external_id}@example.com")),
            name: Some(format!("User {external_id}")),
        };
        keyhaven::web::api::create_link_for(&self.state, &input)
            .await
            .unwrap()
            .0
    }

    /// A browser bound to a new end user through a connect link.
    pub async fn user_browser(&self, external_id: &str) -> reqwest::Client {
        let browser = browser();
        let link = self.create_link(external_id).await;
        let r = open_link(&browser, &link).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&r), "/connect");
        browser
    }

    pub async fn csrf(&self, browser: &reqwest::Client) -> String {
        let page = browser
            .get(format!("{}/connect", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let marker = "name=\"csrf\" value=\"";
        let start = page.find(marker).expect("csrf field") + marker.len();
        page[start..].split('"').next().unwrap().to_string()
    }

    /// Starts a flow; returns the provider's authorize URL.
    pub async fn start(&self, browser: &reqwest::Client, provider: &str) -> String {
        let csrf = self.csrf(browser).await;
        let r = browser
            .post(format!("{}/connect/{provider}", self.url))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "start {provider}");
        location(&r)
    }

    /// Answers the sandbox's consent page; returns the callback URL it redirects to.
    pub async fn decide(&self, authorize_url: &str, decision: &str, login: &str) -> String {
        let url = Url::parse(authorize_url).unwrap();
        let mut form: HashMap<String, String> = url.query_pairs().into_owned().collect();
        form.insert("decision".into(), decision.into());
        form.insert("login".into(), login.into());
        let action = format!("{}{}", self.sandbox_url, url.path());
        let r = browser().post(action).form(&form).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND, "sandbox decision");
        location(&r)
    }

    pub async fn approve(&self, authorize_url: &str) -> String {
        self.decide(authorize_url, "approve", "sam.sandbox").await
    }

    /// A whole flow; returns the callback's response.
    pub async fn connect(&self, browser: &reqwest::Client, provider: &str) -> reqwest::Response {
        let authorize = self.start(browser, provider).await;
        let callback = self.approve(&authorize).await;
        browser.get(callback).send().await.unwrap()
    }

    pub async fn connection_count(&self) -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM connections")
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    pub async fn pending_count(&self) -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pending_authorizations")
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    pub fn token_calls(&self, provider: &str) -> u64 {
        self.sandbox
            .counter(&format!("{provider}.token.authorization_code"))
    }
}

impl TestApp {
    pub async fn api_key(&self) -> String {
        keyhaven::cli::create_api_key(&self.state, "tests")
            .await
            .unwrap()
    }

    /// Connects `provider` for a new end user; returns the browser and the connection id.
    pub async fn connected(
        &self,
        external_id: &str,
        provider: &str,
    ) -> (reqwest::Client, uuid::Uuid) {
        let browser = self.user_browser(external_id).await;
        let r = self.connect(&browser, provider).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "connect {provider}");
        let id = sqlx::query_scalar(
            "SELECT c.id FROM connections c JOIN end_users e ON e.id = c.end_user_id WHERE e.external_id = $1 AND c.provider = $2",
        )
        .bind(external_id)
        .bind(provider)
        .fetch_one(self.pool())
        .await
        .unwrap();
        (browser, id)
    }

    /// Another `serve` instance on the same database and sandbox; returns its URL.
    pub async fn second_instance(&self) -> String {
        self.second_instance_with(|_| {}).await
    }

    /// Another instance whose settings differ by `tweak`.
    pub async fn second_instance_with(&self, tweak: fn(&mut keyhaven::config::Settings)) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut settings = self.state.settings.clone();
        settings.server.listen = addr;
        tweak(&mut settings);
        let pool = keyhaven::db::connect_and_migrate(&settings.database)
            .await
            .unwrap();
        self.scratch.close_before_drop(pool.pg());
        let app = Application::build_on(listener, settings, pool, self.clock.clone())
            .await
            .unwrap();
        tokio::spawn(app.run_until(std::future::pending()));
        format!("http://127.0.0.1:{}", addr.port())
    }

    /// The same request, in the background (for races and concurrency).
    pub fn spawn_credentials(
        &self,
        base: &str,
        key: &str,
        id: uuid::Uuid,
    ) -> tokio::task::JoinHandle<reqwest::Response> {
        let (url, key) = (
            format!("{base}/api/v1/connections/{id}/credentials"),
            key.to_string(),
        );
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
        })
    }

    pub async fn credentials(
        &self,
        base: &str,
        key: &str,
        id: uuid::Uuid,
        force: bool,
    ) -> reqwest::Response {
        let query = if force { "?force_refresh=true" } else { "" };
        let url = format!("{base}/api/v1/connections/{id}/credentials{query}");
        reqwest::Client::new()
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    pub async fn status_of(&self, id: uuid::Uuid) -> String {
        sqlx::query_scalar("SELECT status FROM connections WHERE id = $1")
            .bind(id)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    pub async fn events_of(&self, id: uuid::Uuid) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT kind FROM connection_events WHERE connection_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await
        .unwrap()
    }
}

pub const ADMIN_EMAIL: &str = "ops@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// Signs in on the login form of the portal at `base`; returns the answer to the POST.
pub async fn sign_in_at(
    base: &str,
    browser: &reqwest::Client,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let page = browser
        .get(format!("{base}/admin/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = field_value(&page, "csrf").expect("login form token");
    browser
        .post(format!("{base}/admin/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

/// Opens a link as a person does: the page it shows (200, naming the user), then its
/// Continue button; returns the answer to the POST.
pub async fn open_link(browser: &reqwest::Client, link: &str) -> reqwest::Response {
    let r = browser.get(link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the link's page");
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"continue\""), "{page}");
    continue_link(browser, link, &page).await
}

/// Presses Continue on a link's page already fetched.
pub async fn continue_link(browser: &reqwest::Client, link: &str, page: &str) -> reqwest::Response {
    let csrf = field_value(page, "csrf").expect("the page's form token");
    browser
        .post(link)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap()
}

/// The SHA-256 digest of `text`, computed here rather than by the portal's own code.
pub fn sha256(text: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).to_vec()
}

/// How the session table stores a session id: the hex SHA-256 of the cookie's value.
pub fn stored_session_id(cookie_value: &str) -> String {
    sha256(cookie_value)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value of cookie `name` set by a response.
pub fn set_cookie_value(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
        .next()
}

pub async fn session_table_rows(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    sqlx::query_as("SELECT id, data FROM tower_sessions.session ORDER BY id")
        .fetch_all(app.pool())
        .await
        .unwrap()
}

/// The value of the first `name="{name}"` form field in a page.
pub fn field_value(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    page[start..].split('"').next().map(String::from)
}

impl TestApp {
    pub async fn create_admin(&self, email: &str, password: &str) -> uuid::Uuid {
        keyhaven::web::admin::accounts::create_admin(
            &self.state.pool,
            email,
            &secrecy::SecretString::from(password),
        )
        .await
        .unwrap()
    }

    /// Signs in on the login form; returns the answer to the POST.
    pub async fn sign_in(
        &self,
        browser: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        sign_in_at(&self.url, browser, email, password).await
    }

    /// A browser signed in as the test admin (created on first use).
    pub async fn admin_browser(&self) -> reqwest::Client {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM admins WHERE email = $1)")
                .bind(ADMIN_EMAIL)
                .fetch_one(self.pool())
                .await
                .unwrap();
        if !exists {
            self.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        }
        let browser = browser();
        let r = self.sign_in(&browser, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "admin sign-in");
        assert_eq!(location(&r), "/admin");
        browser
    }

    /// An admin page's text (asserting 200).
    pub async fn admin_page(&self, browser: &reqwest::Client, path: &str) -> String {
        let r = browser
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.text().await.unwrap()
    }

    /// POSTs an admin form with the page's CSRF token.
    pub async fn admin_post(&self, browser: &reqwest::Client, path: &str) -> reqwest::Response {
        let page = self.admin_page(browser, "/admin").await;
        let csrf = field_value(&page, "csrf").expect("admin form token");
        browser
            .post(format!("{}{path}", self.url))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap()
    }
}
