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

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::str::FromStr;
use std::time::Duration;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Creates the database if it is missing, connects, and runs migrations.
pub async fn connect_and_migrate(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    if !Postgres::database_exists(url).await? {
        // Two instances starting together may both try; losing that race is fine.
        if let Err(e) = Postgres::create_database(url).await
            && !Postgres::database_exists(url).await?
        {
            return Err(e.into());
        }
    }
    let options = PgConnectOptions::from_str(url)?.application_name("keyhaven");
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        // Fail fast when the pool is exhausted rather than queueing behind a slow provider.
        .acquire_timeout(Duration::from_secs(3))
        // A ping on every checkout doubles round trips on a busy pool; pinging only
        // connections that sat idle still weeds out the dead ones after a restart.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for < Duration::from_secs(1) {
                    return Ok(true);
                }
                Ok(sqlx::Connection::ping(conn).await.is_ok())
            })
        })
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}
