//! The Dapr APIs, one module per building block. Each block's module holds its HTTP routes and its gRPC rpcs
//! side by side, over one set of checks and conversions into the block's typed bus calls
//! ([`outrigger_bus::DataCall`]); [`http`] and [`grpc`] hold what every block shares. `docs/api-map.md` lists
//! where each API lives, from socket to store.

mod bindings;
mod configuration;
pub(crate) mod grpc;
pub(crate) mod http;
mod invoke;
mod jobs;
mod lock;
mod metadata;
mod pubsub;
mod pubsub_stream;
mod secrets;
mod state;
mod workflow;
mod workflow_stream;

use axum::http::{HeaderMap, HeaderName};
pub(crate) use configuration::Subscriptions as ConfigurationSubscriptions;
pub(crate) use jobs::JobRequestError;
use outrigger_bus::TraceContext;
use outrigger_telemetry::trace::{TRACEPARENT, TRACESTATE};
pub(crate) use workflow::WorkflowRequestError;

/// The header (HTTP) and metadata key (gRPC) SDKs send the API token in. A `HeaderName`, not a `&str`: a look-up
/// by `&str` parses the name first, ~430 instructions a call.
pub(crate) const API_TOKEN: HeaderName = HeaderName::from_static("dapr-api-token");

/// The W3C trace context of a request (HTTP headers or gRPC metadata).
pub(crate) fn trace_context(headers: &HeaderMap) -> TraceContext {
    let header = |name| headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
    TraceContext { traceparent: header(TRACEPARENT), tracestate: header(TRACESTATE) }
}
