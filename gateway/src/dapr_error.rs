//! Errors in daprd's shapes: HTTP `{"errorCode","message"}` and gRPC status.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered to a Dapr SDK.
#[derive(Debug, Serialize)]
pub struct DaprError {
    #[serde(skip)]
    status: StatusCode,
    #[serde(skip)]
    grpc_code: u16,
    #[serde(rename = "errorCode")]
    error_code: &'static str,
    message: String,
}

/// gRPC `Unimplemented`.
const GRPC_UNIMPLEMENTED: u16 = 12;

impl DaprError {
    /// The API at `path` is not served (daprd's `ERR_API_UNIMPLEMENTED`).
    pub fn unimplemented(path: &str) -> DaprError {
        DaprError {
            status: StatusCode::NOT_IMPLEMENTED,
            grpc_code: GRPC_UNIMPLEMENTED,
            error_code: "ERR_API_UNIMPLEMENTED",
            message: format!("{path} is not served by this Outrigger version"),
        }
    }

    /// The same error as a trailers-only gRPC answer.
    pub fn into_grpc_response(self) -> Response {
        let mut response = Response::new(axum::body::Body::empty());
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from(self.grpc_code));
        if let Ok(message) = HeaderValue::from_str(&percent_encode(&self.message)) {
            headers.insert("grpc-message", message);
        }
        response
    }
}

/// gRPC percent-encodes `grpc-message` outside printable ASCII and `%`.
fn percent_encode(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

impl IntoResponse for DaprError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(&self)).into_response()
    }
}
