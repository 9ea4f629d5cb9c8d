//! Completing a turn: the app's answer is committed with the events its actions produce (activities,
//! timers, children, events sent to other instances, termination, continue-as-new), all in one transaction
//! under the turn's completion token.

use super::*;
use outrigger_store::ProjectId;

impl Engine {
    /// `CompleteOrchestratorTask` / `CompleteWorkflowTask`: commits the turn and applies its actions; work
    /// they make (activities, a child's first turn, the next turn) goes to a stream here when there is one.
    /// What the turn began or ended, for the metrics; none when the answer was stale. `project_name` labels the
    /// instance's span when the turn ends it.
    pub async fn complete_turn(
        &self,
        project: &ProjectId,
        project_name: &str,
        response: pb::WorkflowResponse,
    ) -> Result<Option<TurnReport>, WorkflowError> {
        let instance = response.instance_id.clone();
        let mut tx = self.pool.begin().await?;
        let Some(answered) = answered_turn(&mut tx, project, &instance, &response.completion_token).await? else {
            tracing::debug!(%instance, "workflow result with a stale token dropped");
            return Ok(None);
        };
        let AnsweredTurn { found, started_at, token, history_len } = answered;
        // Exactly the events the turn was given.
        let given = sqlx::query(
            "DELETE FROM wf_inbox WHERE project_id = $1 AND instance_id = $2 AND turn_token = $3 \
             RETURNING id, event, visible_at",
        )
        .bind(project.as_str())
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
        let (given, execution_due) = given_events(given)?;
        turn.committed.extend(given);
        let Decision { decided, finished } = turn.apply(response.actions).await?;
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
                    .bind(project.as_str())
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
        .bind(project.as_str())
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
            others_changed |=
                self.tell_parent(&mut tx, project, &instance, &found, finished, now, &mut handoffs).await?;
        }
        tx.commit().await?;
        if let Some(status) = decided.filter(|_| terminal) {
            let owner = spans::SpanOwner { project: project_name, app_id: &found.app_id };
            let status = Status::try_from(status).unwrap_or(Status::Failed);
            spans::instance_ended(owner, (&instance, &found.name), &found.trace, found.created_at, status);
        }
        // daprd times an execution from its first turn: the first event of its history.
        let first_turn = match &known {
            _ if !terminal => None,
            _ if history_len == 0 => Some(started_at),
            Some(history) => history.first().and_then(|first| first.timestamp.as_ref()).map(millis),
            None => self.first_turn_started(project, &instance).await,
        };
        let ended = decided.filter(|_| terminal).map(|status| {
            let status = Status::try_from(status).unwrap_or(Status::Failed);
            (status, elapsed_ms(first_turn.unwrap_or(started_at), now))
        });
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
        Ok(Some(TurnReport {
            app_id: found.app_id,
            workflow_name: found.name,
            scheduling_latency: execution_due.map(|due| elapsed_ms(due, started_at)),
            ended,
        }))
    }

    /// When the instance's first turn began: the time of its history's first event (`WorkflowStarted`). Only
    /// the metrics want it: a failure to read it is no failure of the turn.
    async fn first_turn_started(&self, project: &ProjectId, instance: &str) -> Option<i64> {
        let first: Result<Option<String>, sqlx::Error> =
            sqlx::query_scalar("SELECT event FROM wf_history WHERE project_id = $1 AND instance_id = $2 AND seq = 0")
                .bind(project.as_str())
                .bind(instance)
                .fetch_optional(&self.pool)
                .await;
        let first = first.map_err(|err| tracing::debug!(error = %err, "reading a history's first event failed"));
        let event: pb::HistoryEvent = decode(&first.ok()??).ok()?;
        event.timestamp.as_ref().map(millis)
    }

    /// A finished child's outcome, as an event for its parent if it has one still running; whether that made
    /// work no stream here was handed.
    #[allow(clippy::too_many_arguments)]
    async fn tell_parent(
        &self,
        tx: &mut Tx,
        project: &ProjectId,
        instance: &str,
        found: &Instance,
        finished: Option<pb::CompleteWorkflowAction>,
        now: i64,
        handoffs: &mut Handoffs,
    ) -> Result<bool, WorkflowError> {
        let (Some(parent), Some(task)) = (&found.parent_instance_id, found.parent_task_id) else { return Ok(false) };
        let task_scheduled_id = i32::try_from(task).unwrap_or_default();
        let outcome = match finished.filter(|f| f.workflow_status == Status::Completed as i32) {
            Some(done) => EventType::ChildWorkflowInstanceCompleted(pb::ChildWorkflowInstanceCompletedEvent {
                task_scheduled_id,
                result: done.result,
                ..Default::default()
            }),
            None => EventType::ChildWorkflowInstanceFailed(pb::ChildWorkflowInstanceFailedEvent {
                task_scheduled_id,
                failure_details: Some(child_failure(tx, project, instance).await?),
                ..Default::default()
            }),
        };
        if find(tx, project, parent).await?.is_none_or(|p| is_terminal(p.status)) {
            return Ok(false);
        }
        let arrival = (parent.as_str(), found.app_id.as_str());
        let handed = self.arrive(tx, project, arrival, &event(-1, outcome), now, handoffs).await?;
        Ok(!handed)
    }
}

/// The inbox rows a turn was given (`id`, `event`, `visible_at`) as events in the order they arrived, and when
/// the execution they start was due (its `ExecutionStarted`'s `visible_at`), if they start one.
fn given_events(mut rows: Vec<sqlx::any::AnyRow>) -> Result<(Vec<pb::HistoryEvent>, Option<i64>), WorkflowError> {
    rows.sort_by_key(|row| row.try_get::<i64, _>("id").unwrap_or_default());
    let mut execution_due = None;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        let event: pb::HistoryEvent = decode(&row.try_get::<String, _>("event")?)?;
        if matches!(event.event_type, Some(EventType::ExecutionStarted(_))) && execution_due.is_none() {
            execution_due = Some(row.try_get::<i64, _>("visible_at")?);
        }
        events.push(event);
    }
    Ok((events, execution_due))
}

/// The instance whose current turn an answer completes, as the answer found it.
struct AnsweredTurn {
    found: Instance,
    started_at: i64,
    token: String,
    history_len: usize,
}

/// The turn `completion_token` completes, if it is still the instance's current one. Workers that know no
/// completion tokens (the JS SDK's) answer the instance's current turn, as in daprd.
async fn answered_turn(
    tx: &mut Tx,
    project: &ProjectId,
    instance: &str,
    completion_token: &str,
) -> Result<Option<AnsweredTurn>, WorkflowError> {
    let row = sqlx::query(&format!(
        "SELECT {INSTANCE_COLUMNS}, turn_started_at, turn_token, history_len FROM wf_instances \
         WHERE project_id = $1 AND instance_id = $2 AND turn_token IS NOT NULL AND (turn_token = $3 OR $3 = '')"
    ))
    .bind(project.as_str())
    .bind(instance)
    .bind(completion_token)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(AnsweredTurn {
        found: instance_from_row(&row)?,
        started_at: row.try_get("turn_started_at")?,
        token: row.try_get("turn_token")?,
        history_len: row.try_get::<i64, _>("history_len")? as usize,
    }))
}

/// What a turn's actions decided: the instance's new status (only what the turn decides changes it: a suspend
/// or resume committed meanwhile must stand), and the completion, when it finished.
struct Decision {
    decided: Option<i32>,
    finished: Option<pb::CompleteWorkflowAction>,
}

/// Why a child did not complete, for its parent.
pub(crate) async fn child_failure(
    tx: &mut Tx,
    project: &ProjectId,
    instance: &str,
) -> Result<pb::TaskFailureDetails, WorkflowError> {
    let row = sqlx::query("SELECT status, failure FROM wf_instances WHERE project_id = $1 AND instance_id = $2")
        .bind(project.as_str())
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

pub(crate) fn workflow_started(at: i64) -> pb::HistoryEvent {
    pb::HistoryEvent {
        event_id: -1,
        timestamp: Some(timestamp(at)),
        router: None,
        event_type: Some(EventType::WorkflowStarted(pb::WorkflowStartedEvent::default())),
    }
}

/// A turn being committed: its transaction, the events it adds to the history, the activities it schedules
/// and the work it leases to a stream here.
pub(crate) struct Turn<'a> {
    pub(crate) tx: Tx,
    pub(crate) project: &'a ProjectId,
    pub(crate) instance: &'a str,
    pub(crate) found: &'a Instance,
    /// The execution the turn's actions belong to (a continue-as-new starts another).
    pub(crate) execution_id: String,
    pub(crate) committed: Vec<pb::HistoryEvent>,
    pub(crate) activities: Vec<pb::ActivityRequest>,
    pub(crate) target: Option<&'a Target>,
    pub(crate) handoffs: Handoffs,
    /// Work was made for other instances without being handed to a stream.
    pub(crate) others_changed: bool,
    pub(crate) continued: bool,
}

impl Turn<'_> {
    pub(crate) fn workflow_instance(&self) -> pb::WorkflowInstance {
        pb::WorkflowInstance { instance_id: self.instance.to_owned(), execution_id: Some(self.execution_id.clone()) }
    }

    /// Applies the turn's actions in order.
    async fn apply(&mut self, actions: Vec<pb::WorkflowAction>) -> Result<Decision, WorkflowError> {
        let mut decision = Decision { decided: None, finished: None };
        for action in actions {
            let id = action.id;
            match action.workflow_action_type {
                Some(WorkflowActionType::ScheduleTask(task)) => self.schedule_task(id, task),
                Some(WorkflowActionType::CreateTimer(timer)) => self.create_timer(id, timer).await?,
                Some(WorkflowActionType::CreateChildWorkflow(child)) => self.create_child(id, child).await?,
                Some(WorkflowActionType::SendEvent(send)) => self.send_event(send).await?,
                Some(WorkflowActionType::TerminateWorkflow(terminate)) => self.terminate_other(terminate).await?,
                Some(WorkflowActionType::CompleteWorkflow(complete)) => {
                    if complete.workflow_status == Status::ContinuedAsNew as i32 {
                        self.continue_as_new(complete).await?;
                        decision.decided = Some(Status::Running as i32);
                    } else {
                        decision.decided = Some(complete.workflow_status);
                        self.committed.push(event(
                            id,
                            EventType::ExecutionCompleted(pb::ExecutionCompletedEvent {
                                workflow_status: complete.workflow_status,
                                result: complete.result.clone(),
                                failure_details: complete.failure_details.clone(),
                            }),
                        ));
                        decision.finished = Some(complete);
                    }
                }
                Some(WorkflowActionType::WorkflowVersionNotAvailable(_)) => {
                    decision.decided = Some(Status::Stalled as i32)
                }
                Some(WorkflowActionType::CreateDetachedWorkflow(detached)) => self.create_detached(detached).await?,
                None => {}
            }
        }
        Ok(decision)
    }

    pub(crate) fn schedule_task(&mut self, id: i32, task: pb::ScheduleTaskAction) {
        let task_execution_id = if task.task_execution_id.is_empty() { new_token() } else { task.task_execution_id };
        self.committed.push(event(
            id,
            EventType::TaskScheduled(pb::TaskScheduledEvent {
                name: task.name.clone(),
                version: task.version.clone(),
                input: task.input.clone(),
                task_execution_id: task_execution_id.clone(),
                parent_trace_context: self.found.trace.context(),
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
            parent_trace_context: self.found.trace.context(),
            ..Default::default()
        });
    }

    /// Stores the scheduled activities, leased to the turn's stream when there is one here.
    pub(crate) async fn insert_activities(&mut self) -> Result<(), WorkflowError> {
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
                .bind(self.project.as_str())
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

    pub(crate) async fn create_timer(&mut self, id: i32, timer: pb::CreateTimerAction) -> Result<(), WorkflowError> {
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
    pub(crate) async fn start_instance(&mut self, new: NewInstance<'_>) -> Result<(), WorkflowError> {
        let first_turn = create(&mut self.tx, new, self.target).await?;
        match self.target {
            Some(target) => self.handoffs.add(target, first_turn),
            None => self.others_changed = true,
        }
        Ok(())
    }

    pub(crate) async fn create_child(
        &mut self,
        id: i32,
        child: pb::CreateChildWorkflowAction,
    ) -> Result<(), WorkflowError> {
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
            trace: InstanceTrace::starting(self.found.trace.own.as_deref()),
        })
        .await
    }

    pub(crate) async fn create_detached(
        &mut self,
        detached: pb::CreateDetachedWorkflowAction,
    ) -> Result<(), WorkflowError> {
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
            trace: InstanceTrace::starting(self.found.trace.own.as_deref()),
        })
        .await
    }

    pub(crate) async fn send_event(&mut self, send: pb::SendEventAction) -> Result<(), WorkflowError> {
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

    pub(crate) async fn terminate_other(
        &mut self,
        terminate: pb::TerminateWorkflowAction,
    ) -> Result<(), WorkflowError> {
        let terminated = EventType::ExecutionTerminated(pb::ExecutionTerminatedEvent {
            input: terminate.reason,
            recurse: terminate.recurse,
        });
        push_inbox(&mut self.tx, self.project, &terminate.instance_id, &event(-1, terminated), now_ms(), None).await?;
        self.others_changed = true;
        Ok(())
    }

    /// Continue-as-new: the history starts over with a new execution, its input, and the carried-over events.
    pub(crate) async fn continue_as_new(&mut self, complete: pb::CompleteWorkflowAction) -> Result<(), WorkflowError> {
        for table in ["wf_history", "wf_activities"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE project_id = $1 AND instance_id = $2"))
                .bind(self.project.as_str())
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
            .bind(self.project.as_str())
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
            &self.found.trace,
        );
        let now = now_ms();
        push_inbox(&mut self.tx, self.project, self.instance, &started, now, None).await?;
        for carried in complete.carryover_events {
            push_inbox(&mut self.tx, self.project, self.instance, &carried, now, None).await?;
        }
        Ok(())
    }
}

pub(crate) fn timer_origin(origin: pb::create_timer_action::Origin) -> pb::timer_created_event::Origin {
    use pb::create_timer_action::Origin as From;
    use pb::timer_created_event::Origin as To;
    match origin {
        From::CreateTimer(origin) => To::CreateTimer(origin),
        From::ExternalEvent(origin) => To::ExternalEvent(origin),
        From::ActivityRetry(origin) => To::ActivityRetry(origin),
        From::ChildWorkflowRetry(origin) => To::ChildWorkflowRetry(origin),
    }
}
