//! The data-plane edge: the Dapr HTTP API (port 3500 by default) and the Dapr gRPC API (50001).
//!
//! The SDKs block on the health probes before anything else, so those answer from the first moment;
//! routes of building blocks that are not served yet answer daprd's `ERR_API_UNIMPLEMENTED` (HTTP 501 /
//! gRPC `Unimplemented`) rather than a bare 404, so an SDK user sees which API is missing.

mod dapr_error;
mod path;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

pub use dapr_error::DaprError;
pub use path::clean_path;

/// The Dapr HTTP API.
pub fn http_router() -> Router {
    Router::new()
        .route("/v1.0/healthz", get(|| async { StatusCode::NO_CONTENT }))
        .route("/v1.0/healthz/outbound", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(|uri: axum::http::Uri| async move { DaprError::unimplemented(uri.path()) })
}

/// The Dapr gRPC API (HTTP/2 without TLS, as the SDKs dial it).
pub fn grpc_router() -> Router {
    Router::new()
        .fallback(|uri: axum::http::Uri| async move { DaprError::unimplemented(uri.path()).into_grpc_response() })
}
