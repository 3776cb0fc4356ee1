//! Database access: free async functions over a connection or transaction, one file
//! per table family. Migrations are embedded and run at start.

pub mod admins;
pub mod api_keys;
pub mod api_user_attempts;
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
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Postgres};
use std::str::FromStr;

use crate::config::DatabaseSettings;

pub use pool::{Pool, is_connection_failure};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Creates the database if it is missing, runs migrations (on a connection of their own,
/// without the pool's timeouts), and opens the pool.
pub async fn connect_and_migrate(settings: &DatabaseSettings) -> anyhow::Result<Pool> {
    use secrecy::ExposeSecret;
    let url = settings.url.expose_secret();
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
    Ok(Pool::connect(options, settings).await?)
}
