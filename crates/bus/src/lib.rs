//! The internal bus between gateways and workers.
//!
//! A gateway authenticates a call, wraps it with the caller's [`Tenant`] in an [`Envelope`] and sends it to
//! the worker pool that serves the project; a worker answers with a [`Reply`] or a [`DataError`]. The
//! [`Bus`] trait has two carriers: [`InProcessBus`] (the embedded default: a function call) and
//! [`NatsBus`] (the distributed form: NATS request/reply, one queue group per pool). Neither side knows
//! which one carries it.

mod calls;
mod chunks;
mod messages;
mod nats;

use std::sync::Arc;

use async_trait::async_trait;

pub use calls::*;
pub use messages::*;
pub use nats::{publish_change, serve_nats, subscribe_changes, subscribe_pool, watch_changes, NatsBus};

/// The worker pool every project uses until projects are assigned to dedicated pools.
pub const DEFAULT_POOL: &str = "default";

/// Why a call did not get an answer from a worker.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No worker answered in time, or none is running for the pool.
    #[error("no worker of pool '{pool}' answered: {reason}")]
    Unavailable {
        /// The pool asked.
        pool: String,
        /// What the carrier said.
        reason: String,
    },
    /// A message could not be encoded or decoded (mismatched versions of gateway and worker).
    #[error("bus message could not be {0}")]
    Codec(String),
}

/// What workers do with a call.
#[async_trait]
pub trait Handler: Send + Sync {
    /// Answers one call.
    async fn handle(&self, envelope: Envelope) -> Result<Reply, DataError>;
}

/// Carries calls from gateways to workers.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Sends `envelope` to a worker of `pool` and waits for its answer.
    async fn call(&self, pool: &str, envelope: Envelope) -> Result<Result<Reply, DataError>, BusError>;
}

/// Sends a typed call to the worker pool serving its caller, and takes the typed answer. `trace` is the
/// `traceparent` of the recorded span the call serves, if any.
pub async fn send<C: DataCall>(
    bus: &dyn Bus,
    tenant: Tenant,
    trace: Option<String>,
    call: C,
) -> Result<Result<C::Reply, DataError>, BusError> {
    let pool = tenant.pool.clone();
    match bus.call(&pool, Envelope { tenant, call: call.into(), trace }).await? {
        Ok(reply) => C::reply_of(reply).map(Ok).map_err(|other| {
            let answered = other.answers();
            BusError::Codec(format!("decoded as a reply to {answered}; gateway and worker versions differ"))
        }),
        Err(err) => Ok(Err(err)),
    }
}

/// The embedded default's bus: the gateway calls the worker's handler directly.
#[derive(Clone)]
pub struct InProcessBus {
    handler: Arc<dyn Handler>,
}

impl InProcessBus {
    /// A bus whose every pool is `handler`.
    pub fn new(handler: Arc<dyn Handler>) -> InProcessBus {
        InProcessBus { handler }
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn call(&self, _pool: &str, envelope: Envelope) -> Result<Result<Reply, DataError>, BusError> {
        Ok(self.handler.handle(envelope).await)
    }
}
