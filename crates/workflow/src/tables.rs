//! The workflow tables (`wf_*`) row by row: instances, their inboxes and histories, and the conversions
//! between stored text and the protocol's messages that every part of the engine shares.

use super::*;
use outrigger_store::ProjectId;

/// An instance row as the client API reports it.
pub(crate) struct Instance {
    pub(crate) app_id: String,
    pub(crate) name: String,
    pub(crate) status: i32,
    pub(crate) execution_id: String,
    pub(crate) parent_instance_id: Option<String>,
    pub(crate) parent_task_id: Option<i64>,
    /// When it was made (Unix milliseconds).
    pub(crate) created_at: i64,
    pub(crate) trace: InstanceTrace,
}

pub(crate) const INSTANCE_COLUMNS: &str =
    "app_id, name, status, execution_id, parent_instance_id, parent_task_id, created_at, trace_parent, traceparent";

pub(crate) fn instance_from_row(row: &sqlx::any::AnyRow) -> Result<Instance, sqlx::Error> {
    Ok(Instance {
        app_id: row.try_get("app_id")?,
        name: row.try_get("name")?,
        status: row.try_get::<i64, _>("status")? as i32,
        execution_id: row.try_get("execution_id")?,
        parent_instance_id: row.try_get("parent_instance_id")?,
        parent_task_id: row.try_get("parent_task_id")?,
        created_at: row.try_get("created_at")?,
        trace: InstanceTrace { parent: row.try_get("trace_parent")?, own: row.try_get("traceparent")? },
    })
}

pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Any>;

pub(crate) async fn find(tx: &mut Tx, project: &ProjectId, instance: &str) -> Result<Option<Instance>, WorkflowError> {
    let row =
        sqlx::query(&format!("SELECT {INSTANCE_COLUMNS} FROM wf_instances WHERE project_id = $1 AND instance_id = $2"))
            .bind(project.as_str())
            .bind(instance)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map(|row| instance_from_row(&row)).transpose()?)
}

/// Adds an event to the instance's inbox, due at `visible_at`; `turn_token` gives it to a turn leased in
/// the same transaction.
pub(crate) async fn push_inbox(
    tx: &mut Tx,
    project: &ProjectId,
    instance: &str,
    event: &pb::HistoryEvent,
    visible_at: i64,
    turn_token: Option<&str>,
) -> Result<(), WorkflowError> {
    sqlx::query(
        "INSERT INTO wf_inbox (project_id, instance_id, event, visible_at, turn_token) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(project.as_str())
    .bind(instance)
    .bind(encode(event))
    .bind(visible_at)
    .bind(turn_token)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inbox rows (`id`, `event`) decoded in the order they arrived.
pub(crate) fn in_arrival_order(mut rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<pb::HistoryEvent>, WorkflowError> {
    let id = |row: &sqlx::any::AnyRow| row.try_get::<i64, _>("id").unwrap_or_default();
    rows.sort_by_key(id);
    rows.iter().map(|row| decode(&row.try_get::<String, _>("event")?)).collect()
}

/// Gives the instance's due inbox events to the turn `token`; them, in the order they arrived. The caller
/// holds the instance's lease: a turn is given exactly the rows marked with its token (ids say nothing about
/// commit order on PostgreSQL, so "every id up to the largest seen" could commit an event never seen).
pub(crate) async fn mark_due(
    tx: &mut Tx,
    project: &ProjectId,
    instance: &str,
    token: &str,
    now: i64,
) -> Result<Vec<pb::HistoryEvent>, WorkflowError> {
    let rows = sqlx::query(
        "UPDATE wf_inbox SET turn_token = $3 WHERE project_id = $1 AND instance_id = $2 AND visible_at <= $4 \
         RETURNING id, event",
    )
    .bind(project.as_str())
    .bind(instance)
    .bind(token)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    in_arrival_order(rows)
}

pub(crate) async fn unlease(tx: &mut Tx, project: &ProjectId, instance: &str) -> Result<(), WorkflowError> {
    sqlx::query(
        "UPDATE wf_instances SET lease_until = 0, lease_owner = NULL, turn_token = NULL \
         WHERE project_id = $1 AND instance_id = $2",
    )
    .bind(project.as_str())
    .bind(instance)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The committed history of an instance, read from the database.
pub(crate) async fn history(
    tx: &mut Tx,
    project: &ProjectId,
    instance: &str,
) -> Result<Vec<pb::HistoryEvent>, WorkflowError> {
    let rows = sqlx::query("SELECT event FROM wf_history WHERE project_id = $1 AND instance_id = $2 ORDER BY seq")
        .bind(project.as_str())
        .bind(instance)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(|row| decode(&row.try_get::<String, _>("event")?)).collect()
}

/// Appends `events` to the instance's history from position `from`.
pub(crate) async fn append_history(
    tx: &mut Tx,
    project: &ProjectId,
    instance: &str,
    from: usize,
    events: &[pb::HistoryEvent],
) -> Result<(), WorkflowError> {
    for (chunk_index, chunk) in events.chunks(ROWS_PER_INSERT).enumerate() {
        let values: Vec<String> =
            (0..chunk.len()).map(|row| format!("($1, $2, ${}, ${})", 3 + 2 * row, 4 + 2 * row)).collect();
        let sql = format!("INSERT INTO wf_history (project_id, instance_id, seq, event) VALUES {}", values.join(", "));
        let mut insert = sqlx::query(&sql).bind(project.as_str()).bind(instance);
        for (row, history_event) in chunk.iter().enumerate() {
            insert = insert.bind((from + chunk_index * ROWS_PER_INSERT + row) as i64).bind(encode(history_event));
        }
        insert.execute(&mut **tx).await?;
    }
    Ok(())
}

pub(crate) fn turn_request(
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
pub(crate) struct NewInstance<'a> {
    pub(crate) project: &'a ProjectId,
    pub(crate) app_id: &'a str,
    pub(crate) instance_id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) input: Option<String>,
    pub(crate) start_at: i64,
    pub(crate) parent: Option<pb::ParentInstanceInfo>,
    pub(crate) trace: InstanceTrace,
}

/// Creates the instance; when `to` is given and it is due now, its first turn is leased to that stream at
/// once, and returned.
pub(crate) async fn create(
    tx: &mut Tx,
    new: NewInstance<'_>,
    to: Option<&Target>,
) -> Result<Option<Handed>, WorkflowError> {
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
         turn_started_at, trace_parent, traceparent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $10, $14, $15)",
    )
    .bind(new.project.as_str())
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
    .bind(new.trace.parent.as_deref())
    .bind(new.trace.own.as_deref())
    .execute(&mut **tx)
    .await?;
    let started =
        execution_started(new.instance_id, &execution_id, new.name, new.input, new.parent, new.app_id, &new.trace);
    let token = lease.as_ref().map(|(_, token)| token.as_str());
    push_inbox(tx, new.project, new.instance_id, &started, new.start_at, token).await?;
    Ok(lease.map(|(_, token)| {
        let request = turn_request(new.instance_id, execution_id, Vec::new(), now, vec![started]);
        (WorkItem::Workflow(request), token)
    }))
}

pub(crate) fn execution_started(
    instance_id: &str,
    execution_id: &str,
    name: &str,
    input: Option<String>,
    parent: Option<pb::ParentInstanceInfo>,
    app_id: &str,
    trace: &InstanceTrace,
) -> pb::HistoryEvent {
    let mut execution = pb::ExecutionStartedEvent {
        name: name.to_owned(),
        input,
        workflow_instance: Some(pb::WorkflowInstance {
            instance_id: instance_id.to_owned(),
            execution_id: Some(execution_id.to_owned()),
        }),
        parent_instance: parent,
        ..Default::default()
    };
    trace.describe(&mut execution);
    let mut started = event(-1, EventType::ExecutionStarted(execution));
    // The Python worker learns its own App ID from the router of ExecutionStarted.
    started.router = Some(pb::TaskRouter { source_app_id: app_id.to_owned(), ..Default::default() });
    started
}
