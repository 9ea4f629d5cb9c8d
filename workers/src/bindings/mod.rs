//! Bindings (`bindings.*`): outside systems an app calls through Dapr's bindings API (output), and whose events
//! reach the app (input). Each backend is a file of its own ([`http`] for `bindings.http`, [`postgres`] for
//! `bindings.postgresql`, [`redis`] for `bindings.redis`, [`cron`] for `bindings.cron`), with the operations and
//! the delivery daprd's component of that type has.

pub(crate) mod api;
pub(crate) mod cron;
pub(crate) mod http;
pub(crate) mod postgres;
pub(crate) mod redis;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use outrigger_bus::{BindingResponse, Metadata};

use crate::boundary::Boundary;
use crate::components::{self, Opener};
use crate::secrets::HostSecrets;
use crate::state::open::OpenError;

/// Why a binding could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    /// The request lacks what the operation needs, or the outside system refused it.
    #[error("{0}")]
    Failed(String),
}

/// One call of an output binding.
pub struct BindingRequest<'a> {
    /// The operation, one of [`OutputBinding::operations`].
    pub operation: &'a str,
    /// The request's data.
    pub data: &'a [u8],
    /// The request's metadata.
    pub metadata: &'a Metadata,
}

/// An output binding of one component.
#[async_trait]
pub trait OutputBinding: Send + Sync {
    /// The operations it takes, as daprd's component of its type lists them.
    fn operations(&self) -> &'static [&'static str];

    /// Does `request`.
    async fn invoke(&self, request: BindingRequest<'_>) -> Result<BindingResponse, BindingError>;
}

/// Opens the output binding a Dapr component describes, reaching only what `boundary` allows.
pub async fn open_within(
    component_type: &str,
    metadata: &BTreeMap<String, String>,
    boundary: &Boundary,
) -> Result<Arc<dyn OutputBinding>, OpenError> {
    components::open(Opener::binding, component_type, metadata, boundary, HostSecrets::Refused).await
}
