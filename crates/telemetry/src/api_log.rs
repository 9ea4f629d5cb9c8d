//! The API log writer: calls are handed over on the request path without waiting (encoded, borrowed, into a
//! bounded batch behind a lock held for the encoding alone; a call that finds it full is counted as dropped,
//! never waited for) and written by one task per process in batches, one transaction per batch. A batch, not
//! a channel: a channel's permits and blocks cost ~4 times the push per call, on the request path and in the
//! writer; and a call encoded where it is logged is never built of owned strings, moved, and freed elsewhere.
//!
//! Nothing runs while no calls arrive: expiry and trimming happen after a write, at most once per
//! [`ApiLogOptions::maintenance_interval`], and only for the projects that wrote since the last time; the
//! control API hides rows older than the retention itself, so an idle installation shows the same log as a
//! busy one.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outrigger_store::{CallBatch, Calls, LoggedCall, ProjectId, Store};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// Calls written per transaction, at most.
const BATCH: usize = 1000;
/// The most memory a written batch may hold for the writer to keep it for the next one (beyond it, the memory goes
/// back): room for a few batches of typical calls, not what a burst of calls with long paths grew it to.
const KEPT_BYTES: usize = 2 << 20;

/// How the API log keeps calls.
#[derive(Clone, Debug)]
pub struct ApiLogOptions {
    /// How long a call is kept.
    pub retention: Duration,
    /// How many calls per project are kept, at most (the oldest go first).
    pub max_calls_per_project: u64,
    /// How long the per-minute counts behind charts and usage are kept (at least a month, for usage).
    pub counts_retention: Duration,
    /// How long calls wait to be written together.
    pub flush_interval: Duration,
    /// How often expired and excess calls are removed (after a write).
    pub maintenance_interval: Duration,
    /// Calls waiting to be written, at most.
    pub queue: usize,
}

impl Default for ApiLogOptions {
    fn default() -> ApiLogOptions {
        ApiLogOptions {
            retention: Duration::from_secs(3 * 24 * 3600),
            max_calls_per_project: 100_000,
            counts_retention: Duration::from_secs(32 * 24 * 3600),
            flush_interval: Duration::from_secs(1),
            maintenance_interval: Duration::from_secs(60),
            queue: 65_536,
        }
    }
}

/// Where calls are handed to the writer; cheap to clone. A disabled log keeps nothing.
#[derive(Clone, Debug)]
pub struct ApiLog {
    queue: Option<Arc<Queue>>,
}

/// The calls waiting for the writer.
#[derive(Debug)]
struct Queue {
    calls: Mutex<CallBatch>,
    /// Wakes the writer when a call finds the list empty, and when a call fills a batch; other calls wake
    /// nobody.
    arrived: Notify,
    /// Calls waiting, at most.
    capacity: usize,
}

impl Queue {
    /// Takes every call waiting, leaving `spare` (empty) in their place.
    fn take(&self, spare: CallBatch) -> CallBatch {
        std::mem::replace(&mut *self.calls.lock().expect("API log queue lock"), spare)
    }

    fn len(&self) -> usize {
        self.calls.lock().expect("API log queue lock").len()
    }
}

impl ApiLog {
    /// Starts the writer; it writes what is queued and stops once `closing` is cancelled.
    pub fn start(store: Store, options: ApiLogOptions, closing: CancellationToken) -> (ApiLog, JoinHandle<()>) {
        let queue = Arc::new(Queue {
            calls: Mutex::new(CallBatch::with_room(BATCH)),
            arrived: Notify::new(),
            capacity: options.queue.max(1),
        });
        let writer = Writer { store, options, written_since_maintenance: HashSet::new(), last_maintenance: None };
        (ApiLog { queue: Some(Arc::clone(&queue)) }, tokio::spawn(writer.run(queue, closing)))
    }

    /// A log that keeps nothing.
    pub fn disabled() -> ApiLog {
        ApiLog { queue: None }
    }

    /// Whether calls are kept: callers skip building a call that would be thrown away.
    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Hands a call to the writer, without waiting.
    pub fn record(&self, call: &LoggedCall<'_>) {
        let Some(queue) = &self.queue else { return };
        let mut calls = queue.calls.lock().expect("API log queue lock");
        if calls.len() >= queue.capacity {
            drop(calls);
            metrics().api_log_dropped(1);
            return;
        }
        let first = calls.is_empty();
        calls.push(call);
        let filled = calls.len() == BATCH;
        drop(calls);
        if first || filled {
            queue.arrived.notify_one();
        }
    }
}

struct Writer {
    store: Store,
    options: ApiLogOptions,
    written_since_maintenance: HashSet<ProjectId>,
    last_maintenance: Option<Instant>,
}

impl Writer {
    async fn run(mut self, queue: Arc<Queue>, closing: CancellationToken) {
        let mut spare = CallBatch::with_room(BATCH);
        loop {
            tokio::select! {
                () = queue.arrived.notified() => {}
                () = closing.cancelled() => {
                    // Whatever is queued still goes in; a call handed over later finds no writer and is not kept.
                    self.write_all(queue.take(CallBatch::default())).await;
                    return;
                }
            }
            if queue.len() == 0 {
                // A wake-up left by a call the previous batch already took.
                continue;
            }
            // Gather what arrives within the flush interval, so a busy process writes once per interval, or as soon
            // as a batch is full: the call that fills it wakes the writer. (A wake-up left over from a batch
            // already taken ends a gathering early, which costs one smaller write.)
            if queue.len() < BATCH {
                tokio::select! {
                    () = tokio::time::sleep(self.options.flush_interval) => {}
                    () = queue.arrived.notified() => {}
                    () = closing.cancelled() => {}
                }
            }
            let mut batch = self.write_all(queue.take(spare)).await;
            batch.clear();
            spare = if batch.held_bytes() <= KEPT_BYTES { batch } else { CallBatch::with_room(BATCH) };
            if self.last_maintenance.is_none_or(|last| last.elapsed() >= self.options.maintenance_interval) {
                self.maintain().await;
            }
        }
    }

    /// Writes `calls`, at most [`BATCH`] per transaction; answers the batch to reuse.
    async fn write_all(&mut self, calls: CallBatch) -> CallBatch {
        for run in calls.runs(BATCH) {
            self.write(run).await;
        }
        calls
    }

    async fn write(&mut self, batch: Calls<'_>) {
        match self.store.record_api_calls(batch).await {
            Ok(()) => {
                metrics().api_log_written(batch.len());
                // A batch holds few projects many times over, mostly in runs of one project's calls: each run's
                // project is looked up once.
                let mut previous = None;
                for project in batch.project_ids() {
                    if previous != Some(project) && !self.written_since_maintenance.contains(project) {
                        self.written_since_maintenance.insert(project.clone());
                    }
                    previous = Some(project);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, calls = batch.len(), "cannot write to the API log; these calls are not kept");
                metrics().api_log_dropped(batch.len());
            }
        }
    }

    /// Removes expired calls and counts, and each project's calls beyond the limit.
    async fn maintain(&mut self) {
        self.last_maintenance = Some(Instant::now());
        let now = outrigger_store::now_millis();
        let calls_before = now - millis(self.options.retention);
        let counts_before = now - millis(self.options.counts_retention);
        if let Err(err) = self.store.expire_api_calls(calls_before, counts_before).await {
            tracing::warn!(error = %err, "cannot remove expired API log entries; the next write tries again");
        }
        for project in std::mem::take(&mut self.written_since_maintenance) {
            if let Err(err) = self.store.trim_api_calls(&project, self.options.max_calls_per_project).await {
                tracing::warn!(project = %project.as_str(), error = %err, "cannot trim the project's API log");
            }
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
