//! The one place where control-API failures become HTTP answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The JSON body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable code (snake_case).
    pub code: &'static str,
    /// What went wrong and what to do about it.
    pub message: String,
    /// Extra facts, e.g. which document of an apply failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// A failure answered to the caller.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<serde_json::Value>,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: None, retry_after_secs: None }
    }

    /// 400: the input is wrong; the message says how.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no credential, or one that is wrong, expired, revoked or ended.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid credential: send 'Authorization: Bearer <token>' with the operator token \
             (OUTRIGGER_ADMIN_TOKEN, or the admin-token file in the data directory), an API key, or an access token \
             from POST /api/v1/auth/login (refresh it with POST /api/v1/auth/refresh when it expires)",
        )
    }

    /// 401 from sign-in: the email or password is wrong (which one is not said).
    pub fn invalid_credentials() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong email or password, or the refresh token is no longer valid: sign in again",
        )
    }

    /// 401 from single sign-on: the provider refused, or its answer is not acceptable.
    pub fn sign_in_refused(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "sign_in_refused", message)
    }

    /// 502: the identity provider could not be reached or answered wrongly.
    pub fn bad_gateway(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_GATEWAY, "identity_provider_unavailable", message)
    }

    /// 403: the caller is known but its role does not allow this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 429: too many attempts; try again after `retry_after_secs`.
    pub fn too_many_requests(message: impl Into<String>, retry_after_secs: u64) -> ApiError {
        let mut err = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message);
        err.retry_after_secs = Some(retry_after_secs.max(1));
        err
    }

    /// 503: a backing store (the managed kvstore or pubsub) failed or cannot be reached; the message names it.
    pub fn store_unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405: the route exists, the method does not (the `Allow` header lists those that do).
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method: the Allow header lists the ones it takes",
        )
    }

    /// 409: the request conflicts with what exists.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    /// 413.
    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body exceeds {limit} bytes (raise OUTRIGGER_CONTROL_API_MAX_BODY_BYTES to allow more)"),
        )
    }

    /// 422: well-formed JSON of the wrong shape.
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", message)
    }

    /// 500: something of the server's failed; the log says what.
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the control-plane database failed; the operator can find the cause in the server log",
        )
    }

    /// Attaches structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> ApiError {
        self.details = Some(details);
        self
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<outrigger_store::Error> for ApiError {
    fn from(err: outrigger_store::Error) -> ApiError {
        use outrigger_store::Error as Store;
        match err {
            Store::NotFound { .. } => ApiError::not_found(err.to_string()),
            Store::AlreadyExists { .. } => ApiError::conflict("already_exists", err.to_string()),
            Store::InvalidContinuation => ApiError::bad_request("invalid_continuation_token", err.to_string()),
            other => {
                tracing::error!(error = %other, "control-plane store failed");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { code: self.code, message: self.message, details: self.details };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
