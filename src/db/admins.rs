//! Admin accounts and the sign-in attempts that rate-limit the login form.

use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone)]
pub struct Admin {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    /// Bumped by every password change; sessions from an older epoch are void.
    pub password_epoch: i32,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("id", &self.id)
            .field("password_hash", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Creates an admin; `None` when the email is already taken.
pub async fn create(
    conn: &mut PgConnection,
    email: &str,
    password_hash: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        r#"INSERT INTO admins (id, email, password_hash) VALUES ($1, $2, $3)
           ON CONFLICT (email) DO NOTHING RETURNING id"#,
        Uuid::new_v4(),
        email,
        password_hash
    )
    .fetch_optional(conn)
    .await
}

/// Creates the admin or replaces its password (the demo's admin, on every start).
pub async fn upsert(
    conn: &mut PgConnection,
    email: &str,
    password_hash: &str,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        r#"INSERT INTO admins (id, email, password_hash) VALUES ($1, $2, $3)
           ON CONFLICT (email) DO UPDATE SET password_hash = EXCLUDED.password_hash,
             password_epoch = admins.password_epoch + 1
           RETURNING id"#,
        Uuid::new_v4(),
        email,
        password_hash
    )
    .fetch_one(conn)
    .await
}

pub async fn find_by_email(conn: &mut PgConnection, email: &str) -> sqlx::Result<Option<Admin>> {
    sqlx::query_as!(
        Admin,
        "SELECT id, email, password_hash, password_epoch FROM admins WHERE email = $1",
        email
    )
    .fetch_optional(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Admin>> {
    sqlx::query_as!(
        Admin,
        "SELECT id, email, password_hash, password_epoch FROM admins WHERE id = $1",
        id
    )
    .fetch_optional(conn)
    .await
}

/// The admin's password epoch; `None` once the admin is deleted (a session outlives
/// nothing that was deleted or whose password changed).
pub async fn password_epoch(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar!("SELECT password_epoch FROM admins WHERE id = $1", id)
        .fetch_optional(conn)
        .await
}

/// Replaces the password and bumps the epoch; the new epoch, or `None` for no such admin.
pub async fn set_password(
    conn: &mut PgConnection,
    email: &str,
    password_hash: &str,
) -> sqlx::Result<Option<(Uuid, i32)>> {
    let row = sqlx::query!(
        r#"UPDATE admins SET password_hash = $2, password_epoch = password_epoch + 1
           WHERE email = $1 RETURNING id, password_epoch"#,
        email,
        password_hash
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.id, r.password_epoch)))
}

pub async fn record_login(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE admins SET last_login_at = $2 WHERE id = $1",
        id,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The keys a sign-in attempt is counted under (HMACs, never what was typed).
#[derive(Debug, Clone, Copy)]
pub struct AttemptKeys<'a> {
    pub email: &'a [u8],
    pub client: &'a [u8],
}

/// The outcome of asking to try a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Counted as a failure until forgiven; `email_failures` is how many other recent
    /// attempts this email has had, from anyone.
    Reserved { id: i64, email_failures: i64 },
    /// This client, or this client for this email, has used up its attempts.
    Refused,
}

/// Counts an attempt before its password is checked, under a per-client lock, so that
/// attempts racing in parallel cannot pass the limit together: at most `limit` attempts
/// per (email, client) and per client since `since`.
pub async fn reserve_attempt(
    conn: &mut PgConnection,
    keys: AttemptKeys<'_>,
    since: OffsetDateTime,
    now: OffsetDateTime,
    limit: i64,
) -> sqlx::Result<Reservation> {
    let lock = i64::from_be_bytes(
        keys.client
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .unwrap_or_default(),
    );
    let mut tx = conn.begin().await?;
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", lock)
        .execute(&mut *tx)
        .await?;
    let counts = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE email_hash = $1) AS "pair!",
                  count(*) AS "client!"
           FROM admin_login_failures
           WHERE client_hash = $2 AND at > $3"#,
        keys.email,
        keys.client,
        since
    )
    .fetch_one(&mut *tx)
    .await?;
    if counts.pair >= limit || counts.client >= limit {
        tx.rollback().await?;
        return Ok(Reservation::Refused);
    }
    let id = sqlx::query_scalar!(
        "INSERT INTO admin_login_failures (email_hash, client_hash, at) VALUES ($1, $2, $3) RETURNING id",
        keys.email,
        keys.client,
        now
    )
    .fetch_one(&mut *tx)
    .await?;
    let email_failures = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM admin_login_failures
           WHERE email_hash = $1 AND at > $2 AND id <> $3"#,
        keys.email,
        since,
        id
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Reservation::Reserved { id, email_failures })
}

/// Takes back a reserved attempt: its password was right, or never checked.
pub async fn forgive(conn: &mut PgConnection, id: i64) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM admin_login_failures WHERE id = $1", id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A successful sign-in forgives this client's earlier mistakes for this email (others'
/// attempts stay counted).
pub async fn clear_pair(conn: &mut PgConnection, keys: AttemptKeys<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM admin_login_failures WHERE email_hash = $1 AND client_hash = $2",
        keys.email,
        keys.client
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets every attempt on this email (`keyhaven admin unlock`); how many there were.
pub async fn clear_email(conn: &mut PgConnection, email_key: &[u8]) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM admin_login_failures WHERE email_hash = $1",
        email_key
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

pub async fn delete_old_failures(
    conn: &mut PgConnection,
    before: OffsetDateTime,
) -> sqlx::Result<u64> {
    let done = sqlx::query!("DELETE FROM admin_login_failures WHERE at < $1", before)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}
