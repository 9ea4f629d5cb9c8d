//! The jobs API: HTTP `POST|GET|DELETE /{v}/jobs/{name}` (`v1.0-alpha1` and `v1.0`), gRPC `ScheduleJob`,
//! `GetJob`, `DeleteJob`, `ListJobs` and `DeleteJobsByPrefix` (and their `Alpha1` names).
//!
//! Jobs belong to the caller's App ID and are kept in the control-plane database, where the workers' scheduler
//! claims them when due (`workers/src/jobs.rs`); like the workflow engine, the API needs no bus hop. The rules
//! of a job (its schedule, occurrences, failure policy) are `outrigger_jobs`'s, checked here when it is
//! scheduled.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use dapr::dapr::proto::common::v1 as common;
use dapr::dapr::proto::runtime::v1 as pb;
use outrigger_bus::Tenant;
use outrigger_jobs::{data_as_protojson, FailurePolicy, JobData, JobSpec};
use outrigger_store::StoredJob;
use prost::Message as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::grpc::{dapr_rpc, rpc, Caller, Rpcs};
use super::http::{parse_json, Body};
use crate::{DaprError, Gateway};

/// The longest job name, in bytes.
const MAX_NAME_BYTES: usize = 256;

/// The type URL of JSON data packed as a protobuf `Any`.
const VALUE_TYPE_URL: &str = "type.googleapis.com/google.protobuf.Value";

pub(super) fn http_routes() -> Router<Gateway> {
    let mut router = Router::new();
    for version in ["v1.0-alpha1", "v1.0"] {
        let route = post(schedule_http).get(get_http).delete(delete_http);
        router = router.route(&format!("/{version}/jobs/{{name}}"), route);
    }
    router
}

pub(super) fn grpc_rpcs() -> Rpcs {
    let mut rpcs = vec![
        (dapr_rpc("ListJobsAlpha1"), rpc(list_alpha1_grpc)),
        (dapr_rpc("DeleteJobsByPrefixAlpha1"), rpc(delete_by_prefix_alpha1_grpc)),
        (dapr_rpc("ListJobs"), rpc(list_grpc)),
        (dapr_rpc("DeleteJobsByPrefix"), rpc(delete_by_prefix_grpc)),
    ];
    for suffix in ["", "Alpha1"] {
        rpcs.push((dapr_rpc(&format!("ScheduleJob{suffix}")), rpc(schedule_grpc)));
        rpcs.push((dapr_rpc(&format!("GetJob{suffix}")), rpc(get_grpc)));
        rpcs.push((dapr_rpc(&format!("DeleteJob{suffix}")), rpc(delete_grpc)));
    }
    rpcs
}

/// Why a jobs request is refused before anything is stored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobRequestError {
    /// A gRPC request without its job.
    #[error("Job is empty")]
    JobEmpty,
    /// A job without a name.
    #[error("Name is empty")]
    NameEmpty,
    /// A job with neither a schedule nor a due time.
    #[error("Schedule is empty")]
    ScheduleEmpty,
    /// The HTTP body named the job; only the URL may.
    #[error("Set the job name in the url only")]
    NameInBody,
    /// A name no job can have.
    #[error("job name '{0}' is invalid: use 1 to {MAX_NAME_BYTES} bytes without control characters")]
    InvalidName(String),
    /// The job's fields cannot be scheduled.
    #[error("failed to schedule job due to: {0}")]
    Unschedulable(String),
    /// A job of that name exists and the request did not ask to overwrite it.
    #[error("failed to schedule job due to: job '{0}' already exists; set overwrite to replace it")]
    Exists(String),
    /// No job of that name.
    #[error("failed to get job due to: job '{0}' not found")]
    NotFound(String),
}

fn check_name(name: &str) -> Result<(), JobRequestError> {
    if name.is_empty() {
        return Err(JobRequestError::NameEmpty);
    }
    if name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(JobRequestError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// Schedules `spec` as the caller's job `name`.
async fn schedule(
    gateway: &Gateway,
    tenant: &Tenant,
    name: &str,
    spec: JobSpec,
    overwrite: bool,
) -> Result<(), DaprError> {
    check_name(name)?;
    let first_due = spec.first_due().map_err(|err| match err {
        outrigger_jobs::JobError::NoSchedule => JobRequestError::ScheduleEmpty,
        other => JobRequestError::Unschedulable(other.to_string()),
    })?;
    let stored = serde_json::to_string(&spec).expect("job specs serialise");
    let mut tx = gateway.0.control_plane.begin().await.map_err(DaprError::jobs_store)?;
    let due_at = first_due.timestamp_millis();
    match tx.put_job(&tenant.project_id, &tenant.app_id, name, &stored, due_at, overwrite).await {
        Ok(()) => {}
        Err(outrigger_store::Error::AlreadyExists { .. }) => {
            return Err(JobRequestError::Exists(name.to_owned()).into())
        }
        Err(err) => return Err(DaprError::jobs_store(err)),
    }
    tx.commit().await.map_err(DaprError::jobs_store)?;
    tracing::info!(project_id = %tenant.project_id, app_id = %tenant.app_id, job = name, due_at, "job scheduled");
    Ok(())
}

async fn find(gateway: &Gateway, tenant: &Tenant, name: &str) -> Result<(String, JobSpec), DaprError> {
    check_name(name)?;
    let mut tx = gateway.0.control_plane.begin().await.map_err(DaprError::jobs_store)?;
    let stored = tx.job(&tenant.project_id, &tenant.app_id, name).await.map_err(DaprError::jobs_store)?;
    let stored = stored.ok_or_else(|| JobRequestError::NotFound(name.to_owned()))?;
    Ok((stored.name.clone(), spec_of(&stored)?))
}

fn spec_of(stored: &StoredJob) -> Result<JobSpec, DaprError> {
    serde_json::from_str(&stored.spec)
        .map_err(|err| DaprError::jobs_store(format!("job '{}' is unreadable: {err}", stored.name)))
}

async fn delete(gateway: &Gateway, tenant: &Tenant, name: &str) -> Result<(), DaprError> {
    check_name(name)?;
    let mut tx = gateway.0.control_plane.begin().await.map_err(DaprError::jobs_store)?;
    match tx.delete_job(&tenant.project_id, &tenant.app_id, name).await {
        // Deleting a job that is not there succeeds, as in daprd.
        Ok(()) | Err(outrigger_store::Error::NotFound { .. }) => {}
        Err(err) => return Err(DaprError::jobs_store(err)),
    }
    tx.commit().await.map_err(DaprError::jobs_store)
}

async fn list(gateway: &Gateway, tenant: &Tenant) -> Result<Vec<pb::Job>, DaprError> {
    let mut tx = gateway.0.control_plane.begin().await.map_err(DaprError::jobs_store)?;
    let stored = tx.app_jobs(&tenant.project_id, &tenant.app_id).await.map_err(DaprError::jobs_store)?;
    stored.iter().map(|job| Ok(job_proto(job.name.clone(), spec_of(job)?))).collect()
}

async fn delete_by_prefix(gateway: &Gateway, tenant: &Tenant, prefix: &str) -> Result<(), DaprError> {
    let mut tx = gateway.0.control_plane.begin().await.map_err(DaprError::jobs_store)?;
    tx.delete_jobs_by_prefix(&tenant.project_id, &tenant.app_id, prefix).await.map_err(DaprError::jobs_store)?;
    tx.commit().await.map_err(DaprError::jobs_store)
}

// === HTTP ===

/// protojson of daprd's `JobHTTPRequest`: `data` is any JSON.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobBody {
    #[serde(default)]
    name: Option<String>,
    schedule: Option<String>,
    repeats: Option<Value>,
    #[serde(alias = "due_time")]
    due_time: Option<String>,
    ttl: Option<String>,
    data: Option<Value>,
    #[serde(alias = "failure_policy")]
    failure_policy: Option<Value>,
    #[serde(default)]
    overwrite: bool,
}

fn protojson_u32(value: &Value, field: &str) -> Result<u32, DaprError> {
    let number = match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    };
    number
        .and_then(|number| u32::try_from(number).ok())
        .ok_or_else(|| DaprError::malformed(format!("{field} must be a whole number (uint32)")))
}

/// A protojson `Duration` (`"1.5s"`).
fn protojson_duration(value: &Value) -> Result<Duration, DaprError> {
    let seconds =
        value.as_str().and_then(|text| text.strip_suffix('s')).and_then(|seconds| seconds.parse::<f64>().ok());
    seconds
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| DaprError::malformed("failurePolicy.constant.interval must be a duration such as \"5s\""))
}

fn failure_policy_json(value: &Value) -> Result<FailurePolicy, DaprError> {
    if value.get("drop").is_some() {
        return Ok(FailurePolicy::Drop);
    }
    let Some(constant) = value.get("constant") else {
        return Err(DaprError::malformed(
            "failurePolicy must be {\"drop\": {}} or {\"constant\": {\"interval\", \"maxRetries\"}}",
        ));
    };
    let interval = constant.get("interval").map(protojson_duration).transpose()?.unwrap_or_default();
    let max_retries = constant
        .get("maxRetries")
        .or_else(|| constant.get("max_retries"))
        .map(|v| protojson_u32(v, "maxRetries"))
        .transpose()?;
    Ok(FailurePolicy::Constant { interval, max_retries })
}

async fn schedule_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<Response, DaprError> {
    let body: JobBody = parse_json(&body)?;
    if body.name.as_deref().is_some_and(|named| !named.is_empty()) {
        return Err(JobRequestError::NameInBody.into());
    }
    let spec = JobSpec {
        schedule: body.schedule,
        due_time: body.due_time,
        repeats: body.repeats.as_ref().map(|repeats| protojson_u32(repeats, "repeats")).transpose()?,
        ttl: body.ttl,
        data: body.data.map(JobData::Json),
        failure_policy: body.failure_policy.as_ref().map(failure_policy_json).transpose()?,
        scheduled_at: chrono::Utc::now().timestamp_millis(),
    };
    schedule(&gateway, &tenant, name.trim(), spec, body.overwrite).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// protojson of the job, as daprd answers `GET /jobs/{name}`.
async fn get_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path(name): Path<String>,
) -> Result<Response, DaprError> {
    let (name, spec) = find(&gateway, &tenant, &name).await?;
    let mut job = json!({ "name": name });
    for (field, value) in [("schedule", &spec.schedule), ("dueTime", &spec.due_time), ("ttl", &spec.ttl)] {
        if let Some(value) = value {
            job[field] = json!(value);
        }
    }
    if let Some(repeats) = spec.repeats {
        job["repeats"] = json!(repeats);
    }
    if let Some(data) = &spec.data {
        job["data"] = data_as_protojson(data);
    }
    match spec.failure_policy {
        Some(FailurePolicy::Drop) => job["failurePolicy"] = json!({"drop": {}}),
        Some(FailurePolicy::Constant { interval, max_retries }) => {
            let mut constant = json!({ "interval": format!("{}s", interval.as_secs_f64()) });
            if let Some(max_retries) = max_retries {
                constant["maxRetries"] = json!(max_retries);
            }
            job["failurePolicy"] = json!({ "constant": constant });
        }
        None => {}
    }
    Ok(Json(job).into_response())
}

async fn delete_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path(name): Path<String>,
) -> Result<Response, DaprError> {
    delete(&gateway, &tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// === gRPC ===

/// JSON as a protobuf `Value`, and back.
fn value_proto(value: &Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(flag) => Kind::BoolValue(*flag),
        Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or_default()),
        Value::String(text) => Kind::StringValue(text.clone()),
        Value::Array(items) => {
            Kind::ListValue(prost_types::ListValue { values: items.iter().map(value_proto).collect() })
        }
        Value::Object(fields) => Kind::StructValue(prost_types::Struct {
            fields: fields.iter().map(|(name, value)| (name.clone(), value_proto(value))).collect::<BTreeMap<_, _>>(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

fn value_json(value: prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(flag)) => Value::Bool(flag),
        Some(Kind::NumberValue(number)) => json!(number),
        Some(Kind::StringValue(text)) => Value::String(text),
        Some(Kind::ListValue(list)) => Value::Array(list.values.into_iter().map(value_json).collect()),
        Some(Kind::StructValue(fields)) => {
            Value::Object(fields.fields.into_iter().map(|(name, value)| (name, value_json(value))).collect())
        }
    }
}

fn data_of(any: prost_types::Any) -> Result<JobData, DaprError> {
    if any.type_url == VALUE_TYPE_URL {
        let value = prost_types::Value::decode(any.value.as_slice())
            .map_err(|err| DaprError::malformed(format!("job data is not a google.protobuf.Value: {err}")))?;
        return Ok(JobData::Json(value_json(value)));
    }
    Ok(JobData::Any { type_url: any.type_url, value: any.value })
}

fn failure_policy_of(policy: common::JobFailurePolicy) -> Option<FailurePolicy> {
    use common::job_failure_policy::Policy;
    match policy.policy? {
        Policy::Drop(_) => Some(FailurePolicy::Drop),
        Policy::Constant(constant) => {
            let interval = constant.interval.map(|interval| {
                Duration::new(interval.seconds.max(0).unsigned_abs(), interval.nanos.max(0).unsigned_abs())
            });
            Some(FailurePolicy::Constant { interval: interval.unwrap_or_default(), max_retries: constant.max_retries })
        }
    }
}

fn job_proto(name: String, spec: JobSpec) -> pb::Job {
    use common::job_failure_policy::Policy;
    let data = spec.data.map(|data| match data {
        JobData::Json(value) => {
            prost_types::Any { type_url: VALUE_TYPE_URL.to_owned(), value: value_proto(&value).encode_to_vec() }
        }
        JobData::Any { type_url, value } => prost_types::Any { type_url, value },
    });
    let failure_policy = spec.failure_policy.map(|policy| common::JobFailurePolicy {
        policy: Some(match policy {
            FailurePolicy::Drop => Policy::Drop(common::JobFailurePolicyDrop {}),
            FailurePolicy::Constant { interval, max_retries } => Policy::Constant(common::JobFailurePolicyConstant {
                interval: Some(prost_types::Duration {
                    seconds: i64::try_from(interval.as_secs()).unwrap_or(i64::MAX),
                    nanos: i32::try_from(interval.subsec_nanos()).unwrap_or_default(),
                }),
                max_retries,
            }),
        }),
    });
    pb::Job {
        name,
        schedule: spec.schedule,
        repeats: spec.repeats,
        due_time: spec.due_time,
        ttl: spec.ttl,
        data,
        failure_policy,
    }
}

async fn schedule_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::ScheduleJobRequest,
) -> Result<pb::ScheduleJobResponse, DaprError> {
    let job = request.job.ok_or(JobRequestError::JobEmpty)?;
    let spec = JobSpec {
        schedule: job.schedule,
        due_time: job.due_time,
        repeats: job.repeats,
        ttl: job.ttl,
        data: job.data.map(data_of).transpose()?,
        failure_policy: job.failure_policy.and_then(failure_policy_of),
        scheduled_at: chrono::Utc::now().timestamp_millis(),
    };
    schedule(&gateway, &caller.tenant, &job.name, spec, request.overwrite).await?;
    Ok(pb::ScheduleJobResponse {})
}

async fn get_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::GetJobRequest,
) -> Result<pb::GetJobResponse, DaprError> {
    let (name, spec) = find(&gateway, &caller.tenant, &request.name).await?;
    Ok(pb::GetJobResponse { job: Some(job_proto(name, spec)) })
}

async fn delete_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::DeleteJobRequest,
) -> Result<pb::DeleteJobResponse, DaprError> {
    delete(&gateway, &caller.tenant, &request.name).await?;
    Ok(pb::DeleteJobResponse {})
}

async fn list_grpc(
    gateway: Gateway,
    caller: Caller,
    _: pb::ListJobsRequest,
) -> Result<pb::ListJobsResponse, DaprError> {
    Ok(pb::ListJobsResponse { jobs: list(&gateway, &caller.tenant).await? })
}

async fn list_alpha1_grpc(
    gateway: Gateway,
    caller: Caller,
    _: pb::ListJobsRequestAlpha1,
) -> Result<pb::ListJobsResponseAlpha1, DaprError> {
    Ok(pb::ListJobsResponseAlpha1 { jobs: list(&gateway, &caller.tenant).await? })
}

async fn delete_by_prefix_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::DeleteJobsByPrefixRequest,
) -> Result<pb::DeleteJobsByPrefixResponse, DaprError> {
    delete_by_prefix(&gateway, &caller.tenant, request.name_prefix.as_deref().unwrap_or_default()).await?;
    Ok(pb::DeleteJobsByPrefixResponse {})
}

async fn delete_by_prefix_alpha1_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::DeleteJobsByPrefixRequestAlpha1,
) -> Result<pb::DeleteJobsByPrefixResponseAlpha1, DaprError> {
    delete_by_prefix(&gateway, &caller.tenant, request.name_prefix.as_deref().unwrap_or_default()).await?;
    Ok(pb::DeleteJobsByPrefixResponseAlpha1 {})
}
