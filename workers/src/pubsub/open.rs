//! From a Dapr pub/sub component (`spec.type` and `spec.metadata`) to an open broker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Broker, JetStreamBroker, JetStreamOptions, MemoryBroker, RedisBroker, RedisBrokerOptions};
use crate::state::open::{Fields, OpenError};

const IN_MEMORY: &str = MemoryBroker::COMPONENT_TYPE;
const JETSTREAM: &str = JetStreamBroker::COMPONENT_TYPE;
const REDIS: &str = RedisBroker::COMPONENT_TYPE;

/// Opens the broker a Dapr pub/sub component describes (`spec.type` + `spec.metadata` as name -> string
/// value); the managed SQL queue is opened with [`super::SqlBroker::open`] instead.
///
/// Metadata names match case-insensitively, as in daprd; fields this worker does not use are ignored.
/// Network backends connect in the background and reconnect by themselves.
pub async fn open(component_type: &str, metadata: &BTreeMap<String, String>) -> Result<Arc<dyn Broker>, OpenError> {
    match component_type {
        IN_MEMORY => Ok(Arc::new(MemoryBroker::new())),
        JETSTREAM => {
            let fields = Fields::new(JETSTREAM, metadata);
            let mut options =
                JetStreamOptions::new(fields.required("natsURL", "the NATS server URL, e.g. nats://nats:4222")?);
            options.token = fields.get("token").map(str::to_owned);
            if let Some(name) = fields.get("name") {
                options.connection_name = name.to_owned();
            }
            if let Some(stream_name) = fields.get("streamName") {
                options.stream_name = stream_name.to_owned();
            }
            // Topics live under the stream's name unless told otherwise, so that streams never overlap.
            options.subject_prefix = fields.get("subjectPrefix").unwrap_or(&options.stream_name).to_owned();
            options.ack_wait = shortest_hold(&fields, "ackWait", Duration::from_secs(1))?;
            Ok(Arc::new(JetStreamBroker::connect(options).await?))
        }
        REDIS => {
            let fields = Fields::new(REDIS, metadata);
            let mut options = RedisBrokerOptions::new(fields.redis_options()?);
            options.max_len_approx = match fields.get("maxLenApprox") {
                None => None,
                Some(text) => Some(text.parse::<u64>().map_err(|_| {
                    fields.invalid("maxLenApprox", format!("'{text}' is not a number of stream entries"))
                })?),
            };
            // Dapr reads a plain number here as milliseconds.
            options.processing_timeout = shortest_hold(&fields, "processingTimeout", Duration::from_millis(1))?;
            Ok(Arc::new(RedisBroker::open(options)?))
        }
        other => Err(OpenError::UnknownType {
            building_block: "pub/sub",
            component_type: other.to_owned(),
            known: &[IN_MEMORY, JETSTREAM, REDIS],
        }),
    }
}

/// A duration that messages are held at least; zero (daprd's "never redeliver") counts as none: a message
/// whose fetcher died must come back.
fn shortest_hold(fields: &Fields<'_>, field: &'static str, bare_unit: Duration) -> Result<Option<Duration>, OpenError> {
    Ok(fields.duration(field, bare_unit)?.filter(|hold| !hold.is_zero()))
}
