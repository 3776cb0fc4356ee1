//! The connection pool: what a request leaves behind on the server, and what every
//! connection carries.

use std::time::Duration;

use reqwest::StatusCode;
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Keyhaven's backends in the test's database that are not simply idle, by state.
async fn busy_backends(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT coalesce(state, '') FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'keyhaven' AND state IS DISTINCT FROM 'idle'",
    )
    .fetch_all(app.pool())
    .await
    .unwrap()
}

/// Waits until Postgres reports `done`, polling it (Postgres has no signal for these);
/// fails after a generous deadline.
async fn until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_request_cancelled_inside_a_transaction_leaves_no_transaction_open() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    // Creating a connect link upserts the end user, then inserts the link: holding a lock
    // that blocks inserts into `links` stops the request inside its transaction.
    let mut locker = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    let mut lock = locker.begin().await.unwrap();
    sqlx::query("LOCK TABLE links IN SHARE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();

    let body = r#"{"end_user":{"external_id":"cancelled-1"}}"#;
    let request = format!(
        "POST /api/v1/connect-links HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut client = TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .unwrap();
    client.write_all(request.as_bytes()).await.unwrap();
    until("the request waits for the lock inside its transaction", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'keyhaven' AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO links%'",
        )
        .fetch_one(app.pool())
        .await
        .unwrap();
        // Housekeeping may wait on the same lock; the request is the one inserting a link.
        waiting == 1
    })
    .await;

    // The client goes away; the server drops the request and closes the connection.
    client.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let _ = client.read_to_end(&mut answer).await;
    assert!(answer.is_empty(), "no answer to a request that was dropped");
    lock.commit().await.unwrap();

    until(
        "no backend of Keyhaven is busy or inside a transaction",
        || async { busy_backends(&app).await.is_empty() },
    )
    .await;
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM end_users WHERE external_id = 'cancelled-1'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(stored, 0, "the cancelled transaction was rolled back");
    // Nothing it locked is still held: the same end user's link is created at once.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/connect-links", app.url))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn every_pooled_connection_carries_the_configured_timeouts() {
    let app = spawn_app_with(Options {
        tweak: |settings| {
            settings.database.statement_timeout_secs = 1;
            settings.database.lock_timeout_secs = 0;
            settings.database.idle_in_transaction_timeout_secs = 90;
        },
        ..Options::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = app.state.pool.acquire().await.unwrap();
        let settings: (String, String, String) = sqlx::query_as(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), current_setting('idle_in_transaction_session_timeout')",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert_eq!(
            settings,
            ("1s".to_string(), "0".to_string(), "90s".to_string())
        );
        held.push(conn);
    }
    // A statement over the limit is cancelled by the server.
    let err = sqlx::query("SELECT pg_sleep(3)")
        .execute(&mut *held[0])
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("57014"),
        "query_canceled"
    );
}

#[tokio::test]
async fn the_session_store_uses_the_one_pool() {
    let app = spawn_app_with(Options {
        pool_size: 2,
        ..Options::default()
    })
    .await;
    // Admin pages read their session from Postgres through the store.
    let admin = app.admin_browser().await;
    app.admin_page(&admin, "/admin").await;
    app.user_browser("one-pool").await;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'keyhaven%'",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert!(!names.is_empty());
    assert!(
        names.len() <= 2 && names.iter().all(|n| n == "keyhaven"),
        "{names:?}"
    );
}
