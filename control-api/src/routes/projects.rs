//! `/api/v1/projects`

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use outrigger_store::{NewProject, Project};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::timestamp;
use crate::access::{AuditNote, Caller, ProjectScope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Path, Query};
use crate::paging::{Page, PageQuery};
use crate::state::{managed_components, ManagedComponent};
use crate::AppState;

/// The pool every project is served by unless it names another (workers serve it without `--pool`).
const DEFAULT_POOL: &str = "default";

fn enabled() -> bool {
    true
}

/// A new project.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "shop"}))]
pub(crate) struct CreateProject {
    /// DNS label, unique within the organization.
    name: String,
    /// Give the project the managed `kvstore` state store (default true).
    #[serde(default = "enabled")]
    managed_kvstore: bool,
    /// Give the project the managed `pubsub` broker (default true).
    #[serde(default = "enabled")]
    managed_pubsub: bool,
    /// The worker pool that serves the project's calls (default `default`); big tenants get their own.
    pool: Option<String>,
}

/// A project and how apps reach it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProjectOut {
    /// Where the project's component files live (`state.sqlite` databases, `secretstores.local.file` files),
    /// relative to the worker's data directory: `projects/<project id>`. The project id is unique in the
    /// installation (a name only within its organization) and is the `project_id` label of its metric series.
    files_dir: String,
    name: String,
    /// What apps set `DAPR_HTTP_ENDPOINT` to.
    http_endpoint: String,
    /// What apps set `DAPR_GRPC_ENDPOINT` to.
    grpc_endpoint: String,
    /// Components the platform provides.
    managed_components: Vec<ManagedComponent>,
    /// The worker pool that serves the project.
    pool: String,
    created_at: DateTime<Utc>,
}

impl ProjectOut {
    fn new(state: &AppState, project: &Project) -> ProjectOut {
        ProjectOut {
            files_dir: format!("projects/{}", project.id.as_str()),
            name: project.name.clone(),
            http_endpoint: state.options.http_endpoint.clone(),
            grpc_endpoint: state.options.grpc_endpoint.clone(),
            managed_components: managed_components(state.types(), project),
            pool: project.pool.clone(),
            created_at: timestamp(project.created_at),
        }
    }
}

/// Create a project.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = CreateProject, responses(
    (status = 201, body = ProjectOut),
    (status = 400, description = "Invalid name or pool, or malformed JSON", body = ErrorBody),
    (status = 409, description = "Name taken in the organization, or its project quota reached", body = ErrorBody),
))]
pub(crate) async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditNote,
    JsonBody(body): JsonBody<CreateProject>,
) -> ApiResult<(StatusCode, Json<ProjectOut>)> {
    outrigger_resources::validate_dns_label(&body.name)
        .map_err(|invalid| ApiError::bad_request("invalid_name", format!("project name: {invalid}")))?;
    let pool = body.pool.unwrap_or_else(|| DEFAULT_POOL.to_owned());
    outrigger_resources::validate_dns_label(&pool)
        .map_err(|invalid| ApiError::bad_request("invalid_pool", format!("pool name: {invalid}")))?;
    let new = NewProject {
        org_id: caller.org.id.clone(),
        name: body.name,
        managed_kvstore: body.managed_kvstore,
        managed_pubsub: body.managed_pubsub,
        pool,
    };
    let mut tx = state.store.begin().await?;
    if let Some(limit) = tx.org_by_id(&caller.org.id).await?.quotas.projects.filter(|limit| *limit > 0) {
        let (projects, _) = tx.org_holdings(&caller.org.id).await?;
        if projects >= u64::from(limit) {
            return Err(ApiError::conflict(
                "quota_exceeded",
                format!("organization '{}' may have {limit} projects and has {projects}: delete one, or ask the operator to raise the organization's quota", caller.org.name),
            ));
        }
    }
    let project = tx.create_project(&new).await?;
    let out = ProjectOut::new(&state, &project);
    audit.in_project(&project.name);
    audit.changed(None, serde_json::to_value(&out).ok());
    audit.commit(tx, StatusCode::CREATED).await?;
    tracing::info!(project = %project.name, project_id = project.id.as_str(), org = %caller.org.name, "project created");
    Ok((StatusCode::CREATED, Json(out)))
}

/// List the organization's projects the caller holds a role on, by name, a page at a time.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", params(PageQuery), responses((status = 200, body = Page<ProjectOut>)))]
pub(crate) async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Page<ProjectOut>>> {
    // Without a role on the organization, only the projects granted one by one are listed.
    let granted_to = match caller.org_role() {
        Some(_) => None,
        None => caller.principal().map(|principal| &principal.id),
    };
    let projects = state.store.begin().await?.page_projects(&caller.org.id, granted_to, &page.request()?).await?;
    Ok(Json(Page::of(projects, |project| ProjectOut::new(&state, &project))))
}

/// Get one project.
#[utoipa::path(get, path = "/api/v1/projects/{project}", tag = "projects", params(("project" = String, Path)), responses(
    (status = 200, body = ProjectOut),
))]
pub(crate) async fn get_project(
    State(state): State<AppState>,
    Path(_name): Path<String>,
    scope: ProjectScope,
) -> ApiResult<Json<ProjectOut>> {
    Ok(Json(ProjectOut::new(&state, &scope.project)))
}

/// Delete a project and everything under it.
#[utoipa::path(delete, path = "/api/v1/projects/{project}", tag = "projects", params(("project" = String, Path)), responses(
    (status = 204, description = "Deleted"),
))]
pub(crate) async fn delete_project(
    State(state): State<AppState>,
    Path(name): Path<String>,
    scope: ProjectScope,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    scope.audit.changed(serde_json::to_value(ProjectOut::new(&state, &project)).ok(), None);
    tx.delete_project(&project.id).await?;
    scope.audit.commit(tx, StatusCode::NO_CONTENT).await?;
    state.options.changes.changed(project.id.as_str()).await;
    tracing::info!(project = %name, project_id = project.id.as_str(), "project deleted");
    // Unreachable once the project is gone: what is left if this fails goes when its retention ends.
    if let Err(err) = state.store.forget_api_log(&project.id).await {
        tracing::warn!(project_id = project.id.as_str(), error = %err, "the deleted project's API log stays until it expires");
    }
    Ok(StatusCode::NO_CONTENT)
}
