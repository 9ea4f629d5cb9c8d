//! The workflow API over the built-in engine: Dapr's HTTP API (`/v1.0*/workflows/dapr/...`: start, get,
//! terminate, pause, resume, purge, raise event) and durabletask's `TaskHubSidecarService` on the gRPC port
//! (the client rpcs: start, get, wait, raise, terminate, suspend, resume, purge by ID or filter, history,
//! instance IDs; and the worker's `CompleteOrchestratorTask`, its new name `CompleteWorkflowTask`, and
//! `CompleteActivityTask`; the `GetWorkItems` stream is [`super::workflow_stream`]). Calls are authenticated by
//! the App ID token like every call; instances belong to the caller's project and run on the workers of the
//! App ID that started them.
//!
//! Both APIs count their operations in daprd's `dapr_runtime_workflow_operation_*` series through
//! [`counted`], and the worker's answers count the executions and activities they end
//! (`dapr_runtime_workflow_execution_*`, `_scheduling_latency`, `_activity_execution_*`) from the engine's
//! reports.

use std::collections::HashMap;
use std::future::Future;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, MethodRouter};
use axum::{Extension, Json, Router};
use chrono::{SecondsFormat, TimeZone, Utc};
use dapr_durabletask_proto as pb;
use outrigger_bus::{Tenant, TraceContext};
use outrigger_telemetry::metrics::{ExecutionStatus, TenantLabels, WorkflowOperation};
use outrigger_workflow::{status_name, ActivityReport, InstanceFilter, Status, TurnReport, WorkflowError, MAX_PAGE};
use serde_json::{json, Map, Value};

use super::grpc::{rpc, Caller, Rpcs};
use super::http::Body;
use super::trace_context;
use crate::{DaprError, Gateway};

const SERVICE: &str = "/TaskHubSidecarService/";

/// The rpcs of `TaskHubSidecarService`.
pub(super) fn grpc_rpcs() -> Rpcs {
    let rpcs: [(&str, MethodRouter<Gateway>); 16] = [
        ("Hello", rpc(hello)),
        ("StartInstance", rpc(start_instance)),
        ("GetInstance", rpc(get_instance)),
        ("WaitForInstanceStart", rpc(wait_for_start)),
        ("WaitForInstanceCompletion", rpc(wait_for_completion)),
        ("RaiseEvent", rpc(raise_event)),
        ("TerminateInstance", rpc(terminate)),
        ("SuspendInstance", rpc(suspend)),
        ("ResumeInstance", rpc(resume)),
        ("PurgeInstances", rpc(purge)),
        ("GetInstanceHistory", rpc(get_instance_history)),
        ("ListInstanceIDs", rpc(list_instance_ids)),
        ("GetWorkItems", super::workflow_stream::get_work_items()),
        ("CompleteOrchestratorTask", rpc(complete_workflow_task)),
        ("CompleteWorkflowTask", rpc(complete_workflow_task)),
        ("CompleteActivityTask", rpc(complete_activity_task)),
    ];
    rpcs.into_iter().map(|(name, route)| (format!("{SERVICE}{name}"), route)).collect()
}

pub(super) fn engine(gateway: &Gateway) -> &outrigger_workflow::Engine {
    &gateway.0.workflows
}

async fn hello(_: Gateway, _: Caller, _: ()) -> Result<(), DaprError> {
    Ok(())
}

/// Runs one of daprd's workflow operations for `tenant`, over HTTP or gRPC, and counts it
/// (`dapr_runtime_workflow_operation_count` and `_latency`; `failed` when the engine refused or failed it).
async fn counted<T>(
    tenant: &Tenant,
    operation: WorkflowOperation,
    call: impl Future<Output = Result<T, WorkflowError>>,
) -> Result<T, WorkflowError> {
    let started = Instant::now();
    let result = call.await;
    let runtime = outrigger_telemetry::metrics().runtime();
    runtime.workflow_operation(tenant.metric_labels(), operation, result.is_ok(), started.elapsed());
    result
}

/// Counts the execution a committed turn began (how late) or ended (how, and how long it ran).
fn count_turn(tenant: &Tenant, report: Option<TurnReport>) {
    let Some(TurnReport { app_id, workflow_name, scheduling_latency, ended }) = report else { return };
    let runtime = outrigger_telemetry::metrics().runtime();
    let labels = TenantLabels::new(&tenant.project, tenant.project_id.as_str(), &app_id);
    if let Some(latency) = scheduling_latency {
        runtime.workflow_scheduling(labels, &workflow_name, latency);
    }
    if let Some((status, ran)) = ended {
        let status = match status {
            Status::Completed => ExecutionStatus::Success,
            Status::Terminated => ExecutionStatus::Terminated,
            _ => ExecutionStatus::Failed,
        };
        runtime.workflow_execution(labels, &workflow_name, status, ran);
    }
}

/// Counts an activity whose result the engine recorded.
fn count_activity(tenant: &Tenant, report: Option<ActivityReport>) {
    let Some(ActivityReport { app_id, activity_name, failed, elapsed }) = report else { return };
    let status = if failed { ExecutionStatus::Failed } else { ExecutionStatus::Success };
    let labels = TenantLabels::new(&tenant.project, tenant.project_id.as_str(), &app_id);
    outrigger_telemetry::metrics().runtime().activity_execution(labels, &activity_name, status, elapsed);
}

async fn start_instance(
    gateway: Gateway,
    caller: Caller,
    mut request: pb::CreateInstanceRequest,
) -> Result<pb::CreateInstanceResponse, DaprError> {
    let tenant = &caller.tenant;
    request.parent_trace_context = started_within(&caller.trace());
    let started = engine(&gateway).start(&tenant.project_id, &tenant.app_id, request);
    let instance_id = counted(tenant, WorkflowOperation::CreateWorkflow, started).await?;
    Ok(pb::CreateInstanceResponse { instance_id })
}

fn instance_answer(state: Option<pb::WorkflowState>) -> pb::GetInstanceResponse {
    pb::GetInstanceResponse { exists: state.is_some(), workflow_state: state }
}

async fn get_instance(
    gateway: Gateway,
    caller: Caller,
    request: pb::GetInstanceRequest,
) -> Result<pb::GetInstanceResponse, DaprError> {
    let state = engine(&gateway).state(&caller.tenant.project_id, &request.instance_id, request.get_inputs_and_outputs);
    Ok(instance_answer(counted(&caller.tenant, WorkflowOperation::GetWorkflow, state).await?))
}

/// Waits until `done` holds for the instance's status; the gateway shutting down ends the wait (the client
/// retries elsewhere).
async fn wait_until(
    gateway: &Gateway,
    caller: &Caller,
    request: &pb::GetInstanceRequest,
    done: impl Fn(i32) -> bool,
) -> Result<pb::GetInstanceResponse, DaprError> {
    let waited =
        engine(gateway).wait(&caller.tenant.project_id, &request.instance_id, request.get_inputs_and_outputs, done);
    tokio::select! {
        state = waited => Ok(instance_answer(state?)),
        () = gateway.0.closing.cancelled() => Err(DaprError::shutting_down()),
    }
}

async fn wait_for_start(
    gateway: Gateway,
    caller: Caller,
    request: pb::GetInstanceRequest,
) -> Result<pb::GetInstanceResponse, DaprError> {
    wait_until(&gateway, &caller, &request, |status| status != Status::Pending as i32).await
}

async fn wait_for_completion(
    gateway: Gateway,
    caller: Caller,
    request: pb::GetInstanceRequest,
) -> Result<pb::GetInstanceResponse, DaprError> {
    let ended = |status: i32| {
        [Status::Completed, Status::Failed, Status::Terminated, Status::Canceled].iter().any(|s| *s as i32 == status)
    };
    wait_until(&gateway, &caller, &request, ended).await
}

async fn raise_event(
    gateway: Gateway,
    caller: Caller,
    request: pb::RaiseEventRequest,
) -> Result<pb::RaiseEventResponse, DaprError> {
    let raised = engine(&gateway).raise(&caller.tenant.project_id, &request.instance_id, &request.name, request.input);
    counted(&caller.tenant, WorkflowOperation::AddEvent, raised).await?;
    Ok(pb::RaiseEventResponse {})
}

async fn terminate(
    gateway: Gateway,
    caller: Caller,
    request: pb::TerminateRequest,
) -> Result<pb::TerminateResponse, DaprError> {
    let project = &caller.tenant.project_id;
    let terminated = engine(&gateway).terminate(project, &request.instance_id, request.output, request.recursive);
    counted(&caller.tenant, WorkflowOperation::AddEvent, terminated).await?;
    Ok(pb::TerminateResponse {})
}

async fn suspend(
    gateway: Gateway,
    caller: Caller,
    request: pb::SuspendRequest,
) -> Result<pb::SuspendResponse, DaprError> {
    let suspended = engine(&gateway).suspend(&caller.tenant.project_id, &request.instance_id, true, request.reason);
    counted(&caller.tenant, WorkflowOperation::AddEvent, suspended).await?;
    Ok(pb::SuspendResponse {})
}

async fn resume(gateway: Gateway, caller: Caller, request: pb::ResumeRequest) -> Result<pb::ResumeResponse, DaprError> {
    let resumed = engine(&gateway).suspend(&caller.tenant.project_id, &request.instance_id, false, request.reason);
    counted(&caller.tenant, WorkflowOperation::AddEvent, resumed).await?;
    Ok(pb::ResumeResponse {})
}

async fn purge(
    gateway: Gateway,
    caller: Caller,
    request: pb::PurgeInstancesRequest,
) -> Result<pb::PurgeInstancesResponse, DaprError> {
    use pb::purge_instances_request::Request as Which;
    let (tenant, project) = (&caller.tenant, &caller.tenant.project_id);
    let purge = WorkflowOperation::PurgeWorkflow;
    let deleted = match request.request {
        Some(Which::InstanceId(instance)) => {
            let force = request.force.unwrap_or(false);
            counted(
                tenant,
                purge,
                engine(&gateway).purge((project, &tenant.project), &instance, request.recursive, force),
            )
            .await?
        }
        Some(Which::PurgeInstanceFilter(filter)) => {
            let filter = InstanceFilter::from(filter);
            counted(
                tenant,
                purge,
                engine(&gateway).purge_matching((project, &tenant.project), &filter, request.recursive),
            )
            .await?
        }
        None => return Err(WorkflowError::Invalid("name an instance or give a filter".to_owned()).into()),
    };
    Ok(pb::PurgeInstancesResponse { deleted_instance_count: deleted, is_complete: Some(true) })
}

async fn get_instance_history(
    gateway: Gateway,
    caller: Caller,
    request: pb::GetInstanceHistoryRequest,
) -> Result<pb::GetInstanceHistoryResponse, DaprError> {
    let events = engine(&gateway)
        .history_of(&caller.tenant.project_id, &request.instance_id)
        .await?
        .ok_or(WorkflowError::NotFound(request.instance_id))?;
    Ok(pb::GetInstanceHistoryResponse { events })
}

/// `ListInstanceIDs`: the project's instances, newest first (the whole project, as the caller's token is
/// the project's).
async fn list_instance_ids(
    gateway: Gateway,
    caller: Caller,
    request: pb::ListInstanceIDsRequest,
) -> Result<pb::ListInstanceIDsResponse, DaprError> {
    let page = engine(&gateway)
        .list(
            &caller.tenant.project_id,
            &InstanceFilter::default(),
            request.page_size.unwrap_or(MAX_PAGE),
            request.continuation_token.as_deref().filter(|token| !token.is_empty()),
        )
        .await?;
    Ok(pb::ListInstanceIDsResponse {
        instance_ids: page.instances.into_iter().map(|instance| instance.instance_id).collect(),
        continuation_token: page.continuation,
    })
}

async fn complete_workflow_task(
    gateway: Gateway,
    caller: Caller,
    response: pb::WorkflowResponse,
) -> Result<pb::CompleteTaskResponse, DaprError> {
    let report = engine(&gateway).complete_turn(&caller.tenant.project_id, &caller.tenant.project, response).await?;
    count_turn(&caller.tenant, report);
    Ok(pb::CompleteTaskResponse {})
}

async fn complete_activity_task(
    gateway: Gateway,
    caller: Caller,
    response: pb::ActivityResponse,
) -> Result<pb::CompleteTaskResponse, DaprError> {
    let report =
        engine(&gateway).complete_activity(&caller.tenant.project_id, &caller.tenant.project, response).await?;
    count_activity(&caller.tenant, report);
    Ok(pb::CompleteTaskResponse {})
}

/// The only workflow component: the built-in engine, as daprd names it.
const COMPONENT: &str = "dapr";

/// Longest instance ID the HTTP API accepts on start (daprd's limit).
const MAX_INSTANCE_ID: usize = 64;

/// The HTTP routes, under each API version daprd serves them on.
pub(super) fn http_routes() -> Router<Gateway> {
    ["v1.0-alpha1", "v1.0-beta1", "v1.0"].into_iter().fold(Router::new(), |router, version| {
        let base = format!("/{version}/workflows/{{component}}");
        router
            .route(&format!("{base}/{{name}}/start"), post(start))
            .route(&format!("{base}/{{instance}}"), get(get_instance_http))
            .route(&format!("{base}/{{instance}}/terminate"), control(Control::Terminate))
            .route(&format!("{base}/{{instance}}/pause"), control(Control::Pause))
            .route(&format!("{base}/{{instance}}/resume"), control(Control::Resume))
            .route(&format!("{base}/{{instance}}/purge"), control(Control::Purge))
            .route(&format!("{base}/{{instance}}/raiseEvent/{{event}}"), post(raise_event_http))
    })
}

/// A workflow request daprd refuses before it reaches the engine.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkflowRequestError {
    #[error("workflow component '{0}' does not exist; the built-in engine is named '{COMPONENT}'")]
    ComponentNotFound(String),
    #[error("workflow app ID '{0}' is invalid: only alphanumeric, dash and underscore characters are allowed")]
    AppIdInvalid(String),
    #[error("workflow instance ID exceeds the max length of {MAX_INSTANCE_ID} characters")]
    InstanceIdTooLong,
    #[error("workflow instance ID '{0}' is invalid: only letters, digits, '-' and '_' are allowed")]
    InstanceIdInvalid(String),
    #[error("workflow name is not configured")]
    NameMissing,
    #[error("missing workflow event name")]
    EventNameMissing,
}

fn check_component(component: &str) -> Result<(), DaprError> {
    if component == COMPONENT {
        return Ok(());
    }
    Err(WorkflowRequestError::ComponentNotFound(component.to_owned()).into())
}

/// The optional `appID` query parameter: which App ID hosts the workflow (default: the caller).
fn target_app(tenant: &Tenant, query: &HashMap<String, String>) -> Result<String, DaprError> {
    match query.get("appID").filter(|app_id| !app_id.is_empty()) {
        None => Ok(tenant.app_id.to_string()),
        Some(app_id) if app_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') => Ok(app_id.clone()),
        Some(app_id) => Err(WorkflowRequestError::AppIdInvalid(app_id.clone()).into()),
    }
}

/// The raw body as the workflow's input or event data; an empty body is no data.
fn payload(body: &[u8]) -> Result<Option<String>, DaprError> {
    if body.is_empty() {
        return Ok(None);
    }
    String::from_utf8(body.to_vec())
        .map(Some)
        .map_err(|_| DaprError::malformed("workflow inputs and event data must be UTF-8 text (usually JSON)"))
}

/// The trace an instance starts in: the span of the call that starts it, which the engine makes the parent of
/// the instance's own span.
fn started_within(trace: &TraceContext) -> Option<pb::TraceContext> {
    let trace_parent = trace.traceparent.clone()?;
    Some(pb::TraceContext { trace_parent, trace_state: trace.tracestate.clone(), ..Default::default() })
}

fn accepted() -> (StatusCode, Json<Value>) {
    (StatusCode::ACCEPTED, Json(json!({})))
}

async fn start(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((component, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), DaprError> {
    check_component(&component)?;
    let instance_id = match query.get("instanceID").filter(|id| !id.is_empty()) {
        None => uuid::Uuid::new_v4().to_string(),
        Some(id) if id.len() > MAX_INSTANCE_ID => return Err(WorkflowRequestError::InstanceIdTooLong.into()),
        Some(id) if !id.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_') => {
            return Err(WorkflowRequestError::InstanceIdInvalid(id.clone()).into())
        }
        Some(id) => id.clone(),
    };
    if name.is_empty() {
        return Err(WorkflowRequestError::NameMissing.into());
    }
    let app_id = target_app(&tenant, &query)?;
    let request = pb::CreateInstanceRequest {
        instance_id,
        name,
        input: payload(&body)?,
        parent_trace_context: started_within(&trace_context(&headers)),
        ..Default::default()
    };
    let started = engine(&gateway).start(&tenant.project_id, &app_id, request);
    let instance_id = counted(&tenant, WorkflowOperation::CreateWorkflow, started).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "instanceID": instance_id }))))
}

fn rfc3339(timestamp: Option<&prost_types::Timestamp>) -> Value {
    timestamp
        .and_then(|t| Utc.timestamp_opt(t.seconds, t.nanos.max(0) as u32).single())
        .map_or(Value::Null, |time| Value::String(time.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
}

/// daprd's `GetWorkflowResponse` in JSON.
fn describe(state: pb::WorkflowState) -> Value {
    let mut properties = Map::new();
    let mut put = |key: &str, value: String| {
        properties.insert(format!("dapr.workflow.{key}"), Value::String(value));
    };
    if let Some(custom_status) = state.custom_status {
        put("custom_status", custom_status);
    }
    if let Some(input) = state.input {
        put("input", input);
    }
    match state.failure_details {
        Some(failure) => {
            put("failure.error_type", failure.error_type);
            put("failure.error_message", failure.error_message);
            if let Some(stack_trace) = failure.stack_trace {
                put("failure.stack_trace", stack_trace);
            }
        }
        None => {
            if let Some(output) = state.output {
                put("output", output);
            }
        }
    }
    let status = Status::try_from(state.workflow_status).map_or("UNKNOWN", status_name);
    json!({
        "instanceID": state.instance_id,
        "workflowName": state.name,
        "createdAt": rfc3339(state.created_timestamp.as_ref()),
        "lastUpdatedAt": rfc3339(state.last_updated_timestamp.as_ref()),
        "runtimeStatus": status,
        "properties": properties,
    })
}

async fn get_instance_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((component, instance)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, DaprError> {
    check_component(&component)?;
    target_app(&tenant, &query)?;
    let state = async {
        engine(&gateway).state(&tenant.project_id, &instance, true).await?.ok_or(WorkflowError::NotFound(instance))
    };
    Ok(Json(describe(counted(&tenant, WorkflowOperation::GetWorkflow, state).await?)))
}

/// The operations on an instance that take no body.
#[derive(Clone, Copy)]
enum Control {
    Terminate,
    Pause,
    Resume,
    Purge,
}

fn control(which: Control) -> MethodRouter<Gateway> {
    post(
        move |State(gateway): State<Gateway>,
              Extension(tenant): Extension<Tenant>,
              Path((component, instance)): Path<(String, String)>,
              Query(query): Query<HashMap<String, String>>| async move {
            check_component(&component)?;
            target_app(&tenant, &query)?;
            let (engine, project) = (engine(&gateway), &tenant.project_id);
            let event = WorkflowOperation::AddEvent;
            match which {
                // daprd terminates and purges the instance's children too.
                Control::Terminate => counted(&tenant, event, engine.terminate(project, &instance, None, true)).await?,
                Control::Pause => counted(&tenant, event, engine.suspend(project, &instance, true, None)).await?,
                Control::Resume => counted(&tenant, event, engine.suspend(project, &instance, false, None)).await?,
                Control::Purge => {
                    let purged = async {
                        match engine.purge((project, &tenant.project), &instance, true, false).await? {
                            0 => Err(WorkflowError::NotFound(instance)),
                            _ => Ok(()),
                        }
                    };
                    counted(&tenant, WorkflowOperation::PurgeWorkflow, purged).await?
                }
            }
            Ok::<_, DaprError>(accepted())
        },
    )
}

async fn raise_event_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((component, instance, event)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), DaprError> {
    check_component(&component)?;
    target_app(&tenant, &query)?;
    if event.is_empty() {
        return Err(WorkflowRequestError::EventNameMissing.into());
    }
    let raised = engine(&gateway).raise(&tenant.project_id, &instance, &event, payload(&body)?);
    counted(&tenant, WorkflowOperation::AddEvent, raised).await?;
    Ok(accepted())
}
