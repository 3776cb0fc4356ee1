//! Stored states are closed sets: the database refuses other spellings, and what the
//! end user is told follows the stored failure code, not the wording of the error.

use sqlx::{Connection, PgConnection};

use crate::helpers::{base_database_url, spawn_app};

/// The name of the constraint that refused a statement.
async fn refused_by(pool: &sqlx::PgPool, sql: &str, id: uuid::Uuid) -> String {
    let e = sqlx::query(sql)
        .bind(id)
        .execute(pool)
        .await
        .expect_err(sql);
    e.as_database_error()
        .and_then(|d| d.constraint())
        .unwrap_or_else(|| panic!("{sql}: {e}"))
        .to_string()
}

#[tokio::test]
async fn the_database_refuses_states_outside_their_sets() {
    let app = spawn_app().await;
    let (_, id) = app.connected("states-1", "smartrecruiters").await;
    let pool = app.pool();
    for (sql, constraint) in [
        (
            "UPDATE connections SET status = 'paused' WHERE id = $1",
            "connections_status_check",
        ),
        (
            "UPDATE connections SET failure_code = 'Invalid_Grant' WHERE id = $1",
            "connections_failure_code",
        ),
        (
            "INSERT INTO connection_events (connection_id, kind, actor) VALUES ($1, 'exploded', 'keyhaven')",
            "connection_events_kind",
        ),
        (
            "INSERT INTO connection_events (connection_id, kind, actor) VALUES ($1, 'refreshed', 'refresher')",
            "connection_events_actor",
        ),
        (
            "INSERT INTO connection_events (connection_id, kind, actor) VALUES ($1, 'refreshed', 'admin:')",
            "connection_events_actor",
        ),
        (
            "INSERT INTO links (token_hash, kind, end_user_id, expires_at)
             SELECT 'x', 'invite', end_user_id, now() FROM connections WHERE id = $1",
            "links_kind_check",
        ),
    ] {
        assert_eq!(refused_by(pool, sql, id).await, constraint, "{sql}");
    }
    // Every spelling the code writes is accepted.
    for kind in keyhaven::model::EventKind::ALL {
        sqlx::query(
            "INSERT INTO connection_events (connection_id, kind, actor) VALUES ($1, $2, 'admin:ops@example.com')",
        )
        .bind(id)
        .bind(kind)
        .execute(pool)
        .await
        .unwrap();
    }
    for code in keyhaven::model::FailureCode::ALL {
        sqlx::query("UPDATE connections SET failure_code = $2 WHERE id = $1")
            .bind(id)
            .bind(code)
            .execute(pool)
            .await
            .unwrap();
    }
}

/// The explanation on the connect page's card for this user's SmartRecruiters connection.
async fn explanation(app: &crate::helpers::TestApp, browser: &reqwest::Client) -> String {
    let page = browser
        .get(format!("{}/connect", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Needs reconnect"), "{page}");
    let start = page.find(r#"<p class="reason">"#).expect("a reason") + 18;
    let end = start + page[start..].find("</p>").unwrap();
    page[start..end].to_string()
}

#[tokio::test]
async fn the_reconnect_explanation_follows_the_stored_failure_code() {
    let app = spawn_app().await;
    let (browser, id) = app.connected("states-2", "smartrecruiters").await;
    // Error texts chosen to mislead any matching on words: only the code may decide.
    for (code, error, expected) in [
        (
            Some("credentials_unreadable"),
            "refresh refused (invalid_grant: revoked)",
            "The stored connection could not be read. Reconnect to continue.",
        ),
        (
            Some("invalid_grant"),
            "stored credentials could not be decrypted",
            "The provider no longer accepts this connection (it was revoked, expired, or the account changed). Reconnect to continue.",
        ),
        (
            Some("no_refresh_token"),
            "invalid_grant; decrypt; revoked",
            "The provider no longer accepts this connection. Reconnect to continue.",
        ),
        (
            None,
            "refresh refused (invalid_grant: revoked)",
            "The provider no longer accepts this connection. Reconnect to continue.",
        ),
    ] {
        sqlx::query(
            "UPDATE connections SET status = 'needs_reconnect', failure_code = $2, last_error = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(code)
        .bind(error)
        .execute(app.pool())
        .await
        .unwrap();
        assert_eq!(explanation(&app, &browser).await, expected, "{code:?}");
    }
}

/// Connections failing before failure codes existed get the code their error text
/// stood for, so what their users are told does not change.
#[tokio::test]
async fn failing_connections_get_their_code_from_the_stored_error() {
    let scratch = keyhaven_testkit::ScratchDatabase::create(
        &format!("{}/{{db}}", base_database_url()),
        "test",
    )
    .await;
    let url = scratch.url.clone();
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let all = &keyhaven::db::MIGRATOR;
    let first_new = all
        .migrations
        .iter()
        .position(|m| m.description == "typed states")
        .expect("the typed states migration");
    let before = sqlx::migrate::Migrator {
        migrations: all.migrations[..first_new].to_vec().into(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before.run(&mut conn).await.unwrap();
    sqlx::query("INSERT INTO end_users (id, external_id) VALUES (gen_random_uuid(), 'u')")
        .execute(&mut conn)
        .await
        .unwrap();
    let rows = [
        (
            "a",
            "needs_reconnect",
            Some("refresh refused (invalid_grant: invalid_grant)"),
            Some("invalid_grant"),
        ),
        (
            "b",
            "needs_reconnect",
            Some("refresh refused (invalid_code)"),
            Some("invalid_grant"),
        ),
        (
            "c",
            "needs_reconnect",
            Some("stored credentials could not be decrypted"),
            Some("credentials_unreadable"),
        ),
        (
            "d",
            "needs_reconnect",
            Some("the provider gave no refresh token"),
            Some("no_refresh_token"),
        ),
        (
            "e",
            "needs_reconnect",
            Some("something else"),
            Some("grant_dead"),
        ),
        (
            "f",
            "degraded",
            Some("timeout: the provider did not answer in time"),
            Some("timeout"),
        ),
        (
            "g",
            "degraded",
            Some("host_refused: the provider named a host that is not allowed"),
            Some("provider_error"),
        ),
        ("h", "active", Some("throttled: an old error"), None),
        (
            "i",
            "revoked",
            Some("refresh refused (invalid_grant: x)"),
            None,
        ),
    ];
    for (provider, status, error, _) in rows {
        sqlx::query(
            "INSERT INTO connections (id, end_user_id, provider, status, last_error)
             SELECT gen_random_uuid(), id, $1, $2, $3 FROM end_users",
        )
        .bind(provider)
        .bind(status)
        .bind(error)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    all.run(&mut conn).await.unwrap();
    for (provider, _, _, code) in rows {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT failure_code FROM connections WHERE provider = $1")
                .bind(provider)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(stored.as_deref(), code, "{provider}");
    }
    conn.close().await.unwrap();
    let name = url.rsplit('/').next().unwrap();
    let mut admin =
        PgConnection::connect(&format!("{}/postgres", crate::helpers::base_database_url()))
            .await
            .unwrap();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

/// A database migrated by a release whose text of a migration was later revised (to the
/// same schema) starts as well as one migrated by the current text.
#[tokio::test]
async fn a_migration_applied_in_its_released_text_is_accepted() {
    let app = spawn_app().await;
    const RELEASED: &str = "a1a7f21025847caaf695d38f621f002d7987f2dcbf9cd113918f25a87cb30a0afd2059a698c30de8c98986c527374e47";
    let set = |checksum: &'static str| {
        sqlx::query(
            "UPDATE _sqlx_migrations SET checksum = decode($1, 'hex') WHERE version = 20261203000030",
        )
        .bind(checksum)
        .execute(app.pool())
    };
    set(RELEASED).await.unwrap();
    keyhaven::db::connect_and_migrate(&app.state.settings.database)
        .await
        .expect("the released text is accepted")
        .close()
        .await;
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = 20261203000030")
            .fetch_one(app.pool())
            .await
            .unwrap();
    let current = keyhaven::db::MIGRATOR
        .iter()
        .find(|m| m.version == 20261203000030)
        .unwrap();
    assert_eq!(stored, current.checksum.as_ref());
    // Any other text is still refused.
    set("00").await.unwrap();
    let err = keyhaven::db::connect_and_migrate(&app.state.settings.database)
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("modified"), "{err}");
}
