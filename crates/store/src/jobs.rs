//! Jobs apps scheduled (Dapr's jobs API): kept per (project, App ID, name) until their last occurrence, and
//! claimed when due by whichever worker asks first. A claim is a lease: a worker that dies mid-fire leaves the
//! occurrence to be fired again when the lease runs out (at least once), and a worker whose lease ran out cannot
//! overwrite what the next one did (every update names the lease it holds).

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::paging::{KeyColumn, Keyset, Value};
use crate::{now_millis, Engine, Error, Page, PageRequest, ProjectId, Result, Store, Tx};

/// A stored job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredJob {
    /// Its project.
    pub project_id: ProjectId,
    /// The App ID that scheduled it, and that its triggers reach.
    pub app_id: String,
    /// Its name, unique per App ID.
    pub name: String,
    /// The job as scheduled (JSON of `outrigger_jobs::JobSpec`).
    pub spec: String,
    /// When it is next tried (Unix milliseconds).
    pub due_at: i64,
    /// When the occurrence being tried fell due.
    pub occurrence_due: i64,
    /// Occurrences done (fired, or given up).
    pub fired: i64,
    /// Failed tries of the current occurrence.
    pub tries: i64,
    /// Failed tries in all.
    pub failures: i64,
    /// The lease a claim holds, if claimed.
    pub lease_owner: Option<String>,
    /// When the last try happened.
    pub last_fired_at: Option<i64>,
    /// What the last try gave.
    pub last_outcome: Option<String>,
    /// When it was scheduled.
    pub created_at: i64,
}

/// The `app_id` of the rows that fire `bindings.cron` components (named by `name`): no App ID is empty. A cron
/// binding reaches every App ID its component is scoped to, which the scheduler reads when it fires.
const CRON_BINDING_ROW: &str = "";

const COLUMNS: &str = "project_id, app_id, name, spec, due_at, occurrence_due, fired, tries, failures, lease_owner, \
                       last_fired_at, last_outcome, created_at";
const BY_APP_AND_NAME: &[KeyColumn] = &[KeyColumn::Text("app_id"), KeyColumn::Text("name")];

fn job_from_row(row: &AnyRow) -> Result<StoredJob> {
    Ok(StoredJob {
        project_id: ProjectId::of(row.try_get("project_id")?),
        app_id: row.try_get("app_id")?,
        name: row.try_get("name")?,
        spec: row.try_get("spec")?,
        due_at: row.try_get("due_at")?,
        occurrence_due: row.try_get("occurrence_due")?,
        fired: row.try_get("fired")?,
        tries: row.try_get("tries")?,
        failures: row.try_get("failures")?,
        lease_owner: row.try_get("lease_owner")?,
        last_fired_at: row.try_get("last_fired_at")?,
        last_outcome: row.try_get("last_outcome")?,
        created_at: row.try_get("created_at")?,
    })
}

/// What became of one try of a claimed job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TryOutcome {
    /// Try again (a retry, or the next occurrence) at `due_at`.
    Next {
        /// When.
        due_at: i64,
        /// When the occurrence then tried fell due.
        occurrence_due: i64,
        /// Occurrences done.
        fired: i64,
        /// Failed tries of that occurrence so far.
        tries: i64,
        /// Whether this try failed.
        failed: bool,
        /// What this try gave, for the record.
        outcome: String,
    },
    /// The job is over: its row goes.
    Over,
}

impl StoredJob {
    /// For a row that fires a `bindings.cron` component, the component's name.
    pub fn cron_binding(&self) -> Option<&str> {
        (self.app_id == CRON_BINDING_ROW).then_some(self.name.as_str())
    }
}

impl Tx {
    // === jobs ===

    /// Schedules a job whose first try is due at `due_at`; a job of that name is replaced only when
    /// `overwrite` (else `AlreadyExists`).
    pub async fn put_job(
        &mut self,
        project: &ProjectId,
        app_id: &str,
        name: &str,
        spec: &str,
        due_at: i64,
        overwrite: bool,
    ) -> Result<()> {
        if overwrite {
            sqlx::query("DELETE FROM jobs WHERE project_id = $1 AND app_id = $2 AND name = $3")
                .bind(project.as_str())
                .bind(app_id)
                .bind(name)
                .execute(&mut *self.tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO jobs (project_id, app_id, name, spec, due_at, occurrence_due, fired, tries, failures, created_at) \
             VALUES ($1, $2, $3, $4, $5, $5, 0, 0, 0, $6)",
        )
        .bind(project.as_str())
        .bind(app_id)
        .bind(name)
        .bind(spec)
        .bind(due_at)
        .bind(now_millis())
        .execute(&mut *self.tx)
        .await
        .map_err(|err| crate::taken_or_failed(err, "job", name))?;
        Ok(())
    }

    /// One job of the App ID, or `None`.
    pub async fn job(&mut self, project: &ProjectId, app_id: &str, name: &str) -> Result<Option<StoredJob>> {
        let row =
            sqlx::query(&format!("SELECT {COLUMNS} FROM jobs WHERE project_id = $1 AND app_id = $2 AND name = $3"))
                .bind(project.as_str())
                .bind(app_id)
                .bind(name)
                .fetch_optional(&mut *self.tx)
                .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Every job of the App ID, by name.
    pub async fn app_jobs(&mut self, project: &ProjectId, app_id: &str) -> Result<Vec<StoredJob>> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM jobs WHERE project_id = $1 AND app_id = $2 ORDER BY name"))
                .bind(project.as_str())
                .bind(app_id)
                .fetch_all(&mut *self.tx)
                .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// A page of the project's jobs, by App ID then name; of one App ID when `app_id` is given.
    pub async fn page_jobs(
        &mut self,
        project: &ProjectId,
        app_id: Option<&str>,
        request: &PageRequest,
    ) -> Result<Page<StoredJob>> {
        let mut listing = Keyset::new("jobs", COLUMNS, BY_APP_AND_NAME)
            .filter("project_id = ?", Value::Text(project.as_str().to_owned()));
        listing = match app_id {
            Some(app_id) => listing.filter("app_id = ?", Value::Text(app_id.to_owned())),
            None => listing.filter("app_id <> ?", Value::Text(CRON_BINDING_ROW.to_owned())),
        };
        listing.page(self, request, job_from_row).await
    }

    /// Deletes a job; `NotFound` when there is none.
    pub async fn delete_job(&mut self, project: &ProjectId, app_id: &str, name: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM jobs WHERE project_id = $1 AND app_id = $2 AND name = $3")
            .bind(project.as_str())
            .bind(app_id)
            .bind(name)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::NotFound { what: "job", name: name.to_owned() });
        }
        Ok(())
    }

    /// Deletes the App ID's jobs whose names start with `prefix` (all of them for an empty prefix); how many.
    pub async fn delete_jobs_by_prefix(&mut self, project: &ProjectId, app_id: &str, prefix: &str) -> Result<u64> {
        // A comparison of the name's start, not LIKE: a prefix may hold `%` and `_`.
        let deleted = sqlx::query(
            "DELETE FROM jobs WHERE project_id = $1 AND app_id = $2 AND substr(name, 1, CAST($3 AS INTEGER)) = $4",
        )
        .bind(project.as_str())
        .bind(app_id)
        .bind(i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX))
        .bind(prefix)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        Ok(deleted)
    }

    /// Fires the `bindings.cron` component `component` by `spec` from `due_at` on, in place of what fired it before.
    pub async fn put_cron_binding(
        &mut self,
        project: &ProjectId,
        component: &str,
        spec: &str,
        due_at: i64,
    ) -> Result<()> {
        self.put_job(project, CRON_BINDING_ROW, component, spec, due_at, true).await
    }

    /// Stops firing the component `component` (nothing happens when it was not a `bindings.cron` component).
    pub async fn delete_cron_binding(&mut self, project: &ProjectId, component: &str) -> Result<()> {
        match self.delete_job(project, CRON_BINDING_ROW, component).await {
            Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

impl Store {
    /// Claims up to `limit` jobs due at `now` (of the projects of `pool`, or of every project), leasing them to
    /// `owner` until `lease_until`. Two workers never claim the same job while its lease runs.
    pub async fn claim_due_jobs(
        &self,
        now: i64,
        owner: &str,
        lease_until: i64,
        limit: i64,
        pool: Option<&str>,
    ) -> Result<Vec<StoredJob>> {
        let lock = match self.engine {
            Engine::Postgres => " FOR UPDATE SKIP LOCKED",
            Engine::Sqlite => "",
        };
        let in_pool = if pool.is_some() { " AND project_id IN (SELECT id FROM projects WHERE pool = $5)" } else { "" };
        let sql = format!(
            "UPDATE jobs SET lease_owner = $1, lease_until = $2 \
             WHERE (project_id, app_id, name) IN ( \
                 SELECT project_id, app_id, name FROM jobs \
                 WHERE due_at <= $3 AND (lease_until IS NULL OR lease_until < $3){in_pool} \
                 ORDER BY due_at LIMIT $4{lock}) \
             RETURNING {COLUMNS}"
        );
        let mut query = sqlx::query(&sql).bind(owner).bind(lease_until).bind(now).bind(limit);
        if let Some(pool) = pool {
            query = query.bind(pool);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Records what a try of a job claimed by `owner` gave; `false` when the lease was lost (the job was
    /// claimed again, replaced or deleted meanwhile), in which case nothing changes.
    pub async fn finish_job_try(&self, job: &StoredJob, owner: &str, outcome: &TryOutcome) -> Result<bool> {
        let key = (job.project_id.as_str(), &job.app_id, &job.name);
        let changed = match outcome {
            TryOutcome::Over => {
                sqlx::query("DELETE FROM jobs WHERE project_id = $1 AND app_id = $2 AND name = $3 AND lease_owner = $4")
                    .bind(key.0)
                    .bind(key.1)
                    .bind(key.2)
                    .bind(owner)
                    .execute(&self.pool)
                    .await?
            }
            TryOutcome::Next { due_at, occurrence_due, fired, tries, failed, outcome } => {
                sqlx::query(
                    "UPDATE jobs SET due_at = $5, occurrence_due = $6, fired = $7, tries = $8, \
                     failures = failures + $9, last_fired_at = $10, last_outcome = $11, lease_owner = NULL, \
                     lease_until = NULL \
                     WHERE project_id = $1 AND app_id = $2 AND name = $3 AND lease_owner = $4",
                )
                .bind(key.0)
                .bind(key.1)
                .bind(key.2)
                .bind(owner)
                .bind(due_at)
                .bind(occurrence_due)
                .bind(fired)
                .bind(tries)
                .bind(i64::from(*failed))
                .bind(now_millis())
                .bind(outcome)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(changed.rows_affected() > 0)
    }

    /// When the next job falls due (of `pool`'s projects, or of every project), if any is waiting.
    pub async fn next_job_due(&self, pool: Option<&str>) -> Result<Option<i64>> {
        let sql = match pool {
            Some(_) => {
                "SELECT MIN(due_at) AS due FROM jobs WHERE project_id IN (SELECT id FROM projects WHERE pool = $1)"
            }
            None => "SELECT MIN(due_at) AS due FROM jobs",
        };
        let mut query = sqlx::query(sql);
        if let Some(pool) = pool {
            query = query.bind(pool);
        }
        let row = query.fetch_one(&self.pool).await?;
        Ok(row.try_get("due")?)
    }
}
