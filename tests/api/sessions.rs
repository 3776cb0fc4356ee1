//! Browser sessions across instances: end-user pages may answer from an instance's
//! memory, so these prove that no instance ever serves a session another has changed.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};

use crate::helpers::*;

async fn connect_page(browser: &reqwest::Client, base: &str) -> String {
    let r = browser.get(format!("{base}/connect")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "connect page at {base}");
    r.text().await.unwrap()
}

#[tokio::test]
async fn a_flow_can_move_between_instances_at_every_step() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    // The link is opened here, the flow starts there, the callback lands here again.
    let user = app.user_browser("roaming").await;
    assert!(connect_page(&user, &other).await.contains("User roaming"));
    let csrf = field_value(&connect_page(&user, &other).await, "csrf").unwrap();
    let r = user
        .post(format!("{other}/connect/smartrecruiters"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let callback = app.approve(&location(&r)).await;
    assert!(callback.starts_with(&app.url));
    let r = user.get(callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.connection_count().await, 1);
    assert!(connect_page(&user, &other).await.contains("Connected as"));
}

#[tokio::test]
async fn opening_another_users_link_is_seen_by_every_instance_at_once() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    let b = app.user_browser("first-user").await;
    // The other instance now holds this session in memory.
    assert!(connect_page(&b, &other).await.contains("User first-user"));

    let link = app.create_link("second-user").await;
    assert_eq!(
        b.get(&link).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    let page = connect_page(&b, &other).await;
    assert!(page.contains("User second-user"), "no stale end user");
    assert!(!page.contains("User first-user"));
}

/// A request carrying only this session cookie, whatever a browser's jar would do.
async fn get_as(url: String, session_id: &str) -> reqwest::Response {
    browser()
        .get(url)
        .header(COOKIE, format!("keyhaven_session={session_id}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn signing_out_on_one_instance_signs_out_on_every_instance_at_once() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    app.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let admin = browser();
    let r = app.sign_in(&admin, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session_id = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.strip_prefix("keyhaven_session="))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
        .next()
        .expect("a session cookie at sign-in");
    let r = get_as(format!("{other}/admin"), &session_id).await;
    assert_eq!(r.status(), StatusCode::OK, "signed in on both");
    // An end-user page on the other instance reads (and keeps) the same session.
    let r = get_as(format!("{other}/connect"), &session_id).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no end user bound");

    let r = app.admin_post(&admin, "/admin/logout").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = get_as(format!("{other}/admin"), &session_id).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the old id grants nothing"
    );
    assert_eq!(location(&r), "/admin/login");
}

#[tokio::test]
async fn sessions_and_authorizations_in_flight_skip_the_write_ahead_log() {
    let app = spawn_app().await;
    for table in ["tower_sessions.session", "pending_authorizations"] {
        let persistence: i8 = sqlx::query_scalar(
            "SELECT relpersistence::\"char\" FROM pg_class WHERE oid = $1::regclass",
        )
        .bind(table)
        .fetch_one(app.pool())
        .await
        .unwrap();
        assert_eq!(persistence as u8, b'u', "{table} is unlogged");
    }
    // Tokens, by contrast, are logged and survive a crash.
    let persistence: i8 = sqlx::query_scalar(
        "SELECT relpersistence::\"char\" FROM pg_class WHERE oid = 'connections'::regclass",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(persistence as u8, b'p');
}
