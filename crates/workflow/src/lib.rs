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

use std::time::Duration;

use base64::Engine as _;
use dapr_durabletask_proto as pb;
use pb::history_event::EventType;
use pb::workflow_action::WorkflowActionType;
use prost::Message;
use sqlx::{AnyPool, Row};

mod histories;
mod listing;
mod local;

pub use listing::{parse_status, status_name, InstanceFilter, InstanceSummary, Page, MAX_PAGE};
pub use local::{Attachment, Handed};
pub use pb::OrchestrationStatus as Status;

use local::Target;

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

/// An instance row as the client API reports it.
struct Instance {
    app_id: String,
    name: String,
    status: i32,
    execution_id: String,
    parent_instance_id: Option<String>,
    parent_task_id: Option<i64>,
}

const INSTANCE_COLUMNS: &str = "app_id, name, status, execution_id, parent_instance_id, parent_task_id";

fn instance_from_row(row: &sqlx::any::AnyRow) -> Result<Instance, sqlx::Error> {
    Ok(Instance {
        app_id: row.try_get("app_id")?,
        name: row.try_get("name")?,
        status: row.try_get::<i64, _>("status")? as i32,
        execution_id: row.try_get("execution_id")?,
        parent_instance_id: row.try_get("parent_instance_id")?,
        parent_task_id: row.try_get("parent_task_id")?,
    })
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

async fn find(tx: &mut Tx, project: &str, instance: &str) -> Result<Option<Instance>, WorkflowError> {
    let row =
        sqlx::query(&format!("SELECT {INSTANCE_COLUMNS} FROM wf_instances WHERE project_id = $1 AND instance_id = $2"))
            .bind(project)
            .bind(instance)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map(|row| instance_from_row(&row)).transpose()?)
}

/// Adds an event to the instance's inbox, due at `visible_at`; `turn_token` gives it to a turn leased in
/// the same transaction.
async fn push_inbox(
    tx: &mut Tx,
    project: &str,
    instance: &str,
    event: &pb::HistoryEvent,
    visible_at: i64,
    turn_token: Option<&str>,
) -> Result<(), WorkflowError> {
    sqlx::query(
        "INSERT INTO wf_inbox (project_id, instance_id, event, visible_at, turn_token) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(project)
    .bind(instance)
    .bind(encode(event))
    .bind(visible_at)
    .bind(turn_token)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inbox rows (`id`, `event`) decoded in the order they arrived.
fn in_arrival_order(mut rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<pb::HistoryEvent>, WorkflowError> {
    let id = |row: &sqlx::any::AnyRow| row.try_get::<i64, _>("id").unwrap_or_default();
    rows.sort_by_key(id);
    rows.iter().map(|row| decode(&row.try_get::<String, _>("event")?)).collect()
}

/// Gives the instance's due inbox events to the turn `token`; them, in the order they arrived. The caller
/// holds the instance's lease: a turn is given exactly the rows marked with its token (ids say nothing about
/// commit order on PostgreSQL, so "every id up to the largest seen" could commit an event never seen).
async fn mark_due(
    tx: &mut Tx,
    project: &str,
    instance: &str,
    token: &str,
    now: i64,
) -> Result<Vec<pb::HistoryEvent>, WorkflowError> {
    let rows = sqlx::query(
        "UPDATE wf_inbox SET turn_token = $3 WHERE project_id = $1 AND instance_id = $2 AND visible_at <= $4 \
         RETURNING id, event",
    )
    .bind(project)
    .bind(instance)
    .bind(token)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    in_arrival_order(rows)
}

async fn unlease(tx: &mut Tx, project: &str, instance: &str) -> Result<(), WorkflowError> {
    sqlx::query(
        "UPDATE wf_instances SET lease_until = 0, lease_owner = NULL, turn_token = NULL \
         WHERE project_id = $1 AND instance_id = $2",
    )
    .bind(project)
    .bind(instance)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The committed history of an instance, read from the database.
async fn history(tx: &mut Tx, project: &str, instance: &str) -> Result<Vec<pb::HistoryEvent>, WorkflowError> {
    let rows = sqlx::query("SELECT event FROM wf_history WHERE project_id = $1 AND instance_id = $2 ORDER BY seq")
        .bind(project)
        .bind(instance)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(|row| decode(&row.try_get::<String, _>("event")?)).collect()
}

/// Appends `events` to the instance's history from position `from`.
async fn append_history(
    tx: &mut Tx,
    project: &str,
    instance: &str,
    from: usize,
    events: &[pb::HistoryEvent],
) -> Result<(), WorkflowError> {
    for (chunk_index, chunk) in events.chunks(ROWS_PER_INSERT).enumerate() {
        let values: Vec<String> =
            (0..chunk.len()).map(|row| format!("($1, $2, ${}, ${})", 3 + 2 * row, 4 + 2 * row)).collect();
        let sql = format!("INSERT INTO wf_history (project_id, instance_id, seq, event) VALUES {}", values.join(", "));
        let mut insert = sqlx::query(&sql).bind(project).bind(instance);
        for (row, history_event) in chunk.iter().enumerate() {
            insert = insert.bind((from + chunk_index * ROWS_PER_INSERT + row) as i64).bind(encode(history_event));
        }
        insert.execute(&mut **tx).await?;
    }
    Ok(())
}

fn turn_request(
    instance: &str,
    execution_id: String,
    past_events: Vec<pb::HistoryEvent>,
    started_at: i64,
    due: Vec<pb::HistoryEvent>,
) -> pb::WorkflowRequest {
    let mut new_events = vec![workflow_started(started_at)];
    new_events.extend(due);
    pb::WorkflowRequest {
        instance_id: instance.to_owned(),
        execution_id: Some(execution_id),
        past_events,
        new_events,
        ..Default::default()
    }
}

/// A new instance row with `ExecutionStarted` in its inbox.
struct NewInstance<'a> {
    project: &'a str,
    app_id: &'a str,
    instance_id: &'a str,
    name: &'a str,
    input: Option<String>,
    start_at: i64,
    parent: Option<pb::ParentInstanceInfo>,
}

/// Creates the instance; when `to` is given and it is due now, its first turn is leased to that stream at
/// once, and returned.
async fn create(tx: &mut Tx, new: NewInstance<'_>, to: Option<&Target>) -> Result<Option<Handed>, WorkflowError> {
    if find(tx, new.project, new.instance_id).await?.is_some() {
        return Err(WorkflowError::AlreadyExists(new.instance_id.to_owned()));
    }
    let execution_id = new_token();
    let now = now_ms();
    let lease = to.filter(|_| new.start_at <= now).map(|target| (target.owner.to_string(), new_token()));
    let parent_id = new.parent.as_ref().and_then(|p| p.workflow_instance.as_ref()).map(|i| i.instance_id.clone());
    sqlx::query(
        "INSERT INTO wf_instances (project_id, instance_id, app_id, name, status, input, execution_id, \
         parent_instance_id, parent_task_id, created_at, updated_at, lease_owner, lease_until, turn_token, \
         turn_started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $10)",
    )
    .bind(new.project)
    .bind(new.instance_id)
    .bind(new.app_id)
    .bind(new.name)
    .bind(Status::Pending as i64)
    .bind(new.input.clone())
    .bind(&execution_id)
    .bind(parent_id)
    .bind(new.parent.as_ref().map(|p| i64::from(p.task_scheduled_id)))
    .bind(now)
    .bind(lease.as_ref().map(|(owner, _)| owner.as_str()))
    .bind(if lease.is_some() { lease_until(now) } else { 0 })
    .bind(lease.as_ref().map(|(_, token)| token.as_str()))
    .execute(&mut **tx)
    .await?;
    let started = execution_started(new.instance_id, &execution_id, new.name, new.input, new.parent, new.app_id);
    let token = lease.as_ref().map(|(_, token)| token.as_str());
    push_inbox(tx, new.project, new.instance_id, &started, new.start_at, token).await?;
    Ok(lease.map(|(_, token)| {
        let request = turn_request(new.instance_id, execution_id, Vec::new(), now, vec![started]);
        (WorkItem::Workflow(request), token)
    }))
}

fn execution_started(
    instance_id: &str,
    execution_id: &str,
    name: &str,
    input: Option<String>,
    parent: Option<pb::ParentInstanceInfo>,
    app_id: &str,
) -> pb::HistoryEvent {
    let mut started = event(
        -1,
        EventType::ExecutionStarted(pb::ExecutionStartedEvent {
            name: name.to_owned(),
            input,
            workflow_instance: Some(pb::WorkflowInstance {
                instance_id: instance_id.to_owned(),
                execution_id: Some(execution_id.to_owned()),
            }),
            parent_instance: parent,
            ..Default::default()
        }),
    );
    // The Python worker learns its own App ID from the router of ExecutionStarted.
    started.router = Some(pb::TaskRouter { source_app_id: app_id.to_owned(), ..Default::default() });
    started
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
    pub fn new(pool: AnyPool) -> Engine {
        Engine {
            pool,
            streams: local::Streams::default(),
            watchers: local::Watchers::default(),
            histories: histories::Histories::default(),
        }
    }

    /// A work-item stream of `app_id` opened here: work made in this process for the App ID is leased to
    /// it and handed over directly (in turn with the App ID's other streams here).
    pub fn attach(&self, project: &str, app_id: &str) -> Attachment {
        self.streams.attach(project, app_id)
    }

    /// The stream is no longer handed work. Drop its [`Attachment`] and then [`Engine::release`] its leases.
    pub fn detach(&self, project: &str, app_id: &str, owner: &str) {
        self.streams.detach(project, app_id, owner);
    }

    /// Gives committed hand-offs to their streams; an item whose stream has gone meanwhile is released.
    async fn hand_over(&self, project: &str, handoffs: Handoffs) {
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
    fn remember(&self, project: &str, request: &pb::WorkflowRequest) {
        let execution_id = request.execution_id.as_deref().unwrap_or_default();
        self.histories.put(project, &request.instance_id, execution_id, request.past_events.clone());
    }

    /// `StartInstance`: a new instance of `name` for `app_id`; its ID.
    pub async fn start(
        &self,
        project: &str,
        app_id: &str,
        request: pb::CreateInstanceRequest,
    ) -> Result<String, WorkflowError> {
        if request.name.is_empty() {
            return Err(WorkflowError::Invalid("the workflow name is empty".to_owned()));
        }
        let instance_id = if request.instance_id.is_empty() { new_token() } else { request.instance_id.clone() };
        if instance_id.len() > 256 || instance_id.chars().any(|c| c.is_control()) {
            return Err(WorkflowError::Invalid("instance IDs are at most 256 printable characters".to_owned()));
        }
        let start_at = request.scheduled_start_timestamp.as_ref().map_or_else(now_ms, millis);
        let target = self.streams.pick(project, app_id);
        let mut tx = self.pool.begin().await?;
        let new = NewInstance {
            project,
            app_id,
            instance_id: &instance_id,
            name: &request.name,
            input: request.input,
            start_at,
            parent: None,
        };
        let first_turn = create(&mut tx, new, target.as_ref()).await?;
        tx.commit().await?;
        let mut handoffs = Handoffs::default();
        if let Some(target) = &target {
            handoffs.add(target, first_turn);
        }
        self.hand_over(project, handoffs).await;
        self.watchers.changed(project, &instance_id);
        Ok(instance_id)
    }

    /// `GetInstance`: the instance's state, `None` when it does not exist (in this project).
    pub async fn state(
        &self,
        project: &str,
        instance: &str,
        with_payloads: bool,
    ) -> Result<Option<pb::WorkflowState>, WorkflowError> {
        let row = sqlx::query(
            "SELECT name, status, input, output, custom_status, failure, execution_id, parent_instance_id, \
             created_at, updated_at, completed_at FROM wf_instances WHERE project_id = $1 AND instance_id = $2",
        )
        .bind(project)
        .bind(instance)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let payload = |column: &str| -> Result<Option<String>, sqlx::Error> {
            Ok(if with_payloads { row.try_get(column)? } else { None })
        };
        let failure: Option<String> = row.try_get("failure")?;
        Ok(Some(pb::WorkflowState {
            instance_id: instance.to_owned(),
            name: row.try_get("name")?,
            workflow_status: row.try_get::<i64, _>("status")? as i32,
            created_timestamp: Some(timestamp(row.try_get("created_at")?)),
            last_updated_timestamp: Some(timestamp(row.try_get("updated_at")?)),
            completed_timestamp: row.try_get::<Option<i64>, _>("completed_at")?.map(timestamp),
            input: payload("input")?,
            output: payload("output")?,
            custom_status: row.try_get("custom_status")?,
            failure_details: failure.map(|text| decode(&text)).transpose()?,
            execution_id: row.try_get("execution_id")?,
            parent_instance_id: row.try_get("parent_instance_id")?,
            ..Default::default()
        }))
    }

    /// Adds an event to an existing, unfinished instance's inbox (events for finished instances are dropped)
    /// and, when no turn is in flight, hands the turn it makes to a stream here.
    async fn deliver(&self, project: &str, instance: &str, event: pb::HistoryEvent) -> Result<(), WorkflowError> {
        let mut tx = self.pool.begin().await?;
        let found =
            find(&mut tx, project, instance).await?.ok_or_else(|| WorkflowError::NotFound(instance.to_owned()))?;
        let mut handoffs = Handoffs::default();
        let mut handed = false;
        if !is_terminal(found.status) {
            let arrival = (instance, found.app_id.as_str());
            handed = self.arrive(&mut tx, project, arrival, &event, now_ms(), &mut handoffs).await?;
        }
        tx.commit().await?;
        if !handed {
            // The turn may be another process's to take, or due when a turn in flight ends.
            self.streams.wake_all();
        }
        self.hand_over(project, handoffs).await;
        Ok(())
    }

    /// `RaiseEvent`.
    pub async fn raise(
        &self,
        project: &str,
        instance: &str,
        name: &str,
        input: Option<String>,
    ) -> Result<(), WorkflowError> {
        let raised = EventType::EventRaised(pb::EventRaisedEvent { name: name.to_owned(), input });
        self.deliver(project, instance, event(-1, raised)).await
    }

    /// `TerminateInstance`, of the instance and, with `recursive`, of its running children.
    pub async fn terminate(
        &self,
        project: &str,
        instance: &str,
        output: Option<String>,
        recursive: bool,
    ) -> Result<(), WorkflowError> {
        let terminated =
            EventType::ExecutionTerminated(pb::ExecutionTerminatedEvent { input: output, recurse: recursive });
        self.deliver(project, instance, event(-1, terminated)).await?;
        if recursive {
            for child in self.children(project, instance).await? {
                let terminated =
                    EventType::ExecutionTerminated(pb::ExecutionTerminatedEvent { input: None, recurse: true });
                self.deliver(project, &child, event(-1, terminated)).await?;
            }
        }
        Ok(())
    }

    /// `SuspendInstance` / `ResumeInstance`: the status changes now; the worker learns it from the event.
    pub async fn suspend(
        &self,
        project: &str,
        instance: &str,
        suspend: bool,
        reason: Option<String>,
    ) -> Result<(), WorkflowError> {
        let (event_type, from, to) = if suspend {
            (
                EventType::ExecutionSuspended(pb::ExecutionSuspendedEvent { input: reason }),
                Status::Running,
                Status::Suspended,
            )
        } else {
            (
                EventType::ExecutionResumed(pb::ExecutionResumedEvent { input: reason }),
                Status::Suspended,
                Status::Running,
            )
        };
        self.deliver(project, instance, event(-1, event_type)).await?;
        sqlx::query("UPDATE wf_instances SET status = $3, updated_at = $4 WHERE project_id = $1 AND instance_id = $2 AND status = $5")
            .bind(project)
            .bind(instance)
            .bind(to as i64)
            .bind(now_ms())
            .bind(from as i64)
            .execute(&self.pool)
            .await?;
        self.watchers.changed(project, instance);
        Ok(())
    }

    async fn children(&self, project: &str, instance: &str) -> Result<Vec<String>, WorkflowError> {
        Ok(sqlx::query_scalar("SELECT instance_id FROM wf_instances WHERE project_id = $1 AND parent_instance_id = $2")
            .bind(project)
            .bind(instance)
            .fetch_all(&self.pool)
            .await?)
    }

    /// `PurgeInstances` of one instance (and, with `recursive`, its children); how many were deleted.
    pub async fn purge(
        &self,
        project: &str,
        instance: &str,
        recursive: bool,
        force: bool,
    ) -> Result<i32, WorkflowError> {
        let mut tx = self.pool.begin().await?;
        let Some(found) = find(&mut tx, project, instance).await? else { return Ok(0) };
        if !is_terminal(found.status) && !force {
            return Err(WorkflowError::NotCompleted(instance.to_owned()));
        }
        for table in ["wf_history", "wf_inbox", "wf_activities", "wf_instances"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE project_id = $1 AND instance_id = $2"))
                .bind(project)
                .bind(instance)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.histories.forget(project, instance);
        self.watchers.changed(project, instance);
        let mut deleted = 1;
        if recursive {
            for child in self.children(project, instance).await? {
                deleted += Box::pin(self.purge(project, &child, true, force)).await?;
            }
        }
        Ok(deleted)
    }

    /// Waits until `done` holds for the instance's status (or it is gone); its state then.
    pub async fn wait(
        &self,
        project: &str,
        instance: &str,
        with_payloads: bool,
        done: impl Fn(i32) -> bool,
    ) -> Result<Option<pb::WorkflowState>, WorkflowError> {
        let watch = self.watchers.watch(project, instance);
        let mut idle = WAIT_POLL;
        loop {
            let changed = watch.changed.notified();
            tokio::pin!(changed);
            // Listening before looking: a change committed while the state is read must not be slept through.
            changed.as_mut().enable();
            match self.state(project, instance, with_payloads).await? {
                Some(state) if !done(state.workflow_status) => {}
                other => return Ok(other),
            }
            idle = match tokio::time::timeout(idle, changed).await {
                Ok(()) => WAIT_POLL,
                Err(_) => (idle * 2).min(WAIT_POLL_MAX),
            };
        }
    }

    /// Hands the next due turn or activity of `app_id` to the stream `owner`, leased to it.
    pub async fn claim(&self, project: &str, app_id: &str, owner: &str) -> Result<Option<Handed>, WorkflowError> {
        if let Some(turn) = self.claim_turn(project, app_id, owner).await? {
            return Ok(Some(turn));
        }
        self.claim_activity(project, app_id, owner).await
    }

    async fn claim_turn(&self, project: &str, app_id: &str, owner: &str) -> Result<Option<Handed>, WorkflowError> {
        let now = now_ms();
        // From the due inbox entries, not the instances: finished instances pile up, their inboxes are empty.
        // The limit inside keeps the planner on the inbox's index; looking instances up by key follows.
        let candidates: Vec<String> = sqlx::query_scalar(
            "SELECT i.instance_id FROM (SELECT DISTINCT instance_id FROM wf_inbox \
             WHERE project_id = $1 AND visible_at <= $3 LIMIT 256) due JOIN wf_instances i \
             ON i.project_id = $1 AND i.instance_id = due.instance_id \
             WHERE i.app_id = $2 AND i.lease_until < $3 LIMIT 8",
        )
        .bind(project)
        .bind(app_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        for instance in candidates {
            let mut tx = self.pool.begin().await?;
            let turn = self.lease_turn(&mut tx, project, &instance, owner, now, None).await?;
            tx.commit().await?;
            if let Some((WorkItem::Workflow(request), _)) = &turn {
                self.remember(project, request);
            }
            if turn.is_some() {
                return Ok(turn);
            }
        }
        Ok(None)
    }

    /// Stores an event arriving for an instance of `app_id` and, when a stream of the App ID is here and no
    /// turn is in flight, leases the turn it makes to that stream; whether it did.
    async fn arrive(
        &self,
        tx: &mut Tx,
        project: &str,
        (instance, app_id): (&str, &str),
        arriving: &pb::HistoryEvent,
        now: i64,
        handoffs: &mut Handoffs,
    ) -> Result<bool, WorkflowError> {
        let Some(target) = self.streams.pick(project, app_id) else {
            push_inbox(tx, project, instance, arriving, now, None).await?;
            return Ok(false);
        };
        let turn = self.lease_turn(tx, project, instance, &target.owner, now, Some(arriving)).await?;
        let handed = turn.is_some();
        handoffs.add(&target, turn);
        Ok(handed)
    }

    /// Leases the instance's next turn to `owner` when no turn is in flight and events are due (or one is
    /// `arriving`, which is stored either way); the turn.
    async fn lease_turn(
        &self,
        tx: &mut Tx,
        project: &str,
        instance: &str,
        owner: &str,
        now: i64,
        arriving: Option<&pb::HistoryEvent>,
    ) -> Result<Option<Handed>, WorkflowError> {
        let token = new_token();
        // Whoever sets the lease first owns the turn.
        let leased = sqlx::query(
            "UPDATE wf_instances SET lease_owner = $3, lease_until = $4, turn_token = $5, turn_started_at = $6 \
             WHERE project_id = $1 AND instance_id = $2 AND lease_until < $6 \
             RETURNING status, execution_id, history_len",
        )
        .bind(project)
        .bind(instance)
        .bind(owner)
        .bind(lease_until(now))
        .bind(&token)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(leased) = leased else {
            if let Some(arriving) = arriving {
                push_inbox(tx, project, instance, arriving, now, None).await?;
            }
            return Ok(None);
        };
        if is_terminal(leased.try_get::<i64, _>("status")? as i32) {
            // Events for a finished instance go nowhere.
            sqlx::query("DELETE FROM wf_inbox WHERE project_id = $1 AND instance_id = $2")
                .bind(project)
                .bind(instance)
                .execute(&mut **tx)
                .await?;
            unlease(tx, project, instance).await?;
            return Ok(None);
        }
        let mut due = mark_due(tx, project, instance, &token, now).await?;
        if let Some(arriving) = arriving {
            push_inbox(tx, project, instance, arriving, now, Some(&token)).await?;
            due.push(arriving.clone());
        }
        if due.is_empty() {
            unlease(tx, project, instance).await?;
            return Ok(None);
        }
        let execution_id: String = leased.try_get("execution_id")?;
        let len = leased.try_get::<i64, _>("history_len")? as usize;
        let past = match self.histories.get(project, instance, &execution_id, len) {
            Some(past) => past,
            None => history(tx, project, instance).await?,
        };
        Ok(Some((WorkItem::Workflow(turn_request(instance, execution_id, past, now, due)), token)))
    }

    async fn claim_activity(&self, project: &str, app_id: &str, owner: &str) -> Result<Option<Handed>, WorkflowError> {
        let now = now_ms();
        let candidates = sqlx::query(
            "SELECT id, request FROM wf_activities WHERE project_id = $1 AND app_id = $2 AND lease_until < $3 ORDER BY created_at LIMIT 8",
        )
        .bind(project)
        .bind(app_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        for row in candidates {
            let id: String = row.try_get("id")?;
            let token = new_token();
            let claimed = sqlx::query(
                "UPDATE wf_activities SET lease_owner = $2, lease_until = $3, token = $4 WHERE id = $1 AND lease_until < $5",
            )
            .bind(&id)
            .bind(owner)
            .bind(lease_until(now))
            .bind(&token)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if claimed == 1 {
                let request: pb::ActivityRequest = decode(&row.try_get::<String, _>("request")?)?;
                return Ok(Some((WorkItem::Activity(request), token)));
            }
        }
        Ok(None)
    }

    /// Keeps the leases of a live stream from running out.
    pub async fn renew(&self, owner: &str) -> Result<(), WorkflowError> {
        let until = lease_until(now_ms());
        for table in ["wf_instances", "wf_activities"] {
            sqlx::query(&format!("UPDATE {table} SET lease_until = $2 WHERE lease_owner = $1 AND lease_until > 0"))
                .bind(owner)
                .bind(until)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// A stream closed: what it held goes to the next stream at once.
    pub async fn release(&self, owner: &str) -> Result<(), WorkflowError> {
        for table in ["wf_instances", "wf_activities"] {
            sqlx::query(&format!("UPDATE {table} SET lease_until = 0, lease_owner = NULL WHERE lease_owner = $1"))
                .bind(owner)
                .execute(&self.pool)
                .await?;
        }
        self.streams.wake_all();
        Ok(())
    }

    /// One item leased to `owner` under `token` goes back.
    async fn release_item(&self, owner: &str, token: &str) -> Result<(), WorkflowError> {
        for (table, token_column) in [("wf_instances", "turn_token"), ("wf_activities", "token")] {
            sqlx::query(&format!(
                "UPDATE {table} SET lease_until = 0, lease_owner = NULL WHERE lease_owner = $1 AND {token_column} = $2"
            ))
            .bind(owner)
            .bind(token)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// `CompleteActivityTask`: the result becomes an event of the instance (a stale token is ignored), and
    /// the turn it makes goes to a stream here when no turn is in flight.
    pub async fn complete_activity(&self, project: &str, response: pb::ActivityResponse) -> Result<(), WorkflowError> {
        let mut tx = self.pool.begin().await?;
        // Workers that know no completion tokens (the JS SDK's) name the activity by instance and task, as in daprd.
        let rows = if response.completion_token.is_empty() {
            sqlx::query(
                "DELETE FROM wf_activities WHERE project_id = $1 AND instance_id = $2 AND task_id = $3 \
                 AND lease_until > 0 RETURNING app_id, request",
            )
            .bind(project)
            .bind(&response.instance_id)
            .bind(i64::from(response.task_id))
            .fetch_all(&mut *tx)
            .await?
        } else {
            sqlx::query("DELETE FROM wf_activities WHERE project_id = $1 AND token = $2 RETURNING app_id, request")
                .bind(project)
                .bind(&response.completion_token)
                .fetch_all(&mut *tx)
                .await?
        };
        let Some(row) = rows.first() else {
            tracing::debug!(instance = %response.instance_id, "activity result with a stale token dropped");
            return Ok(());
        };
        let request: pb::ActivityRequest = decode(&row.try_get::<String, _>("request")?)?;
        let app_id: String = row.try_get("app_id")?;
        let instance = request.workflow_instance.map(|i| i.instance_id).unwrap_or_default();
        let result = match response.failure_details {
            Some(failure) => EventType::TaskFailed(pb::TaskFailedEvent {
                task_scheduled_id: request.task_id,
                failure_details: Some(failure),
                task_execution_id: request.task_execution_id,
                ..Default::default()
            }),
            None => EventType::TaskCompleted(pb::TaskCompletedEvent {
                task_scheduled_id: request.task_id,
                result: response.result,
                task_execution_id: request.task_execution_id,
                ..Default::default()
            }),
        };
        // The instance still runs: the turn that ends an instance deletes its activities in its transaction.
        let mut handoffs = Handoffs::default();
        let arrival = (instance.as_str(), app_id.as_str());
        self.arrive(&mut tx, project, arrival, &event(-1, result), now_ms(), &mut handoffs).await?;
        tx.commit().await?;
        // Not handed: a turn is in flight and takes the result when it ends, or no stream of the App ID is
        // here and the claim loops of other processes find it.
        self.hand_over(project, handoffs).await;
        Ok(())
    }

    /// `CompleteOrchestratorTask` / `CompleteWorkflowTask`: commits the turn and applies its actions; work
    /// they make (activities, a child's first turn, the next turn) goes to a stream here when there is one.
    pub async fn complete_turn(&self, project: &str, response: pb::WorkflowResponse) -> Result<(), WorkflowError> {
        let instance = response.instance_id.clone();
        let mut tx = self.pool.begin().await?;
        // Workers that know no completion tokens (the JS SDK's) answer the instance's current turn, as in daprd.
        let row = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS}, turn_started_at, turn_token, history_len FROM wf_instances \
             WHERE project_id = $1 AND instance_id = $2 AND turn_token IS NOT NULL AND (turn_token = $3 OR $3 = '')"
        ))
        .bind(project)
        .bind(&instance)
        .bind(&response.completion_token)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tracing::debug!(%instance, "workflow result with a stale token dropped");
            return Ok(());
        };
        let found = instance_from_row(&row)?;
        let started_at: i64 = row.try_get("turn_started_at")?;
        let token: String = row.try_get("turn_token")?;
        let history_len = row.try_get::<i64, _>("history_len")? as usize;
        // Exactly the events the turn was given.
        let given = sqlx::query(
            "DELETE FROM wf_inbox WHERE project_id = $1 AND instance_id = $2 AND turn_token = $3 RETURNING id, event",
        )
        .bind(project)
        .bind(&instance)
        .bind(&token)
        .fetch_all(&mut *tx)
        .await?;
        let past = self.histories.get(project, &instance, &found.execution_id, history_len);
        let target = self.streams.pick(project, &found.app_id);
        let mut turn = Turn {
            tx,
            project,
            instance: &instance,
            found: &found,
            execution_id: found.execution_id.clone(),
            committed: vec![workflow_started(started_at)],
            activities: Vec::new(),
            target: target.as_ref(),
            handoffs: Handoffs::default(),
            others_changed: false,
            continued: false,
        };
        turn.committed.extend(in_arrival_order(given)?);
        // Only what the turn decides changes the status: a suspend or resume committed meanwhile must stand.
        let mut decided: Option<i32> = None;
        let mut finished = None;
        for action in response.actions {
            let id = action.id;
            match action.workflow_action_type {
                Some(WorkflowActionType::ScheduleTask(task)) => turn.schedule_task(id, task),
                Some(WorkflowActionType::CreateTimer(timer)) => turn.create_timer(id, timer).await?,
                Some(WorkflowActionType::CreateChildWorkflow(child)) => turn.create_child(id, child).await?,
                Some(WorkflowActionType::SendEvent(send)) => turn.send_event(send).await?,
                Some(WorkflowActionType::TerminateWorkflow(terminate)) => turn.terminate_other(terminate).await?,
                Some(WorkflowActionType::CompleteWorkflow(complete)) => {
                    if complete.workflow_status == Status::ContinuedAsNew as i32 {
                        turn.continue_as_new(complete).await?;
                        decided = Some(Status::Running as i32);
                    } else {
                        decided = Some(complete.workflow_status);
                        turn.committed.push(event(
                            id,
                            EventType::ExecutionCompleted(pb::ExecutionCompletedEvent {
                                workflow_status: complete.workflow_status,
                                result: complete.result.clone(),
                                failure_details: complete.failure_details.clone(),
                            }),
                        ));
                        finished = Some(complete);
                    }
                }
                Some(WorkflowActionType::WorkflowVersionNotAvailable(_)) => decided = Some(Status::Stalled as i32),
                Some(WorkflowActionType::CreateDetachedWorkflow(detached)) => turn.create_detached(detached).await?,
                None => {}
            }
        }
        turn.insert_activities().await?;
        let Turn { mut tx, committed, execution_id, mut handoffs, mut others_changed, continued, .. } = turn;
        // A continue-as-new started the history over.
        let from = if continued { 0 } else { history_len };
        append_history(&mut tx, project, &instance, from, &committed).await?;
        let new_len = from + committed.len();
        // The whole history when this process knows it without reading it.
        let known = if continued {
            Some(committed)
        } else {
            past.map(|mut past| {
                past.extend(committed);
                past
            })
        };
        let now = now_ms();
        let terminal = decided.is_some_and(is_terminal);
        if terminal {
            // Before the instance row, in the order activity completions lock them (activity, then instance).
            for table in ["wf_inbox", "wf_activities"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE project_id = $1 AND instance_id = $2"))
                    .bind(project)
                    .bind(&instance)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        // Events that arrived while the turn ran make the next turn at once, for a stream here.
        let mut next = None;
        if let (Some(target), false) = (&target, terminal) {
            let next_token = new_token();
            let due = mark_due(&mut tx, project, &instance, &next_token, now).await?;
            if !due.is_empty() {
                next = Some((target, next_token, due));
            }
        }
        sqlx::query(&format!(
            "UPDATE wf_instances SET status = COALESCE($3, CASE WHEN status = {pending} THEN {running} ELSE status END), \
             custom_status = COALESCE($4, custom_status), updated_at = $5, \
             output = COALESCE($6, output), failure = COALESCE($7, failure), completed_at = $8, history_len = $9, \
             lease_owner = $10, lease_until = $11, turn_token = $12, turn_started_at = $5 \
             WHERE project_id = $1 AND instance_id = $2",
            pending = Status::Pending as i64,
            running = Status::Running as i64,
        ))
        .bind(project)
        .bind(&instance)
        .bind(decided.map(i64::from))
        .bind(response.custom_status)
        .bind(now)
        .bind(finished.as_ref().and_then(|f| f.result.clone()))
        .bind(finished.as_ref().and_then(|f| f.failure_details.as_ref()).map(encode))
        .bind(terminal.then_some(now))
        .bind(new_len as i64)
        .bind(next.as_ref().map(|(target, _, _)| target.owner.to_string()))
        .bind(if next.is_some() { lease_until(now) } else { 0 })
        .bind(next.as_ref().map(|(_, next_token, _)| next_token.clone()))
        .execute(&mut *tx)
        .await?;
        let handed_next = next.is_some();
        if let Some((target, next_token, due)) = next {
            let past = match &known {
                Some(history) => history.clone(),
                None => history(&mut tx, project, &instance).await?,
            };
            let request = turn_request(&instance, execution_id.clone(), past, now, due);
            handoffs.add(target, Some((WorkItem::Workflow(request), next_token)));
        }
        if terminal {
            if let (Some(parent), Some(task)) = (&found.parent_instance_id, found.parent_task_id) {
                let task_scheduled_id = i32::try_from(task).unwrap_or_default();
                let outcome = match finished.filter(|f| f.workflow_status == Status::Completed as i32) {
                    Some(done) => EventType::ChildWorkflowInstanceCompleted(pb::ChildWorkflowInstanceCompletedEvent {
                        task_scheduled_id,
                        result: done.result,
                        ..Default::default()
                    }),
                    None => EventType::ChildWorkflowInstanceFailed(pb::ChildWorkflowInstanceFailedEvent {
                        task_scheduled_id,
                        failure_details: Some(child_failure(&mut tx, project, &instance).await?),
                        ..Default::default()
                    }),
                };
                if find(&mut tx, project, parent).await?.is_some_and(|p| !is_terminal(p.status)) {
                    let arrival = (parent.as_str(), found.app_id.as_str());
                    let handed =
                        self.arrive(&mut tx, project, arrival, &event(-1, outcome), now, &mut handoffs).await?;
                    others_changed |= !handed;
                }
            }
        }
        tx.commit().await?;
        match known {
            _ if terminal => self.histories.forget(project, &instance),
            Some(history) if !handed_next => self.histories.put(project, &instance, &execution_id, history),
            _ => {}
        }
        self.hand_over(project, handoffs).await;
        self.watchers.changed(project, &instance);
        if others_changed {
            self.streams.wake_all();
        }
        Ok(())
    }
}

/// Why a child did not complete, for its parent.
async fn child_failure(tx: &mut Tx, project: &str, instance: &str) -> Result<pb::TaskFailureDetails, WorkflowError> {
    let row = sqlx::query("SELECT status, failure FROM wf_instances WHERE project_id = $1 AND instance_id = $2")
        .bind(project)
        .bind(instance)
        .fetch_one(&mut **tx)
        .await?;
    let failure: Option<String> = row.try_get("failure")?;
    if let Some(failure) = failure {
        return decode(&failure);
    }
    let status = Status::try_from(row.try_get::<i64, _>("status")? as i32).unwrap_or(Status::Failed);
    Ok(pb::TaskFailureDetails {
        error_type: "WorkflowNotCompleted".to_owned(),
        error_message: format!("child workflow {instance} ended {}", status.as_str_name()),
        ..Default::default()
    })
}

fn workflow_started(at: i64) -> pb::HistoryEvent {
    pb::HistoryEvent {
        event_id: -1,
        timestamp: Some(timestamp(at)),
        router: None,
        event_type: Some(EventType::WorkflowStarted(pb::WorkflowStartedEvent::default())),
    }
}

/// A turn being committed: its transaction, the events it adds to the history, the activities it schedules
/// and the work it leases to a stream here.
struct Turn<'a> {
    tx: Tx,
    project: &'a str,
    instance: &'a str,
    found: &'a Instance,
    /// The execution the turn's actions belong to (a continue-as-new starts another).
    execution_id: String,
    committed: Vec<pb::HistoryEvent>,
    activities: Vec<pb::ActivityRequest>,
    target: Option<&'a Target>,
    handoffs: Handoffs,
    /// Work was made for other instances without being handed to a stream.
    others_changed: bool,
    continued: bool,
}

impl Turn<'_> {
    fn workflow_instance(&self) -> pb::WorkflowInstance {
        pb::WorkflowInstance { instance_id: self.instance.to_owned(), execution_id: Some(self.execution_id.clone()) }
    }

    fn schedule_task(&mut self, id: i32, task: pb::ScheduleTaskAction) {
        let task_execution_id = if task.task_execution_id.is_empty() { new_token() } else { task.task_execution_id };
        self.committed.push(event(
            id,
            EventType::TaskScheduled(pb::TaskScheduledEvent {
                name: task.name.clone(),
                version: task.version.clone(),
                input: task.input.clone(),
                task_execution_id: task_execution_id.clone(),
                ..Default::default()
            }),
        ));
        self.activities.push(pb::ActivityRequest {
            name: task.name,
            version: task.version,
            input: task.input,
            workflow_instance: Some(self.workflow_instance()),
            task_id: id,
            task_execution_id,
            ..Default::default()
        });
    }

    /// Stores the scheduled activities, leased to the turn's stream when there is one here.
    async fn insert_activities(&mut self) -> Result<(), WorkflowError> {
        let now = now_ms();
        let owner = self.target.map(|target| target.owner.to_string());
        let mut activities = std::mem::take(&mut self.activities);
        while !activities.is_empty() {
            let chunk: Vec<pb::ActivityRequest> = activities.drain(..activities.len().min(ROWS_PER_INSERT)).collect();
            let values: Vec<String> = (0..chunk.len())
                .map(|row| {
                    let first = 7 + 4 * row;
                    format!("(${first}, $1, $2, $3, ${}, ${}, $4, $5, $6, ${})", first + 1, first + 2, first + 3)
                })
                .collect();
            let sql = format!(
                "INSERT INTO wf_activities (id, project_id, app_id, instance_id, task_id, request, created_at, \
                 lease_owner, lease_until, token) VALUES {}",
                values.join(", ")
            );
            let mut insert = sqlx::query(&sql)
                .bind(self.project)
                .bind(&self.found.app_id)
                .bind(self.instance)
                .bind(now)
                .bind(owner.clone())
                .bind(if owner.is_some() { lease_until(now) } else { 0 });
            let mut leased = Vec::new();
            for request in chunk {
                let token = owner.as_ref().map(|_| new_token());
                insert = insert
                    .bind(new_token())
                    .bind(i64::from(request.task_id))
                    .bind(encode(&request))
                    .bind(token.clone());
                leased.push((request, token));
            }
            insert.execute(&mut *self.tx).await?;
            if let Some(target) = self.target {
                for (request, token) in leased {
                    self.handoffs.add(target, token.map(|token| (WorkItem::Activity(request), token)));
                }
            }
        }
        Ok(())
    }

    async fn create_timer(&mut self, id: i32, timer: pb::CreateTimerAction) -> Result<(), WorkflowError> {
        let fire_at = timer.fire_at.unwrap_or_else(|| timestamp(now_ms()));
        self.committed.push(event(
            id,
            EventType::TimerCreated(pb::TimerCreatedEvent {
                fire_at: Some(fire_at),
                name: timer.name,
                origin: timer.origin.map(timer_origin),
                ..Default::default()
            }),
        ));
        let fired = EventType::TimerFired(pb::TimerFiredEvent { fire_at: Some(fire_at), timer_id: id });
        push_inbox(&mut self.tx, self.project, self.instance, &event(-1, fired), millis(&fire_at), None).await
    }

    /// A new instance this turn starts: its first turn goes to the turn's stream when there is one here.
    async fn start_instance(&mut self, new: NewInstance<'_>) -> Result<(), WorkflowError> {
        let first_turn = create(&mut self.tx, new, self.target).await?;
        match self.target {
            Some(target) => self.handoffs.add(target, first_turn),
            None => self.others_changed = true,
        }
        Ok(())
    }

    async fn create_child(&mut self, id: i32, child: pb::CreateChildWorkflowAction) -> Result<(), WorkflowError> {
        let instance_id =
            if child.instance_id.is_empty() { format!("{}:{id:04}", self.instance) } else { child.instance_id };
        self.committed.push(event(
            id,
            EventType::ChildWorkflowInstanceCreated(pb::ChildWorkflowInstanceCreatedEvent {
                instance_id: instance_id.clone(),
                name: child.name.clone(),
                version: child.version,
                input: child.input.clone(),
                ..Default::default()
            }),
        ));
        let parent = pb::ParentInstanceInfo {
            task_scheduled_id: id,
            name: Some(self.found.name.clone()),
            workflow_instance: Some(self.workflow_instance()),
            app_id: Some(self.found.app_id.clone()),
            ..Default::default()
        };
        let (project, app_id) = (self.project, self.found.app_id.clone());
        self.start_instance(NewInstance {
            project,
            app_id: &app_id,
            instance_id: &instance_id,
            name: &child.name,
            input: child.input,
            start_at: now_ms(),
            parent: Some(parent),
        })
        .await
    }

    async fn create_detached(&mut self, detached: pb::CreateDetachedWorkflowAction) -> Result<(), WorkflowError> {
        let instance_id = if detached.instance_id.is_empty() { new_token() } else { detached.instance_id };
        let (project, app_id) = (self.project, self.found.app_id.clone());
        self.start_instance(NewInstance {
            project,
            app_id: &app_id,
            instance_id: &instance_id,
            name: &detached.name,
            input: detached.input,
            start_at: detached.scheduled_start_timestamp.as_ref().map_or_else(now_ms, millis),
            parent: None,
        })
        .await
    }

    async fn send_event(&mut self, send: pb::SendEventAction) -> Result<(), WorkflowError> {
        let Some(target) = send.instance else { return Ok(()) };
        self.committed.push(event(
            -1,
            EventType::EventSent(pb::EventSentEvent {
                instance_id: target.instance_id.clone(),
                name: send.name.clone(),
                input: send.data.clone(),
            }),
        ));
        let raised = EventType::EventRaised(pb::EventRaisedEvent { name: send.name, input: send.data });
        if find(&mut self.tx, self.project, &target.instance_id).await?.is_some() {
            push_inbox(&mut self.tx, self.project, &target.instance_id, &event(-1, raised), now_ms(), None).await?;
            self.others_changed = true;
        }
        Ok(())
    }

    async fn terminate_other(&mut self, terminate: pb::TerminateWorkflowAction) -> Result<(), WorkflowError> {
        let terminated = EventType::ExecutionTerminated(pb::ExecutionTerminatedEvent {
            input: terminate.reason,
            recurse: terminate.recurse,
        });
        push_inbox(&mut self.tx, self.project, &terminate.instance_id, &event(-1, terminated), now_ms(), None).await?;
        self.others_changed = true;
        Ok(())
    }

    /// Continue-as-new: the history starts over with a new execution, its input, and the carried-over events.
    async fn continue_as_new(&mut self, complete: pb::CompleteWorkflowAction) -> Result<(), WorkflowError> {
        for table in ["wf_history", "wf_activities"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE project_id = $1 AND instance_id = $2"))
                .bind(self.project)
                .bind(self.instance)
                .execute(&mut *self.tx)
                .await?;
        }
        // The turn's events and activities belong to the execution that ended.
        self.committed.clear();
        self.activities.clear();
        self.continued = true;
        self.execution_id = new_token();
        sqlx::query("UPDATE wf_instances SET execution_id = $3, input = $4 WHERE project_id = $1 AND instance_id = $2")
            .bind(self.project)
            .bind(self.instance)
            .bind(&self.execution_id)
            .bind(complete.result.clone())
            .execute(&mut *self.tx)
            .await?;
        let parent = match (&self.found.parent_instance_id, self.found.parent_task_id) {
            (Some(parent), Some(task)) => Some(pb::ParentInstanceInfo {
                task_scheduled_id: i32::try_from(task).unwrap_or_default(),
                workflow_instance: Some(pb::WorkflowInstance { instance_id: parent.clone(), execution_id: None }),
                ..Default::default()
            }),
            _ => None,
        };
        let started = execution_started(
            self.instance,
            &self.execution_id,
            &self.found.name,
            complete.result,
            parent,
            &self.found.app_id,
        );
        let now = now_ms();
        push_inbox(&mut self.tx, self.project, self.instance, &started, now, None).await?;
        for carried in complete.carryover_events {
            push_inbox(&mut self.tx, self.project, self.instance, &carried, now, None).await?;
        }
        Ok(())
    }
}

fn timer_origin(origin: pb::create_timer_action::Origin) -> pb::timer_created_event::Origin {
    use pb::create_timer_action::Origin as From;
    use pb::timer_created_event::Origin as To;
    match origin {
        From::CreateTimer(origin) => To::CreateTimer(origin),
        From::ExternalEvent(origin) => To::ExternalEvent(origin),
        From::ActivityRetry(origin) => To::ActivityRetry(origin),
        From::ChildWorkflowRetry(origin) => To::ChildWorkflowRetry(origin),
    }
}
