//! The client side of the protocol: starting instances, reading their state, raising events, terminating,
//! suspending, resuming, purging and waiting for a status.

use super::*;
use outrigger_store::ProjectId;

impl Engine {
    /// `StartInstance`: a new instance of `name` for `app_id`; its ID.
    pub async fn start(
        &self,
        project: &ProjectId,
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
        let trace = InstanceTrace::starting(request.parent_trace_context.as_ref().map(|c| c.trace_parent.as_str()));
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
            trace,
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
        project: &ProjectId,
        instance: &str,
        with_payloads: bool,
    ) -> Result<Option<pb::WorkflowState>, WorkflowError> {
        let row = sqlx::query(
            "SELECT name, status, input, output, custom_status, failure, execution_id, parent_instance_id, \
             created_at, updated_at, completed_at FROM wf_instances WHERE project_id = $1 AND instance_id = $2",
        )
        .bind(project.as_str())
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
    pub(crate) async fn deliver(
        &self,
        project: &ProjectId,
        instance: &str,
        event: pb::HistoryEvent,
    ) -> Result<(), WorkflowError> {
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
        project: &ProjectId,
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
        project: &ProjectId,
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
        project: &ProjectId,
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
            .bind(project.as_str())
            .bind(instance)
            .bind(to as i64)
            .bind(now_ms())
            .bind(from as i64)
            .execute(&self.pool)
            .await?;
        self.watchers.changed(project, instance);
        Ok(())
    }

    pub(crate) async fn children(&self, project: &ProjectId, instance: &str) -> Result<Vec<String>, WorkflowError> {
        Ok(sqlx::query_scalar("SELECT instance_id FROM wf_instances WHERE project_id = $1 AND parent_instance_id = $2")
            .bind(project.as_str())
            .bind(instance)
            .fetch_all(&self.pool)
            .await?)
    }

    /// `PurgeInstances` of one instance (and, with `recursive`, its children); how many were deleted. An
    /// instance purged with `force` before it ended ends here: its span (the project named `project_name`) is
    /// exported as terminated.
    pub async fn purge(
        &self,
        (project, project_name): (&ProjectId, &str),
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
                .bind(project.as_str())
                .bind(instance)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if !is_terminal(found.status) {
            let owner = spans::SpanOwner { project: project_name, app_id: &found.app_id };
            spans::instance_ended(owner, (instance, &found.name), &found.trace, found.created_at, Status::Terminated);
        }
        self.histories.forget(project, instance);
        self.watchers.changed(project, instance);
        let mut deleted = 1;
        if recursive {
            for child in self.children(project, instance).await? {
                deleted += Box::pin(self.purge((project, project_name), &child, true, force)).await?;
            }
        }
        Ok(deleted)
    }

    /// Waits until `done` holds for the instance's status (or it is gone); its state then.
    pub async fn wait(
        &self,
        project: &ProjectId,
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
}
