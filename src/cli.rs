//! The command line: `serve`, `sandbox`, `demo`, `migrate` and small admin commands.
//! Commands that create something print it alone on the last line of stdout.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::app::Application;
use crate::clock::Clock;
use crate::config::{self, DataCenterSettings, ProviderSettings, RawSettings, Settings};
use crate::crypto::{self, KeyRing};
use crate::db;
use crate::link_options::{LinkOptions, RequestedOptions};
use crate::providers::ClientAuth;
use crate::providers::settings::KindSetting;
use crate::sandbox::Sandbox;
use crate::state::AppState;
use crate::web::admin::accounts;
use crate::web::api::{EndUserInput, create_link_for, create_link_with};
use crate::web::api_keys;

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
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// Approve every authorization at once (load tests).
        #[arg(long)]
        auto_approve: bool,
        /// Register a client: PROVIDER:CLIENT_ID:CLIENT_SECRET:REDIRECT_URI (repeatable).
        #[arg(long = "client")]
        clients: Vec<String>,
    },
    /// Portal and sandbox in one process, with a demo user; prints the URL to open.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:8081")]
        sandbox_listen: SocketAddr,
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
        Command::Sandbox {
            listen,
            auto_approve,
            clients,
        } => {
            let sandbox = Sandbox::new(Clock::default());
            for spec in &clients {
                let parts: Vec<&str> = spec.splitn(4, ':').collect();
                let [provider, id, secret, redirect] = parts.as_slice() else {
                    anyhow::bail!("--client must be PROVIDER:CLIENT_ID:CLIENT_SECRET:REDIRECT_URI");
                };
                sandbox.register_client(provider, id, secret, vec![redirect.to_string()]);
            }
            sandbox.set_auto_approve(auto_approve);
            let base = sandbox.spawn(listen).await?;
            println!("sandbox listening on {base}");
            shutdown_signal().await;
            Ok(())
        }
        Command::Demo {
            listen,
            sandbox_listen,
            data_dir,
        } => demo(cli.config.as_deref(), listen, sandbox_listen, &data_dir).await,
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

/// Demo client credentials: they only ever meet the local sandbox.
const DEMO_CLIENT_ID: &str = "keyhaven-demo";
/// The demo's Bullhorn takes any username and password (see the sandbox's open sign-in).
pub const DEMO_BULLHORN_HINT: &str = "Demo: any Bullhorn username and password work. Type a username here, e.g. jane (a user in the east data center), jane.west or jane.emea (in that one); on the sandbox's sign-in page that follows, type it again with any password.";
/// The demo's admin; its password is new on every start.
pub const DEMO_ADMIN_EMAIL: &str = "admin@example.com";

/// Settings for portal + sandbox on this machine, with every provider pointed at the sandbox.
pub fn sandbox_settings(
    public_url: &str,
    listen: SocketAddr,
    sandbox_base: &str,
    database_url: &str,
    keys: &str,
    client_secret: &str,
) -> anyhow::Result<Settings> {
    point_at_sandbox(
        RawSettings::default(),
        public_url,
        listen,
        sandbox_base,
        database_url,
        keys,
        client_secret,
    )
}

/// The demo's settings: the configuration file and `KEYHAVEN_*` as for `serve`, with
/// only the listen address, the database and the providers (pointed at the sandbox)
/// replaced; the demo's own key is used when none is configured.
pub fn demo_settings(
    file: Option<&Path>,
    public_url: &str,
    listen: SocketAddr,
    sandbox_base: &str,
    database_url: &str,
    keys: &str,
    client_secret: &str,
) -> anyhow::Result<Settings> {
    point_at_sandbox(
        config::load_raw(file)?,
        public_url,
        listen,
        sandbox_base,
        database_url,
        keys,
        client_secret,
    )
}

fn point_at_sandbox(
    mut raw: RawSettings,
    public_url: &str,
    listen: SocketAddr,
    sandbox_base: &str,
    database_url: &str,
    keys: &str,
    client_secret: &str,
) -> anyhow::Result<Settings> {
    raw.server.listen = listen;
    raw.server.public_url = public_url.parse().context("public URL")?;
    raw.database.url = SecretString::from(database_url);
    if raw.encryption_keys.is_none() {
        raw.encryption_keys = Some(SecretString::from(keys));
    }
    raw.providers.clear();
    // The sandbox is plain http on loopback; its host is the only Bullhorn "domain".
    raw.server.allow_insecure_provider_hosts = true;
    let sandbox_host = url::Url::parse(sandbox_base)
        .context("sandbox URL")?
        .host_str()
        .unwrap_or("127.0.0.1")
        .to_string();
    let credentials = |p: &mut ProviderSettings| {
        p.client_id = Some(DEMO_CLIENT_ID.into());
        p.client_secret = Some(SecretString::from(client_secret));
    };
    let mut sr = ProviderSettings {
        authorize_url: Some(format!(
            "{sandbox_base}/smartrecruiters/identity/oauth/allow"
        )),
        token_url: Some(format!(
            "{sandbox_base}/smartrecruiters/identity/oauth/token"
        )),
        api_url: Some(format!("{sandbox_base}/smartrecruiters")),
        ..Default::default()
    };
    credentials(&mut sr);
    raw.providers.insert("smartrecruiters".into(), sr);
    let mut acme = ProviderSettings {
        kind: Some(KindSetting::OAuth2),
        display_name: Some("Acme HR".into()),
        authorize_url: Some(format!("{sandbox_base}/oauth2/authorize")),
        token_url: Some(format!("{sandbox_base}/oauth2/token")),
        userinfo_url: Some(format!("{sandbox_base}/oauth2/userinfo")),
        revocation_url: Some(format!("{sandbox_base}/oauth2/revoke")),
        issuer: Some(format!("{sandbox_base}/oauth2")),
        account_label_pointer: Some("/email".into()),
        scopes: Some(vec!["openid".into(), "offline_access".into()]),
        pkce: Some(true),
        client_auth: Some(ClientAuth::Basic),
        ..Default::default()
    };
    credentials(&mut acme);
    raw.providers.insert("acme".into(), acme);
    let mut bullhorn = ProviderSettings {
        login_info_url: Some(format!(
            "{sandbox_base}/bullhorn/east/rest-services/loginInfo"
        )),
        allowed_host_suffixes: Some(vec![sandbox_host]),
        ..Default::default()
    };
    credentials(&mut bullhorn);
    raw.providers.insert("bullhorn".into(), bullhorn);
    let mut zoho = ProviderSettings::default();
    for location in SANDBOX_ZOHO_LOCATIONS {
        zoho.data_centers.insert(
            location.to_string(),
            DataCenterSettings {
                accounts_url: format!("{sandbox_base}/zoho/accounts/{location}"),
                api_url: format!("{sandbox_base}/zoho/recruit/{location}"),
            },
        );
    }
    credentials(&mut zoho);
    raw.providers.insert("zoho".into(), zoho);
    let mut hurdlr = ProviderSettings {
        authorize_url: Some(format!("{sandbox_base}/hurdlr/oauth/authorize")),
        token_url: Some(format!("{sandbox_base}/hurdlr/rest/v4/auth/token")),
        api_url: Some(format!("{sandbox_base}/hurdlr")),
        ..Default::default()
    };
    credentials(&mut hurdlr);
    raw.providers.insert("hurdlr".into(), hurdlr);
    Ok(raw.validate()?)
}

const SANDBOX_ZOHO_LOCATIONS: [&str; 9] = ["us", "eu", "in", "au", "jp", "uk", "sa", "ca", "cn"];

/// Registers the portal's clients at the sandbox with their exact redirect URIs.
pub fn register_sandbox_clients(sandbox: &Sandbox, settings: &Settings, client_secret: &str) {
    for provider in ["bullhorn", "zoho", "hurdlr"] {
        sandbox.register_client(
            provider,
            DEMO_CLIENT_ID,
            client_secret,
            vec![settings.redirect_uri(provider)],
        );
    }
    sandbox.register_client(
        "smartrecruiters",
        DEMO_CLIENT_ID,
        client_secret,
        vec![settings.redirect_uri("smartrecruiters")],
    );
    sandbox.register_client(
        "oauth2",
        DEMO_CLIENT_ID,
        client_secret,
        vec![settings.redirect_uri("acme")],
    );
}

/// What the demo adds to the sandbox settings, so that a newcomer finishes every card:
/// Bullhorn takes any username and password, and its card says so.
pub fn demo_setup(sandbox: &Sandbox, settings: &mut Settings) {
    sandbox.set_bullhorn_open_sign_in(true);
    settings
        .connect_hints
        .insert("bullhorn".into(), DEMO_BULLHORN_HINT.into());
}

async fn demo(
    file: Option<&Path>,
    listen: SocketAddr,
    sandbox_listen: SocketAddr,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let keys = demo_key(data_dir)?;
    let client_secret = crypto::random_token()?;
    let clock = Clock::default();
    let sandbox = Sandbox::new(clock.clone());
    let sandbox_base = sandbox
        .spawn(sandbox_listen)
        .await
        .context("starting the sandbox")?;
    let database_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| config::local_database_url("keyhaven_demo"));
    let public_url = format!("http://{listen}");
    let mut settings = demo_settings(
        file,
        &public_url,
        listen,
        &sandbox_base,
        &database_url,
        &keys,
        &client_secret,
    )?;
    // The printed link should still work after a coffee break.
    settings.links.connect_link_hours = 24;
    register_sandbox_clients(&sandbox, &settings, &client_secret);
    demo_setup(&sandbox, &mut settings);
    let app = Application::build(settings, clock)
        .await
        .context("starting the portal")?;
    let state = app.state().clone();
    let (link, _) = create_link_for(
        &state,
        &EndUserInput {
            external_id: "demo-user".into(),
            email: Some("demo@example.com".into()),
            name: Some("Demo User".into()),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let api_key = create_api_key(&state, "demo").await?;
    // A fresh password on every start: the demo database outlives the process.
    let admin_password = crypto::random_token()?;
    accounts::set_admin(
        &state.pool,
        DEMO_ADMIN_EMAIL,
        &SecretString::from(admin_password.clone()),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("Keyhaven demo is running.");
    println!("  portal:   {public_url}");
    println!(
        "  sandbox:  {sandbox_base} (imitates SmartRecruiters, Bullhorn, Zoho Recruit, Hurdlr and a standard OAuth 2.0 server)"
    );
    println!("  API key:  {api_key}");
    println!("  admin:    {public_url}/admin");
    println!("            email {DEMO_ADMIN_EMAIL}, password {admin_password}");
    println!(
        "  try:      curl -H 'Authorization: Bearer {api_key}' {public_url}/api/v1/end-users/demo-user/connections"
    );
    println!(
        "Open this connect link in your browser, press Continue, click Connect SmartRecruiters, then Approve:"
    );
    println!("{link}");
    app.run_until(shutdown_signal()).await
}

/// The demo's encryption key, generated once and kept in the data directory.
fn demo_key(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("demo-encryption-key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_string();
        KeyRing::parse(&existing)
            .with_context(|| format!("{} is not a valid key", path.display()))?;
        return Ok(existing);
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let entry = KeyRing::generate_entry("demo")?;
    write_private(&path, &entry)?;
    Ok(entry)
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
