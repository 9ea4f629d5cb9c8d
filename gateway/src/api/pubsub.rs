//! The pub/sub API: HTTP `/v1.0/publish/...` and bulk publish (`v1.0-alpha1` and `v1.0`), gRPC `PublishEvent`,
//! `BulkPublishEvent` (and its `Alpha1` name) and the `SubscribeTopicEventsAlpha1` stream ([`super::pubsub_stream`]).
//! Both sides build [`PublishEntry`]s through [`bulk_entries`], checked once.

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{post, MethodRouter};
use axum::{Extension, Router};
use dapr::dapr::proto::runtime::v1 as pb;
use outrigger_bus::{Metadata, Publish, PublishEntry, Tenant};
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;

use super::grpc::{admit_stream, dapr_rpc, metadata, non_empty, rpc, Caller, Rpcs};
use super::http::{body_metadata, header_text, no_content, parse_json, query_metadata, Body};
use super::trace_context;
use crate::{DaprError, Gateway};

pub(super) fn http_routes() -> Router<Gateway> {
    Router::new()
        .route("/v1.0/publish/{pubsub}/{*topic}", post(publish_http).put(publish_http))
        .route("/v1.0-alpha1/publish/bulk/{pubsub}/{*topic}", post(bulk_publish_http).put(bulk_publish_http))
        .route("/v1.0/publish/bulk/{pubsub}/{*topic}", post(bulk_publish_http).put(bulk_publish_http))
}

pub(super) fn grpc_rpcs() -> Rpcs {
    vec![
        (dapr_rpc("PublishEvent"), rpc(publish_grpc)),
        (dapr_rpc("BulkPublishEvent"), rpc(bulk_publish_grpc)),
        (dapr_rpc("BulkPublishEventAlpha1"), rpc(bulk_publish_grpc)),
        (dapr_rpc("SubscribeTopicEventsAlpha1"), subscribe_topic_events()),
    ]
}

/// One entry of a bulk publish as either API sends it.
struct EntryIn {
    entry_id: String,
    data: Vec<u8>,
    content_type: Option<String>,
    metadata: Metadata,
}

/// The entries of a bulk publish: each needs an `entryId` of its own, and takes the request's metadata under
/// its own.
fn bulk_entries(shared: &Metadata, entries: Vec<EntryIn>) -> Result<Vec<PublishEntry>, DaprError> {
    let mut seen = HashSet::with_capacity(entries.len());
    entries
        .into_iter()
        .map(|entry| {
            if entry.entry_id.is_empty() {
                return Err(DaprError::bulk_entries("every entry of a bulk publish needs an entryId"));
            }
            if !seen.insert(entry.entry_id.clone()) {
                let id = entry.entry_id;
                return Err(DaprError::bulk_entries(format!("entryId {id} is used twice; entry ids must be unique")));
            }
            let mut metadata = shared.clone();
            metadata.extend(entry.metadata);
            Ok(PublishEntry { entry_id: entry.entry_id, data: entry.data, content_type: entry.content_type, metadata })
        })
        .collect()
}

// ---- HTTP ----

async fn publish_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((pubsub, topic)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, DaprError> {
    let content_type = header_text(&headers, CONTENT_TYPE, "Content-Type")?;
    let entry =
        PublishEntry { entry_id: String::new(), data: body.to_vec(), content_type, metadata: query_metadata(&params) };
    let call = Publish { pubsub, topic, entries: vec![entry], trace: trace_context(&headers) };
    gateway.call(tenant, call).await.map(no_content)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkEntryIn {
    // daprd decodes with Go's case-insensitive field matching; the JS SDK sends `entryID`.
    #[serde(alias = "entryID", alias = "EntryId", alias = "entryid")]
    entry_id: Option<String>,
    event: Value,
    content_type: Option<String>,
    metadata: Option<HashMap<String, Value>>,
}

impl BulkEntryIn {
    /// A JSON event is sent as JSON; a string event with another content type is sent as its text.
    fn read(self) -> EntryIn {
        let is_json = self.content_type.as_deref().is_some_and(|content_type| content_type.contains("json"));
        let data = match self.event {
            Value::String(text) if !is_json => text.into_bytes(),
            event => serde_json::to_vec(&event).expect("JSON values serialise"),
        };
        EntryIn {
            entry_id: self.entry_id.unwrap_or_default(),
            data,
            content_type: self.content_type,
            metadata: body_metadata(self.metadata),
        }
    }
}

/// Bulk publish: entries that failed answer 500 with the failed entries listed, as daprd's does.
async fn bulk_publish_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((pubsub, topic)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, DaprError> {
    let entries: Vec<BulkEntryIn> = parse_json(&body)?;
    let entries = bulk_entries(&query_metadata(&params), entries.into_iter().map(BulkEntryIn::read).collect())?;
    let call = Publish { pubsub, topic, entries, trace: trace_context(&headers) };
    let failed = gateway.call(tenant, call).await?;
    if failed.is_empty() {
        return Ok(no_content(()));
    }
    Ok(crate::dapr_error::bulk_publish_failure(failed))
}

// ---- gRPC ----

async fn publish_grpc(gateway: Gateway, caller: Caller, request: pb::PublishEventRequest) -> Result<(), DaprError> {
    let entry = PublishEntry {
        entry_id: String::new(),
        data: request.data,
        content_type: non_empty(request.data_content_type),
        metadata: metadata(request.metadata),
    };
    let call =
        Publish { pubsub: request.pubsub_name, topic: request.topic, entries: vec![entry], trace: caller.trace() };
    gateway.call(caller.tenant, call).await.map(drop)
}

/// `BulkPublishEvent`: failed entries are reported in the answer, not as an error.
async fn bulk_publish_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::BulkPublishRequest,
) -> Result<pb::BulkPublishResponse, DaprError> {
    let entries = request
        .entries
        .into_iter()
        .map(|entry| EntryIn {
            entry_id: entry.entry_id,
            data: entry.event,
            content_type: non_empty(entry.content_type),
            metadata: metadata(entry.metadata),
        })
        .collect();
    let entries = bulk_entries(&metadata(request.metadata), entries)?;
    let call = Publish { pubsub: request.pubsub_name, topic: request.topic, entries, trace: caller.trace() };
    let failed = gateway.call(caller.tenant, call).await?;
    let failed_entries = failed
        .into_iter()
        .map(|entry| pb::BulkPublishResponseFailedEntry { entry_id: entry.entry_id, error: entry.error })
        .collect();
    Ok(pb::BulkPublishResponse { failed_entries })
}

/// `SubscribeTopicEventsAlpha1`, the one bidirectional stream of the Dapr service.
fn subscribe_topic_events() -> MethodRouter<Gateway> {
    post(|State(gateway): State<Gateway>, mut request: Request| async move {
        let (tenant, guard, span, opening) = match admit_stream(&gateway, &mut request).await {
            Ok(admitted) => admitted,
            Err(refused) => return refused,
        };
        let service = {
            let (gateway, tenant) = (gateway.clone(), tenant.clone());
            tower::service_fn(move |call: tonic::Request<tonic::Streaming<pb::SubscribeTopicEventsRequestAlpha1>>| {
                let (gateway, tenant, guard) = (gateway.clone(), tenant.clone(), guard.clone());
                async move {
                    let opened = super::pubsub_stream::open(gateway, tenant, guard.clone(), call.into_inner()).await?;
                    Ok(tonic::Response::new(guard.hand_over(opened)))
                }
            })
        };
        let codec = crate::grpc_codec::Codec::<
            pb::SubscribeTopicEventsResponseAlpha1,
            pb::SubscribeTopicEventsRequestAlpha1,
        >::default();
        let response = tonic::server::Grpc::new(codec).streaming(service, request).instrument(span).await;
        opening.answered(&gateway, &tenant, response)
    })
}
