//! The configuration API: HTTP `GET /{v}/configuration/{store}`, `.../subscribe` and `.../{id}/unsubscribe`
//! (`v1.0` and `v1.0-alpha1`), gRPC `GetConfiguration`, `SubscribeConfiguration` and
//! `UnsubscribeConfiguration` (and their `Alpha1` names).
//!
//! A subscription lives in the gateway that took it, as daprd's lives in its sidecar: a gRPC one as long as its
//! stream, an HTTP one until it is unsubscribed or the gateway stops; either follows the store through the
//! worker's `WatchConfiguration` waits, each comparing the store with what the subscription last saw, so no
//! change between two waits is missed. HTTP subscribers get each change POSTed to
//! `/configuration/{store}/{key}` on their app endpoint, as daprd sends it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Extension, Json, Router};
use dapr::dapr::proto::common::v1 as common;
use dapr::dapr::proto::runtime::v1 as pb;
use outrigger_bus::{ConfigurationItem, GetConfiguration, Metadata, Tenant, WatchConfiguration};
use outrigger_outbound::AppChannel;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::grpc::{admit_stream, dapr_rpc, metadata, rpc, Caller, Rpcs};
use crate::{DaprError, Gateway};

/// How long one wait of a subscription lasts before the next begins.
const WAIT: Duration = Duration::from_secs(5);

/// How long a subscription pauses after a failed wait (a worker or store outage) before it waits again.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Items by key.
type Items = BTreeMap<String, ConfigurationItem>;

pub(super) fn http_routes() -> Router<Gateway> {
    let mut router = Router::new();
    for version in ["v1.0", "v1.0-alpha1"] {
        router = router
            .route(&format!("/{version}/configuration/{{store}}"), get(get_http))
            .route(&format!("/{version}/configuration/{{store}}/subscribe"), get(subscribe_http))
            .route(&format!("/{version}/configuration/{{store}}/{{id}}/unsubscribe"), get(unsubscribe_http));
    }
    router
}

pub(super) fn grpc_rpcs() -> Rpcs {
    let mut rpcs = Vec::new();
    for suffix in ["", "Alpha1"] {
        rpcs.push((dapr_rpc(&format!("GetConfiguration{suffix}")), rpc(get_grpc)));
        rpcs.push((dapr_rpc(&format!("SubscribeConfiguration{suffix}")), subscribe_grpc()));
        rpcs.push((dapr_rpc(&format!("UnsubscribeConfiguration{suffix}")), rpc(unsubscribe_grpc)));
    }
    rpcs
}

/// The gateway's open configuration subscriptions, by id, with who holds each.
#[derive(Default)]
pub(crate) struct Subscriptions(Mutex<HashMap<String, (Tenant, CancellationToken)>>);

impl Subscriptions {
    /// Registers a subscription of `tenant`: its id, and the token that ends it.
    fn open(&self, tenant: &Tenant) -> (String, CancellationToken) {
        let (id, cancel) = (uuid::Uuid::new_v4().to_string(), CancellationToken::new());
        self.0.lock().expect("subscriptions lock").insert(id.clone(), (tenant.clone(), cancel.clone()));
        (id, cancel)
    }

    /// Ends subscription `id` if `tenant` holds it; whether it did (another caller's looks absent).
    fn close(&self, tenant: &Tenant, id: &str) -> bool {
        let mut open = self.0.lock().expect("subscriptions lock");
        let held = open
            .get(id)
            .is_some_and(|(holder, _)| holder.project_id == tenant.project_id && holder.app_id == tenant.app_id);
        if held {
            if let Some((_, cancel)) = open.remove(id) {
                cancel.cancel();
            }
        }
        held
    }

    /// Forgets subscription `id` once it ended by itself.
    fn forget(&self, id: &str) {
        self.0.lock().expect("subscriptions lock").remove(id);
    }
}

/// Every `key` of a query string, in order (daprd reads `?key=a&key=b`).
fn query_keys(uri: &Uri) -> Vec<String> {
    let pairs = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes());
    pairs.filter(|(name, _)| name == "key").map(|(_, value)| value.into_owned()).collect()
}

/// `metadata.<k>` parameters of a query string.
fn query_metadata(uri: &Uri) -> Metadata {
    let pairs = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes());
    pairs.filter_map(|(name, value)| Some((name.strip_prefix("metadata.")?.to_owned(), value.into_owned()))).collect()
}

/// An item as daprd's JSON writes it (empty fields left out).
fn item_json(item: &ConfigurationItem) -> serde_json::Value {
    let mut fields = serde_json::Map::new();
    if !item.value.is_empty() {
        fields.insert("value".into(), json!(item.value));
    }
    if !item.version.is_empty() {
        fields.insert("version".into(), json!(item.version));
    }
    if !item.metadata.is_empty() {
        fields.insert("metadata".into(), json!(item.metadata));
    }
    serde_json::Value::Object(fields)
}

fn items_json(items: &Items) -> serde_json::Value {
    items.iter().map(|(key, item)| (key.clone(), item_json(item))).collect::<serde_json::Map<_, _>>().into()
}

fn items_proto(items: Items) -> HashMap<String, common::ConfigurationItem> {
    let item = |item: ConfigurationItem| common::ConfigurationItem {
        value: item.value,
        version: item.version,
        metadata: item.metadata.into_iter().collect(),
    };
    items.into_iter().map(|(key, value)| (key, item(value))).collect()
}

/// The items as JSON by key, or 204 when there are none (daprd's empty answer).
async fn get_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path(store): Path<String>,
    uri: Uri,
) -> Result<Response, DaprError> {
    let call = GetConfiguration { store, keys: query_keys(&uri), metadata: query_metadata(&uri) };
    let items = gateway.call(tenant, call).await?;
    if items.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(Json(items_json(&items)).into_response())
}

async fn get_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::GetConfigurationRequest,
) -> Result<pb::GetConfigurationResponse, DaprError> {
    let call = GetConfiguration { store: request.store_name, keys: request.keys, metadata: metadata(request.metadata) };
    Ok(pb::GetConfigurationResponse { items: items_proto(gateway.call(caller.tenant, call).await?) })
}

/// Follows the store for a subscription (`watch` names it, with what the subscriber saw), handing each change to
/// `deliver` (false: the subscriber is gone), until `cancel` fires or the gateway stops.
async fn follow<F, Fut>(
    gateway: Gateway,
    tenant: Tenant,
    mut watch: WatchConfiguration,
    cancel: CancellationToken,
    mut deliver: F,
) where
    F: FnMut(Items) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let store = watch.store.clone();
    loop {
        let answer = tokio::select! {
            () = cancel.cancelled() => return,
            () = gateway.0.closing.cancelled() => return,
            answer = gateway.call(tenant.clone(), watch.clone()) => answer,
        };
        match answer {
            Ok(changes) if changes.is_empty() => {}
            Ok(changes) => {
                for (key, item) in &changes {
                    if item.value.is_empty() {
                        watch.seen.remove(key);
                    } else {
                        watch.seen.insert(key.clone(), item.clone());
                    }
                }
                if !deliver(changes).await {
                    return;
                }
            }
            Err(err) if err.means_gone() => {
                tracing::info!(%store, error = %err, "the subscribed store or its project is gone; the subscription ends");
                return;
            }
            Err(err) => {
                tracing::warn!(%store, error = %err, "watching a configuration store failed; trying again");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(PAUSE_AFTER_FAILURE) => {}
                }
            }
        }
    }
}

/// The first wait of a subscription that saw `seen` when it began.
fn first_watch(baseline: GetConfiguration, seen: Items) -> WatchConfiguration {
    let GetConfiguration { store, keys, metadata } = baseline;
    WatchConfiguration { store, keys, seen, wait_ms: WAIT.as_millis() as u64, metadata }
}

/// `SubscribeConfiguration`: a first message with the subscription's id, then one per change.
fn subscribe_grpc() -> MethodRouter<Gateway> {
    post(|State(gateway): State<Gateway>, mut request: Request| async move {
        let (caller, guard, span, opening) = match admit_stream(&gateway, &mut request).await {
            Ok(admitted) => admitted,
            Err(refused) => return refused,
        };
        let (served, tenant) = (gateway.clone(), caller.clone());
        let service = tower::service_fn(move |call: tonic::Request<pb::SubscribeConfigurationRequest>| {
            let (gateway, tenant, guard) = (served.clone(), tenant.clone(), guard.clone());
            async move {
                let request = call.into_inner();
                let (store, mut keys) = (request.store_name, request.keys);
                keys.sort();
                let baseline =
                    GetConfiguration { store: store.clone(), keys: keys.clone(), metadata: metadata(request.metadata) };
                let seen = gateway.call(tenant.clone(), baseline.clone()).await.map_err(|err| err.to_status())?;
                let (id, cancel) = gateway.0.configuration_subscriptions.open(&tenant);
                let (sender, receiver) = mpsc::channel(16);
                let first = pb::SubscribeConfigurationResponse { id: id.clone(), items: HashMap::new() };
                sender.send(Ok(first)).await.expect("the receiver is held below");
                let updates = {
                    let (gateway, id) = (gateway.clone(), id.clone());
                    async move {
                        let deliver = |changes: Items| {
                            let (sender, id) = (sender.clone(), id.clone());
                            async move {
                                let message = pb::SubscribeConfigurationResponse { id, items: items_proto(changes) };
                                sender.send(Ok(message)).await.is_ok()
                            }
                        };
                        let watch = first_watch(baseline, seen);
                        let following = follow(gateway.clone(), tenant, watch, cancel.clone(), deliver);
                        tokio::select! {
                            () = following => {}
                            () = sender.closed() => {}
                        }
                        gateway.0.configuration_subscriptions.forget(&id);
                    }
                };
                tokio::spawn(updates.in_current_span());
                let stream = guard.hand_over(tokio_stream::wrappers::ReceiverStream::new(receiver));
                Ok::<_, tonic::Status>(tonic::Response::new(stream))
            }
        });
        let codec =
            crate::grpc_codec::Codec::<pb::SubscribeConfigurationResponse, pb::SubscribeConfigurationRequest>::default(
            );
        let response: Response<tonic::body::Body> =
            tonic::server::Grpc::new(codec).server_streaming(service, request).instrument(span).await;
        opening.answered(&gateway, &caller, response)
    })
}

/// `UnsubscribeConfiguration`: ends the caller's subscription `id` (and its stream).
async fn unsubscribe_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::UnsubscribeConfigurationRequest,
) -> Result<pb::UnsubscribeConfigurationResponse, DaprError> {
    let (ok, message) = unsubscribe(&gateway, &caller.tenant, &request.id);
    Ok(pb::UnsubscribeConfigurationResponse { ok, message })
}

/// Ends the caller's subscription `id`: whether it did, and daprd's message when not.
fn unsubscribe(gateway: &Gateway, tenant: &Tenant, id: &str) -> (bool, String) {
    if gateway.0.configuration_subscriptions.close(tenant, id) {
        (true, String::new())
    } else {
        (false, format!("failed to unsubscribe to configuration request {id}: subscription does not exist"))
    }
}

/// `{"id": ...}`; each change is then POSTed to the app at `/configuration/{store}/{key}`.
async fn subscribe_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path(store): Path<String>,
    uri: Uri,
) -> Result<Response, DaprError> {
    let keys = query_keys(&uri);
    let baseline = GetConfiguration { store: store.clone(), keys: keys.clone(), metadata: query_metadata(&uri) };
    let seen = gateway.call(tenant.clone(), baseline.clone()).await?;
    if !gateway.0.invoker.has_app_endpoint(&tenant).await {
        return Err(DaprError::app_channel_missing(
            "app channel is not initialized. cannot subscribe to configuration updates: give the App ID an app endpoint",
        ));
    }
    let (id, cancel) = gateway.0.configuration_subscriptions.open(&tenant);
    let updates = {
        let (gateway, tenant, id) = (gateway.clone(), tenant.clone(), id.clone());
        async move {
            let deliver = |changes: Items| post_to_app(&gateway, &tenant, &store, &id, changes);
            follow(gateway.clone(), tenant.clone(), first_watch(baseline, seen), cancel, deliver).await;
            gateway.0.configuration_subscriptions.forget(&id);
        }
    };
    tokio::spawn(updates.in_current_span());
    Ok(Json(json!({ "id": id })).into_response())
}

/// POSTs a change to the app once per key, as daprd does; a failed POST is logged, not retried (daprd's
/// behaviour), and the subscription goes on.
async fn post_to_app(gateway: &Gateway, tenant: &Tenant, store: &str, id: &str, changes: Items) -> bool {
    let body = json!({ "id": id, "items": items_json(&changes) }).to_string();
    for key in changes.keys() {
        let path = format!("/configuration/{}/{}", AppChannel::path_segment(store), AppChannel::path_segment(key));
        match gateway.0.invoker.post_to_own_app(tenant, &path, body.clone()).await {
            Ok(status) if status == StatusCode::OK => {}
            Ok(status) => tracing::warn!(%store, %key, %status, "the app refused a configuration update"),
            Err(reason) => tracing::warn!(%store, %key, %reason, "a configuration update did not reach the app"),
        }
    }
    true
}

/// `{"ok": true}`, or 500 with `{"ok": false, "message": ...}` for a subscription the caller does not hold.
async fn unsubscribe_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((_store, id)): Path<(String, String)>,
) -> Response {
    match unsubscribe(&gateway, &tenant, &id) {
        (true, _) => Json(json!({ "ok": true })).into_response(),
        (false, message) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "message": message }))).into_response(),
    }
}
