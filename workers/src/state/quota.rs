//! The stored-bytes quota of a project's managed kvstore: a write that would take the project's keys and values
//! past its quota is refused before it reaches the store.
//!
//! Measuring means reading the project's whole key range, so it is not done per write. The quota keeps an
//! estimate instead: the last measurement plus every byte admitted since, an overwrite counted as if it added
//! its whole size, so the estimate only errs high. While the estimate has room a write costs one lock. A write
//! the estimate would refuse is judged exactly: the project is measured again (at most once a second; sooner
//! after it deleted something, so deletes make room at once) and the items the write replaces are read, so
//! that overwriting what is stored is judged by what it changes. A project's quota lives with its loaded
//! components, so an idle project has none in memory.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use outrigger_bus::{DataError, StateOperation};

use super::time::within;
use super::{StateError, StateStore};

/// The least time between two measurements: a project writing at its quota is not measured per write.
const REMEASURE_AFTER: Duration = Duration::from_secs(1);

/// A project's stored-bytes quota and its running estimate.
pub struct StoredBytesQuota {
    /// Most bytes the project may keep.
    limit: u64,
    /// The project's key range in the managed kvstore.
    prefix: String,
    estimate: Mutex<Option<Estimate>>,
}

#[derive(Clone, Copy)]
struct Estimate {
    /// The bytes the project keeps, at most.
    stored: u64,
    /// When the project was last measured; `None` once it deleted something since.
    measured_at: Option<Instant>,
}

impl StoredBytesQuota {
    /// A quota of `limit` bytes over the keys starting with `prefix`.
    pub fn new(limit: u64, prefix: String) -> StoredBytesQuota {
        StoredBytesQuota { limit, prefix, estimate: Mutex::new(None) }
    }

    /// Admits a write putting `puts` (stored keys and values) into `store` (and its component type), or refuses it
    /// when the project would go over its quota. Reading the items the write replaces takes at most `limit`, the
    /// write's own timeout (a measurement bounds each of its round trips itself).
    pub(crate) async fn admit(
        &self,
        store: &dyn StateStore,
        component_type: &str,
        limit: Duration,
        operation: StateOperation,
        puts: &[(&str, &[u8])],
    ) -> Result<(), DataError> {
        let adding: u64 = puts.iter().map(|(key, value)| bytes_of(key, value)).sum();
        let recent = {
            let mut estimate = self.estimate.lock().expect("quota estimate lock");
            match estimate.as_mut() {
                Some(current) if current.stored.saturating_add(adding) <= self.limit => {
                    current.stored += adding;
                    return Ok(());
                }
                Some(current) if current.measured_at.is_some_and(|at| at.elapsed() < REMEASURE_AFTER) => Some(*current),
                _ => None,
            }
        };
        let failed = |err: StateError| DataError::StoreFailure {
            operation,
            message: format!("the project's stored bytes could not be measured for its quota: {err}"),
        };
        let base = match recent {
            Some(recent) => recent,
            None => Estimate {
                stored: store.stored_bytes(&self.prefix).await.map_err(failed)?,
                measured_at: Some(Instant::now()),
            },
        };
        // A key written twice replaces its stored item once.
        let keys: Vec<String> =
            puts.iter().map(|(key, _)| (*key).to_owned()).collect::<BTreeSet<_>>().into_iter().collect();
        let mut replaced = 0;
        let current = within(limit, component_type, store.bulk_get(&keys).map(Ok), StateError::Backend).await;
        for (key, current) in keys.iter().zip(current.map_err(failed)?) {
            replaced += current.map_err(failed)?.map_or(0, |item| bytes_of(key, &item.value));
        }
        let after = base.stored.saturating_sub(replaced).saturating_add(adding);
        let admitted = after <= self.limit;
        *self.estimate.lock().expect("quota estimate lock") =
            Some(Estimate { stored: if admitted { after } else { base.stored }, ..base });
        if admitted {
            return Ok(());
        }
        Err(DataError::StorageQuotaExceeded {
            message: format!(
                "the project keeps {} bytes in its managed state store and may keep {}; this write would make \
                 {after}: delete state the project no longer needs, or ask the operator to raise its stored-bytes \
                 quota",
                base.stored, self.limit
            ),
        })
    }

    /// The project deleted items: the next write the estimate would refuse measures again.
    pub(crate) fn deleted(&self) {
        if let Some(estimate) = self.estimate.lock().expect("quota estimate lock").as_mut() {
            estimate.measured_at = None;
        }
    }
}

/// The bytes an item takes in a store: its key and its value.
fn bytes_of(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}
