//! NATS caps the size of a message (1 MiB unless the server raises it), while a Dapr call or answer may be
//! several MiB. A payload under the cap travels inline; a larger one travels as a small descriptor, and the
//! receiver pulls the bytes in chunks, by request/reply, from a subject the sender serves just for them.

use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::BusError;

/// First byte of every bus payload: what follows.
const INLINE: u8 = 0;
const CHUNKED: u8 = 1;

/// Room left in every message for NATS's own framing.
const HEADROOM: usize = 4096;

/// Where the bytes of a large payload can be pulled from.
#[derive(Serialize, Deserialize)]
struct Descriptor {
    subject: String,
    size: usize,
    chunk: usize,
}

fn codec(what: &str, err: impl std::fmt::Display) -> BusError {
    BusError::Codec(format!("{what}: {err}"))
}

/// Turns `bytes` into what goes on the wire. Large payloads are served in chunks for `serve_for`.
pub(crate) async fn outgoing(
    client: &Client,
    prefix: &str,
    bytes: Vec<u8>,
    serve_for: Duration,
) -> Result<Bytes, BusError> {
    let chunk = (client.server_info().max_payload).saturating_sub(HEADROOM).max(1);
    if bytes.len() < chunk {
        let mut framed = Vec::with_capacity(bytes.len() + 1);
        framed.push(INLINE);
        framed.extend_from_slice(&bytes);
        return Ok(framed.into());
    }
    // Boxed, so that the future of every call and answer does not make room for what only large payloads need.
    Box::pin(serve_chunks(client, prefix, bytes, chunk, serve_for)).await
}

/// Serves a large payload's `bytes` in parts of `chunk` bytes for `serve_for`; the descriptor to send instead.
async fn serve_chunks(
    client: &Client,
    prefix: &str,
    bytes: Vec<u8>,
    chunk: usize,
    serve_for: Duration,
) -> Result<Bytes, BusError> {
    let subject = format!("{prefix}.chunks.{}", uuid::Uuid::new_v4().simple());
    // Subscribed before the descriptor is sent: the same connection delivers SUB before PUB.
    let mut requests = client.subscribe(subject.clone()).await.map_err(|err| codec("serving a large payload", err))?;
    let descriptor = Descriptor { subject, size: bytes.len(), chunk };
    let bytes = Bytes::from(bytes);
    let chunks = bytes.len().div_ceil(chunk);
    let server = client.clone();
    tokio::spawn(async move {
        let mut served = vec![false; chunks];
        let deadline = tokio::time::sleep(serve_for);
        tokio::pin!(deadline);
        while served.iter().any(|done| !done) {
            let request = tokio::select! {
                request = requests.next() => request,
                () = &mut deadline => break,
            };
            let Some(request) = request else { break };
            let (Some(reply), Ok(index)) = (request.reply, <[u8; 4]>::try_from(request.payload.as_ref())) else {
                continue;
            };
            let index = u32::from_be_bytes(index) as usize;
            if index >= chunks {
                continue;
            }
            let part = bytes.slice(index * chunk..((index + 1) * chunk).min(bytes.len()));
            if server.publish(reply, part).await.is_ok() {
                served[index] = true;
            }
        }
        let _ = requests.unsubscribe().await;
    });
    let mut framed = vec![CHUNKED];
    framed.extend(rmp_serde::to_vec(&descriptor).map_err(|err| codec("describing a large payload", err))?);
    Ok(framed.into())
}

/// The bytes a payload carries, pulling the chunks of a large one.
pub(crate) async fn incoming(client: &Client, payload: &[u8]) -> Result<Vec<u8>, BusError> {
    let (kind, rest) = payload.split_first().ok_or_else(|| codec("reading a payload", "it is empty"))?;
    match *kind {
        INLINE => Ok(rest.to_vec()),
        // Boxed, as in `outgoing`.
        CHUNKED => Box::pin(pull_chunks(client, rest)).await,
        other => {
            Err(codec("reading a payload", format!("unknown framing {other}; gateway and worker versions differ")))
        }
    }
}

/// The bytes of a large payload, pulled in parts from where its `descriptor` says.
async fn pull_chunks(client: &Client, descriptor: &[u8]) -> Result<Vec<u8>, BusError> {
    let descriptor: Descriptor = rmp_serde::from_slice(descriptor).map_err(|err| codec("reading a descriptor", err))?;
    let mut bytes = Vec::with_capacity(descriptor.size);
    for index in 0..descriptor.size.div_ceil(descriptor.chunk.max(1)) {
        let index = u32::try_from(index).map_err(|err| codec("counting chunks", err))?;
        let part = client
            .request(descriptor.subject.clone(), Bytes::copy_from_slice(&index.to_be_bytes()))
            .await
            .map_err(|err| codec("pulling a chunk", err))?;
        bytes.extend_from_slice(&part.payload);
    }
    if bytes.len() != descriptor.size {
        return Err(codec("reassembling a payload", format!("{} bytes of {}", bytes.len(), descriptor.size)));
    }
    Ok(bytes)
}
