//! `GET /admin`: connections by provider and status, what failed lately, and providers
//! that are configured but not offered.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Extension, State};
use axum::routing::get;

use super::view;
use super::{AdminResult, AdminSession, Nav};
use crate::db;
use crate::model::{ConnectionStatus, EventKind};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin", get(dashboard))
}

const RECENT: i64 = 20;

pub struct ProviderRow {
    pub id: String,
    pub name: String,
    /// Counts in the order of `ConnectionStatus::ALL`.
    pub counts: [i64; 4],
    pub total: i64,
    pub configured: bool,
}

impl ProviderRow {
    /// Each status with this provider's count.
    pub fn cells(&self) -> Vec<(&'static str, i64)> {
        ConnectionStatus::ALL
            .iter()
            .map(|s| s.as_str())
            .zip(self.counts)
            .collect()
    }
}

pub struct FailureRow {
    pub connection_id: String,
    pub provider: String,
    pub user: String,
    pub kind: &'static str,
    pub detail: String,
    pub at: String,
}

pub struct AlarmRow {
    pub provider: String,
    pub kind: String,
    pub detail: String,
    pub at: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/dashboard.html")]
pub struct DashboardPage {
    pub nav: Nav,
    pub statuses: [(&'static str, &'static str); 4],
    pub providers: Vec<ProviderRow>,
    pub totals: [i64; 4],
    pub failures: Vec<FailureRow>,
    pub alarms: Vec<AlarmRow>,
    pub unavailable: Vec<(String, String)>,
}

async fn dashboard(
    State(app): State<AppState>,
    Extension(admin): Extension<AdminSession>,
) -> AdminResult<DashboardPage> {
    let mut conn = app.pool.acquire().await?;
    let counts = db::console::counts_by_provider_and_status(&mut conn).await?;
    let failures = db::console::recent_failures(&mut conn, RECENT).await?;
    let alarms = db::console::recent_alarms(&mut conn, RECENT).await?;
    drop(conn);

    // Every offered provider gets a row, zeros included; providers that only exist in
    // the data (configuration removed since) follow.
    let mut providers: Vec<ProviderRow> = app
        .settings
        .providers
        .iter()
        .map(|p| ProviderRow {
            id: p.id.clone(),
            name: p.display_name.clone(),
            counts: [0; 4],
            total: 0,
            configured: true,
        })
        .collect();
    let mut totals = [0; 4];
    for c in &counts {
        let Some(slot) = ConnectionStatus::ALL.iter().position(|s| *s == c.status) else {
            continue;
        };
        let index = match providers.iter().position(|p| p.id == c.provider) {
            Some(i) => i,
            None => {
                providers.push(ProviderRow {
                    id: c.provider.clone(),
                    name: c.provider.clone(),
                    counts: [0; 4],
                    total: 0,
                    configured: false,
                });
                providers.len() - 1
            }
        };
        providers[index].counts[slot] += c.n;
        providers[index].total += c.n;
        totals[slot] += c.n;
    }
    Ok(DashboardPage {
        nav: admin.nav(),
        statuses: view::status_choices(),
        providers,
        totals,
        failures: failures
            .into_iter()
            .map(|f| FailureRow {
                connection_id: f.connection_id.to_string(),
                provider: view::provider_name(&app, &f.provider),
                user: view::person(f.display_name.as_deref(), None, &f.external_id),
                kind: match f.kind {
                    EventKind::RefreshFailed => "refresh failed",
                    EventKind::NeedsReconnect => "needs reconnect",
                    EventKind::RevokeFailed => "revocation failed",
                    _ => "failure",
                },
                detail: view::short_error(f.detail.as_deref(), 160),
                at: view::when(Some(f.at)),
            })
            .collect(),
        alarms: alarms
            .into_iter()
            .map(|a| AlarmRow {
                provider: view::provider_name(&app, &a.provider),
                kind: if a.count > 1 {
                    format!("{} ({} times)", a.kind, a.count)
                } else {
                    a.kind
                },
                detail: view::short_error(a.detail.as_deref(), 160),
                at: view::when(Some(a.at)),
            })
            .collect(),
        unavailable: app.settings.unavailable_providers.clone(),
    })
}
