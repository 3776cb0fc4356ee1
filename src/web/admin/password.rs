//! `GET|POST /admin/password`: a signed-in admin changes their own password. The change
//! bumps the admin's password epoch, which signs out every other session of theirs; this
//! one continues under a new id.

use askama::Template;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use secrecy::SecretString;
use serde::Deserialize;
use tower_sessions::Session;

use super::accounts;
use super::{AdminResult, AdminSession, KEY, Nav, render_status, set_flash, take_flash};
use crate::db;
use crate::error::AppError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/password", get(page).post(change))
}

#[derive(Template)]
#[template(path = "admin/password.html")]
struct PasswordPage {
    nav: Nav,
    error: Option<String>,
    done: Option<String>,
    min_chars: usize,
}

async fn page(
    Extension(admin): Extension<AdminSession>,
    session: Session,
) -> AdminResult<Response> {
    let done = take_flash(&session).await?.map(|f| f.text);
    Ok(render_status(
        StatusCode::OK,
        &PasswordPage {
            nav: admin.nav(),
            error: None,
            done,
            min_chars: accounts::MIN_PASSWORD_CHARS,
        },
    ))
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    repeat: String,
}

async fn change(
    State(app): State<AppState>,
    Extension(admin): Extension<AdminSession>,
    session: Session,
    Form(form): Form<PasswordForm>,
) -> AdminResult<Response> {
    let refuse = |admin: &AdminSession, message: String| {
        render_status(
            StatusCode::BAD_REQUEST,
            &PasswordPage {
                nav: admin.nav(),
                error: Some(message),
                done: None,
                min_chars: accounts::MIN_PASSWORD_CHARS,
            },
        )
    };
    let stored = {
        let mut conn = app.pool.acquire().await?;
        db::admins::get(&mut conn, admin.admin_id).await?
    }
    .ok_or(AppError::NoSession)?;
    let current_ok = form.current.len() <= accounts::MAX_PASSWORD_BYTES
        && accounts::verify_password(
            Some(stored.password_hash.clone()),
            SecretString::from(form.current),
        )
        .await?;
    if !current_ok {
        tracing::warn!(admin_id = %admin.admin_id, "password change refused: wrong current password");
        return Ok(refuse(&admin, "The current password is not right.".into()));
    }
    if form.new_password != form.repeat {
        return Ok(refuse(&admin, "The two new passwords differ.".into()));
    }
    let epoch = match accounts::change_password(
        &app.pool,
        &stored.email,
        &SecretString::from(form.new_password),
    )
    .await
    {
        Ok(epoch) => epoch,
        Err(AppError::BadRequest(message)) => return Ok(refuse(&admin, message)),
        Err(e) => return Err(e.into()),
    };
    // This browser stays signed in, under a new id and the new epoch.
    session.cycle_id().await?;
    let mut current = admin;
    current.epoch = epoch;
    session.insert(KEY, &current).await?;
    set_flash(
        &session,
        true,
        "Your password was changed. Every other session of yours was signed out.".into(),
    )
    .await?;
    tracing::info!(admin_id = %current.admin_id, "admin password changed");
    Ok(Redirect::to("/admin/password").into_response())
}
