//! Opening a Dapr pub/sub component (`spec.type` and `spec.metadata`) as a broker, through the component
//! registry ([`crate::components`]); each broker's own opening lives beside it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::Broker;
use crate::boundary::Boundary;
use crate::components::{self, Opener};
use crate::secrets::HostSecrets;
use crate::state::open::{Fields, OpenError};

/// Opens the broker a Dapr pub/sub component the operator configured describes (`spec.type` +
/// `spec.metadata` as name -> string value): its hosts are taken as given. The managed SQL queue is opened
/// with [`super::SqlBroker::open`] instead.
pub async fn open(component_type: &str, metadata: &BTreeMap<String, String>) -> Result<Arc<dyn Broker>, OpenError> {
    open_within(component_type, metadata, &Boundary::operator()).await
}

/// Opens the broker a Dapr pub/sub component describes, reaching only what `boundary` allows.
///
/// Metadata names match case-insensitively, as in daprd; fields this worker does not use are ignored.
/// Network backends connect in the background and reconnect by themselves.
pub async fn open_within(
    component_type: &str,
    metadata: &BTreeMap<String, String>,
    boundary: &Boundary,
) -> Result<Arc<dyn Broker>, OpenError> {
    components::open(Opener::pubsub, component_type, metadata, boundary, HostSecrets::Refused).await
}

/// A duration that messages are held at least; zero (daprd's "never redeliver") counts as none: a message
/// whose fetcher died must come back.
pub(crate) fn shortest_hold(
    fields: &Fields<'_>,
    field: &'static str,
    bare_unit: Duration,
) -> Result<Option<Duration>, OpenError> {
    Ok(fields.duration(field, bare_unit)?.filter(|hold| !hold.is_zero()))
}
