//! The connection pool: sqlx's `PgPool`, one per process, shared with the session store.
//!
//! sqlx checks every connection with a round trip when it is given back (that also sends
//! the `ROLLBACK` of a transaction dropped mid-request), so a connection in the idle queue
//! was good when it got there. It is checked again before reuse only when it sat idle for
//! a while, or when a broken connection was seen since it went idle: a restarted server
//! breaks every connection at once, and the first failure makes the pool check the rest.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool, Postgres};

use crate::config::DatabaseSettings;

/// A connection idle this long is checked before reuse.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The process's pool; clones share it.
#[derive(Clone, Debug)]
pub struct Pool {
    pg: PgPool,
    failures: Arc<LastFailure>,
}

impl Pool {
    /// Opens one connection at once (so a wrong URL fails at start), the rest on demand.
    /// Every connection carries the statement, lock and idle-in-transaction timeouts.
    pub async fn connect(
        options: PgConnectOptions,
        settings: &DatabaseSettings,
    ) -> sqlx::Result<Pool> {
        let failures = Arc::new(LastFailure::new());
        let seen = failures.clone();
        let pg = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
            .idle_timeout(positive_secs(settings.idle_timeout_secs))
            .max_lifetime(positive_secs(settings.max_lifetime_secs))
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                let seen = seen.clone();
                Box::pin(async move {
                    if (meta.idle_for >= IDLE_CHECK || seen.since_idle(meta.idle_for))
                        && let Err(e) = conn.ping().await
                    {
                        seen.note();
                        return Err(e);
                    }
                    Ok(true)
                })
            })
            .connect_with(with_timeouts(options, settings))
            .await?;
        Ok(Pool { pg, failures })
    }

    /// A connection, waiting at most the acquire timeout for one to be free.
    ///
    /// A server that refuses a new connection (not accepting connections, shutting down,
    /// a dropped database) makes the database unavailable to us for now: that answers
    /// as an I/O error, like a server that cannot be reached, not as a wrong query.
    pub async fn acquire(&self) -> sqlx::Result<PoolConnection<Postgres>> {
        self.pg.acquire().await.map_err(|e| match e {
            sqlx::Error::Database(refused) => sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                refused.to_string(),
            )),
            e => e,
        })
    }

    /// The sqlx pool itself, for libraries that take one (the session store).
    pub fn pg(&self) -> &PgPool {
        &self.pg
    }

    /// Records `e` if it may mean broken connections: every connection that went idle
    /// before now is checked before its next use.
    pub fn note_failure(&self, e: &sqlx::Error) {
        if is_connection_failure(e) {
            self.failures.note();
        }
    }

    /// The same, for a failure already classified by [`is_connection_failure`].
    pub fn note_connection_failure(&self) {
        self.failures.note();
    }

    /// Connections on loan and connections open but idle (for metrics).
    pub fn usage(&self) -> (usize, usize) {
        let idle = self.pg.num_idle();
        ((self.pg.size() as usize).saturating_sub(idle), idle)
    }

    /// Refuses new loans and closes the connections (those on loan when given back).
    pub async fn close(&self) {
        self.pg.close().await;
    }
}

/// An error that may mean the server dropped its connections (a restart, a failover,
/// a terminated backend), as opposed to a wrong query or an exhausted pool.
pub fn is_connection_failure(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        // 57P: operator intervention (shutdown, terminated); 08: connection exceptions.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")),
        _ => false,
    }
}

/// The session parameters every pooled connection starts with (`0` leaves one unset).
/// Migrations use the options without them: a migration may lock or run for long.
fn with_timeouts(options: PgConnectOptions, settings: &DatabaseSettings) -> PgConnectOptions {
    let timeouts = [
        ("statement_timeout", settings.statement_timeout_secs),
        ("lock_timeout", settings.lock_timeout_secs),
        (
            "idle_in_transaction_session_timeout",
            settings.idle_in_transaction_timeout_secs,
        ),
    ];
    options.options(
        timeouts
            .into_iter()
            .filter(|(_, secs)| *secs > 0)
            .map(|(name, secs)| (name, format!("{secs}s"))),
    )
}

fn positive_secs(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// When this pool last saw a broken connection, as nanoseconds after `origin`
/// (0: never).
#[derive(Debug)]
struct LastFailure {
    origin: Instant,
    at: AtomicU64,
}

impl LastFailure {
    fn new() -> Self {
        LastFailure {
            origin: Instant::now(),
            at: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        nanos(self.origin.elapsed())
    }

    fn note(&self) {
        self.note_at(self.now());
    }

    fn note_at(&self, at: u64) {
        self.at.fetch_max(at.max(1), Ordering::Relaxed);
    }

    /// Whether a failure was seen since a connection went idle `idle_for` ago (sqlx
    /// checked it when it went idle, so an earlier failure does not concern it).
    fn since_idle(&self, idle_for: Duration) -> bool {
        self.seen_since(self.now().saturating_sub(nanos(idle_for)))
    }

    fn seen_since(&self, idle_since: u64) -> bool {
        let at = self.at.load(Ordering::Relaxed);
        at != 0 && at >= idle_since
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_concerns_only_connections_that_went_idle_before_it() {
        let failures = LastFailure::new();
        assert!(!failures.seen_since(0), "no failure yet");
        failures.note_at(5_000);
        assert!(failures.seen_since(4_000));
        assert!(failures.seen_since(5_000));
        assert!(!failures.seen_since(5_001), "went idle after the failure");
        failures.note_at(3_000);
        assert!(
            !failures.seen_since(5_001),
            "an older report does not move it back"
        );
        failures.note_at(6_000);
        assert!(failures.seen_since(5_001));
    }
}
