//! `keyhaven keys reseal`: after a new primary key is configured, re-seal every stored
//! secret with it so the old key can be removed. Values that do not open are counted,
//! not fatal. (Pending authorizations live ten minutes and are left to expire.)

use uuid::Uuid;

use crate::crypto::CryptoError;
use crate::db;
use crate::grants::sealed_at;
use crate::state::AppState;

#[derive(Debug, Default)]
pub struct Report {
    pub resealed: usize,
    pub already_current: usize,
    pub unreadable: usize,
    /// Reconnect links whose sealed token was re-sealed.
    pub links_resealed: usize,
    /// Reconnect links no configured key opens (a new link is made when one is asked for).
    pub links_unreadable: usize,
}

pub async fn reseal_all(app: &AppState) -> anyhow::Result<Report> {
    let mut report = reseal_connections(app).await?;
    reseal_links(app, &mut report).await?;
    Ok(report)
}

/// Reconnect links keep their token sealed so the same link can be handed out again.
async fn reseal_links(app: &AppState, report: &mut Report) -> anyhow::Result<()> {
    let keys = &app.settings.keys;
    let mut after = Vec::new();
    let mut conn = app.pool.acquire().await?;
    loop {
        let rows = db::links::sealed_page(&mut conn, &after, 500).await?;
        let Some((last, _)) = rows.last() else {
            return Ok(());
        };
        after = last.clone();
        for (hash, sealed) in rows {
            if !keys.needs_reseal(&sealed) {
                continue;
            }
            let at = || crate::lifecycle::reconnect::sealed_at(&hash);
            match keys
                .open(&sealed, at())
                .and_then(|plain| keys.seal(&plain, at()))
            {
                Ok(fresh) => {
                    if db::links::reseal(&mut conn, &hash, &sealed, &fresh).await? {
                        report.links_resealed += 1;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a reconnect link's sealed token could not be opened");
                    report.links_unreadable += 1;
                }
            }
        }
    }
}

async fn reseal_connections(app: &AppState) -> anyhow::Result<Report> {
    let keys = &app.settings.keys;
    let mut report = Report::default();
    let mut after = Uuid::nil();
    let mut conn = app.pool.acquire().await?;
    loop {
        let rows = db::sealed::page(&mut conn, after, 500).await?;
        let Some(last) = rows.last() else {
            return Ok(report);
        };
        after = last.id;
        for mut row in rows {
            let id = row.id;
            let mut changed = false;
            let mut unreadable = false;
            for (column, value) in [
                ("access_token", &mut row.access_token),
                ("refresh_token", &mut row.refresh_token),
                ("provider_session", &mut row.provider_session),
                ("provider_credentials", &mut row.provider_credentials),
            ] {
                let Some(sealed) = value.as_ref().filter(|s| keys.needs_reseal(s)) else {
                    continue;
                };
                let resealed: Result<Vec<u8>, CryptoError> = keys
                    .open(sealed, sealed_at(&id, column))
                    .and_then(|plain| keys.seal(&plain, sealed_at(&id, column)));
                match resealed {
                    Ok(fresh) => {
                        *value = Some(fresh);
                        changed = true;
                    }
                    Err(e) => {
                        tracing::error!(connection = %id, column, error = %e, "sealed value could not be opened");
                        unreadable = true;
                    }
                }
            }
            if unreadable {
                report.unreadable += 1;
            } else if changed {
                if db::sealed::update(&mut conn, &row).await? {
                    report.resealed += 1;
                } else {
                    report.already_current += 1;
                }
            } else {
                report.already_current += 1;
            }
        }
    }
}
