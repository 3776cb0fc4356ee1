//! Set-up shared by the integration tests and the benches: a scratch database that is
//! dropped with its guard, and a portal with the provider sandbox on ports of 127.0.0.1,
//! every provider pointed at the sandbox.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "set-up that fails should fail the test or bench at once"
)]

use std::future::Future;
use std::sync::Mutex;

use keyhaven::app::Application;
use keyhaven::clock::Clock;
use keyhaven::config::Settings;
use keyhaven::state::AppState;
use keyhaven_sandbox::Sandbox;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::net::TcpListener;

/// A database of its own for one test or bench run, dropped (`WITH (FORCE)`) when the
/// guard is.
pub struct ScratchDatabase {
    name: String,
    /// The template with `{db}` replaced by this database's name.
    pub url: String,
    /// The server's `postgres` database, from which this one is created and dropped.
    admin_url: String,
    /// Pools on this database, closed before it is dropped.
    pools: Mutex<Vec<PgPool>>,
}

impl ScratchDatabase {
    /// Creates `keyhaven_{purpose}_<random>` on the server that `url_template` names, its
    /// `{db}` standing for the database.
    pub async fn create(url_template: &str, purpose: &str) -> ScratchDatabase {
        let name = format!("keyhaven_{purpose}_{}", uuid::Uuid::new_v4().simple());
        let admin_url = url_template.replace("{db}", "postgres");
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("postgres is running");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create database");
        admin.close().await.expect("close the admin connection");
        ScratchDatabase {
            url: url_template.replace("{db}", &name),
            name,
            admin_url,
            pools: Mutex::default(),
        }
    }

    /// Closes `pool` (no new connections, no new loans) before the database is dropped.
    pub fn close_before_drop(&self, pool: &PgPool) {
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pool.clone());
    }
}

impl Drop for ScratchDatabase {
    /// Runs on a thread with its own runtime: `Drop` cannot await, and the test's
    /// runtime may be shutting down. Never panics, so a failing test's unwinding is not
    /// turned into an abort.
    fn drop(&mut self) {
        for pool in self
            .pools
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            // `close` marks the pool closed at once; its connections end with the database.
            drop(pool.close());
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .map_err(|e| e.to_string())?;
                admin.close().await.map_err(|e| e.to_string())
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the dropping thread panicked".into()));
        if let Err(e) = dropped {
            eprintln!("scratch database {} left behind: {e}", self.name);
        }
    }
}

/// Everything before the portal starts: the sandbox serving on a port of 127.0.0.1, the
/// portal's listener bound, a scratch database and settings with every provider pointed
/// at the sandbox. Change `settings` and the sandbox, then [`Stage::start`].
pub struct Stage {
    pub clock: Clock,
    pub sandbox: Sandbox,
    /// The sandbox's origin, e.g. `http://127.0.0.1:PORT`.
    pub sandbox_url: String,
    pub listener: TcpListener,
    /// The portal's origin.
    pub url: String,
    /// The `KEYHAVEN_ENCRYPTION_KEYS` value the portal runs with.
    pub keys: String,
    pub client_secret: String,
    pub settings: Settings,
    pub database: ScratchDatabase,
}

impl Stage {
    /// `purpose` names the database (`keyhaven_{purpose}_…`) and the key id; the
    /// background refresher is off (tests and benches drive refreshes themselves).
    pub async fn new(url_template: &str, purpose: &str, client_secret: &str) -> Stage {
        let clock = Clock::default();
        let sandbox = Sandbox::new(clock.clone());
        let sandbox_url = sandbox.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://127.0.0.1:{}", addr.port());
        let database = ScratchDatabase::create(url_template, purpose).await;
        let keys = keyhaven::crypto::KeyRing::generate_entry(purpose).unwrap();
        let mut settings = keyhaven::cli::sandbox_settings(
            &url,
            addr,
            &sandbox_url,
            &database.url,
            &keys,
            client_secret,
        )
        .unwrap();
        settings.refresher.enabled = false;
        Stage {
            clock,
            sandbox,
            sandbox_url,
            listener,
            url,
            keys,
            client_secret: client_secret.into(),
            settings,
            database,
        }
    }

    /// Registers the portal's clients at the sandbox, migrates the database and runs the
    /// portal until `shutdown` resolves.
    pub async fn start(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Portal {
        let Stage {
            clock,
            sandbox,
            sandbox_url,
            listener,
            url,
            keys,
            client_secret,
            settings,
            database,
        } = self;
        keyhaven::cli::register_sandbox_clients(&sandbox, &settings, &client_secret);
        let pool = keyhaven::db::connect_and_migrate(&settings.database)
            .await
            .unwrap();
        database.close_before_drop(pool.pg());
        let app = Application::build_on(listener, settings, pool, clock.clone())
            .await
            .unwrap();
        let state = app.state().clone();
        let metrics_url = app.metrics_addr().map(|a| format!("http://{a}"));
        let run = tokio::spawn(app.run_until(shutdown));
        Portal {
            url,
            state,
            sandbox,
            sandbox_url,
            clock,
            keys,
            metrics_url,
            run,
            database,
        }
    }
}

/// A running portal and its sandbox; the database goes when this does.
pub struct Portal {
    pub url: String,
    pub state: AppState,
    pub sandbox: Sandbox,
    /// The sandbox's origin, e.g. `http://127.0.0.1:PORT`.
    pub sandbox_url: String,
    pub clock: Clock,
    pub keys: String,
    /// `http://…` of the `/metrics` listener, when `server.metrics_listen` was set.
    pub metrics_url: Option<String>,
    /// The portal's `run_until` task.
    pub run: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub database: ScratchDatabase,
}
