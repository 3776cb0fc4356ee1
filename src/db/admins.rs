//! Admin accounts and the failed sign-ins that rate-limit the login form.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone)]
pub struct Admin {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
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
           ON CONFLICT (email) DO UPDATE SET password_hash = EXCLUDED.password_hash
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
        "SELECT id, email, password_hash FROM admins WHERE email = $1",
        email
    )
    .fetch_optional(conn)
    .await
}

/// Whether the admin still exists (a session outlives nothing that was deleted).
pub async fn exists(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM admins WHERE id = $1) AS "exists!""#,
        id
    )
    .fetch_one(conn)
    .await
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

/// Failed sign-ins since `since`: for this email, and from this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentFailures {
    pub for_email: i64,
    pub from_client: i64,
}

pub async fn recent_failures(
    conn: &mut PgConnection,
    email_hash: &[u8],
    client_hash: &[u8],
    since: OffsetDateTime,
) -> sqlx::Result<RecentFailures> {
    let row = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE email_hash = $1) AS "for_email!",
                  count(*) FILTER (WHERE client_hash = $2) AS "from_client!"
           FROM admin_login_failures
           WHERE at > $3 AND (email_hash = $1 OR client_hash = $2)"#,
        email_hash,
        client_hash,
        since
    )
    .fetch_one(conn)
    .await?;
    Ok(RecentFailures {
        for_email: row.for_email,
        from_client: row.from_client,
    })
}

pub async fn record_failure(
    conn: &mut PgConnection,
    email_hash: &[u8],
    client_hash: &[u8],
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO admin_login_failures (email_hash, client_hash, at) VALUES ($1, $2, $3)",
        email_hash,
        client_hash,
        at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A successful sign-in forgives the email's earlier mistakes (the client's stay counted).
pub async fn clear_failures(conn: &mut PgConnection, email_hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM admin_login_failures WHERE email_hash = $1",
        email_hash
    )
    .execute(conn)
    .await?;
    Ok(())
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
