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
use sqlx::{ConnectOptions, Connection, PgConnection, Postgres};
use std::str::FromStr;

use crate::config::DatabaseSettings;

pub use pool::{Pool, is_connection_failure};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Migrations whose text changed after a release, with the SHA-384 of the released
/// text. Either text leads to the same schema, so a database migrated with the earlier
/// one is accepted instead of refused as "modified".
const REVISED: &[(i64, &str)] = &[(
    // Its three link indexes moved to 20261203000032..34 (built concurrently, `IF NOT
    // EXISTS`), which find them already there on such a database.
    20261203000030,
    "a1a7f21025847caaf695d38f621f002d7987f2dcbf9cd113918f25a87cb30a0afd2059a698c30de8c98986c527374e47",
)];

/// Records the current checksum for a revised migration applied in its released form.
async fn accept_revised(conn: &mut PgConnection) -> sqlx::Result<()> {
    let migrated: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !migrated {
        return Ok(());
    }
    for (version, released) in REVISED {
        let Some(current) = MIGRATOR.iter().find(|m| m.version == *version) else {
            continue;
        };
        sqlx::query(
            "UPDATE _sqlx_migrations SET checksum = $1
             WHERE version = $2 AND checksum = decode($3, 'hex')",
        )
        .bind(current.checksum.as_ref())
        .bind(version)
        .bind(released)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

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
    accept_revised(&mut conn).await?;
    MIGRATOR.run(&mut conn).await?;
    conn.close().await?;
    Ok(Pool::connect(options, settings).await?)
}
