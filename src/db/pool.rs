//! The connection pool for requests and background work.
//!
//! sqlx's own pool sends a round trip to the server every time a connection is given
//! back, which doubles the round trips of a one-query request (a credential read).
//! This pool gives connections back as they are: sqlx resynchronises a connection at
//! the start of its next query, so one dropped mid-query is safe to reuse. A connection
//! is checked with a round trip before reuse only when it sat idle for a while or when
//! a database failure was seen anywhere since it was last known good (a restarted
//! server breaks every connection at once).

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection idle this long is checked before reuse.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Database failures seen by this process; see [`note_failure`].
static FAILURES: AtomicU64 = AtomicU64::new(0);

/// Records a failure that may mean broken connections: every pooled connection is
/// checked before its next use.
pub fn note_failure(e: &sqlx::Error) {
    if crate::error::is_unavailable(e) || matches!(e, sqlx::Error::Protocol(_)) {
        FAILURES.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    options: PgConnectOptions,
    idle: Mutex<Vec<Idle>>,
    permits: Arc<Semaphore>,
    max_connections: usize,
    acquire_timeout: Duration,
}

struct Idle {
    conn: PgConnection,
    since: Instant,
    /// The failure count when this connection was last known good.
    verified: u64,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("available", &self.inner.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Opens one connection at once (so a wrong URL fails at start), the rest on demand.
    pub async fn connect(
        options: PgConnectOptions,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> sqlx::Result<Pool> {
        let pool = Pool {
            inner: Arc::new(Inner {
                options,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(max_connections.max(1) as usize)),
                max_connections: max_connections.max(1) as usize,
                acquire_timeout,
            }),
        };
        drop(pool.acquire().await?);
        Ok(pool)
    }

    /// A connection, waiting at most the acquire timeout for one to be free.
    pub async fn acquire(&self) -> sqlx::Result<PoolConnection> {
        let deadline = tokio::time::Instant::now() + self.inner.acquire_timeout;
        let permit = tokio::time::timeout_at(deadline, self.inner.permits.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let failures = FAILURES.load(Ordering::Relaxed);
        while let Some(mut idle) = self.pop_idle() {
            let trusted = idle.verified == failures && idle.since.elapsed() < IDLE_CHECK;
            if trusted || idle.conn.ping().await.is_ok() {
                return Ok(self.guard(idle.conn, failures, permit));
            }
            // Broken: dropping it closes the socket; try the next one.
        }
        let conn = self.open(deadline).await?;
        Ok(self.guard(conn, failures, permit))
    }

    /// A new connection, retrying until the deadline: a server restarting or refusing
    /// connections for a moment is waited out, a longer outage answers "timed out".
    async fn open(&self, deadline: tokio::time::Instant) -> sqlx::Result<PgConnection> {
        let mut pause = Duration::from_millis(20);
        loop {
            match tokio::time::timeout_at(deadline, self.inner.options.connect()).await {
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(e)) => tracing::debug!(error = %e, "could not open a database connection"),
                Err(_) => return Err(sqlx::Error::PoolTimedOut),
            }
            if tokio::time::Instant::now() + pause >= deadline {
                return Err(sqlx::Error::PoolTimedOut);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Connections on loan and connections open but idle (for metrics).
    pub fn usage(&self) -> (usize, usize) {
        let in_use = self
            .inner
            .max_connections
            .saturating_sub(self.inner.permits.available_permits());
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len();
        (in_use, idle)
    }

    /// Refuses new loans and closes the idle connections; loans out close when returned.
    pub fn close(&self) {
        self.inner.permits.close();
        self.inner
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    /// The most recently used idle connection: the one most likely to be healthy.
    fn pop_idle(&self) -> Option<Idle> {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop()
    }

    fn guard(
        &self,
        conn: PgConnection,
        verified: u64,
        permit: OwnedSemaphorePermit,
    ) -> PoolConnection {
        PoolConnection {
            conn: Some(conn),
            verified,
            pool: self.inner.clone(),
            _permit: permit,
        }
    }
}

/// A connection on loan; it goes back to the pool when dropped.
pub struct PoolConnection {
    conn: Option<PgConnection>,
    verified: u64,
    pool: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl Deref for PoolConnection {
    type Target = PgConnection;
    #[expect(clippy::expect_used, reason = "the connection is taken only in drop")]
    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl DerefMut for PoolConnection {
    #[expect(clippy::expect_used, reason = "the connection is taken only in drop")]
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for PoolConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.pool.permits.is_closed()
        {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(Idle {
                    conn,
                    since: Instant::now(),
                    verified: self.verified,
                });
        }
    }
}
