//! Browser sessions, in tower-sessions' table but by a store of our own:
//!
//! - A row is found by the SHA-256 of the session id, never by the id: a database dump,
//!   a replica or a backup hands over no live session. (Ids are 128 random bits, so a
//!   plain hash is the right stored form.) The record's data is stored without its id.
//! - `save` only updates a row that still exists: a request in flight when its session
//!   was signed out or given a new id cannot bring the old one back. Only `create`
//!   inserts, always under a fresh id.
//! - End-user pages read recently used records from memory. Their part of a record never
//!   changes under the same id (binding a browser to an end user cycles the id); writes
//!   through this instance update the copy, and every copy lapses after [`CACHE_TTL`],
//!   which bounds how stale another instance's view can be. Admin pages always read
//!   Postgres, so signing out takes effect on every instance at once.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, Error};

/// How long a record read from Postgres may be served from memory.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// At most this many records are held in memory (about 1 KiB each).
const CACHE_CAPACITY: u64 = 20_000;

/// Clones share one cache.
#[derive(Clone)]
pub struct Sessions {
    pool: PgPool,
    cache: moka::sync::Cache<Id, Record>,
    read_from_cache: bool,
}

/// Cached records hold session data (CSRF tokens, bindings): never printed.
impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("cached", &self.cache.entry_count())
            .field("read_from_cache", &self.read_from_cache)
            .finish_non_exhaustive()
    }
}

/// The stored key of a session id: hex SHA-256 of the id as its cookie carries it.
pub fn stored_id(id: &Id) -> String {
    Sha256::digest(id.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

type Data = HashMap<String, serde_json::Value>;

fn encode(record: &Record) -> session_store::Result<Vec<u8>> {
    rmp_serde::to_vec(&record.data).map_err(|e| Error::Encode(e.to_string()))
}

fn backend(e: sqlx::Error) -> Error {
    Error::Backend(e.to_string())
}

impl Sessions {
    pub fn new(pool: PgPool) -> Self {
        Self {
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

    pub async fn delete_expired(&self) -> session_store::Result<u64> {
        let done =
            sqlx::query(r#"DELETE FROM "tower_sessions"."session" WHERE expiry_date < now()"#)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl SessionStore for Sessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = encode(record)?;
        // Ids are 128 random bits; a collision only means drawing again.
        loop {
            let inserted = sqlx::query(
                r#"INSERT INTO "tower_sessions"."session" (id, data, expiry_date)
                   VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING"#,
            )
            .bind(stored_id(&record.id))
            .bind(&data)
            .bind(record.expiry_date)
            .execute(&self.pool)
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

    /// Updates the session if it still exists; a deleted one stays deleted.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.cache.invalidate(&record.id);
        let updated = sqlx::query(
            r#"UPDATE "tower_sessions"."session" SET data = $2, expiry_date = $3 WHERE id = $1"#,
        )
        .bind(stored_id(&record.id))
        .bind(encode(record)?)
        .bind(record.expiry_date)
        .execute(&self.pool)
        .await
        .map_err(backend)?
        .rows_affected();
        if updated == 1 {
            self.cache.insert(record.id, record.clone());
        } else {
            tracing::debug!("a session ended while a request was using it; not saved");
        }
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        if self.read_from_cache
            && let Some(record) = self.cache.get(id)
            && record.expiry_date > OffsetDateTime::now_utc()
        {
            return Ok(Some(record));
        }
        let row: Option<(Vec<u8>, OffsetDateTime)> = sqlx::query_as(
            r#"SELECT data, expiry_date FROM "tower_sessions"."session"
               WHERE id = $1 AND expiry_date > now()"#,
        )
        .bind(stored_id(id))
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let record = match row {
            Some((data, expiry_date)) => Some(Record {
                id: *id,
                data: rmp_serde::from_slice::<Data>(&data)
                    .map_err(|e| Error::Decode(e.to_string()))?,
                expiry_date,
            }),
            None => None,
        };
        match &record {
            Some(r) => self.cache.insert(*id, r.clone()),
            None => self.cache.invalidate(id),
        }
        Ok(record)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.cache.invalidate(id);
        sqlx::query(r#"DELETE FROM "tower_sessions"."session" WHERE id = $1"#)
            .bind(stored_id(id))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
