//! In-process single flight: callers wanting a refresh of the same connection queue on
//! one lock, and all but the first find the fresh grant when they get it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
use uuid::Uuid;

#[derive(Default)]
pub struct RefreshLocks {
    locks: Mutex<HashMap<Uuid, Weak<AsyncMutex<()>>>>,
}

impl RefreshLocks {
    pub async fn lock(&self, id: Uuid) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            // Drop entries nobody holds any more so the map stays small.
            if map.len() > 1024 {
                map.retain(|_, weak| weak.strong_count() > 0);
            }
            match map.get(&id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(AsyncMutex::new(()));
                    map.insert(id, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}
