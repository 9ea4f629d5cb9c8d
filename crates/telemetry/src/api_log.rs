//! The API log writer: calls are handed over on the request path without waiting (a bounded queue; a call
//! that finds it full is counted as dropped, never waited for) and written by one task per process in
//! batches, one transaction per batch.
//!
//! Nothing runs while no calls arrive: expiry and trimming happen after a write, at most once per
//! [`ApiLogOptions::maintenance_interval`], and only for the projects that wrote since the last time; the
//! control API hides rows older than the retention itself, so an idle installation shows the same log as a
//! busy one.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::FutureExt;
use outrigger_store::{ApiCall, ProjectId, Store};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// Calls written per transaction, at most.
const BATCH: usize = 1000;
/// How often the writer looks at its queue while it gathers a batch.
const GATHER_TICK: Duration = Duration::from_millis(50);

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
    calls: Option<mpsc::Sender<ApiCall>>,
}

impl ApiLog {
    /// Starts the writer; it writes what is queued and stops once `closing` is cancelled.
    pub fn start(store: Store, options: ApiLogOptions, closing: CancellationToken) -> (ApiLog, JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(options.queue.max(1));
        let writer = Writer { store, options, written_since_maintenance: HashSet::new(), last_maintenance: None };
        (ApiLog { calls: Some(sender) }, tokio::spawn(writer.run(receiver, closing)))
    }

    /// A log that keeps nothing.
    pub fn disabled() -> ApiLog {
        ApiLog { calls: None }
    }

    /// Whether calls are kept: callers skip building a call that would be thrown away.
    pub fn enabled(&self) -> bool {
        self.calls.is_some()
    }

    /// Hands a call to the writer, without waiting.
    pub fn record(&self, call: ApiCall) {
        if let Some(calls) = &self.calls {
            if calls.try_send(call).is_err() {
                metrics().api_log_dropped(1);
            }
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
    async fn run(mut self, mut calls: mpsc::Receiver<ApiCall>, closing: CancellationToken) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let received = tokio::select! {
                received = calls.recv_many(&mut batch, BATCH) => received,
                () = closing.cancelled() => {
                    // Whatever is queued still goes in; senders may outlive the writer, so stop taking.
                    calls.close();
                    while calls.recv_many(&mut batch, BATCH).await > 0 {
                        self.write(&mut batch).await;
                    }
                    return;
                }
            };
            if received == 0 {
                return;
            }
            // Gather what arrives within the flush interval, so a busy process writes once per interval. The queue
            // is looked at every tick, not waited on: a writer waiting on it is woken by every call handed over.
            let deadline = Instant::now() + self.options.flush_interval;
            let tick = GATHER_TICK.min(self.options.flush_interval);
            loop {
                let room = BATCH - batch.len();
                if room > 0 {
                    // What is queued, taken in one go without waiting: the queue's permits go back once for all of
                    // it, where taking calls one at a time paid that for each (~400 instructions a call).
                    calls.recv_many(&mut batch, room).now_or_never();
                }
                if batch.len() == BATCH || Instant::now() >= deadline {
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep_until((Instant::now() + tick).min(deadline)) => {}
                    () = closing.cancelled() => break,
                }
            }
            self.write(&mut batch).await;
            if self.last_maintenance.is_none_or(|last| last.elapsed() >= self.options.maintenance_interval) {
                self.maintain().await;
            }
        }
    }

    async fn write(&mut self, batch: &mut Vec<ApiCall>) {
        match self.store.record_api_calls(batch).await {
            Ok(()) => {
                metrics().api_log_written(batch.len());
                // A batch holds few projects many times over, mostly in runs of one project's calls: each run's
                // project is looked up once.
                let mut previous = None;
                for project in batch.iter().map(|call| &call.project_id) {
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
        batch.clear();
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
