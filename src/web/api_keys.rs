//! API-key checks with a short in-process memory, so a busy backend's requests cost one
//! database read (the connection) instead of two. A revoked key stops working within
//! `TTL` on every instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

const TTL: Duration = Duration::from_secs(10);
const MAX_ENTRIES: usize = 4096;

#[derive(Default)]
pub struct ApiKeyCache {
    verified: Mutex<HashMap<Vec<u8>, (Uuid, Instant)>>,
}

impl ApiKeyCache {
    pub fn get(&self, key_hash: &[u8]) -> Option<Uuid> {
        let map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key_hash)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(id, _)| *id)
    }

    pub fn insert(&self, key_hash: Vec<u8>, id: Uuid) {
        let mut map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, at)| at.elapsed() < TTL);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key_hash, (id, Instant::now()));
    }
}
