//! What this process knows beyond the database: the work-item streams connected to it, so that work a
//! completion creates goes straight to one of them (leased to it in the same transaction), and the callers
//! waiting for an instance to change. Both are only shortcuts: the database stays the truth, and claim loops
//! and waits still look there for what other processes did.

use outrigger_store::ProjectId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, Notify};

use crate::WorkItem;

/// A work item with its completion token.
pub type Handed = (WorkItem, String);

/// A stream work can be handed to: the lease owner to record and the channel to its sender.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) owner: Arc<str>,
    sender: mpsc::UnboundedSender<Handed>,
}

impl Target {
    /// Gives the stream an item leased to it; false when the stream has gone.
    pub(crate) fn give(&self, item: Handed) -> bool {
        self.sender.send(item).is_ok()
    }
}

/// A stream attached to the engine: the owner name its leases carry, the items handed to it, and the signal
/// its claim loops wait on (shared by the streams of one App ID in this process).
pub struct Attachment {
    pub owner: String,
    pub handed: mpsc::UnboundedReceiver<Handed>,
    pub work: Arc<Notify>,
}

struct AppStreams {
    streams: Vec<Target>,
    next: usize,
    work: Arc<Notify>,
}

type Key = (String, String);

fn key(project: &ProjectId, name: &str) -> Key {
    (project.as_str().to_owned(), name.to_owned())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; a poisoned map is still consistent.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The work-item streams of this process, by project and App ID.
#[derive(Default)]
pub(crate) struct Streams {
    apps: Mutex<HashMap<Key, AppStreams>>,
}

impl Streams {
    pub(crate) fn attach(&self, project: &ProjectId, app_id: &str) -> Attachment {
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let (sender, handed) = mpsc::unbounded_channel();
        let mut apps = lock(&self.apps);
        let app = apps.entry(key(project, app_id)).or_insert_with(|| AppStreams {
            streams: Vec::new(),
            next: 0,
            work: Arc::new(Notify::new()),
        });
        app.streams.push(Target { owner: owner.as_str().into(), sender });
        Attachment { owner, handed, work: Arc::clone(&app.work) }
    }

    pub(crate) fn detach(&self, project: &ProjectId, app_id: &str, owner: &str) {
        let mut apps = lock(&self.apps);
        let key = key(project, app_id);
        if let Some(app) = apps.get_mut(&key) {
            app.streams.retain(|stream| &*stream.owner != owner);
            if app.streams.is_empty() {
                apps.remove(&key);
            }
        }
    }

    /// The next of the App ID's streams here, in turn; `None` when it has none in this process.
    pub(crate) fn pick(&self, project: &ProjectId, app_id: &str) -> Option<Target> {
        let mut apps = lock(&self.apps);
        let app = apps.get_mut(&key(project, app_id))?;
        app.next = app.next.wrapping_add(1);
        app.streams.get(app.next % app.streams.len()).cloned()
    }

    /// Work the streams were not handed waits for every App ID (leases were given back).
    pub(crate) fn wake_all(&self) {
        for app in lock(&self.apps).values() {
            app.work.notify_waiters();
        }
    }
}

/// Callers waiting for an instance to change, by project and instance ID.
#[derive(Default)]
pub(crate) struct Watchers {
    instances: Mutex<HashMap<Key, Arc<Notify>>>,
}

/// A registered interest in one instance; dropping it unregisters.
pub(crate) struct Watch<'a> {
    watchers: &'a Watchers,
    key: Key,
    pub(crate) changed: Arc<Notify>,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let mut instances = lock(&self.watchers.instances);
        // The map's reference and this one: the last watcher leaves.
        if Arc::strong_count(&self.changed) <= 2 {
            instances.remove(&self.key);
        }
    }
}

impl Watchers {
    pub(crate) fn watch(&self, project: &ProjectId, instance: &str) -> Watch<'_> {
        let key = key(project, instance);
        let changed = Arc::clone(lock(&self.instances).entry(key.clone()).or_default());
        Watch { watchers: self, key, changed }
    }

    pub(crate) fn changed(&self, project: &ProjectId, instance: &str) {
        if let Some(changed) = lock(&self.instances).get(&key(project, instance)) {
            changed.notify_waiters();
        }
    }
}
