//! `keyhaven check`: what a deployment needs, checked one line at a time — the
//! configuration, Postgres and its migrations, the key ring against a stored sealed
//! value, and every provider URL (resolved and reached; nothing secret is sent).

use std::fmt::Display;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use url::Url;

use crate::config::{self, Settings};
use crate::grants::sealed_at;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Prints `ok …` / `FAIL …` lines to `out`; returns how many checks failed.
pub async fn run(file: Option<&Path>, out: &mut impl std::io::Write) -> std::io::Result<usize> {
    let mut report = Report { out, failures: 0 };
    let settings = match config::load_raw(file).and_then(|raw| raw.validate()) {
        Ok(settings) => settings,
        Err(e) => {
            report.fail("configuration", e)?;
            return Ok(report.failures);
        }
    };
    let ids: Vec<&str> = settings.providers.iter().map(|p| p.id.as_str()).collect();
    report.ok(
        "configuration",
        format!("{} provider(s) offered: {}", ids.len(), ids.join(", ")),
    )?;
    for (id, reason) in &settings.unavailable_providers {
        report.fail(&format!("provider {id}"), format!("not offered: {reason}"))?;
    }
    database(&settings, &mut report).await?;
    providers(&settings, &mut report).await?;
    Ok(report.failures)
}

struct Report<'a, W: std::io::Write> {
    out: &'a mut W,
    failures: usize,
}

impl<W: std::io::Write> Report<'_, W> {
    fn ok(&mut self, what: &str, detail: impl Display) -> std::io::Result<()> {
        writeln!(self.out, "ok    {what}: {detail}")
    }

    fn fail(&mut self, what: &str, detail: impl Display) -> std::io::Result<()> {
        self.failures += 1;
        writeln!(self.out, "FAIL  {what}: {detail}")
    }
}

async fn database<W: std::io::Write>(
    settings: &Settings,
    report: &mut Report<'_, W>,
) -> std::io::Result<()> {
    let options = match PgConnectOptions::from_str(settings.database.url.expose_secret()) {
        Ok(options) => options.application_name("keyhaven-check"),
        Err(e) => return report.fail("database", format!("invalid URL: {e}")),
    };
    let mut conn = match tokio::time::timeout(TIMEOUT, options.connect()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return report.fail("database", format!("cannot connect: {e}")),
        Err(_) => return report.fail("database", "no answer within 5 s"),
    };
    match sqlx::query_scalar::<_, String>("SHOW server_version")
        .fetch_one(&mut conn)
        .await
    {
        Ok(version) => report.ok("database", format!("reachable (PostgreSQL {version})"))?,
        Err(e) => report.fail("database", e)?,
    }
    migrations(&mut conn, report).await?;
    sealed_value(&mut conn, settings, report).await?;
    let _ = conn.close().await;
    Ok(())
}

async fn migrations<W: std::io::Write>(
    conn: &mut PgConnection,
    report: &mut Report<'_, W>,
) -> std::io::Result<()> {
    let applied: Vec<(i64, Vec<u8>, bool)> = match sqlx::query_as(
        "SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&mut *conn)
    .await
    {
        Ok(rows) => rows,
        Err(_) => {
            return report.fail(
                "migrations",
                "none applied (run `keyhaven migrate`, or start `keyhaven serve` once)",
            );
        }
    };
    let known = &crate::db::MIGRATOR.migrations;
    let mut problems = Vec::new();
    for m in known.iter().filter(|m| m.migration_type.is_up_migration()) {
        match applied.iter().find(|(v, _, _)| *v == m.version) {
            None => problems.push(format!("{} not applied", m.version)),
            Some((_, _, false)) => problems.push(format!("{} failed part-way", m.version)),
            Some((_, checksum, _)) if checksum.as_slice() != &*m.checksum => {
                problems.push(format!("{} differs from this build's", m.version))
            }
            Some(_) => {}
        }
    }
    for (version, _, _) in &applied {
        if !known.iter().any(|m| m.version == *version) {
            problems.push(format!(
                "{version} is unknown to this build (a newer Keyhaven?)"
            ));
        }
    }
    if problems.is_empty() {
        report.ok("migrations", format!("all {} applied", applied.len()))
    } else {
        report.fail("migrations", problems.join("; "))
    }
}

async fn sealed_value<W: std::io::Write>(
    conn: &mut PgConnection,
    settings: &Settings,
    report: &mut Report<'_, W>,
) -> std::io::Result<()> {
    let what = "encryption keys";
    let row: Option<(uuid::Uuid, Vec<u8>)> = match sqlx::query_as(
        "SELECT id, access_token FROM connections WHERE access_token IS NOT NULL LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await
    {
        Ok(row) => row,
        Err(e) => return report.fail(what, format!("cannot read a sealed value: {e}")),
    };
    let primary = settings.keys.primary_id();
    match row {
        None => report.ok(what, format!("nothing sealed yet; primary key {primary:?}")),
        Some((id, sealed)) => match settings.keys.open(&sealed, sealed_at(&id, "access_token")) {
            Ok(_) => report.ok(
                what,
                format!("a stored sealed value opens; primary key {primary:?}"),
            ),
            Err(e) => report.fail(
                what,
                format!("connection {id}: a stored sealed value does not open ({e})"),
            ),
        },
    }
}

async fn providers<W: std::io::Write>(
    settings: &Settings,
    report: &mut Report<'_, W>,
) -> std::io::Result<()> {
    let http = match crate::outbound::provider_client(TIMEOUT) {
        Ok(http) => http,
        Err(e) => return report.fail("providers", format!("no HTTP client: {e}")),
    };
    for provider in &settings.providers {
        let what = format!("provider {}", provider.id);
        let urls = provider.configured_urls();
        let mut problems = Vec::new();
        for (name, url) in &urls {
            if let Err(problem) = reach(&http, url).await {
                problems.push(format!("{name} {}: {problem}", shown(url)));
            }
        }
        if problems.is_empty() {
            report.ok(&what, format!("{} URL(s) resolved and reached", urls.len()))?;
        } else {
            report.fail(&what, problems.join("; "))?;
        }
    }
    Ok(())
}

/// A URL without its query (configured URLs carry no secrets, but keep lines short).
fn shown(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// Resolves the host, then sends a plain GET without credentials: any HTTP answer,
/// whatever its status, means the URL is reachable.
async fn reach(http: &reqwest::Client, url: &Url) -> Result<(), String> {
    let host = url.host_str().ok_or("no host")?;
    let port = url.port_or_known_default().ok_or("no port")?;
    let resolved = tokio::time::timeout(TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| "name resolution timed out".to_string())?
        .map_err(|e| format!("does not resolve ({e})"))?;
    if resolved.count() == 0 {
        return Err("resolves to no address".into());
    }
    match http.get(url.clone()).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.is_timeout() => Err("no answer within 5 s".into()),
        Err(e) if e.is_connect() => Err("connection refused or failed".into()),
        Err(_) => Err("no HTTP answer".into()),
    }
}
