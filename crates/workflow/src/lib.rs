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
//!
//! Every query takes the project first: nothing of another project can be named.

use std::time::Duration;

use base64::Engine as _;
use dapr_durabletask_proto as pb;
use pb::history_event::EventType;
use pb::workflow_action::WorkflowActionType;
use prost::Message;
use sqlx::{AnyPool, Row};
use tokio::sync::Notify;

mod listing;

pub use listing::{parse_status, status_name, InstanceFilter, InstanceSummary, Page, MAX_PAGE};
pub use pb::OrchestrationStatus as Status;

/// How long a claimed turn or activity stays with its stream without a renewal.
pub const LEASE: Duration = Duration::from_secs(30);

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

/// The engine: a handle on the database and the local wake-up for waiters.
pub struct Engine {
    pool: AnyPool,
    changed: Notify,
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

async fn push_inbox(
    tx: &mut Tx,
    project: &str,
    instance: &str,
    event: &pb::HistoryEvent,
    visible_at: i64,
) -> Result<(), WorkflowError> {
    sqlx::query("INSERT INTO wf_inbox (project_id, instance_id, event, visible_at) VALUES ($1, $2, $3, $4)")
        .bind(project)
        .bind(instance)
        .bind(encode(event))
        .bind(visible_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
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

async fn create(tx: &mut Tx, new: NewInstance<'_>) -> Result<(), WorkflowError> {
    if find(tx, new.project, new.instance_id).await?.is_some() {
        return Err(WorkflowError::AlreadyExists(new.instance_id.to_owned()));
    }
    let execution_id = new_token();
    let now = now_ms();
    let parent_id = new.parent.as_ref().and_then(|p| p.workflow_instance.as_ref()).map(|i| i.instance_id.clone());
    sqlx::query(
        "INSERT INTO wf_instances (project_id, instance_id, app_id, name, status, input, execution_id, \
         parent_instance_id, parent_task_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
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
    .execute(&mut **tx)
    .await?;
    let started = execution_started(new.instance_id, &execution_id, new.name, new.input, new.parent, new.app_id);
    push_inbox(tx, new.project, new.instance_id, &started, new.start_at).await
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

impl Engine {
    pub fn new(pool: AnyPool) -> Engine {
        Engine { pool, changed: Notify::new() }
    }

    /// Something changed: local waiters look again (other processes poll).
    fn wake(&self) {
        self.changed.notify_waiters();
    }

    /// Resolves at the next change in this process (enable it before looking, to miss none).
    pub fn changes(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
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
        let mut tx = self.pool.begin().await?;
        create(
            &mut tx,
            NewInstance {
                project,
                app_id,
                instance_id: &instance_id,
                name: &request.name,
                input: request.input,
                start_at,
                parent: None,
            },
        )
        .await?;
        tx.commit().await?;
        self.wake();
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

    /// Adds an event to an existing, unfinished instance's inbox. Events for finished instances are dropped.
    async fn deliver(&self, project: &str, instance: &str, event: pb::HistoryEvent) -> Result<(), WorkflowError> {
        let mut tx = self.pool.begin().await?;
        let found =
            find(&mut tx, project, instance).await?.ok_or_else(|| WorkflowError::NotFound(instance.to_owned()))?;
        if !is_terminal(found.status) {
            push_inbox(&mut tx, project, instance, &event, now_ms()).await?;
        }
        tx.commit().await?;
        self.wake();
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
        self.wake();
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
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Listening before looking: a change committed while the state is read must not be slept through.
            changed.as_mut().enable();
            match self.state(project, instance, with_payloads).await? {
                Some(state) if !done(state.workflow_status) => {}
                other => return Ok(other),
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), changed).await;
        }
    }

    /// Hands the next due turn or activity of `app_id` to the stream `owner`, leased to it.
    pub async fn claim(
        &self,
        project: &str,
        app_id: &str,
        owner: &str,
    ) -> Result<Option<(WorkItem, String)>, WorkflowError> {
        if let Some(turn) = self.claim_turn(project, app_id, owner).await? {
            return Ok(Some(turn));
        }
        self.claim_activity(project, app_id, owner).await
    }

    async fn claim_turn(
        &self,
        project: &str,
        app_id: &str,
        owner: &str,
    ) -> Result<Option<(WorkItem, String)>, WorkflowError> {
        let now = now_ms();
        // From the due inbox entries, not the instances: finished instances pile up, their inboxes are empty.
        let candidates: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT b.instance_id FROM wf_inbox b JOIN wf_instances i \
             ON i.project_id = b.project_id AND i.instance_id = b.instance_id \
             WHERE b.project_id = $1 AND b.visible_at <= $3 AND i.app_id = $2 AND i.lease_until < $3 LIMIT 8",
        )
        .bind(project)
        .bind(app_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        for instance in candidates {
            let token = new_token();
            let mut tx = self.pool.begin().await?;
            // Whoever sets the lease first owns the turn.
            let claimed = sqlx::query(
                "UPDATE wf_instances SET lease_owner = $3, lease_until = $4, turn_token = $5, turn_started_at = $6 \
                 WHERE project_id = $1 AND instance_id = $2 AND lease_until < $6",
            )
            .bind(project)
            .bind(&instance)
            .bind(owner)
            .bind(now + LEASE.as_millis() as i64)
            .bind(&token)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed != 1 {
                continue;
            }
            let Some(found) = find(&mut tx, project, &instance).await? else { continue };
            if is_terminal(found.status) {
                // Events for a finished instance go nowhere.
                sqlx::query("DELETE FROM wf_inbox WHERE project_id = $1 AND instance_id = $2")
                    .bind(project)
                    .bind(&instance)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE wf_instances SET lease_until = 0, lease_owner = NULL WHERE project_id = $1 AND instance_id = $2")
                    .bind(project)
                    .bind(&instance)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                continue;
            }
            // The turn is given exactly the rows marked with its token: ids say nothing about commit order (on
            // PostgreSQL a row with a smaller id can become visible later), so "up to the largest id seen" could
            // commit an event the workflow never saw.
            sqlx::query(
                "UPDATE wf_inbox SET turn_token = $3 WHERE project_id = $1 AND instance_id = $2 AND visible_at <= $4",
            )
            .bind(project)
            .bind(&instance)
            .bind(&token)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let inbox = sqlx::query(
                "SELECT event FROM wf_inbox WHERE project_id = $1 AND instance_id = $2 AND turn_token = $3 ORDER BY id",
            )
            .bind(project)
            .bind(&instance)
            .bind(&token)
            .fetch_all(&mut *tx)
            .await?;
            let past = self.history(&mut tx, project, &instance).await?;
            let mut new_events = vec![workflow_started(now)];
            for row in &inbox {
                new_events.push(decode(&row.try_get::<String, _>("event")?)?);
            }
            tx.commit().await?;
            let request = pb::WorkflowRequest {
                instance_id: instance.clone(),
                execution_id: Some(found.execution_id),
                past_events: past,
                new_events,
                ..Default::default()
            };
            return Ok(Some((WorkItem::Workflow(request), token)));
        }
        Ok(None)
    }

    async fn history(
        &self,
        tx: &mut Tx,
        project: &str,
        instance: &str,
    ) -> Result<Vec<pb::HistoryEvent>, WorkflowError> {
        let rows = sqlx::query("SELECT event FROM wf_history WHERE project_id = $1 AND instance_id = $2 ORDER BY seq")
            .bind(project)
            .bind(instance)
            .fetch_all(&mut **tx)
            .await?;
        rows.iter().map(|row| decode(&row.try_get::<String, _>("event")?)).collect()
    }

    async fn claim_activity(
        &self,
        project: &str,
        app_id: &str,
        owner: &str,
    ) -> Result<Option<(WorkItem, String)>, WorkflowError> {
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
            .bind(now + LEASE.as_millis() as i64)
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
        let until = now_ms() + LEASE.as_millis() as i64;
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
        self.wake();
        Ok(())
    }

    /// `CompleteActivityTask`: the result becomes an event of the instance (a stale token is ignored).
    pub async fn complete_activity(&self, project: &str, response: pb::ActivityResponse) -> Result<(), WorkflowError> {
        let mut tx = self.pool.begin().await?;
        // Workers that know no completion tokens (the JS SDK's) name the activity by instance and task, as in daprd.
        let row = if response.completion_token.is_empty() {
            sqlx::query(
                "SELECT id, request FROM wf_activities WHERE project_id = $1 AND instance_id = $2 AND task_id = $3 \
                 AND lease_until > 0",
            )
            .bind(project)
            .bind(&response.instance_id)
            .bind(i64::from(response.task_id))
            .fetch_optional(&mut *tx)
            .await?
        } else {
            sqlx::query("SELECT id, request FROM wf_activities WHERE project_id = $1 AND token = $2")
                .bind(project)
                .bind(&response.completion_token)
                .fetch_optional(&mut *tx)
                .await?
        };
        let Some(row) = row else {
            tracing::debug!(instance = %response.instance_id, "activity result with a stale token dropped");
            return Ok(());
        };
        let request: pb::ActivityRequest = decode(&row.try_get::<String, _>("request")?)?;
        sqlx::query("DELETE FROM wf_activities WHERE id = $1")
            .bind(row.try_get::<String, _>("id")?)
            .execute(&mut *tx)
            .await?;
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
        if find(&mut tx, project, &instance).await?.is_some_and(|found| !is_terminal(found.status)) {
            push_inbox(&mut tx, project, &instance, &event(-1, result), now_ms()).await?;
        }
        tx.commit().await?;
        self.wake();
        Ok(())
    }

    /// `CompleteOrchestratorTask` / `CompleteWorkflowTask`: commits the turn and applies its actions.
    pub async fn complete_turn(&self, project: &str, response: pb::WorkflowResponse) -> Result<(), WorkflowError> {
        let instance = response.instance_id.clone();
        let mut tx = self.pool.begin().await?;
        // Workers that know no completion tokens (the JS SDK's) answer the instance's current turn, as in daprd.
        let row = sqlx::query(
            "SELECT turn_started_at, turn_token FROM wf_instances WHERE project_id = $1 AND instance_id = $2 \
             AND turn_token IS NOT NULL AND (turn_token = $3 OR $3 = '')",
        )
        .bind(project)
        .bind(&instance)
        .bind(&response.completion_token)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tracing::debug!(%instance, "workflow result with a stale token dropped");
            return Ok(());
        };
        let found =
            find(&mut tx, project, &instance).await?.ok_or_else(|| WorkflowError::NotFound(instance.clone()))?;
        let (started_at, token): (i64, String) = (row.try_get("turn_started_at")?, row.try_get("turn_token")?);
        // Exactly the events the turn was given.
        let given = "project_id = $1 AND instance_id = $2 AND turn_token = $3";
        let inbox = sqlx::query(&format!("SELECT event FROM wf_inbox WHERE {given} ORDER BY id"))
            .bind(project)
            .bind(&instance)
            .bind(&token)
            .fetch_all(&mut *tx)
            .await?;
        sqlx::query(&format!("DELETE FROM wf_inbox WHERE {given}"))
            .bind(project)
            .bind(&instance)
            .bind(&token)
            .execute(&mut *tx)
            .await?;
        let mut turn = Turn { tx, project, instance: &instance, found: &found, committed: Vec::new() };
        turn.committed.push(workflow_started(started_at));
        for row in &inbox {
            turn.committed.push(decode(&row.try_get::<String, _>("event")?)?);
        }
        // Only what the turn decides changes the status: a suspend or resume committed meanwhile must stand.
        let mut decided: Option<i32> = None;
        let mut finished = None;
        for action in response.actions {
            let id = action.id;
            match action.workflow_action_type {
                Some(WorkflowActionType::ScheduleTask(task)) => turn.schedule_task(id, task).await?,
                Some(WorkflowActionType::CreateTimer(timer)) => turn.create_timer(id, timer).await?,
                Some(WorkflowActionType::CreateChildWorkflow(child)) => turn.create_child(id, child).await?,
                Some(WorkflowActionType::SendEvent(send)) => turn.send_event(send).await?,
                Some(WorkflowActionType::TerminateWorkflow(terminate)) => {
                    let terminated = EventType::ExecutionTerminated(pb::ExecutionTerminatedEvent {
                        input: terminate.reason,
                        recurse: terminate.recurse,
                    });
                    push_inbox(&mut turn.tx, project, &terminate.instance_id, &event(-1, terminated), now_ms()).await?;
                }
                Some(WorkflowActionType::CompleteWorkflow(complete)) => {
                    if complete.workflow_status == Status::ContinuedAsNew as i32 {
                        turn.continue_as_new(complete).await?;
                        // The turn's events belong to the execution that ended.
                        turn.committed.clear();
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
        let Turn { mut tx, committed, .. } = turn;
        let mut seq: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM wf_history WHERE project_id = $1 AND instance_id = $2")
                .bind(project)
                .bind(&instance)
                .fetch_one(&mut *tx)
                .await?;
        for committed_event in &committed {
            sqlx::query("INSERT INTO wf_history (project_id, instance_id, seq, event) VALUES ($1, $2, $3, $4)")
                .bind(project)
                .bind(&instance)
                .bind(seq)
                .bind(encode(committed_event))
                .execute(&mut *tx)
                .await?;
            seq += 1;
        }
        let now = now_ms();
        let terminal = decided.is_some_and(is_terminal);
        sqlx::query(&format!(
            "UPDATE wf_instances SET status = COALESCE($3, CASE WHEN status = {pending} THEN {running} ELSE status END), \
             custom_status = COALESCE($4, custom_status), updated_at = $5, \
             output = COALESCE($6, output), failure = COALESCE($7, failure), completed_at = $8, \
             lease_owner = NULL, lease_until = 0, turn_token = NULL WHERE project_id = $1 AND instance_id = $2",
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
        .execute(&mut *tx)
        .await?;
        if terminal {
            for table in ["wf_inbox", "wf_activities"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE project_id = $1 AND instance_id = $2"))
                    .bind(project)
                    .bind(&instance)
                    .execute(&mut *tx)
                    .await?;
            }
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
                    push_inbox(&mut tx, project, parent, &event(-1, outcome), now).await?;
                }
            }
        }
        tx.commit().await?;
        self.wake();
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

/// A turn being committed: its transaction and the events it adds to the history.
struct Turn<'a> {
    tx: Tx,
    project: &'a str,
    instance: &'a str,
    found: &'a Instance,
    committed: Vec<pb::HistoryEvent>,
}

impl Turn<'_> {
    fn workflow_instance(&self) -> pb::WorkflowInstance {
        pb::WorkflowInstance {
            instance_id: self.instance.to_owned(),
            execution_id: Some(self.found.execution_id.clone()),
        }
    }

    async fn schedule_task(&mut self, id: i32, task: pb::ScheduleTaskAction) -> Result<(), WorkflowError> {
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
        let request = pb::ActivityRequest {
            name: task.name,
            version: task.version,
            input: task.input,
            workflow_instance: Some(self.workflow_instance()),
            task_id: id,
            task_execution_id,
            ..Default::default()
        };
        sqlx::query(
            "INSERT INTO wf_activities (id, project_id, app_id, instance_id, task_id, request, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_token())
        .bind(self.project)
        .bind(&self.found.app_id)
        .bind(self.instance)
        .bind(i64::from(id))
        .bind(encode(&request))
        .bind(now_ms())
        .execute(&mut *self.tx)
        .await?;
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
        push_inbox(&mut self.tx, self.project, self.instance, &event(-1, fired), millis(&fire_at)).await
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
        let new = NewInstance {
            project: self.project,
            app_id: &self.found.app_id,
            instance_id: &instance_id,
            name: &child.name,
            input: child.input,
            start_at: now_ms(),
            parent: Some(parent),
        };
        create(&mut self.tx, new).await
    }

    async fn create_detached(&mut self, detached: pb::CreateDetachedWorkflowAction) -> Result<(), WorkflowError> {
        let instance_id = if detached.instance_id.is_empty() { new_token() } else { detached.instance_id };
        let new = NewInstance {
            project: self.project,
            app_id: &self.found.app_id,
            instance_id: &instance_id,
            name: &detached.name,
            input: detached.input,
            start_at: detached.scheduled_start_timestamp.as_ref().map_or_else(now_ms, millis),
            parent: None,
        };
        create(&mut self.tx, new).await
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
            push_inbox(&mut self.tx, self.project, &target.instance_id, &event(-1, raised), now_ms()).await?;
        }
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
        let execution_id = new_token();
        sqlx::query("UPDATE wf_instances SET execution_id = $3, input = $4 WHERE project_id = $1 AND instance_id = $2")
            .bind(self.project)
            .bind(self.instance)
            .bind(&execution_id)
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
            &execution_id,
            &self.found.name,
            complete.result,
            parent,
            &self.found.app_id,
        );
        let now = now_ms();
        push_inbox(&mut self.tx, self.project, self.instance, &started, now).await?;
        for carried in complete.carryover_events {
            push_inbox(&mut self.tx, self.project, self.instance, &carried, now).await?;
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
