//! The durable workflow engine behind Dapr's workflow protocol (`TaskHubSidecarService`). The app hosts the
//! workflow and activity code and asks for work over a stream; the engine keeps each instance's committed
//! history and its inbox of events the workflow has not seen, and decides what runs next.
//!
//! Everything lives in the control-plane database (tables `wf_*`), so any gateway may die at any moment:
//! - A **turn** of an instance is its committed history (`pastEvents`) plus `WorkflowStarted` and the inbox
//!   events due now (`newEvents`). Claiming a turn leases the instance to one stream (one turn in flight per
//!   instance) under a fresh completion token; the app's answer is applied only with that token, in one
//!   transaction that commits the turn's events, the events its actions produce and the inbox entries they
//!   create for this or other instances.
//! - An **activity** is a row leased the same way; its result becomes an inbox event of its instance.
//! - **Timers** are inbox events that become due at their fire time; Python's "wait forever" timer (year
//!   9999) is stored and simply never becomes due.
//! - A stream renews the leases it holds while it lives; when it closes its work is released at once, and
//!   when its process dies the leases run out, so another stream gets the work again.
//! - Work a transaction makes (the activities a turn schedules, the turn an activity result makes) is leased
//!   in that same transaction to a stream of the App ID connected to this process, when there is one, and
//!   handed to it after the commit: no stream has to find it. Claim loops find everything else (timers,
//!   released or expired leases, work made in another process).
//!
//! Every query takes the project first: nothing of another project can be named.

use outrigger_store::ProjectId;
use std::time::Duration;

use base64::Engine as _;
use dapr_durabletask_proto as pb;
use pb::history_event::EventType;
use pb::workflow_action::WorkflowActionType;
use prost::Message;
use sqlx::{AnyPool, Row};

mod client;
mod histories;
mod listing;
mod local;
mod spans;
mod tables;
mod turn;
mod work;

pub use listing::{parse_status, status_name, InstanceDetail, InstanceFilter, InstanceSummary, Page, MAX_PAGE};
pub use local::{Attachment, Handed};
pub use pb::OrchestrationStatus as Status;

use local::Target;
use spans::InstanceTrace;
use tables::*;
use turn::*;

/// How long a claimed turn or activity stays with its stream without a renewal.
pub const LEASE: Duration = Duration::from_secs(30);

/// How long a wait first sleeps between looks at the database when nothing in this process tells it of a
/// change (the change may be another process's); it doubles up to [`WAIT_POLL_MAX`].
const WAIT_POLL: Duration = Duration::from_millis(100);
const WAIT_POLL_MAX: Duration = Duration::from_secs(1);

/// Rows one multi-row INSERT carries at most (SQLite binds at most 32,766 values per statement).
const ROWS_PER_INSERT: usize = 500;

/// Why a workflow call failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("an instance with ID '{0}' already exists")]
    AlreadyExists(String),
    #[error("no such instance exists: {0}")]
    NotFound(String),
    #[error("instance '{0}' is not in a terminal state; terminate it first or purge with force")]
    NotCompleted(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("the workflow store failed: {0}")]
    Store(#[from] sqlx::Error),
    #[error("a stored workflow event could not be read: {0}")]
    Corrupt(String),
}

/// What committing a turn showed, for daprd's workflow metrics. The engine knows projects by ID only: the
/// caller counts the report under its tenant's labels.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnReport {
    /// The instance's App ID.
    pub app_id: String,
    pub workflow_name: String,
    /// The turn began an execution: how long after the execution was due (started, or scheduled to start) the
    /// turn began.
    pub scheduling_latency: Option<Duration>,
    /// The turn ended the instance: its final status, and how long the execution ran from its first turn.
    pub ended: Option<(Status, Duration)>,
}

/// An activity result the engine recorded, for daprd's workflow metrics (counted by the caller, as a
/// [`TurnReport`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityReport {
    /// The App ID of the activity's instance.
    pub app_id: String,
    pub activity_name: String,
    /// The app answered with failure details.
    pub failed: bool,
    /// From the activity's scheduling (the commit of the turn that scheduled it) until its result was recorded.
    pub elapsed: Duration,
}

/// The time from `from` to `to` (Unix ms), none when the clocks went backwards.
fn elapsed_ms(from: i64, to: i64) -> Duration {
    Duration::from_millis(u64::try_from(to.saturating_sub(from)).unwrap_or(0))
}

/// What a stream is handed.
pub enum WorkItem {
    Workflow(pb::WorkflowRequest),
    Activity(pb::ActivityRequest),
}

/// The engine: a handle on the database, and what this process knows beyond it (its streams, its waiters,
/// the histories it last saw).
pub struct Engine {
    pool: AnyPool,
    streams: local::Streams,
    watchers: local::Watchers,
    histories: histories::Histories,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

fn millis(timestamp: &prost_types::Timestamp) -> i64 {
    timestamp.seconds.saturating_mul(1000).saturating_add(i64::from(timestamp.nanos / 1_000_000))
}

fn encode<M: Message>(message: &M) -> String {
    base64::engine::general_purpose::STANDARD.encode(message.encode_to_vec())
}

fn decode<M: Message + Default>(text: &str) -> Result<M, WorkflowError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|err| WorkflowError::Corrupt(err.to_string()))?;
    M::decode(bytes.as_slice()).map_err(|err| WorkflowError::Corrupt(err.to_string()))
}

fn event(event_id: i32, event_type: EventType) -> pb::HistoryEvent {
    pb::HistoryEvent { event_id, timestamp: Some(timestamp(now_ms())), router: None, event_type: Some(event_type) }
}

fn is_terminal(status: i32) -> bool {
    [Status::Completed, Status::Failed, Status::Terminated, Status::Canceled].iter().any(|s| *s as i32 == status)
}

fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn lease_until(now: i64) -> i64 {
    now + LEASE.as_millis() as i64
}

/// Work a transaction leased to streams of this process, handed to them once it committed.
#[derive(Default)]
struct Handoffs(Vec<(Target, Handed)>);

impl Handoffs {
    fn add(&mut self, target: &Target, item: Option<Handed>) {
        if let Some(item) = item {
            self.0.push((target.clone(), item));
        }
    }
}

impl Engine {
    pub fn new(tables: outrigger_store::WorkflowTables) -> Engine {
        let pool = tables.into_pool();
        Engine {
            pool,
            streams: local::Streams::default(),
            watchers: local::Watchers::default(),
            histories: histories::Histories::default(),
        }
    }

    /// A work-item stream of `app_id` opened here: work made in this process for the App ID is leased to
    /// it and handed over directly (in turn with the App ID's other streams here).
    pub fn attach(&self, project: &ProjectId, app_id: &str) -> Attachment {
        self.streams.attach(project, app_id)
    }

    /// The stream is no longer handed work. Drop its [`Attachment`] and then [`Engine::release`] its leases.
    pub fn detach(&self, project: &ProjectId, app_id: &str, owner: &str) {
        self.streams.detach(project, app_id, owner);
    }

    /// Gives committed hand-offs to their streams; an item whose stream has gone meanwhile is released.
    async fn hand_over(&self, project: &ProjectId, handoffs: Handoffs) {
        for (target, (item, token)) in handoffs.0 {
            if let WorkItem::Workflow(request) = &item {
                self.remember(project, request);
            }
            if !target.give((item, token.clone())) {
                if let Err(err) = self.release_item(&target.owner, &token).await {
                    tracing::warn!(error = %err, "releasing work of a closed stream failed; its lease runs out");
                }
                self.streams.wake_all();
            }
        }
    }

    /// Keeps the history a turn was given, for the instance's next turn.
    fn remember(&self, project: &ProjectId, request: &pb::WorkflowRequest) {
        let execution_id = request.execution_id.as_deref().unwrap_or_default();
        self.histories.put(project, &request.instance_id, execution_id, request.past_events.clone());
    }
}
