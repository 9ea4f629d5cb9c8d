//! The gateway in process: a real control-plane store, a real worker behind the in-process bus, HTTP
//! through the router and gRPC through a real listener with the `dapr` crate's generated client.

mod harness;

mod auth;
mod bindings;
mod configuration;
mod grpc;
mod http_state;
mod invoke;
mod isolation;
mod jobs;
mod lock;
mod outage;
mod probes;
mod pubsub;
mod pubsub_delivery;
mod secrets;
mod security;
mod security_egress;
mod security_query;
mod security_streams;
mod streaming;
mod workflow_http;
