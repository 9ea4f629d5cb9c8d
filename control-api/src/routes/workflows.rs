//! `/api/v1/projects/{project}/workflows`: the project's workflow instances — a filtered, paginated listing,
//! one instance with its history, and the operator's controls (terminate, suspend, resume, raise an event,
//! purge). The engine is the one apps drive; these routes only read it and hand it the same events.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use dapr_durabletask_proto as pb;
use outrigger_workflow::{parse_status, status_name, InstanceFilter, InstanceSummary, WorkflowError};
use pb::history_event::EventType;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::timestamp;
use crate::access::ProjectScope;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Path, Query};
use crate::paging::page_limit;
use crate::AppState;

impl From<WorkflowError> for ApiError {
    fn from(err: WorkflowError) -> ApiError {
        match err {
            WorkflowError::NotFound(instance) => {
                ApiError::not_found(format!("workflow instance '{instance}' not found"))
            }
            WorkflowError::NotCompleted(_) => ApiError::conflict("instance_running", err.to_string()),
            WorkflowError::Invalid(message) => ApiError::bad_request("invalid_request", message),
            WorkflowError::AlreadyExists(_) => ApiError::conflict("already_exists", err.to_string()),
            WorkflowError::Store(_) | WorkflowError::Corrupt(_) => {
                tracing::error!(error = %err, "the workflow store failed");
                ApiError::internal()
            }
        }
    }
}

/// Filters and paging of a listing.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only instances run by this App ID.
    app_id: Option<String>,
    /// Only instances of this workflow name.
    name: Option<String>,
    /// Only instances in these statuses, comma-separated (RUNNING, COMPLETED, FAILED, TERMINATED, PENDING,
    /// SUSPENDED, CANCELED, CONTINUED_AS_NEW, STALLED).
    status: Option<String>,
    /// Only instances created at or after this time (RFC 3339).
    created_from: Option<DateTime<Utc>>,
    /// Only instances created before this time (RFC 3339).
    created_to: Option<DateTime<Utc>>,
    /// Instances per page (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where the page starts: the `continuationToken` of the previous page.
    continuation_token: Option<String>,
}

/// An instance in a listing.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InstanceOut {
    instance_id: String,
    app_id: String,
    /// Workflow name.
    name: String,
    /// RUNNING, COMPLETED, FAILED, ...
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_instance_id: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at: Option<DateTime<Utc>>,
}

impl From<InstanceSummary> for InstanceOut {
    fn from(summary: InstanceSummary) -> InstanceOut {
        InstanceOut {
            instance_id: summary.instance_id,
            app_id: summary.app_id,
            name: summary.name,
            status: status_name(summary.status),
            parent_instance_id: summary.parent_instance_id,
            created_at: timestamp(summary.created_at),
            updated_at: timestamp(summary.updated_at),
            completed_at: summary.completed_at.map(timestamp),
        }
    }
}

/// A page of instances, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InstancePage {
    items: Vec<InstanceOut>,
    /// Pass as `continuationToken` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    continuation_token: Option<String>,
}

/// Why an instance failed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FailureOut {
    error_type: String,
    error_message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    stack_trace: Option<String>,
}

/// One event of an instance's history.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HistoryEventOut {
    /// The id the workflow gave the action behind the event (-1 for events it did not schedule).
    event_id: i32,
    timestamp: Option<DateTime<Utc>>,
    /// ExecutionStarted, TaskScheduled, TaskCompleted, TimerFired, EventRaised, ...
    kind: &'static str,
    /// The event's facts (names, inputs, results, failures, ids), by field.
    #[schema(value_type = Object)]
    details: Map<String, Value>,
}

/// One instance with its inputs, outputs and committed history.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InstanceDetailOut {
    #[serde(flatten)]
    instance: InstanceOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<FailureOut>,
    /// The events the workflow has seen, oldest first (of the current execution after a continue-as-new).
    history: Vec<HistoryEventOut>,
}

/// Terminating an instance.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TerminateBody {
    /// Recorded as the instance's output.
    output: Option<Value>,
    /// Terminate its child workflows too (default true).
    recursive: Option<bool>,
}

/// Suspending or resuming an instance.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ReasonBody {
    /// Why, recorded in the instance's history.
    reason: Option<String>,
}

/// Purge options.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PurgeQuery {
    /// Purge even if the instance has not finished (it stops wherever it is).
    force: Option<bool>,
}

fn filter_of(query: &ListQuery) -> ApiResult<InstanceFilter> {
    let statuses = query
        .status
        .iter()
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            parse_status(name).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_status",
                    format!("unknown status '{name}': use RUNNING, COMPLETED, FAILED, TERMINATED, PENDING, SUSPENDED, CANCELED, CONTINUED_AS_NEW or STALLED"),
                )
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(InstanceFilter {
        app_id: query.app_id.clone(),
        name: query.name.clone(),
        statuses,
        created_from: query.created_from.map(|time| time.timestamp_millis()),
        created_to: query.created_to.map(|time| time.timestamp_millis()),
    })
}

/// List a project's workflow instances, newest first.
#[utoipa::path(get, path = "/api/v1/projects/{project}/workflows", tag = "workflows",
    params(("project" = String, Path), ListQuery), responses(
    (status = 200, body = InstancePage),
))]
pub(crate) async fn list_instances(
    State(state): State<AppState>,
    Path(_project): Path<String>,
    scope: ProjectScope,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<InstancePage>> {
    let project = scope.project.id.clone();
    let filter = filter_of(&query)?;
    let limit = page_limit(query.limit)?;
    let page =
        state.workflows.list(&project, &filter, limit, query.continuation_token.as_deref()).await.map_err(|err| {
            match err {
                // The filter was checked above: what the engine still finds invalid is the token, answered as
                // every listing answers it.
                WorkflowError::Invalid(message) => ApiError::bad_request("invalid_continuation_token", message),
                other => other.into(),
            }
        })?;
    Ok(Json(InstancePage {
        items: page.instances.into_iter().map(InstanceOut::from).collect(),
        continuation_token: page.continuation,
    }))
}

/// One workflow instance with its inputs, outputs and history.
#[utoipa::path(get, path = "/api/v1/projects/{project}/workflows/{instance}", tag = "workflows",
    params(("project" = String, Path), ("instance" = String, Path)), responses(
    (status = 200, body = InstanceDetailOut),
))]
pub(crate) async fn get_instance(
    State(state): State<AppState>,
    Path((_project, instance)): Path<(String, String)>,
    scope: ProjectScope,
) -> ApiResult<Json<InstanceDetailOut>> {
    let detail = state.workflows.detail(&scope.project.id, &instance).await?;
    let detail = detail.ok_or_else(|| WorkflowError::NotFound(instance.clone()))?;
    Ok(Json(InstanceDetailOut {
        instance: InstanceOut::from(detail.summary),
        input: detail.input,
        output: detail.output,
        custom_status: detail.custom_status,
        failure: detail.failure.map(failure_out),
        history: detail.history.into_iter().map(history_event_out).collect(),
    }))
}

/// Terminate a workflow instance (and, unless told otherwise, its children). It ends at its next turn.
#[utoipa::path(post, path = "/api/v1/projects/{project}/workflows/{instance}/terminate", tag = "workflows",
    params(("project" = String, Path), ("instance" = String, Path)), request_body = TerminateBody, responses(
    (status = 202, description = "Termination recorded; the instance ends at its next turn"),
))]
pub(crate) async fn terminate_instance(
    State(state): State<AppState>,
    Path((_project, instance)): Path<(String, String)>,
    scope: ProjectScope,
    JsonBody(body): JsonBody<TerminateBody>,
) -> ApiResult<StatusCode> {
    let project = scope.project.id.clone();
    let output = body.output.map(|output| output.to_string());
    state.workflows.terminate(&project, &instance, output, body.recursive.unwrap_or(true)).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Suspend a running workflow instance: it receives nothing until resumed.
#[utoipa::path(post, path = "/api/v1/projects/{project}/workflows/{instance}/suspend", tag = "workflows",
    params(("project" = String, Path), ("instance" = String, Path)), request_body = ReasonBody, responses(
    (status = 202, description = "Suspended"),
))]
pub(crate) async fn suspend_instance(
    State(state): State<AppState>,
    Path((_project, instance)): Path<(String, String)>,
    scope: ProjectScope,
    JsonBody(body): JsonBody<ReasonBody>,
) -> ApiResult<StatusCode> {
    let project = scope.project.id.clone();
    state.workflows.suspend(&project, &instance, true, body.reason).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Resume a suspended workflow instance.
#[utoipa::path(post, path = "/api/v1/projects/{project}/workflows/{instance}/resume", tag = "workflows",
    params(("project" = String, Path), ("instance" = String, Path)), request_body = ReasonBody, responses(
    (status = 202, description = "Resumed"),
))]
pub(crate) async fn resume_instance(
    State(state): State<AppState>,
    Path((_project, instance)): Path<(String, String)>,
    scope: ProjectScope,
    JsonBody(body): JsonBody<ReasonBody>,
) -> ApiResult<StatusCode> {
    let project = scope.project.id.clone();
    state.workflows.suspend(&project, &instance, false, body.reason).await?;
    Ok(StatusCode::ACCEPTED)
}

/// An external event.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RaiseEventBody {
    /// The event's data (any JSON), as the workflow receives it.
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
}

/// Raise an external event on a workflow instance.
#[utoipa::path(post, path = "/api/v1/projects/{project}/workflows/{instance}/events/{event}", tag = "workflows",
    params(("project" = String, Path), ("instance" = String, Path), ("event" = String, Path)),
    request_body = RaiseEventBody, responses(
    (status = 202, description = "Delivered to the instance's inbox"),
))]
pub(crate) async fn raise_event(
    State(state): State<AppState>,
    Path((_project, instance, event)): Path<(String, String, String)>,
    scope: ProjectScope,
    JsonBody(body): JsonBody<RaiseEventBody>,
) -> ApiResult<StatusCode> {
    let project = scope.project.id.clone();
    let data = body.data.map(|data| data.to_string());
    state.workflows.raise(&project, &instance, &event, data).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Delete a finished workflow instance, its history and its children.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/workflows/{instance}", tag = "workflows",
    params(("project" = String, Path), ("instance" = String, Path), PurgeQuery), responses(
    (status = 204, description = "Purged"),
    (status = 409, body = ErrorBody, description = "The instance has not finished; terminate it or pass force=true"),
))]
pub(crate) async fn purge_instance(
    State(state): State<AppState>,
    Path((_project, instance)): Path<(String, String)>,
    scope: ProjectScope,
    Query(query): Query<PurgeQuery>,
) -> ApiResult<StatusCode> {
    let project = (&scope.project.id, scope.project.name.as_str());
    if state.workflows.purge(project, &instance, true, query.force.unwrap_or(false)).await? == 0 {
        return Err(WorkflowError::NotFound(instance).into());
    }
    Ok(StatusCode::NO_CONTENT)
}

fn failure_out(failure: pb::TaskFailureDetails) -> FailureOut {
    FailureOut {
        error_type: failure.error_type,
        error_message: failure.error_message,
        stack_trace: failure.stack_trace,
    }
}

fn history_event_out(event: pb::HistoryEvent) -> HistoryEventOut {
    let timestamp = event.timestamp.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32));
    let (kind, details) = event.event_type.map_or(("Unknown", Map::new()), describe_event);
    HistoryEventOut { event_id: event.event_id, timestamp, kind, details }
}

/// An event's kind and its facts worth showing an operator.
fn describe_event(event: EventType) -> (&'static str, Map<String, Value>) {
    let mut details = Map::new();
    let mut put = |field: &str, value: Value| {
        if !value.is_null() {
            details.insert(field.to_owned(), value);
        }
    };
    let failure = |failure: Option<pb::TaskFailureDetails>| {
        failure.map_or(Value::Null, |f| json!({ "errorType": f.error_type, "errorMessage": f.error_message }))
    };
    let kind = match event {
        EventType::ExecutionStarted(e) => {
            put("name", json!(e.name));
            put("input", json!(e.input));
            put("parentInstanceId", json!(e.parent_instance.and_then(|p| p.workflow_instance).map(|i| i.instance_id)));
            "ExecutionStarted"
        }
        EventType::ExecutionCompleted(e) => {
            let status = pb::OrchestrationStatus::try_from(e.workflow_status).map_or("UNKNOWN", status_name);
            put("status", json!(status));
            put("result", json!(e.result));
            put("failure", failure(e.failure_details));
            "ExecutionCompleted"
        }
        EventType::ExecutionTerminated(e) => {
            put("output", json!(e.input));
            "ExecutionTerminated"
        }
        EventType::TaskScheduled(e) => {
            put("name", json!(e.name));
            put("input", json!(e.input));
            "TaskScheduled"
        }
        EventType::TaskCompleted(e) => {
            put("taskScheduledId", json!(e.task_scheduled_id));
            put("result", json!(e.result));
            "TaskCompleted"
        }
        EventType::TaskFailed(e) => {
            put("taskScheduledId", json!(e.task_scheduled_id));
            put("failure", failure(e.failure_details));
            "TaskFailed"
        }
        EventType::ChildWorkflowInstanceCreated(e) => {
            put("instanceId", json!(e.instance_id));
            put("name", json!(e.name));
            put("input", json!(e.input));
            "ChildWorkflowInstanceCreated"
        }
        EventType::ChildWorkflowInstanceCompleted(e) => {
            put("taskScheduledId", json!(e.task_scheduled_id));
            put("result", json!(e.result));
            "ChildWorkflowInstanceCompleted"
        }
        EventType::ChildWorkflowInstanceFailed(e) => {
            put("taskScheduledId", json!(e.task_scheduled_id));
            put("failure", failure(e.failure_details));
            "ChildWorkflowInstanceFailed"
        }
        EventType::TimerCreated(e) => {
            put("fireAt", json!(e.fire_at.and_then(|t| DateTime::from_timestamp(t.seconds, 0))));
            "TimerCreated"
        }
        EventType::TimerFired(e) => {
            put("timerId", json!(e.timer_id));
            "TimerFired"
        }
        EventType::WorkflowStarted(_) => "WorkflowStarted",
        EventType::WorkflowCompleted(_) => "WorkflowCompleted",
        EventType::EventSent(e) => {
            put("instanceId", json!(e.instance_id));
            put("name", json!(e.name));
            put("input", json!(e.input));
            "EventSent"
        }
        EventType::EventRaised(e) => {
            put("name", json!(e.name));
            put("input", json!(e.input));
            "EventRaised"
        }
        EventType::ContinueAsNew(e) => {
            put("input", json!(e.input));
            "ContinueAsNew"
        }
        EventType::ExecutionSuspended(e) => {
            put("reason", json!(e.input));
            "ExecutionSuspended"
        }
        EventType::ExecutionResumed(e) => {
            put("reason", json!(e.input));
            "ExecutionResumed"
        }
        EventType::ExecutionStalled(e) => {
            put("description", json!(e.description));
            "ExecutionStalled"
        }
        _ => "Other",
    };
    (kind, details)
}
