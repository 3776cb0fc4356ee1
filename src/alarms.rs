//! Provider-level alarms raised outside the refresh path: a provider that names a host
//! outside its allow-list. The alarm is written in the background so that the request
//! that met the host gets its clear error at once.

use crate::db;
use crate::oauth::token::TokenError;
use crate::state::AppState;

/// Records a `host_refused` alarm when `error` is a refused host; anything else is ignored.
pub fn note(app: &AppState, provider: &str, error: &TokenError) {
    let TokenError::HostRefused(host) = error else {
        return;
    };
    tracing::error!(provider, alarm = true, host = %host, "provider host refused; nothing was sent to it");
    let app = app.clone();
    let provider = provider.to_string();
    let detail = format!("the provider named a host outside the allow-list: {host}");
    tokio::spawn(async move {
        let result = async {
            let mut conn = app.pool.acquire().await?;
            db::refresh::record_alarm(
                &mut conn,
                &provider,
                "host_refused",
                &detail,
                app.clock.now(),
            )
            .await
        }
        .await;
        if let Err(e) = result {
            app.pool.note_failure(&e);
            tracing::warn!(error = %e, "could not record a host_refused alarm");
        }
    });
}
