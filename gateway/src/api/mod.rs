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

use axum::http::HeaderName;
pub(crate) use configuration::Subscriptions as ConfigurationSubscriptions;
pub(crate) use jobs::JobRequestError;
pub(crate) use workflow::WorkflowRequestError;

pub(crate) use crate::observe::trace_context;

/// The header (HTTP) and metadata key (gRPC) SDKs send the API token in. A `HeaderName`, not a `&str`: a look-up
/// by `&str` parses the name first, ~430 instructions a call.
pub(crate) const API_TOKEN: HeaderName = HeaderName::from_static("dapr-api-token");
