//! Webhooks following the Standard Webhooks specification: endpoints and their sealed
//! secrets, signing, and the delivery worker that empties the outbox (`db::webhooks`).
//! Events are written by the changes they report, in the same transaction.

pub mod worker;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use uuid::Uuid;

use crate::crypto::{self, CryptoError, SealedAt};
use crate::db;
use crate::outbound::webhook_guard as guard;
use crate::state::AppState;

/// Every event type, in the order the README lists them.
pub const EVENT_TYPES: [&str; 6] = [
    "connection.created",
    "connection.reconnected",
    "connection.needs_reconnect",
    "connection.degraded",
    "connection.recovered",
    "connection.disconnected",
];

/// How long the old secret keeps signing beside a new one after a rotation.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("endpoint URL refused: {0}")]
    Refused(#[from] guard::Refused),
    #[error("unknown event type {0:?} (known: {known})", known = EVENT_TYPES.join(", "))]
    UnknownEvent(String),
    #[error("no such webhook endpoint")]
    NotFound,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Where an endpoint's sealed secret lives (the AAD binds it to the row and column).
pub fn sealed_at<'a>(id: &'a Uuid, column: &'static str) -> SealedAt<'a> {
    SealedAt {
        table: "webhook_endpoints",
        column,
        row: id.as_bytes(),
    }
}

/// A fresh `whsec_<base64 of 32 random bytes>`.
pub fn new_secret() -> Result<SecretString, CryptoError> {
    Ok(SecretString::from(format!(
        "whsec_{}",
        STANDARD.encode(crypto::random_bytes::<32>()?)
    )))
}

/// The HMAC key a `whsec_…` secret stands for.
fn secret_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
}

/// `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>` for each secret, space-separated.
pub fn signature_header(secrets: &[SecretString], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|secret| {
            let key = secret_key(secret.expose_secret())?;
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            Some(format!(
                "v1,{}",
                STANDARD.encode(mac.finalize().into_bytes())
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_events(events: Option<&[String]>) -> Result<Option<Vec<String>>, WebhookError> {
    let Some(events) = events else {
        return Ok(None);
    };
    let mut list: Vec<String> = Vec::new();
    for event in events.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        if !EVENT_TYPES.contains(&event) {
            return Err(WebhookError::UnknownEvent(event.to_string()));
        }
        if !list.iter().any(|e| e == event) {
            list.push(event.to_string());
        }
    }
    Ok((!list.is_empty()).then_some(list))
}

/// Adds an endpoint (all events unless `events` names some); returns its id and secret.
pub async fn add_endpoint(
    app: &AppState,
    url: &str,
    events: Option<&[String]>,
) -> Result<(Uuid, SecretString), WebhookError> {
    let insecure = app.settings.webhooks.allow_insecure_urls;
    let url = guard::check_url(url, insecure)?;
    if !insecure && let Some(url::Host::Domain(host)) = url.host() {
        guard::resolve_checked(host, url.port_or_known_default().unwrap_or(443)).await?;
    }
    let events = parse_events(events)?;
    let id = Uuid::new_v4();
    let secret = new_secret()?;
    let sealed = app.settings.keys.seal(
        secret.expose_secret().as_bytes(),
        sealed_at(&id, "secret_sealed"),
    )?;
    let mut conn = app.pool.acquire().await?;
    db::webhooks::create_endpoint(&mut conn, id, url.as_str(), events.as_deref(), &sealed).await?;
    tracing::info!(endpoint = %id, "webhook endpoint added");
    app.webhooks.wake();
    Ok((id, secret))
}

pub async fn list_endpoints(app: &AppState) -> Result<Vec<db::webhooks::Endpoint>, WebhookError> {
    let mut conn = app.pool.acquire().await?;
    Ok(db::webhooks::list_endpoints(&mut conn).await?)
}

/// Removes an endpoint with its delivery log.
pub async fn remove_endpoint(app: &AppState, id: Uuid) -> Result<(), WebhookError> {
    let mut conn = app.pool.acquire().await?;
    if !db::webhooks::delete_endpoint(&mut conn, id).await? {
        return Err(WebhookError::NotFound);
    }
    tracing::info!(endpoint = %id, "webhook endpoint removed");
    Ok(())
}

/// A new secret for the endpoint; the current one keeps signing beside it for
/// [`ROTATION_OVERLAP_HOURS`]. Returns the new secret.
pub async fn rotate_secret(app: &AppState, id: Uuid) -> Result<SecretString, WebhookError> {
    use sqlx::Connection;
    let keys = &app.settings.keys;
    let mut conn = app.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let current = db::webhooks::secret_for_update(&mut tx, id)
        .await?
        .ok_or(WebhookError::NotFound)?;
    let old = keys.open(&current, sealed_at(&id, "secret_sealed"))?;
    let previous = keys.seal(&old, sealed_at(&id, "previous_secret_sealed"))?;
    let secret = new_secret()?;
    let sealed = keys.seal(
        secret.expose_secret().as_bytes(),
        sealed_at(&id, "secret_sealed"),
    )?;
    db::webhooks::rotate_secret(&mut tx, id, &sealed, &previous, ROTATION_OVERLAP_HOURS).await?;
    tx.commit().await?;
    tracing::info!(endpoint = %id, "webhook secret rotated");
    Ok(secret)
}

/// Sends a delivery again; false if it is unknown or an attempt is under way.
pub async fn redeliver(app: &AppState, delivery_id: i64) -> Result<bool, WebhookError> {
    let mut conn = app.pool.acquire().await?;
    Ok(db::webhooks::redeliver(&mut conn, delivery_id).await?)
}

/// Re-seals every endpoint's secrets with the primary key (`keyhaven keys reseal`);
/// returns (re-sealed, unreadable).
pub async fn reseal_secrets(app: &AppState) -> Result<(usize, usize), WebhookError> {
    let keys = &app.settings.keys;
    let mut conn = app.pool.acquire().await?;
    let (mut resealed, mut unreadable) = (0, 0);
    for row in db::webhooks::sealed_secrets(&mut conn).await? {
        let again = |sealed: &[u8], column: &'static str| -> Result<Vec<u8>, CryptoError> {
            if !keys.needs_reseal(sealed) {
                return Ok(sealed.to_vec());
            }
            let plain = keys.open(sealed, sealed_at(&row.id, column))?;
            keys.seal(&plain, sealed_at(&row.id, column))
        };
        let fresh = again(&row.secret_sealed, "secret_sealed").and_then(|secret| {
            let previous = row
                .previous_secret_sealed
                .as_deref()
                .map(|p| again(p, "previous_secret_sealed"))
                .transpose()?;
            Ok(db::webhooks::SealedSecrets {
                id: row.id,
                secret_sealed: secret,
                previous_secret_sealed: previous,
            })
        });
        match fresh {
            Ok(fresh)
                if fresh.secret_sealed != row.secret_sealed
                    || fresh.previous_secret_sealed != row.previous_secret_sealed =>
            {
                if db::webhooks::reseal(&mut conn, &row, &fresh).await? {
                    resealed += 1;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(endpoint = %row.id, error = %e, "webhook secret could not be opened");
                unreadable += 1;
            }
        }
    }
    Ok((resealed, unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_specification_example() {
        // The example from the Standard Webhooks specification.
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let header = signature_header(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn events_are_checked_and_deduplicated() {
        let list = vec![
            "connection.created".to_string(),
            "connection.created".to_string(),
        ];
        assert_eq!(
            parse_events(Some(&list)).unwrap(),
            Some(vec!["connection.created".to_string()])
        );
        let bad = vec!["connection.exploded".to_string()];
        assert!(matches!(
            parse_events(Some(&bad)),
            Err(WebhookError::UnknownEvent(_))
        ));
        assert_eq!(parse_events(None).unwrap(), None);
    }
}
