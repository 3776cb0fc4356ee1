//! Bullhorn API-user sign-ins on our page, counted per key (an HMAC of the end user or
//! of the username) within a window. An attempt is written before the password is
//! tried, so parallel guesses cannot overshoot the limit, and removed when it succeeds.

use sqlx::PgConnection;
use time::OffsetDateTime;

/// Records one attempt under each key; returns the attempt ids.
pub async fn reserve(
    conn: &mut PgConnection,
    keys: &[Vec<u8>],
    now: OffsetDateTime,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        "INSERT INTO api_user_login_attempts (key_hash, at) SELECT k, $2 FROM unnest($1::bytea[]) AS k RETURNING id",
        keys,
        now
    )
    .fetch_all(conn)
    .await
}

/// The largest number of attempts under any of the keys since `since`.
pub async fn most_recent(
    conn: &mut PgConnection,
    keys: &[Vec<u8>],
    since: OffsetDateTime,
) -> sqlx::Result<i64> {
    let n = sqlx::query_scalar!(
        r#"SELECT coalesce(max(n), 0) AS "n!" FROM (
               SELECT count(*) AS n FROM api_user_login_attempts
               WHERE key_hash = ANY($1::bytea[]) AND at > $2 GROUP BY key_hash
           ) counts"#,
        keys,
        since
    )
    .fetch_one(conn)
    .await?;
    Ok(n)
}

/// Forgets attempts (a success, or an attempt refused before it was tried).
pub async fn forgive(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM api_user_login_attempts WHERE id = ANY($1)",
        ids
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete_before(conn: &mut PgConnection, before: OffsetDateTime) -> sqlx::Result<u64> {
    let done = sqlx::query!("DELETE FROM api_user_login_attempts WHERE at < $1", before)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}
