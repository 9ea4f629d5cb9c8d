//! The scheduler: fires the jobs apps scheduled (Dapr's jobs API) at their App IDs' apps, as daprd does —
//! `POST /job/{name}` with the job's data — and follows each job's failure policy when the app does not accept;
//! and fires `bindings.cron` components ([`crate::bindings::cron`]) the same way.
//!
//! Jobs are rows of the control-plane database. Every worker runs a scheduler; each claims due rows under a
//! lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, SQLite's single writer on the embedded default), so any number
//! of workers fire each occurrence once, and an occurrence whose worker died mid-fire is fired again once its
//! lease runs out (at least once). The cost does not grow with the number of projects: one indexed claim and,
//! when nothing is due, one indexed look at the next due time, per poll.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use outrigger_jobs::JobSpec;
use outrigger_outbound::{AppChannel, AppClient, Egress};
use outrigger_store::{Store, StoredJob, TryOutcome};
use tokio_util::sync::CancellationToken;

/// The longest the scheduler sleeps between two looks: a job scheduled in another process is fired at most this
/// late (plus the time the app takes).
const POLL: Duration = Duration::from_millis(250);

/// Most jobs one claim takes.
const BATCH: i64 = 256;

/// Most triggers in flight at once.
const CONCURRENCY: usize = 128;

/// How long a trigger may take before it counts as failed.
const TRIGGER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a claim holds a job: a worker that died holding it leaves it to the next claim after this.
const LEASE: Duration = Duration::from_secs(60);

/// How long to pause after the database failed, before looking again.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Fires due jobs.
pub struct Scheduler {
    store: Store,
    /// Only the projects of this worker pool (every project when `None`, the embedded default).
    pool: Option<String>,
    client: AppClient,
    /// Names this scheduler's claims.
    owner: String,
    /// Where triggers are recorded.
    api_log: outrigger_telemetry::ApiLog,
}

impl Scheduler {
    /// A scheduler of the jobs of `pool`'s projects (of every project when `None`), calling apps through `egress`.
    pub fn new(store: Store, pool: Option<String>, egress: &Egress) -> Scheduler {
        let owner = format!("scheduler-{}", uuid::Uuid::new_v4().simple());
        Scheduler { store, pool, client: egress.app_client(), owner, api_log: outrigger_telemetry::ApiLog::disabled() }
    }

    /// The same scheduler recording each trigger in `api_log`.
    pub fn with_api_log(mut self, api_log: outrigger_telemetry::ApiLog) -> Scheduler {
        self.api_log = api_log;
        self
    }

    /// Fires due jobs until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        tracing::info!(pool = ?self.pool, "job scheduler started");
        loop {
            let pause = match self.fire_due().await {
                Ok(true) => continue,
                Ok(false) => self.until_next_due().await,
                Err(err) => {
                    tracing::warn!(error = %err, "claiming due jobs failed; looking again shortly");
                    PAUSE_AFTER_FAILURE
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Claims what is due and fires it; whether anything was.
    async fn fire_due(&self) -> Result<bool, outrigger_store::Error> {
        let now = Utc::now().timestamp_millis();
        let lease_until = now + i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
        let claimed = self.store.claim_due_jobs(now, &self.owner, lease_until, BATCH, self.pool.as_deref()).await?;
        if claimed.is_empty() {
            return Ok(false);
        }
        futures_util::stream::iter(claimed).for_each_concurrent(CONCURRENCY, |job| self.fire(job)).await;
        Ok(true)
    }

    /// How long until the next job falls due, at most [`POLL`].
    async fn until_next_due(&self) -> Duration {
        match self.store.next_job_due(self.pool.as_deref()).await {
            Ok(Some(due)) => {
                let wait = u64::try_from(due - Utc::now().timestamp_millis()).unwrap_or_default();
                Duration::from_millis(wait).min(POLL)
            }
            Ok(None) | Err(_) => POLL,
        }
    }

    /// One try of a claimed job, and what follows from it.
    async fn fire(&self, job: StoredJob) {
        let late = Utc::now().timestamp_millis().saturating_sub(job.due_at).max(0);
        let kind = if job.cron_binding().is_some() { "cron-binding" } else { "job" };
        outrigger_telemetry::metrics().scheduler_lag(kind, std::time::Duration::from_millis(late.unsigned_abs()));
        let outcome = match serde_json::from_str::<JobSpec>(&job.spec) {
            Ok(spec) => {
                let result = self.trigger(&job, &spec).await;
                next_after_try(&job, &spec, result, Utc::now())
            }
            Err(err) => {
                tracing::error!(job = %job.name, error = %err, "a stored job cannot be read; it is removed");
                TryOutcome::Over
            }
        };
        match self.store.finish_job_try(&job, &self.owner, &outcome).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(job = %job.name, "the job changed while it fired (replaced, deleted or claimed again)")
            }
            Err(err) => {
                tracing::warn!(job = %job.name, error = %err, "recording a job's try failed; it fires again when its lease ends")
            }
        }
    }

    /// Sends the trigger to the App ID's app: `Ok` when it accepted (2xx), else what went wrong.
    async fn trigger(&self, job: &StoredJob, spec: &JobSpec) -> Result<(), String> {
        if let Some(component) = job.cron_binding() {
            return crate::bindings::cron::fire((&self.store, &self.api_log), &self.client, &job.project_id, component)
                .await;
        }
        let app = self.store.begin().await.map_err(|err| err.to_string())?.app_id(&job.project_id, &job.app_id).await;
        let app = app.map_err(|err| format!("App ID {}: {err}", job.app_id))?;
        let Some(endpoint) = app.app_endpoint else {
            return Err(format!("App ID {} has no app endpoint to receive the job", job.app_id));
        };
        if app.app_protocol == "grpc" {
            return Err(format!("App ID {} speaks gRPC; jobs reach apps over HTTP only in this version", job.app_id));
        }
        let channel = AppChannel { endpoint, app_token: app.app_token };
        let path = format!("/job/{}", AppChannel::path_segment(&job.name));
        let body = spec.data.as_ref().map(outrigger_jobs::JobData::body).unwrap_or_default();
        let request = channel.call(reqwest::Method::POST, &path, TRIGGER_TIMEOUT).body("application/json", body);
        let to = crate::app_calls::ToApp {
            log: &self.api_log,
            project_id: &job.project_id,
            app_id: &job.app_id,
            api: "jobs",
            component: None,
            target: Some(&job.name),
        };
        let answer =
            to.send(&self.client, request, None).await.map_err(|err| format!("the app could not be reached: {err}"))?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(format!("the app answered {}", answer.status))
        }
    }
}

/// What follows a try of `job` that gave `result` at `now`: the next occurrence, a retry, or the end.
fn next_after_try(job: &StoredJob, spec: &JobSpec, result: Result<(), String>, now: DateTime<Utc>) -> TryOutcome {
    let occurrence_due = DateTime::from_timestamp_millis(job.occurrence_due).unwrap_or(now);
    let tries = job.tries + 1;
    let (failed, outcome) = match &result {
        Ok(()) => (false, "delivered".to_owned()),
        Err(reason) => (true, reason.clone()),
    };
    if failed {
        tracing::info!(job = %job.name, app_id = %job.app_id, tries, reason = %outcome, "a job's trigger failed");
        let retry = spec.failure_policy().retry_at(u32::try_from(tries).unwrap_or(u32::MAX), now);
        if let Some(retry) = retry {
            let due_at = retry.timestamp_millis();
            return TryOutcome::Next {
                due_at,
                occurrence_due: job.occurrence_due,
                fired: job.fired,
                tries,
                failed,
                outcome,
            };
        }
    }
    // This occurrence is done (delivered, or given up): on to the next, if any.
    let fired = job.fired + 1;
    match spec.next_due(occurrence_due, u32::try_from(fired).unwrap_or(u32::MAX)) {
        Some(next) => {
            let due_at = next.timestamp_millis();
            TryOutcome::Next { due_at, occurrence_due: due_at, fired, tries: 0, failed, outcome }
        }
        None => TryOutcome::Over,
    }
}

#[cfg(test)]
mod tests {
    use outrigger_jobs::FailurePolicy;
    use outrigger_store::ProjectId;

    use super::*;

    fn job(spec: &JobSpec, occurrence_due: i64, fired: i64, tries: i64) -> StoredJob {
        StoredJob {
            project_id: ProjectId::received("prj_1".to_owned()),
            app_id: "orders".into(),
            name: "nightly".into(),
            spec: serde_json::to_string(spec).unwrap(),
            due_at: occurrence_due,
            occurrence_due,
            fired,
            tries,
            failures: 0,
            lease_owner: None,
            last_fired_at: None,
            last_outcome: None,
            created_at: 0,
        }
    }

    fn every_second(repeats: Option<u32>, failure_policy: Option<FailurePolicy>) -> JobSpec {
        JobSpec {
            schedule: Some("@every 1s".into()),
            due_time: None,
            repeats,
            ttl: None,
            data: None,
            failure_policy,
            scheduled_at: 0,
        }
    }

    #[test]
    fn a_delivered_occurrence_moves_to_the_next() {
        let spec = every_second(Some(2), None);
        let now = DateTime::from_timestamp_millis(1_000).unwrap();
        let outcome = next_after_try(&job(&spec, 1_000, 0, 0), &spec, Ok(()), now);
        assert!(
            matches!(outcome, TryOutcome::Next { due_at: 2_000, fired: 1, tries: 0, failed: false, .. }),
            "{outcome:?}"
        );
        assert_eq!(next_after_try(&job(&spec, 2_000, 1, 0), &spec, Ok(()), now), TryOutcome::Over);
    }

    #[test]
    fn failures_retry_then_give_the_occurrence_up() {
        let spec = every_second(Some(5), None);
        let now = DateTime::from_timestamp_millis(1_200).unwrap();
        let failed = || Err("the app answered 500".to_owned());
        let retry = next_after_try(&job(&spec, 1_000, 0, 0), &spec, failed(), now);
        assert!(
            matches!(
                retry,
                TryOutcome::Next { due_at: 2_200, occurrence_due: 1_000, fired: 0, tries: 1, failed: true, .. }
            ),
            "{retry:?}"
        );
        // The fourth failed try gives the occurrence up: the next one comes after it.
        let given_up = next_after_try(&job(&spec, 1_000, 0, 3), &spec, failed(), now);
        assert!(
            matches!(given_up, TryOutcome::Next { due_at: 2_000, fired: 1, tries: 0, failed: true, .. }),
            "{given_up:?}"
        );
        let dropping = every_second(Some(5), Some(FailurePolicy::Drop));
        let dropped = next_after_try(&job(&dropping, 1_000, 0, 0), &dropping, failed(), now);
        assert!(matches!(dropped, TryOutcome::Next { due_at: 2_000, fired: 1, .. }), "{dropped:?}");
    }
}
