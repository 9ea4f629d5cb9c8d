//! Bindings (`bindings.*`): outside systems an app calls through Dapr's bindings API (output), and whose events
//! reach the app (input). Each backend is a file of its own ([`http`] for `bindings.http`, [`postgres`] for
//! `bindings.postgresql`, [`redis`] for `bindings.redis`, [`cron`] for `bindings.cron`, [`mqtt`] for
//! `bindings.mqtt3`, [`rabbitmq`] for `bindings.rabbitmq`), with the operations and the delivery daprd's component
//! of that type has. [`input`] runs the input side of a component for one App ID.

pub(crate) mod api;
mod broker;
pub(crate) mod cron;
pub(crate) mod http;
pub(crate) mod input;
pub(crate) mod mqtt;
pub(crate) mod postgres;
pub(crate) mod rabbitmq;
pub(crate) mod redis;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use outrigger_bus::{BindingResponse, Metadata};
use tokio_util::sync::CancellationToken;

use crate::boundary::Boundary;
use crate::components::{self, Opener, Opening};
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

    /// Does `request`. No deadline of its own beyond what the component's metadata sets: the bindings API runs it
    /// under the component's Resiliency policy.
    async fn invoke(&self, request: BindingRequest<'_>) -> Result<BindingResponse, BindingError>;
}

/// One event of an input binding.
#[derive(Debug, Default)]
pub struct InputEvent {
    /// The event's data, the body the app receives.
    pub data: Vec<u8>,
    /// The event's metadata, headers the app receives.
    pub metadata: BTreeMap<String, String>,
}

/// Where an input binding hands its events: the app, which accepts (`Ok`) or refuses each.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Delivers one event; `Err` says why the app did not accept it.
    async fn deliver(&self, event: InputEvent) -> Result<(), String>;
}

/// Who reads an input binding: one App ID of one project through one component. Readers of the same project,
/// component and App ID share the events (each goes to one of them); other App IDs, and other projects, get their
/// own.
#[derive(Clone, Debug)]
pub struct Reader {
    /// The project (its id).
    pub project_id: String,
    /// The component's name.
    pub component: String,
    /// The App ID whose app gets the events.
    pub app_id: String,
}

/// The input side of a binding component.
#[async_trait]
pub trait InputBinding: Send + Sync {
    /// Reads events for `reader` until `stop`, handing each to `sink` and settling it with the outside system as
    /// daprd's component of this type does. Returns when stopped (`Ok`) or when the connection failed (`Err`;
    /// the caller reads again later).
    async fn read(
        &self,
        reader: &Reader,
        sink: Arc<dyn EventSink>,
        stop: CancellationToken,
    ) -> Result<(), BindingError>;
}

/// A binding type whose one opened value serves both directions (`bindings.rabbitmq`, `bindings.mqtt3`).
pub(crate) trait TwoWayBinding: OutputBinding + InputBinding + Sized + 'static {
    /// Opens the binding a component describes.
    fn open(opening: Opening<'_>) -> BoxFuture<'_, Result<Self, OpenError>>;
}

/// The output opener of a [`TwoWayBinding`] type.
pub(crate) fn output_side<T: TwoWayBinding>(
    opening: Opening<'_>,
) -> BoxFuture<'_, Result<Arc<dyn OutputBinding>, OpenError>> {
    Box::pin(async move { Ok(Arc::new(T::open(opening).await?) as _) })
}

/// The input opener of a [`TwoWayBinding`] type.
pub(crate) fn input_side<T: TwoWayBinding>(
    opening: Opening<'_>,
) -> BoxFuture<'_, Result<Arc<dyn InputBinding>, OpenError>> {
    Box::pin(async move { Ok(Arc::new(T::open(opening).await?) as _) })
}

/// Opens the input side of the binding a Dapr component describes, reaching only what `boundary` allows.
pub async fn open_input_within(
    component_type: &str,
    metadata: &BTreeMap<String, String>,
    boundary: &Boundary,
) -> Result<Arc<dyn InputBinding>, OpenError> {
    components::open(Opener::input_binding, component_type, metadata, boundary, HostSecrets::Refused).await
}

/// Opens the output binding a Dapr component describes, reaching only what `boundary` allows.
pub async fn open_within(
    component_type: &str,
    metadata: &BTreeMap<String, String>,
    boundary: &Boundary,
) -> Result<Arc<dyn OutputBinding>, OpenError> {
    components::open(Opener::binding, component_type, metadata, boundary, HostSecrets::Refused).await
}
