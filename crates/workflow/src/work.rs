//! Work items and their leases: claiming the next due turn or activity for a stream, renewing and releasing
//! what a stream holds, and committing an activity's result.

use super::*;
use outrigger_store::ProjectId;

impl Engine {
    /// Hands the next due turn or activity of `app_id` to the stream `owner`, leased to it.
    pub async fn claim(&self, project: &ProjectId, app_id: &str, owner: &str) -> Result<Option<Handed>, WorkflowError> {
        if let Some(turn) = self.claim_turn(project, app_id, owner).await? {
            return Ok(Some(turn));
        }
        self.claim_activity(project, app_id, owner).await
    }

    pub(crate) async fn claim_turn(
        &self,
        project: &ProjectId,
        app_id: &str,
        owner: &str,
    ) -> Result<Option<Handed>, WorkflowError> {
        let now = now_ms();
        // From the due inbox entries, not the instances: finished instances pile up, their inboxes are empty.
        // The limit inside keeps the planner on the inbox's index; looking instances up by key follows.
        let candidates: Vec<String> = sqlx::query_scalar(
            "SELECT i.instance_id FROM (SELECT DISTINCT instance_id FROM wf_inbox \
             WHERE project_id = $1 AND visible_at <= $3 LIMIT 256) due JOIN wf_instances i \
             ON i.project_id = $1 AND i.instance_id = due.instance_id \
             WHERE i.app_id = $2 AND i.lease_until < $3 LIMIT 8",
        )
        .bind(project.as_str())
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
    pub(crate) async fn arrive(
        &self,
        tx: &mut Tx,
        project: &ProjectId,
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
    pub(crate) async fn lease_turn(
        &self,
        tx: &mut Tx,
        project: &ProjectId,
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
        .bind(project.as_str())
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
                .bind(project.as_str())
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

    pub(crate) async fn claim_activity(
        &self,
        project: &ProjectId,
        app_id: &str,
        owner: &str,
    ) -> Result<Option<Handed>, WorkflowError> {
        let now = now_ms();
        let candidates = sqlx::query(
            "SELECT id, request FROM wf_activities WHERE project_id = $1 AND app_id = $2 AND lease_until < $3 ORDER BY created_at LIMIT 8",
        )
        .bind(project.as_str())
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
    pub(crate) async fn release_item(&self, owner: &str, token: &str) -> Result<(), WorkflowError> {
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
    /// the turn it makes goes to a stream here when no turn is in flight. The result as the metrics count it;
    /// none when the answer was stale. `project_name` labels the activity's span.
    pub async fn complete_activity(
        &self,
        project: &ProjectId,
        project_name: &str,
        response: pb::ActivityResponse,
    ) -> Result<Option<ActivityReport>, WorkflowError> {
        let mut tx = self.pool.begin().await?;
        // Workers that know no completion tokens (the JS SDK's) name the activity by instance and task, as in daprd.
        let rows = if response.completion_token.is_empty() {
            sqlx::query(
                "DELETE FROM wf_activities WHERE project_id = $1 AND instance_id = $2 AND task_id = $3 \
                 AND lease_until > 0 RETURNING app_id, request, created_at",
            )
            .bind(project.as_str())
            .bind(&response.instance_id)
            .bind(i64::from(response.task_id))
            .fetch_all(&mut *tx)
            .await?
        } else {
            sqlx::query(
                "DELETE FROM wf_activities WHERE project_id = $1 AND token = $2 RETURNING app_id, request, created_at",
            )
            .bind(project.as_str())
            .bind(&response.completion_token)
            .fetch_all(&mut *tx)
            .await?
        };
        let Some(row) = rows.first() else {
            tracing::debug!(instance = %response.instance_id, "activity result with a stale token dropped");
            return Ok(None);
        };
        let request: pb::ActivityRequest = decode(&row.try_get::<String, _>("request")?)?;
        let app_id: String = row.try_get("app_id")?;
        let scheduled_at: i64 = row.try_get("created_at")?;
        let failed = response.failure_details.is_some();
        let instance = request.workflow_instance.as_ref().map(|i| i.instance_id.clone()).unwrap_or_default();
        let result = match response.failure_details {
            Some(failure) => EventType::TaskFailed(pb::TaskFailedEvent {
                task_scheduled_id: request.task_id,
                failure_details: Some(failure),
                task_execution_id: request.task_execution_id.clone(),
                ..Default::default()
            }),
            None => EventType::TaskCompleted(pb::TaskCompletedEvent {
                task_scheduled_id: request.task_id,
                result: response.result,
                task_execution_id: request.task_execution_id.clone(),
                ..Default::default()
            }),
        };
        // The instance still runs: the turn that ends an instance deletes its activities in its transaction.
        let mut handoffs = Handoffs::default();
        let arrival = (instance.as_str(), app_id.as_str());
        let now = now_ms();
        self.arrive(&mut tx, project, arrival, &event(-1, result), now, &mut handoffs).await?;
        tx.commit().await?;
        // Not handed: a turn is in flight and takes the result when it ends, or no stream of the App ID is
        // here and the claim loops of other processes find it.
        self.hand_over(project, handoffs).await;
        spans::activity_ended(
            spans::SpanOwner { project: project_name, app_id: &app_id },
            &request,
            scheduled_at,
            failed,
        );
        let elapsed = elapsed_ms(scheduled_at, now);
        Ok(Some(ActivityReport { app_id, activity_name: request.name, failed, elapsed }))
    }
}
