//! The command line: `serve`, `sandbox`, `demo`, `migrate` and small admin commands.
//! Commands that create something print it alone on the last line of stdout.

#[cfg(feature = "sandbox")]
mod demo;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::app::Application;
use crate::clock::Clock;
use crate::config::{self, Settings};
use crate::crypto::KeyRing;
use crate::db;
use crate::link_options::{LinkOptions, RequestedOptions};
use crate::state::AppState;
use crate::web::admin::accounts;
use crate::web::api::{EndUserInput, create_link_with};
use crate::web::api_keys;

#[cfg(feature = "sandbox")]
pub use demo::{
    DEMO_ADMIN_EMAIL, DEMO_BULLHORN_HINT, demo_settings, demo_setup, register_sandbox_clients,
    sandbox_settings,
};

#[derive(Parser)]
#[command(
    name = "keyhaven",
    version,
    about = "Self-hosted OAuth 2.0 account-connection portal"
)]
pub struct Cli {
    /// TOML configuration file (also KEYHAVEN_CONFIG).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the portal.
    Serve,
    /// Run the provider sandbox on its own.
    #[cfg(feature = "sandbox")]
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: std::net::SocketAddr,
        /// Approve every authorization at once (load tests).
        #[arg(long)]
        auto_approve: bool,
        /// Register a client: PROVIDER:CLIENT_ID:CLIENT_SECRET:REDIRECT_URI (repeatable).
        #[arg(long = "client")]
        clients: Vec<String>,
    },
    /// Portal and sandbox in one process, with a demo user; prints the URL to open.
    #[cfg(feature = "sandbox")]
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        #[arg(long, default_value = "127.0.0.1:8081")]
        sandbox_listen: std::net::SocketAddr,
        /// Where the demo keeps its generated encryption key.
        #[arg(long, default_value = ".keyhaven")]
        data_dir: PathBuf,
    },
    /// Create the database if needed and run migrations.
    Migrate,
    /// Connect links for end users.
    Link {
        #[command(subcommand)]
        action: LinkAction,
    },
    /// API keys for the host product's backend.
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// Encryption keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Check the configuration, Postgres and its migrations, the encryption keys and
    /// every provider URL; one line per check, non-zero exit on a failure.
    Check,
    /// Admin console accounts.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Webhook endpoints (Standard Webhooks).
    Webhook {
        #[command(subcommand)]
        action: WebhookAction,
    },
}

#[derive(Subcommand)]
pub enum WebhookAction {
    /// Add an endpoint; prints its secret (`whsec_…`, shown once) on the last line.
    Add {
        #[arg(long)]
        url: String,
        /// Event types to send (comma-separated); all when omitted.
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
    },
    /// One line per endpoint: id, URL, events, created (tab-separated).
    List,
    /// Remove an endpoint and its delivery log.
    Remove { id: uuid::Uuid },
    /// A new secret, printed on the last line; the old one keeps signing for 24 hours.
    RotateSecret { id: uuid::Uuid },
}

#[derive(Subcommand)]
pub enum AdminAction {
    /// Create an admin. The password is read from standard input (one line), or asked
    /// for without echo on a terminal; at least 12 characters. Prints the admin's email.
    Create {
        #[arg(long)]
        email: String,
    },
    /// Set a new password for an admin (read like `create`'s); signs out their sessions.
    Password {
        #[arg(long)]
        email: String,
    },
    /// Forget an admin's failed sign-in attempts (from every address).
    Unlock {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
pub enum LinkAction {
    /// Create a connect link; prints its URL.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Where the browser returns when the flow ends (on `server.allowed_return_origins`).
        #[arg(long)]
        return_url: Option<String>,
        /// The providers offered, comma-separated.
        #[arg(long, value_delimiter = ',')]
        providers: Option<Vec<String>>,
        /// Go straight to this provider.
        #[arg(long)]
        provider: Option<String>,
        /// `page` (default) or `popup`.
        #[arg(long)]
        mode: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum ApiKeyAction {
    /// Create an API key; prints the key (shown once).
    Create {
        #[arg(long, default_value = "default")]
        name: String,
        /// Days until the key stops working (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// One line per key: id, name, prefix, created, last used, expires, revoked (tab-separated).
    List,
    /// Revoke a key by its id; every instance refuses it within a second.
    Revoke { id: uuid::Uuid },
}

#[derive(Subcommand)]
pub enum KeysAction {
    /// Print a new `kid:base64` key entry for KEYHAVEN_ENCRYPTION_KEYS.
    Generate {
        #[arg(long, default_value = "k1")]
        kid: String,
    },
    /// Re-seal every stored secret with the primary (first) key.
    Reseal,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => {
            let settings = load(cli.config.as_deref())?;
            let app = Application::build(settings, Clock::default()).await?;
            tracing::info!(addr = %app.local_addr()?, "keyhaven listening");
            app.run_until(shutdown_signal()).await
        }
        #[cfg(feature = "sandbox")]
        Command::Sandbox {
            listen,
            auto_approve,
            clients,
        } => demo::sandbox(listen, auto_approve, &clients).await,
        #[cfg(feature = "sandbox")]
        Command::Demo {
            listen,
            sandbox_listen,
            data_dir,
        } => demo::demo(cli.config.as_deref(), listen, sandbox_listen, &data_dir).await,
        Command::Check => {
            let failures = crate::check::run(cli.config.as_deref(), &mut std::io::stdout()).await?;
            if failures > 0 {
                anyhow::bail!("{failures} check(s) failed");
            }
            Ok(())
        }
        Command::Migrate => {
            let settings = load(cli.config.as_deref())?;
            db::connect_and_migrate(&few_connections(&settings.database)).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Link {
            action:
                LinkAction::Create {
                    user,
                    email,
                    name,
                    return_url,
                    providers,
                    provider,
                    mode,
                },
        } => {
            let app = offline_state(cli.config.as_deref()).await?;
            let requested = RequestedOptions {
                return_url,
                providers,
                provider,
                mode,
            };
            let options = LinkOptions::check(requested, &app.settings)
                .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code))?;
            let (url, _) = create_link_with(
                &app,
                &EndUserInput {
                    external_id: user,
                    email,
                    name,
                },
                &options,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{url}");
            Ok(())
        }
        Command::ApiKey {
            action:
                ApiKeyAction::Create {
                    name,
                    expires_in_days,
                },
        } => {
            let app = offline_state(cli.config.as_deref()).await?;
            let expires_at = expires_in_days
                .map(|days| app.clock.now() + time::Duration::days(i64::from(days.max(1))));
            let issued = api_keys::issue(&app, &name, expires_at)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.public_message()))?;
            eprintln!("API key {} created; it is shown only now", issued.id);
            println!("{}", issued.key);
            Ok(())
        }
        Command::ApiKey {
            action: ApiKeyAction::List,
        } => {
            let app = offline_state(cli.config.as_deref()).await?;
            for line in api_key_lines(&app).await? {
                println!("{line}");
            }
            Ok(())
        }
        Command::ApiKey {
            action: ApiKeyAction::Revoke { id },
        } => {
            let app = offline_state(cli.config.as_deref()).await?;
            revoke_api_key(&app, id).await?;
            eprintln!("API key {id} revoked");
            Ok(())
        }
        Command::Keys {
            action: KeysAction::Generate { kid },
        } => {
            println!("{}", KeyRing::generate_entry(&kid)?);
            Ok(())
        }
        Command::Keys {
            action: KeysAction::Reseal,
        } => {
            let app = offline_state(cli.config.as_deref()).await?;
            let report = crate::reseal::reseal_all(&app).await?;
            println!(
                "re-sealed {} connections with key {:?}; {} already current; {} unreadable; {} reconnect links re-sealed, {} unreadable",
                report.resealed,
                app.settings.keys.primary_id(),
                report.already_current,
                report.unreadable,
                report.links_resealed,
                report.links_unreadable
            );
            let (endpoints, unreadable_endpoints) = crate::webhooks::reseal_secrets(&app).await?;
            println!(
                "re-sealed {endpoints} webhook endpoint secrets; {unreadable_endpoints} unreadable"
            );
            if unreadable_endpoints > 0 {
                anyhow::bail!(
                    "{unreadable_endpoints} webhook endpoints hold secrets no configured key opens"
                );
            }
            if report.unreadable > 0 {
                anyhow::bail!(
                    "{} connections hold values no configured key opens",
                    report.unreadable
                );
            }
            Ok(())
        }
        Command::Webhook { action } => {
            let app = offline_state(cli.config.as_deref()).await?;
            webhook_command(&app, action).await
        }
        Command::Admin {
            action: AdminAction::Create { email },
        } => {
            let password = read_new_password(&email)?;
            // Only the database is needed: no encryption key required for this.
            let raw = config::load_raw(cli.config.as_deref())?;
            let pool = db::connect_and_migrate(&few_connections(&raw.database)).await?;
            accounts::create_admin(&pool, &email, &password)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("admin created; sign in at /admin");
            println!("{}", accounts::normalize_email(&email).unwrap_or(email));
            Ok(())
        }
        Command::Admin {
            action: AdminAction::Password { email },
        } => {
            let password = read_new_password(&email)?;
            let raw = config::load_raw(cli.config.as_deref())?;
            let pool = db::connect_and_migrate(&few_connections(&raw.database)).await?;
            accounts::change_password(&pool, &email, &password)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("password changed; the admin's sessions were signed out");
            Ok(())
        }
        Command::Admin {
            action: AdminAction::Unlock { email },
        } => {
            // The counters are keyed with a key derived from the encryption key.
            let app = offline_state(cli.config.as_deref()).await?;
            let cleared = crate::web::admin::unlock(&app, &email)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("forgot {cleared} recent sign-in attempts");
            Ok(())
        }
    }
}

/// A new admin's password: without echo from a terminal (asked twice), else the first
/// line of standard input, so scripts can pipe it in.
fn read_new_password(email: &str) -> anyhow::Result<SecretString> {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!(
            "Password for {email} (at least {} characters, not shown): ",
            accounts::MIN_PASSWORD_CHARS
        ))?;
        let again = rpassword::prompt_password("The same password again: ")?;
        if first != again {
            anyhow::bail!("the two passwords differ; nothing was created");
        }
        return Ok(SecretString::from(first));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    Ok(SecretString::from(password.to_string()))
}

fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
    Ok(config::load_raw(file)?.validate()?)
}

/// State for one-shot commands: settings and a database, no listener.
async fn offline_state(file: Option<&Path>) -> anyhow::Result<AppState> {
    let settings = load(file)?;
    let pool = db::connect_and_migrate(&few_connections(&settings.database)).await?;
    AppState::new(settings, pool, Clock::default())
}

/// A one-shot command needs no more than two connections.
fn few_connections(database: &config::DatabaseSettings) -> config::DatabaseSettings {
    config::DatabaseSettings {
        max_connections: 2,
        ..database.clone()
    }
}

async fn webhook_command(app: &AppState, action: WebhookAction) -> anyhow::Result<()> {
    use crate::webhooks;
    use secrecy::ExposeSecret;
    match action {
        WebhookAction::Add { url, events } => {
            let (id, secret) = webhooks::add_endpoint(app, &url, events.as_deref()).await?;
            eprintln!("webhook endpoint {id} added; its secret follows (shown once)");
            println!("{}", secret.expose_secret());
        }
        WebhookAction::List => {
            for e in webhooks::list_endpoints(app).await? {
                let events = e
                    .events
                    .map_or_else(|| "*".to_string(), |list| list.join(","));
                let created = e
                    .created_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                println!("{}\t{}\t{events}\t{created}", e.id, e.url);
            }
        }
        WebhookAction::Remove { id } => {
            webhooks::remove_endpoint(app, id).await?;
            eprintln!("webhook endpoint {id} removed");
        }
        WebhookAction::RotateSecret { id } => {
            let secret = webhooks::rotate_secret(app, id).await?;
            eprintln!(
                "new secret for {id} follows; the old one keeps signing beside it for {} hours",
                webhooks::ROTATION_OVERLAP_HOURS
            );
            println!("{}", secret.expose_secret());
        }
    }
    Ok(())
}

pub async fn create_api_key(app: &AppState, name: &str) -> anyhow::Result<String> {
    let issued = api_keys::issue(app, name, None)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.public_message()))?;
    Ok(issued.key)
}

/// `keyhaven api-key list`: one tab-separated line per key, newest first.
pub async fn api_key_lines(app: &AppState) -> anyhow::Result<Vec<String>> {
    let keys = api_keys::list(app)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.public_message()))?;
    Ok(keys.iter().map(api_keys::list_line).collect())
}

/// `keyhaven api-key revoke ID`.
pub async fn revoke_api_key(app: &AppState, id: uuid::Uuid) -> anyhow::Result<()> {
    api_keys::revoke(app, id).await.map_err(|e| match e {
        crate::error::AppError::NotFound => anyhow::anyhow!("no API key with id {id}"),
        other => anyhow::anyhow!("{}", other.public_message()),
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
