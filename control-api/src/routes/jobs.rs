//! `/api/v1/projects/{project}/appids/{app}/jobs`: the jobs an App ID scheduled through Dapr's jobs API, with
//! what the scheduler did with them (next and last fire, failures), for people to look at and to delete.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use outrigger_jobs::JobSpec;
use outrigger_store::StoredJob;
use serde::Serialize;
use utoipa::ToSchema;

use super::timestamp;
use crate::access::ProjectScope;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::paging::{Page, PageQuery};
use crate::AppState;

/// A job and its progress.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobOut {
    app_id: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    due_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repeats: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<String>,
    /// When it is next tried: an occurrence, or a retry of one.
    next_fire: DateTime<Utc>,
    /// Occurrences done (delivered or given up).
    fired: i64,
    /// Failed tries in all.
    failures: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_fire: Option<DateTime<Utc>>,
    /// What the last try gave (`delivered`, or why it failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    last_outcome: Option<String>,
    created_at: DateTime<Utc>,
}

fn job_out(job: StoredJob) -> ApiResult<JobOut> {
    let spec: JobSpec = serde_json::from_str(&job.spec).map_err(|err| {
        tracing::error!(job = %job.name, error = %err, "a stored job cannot be read");
        ApiError::internal()
    })?;
    Ok(JobOut {
        app_id: job.app_id,
        name: job.name,
        schedule: spec.schedule,
        due_time: spec.due_time,
        repeats: spec.repeats,
        ttl: spec.ttl,
        next_fire: timestamp(job.due_at),
        fired: job.fired,
        failures: job.failures,
        last_fire: job.last_fired_at.map(timestamp),
        last_outcome: job.last_outcome,
        created_at: timestamp(job.created_at),
    })
}

/// List an App ID's jobs, by name, a page at a time.
#[utoipa::path(get, path = "/api/v1/projects/{project}/appids/{app}/jobs", tag = "jobs",
    params(("project" = String, Path), ("app" = String, Path), PageQuery), responses((status = 200, body = Page<JobOut>)))]
pub(crate) async fn list_jobs(
    State(state): State<AppState>,
    Path((_project, app)): Path<(String, String)>,
    scope: ProjectScope,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Page<JobOut>>> {
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    tx.app_id(&project.id, &app).await?;
    let page = tx.page_jobs(&project.id, Some(&app), &page.request()?).await?;
    let items = page.items.into_iter().map(job_out).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Page { items, continuation_token: page.continuation }))
}

/// Get one job and its progress.
#[utoipa::path(get, path = "/api/v1/projects/{project}/appids/{app}/jobs/{job}", tag = "jobs",
    params(("project" = String, Path), ("app" = String, Path), ("job" = String, Path)), responses((status = 200, body = JobOut)))]
pub(crate) async fn get_job(
    State(state): State<AppState>,
    Path((_project, app, name)): Path<(String, String, String)>,
    scope: ProjectScope,
) -> ApiResult<Json<JobOut>> {
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    let job = tx.job(&project.id, &app, &name).await?;
    let job = job.ok_or_else(|| ApiError::not_found(format!("job '{name}' of App ID '{app}' not found")))?;
    Ok(Json(job_out(job)?))
}

/// Delete a job: it fires no more.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/appids/{app}/jobs/{job}", tag = "jobs",
    params(("project" = String, Path), ("app" = String, Path), ("job" = String, Path)), responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete_job(
    State(state): State<AppState>,
    Path((_project, app, name)): Path<(String, String, String)>,
    scope: ProjectScope,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    tx.delete_job(&project.id, &app, &name).await?;
    scope.audit.commit(tx, StatusCode::NO_CONTENT).await?;
    tracing::info!(project = %project.name, app_id = %app, job = %name, "job deleted");
    Ok(StatusCode::NO_CONTENT)
}
