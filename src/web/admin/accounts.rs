//! Admin accounts: argon2id password hashes, creating admins (CLI, demo, tests), and
//! checking a sign-in with the same work whether or not the email exists.

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::crypto;
use crate::db;
use crate::error::{AppError, AppResult};

pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longer input is refused before hashing, so a huge body cannot buy CPU time.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Verified against when the email is unknown, so that answer takes as long as a wrong
/// password. Same parameters as real hashes; it matches no password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$EgMVek2D5smwEgEmvij3Tw$HYsb3tbYDF4SApOSspbE8x4j/O2orxBqH7ZjWB4gTk4";

/// Lower-cased, trimmed, and shaped like an address; `None` otherwise.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let plausible = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    plausible.then_some(email)
}

pub fn check_password_rules(password: &SecretString) -> AppResult<()> {
    let p = password.expose_secret();
    if p.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AppError::BadRequest(format!(
            "The password must have at least {MIN_PASSWORD_CHARS} characters."
        )));
    }
    if p.len() > MAX_PASSWORD_BYTES {
        return Err(AppError::BadRequest(format!(
            "The password must have at most {MAX_PASSWORD_BYTES} bytes."
        )));
    }
    Ok(())
}

/// An argon2id PHC string (argon2's defaults: 19 MiB, 2 passes, 1 lane) with a salt
/// from the OS CSPRNG.
fn hash_password(password: &SecretString) -> AppResult<String> {
    let salt = SaltString::encode_b64(&crypto::random_bytes::<16>()?)
        .map_err(|e| AppError::internal(anyhow::anyhow!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(anyhow::anyhow!("hashing: {e}")))
}

/// Hashes computed at once. Each takes 19 MiB and a core for tens of milliseconds, so
/// a flood of sign-in attempts queues here instead of exhausting memory.
static HASHING: Semaphore = Semaphore::const_new(4);

/// The normalised email and the hash of a password that meets the rules. Hashing is
/// CPU-bound: it runs off the async workers, within the same limit as checking.
async fn prepare(email: &str, password: &SecretString) -> AppResult<(String, String)> {
    let email = normalize_email(email)
        .ok_or_else(|| AppError::BadRequest("That is not an email address.".into()))?;
    check_password_rules(password)?;
    let _permit = HASHING.acquire().await.map_err(AppError::internal)?;
    let password = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(AppError::internal)??;
    Ok((email, hash))
}

/// Whether `password` matches `stored` (or, with `None`, does the same work and fails).
/// CPU-bound: runs off the async workers.
pub async fn verify_password(stored: Option<String>, password: SecretString) -> AppResult<bool> {
    let _permit = HASHING.acquire().await.map_err(AppError::internal)?;
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| DUMMY_HASH.to_string());
        let matches = PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.expose_secret().as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        known && matches
    })
    .await
    .map_err(AppError::internal)
}

/// Creates an admin after checking the email and password rules.
pub async fn create_admin(
    pool: &crate::db::Pool,
    email: &str,
    password: &SecretString,
) -> AppResult<Uuid> {
    let (email, hash) = prepare(email, password).await?;
    let mut conn = pool.acquire().await?;
    db::admins::create(&mut conn, &email, &hash)
        .await?
        .ok_or_else(|| AppError::Conflict {
            code: "admin_exists",
            message: format!("An admin with the email {email} already exists."),
        })
}

/// Gives an existing admin a new password and signs out their sessions (by bumping the
/// password epoch); the new epoch.
pub async fn change_password(
    pool: &crate::db::Pool,
    email: &str,
    password: &SecretString,
) -> AppResult<i32> {
    let (email, hash) = prepare(email, password).await?;
    let mut conn = pool.acquire().await?;
    db::admins::set_password(&mut conn, &email, &hash)
        .await?
        .map(|(_, epoch)| epoch)
        .ok_or_else(|| AppError::BadRequest(format!("There is no admin with the email {email}.")))
}

/// Creates the admin or gives it a new password (the demo's admin).
pub async fn set_admin(
    pool: &crate::db::Pool,
    email: &str,
    password: &SecretString,
) -> AppResult<Uuid> {
    let (email, hash) = prepare(email, password).await?;
    let mut conn = pool.acquire().await?;
    Ok(db::admins::upsert(&mut conn, &email, &hash).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_the_dummy_matches_nothing() {
        let password = SecretString::from("correct horse battery");
        let hash = hash_password(&password).expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            verify_password(Some(hash.clone()), password.clone())
                .await
                .expect("verify")
        );
        let wrong = SecretString::from("correct horse battery!");
        assert!(!verify_password(Some(hash), wrong).await.expect("verify"));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!verify_password(None, password).await.expect("verify"));
    }

    #[test]
    fn emails_and_password_rules() {
        assert_eq!(
            normalize_email("  Ops@Example.COM ").as_deref(),
            Some("ops@example.com")
        );
        for bad in [
            "",
            "ops",
            "@example.com",
            "ops@",
            "o ps@example.com",
            "a@b@c",
        ] {
            assert!(normalize_email(bad).is_none(), "{bad:?}");
        }
        assert!(check_password_rules(&SecretString::from("short")).is_err());
        assert!(check_password_rules(&SecretString::from("twelve chars")).is_ok());
        assert!(check_password_rules(&SecretString::from("x".repeat(1025))).is_err());
    }
}
