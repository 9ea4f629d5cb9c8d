//! daprd's HTTP workflow API (`/{v1.0-alpha1|v1.0-beta1|v1.0}/workflows/dapr/...`, what the JS SDK's
//! `client.workflow.*` calls): start, get, terminate, pause, resume, purge and raise event over the same
//! engine as the gRPC protocol, with daprd's validation, status codes and bodies.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, MethodRouter};
use axum::{Extension, Json, Router};
use chrono::{SecondsFormat, TimeZone, Utc};
use dapr_durabletask_proto as pb;
use outrigger_bus::Tenant;
use outrigger_workflow::{status_name, Status, WorkflowError};
use serde_json::{json, Map, Value};

use super::engine;
use crate::http_api::Body;
use crate::{DaprError, Gateway};

/// The only workflow component: the built-in engine, as daprd names it.
const COMPONENT: &str = "dapr";

/// Longest instance ID the HTTP API accepts on start (daprd's limit).
const MAX_INSTANCE_ID: usize = 64;

/// The routes, under each API version daprd serves them on.
pub fn routes() -> Router<Gateway> {
    ["v1.0-alpha1", "v1.0-beta1", "v1.0"].into_iter().fold(Router::new(), |router, version| {
        let base = format!("/{version}/workflows/{{component}}");
        router
            .route(&format!("{base}/{{name}}/start"), post(start))
            .route(&format!("{base}/{{instance}}"), get(get_instance))
            .route(&format!("{base}/{{instance}}/terminate"), control(Control::Terminate))
            .route(&format!("{base}/{{instance}}/pause"), control(Control::Pause))
            .route(&format!("{base}/{{instance}}/resume"), control(Control::Resume))
            .route(&format!("{base}/{{instance}}/purge"), control(Control::Purge))
            .route(&format!("{base}/{{instance}}/raiseEvent/{{event}}"), post(raise_event))
    })
}

fn bad_request(error_code: &'static str, message: String) -> DaprError {
    DaprError::workflow_request(error_code, message)
}

fn check_component(component: &str) -> Result<(), DaprError> {
    if component == COMPONENT {
        return Ok(());
    }
    Err(bad_request(
        "ERR_WORKFLOW_COMPONENT_NOT_FOUND",
        format!("workflow component '{component}' does not exist; the built-in engine is named '{COMPONENT}'"),
    ))
}

/// The optional `appID` query parameter: which App ID hosts the workflow (default: the caller).
fn target_app(tenant: &Tenant, query: &HashMap<String, String>) -> Result<String, DaprError> {
    match query.get("appID").filter(|app_id| !app_id.is_empty()) {
        None => Ok(tenant.app_id.clone()),
        Some(app_id) if app_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') => Ok(app_id.clone()),
        Some(app_id) => Err(bad_request(
            "ERR_WORKFLOW_APP_ID_INVALID",
            format!(
                "workflow app ID '{app_id}' is invalid: only alphanumeric, dash and underscore characters are allowed"
            ),
        )),
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

fn accepted() -> (StatusCode, Json<Value>) {
    (StatusCode::ACCEPTED, Json(json!({})))
}

async fn start(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((component, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), DaprError> {
    check_component(&component)?;
    let instance_id = match query.get("instanceID").filter(|id| !id.is_empty()) {
        None => uuid::Uuid::new_v4().to_string(),
        Some(id) if id.len() > MAX_INSTANCE_ID => {
            return Err(bad_request(
                "ERR_INSTANCE_ID_TOO_LONG",
                format!("workflow instance ID exceeds the max length of {MAX_INSTANCE_ID} characters"),
            ))
        }
        Some(id) if !id.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_') => {
            return Err(bad_request(
                "ERR_INSTANCE_ID_INVALID",
                format!("workflow instance ID '{id}' is invalid: only letters, digits, '-' and '_' are allowed"),
            ))
        }
        Some(id) => id.clone(),
    };
    if name.is_empty() {
        return Err(bad_request("ERR_WORKFLOW_NAME_MISSING", "workflow name is not configured".to_owned()));
    }
    let app_id = target_app(&tenant, &query)?;
    let request = pb::CreateInstanceRequest { instance_id, name, input: payload(&body)?, ..Default::default() };
    let instance_id = engine(&gateway).start(&tenant.project_id, &app_id, request).await?;
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

async fn get_instance(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((component, instance)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, DaprError> {
    check_component(&component)?;
    target_app(&tenant, &query)?;
    let state = engine(&gateway).state(&tenant.project_id, &instance, true).await?;
    Ok(Json(describe(state.ok_or(WorkflowError::NotFound(instance))?)))
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
            match which {
                // daprd terminates and purges the instance's children too.
                Control::Terminate => engine.terminate(project, &instance, None, true).await?,
                Control::Pause => engine.suspend(project, &instance, true, None).await?,
                Control::Resume => engine.suspend(project, &instance, false, None).await?,
                Control::Purge => {
                    if engine.purge(project, &instance, true, false).await? == 0 {
                        return Err(WorkflowError::NotFound(instance).into());
                    }
                }
            }
            Ok::<_, DaprError>(accepted())
        },
    )
}

async fn raise_event(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((component, instance, event)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), DaprError> {
    check_component(&component)?;
    target_app(&tenant, &query)?;
    if event.is_empty() {
        return Err(bad_request("ERR_WORKFLOW_EVENT_NAME_MISSING", "missing workflow event name".to_owned()));
    }
    engine(&gateway).raise(&tenant.project_id, &instance, &event, payload(&body)?).await?;
    Ok(accepted())
}
