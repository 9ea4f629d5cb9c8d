//! The managed `kvstore` as a lock store: a lock is an item whose value is its owner, written first-write
//! (only where no live item is) with the lock's expiry as its TTL, and removed only with the ETag of the item
//! that named the owner. Every managed state backend enforces both conditions atomically, so two owners can
//! never both hold a lock and an expired lock is free again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use outrigger_bus::UnlockStatus;

use super::{LockError, LockStore};
use crate::state::{Concurrency, DeleteRequest, SetRequest, StateError, StateStore};

/// How many times an unlock reads again when the lock changed between its read and its removal.
const UNLOCK_ATTEMPTS: usize = 3;

/// Locks kept as items of a state store.
pub struct StateLockStore {
    store: Arc<dyn StateStore>,
}

impl StateLockStore {
    /// Locks in `store`, which must enforce first-write, ETags and TTLs.
    pub fn new(store: Arc<dyn StateStore>) -> StateLockStore {
        StateLockStore { store }
    }
}

fn backend(err: StateError) -> LockError {
    LockError::Backend(err.to_string())
}

#[async_trait]
impl LockStore for StateLockStore {
    async fn try_lock(&self, key: &str, owner: &str, expiry: Duration) -> Result<bool, LockError> {
        let request = SetRequest {
            key: key.to_owned(),
            value: owner.as_bytes().to_vec(),
            etag: None,
            concurrency: Concurrency::FirstWrite,
            ttl_seconds: Some(expiry.as_secs().max(1)),
        };
        match self.store.set(&request).await {
            Ok(_) => Ok(true),
            Err(StateError::EtagMismatch(_)) => Ok(false),
            Err(err) => Err(backend(err)),
        }
    }

    async fn unlock(&self, key: &str, owner: &str) -> Result<UnlockStatus, LockError> {
        for _ in 0..UNLOCK_ATTEMPTS {
            let Some(held) = self.store.get(key).await.map_err(backend)? else {
                return Ok(UnlockStatus::LockDoesNotExist);
            };
            if held.value != owner.as_bytes() {
                return Ok(UnlockStatus::LockBelongsToOthers);
            }
            let request =
                DeleteRequest { key: key.to_owned(), etag: Some(held.etag), concurrency: Concurrency::FirstWrite };
            match self.store.delete(&request).await {
                Ok(()) => return Ok(UnlockStatus::Success),
                // It expired, or expired and was taken again, between the read and the removal: read again.
                Err(StateError::EtagMismatch(_)) => continue,
                Err(err) => return Err(backend(err)),
            }
        }
        Err(LockError::Backend(format!("the lock changed {UNLOCK_ATTEMPTS} times while being released; try again")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::memory::MemoryStateStore;

    #[tokio::test]
    async fn one_owner_at_a_time_and_only_the_owner_releases() {
        let locks = StateLockStore::new(Arc::new(MemoryStateStore::new()));
        let minute = Duration::from_secs(60);
        assert!(locks.try_lock("lock||a||r", "alice", minute).await.unwrap());
        assert!(!locks.try_lock("lock||a||r", "bob", minute).await.unwrap());
        assert!(!locks.try_lock("lock||a||r", "alice", minute).await.unwrap(), "a held lock is not re-entrant");
        assert_eq!(locks.unlock("lock||a||r", "bob").await.unwrap(), UnlockStatus::LockBelongsToOthers);
        assert_eq!(locks.unlock("lock||a||other", "alice").await.unwrap(), UnlockStatus::LockDoesNotExist);
        assert_eq!(locks.unlock("lock||a||r", "alice").await.unwrap(), UnlockStatus::Success);
        assert_eq!(locks.unlock("lock||a||r", "alice").await.unwrap(), UnlockStatus::LockDoesNotExist);
        assert!(locks.try_lock("lock||a||r", "bob", minute).await.unwrap());
    }
}
