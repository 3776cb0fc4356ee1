//! Logs through `tracing`, always to stderr (stdout belongs to what a command prints),
//! level from `RUST_LOG` (default `info`, without Postgres' "already exists, skipping"
//! notices from idempotent migrations), as text (coloured only on a terminal) or as one
//! JSON object per line. Metrics live in [`metrics`].

pub mod metrics;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written (`logging.format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The default filter, unless `RUST_LOG` says otherwise.
pub fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"))
}

/// Installs the process-wide subscriber (once; later calls change nothing).
pub fn init(format: LogFormat) {
    let _ = match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(env_filter())
            .with_target(true)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => json_subscriber(env_filter(), std::io::stderr)
            .try_init()
            .map_err(Into::into),
    };
}

/// One JSON object per line: `timestamp`, `level`, `target`, the event's fields
/// (`message` among them) at the top level, the innermost span as `span` and every open
/// span, outermost first, as `spans` (for a request: `request_id`, `method`, `route`,
/// and on its closing line `status` and `duration_ms`).
pub fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(true)
        .with_target(true)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}
