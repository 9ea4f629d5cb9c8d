//! What the workers' errors ([`DataError`]) become: daprd's status, gRPC code, `errorCode` and `ErrorInfo`
//! reason for each, state errors named by the operation that failed.

use axum::http::StatusCode;
use outrigger_bus::{DataError, StateOperation};
use tonic::Code;

use super::DaprError;

fn operation_code(operation: StateOperation) -> &'static str {
    match operation {
        StateOperation::Get => "ERR_STATE_GET",
        StateOperation::BulkGet => "ERR_STATE_BULK_GET",
        StateOperation::Save => "ERR_STATE_SAVE",
        StateOperation::Delete => "ERR_STATE_DELETE",
        StateOperation::BulkDelete => "ERR_STATE_BULK_DELETE",
        StateOperation::Transaction => "ERR_STATE_TRANSACTION",
        StateOperation::Query => "ERR_STATE_QUERY",
    }
}

impl From<DataError> for DaprError {
    fn from(err: DataError) -> DaprError {
        let message = err.to_string();
        let (status, code, error_code, reason) = match &err {
            DataError::StoreNotFound { .. } => {
                (StatusCode::BAD_REQUEST, Code::InvalidArgument, "ERR_STATE_STORE_NOT_FOUND", "DAPR_STATE_NOT_FOUND")
            }
            DataError::StoresNotConfigured => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::FailedPrecondition,
                "ERR_STATE_STORE_NOT_CONFIGURED",
                "DAPR_STATE_NOT_CONFIGURED",
            ),
            DataError::EtagMismatch { operation, .. } => {
                (StatusCode::CONFLICT, Code::Aborted, operation_code(*operation), "DAPR_STATE_ETAG_MISMATCH")
            }
            DataError::EtagInvalid { operation, .. } => {
                (StatusCode::BAD_REQUEST, Code::InvalidArgument, operation_code(*operation), "DAPR_STATE_ETAG_INVALID")
            }
            DataError::BadRequest { .. } => {
                (StatusCode::BAD_REQUEST, Code::InvalidArgument, "ERR_MALFORMED_REQUEST", "DAPR_STATE_ILLEGAL_REQUEST")
            }
            DataError::TooManyOperations { .. } => (
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                "ERR_STATE_STORE_TOO_MANY_TRANSACTIONS",
                "DAPR_STATE_TOO_MANY_TRANSACTIONS",
            ),
            DataError::NotSupported { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Unimplemented,
                "ERR_STATE_STORE_NOT_SUPPORTED",
                "DAPR_STATE_NOT_SUPPORTED",
            ),
            DataError::Busy { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, Code::ResourceExhausted, "ERR_TOO_MANY_REQUESTS", "DAPR_STATE_BUSY")
            }
            DataError::StorageQuotaExceeded { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                Code::ResourceExhausted,
                "ERR_TOO_MANY_REQUESTS",
                "DAPR_STATE_QUOTA_EXCEEDED",
            ),
            DataError::StoreFailure { operation, .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                operation_code(*operation),
                "DAPR_STATE_STORE_FAILURE",
            ),
            DataError::PubsubNotFound { .. } => {
                (StatusCode::NOT_FOUND, Code::InvalidArgument, "ERR_PUBSUB_NOT_FOUND", "DAPR_PUBSUB_NOT_FOUND")
            }
            DataError::PubsubNotConfigured => (
                StatusCode::BAD_REQUEST,
                Code::FailedPrecondition,
                "ERR_PUBSUB_NOT_CONFIGURED",
                "DAPR_PUBSUB_NOT_CONFIGURED",
            ),
            DataError::TopicEmpty { .. } => {
                (StatusCode::NOT_FOUND, Code::InvalidArgument, "ERR_TOPIC_NAME_EMPTY", "DAPR_PUBSUB_TOPIC_NAME_EMPTY")
            }
            DataError::TopicForbidden { .. } => {
                (StatusCode::FORBIDDEN, Code::PermissionDenied, "ERR_PUBSUB_FORBIDDEN", "DAPR_PUBSUB_FORBIDDEN")
            }
            DataError::BadPublishMetadata { .. } => (
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                "ERR_PUBSUB_REQUEST_METADATA",
                "DAPR_PUBSUB_METADATA_DESERIALIZATION",
            ),
            DataError::BadCloudEvent { .. } => (
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                "ERR_PUBSUB_CLOUD_EVENTS_SER",
                "DAPR_PUBSUB_CLOUD_EVENT_CREATION",
            ),
            DataError::PublishFailed { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                "ERR_PUBSUB_PUBLISH_MESSAGE",
                "DAPR_PUBSUB_PUBLISH_MESSAGE",
            ),
            DataError::SecretStoresNotConfigured => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::FailedPrecondition,
                "ERR_SECRET_STORES_NOT_CONFIGURED",
                "DAPR_SECRET_STORES_NOT_CONFIGURED",
            ),
            // daprd answers an unknown secret store with 401, not 404.
            DataError::SecretStoreNotFound { .. } => (
                StatusCode::UNAUTHORIZED,
                Code::InvalidArgument,
                "ERR_SECRET_STORE_NOT_FOUND",
                "DAPR_SECRET_STORE_NOT_FOUND",
            ),
            DataError::SecretDenied { .. } => (
                StatusCode::FORBIDDEN,
                Code::PermissionDenied,
                "ERR_PERMISSION_DENIED",
                "DAPR_SECRET_PERMISSION_DENIED",
            ),
            DataError::ProjectUnavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                Code::Unavailable,
                "ERR_PROJECT_UNAVAILABLE",
                "DAPR_PROJECT_UNAVAILABLE",
            ),
            DataError::SecretGet { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, "ERR_SECRET_GET", "DAPR_SECRET_GET")
            }
            DataError::LockStoresNotConfigured => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::FailedPrecondition,
                "ERR_LOCK_STORE_NOT_CONFIGURED",
                "DAPR_LOCK_STORE_NOT_CONFIGURED",
            ),
            DataError::LockStoreNotFound { .. } => (
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                "ERR_LOCK_STORE_NOT_FOUND",
                "DAPR_LOCK_STORE_NOT_FOUND",
            ),
            DataError::LockBadRequest { .. } => {
                (StatusCode::BAD_REQUEST, Code::InvalidArgument, "ERR_MALFORMED_REQUEST", "DAPR_LOCK_ILLEGAL_REQUEST")
            }
            DataError::TryLockFailed { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, "ERR_TRY_LOCK", "DAPR_LOCK_TRY_LOCK")
            }
            DataError::UnlockFailed { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, "ERR_UNLOCK", "DAPR_LOCK_UNLOCK")
            }
            DataError::ConfigurationStoresNotConfigured => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::FailedPrecondition,
                "ERR_CONFIGURATION_STORE_NOT_CONFIGURED",
                "DAPR_CONFIGURATION_STORE_NOT_CONFIGURED",
            ),
            DataError::ConfigurationStoreNotFound { .. } => (
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                "ERR_CONFIGURATION_STORE_NOT_FOUND",
                "DAPR_CONFIGURATION_STORE_NOT_FOUND",
            ),
            DataError::ConfigurationGet { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, "ERR_CONFIGURATION_GET", "DAPR_CONFIGURATION_GET")
            }
            DataError::InvokeBinding { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                "ERR_INVOKE_OUTPUT_BINDING",
                "DAPR_BINDING_INVOKE_OUTPUT_BINDING",
            ),
            DataError::ConfigurationSubscribe { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                "ERR_CONFIGURATION_SUBSCRIBE",
                "DAPR_CONFIGURATION_SUBSCRIBE",
            ),
        };
        DaprError::new(status, code, error_code, reason, message)
    }
}
