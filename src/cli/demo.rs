//! `keyhaven sandbox` and `keyhaven demo`: the provider imitation, alone or with a portal
//! whose providers all point at it. Built with the `sandbox` feature only.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use keyhaven_sandbox::Sandbox;
use secrecy::SecretString;

use super::{create_api_key, shutdown_signal};
use crate::app::Application;
use crate::clock::Clock;
use crate::config::{self, DataCenterSettings, ProviderSettings, RawSettings, Settings};
use crate::crypto::{self, KeyRing};
use crate::providers::ClientAuth;
use crate::providers::settings::KindSetting;
use crate::web::admin::accounts;
use crate::web::api::{EndUserInput, create_link_for};

/// `keyhaven sandbox`: the imitation alone, with the clients given on the command line.
pub(super) async fn sandbox(
    listen: SocketAddr,
    auto_approve: bool,
    clients: &[String],
) -> anyhow::Result<()> {
    let sandbox = Sandbox::new(Clock::default());
    for spec in clients {
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

pub(super) async fn demo(
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
