//! Valid API keys remembered for less than a second, so a busy backend's requests mostly
//! cost one database read instead of two, while a key revoked on any instance is
//! refused by every instance within a second.

use std::time::Duration;

use time::OffsetDateTime;

use crate::db::api_keys::Verified;

/// How long a verified key is trusted without asking Postgres: under the one second
/// within which a revocation must take effect everywhere.
const TTL: Duration = Duration::from_millis(900);
const MAX_ENTRIES: u64 = 4096;

/// Keyed by the key's hash, never the key; each entry remembers when (on the app's
/// clock) it was verified. moka's own expiry only bounds memory.
pub struct ApiKeyCache(moka::sync::Cache<Vec<u8>, (Verified, OffsetDateTime)>);

impl Default for ApiKeyCache {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(TTL)
                .build(),
        )
    }
}

impl ApiKeyCache {
    /// The key, if it was verified less than the TTL before `now`.
    pub fn get(&self, key_hash: &[u8], now: OffsetDateTime) -> Option<Verified> {
        self.0
            .get(key_hash)
            .filter(|(_, verified_at)| now - *verified_at < TTL)
            .map(|(key, _)| key)
    }

    pub fn insert(&self, key_hash: Vec<u8>, key: Verified, now: OffsetDateTime) {
        self.0.insert(key_hash, (key, now));
    }

    /// A key was revoked here: forget every remembered key at once on this instance
    /// (the others re-check within a second anyway; revocations are rare).
    pub fn forget_all(&self) {
        self.0.invalidate_all();
    }
}
