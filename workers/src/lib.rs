//! Execution: component drivers (state stores, brokers and secret stores), the per-project component runtime, the worker's
//! answer to every bus call, and push delivery of subscribed events.

mod app_calls;
pub mod bindings;
mod boundary;
mod components;
pub mod configuration;
pub mod delivery;
pub mod explorer;
mod handler;
pub mod jobs;
pub mod lock;
mod metadata;
mod project;
pub mod pubsub;
mod runtime;
pub mod secrets;
pub mod state;

pub use boundary::Boundary;
pub use components::{component_types, MANAGED_CONFIGSTORE, MANAGED_KVSTORE, MANAGED_PUBSUB};
pub use handler::{Limits, Worker};
pub use project::{managed_kvstore_namespace, managed_pubsub_namespace};
pub use runtime::{ManagedStores, ProgrammaticSubscriptions, Runtime};
pub use state::query_api::QueryLimits;
