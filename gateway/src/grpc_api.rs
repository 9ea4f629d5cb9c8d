//! The Dapr gRPC API (`dapr.proto.runtime.v1.Dapr`): each served rpc is a route; everything else answers
//! `Unimplemented`. Messages are the `dapr` crate's generated types; the routing is ours so that only the
//! rpcs Outrigger serves exist.

use std::collections::HashMap;
use std::future::Future;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use axum::routing::{post, MethodRouter};
use axum::Router;
use dapr::dapr::proto::common::v1::http_extension::Verb;
use dapr::dapr::proto::common::v1::state_options::{StateConcurrency, StateConsistency};
use dapr::dapr::proto::common::v1::{InvokeResponse, StateItem, StateOptions};
use dapr::dapr::proto::runtime::v1 as pb;
use outrigger_bus::{
    Call, Concurrency, DeleteItem, Metadata, PublishEntry, Reply, SaveItem, SubscriptionKind, Tenant, TraceContext,
    TransactionOperation,
};
use tracing::Instrument;

use crate::invoke::{Invocation, InvokeError};
use crate::stream_guard::StreamGuard;
use crate::{unexpected, AppMetadata, DaprError, Gateway};

/// The token SDKs send in gRPC metadata.
const TOKEN_METADATA: &str = "dapr-api-token";

const SERVICE: &str = "/dapr.proto.runtime.v1.Dapr/";

/// The Dapr gRPC API (HTTP/2 without TLS, as the SDKs dial it).
pub fn grpc_router(gateway: Gateway) -> Router {
    let rpcs: [(&str, MethodRouter<Gateway>); 17] = [
        ("InvokeService", rpc(invoke_service)),
        ("GetState", rpc(get_state)),
        ("GetBulkState", rpc(get_bulk_state)),
        ("SaveState", rpc(save_state)),
        ("DeleteState", rpc(delete_state)),
        ("DeleteBulkState", rpc(delete_bulk_state)),
        ("ExecuteStateTransaction", rpc(execute_state_transaction)),
        ("QueryStateAlpha1", rpc(query_state)),
        ("PublishEvent", rpc(publish_event)),
        ("BulkPublishEvent", rpc(bulk_publish_event)),
        ("BulkPublishEventAlpha1", rpc(bulk_publish_event)),
        ("SubscribeTopicEventsAlpha1", subscribe_topic_events()),
        ("GetSecret", rpc(get_secret)),
        ("GetBulkSecret", rpc(get_bulk_secret)),
        ("GetMetadata", rpc(get_metadata)),
        ("SetMetadata", rpc(set_metadata)),
        ("Shutdown", rpc(shutdown)),
    ];
    let mut router = Router::new();
    for (name, route) in rpcs {
        router = router.route(&format!("{SERVICE}{name}"), route);
    }
    for (path, route) in crate::workflow::routes() {
        router = router.route(&path, route);
    }
    router
        .fallback(|uri: axum::http::Uri| async move { DaprError::unimplemented(uri.path()).into_grpc_response() })
        .with_state(gateway)
}

/// Lets a call in, or answers the refusal: the caller, the call's trace context, and its span.
pub(crate) async fn admit(
    gateway: &Gateway,
    headers: &HeaderMap,
    rpc: &str,
) -> Result<(Tenant, TraceContext, tracing::Span), Response> {
    let token = headers.get(TOKEN_METADATA).and_then(|value| value.to_str().ok());
    let tenant = gateway.admit(token).await.map_err(|refusal| refusal.to_status().into_http::<axum::body::Body>())?;
    let span = tracing::info_span!("dapr_grpc", rpc, project = %tenant.project, app_id = %tenant.app_id);
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let trace = TraceContext { traceparent: header("traceparent"), tracestate: header("tracestate") };
    Ok((tenant, trace, span))
}

/// Lets a stream in: [`admit`], and the guard that ends the stream when its credential ends.
pub(crate) async fn admit_stream(
    gateway: &Gateway,
    headers: &HeaderMap,
    rpc: &str,
) -> Result<(Tenant, StreamGuard, tracing::Span), Response> {
    let (tenant, _, span) = admit(gateway, headers, rpc).await?;
    let token = headers.get(TOKEN_METADATA).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let guard = gateway.guard_stream(token.trim(), &tenant);
    Ok((tenant, guard, span))
}

/// `SubscribeTopicEventsAlpha1`, the one bidirectional stream served.
fn subscribe_topic_events() -> MethodRouter<Gateway> {
    post(|State(gateway): State<Gateway>, request: Request| async move {
        let (tenant, guard, span) = match admit_stream(&gateway, request.headers(), request.uri().path()).await {
            Ok(admitted) => admitted,
            Err(refused) => return refused,
        };
        let service =
            tower::service_fn(move |call: tonic::Request<tonic::Streaming<pb::SubscribeTopicEventsRequestAlpha1>>| {
                let (gateway, tenant, guard) = (gateway.clone(), tenant.clone(), guard.clone());
                async move {
                    let opened = crate::streaming::open(gateway, tenant, guard.clone(), call.into_inner()).await?;
                    Ok(tonic::Response::new(guard.hand_over(opened)))
                }
            });
        let codec = crate::grpc_codec::Codec::<
            pb::SubscribeTopicEventsResponseAlpha1,
            pb::SubscribeTopicEventsRequestAlpha1,
        >::default();
        let response = tonic::server::Grpc::new(codec).streaming(service, request).instrument(span).await;
        response.map(axum::body::Body::new)
    })
}

/// Who calls, and the trace context of the call.
pub(crate) struct Caller {
    pub(crate) tenant: Tenant,
    trace: TraceContext,
}

/// A unary rpc: authenticates from the call's metadata, decodes `Req`, runs `handler`, encodes its answer.
pub(crate) fn rpc<Req, Resp, H, Fut>(handler: H) -> MethodRouter<Gateway>
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    H: Fn(Gateway, Caller, Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, DaprError>> + Send + 'static,
{
    post(move |State(gateway): State<Gateway>, request: Request| async move {
        let (tenant, trace, span) = match admit(&gateway, request.headers(), request.uri().path()).await {
            Ok(admitted) => admitted,
            Err(refused) => return refused,
        };
        let limit = gateway.options().max_body_bytes;
        let service = tower::service_fn(move |call: tonic::Request<Req>| {
            let (handler, gateway) = (handler.clone(), gateway.clone());
            let caller = Caller { tenant: tenant.clone(), trace: trace.clone() };
            async move {
                handler(gateway, caller, call.into_inner())
                    .await
                    .map(tonic::Response::new)
                    .map_err(|err| err.to_status())
            }
        });
        let mut grpc = tonic::server::Grpc::new(crate::grpc_codec::Codec::<Resp, Req>::default())
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX);
        let response: Response<tonic::body::Body> = grpc.unary(service, request).instrument(span).await;
        response.map(axum::body::Body::new)
    })
}

/// `InvokeService`: the message goes to the callee as an HTTP request (verb and query from its HTTP extension,
/// POST without one) and the callee's body comes back; a callee's error status becomes the rpc's error.
async fn invoke_service(
    gateway: Gateway,
    caller: Caller,
    request: pb::InvokeServiceRequest,
) -> Result<InvokeResponse, DaprError> {
    let message = request.message.unwrap_or_default();
    let extension = message.http_extension.unwrap_or_default();
    let verb = match Verb::try_from(extension.verb).unwrap_or(Verb::None) {
        Verb::None | Verb::Post => Method::POST,
        Verb::Get => Method::GET,
        Verb::Head => Method::HEAD,
        Verb::Put => Method::PUT,
        Verb::Delete => Method::DELETE,
        Verb::Connect => Method::CONNECT,
        Verb::Options => Method::OPTIONS,
        Verb::Trace => Method::TRACE,
        Verb::Patch => Method::PATCH,
    };
    let method = format!("/{}", message.method.trim_start_matches('/'));
    let path_and_query =
        if extension.querystring.is_empty() { method } else { format!("{method}?{}", extension.querystring) };
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: Option<&str>| {
        if let Some(value) = value.filter(|value| !value.is_empty()).and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    };
    set("content-type", Some(&message.content_type));
    set("traceparent", caller.trace.traceparent.as_deref());
    set("tracestate", caller.trace.tracestate.as_deref());
    let body = axum::body::Body::from(message.data.map(|data| data.value).unwrap_or_default());
    let invocation = Invocation { method: verb, path_and_query, headers, body };
    let answer = gateway.invoke(&caller.tenant, &request.id, invocation).await?;
    let status = answer.status();
    let content_type =
        answer.headers().get("content-type").and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    let body = answer
        .bytes()
        .await
        .map_err(|err| InvokeError::Unreachable { id: request.id.clone(), reason: err.to_string() })?;
    if !status.is_success() {
        let body = String::from_utf8_lossy(&body).into_owned();
        return Err(InvokeError::AppFailed { id: request.id, status: status.as_u16(), body }.into());
    }
    Ok(InvokeResponse { data: Some(prost_types::Any { type_url: String::new(), value: body.to_vec() }), content_type })
}

fn metadata(map: HashMap<String, String>) -> Metadata {
    map.into_iter().collect()
}

/// The concurrency a write asks for. Values outside the enums are refused rather than read as the default
/// (prost's accessor would make a mistyped first-write a silent last-write).
fn concurrency(options: Option<&StateOptions>) -> Result<Concurrency, DaprError> {
    let Some(options) = options else { return Ok(Concurrency::LastWrite) };
    consistency(options.consistency)?;
    match StateConcurrency::try_from(options.concurrency) {
        Ok(StateConcurrency::ConcurrencyFirstWrite) => Ok(Concurrency::FirstWrite),
        Ok(StateConcurrency::ConcurrencyLastWrite | StateConcurrency::ConcurrencyUnspecified) => {
            Ok(Concurrency::LastWrite)
        }
        Err(_) => Err(DaprError::malformed(format!(
            "concurrency {} is not a StateConcurrency: use CONCURRENCY_FIRST_WRITE or CONCURRENCY_LAST_WRITE",
            options.concurrency
        ))),
    }
}

/// Checks a requested consistency. It is not passed on (the bus carries none), but a value outside the enum is
/// still a malformed request.
fn consistency(value: i32) -> Result<(), DaprError> {
    StateConsistency::try_from(value).map(drop).map_err(|_| {
        DaprError::malformed(format!(
            "consistency {value} is not a StateConsistency: use CONSISTENCY_EVENTUAL or CONSISTENCY_STRONG"
        ))
    })
}

fn save_item(item: StateItem) -> Result<SaveItem, DaprError> {
    if item.key.is_empty() {
        return Err(DaprError::malformed("a state item has no key"));
    }
    Ok(SaveItem {
        concurrency: concurrency(item.options.as_ref())?,
        key: item.key,
        value: item.value,
        etag: item.etag.map(|etag| etag.value),
        metadata: metadata(item.metadata),
    })
}

fn delete_item(item: StateItem) -> Result<DeleteItem, DaprError> {
    if item.key.is_empty() {
        return Err(DaprError::malformed("a state item has no key"));
    }
    Ok(DeleteItem {
        concurrency: concurrency(item.options.as_ref())?,
        key: item.key,
        etag: item.etag.map(|etag| etag.value),
        metadata: metadata(item.metadata),
    })
}

/// Sends a write and expects `Done`.
async fn write(gateway: Gateway, tenant: Tenant, call: Call) -> Result<(), DaprError> {
    match gateway.call(tenant, call).await? {
        Reply::Done => Ok(()),
        other => Err(unexpected(other)),
    }
}

async fn get_state(
    gateway: Gateway,
    Caller { tenant, .. }: Caller,
    request: pb::GetStateRequest,
) -> Result<pb::GetStateResponse, DaprError> {
    consistency(request.consistency)?;
    let call = Call::GetState { store: request.store_name, key: request.key, metadata: metadata(request.metadata) };
    match gateway.call(tenant, call).await? {
        // A missing key is an empty answer, not an error.
        Reply::State(None) => Ok(pb::GetStateResponse::default()),
        Reply::State(Some(value)) => Ok(pb::GetStateResponse {
            data: value.data,
            etag: value.etag,
            metadata: value.metadata.into_iter().collect(),
        }),
        other => Err(unexpected(other)),
    }
}

async fn get_bulk_state(
    gateway: Gateway,
    Caller { tenant, .. }: Caller,
    request: pb::GetBulkStateRequest,
) -> Result<pb::GetBulkStateResponse, DaprError> {
    let call =
        Call::GetBulkState { store: request.store_name, keys: request.keys, metadata: metadata(request.metadata) };
    let Reply::BulkState(items) = gateway.call(tenant, call).await? else {
        return Err(DaprError::malformed("unexpected reply to a bulk get"));
    };
    let items = items
        .into_iter()
        .map(|item| {
            let value = item.value.unwrap_or_default();
            pb::BulkStateItem {
                key: item.key,
                data: value.data,
                etag: value.etag,
                error: item.error.unwrap_or_default(),
                metadata: value.metadata.into_iter().collect(),
            }
        })
        .collect();
    Ok(pb::GetBulkStateResponse { items })
}

async fn save_state(
    gateway: Gateway,
    Caller { tenant, .. }: Caller,
    request: pb::SaveStateRequest,
) -> Result<(), DaprError> {
    let items = request.states.into_iter().map(save_item).collect::<Result<Vec<_>, _>>()?;
    write(gateway, tenant, Call::SaveState { store: request.store_name, items }).await
}

async fn delete_state(
    gateway: Gateway,
    Caller { tenant, .. }: Caller,
    request: pb::DeleteStateRequest,
) -> Result<(), DaprError> {
    let item = StateItem {
        key: request.key,
        etag: request.etag,
        options: request.options,
        metadata: request.metadata,
        value: Vec::new(),
    };
    write(gateway, tenant, Call::DeleteState { store: request.store_name, items: vec![delete_item(item)?] }).await
}

async fn delete_bulk_state(
    gateway: Gateway,
    Caller { tenant, .. }: Caller,
    request: pb::DeleteBulkStateRequest,
) -> Result<(), DaprError> {
    let items = request.states.into_iter().map(delete_item).collect::<Result<Vec<_>, _>>()?;
    write(gateway, tenant, Call::DeleteState { store: request.store_name, items }).await
}

async fn execute_state_transaction(
    gateway: Gateway,
    Caller { tenant, .. }: Caller,
    request: pb::ExecuteStateTransactionRequest,
) -> Result<(), DaprError> {
    let mut operations = Vec::with_capacity(request.operations.len());
    for operation in request.operations {
        let item = operation.request.ok_or_else(|| DaprError::malformed("a transaction operation has no request"))?;
        operations.push(match operation.operation_type.as_str() {
            "upsert" => TransactionOperation::Upsert(save_item(item)?),
            "delete" => TransactionOperation::Delete(delete_item(item)?),
            other => {
                return Err(DaprError::malformed(format!("operation type {other} not supported: use upsert or delete")))
            }
        });
    }
    let call = Call::Transaction { store: request.store_name, operations, metadata: metadata(request.metadata) };
    write(gateway, tenant, call).await
}

async fn query_state(
    gateway: Gateway,
    Caller { tenant, .. }: Caller,
    request: pb::QueryStateRequest,
) -> Result<pb::QueryStateResponse, DaprError> {
    let call =
        Call::QueryState { store: request.store_name, query: request.query, metadata: metadata(request.metadata) };
    match gateway.call(tenant, call).await? {
        Reply::Query { results, token } => Ok(pb::QueryStateResponse {
            results: results
                .into_iter()
                .map(|item| pb::QueryStateItem {
                    key: item.key,
                    data: item.data,
                    etag: item.etag,
                    error: String::new(),
                })
                .collect(),
            token: token.unwrap_or_default(),
            metadata: HashMap::new(),
        }),
        other => Err(unexpected(other)),
    }
}

async fn get_metadata(
    gateway: Gateway,
    Caller { tenant, .. }: Caller,
    _request: pb::GetMetadataRequest,
) -> Result<pb::GetMetadataResponse, DaprError> {
    let AppMetadata { info: metadata, extended, http_endpoints } = gateway.metadata(&tenant).await?;
    let subscriptions = metadata
        .subscriptions
        .into_iter()
        .map(|subscription| pb::PubsubSubscription {
            pubsub_name: subscription.pubsub,
            topic: subscription.topic,
            metadata: HashMap::new(),
            rules: Some(pb::PubsubSubscriptionRules {
                rules: subscription
                    .rules
                    .into_iter()
                    .map(|(condition, path)| pb::PubsubSubscriptionRule { r#match: condition, path })
                    .collect(),
            }),
            dead_letter_topic: subscription.dead_letter_topic.unwrap_or_default(),
            r#type: match subscription.kind {
                SubscriptionKind::Declarative => pb::PubsubSubscriptionType::Declarative,
                SubscriptionKind::Programmatic => pb::PubsubSubscriptionType::Programmatic,
                SubscriptionKind::Streaming => pb::PubsubSubscriptionType::Streaming,
            } as i32,
        })
        .collect();
    Ok(pb::GetMetadataResponse {
        id: tenant.app_id,
        runtime_version: crate::RUNTIME_VERSION.to_owned(),
        registered_components: metadata
            .components
            .into_iter()
            .map(|c| pb::RegisteredComponents {
                name: c.name,
                r#type: c.component_type,
                version: c.version,
                capabilities: c.capabilities,
            })
            .collect(),
        subscriptions,
        extended_metadata: extended.into_iter().collect(),
        http_endpoints: http_endpoints.into_iter().map(|name| pb::MetadataHttpEndpoint { name }).collect(),
        ..Default::default()
    })
}

async fn set_metadata(gateway: Gateway, caller: Caller, request: pb::SetMetadataRequest) -> Result<(), DaprError> {
    gateway.set_metadata(&caller.tenant, &request.key, &request.value).await
}

async fn get_secret(
    gateway: Gateway,
    caller: Caller,
    request: pb::GetSecretRequest,
) -> Result<pb::GetSecretResponse, DaprError> {
    let call = Call::GetSecret { store: request.store_name, key: request.key, metadata: metadata(request.metadata) };
    match gateway.call(caller.tenant, call).await? {
        Reply::Secret(secret) => Ok(pb::GetSecretResponse { data: secret.into_iter().collect() }),
        other => Err(unexpected(other)),
    }
}

async fn get_bulk_secret(
    gateway: Gateway,
    caller: Caller,
    request: pb::GetBulkSecretRequest,
) -> Result<pb::GetBulkSecretResponse, DaprError> {
    let call = Call::GetBulkSecret { store: request.store_name, metadata: metadata(request.metadata) };
    match gateway.call(caller.tenant, call).await? {
        Reply::BulkSecret(secrets) => Ok(pb::GetBulkSecretResponse {
            data: secrets
                .into_iter()
                .map(|(name, secret)| (name, pb::SecretResponse { secrets: secret.into_iter().collect() }))
                .collect(),
        }),
        other => Err(unexpected(other)),
    }
}

/// `Shutdown` asks a sidecar to stop; a shared gateway acknowledges and keeps serving everyone else.
async fn shutdown(_gateway: Gateway, _caller: Caller, _request: pb::ShutdownRequest) -> Result<(), DaprError> {
    Ok(())
}

fn content_type(value: String) -> Option<String> {
    Some(value).filter(|value| !value.is_empty())
}

async fn publish_event(gateway: Gateway, caller: Caller, request: pb::PublishEventRequest) -> Result<(), DaprError> {
    let entry = PublishEntry {
        entry_id: String::new(),
        data: request.data,
        content_type: content_type(request.data_content_type),
        metadata: metadata(request.metadata),
    };
    let call =
        Call::Publish { pubsub: request.pubsub_name, topic: request.topic, entries: vec![entry], trace: caller.trace };
    match gateway.call(caller.tenant, call).await? {
        Reply::Published(failed) if failed.is_empty() => Ok(()),
        other => Err(unexpected(other)),
    }
}

/// `BulkPublishEvent` and its deprecated `Alpha1` name: failed entries are reported, not an error.
async fn bulk_publish_event(
    gateway: Gateway,
    caller: Caller,
    request: pb::BulkPublishRequest,
) -> Result<pb::BulkPublishResponse, DaprError> {
    let mut seen = std::collections::HashSet::new();
    let mut entries = Vec::with_capacity(request.entries.len());
    for entry in request.entries {
        if entry.entry_id.is_empty() || !seen.insert(entry.entry_id.clone()) {
            return Err(DaprError::bulk_entries("every entry of a bulk publish needs an entryId of its own"));
        }
        let mut entry_metadata = metadata(request.metadata.clone());
        entry_metadata.extend(entry.metadata);
        entries.push(PublishEntry {
            entry_id: entry.entry_id,
            data: entry.event,
            content_type: content_type(entry.content_type),
            metadata: entry_metadata,
        });
    }
    let call = Call::Publish { pubsub: request.pubsub_name, topic: request.topic, entries, trace: caller.trace };
    match gateway.call(caller.tenant, call).await? {
        Reply::Published(failed) => Ok(pb::BulkPublishResponse {
            failed_entries: failed
                .into_iter()
                .map(|entry| pb::BulkPublishResponseFailedEntry { entry_id: entry.entry_id, error: entry.error })
                .collect(),
        }),
        other => Err(unexpected(other)),
    }
}
