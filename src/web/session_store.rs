//! Browser sessions: tower-sessions' Postgres store, with two changes for the connect
//! flow's hot path. A new session is one `INSERT` rather than a transaction of four
//! statements, and end-user pages read recently used records from memory.
//!
//! The memory copy is safe for end-user pages because their part of a record never
//! changes under the same id: binding a browser to an end user cycles the session id.
//! Writes through this instance update the copy, and every copy lapses after
//! [`CACHE_TTL`], which bounds how stale another instance's view can be. Admin pages
//! always read Postgres, so signing out takes effect on every instance at once.

use std::time::Duration;

use async_trait::async_trait;

use crate::db::Pool;
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, Error, ExpiredDeletion};
use tower_sessions_sqlx_store::PostgresStore;

/// How long a record read from Postgres may be served from memory.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// At most this many records are held in memory (about 1 KiB each).
const CACHE_CAPACITY: u64 = 20_000;

/// Clones share one cache.
#[derive(Clone, Debug)]
pub struct Sessions {
    postgres: PostgresStore,
    /// The portal's pool, which the Postgres store shares.
    pool: Pool,
    cache: moka::sync::Cache<Id, Record>,
    read_from_cache: bool,
}

impl Sessions {
    pub fn new(pool: Pool) -> Self {
        Self {
            postgres: PostgresStore::new(pool.pg().clone()),
            pool,
            cache: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(CACHE_TTL)
                .build(),
            read_from_cache: false,
        }
    }

    /// The same store, answering loads from memory where it can (end-user pages).
    pub fn with_cached_reads(&self) -> Self {
        Self {
            read_from_cache: true,
            ..self.clone()
        }
    }

    pub async fn delete_expired(&self) -> session_store::Result<()> {
        self.postgres.delete_expired().await
    }
}

fn backend(e: sqlx::Error) -> Error {
    Error::Backend(e.to_string())
}

#[async_trait]
impl SessionStore for Sessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // The same encoding as the Postgres store's, which loads these rows.
        let data = rmp_serde::to_vec(&*record).map_err(|e| Error::Encode(e.to_string()))?;
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        // Ids are 128 random bits; a collision only means drawing again.
        loop {
            let inserted = sqlx::query(
                r#"insert into "tower_sessions"."session" (id, data, expiry_date)
                   values ($1, $2, $3) on conflict (id) do nothing"#,
            )
            .bind(record.id.to_string())
            .bind(&data)
            .bind(record.expiry_date)
            .execute(&mut *conn)
            .await
            .map_err(backend)?
            .rows_affected();
            if inserted == 1 {
                break;
            }
            record.id = Id::default();
        }
        self.cache.insert(record.id, record.clone());
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.cache.invalidate(&record.id);
        self.postgres.save(record).await?;
        self.cache.insert(record.id, record.clone());
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        if self.read_from_cache
            && let Some(record) = self.cache.get(id)
            && record.expiry_date > OffsetDateTime::now_utc()
        {
            return Ok(Some(record));
        }
        let record = self.postgres.load(id).await?;
        match &record {
            Some(r) => self.cache.insert(*id, r.clone()),
            None => self.cache.invalidate(id),
        }
        Ok(record)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.cache.invalidate(id);
        self.postgres.delete(id).await
    }
}
