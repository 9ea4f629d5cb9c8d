//! Committed histories this process last saw, so that a turn does not read and decode its whole history
//! from the database again. An entry is used only when the instance's execution ID and history length in
//! the database (read while leasing the turn) match it: whoever commits a turn elsewhere changes the length,
//! a continue-as-new or a re-created instance changes the execution ID.

use outrigger_store::ProjectId;
use std::collections::HashMap;
use std::sync::Mutex;

use dapr_durabletask_proto as pb;
use prost::Message;

/// Encoded bytes of history kept at most; beyond it entries are dropped.
const BUDGET: usize = 64 << 20;

struct Entry {
    execution_id: String,
    events: Vec<pb::HistoryEvent>,
    bytes: usize,
}

#[derive(Default)]
struct Entries {
    by_instance: HashMap<(String, String), Entry>,
    bytes: usize,
}

#[derive(Default)]
pub(crate) struct Histories {
    entries: Mutex<Entries>,
}

impl Histories {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The history of `instance` if it is known here with this execution ID and length.
    pub(crate) fn get(
        &self,
        project: &ProjectId,
        instance: &str,
        execution_id: &str,
        len: usize,
    ) -> Option<Vec<pb::HistoryEvent>> {
        let entries = self.entries();
        let entry = entries.by_instance.get(&(project.as_str().to_owned(), instance.to_owned()))?;
        (entry.execution_id == execution_id && entry.events.len() == len).then(|| entry.events.clone())
    }

    /// Remembers the history committed for `instance`.
    pub(crate) fn put(&self, project: &ProjectId, instance: &str, execution_id: &str, events: Vec<pb::HistoryEvent>) {
        let bytes = events.iter().map(Message::encoded_len).sum::<usize>();
        let mut entries = self.entries();
        let key = (project.as_str().to_owned(), instance.to_owned());
        if let Some(old) = entries.by_instance.remove(&key) {
            entries.bytes -= old.bytes;
        }
        while entries.bytes + bytes > BUDGET {
            let Some(evicted) = entries.by_instance.keys().next().cloned() else { break };
            if let Some(old) = entries.by_instance.remove(&evicted) {
                entries.bytes -= old.bytes;
            }
        }
        if bytes <= BUDGET {
            entries.bytes += bytes;
            entries.by_instance.insert(key, Entry { execution_id: execution_id.to_owned(), events, bytes });
        }
    }

    pub(crate) fn forget(&self, project: &ProjectId, instance: &str) {
        let mut entries = self.entries();
        if let Some(old) = entries.by_instance.remove(&(project.as_str().to_owned(), instance.to_owned())) {
            entries.bytes -= old.bytes;
        }
    }
}
