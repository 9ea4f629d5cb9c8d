//! Execution: component drivers (state stores so far), the per-project component runtime, and the worker's
//! answer to every bus call.

mod handler;
pub mod pubsub;
mod runtime;
pub mod state;

pub use handler::{Limits, Worker};
pub use runtime::{ManagedStores, Runtime, MANAGED_KVSTORE};
