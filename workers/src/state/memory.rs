//! `state.in-memory`: a process-local map, gone when the process ends.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::RwLock;

use super::keys::FOREIGN_POSITION;
use super::time::{expiry, is_live, now_ms, SweepSchedule};
use super::write::{self, ApplyWrites, Change, Write};
use super::{DeleteRequest, Features, SetRequest, StateError, StateStore, StoredItem, TransactionOperation};
use super::{KeyPage, KeyPosition, ListedKey};
use std::sync::Arc;

use outrigger_resources::{BuildingBlock, ComponentType};

use crate::components::{Backend, Opener, Opening};

/// How often a write also drops the expired items, so keys written with a TTL do not pile up.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Dapr's in-memory state store. ETags are version numbers from one counter per store, so a key that is
/// deleted and written again never gets an ETag it had before.
#[derive(Debug)]
pub struct MemoryStateStore {
    contents: RwLock<Contents>,
    sweeps: SweepSchedule,
}

#[derive(Debug, Default)]
struct Contents {
    items: HashMap<String, StoredItem>,
    last_version: u64,
}

impl Contents {
    fn live(&self, key: &str, now_ms: i64) -> Option<&StoredItem> {
        self.items.get(key).filter(|item| is_live(item.expires_at, now_ms))
    }
}

impl MemoryStateStore {
    /// The Dapr component type this store serves.
    pub const COMPONENT_TYPE: &'static str = "state.in-memory";

    /// An empty store.
    pub fn new() -> MemoryStateStore {
        MemoryStateStore { contents: RwLock::default(), sweeps: SweepSchedule::new(Some(SWEEP_INTERVAL)) }
    }
}

impl Default for MemoryStateStore {
    fn default() -> Self {
        MemoryStateStore::new()
    }
}

#[async_trait]
impl ApplyWrites for MemoryStateStore {
    fn is_well_formed_etag(etag: &str) -> bool {
        write::is_version_number(etag)
    }

    async fn apply(&self, writes: &[Write<'_>]) -> Result<Vec<String>, StateError> {
        let mut contents = self.contents.write().await;
        let now = now_ms();
        // Writes land here first; the map changes only once every precondition has held.
        let mut staged: HashMap<&str, Option<StoredItem>> = HashMap::new();
        let mut version = contents.last_version;
        let mut etags = Vec::new();
        for write in writes {
            let current_etag = match staged.get(write.key) {
                Some(staged_item) => staged_item.as_ref().map(|item| item.etag.as_str()),
                None => contents.live(write.key, now).map(|item| item.etag.as_str()),
            };
            if !write.precondition.admits(current_etag) {
                return Err(write.precondition.refusal(write.key));
            }
            let next = match write.change {
                Change::Put { value, ttl_seconds } => {
                    version += 1;
                    let etag = version.to_string();
                    etags.push(etag.clone());
                    Some(StoredItem { value: value.to_vec(), etag, expires_at: expiry(ttl_seconds, now) })
                }
                Change::Remove => None,
            };
            staged.insert(write.key, next);
        }
        contents.last_version = version;
        for (key, item) in staged {
            match item {
                Some(item) => contents.items.insert(key.to_owned(), item),
                None => contents.items.remove(key),
            };
        }
        if self.sweeps.claim(now) {
            contents.items.retain(|_, item| is_live(item.expires_at, now));
        }
        Ok(etags)
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    fn features(&self) -> Features {
        Features { transactional: true, etag: true, ttl: true, query: false }
    }

    async fn ping(&self) -> Result<(), StateError> {
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<StoredItem>, StateError> {
        Ok(self.contents.read().await.live(key, now_ms()).cloned())
    }

    async fn set(&self, request: &SetRequest) -> Result<String, StateError> {
        write::set(self, request).await
    }

    async fn delete(&self, request: &DeleteRequest) -> Result<(), StateError> {
        write::delete(self, request).await
    }

    async fn transact(&self, operations: &[TransactionOperation]) -> Result<(), StateError> {
        write::transact(self, operations).await
    }

    async fn stored_bytes(&self, prefix: &str) -> Result<u64, StateError> {
        let now = now_ms();
        let contents = self.contents.read().await;
        let live = contents.items.iter().filter(|(key, item)| key.starts_with(prefix) && is_live(item.expires_at, now));
        Ok(live.map(|(key, item)| (key.len() + item.value.len()) as u64).sum())
    }

    async fn list_keys(&self, prefix: &str, from: &KeyPosition, limit: usize) -> Result<KeyPage, StateError> {
        let after = match from {
            KeyPosition::Start => None,
            KeyPosition::After(key) => Some(key.as_str()),
            KeyPosition::Cursor(_) => return Err(StateError::InvalidRequest(FOREIGN_POSITION.to_owned())),
        };
        let (now, limit) = (now_ms(), limit.max(1));
        let contents = self.contents.read().await;
        let mut live: Vec<ListedKey> = contents
            .items
            .iter()
            .filter(|(key, item)| {
                key.starts_with(prefix)
                    && after.is_none_or(|after| key.as_str() > after)
                    && is_live(item.expires_at, now)
            })
            .map(|(key, item)| ListedKey {
                key: key.clone(),
                size: item.value.len() as u64,
                etag: item.etag.clone(),
                expires_at: item.expires_at,
            })
            .collect();
        live.sort_by(|a, b| a.key.cmp(&b.key));
        let more = live.len() > limit;
        live.truncate(limit);
        let next = more.then(|| live.last().map(|last| KeyPosition::After(last.key.clone()))).flatten();
        Ok(KeyPage { keys: live, next })
    }
}

/// `state.in-memory`: nothing to configure.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(MemoryStateStore::COMPONENT_TYPE, BuildingBlock::State, &[]),
    opener: Opener::State(|_: Opening<'_>| Box::pin(async { Ok(Arc::new(MemoryStateStore::new()) as _) })),
};
