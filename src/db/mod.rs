//! Database access: free async functions over a connection or transaction, one file
//! per table family. Migrations are embedded and run at start.

pub mod admins;
pub mod api_keys;
pub mod connections;
pub mod console;
pub mod end_users;
pub mod events;
pub mod links;
pub mod pending;
pub mod refresh;
pub mod sealed;
pub mod webhooks;

pub mod pool;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool, Postgres};
use std::str::FromStr;
use std::time::Duration;

pub use pool::Pool;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Creates the database if it is missing, runs migrations, and opens the pool.
pub async fn connect_and_migrate(url: &str, max_connections: u32) -> anyhow::Result<Pool> {
    if !Postgres::database_exists(url).await? {
        // Two instances starting together may both try; losing that race is fine.
        if let Err(e) = Postgres::create_database(url).await
            && !Postgres::database_exists(url).await?
        {
            return Err(e.into());
        }
    }
    let options = PgConnectOptions::from_str(url)?.application_name("keyhaven");
    let mut conn = options.connect().await?;
    MIGRATOR.run(&mut conn).await?;
    conn.close().await?;
    // Fail fast when the pool is exhausted rather than queueing behind a slow provider.
    Ok(Pool::connect(options, max_connections, Duration::from_secs(3)).await?)
}

/// The few connections tower-sessions' Postgres store uses (it needs an sqlx pool),
/// opened on first use.
pub fn session_store_pool(url: &str) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?.application_name("keyhaven-sessions");
    Ok(PgPoolOptions::new()
        .max_connections(4)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(options))
}
