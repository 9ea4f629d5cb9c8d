//! From a Dapr pub/sub component (`spec.type` and `spec.metadata`) to an open broker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Broker, JetStreamBroker, JetStreamOptions, MemoryBroker, RedisBroker, RedisBrokerOptions};
use crate::boundary::Boundary;
use crate::state::open::{Fields, OpenError};

const IN_MEMORY: &str = MemoryBroker::COMPONENT_TYPE;
const JETSTREAM: &str = JetStreamBroker::COMPONENT_TYPE;
const REDIS: &str = RedisBroker::COMPONENT_TYPE;

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
    match component_type {
        IN_MEMORY => Ok(Arc::new(MemoryBroker::new())),
        JETSTREAM => {
            let fields = Fields::new(JETSTREAM, metadata);
            let url = fields.required("natsURL", "the NATS server URL, e.g. nats://nats:4222")?;
            let mut options = JetStreamOptions::new(pinned_nats_servers(url, boundary).await?);
            options.ignore_discovered_servers = boundary.is_confined();
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
            let mut options = RedisBrokerOptions::new(fields.redis_options(REDIS, boundary).await?);
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

/// `natsURL` (one server or several, comma-separated) with every server's host judged by `boundary`; plain
/// `nats://` servers are pinned to the address judged (TLS and WebSocket ones keep their names, which their
/// certificates carry).
async fn pinned_nats_servers(servers: &str, boundary: &Boundary) -> Result<String, OpenError> {
    if !boundary.is_confined() {
        return Ok(servers.to_owned());
    }
    let invalid = |reason: String| OpenError::InvalidField { component_type: JETSTREAM, field: "natsURL", reason };
    let mut pinned = Vec::new();
    for server in servers.split(',').map(str::trim) {
        let with_scheme = if server.contains("://") { server.to_owned() } else { format!("nats://{server}") };
        let mut url =
            url::Url::parse(&with_scheme).map_err(|err| invalid(format!("'{server}' is not a URL: {err}")))?;
        let host = url.host_str().ok_or_else(|| invalid(format!("'{server}' names no host")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let address = boundary.host(JETSTREAM, "natsURL", &host, url.port().unwrap_or(4222)).await?;
        let address = address.expect("a confined boundary pins every host");
        if url.scheme() == "nats" {
            url.set_ip_host(address.ip()).map_err(|()| invalid(format!("'{server}' cannot carry an address")))?;
            url.set_port(Some(address.port())).map_err(|()| invalid(format!("'{server}' cannot carry a port")))?;
        }
        pinned.push(url.to_string().trim_end_matches('/').to_owned());
    }
    Ok(pinned.join(","))
}

/// A duration that messages are held at least; zero (daprd's "never redeliver") counts as none: a message
/// whose fetcher died must come back.
fn shortest_hold(fields: &Fields<'_>, field: &'static str, bare_unit: Duration) -> Result<Option<Duration>, OpenError> {
    Ok(fields.duration(field, bare_unit)?.filter(|hold| !hold.is_zero()))
}
