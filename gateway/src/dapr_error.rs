//! The one place where failures become daprd's answers: HTTP `{"errorCode","message"}` with daprd's status,
//! and gRPC status with a `google.rpc.ErrorInfo` detail (what the Python SDK's `DaprGrpcError` reads). Every
//! error type of the data plane (refused admissions, worker errors, bus failures, invocation, workflow and
//! metadata errors) is mapped here and nowhere else.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use outrigger_bus::{BusError, FailedEntry};
use serde::Serialize;
use serde_json::json;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

use crate::api::{JobRequestError, WorkflowRequestError};
use crate::extended_metadata::ExtendedMetadataError;
use crate::invoke::InvokeError;
use outrigger_workflow::WorkflowError;

mod data;

/// Domain of every `ErrorInfo` daprd sends.
const ERROR_DOMAIN: &str = "dapr.io";

/// An error answered to a Dapr SDK.
#[derive(Debug, Clone)]
pub struct DaprError {
    status: StatusCode,
    grpc_code: Code,
    error_code: &'static str,
    reason: &'static str,
    message: String,
}

impl std::fmt::Display for DaprError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_code, self.message)
    }
}

impl std::error::Error for DaprError {}

#[derive(Serialize)]
struct HttpBody<'a> {
    #[serde(rename = "errorCode")]
    error_code: &'a str,
    message: &'a str,
}

/// Why a call was not let in.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// No `dapr-api-token`.
    MissingToken,
    /// A token that identifies no App ID (unknown, revoked, expired).
    WrongToken,
    /// Over the App ID's rate.
    RateLimited(u32),
    /// The token could not be checked.
    Unavailable,
}

impl Refusal {
    /// daprd's HTTP answer: a wrong or missing token is a bare 401 with a text body (`pkg/http/api_token`).
    pub(crate) fn into_response(self) -> Response {
        match self {
            Refusal::MissingToken | Refusal::WrongToken => {
                (StatusCode::UNAUTHORIZED, [(CONTENT_TYPE, "text/plain; charset=utf-8")], "invalid api token")
                    .into_response()
            }
            Refusal::RateLimited(limit) => DaprError::rate_limited(limit).into_response(),
            Refusal::Unavailable => DaprError::auth_unavailable().into_response(),
        }
    }

    /// daprd's gRPC answer (`pkg/api/grpc/auth.go`): plain UNAUTHENTICATED statuses for tokens.
    pub(crate) fn into_grpc_response(self) -> Response {
        let status = match self {
            Refusal::MissingToken => tonic::Status::unauthenticated("missing api token in request metadata"),
            Refusal::WrongToken => tonic::Status::unauthenticated("authentication error: api token mismatch"),
            Refusal::RateLimited(limit) => DaprError::rate_limited(limit).to_status(),
            Refusal::Unavailable => DaprError::auth_unavailable().to_status(),
        };
        status.into_http()
    }
}

impl DaprError {
    fn new(
        status: StatusCode,
        grpc_code: Code,
        error_code: &'static str,
        reason: &'static str,
        message: String,
    ) -> DaprError {
        DaprError { status, grpc_code, error_code, reason, message }
    }

    /// The API at `path` is not served (daprd's `ERR_API_UNIMPLEMENTED`).
    pub fn unimplemented(path: &str) -> DaprError {
        DaprError::new(
            StatusCode::NOT_IMPLEMENTED,
            Code::Unimplemented,
            "ERR_API_UNIMPLEMENTED",
            "DAPR_API_UNIMPLEMENTED",
            format!("{path} is not served by this Outrigger version"),
        )
    }

    /// A call that needs the caller's app endpoint, from an App ID without one (daprd's nil app channel).
    pub fn app_channel_missing(message: impl Into<String>) -> DaprError {
        DaprError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Internal,
            "ERR_APP_CHANNEL_NIL",
            "DAPR_APP_CHANNEL_NIL",
            message.into(),
        )
    }

    /// Whether the error says the store called, or the caller's whole project, no longer exists (a component
    /// deleted or unscoped, a project deleted): what a long-lived subscription ends on instead of retrying.
    pub(crate) fn means_gone(&self) -> bool {
        matches!(
            self.error_code,
            "ERR_CONFIGURATION_STORE_NOT_FOUND"
                | "ERR_CONFIGURATION_STORE_NOT_CONFIGURED"
                | "ERR_STATE_STORE_NOT_CONFIGURED"
        )
    }

    /// A request daprd could not read (bad JSON, missing fields).
    pub fn malformed(message: impl Into<String>) -> DaprError {
        DaprError::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidArgument,
            "ERR_MALFORMED_REQUEST",
            "DAPR_MALFORMED_REQUEST",
            message.into(),
        )
    }

    /// A bulk publish whose entries cannot be told apart.
    pub fn bulk_entries(message: impl Into<String>) -> DaprError {
        DaprError::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidArgument,
            "ERR_PUBSUB_EVENTS_SER",
            "DAPR_PUBSUB_EVENTS_SER",
            message.into(),
        )
    }

    /// The gateway is shutting down; another one (or this one, restarted) answers the retry.
    pub fn shutting_down() -> DaprError {
        DaprError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Unavailable,
            "ERR_SHUTTING_DOWN",
            "DAPR_SHUTTING_DOWN",
            "this gateway is shutting down; retry the call".to_owned(),
        )
    }

    /// A body over the configured limit.
    pub fn body_too_large(limit: usize) -> DaprError {
        DaprError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::ResourceExhausted,
            "ERR_BODY_READ",
            "DAPR_BODY_TOO_LARGE",
            format!("request body exceeds the limit of {limit} bytes"),
        )
    }

    /// The App ID went over its request rate.
    pub fn rate_limited(limit: u32) -> DaprError {
        DaprError::new(
            StatusCode::TOO_MANY_REQUESTS,
            Code::ResourceExhausted,
            "ERR_TOO_MANY_REQUESTS",
            "DAPR_RATE_LIMITED",
            format!("this App ID is limited to {limit} requests per second; retry after the Retry-After delay"),
        )
    }

    /// The control-plane database could not be asked who a token belongs to.
    pub fn auth_unavailable() -> DaprError {
        DaprError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Unavailable,
            "ERR_AUTH_UNAVAILABLE",
            "DAPR_AUTH_UNAVAILABLE",
            "the API token cannot be checked right now; retry shortly".to_owned(),
        )
    }

    /// An open stream's token no longer authenticates (revoked or expired): the stream ends, as a request
    /// with that token would be refused.
    pub fn credential_ended() -> DaprError {
        DaprError::new(
            StatusCode::UNAUTHORIZED,
            Code::Unauthenticated,
            "ERR_API_TOKEN_ENDED",
            "DAPR_API_TOKEN_ENDED",
            "the stream's API token was revoked or expired; reconnect with a valid token".to_owned(),
        )
    }

    /// An open stream's App ID was deleted: the stream ends and there is nothing to reconnect as.
    pub fn app_id_deleted(app_id: &str) -> DaprError {
        DaprError::new(
            StatusCode::NOT_FOUND,
            Code::NotFound,
            "ERR_APP_ID_NOT_FOUND",
            "DAPR_APP_ID_NOT_FOUND",
            format!("the stream's App ID '{app_id}' was deleted"),
        )
    }

    /// An open stream's project was deleted, with every App ID in it.
    pub fn project_deleted(project: &str) -> DaprError {
        DaprError::new(
            StatusCode::NOT_FOUND,
            Code::NotFound,
            "ERR_PROJECT_NOT_FOUND",
            "DAPR_PROJECT_NOT_FOUND",
            format!("the stream's project '{project}' was deleted"),
        )
    }

    /// An invocation that did not reach the callee or did not come back (daprd `ERR_DIRECT_INVOKE`), or that the
    /// callee's access control refused (`ERR_PERMISSION_DENIED`).
    pub(crate) fn invocation(err: &InvokeError) -> DaprError {
        let message = err.to_string();
        match err {
            InvokeError::Denied { .. } => DaprError::new(
                StatusCode::FORBIDDEN,
                Code::PermissionDenied,
                "ERR_PERMISSION_DENIED",
                "DAPR_PERMISSION_DENIED",
                message,
            ),
            InvokeError::Body(_) => DaprError::malformed(message),
            InvokeError::AppFailed { status, .. } => DaprError::new(
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                Code::Unknown,
                "ERR_DIRECT_INVOKE",
                "DAPR_DIRECT_INVOKE",
                message,
            ),
            InvokeError::UnknownTarget { .. }
            | InvokeError::NoEndpoint { .. }
            | InvokeError::GrpcApp { .. }
            | InvokeError::Unhealthy { .. }
            | InvokeError::Refused { .. }
            | InvokeError::BadEndpoint { .. }
            | InvokeError::Unreachable { .. }
            | InvokeError::TimedOut { .. }
            | InvokeError::CircuitOpen { .. }
            | InvokeError::Directory { .. } => DaprError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                "ERR_DIRECT_INVOKE",
                "DAPR_DIRECT_INVOKE",
                message,
            ),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The same error as a gRPC status with daprd's rich details.
    pub fn to_status(&self) -> tonic::Status {
        let details = ErrorDetails::with_error_info(
            self.reason,
            ERROR_DOMAIN,
            [("errorCode".to_owned(), self.error_code.to_owned())],
        );
        tonic::Status::with_error_details(self.grpc_code, self.message.clone(), details)
    }

    /// The same error as a trailers-only gRPC answer.
    pub fn into_grpc_response(self) -> Response {
        self.to_status().into_http()
    }
}

impl From<BusError> for DaprError {
    fn from(err: BusError) -> DaprError {
        tracing::warn!(error = %err, "call to workers failed");
        match err {
            BusError::Unavailable { .. } => DaprError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::Unavailable,
                "ERR_WORKER_UNAVAILABLE",
                "DAPR_WORKER_UNAVAILABLE",
                format!("{err}; retry shortly"),
            ),
            BusError::Codec(_) => DaprError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                "ERR_WORKER_PROTOCOL",
                "DAPR_WORKER_PROTOCOL",
                format!("{err}; retrying will not help, the operator must look at the gateway and worker logs"),
            ),
        }
    }
}

/// daprd's HTTP answer to a bulk publish whose entries did not all reach the broker: 500, with the failed
/// entries and the publish error code (gRPC lists them in a successful answer instead).
pub(crate) fn bulk_publish_failure(failed: Vec<FailedEntry>) -> Response {
    let failed: Vec<_> =
        failed.into_iter().map(|entry| json!({ "entryId": entry.entry_id, "error": entry.error })).collect();
    let body = json!({ "failedEntries": failed, "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE" });
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

impl IntoResponse for DaprError {
    fn into_response(self) -> Response {
        let body = HttpBody { error_code: self.error_code, message: &self.message };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<InvokeError> for DaprError {
    fn from(err: InvokeError) -> DaprError {
        DaprError::invocation(&err)
    }
}

impl From<WorkflowError> for DaprError {
    fn from(err: WorkflowError) -> DaprError {
        let message = err.to_string();
        let (status, code, error_code) = match err {
            WorkflowError::AlreadyExists(_) => (StatusCode::CONFLICT, Code::AlreadyExists, "ERR_INSTANCE_ID_EXISTS"),
            WorkflowError::NotFound(_) => (StatusCode::NOT_FOUND, Code::NotFound, "ERR_INSTANCE_ID_NOT_FOUND"),
            WorkflowError::NotCompleted(_) => (StatusCode::BAD_REQUEST, Code::FailedPrecondition, "ERR_PURGE_WORKFLOW"),
            WorkflowError::Invalid(_) => (StatusCode::BAD_REQUEST, Code::InvalidArgument, "ERR_MALFORMED_REQUEST"),
            WorkflowError::Store(_) | WorkflowError::Corrupt(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, "ERR_WORKFLOW_STORE")
            }
        };
        DaprError::new(status, code, error_code, "DAPR_WORKFLOW", message)
    }
}

impl From<WorkflowRequestError> for DaprError {
    fn from(err: WorkflowRequestError) -> DaprError {
        let error_code = match err {
            WorkflowRequestError::ComponentNotFound(_) => "ERR_WORKFLOW_COMPONENT_NOT_FOUND",
            WorkflowRequestError::AppIdInvalid(_) => "ERR_WORKFLOW_APP_ID_INVALID",
            WorkflowRequestError::InstanceIdTooLong => "ERR_INSTANCE_ID_TOO_LONG",
            WorkflowRequestError::InstanceIdInvalid(_) => "ERR_INSTANCE_ID_INVALID",
            WorkflowRequestError::NameMissing => "ERR_WORKFLOW_NAME_MISSING",
            WorkflowRequestError::EventNameMissing => "ERR_WORKFLOW_EVENT_NAME_MISSING",
        };
        DaprError::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, error_code, "DAPR_WORKFLOW", err.to_string())
    }
}

impl From<JobRequestError> for DaprError {
    fn from(err: JobRequestError) -> DaprError {
        let (status, grpc_code, error_code) = match err {
            JobRequestError::JobEmpty => (StatusCode::BAD_REQUEST, Code::InvalidArgument, "DAPR_SCHEDULER_EMPTY"),
            JobRequestError::NameEmpty => {
                (StatusCode::BAD_REQUEST, Code::InvalidArgument, "DAPR_SCHEDULER_JOB_NAME_EMPTY")
            }
            JobRequestError::ScheduleEmpty => {
                (StatusCode::BAD_REQUEST, Code::InvalidArgument, "DAPR_SCHEDULER_SCHEDULE_EMPTY")
            }
            JobRequestError::NameInBody => (StatusCode::BAD_REQUEST, Code::InvalidArgument, "DAPR_SCHEDULER_JOB_NAME"),
            JobRequestError::InvalidName(_) | JobRequestError::Unschedulable(_) => {
                (StatusCode::BAD_REQUEST, Code::InvalidArgument, "DAPR_SCHEDULER_SCHEDULE_JOB")
            }
            JobRequestError::Exists(_) => (StatusCode::CONFLICT, Code::AlreadyExists, "DAPR_SCHEDULER_SCHEDULE_JOB"),
            // daprd answers a job it does not have as a failed get.
            JobRequestError::NotFound(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, "DAPR_SCHEDULER_GET_JOB")
            }
        };
        DaprError::new(status, grpc_code, error_code, error_code, err.to_string())
    }
}

impl DaprError {
    /// The control-plane database, where jobs are kept, failed.
    pub(crate) fn jobs_store(err: impl std::fmt::Display) -> DaprError {
        tracing::warn!(error = %err, "the jobs store failed");
        DaprError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Unavailable,
            "DAPR_SCHEDULER_UNAVAILABLE",
            "DAPR_SCHEDULER_UNAVAILABLE",
            format!("jobs cannot be reached right now: {err}; retry shortly"),
        )
    }
}

impl From<ExtendedMetadataError> for DaprError {
    fn from(err: ExtendedMetadataError) -> DaprError {
        match err {
            ExtendedMetadataError::EmptyKey
            | ExtendedMetadataError::KeyTooLong(_)
            | ExtendedMetadataError::ValueTooLong(_)
            | ExtendedMetadataError::TooManyKeys => DaprError::malformed(err.to_string()),
            ExtendedMetadataError::Store(_) => {
                tracing::warn!(error = %err, "setting extended metadata failed");
                DaprError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Code::Unavailable,
                    "ERR_METADATA_UNAVAILABLE",
                    "DAPR_METADATA_UNAVAILABLE",
                    err.to_string(),
                )
            }
        }
    }
}

#[cfg(test)]
mod gone_tests {
    use outrigger_bus::DataError;

    use super::*;

    #[test]
    fn subscriptions_end_on_a_store_or_project_that_is_gone_and_only_then() {
        let gone = [
            DataError::ConfigurationStoreNotFound { store: "redisconfig".into() },
            DataError::ConfigurationStoresNotConfigured,
            // What a worker answers for a project that was deleted.
            DataError::StoresNotConfigured,
        ];
        assert!(gone.into_iter().all(|err| DaprError::from(err).means_gone()));
        let passing = [
            DataError::ConfigurationSubscribe { message: "redis is down".into() },
            DataError::ProjectUnavailable { message: "database is down".into() },
        ];
        assert!(passing.into_iter().all(|err| !DaprError::from(err).means_gone()));
    }
}
