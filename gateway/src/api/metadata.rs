//! The metadata API: HTTP `GET /v1.0/metadata` (the JS SDK's start-up probe, so never an empty body) and
//! `PUT /v1.0/metadata/{key}`, gRPC `GetMetadata` and `SetMetadata`; and `Shutdown`, which a shared gateway
//! acknowledges and ignores.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use dapr::dapr::proto::runtime::v1 as pb;
use outrigger_bus::{SubscriptionKind, Tenant};
use serde_json::{json, Value};

use super::grpc::{dapr_rpc, rpc, Caller, Rpcs};
use super::http::{no_content, Body};
use crate::{AppMetadata, DaprError, Gateway};

pub(super) fn http_routes() -> Router<Gateway> {
    Router::new()
        .route("/v1.0/metadata", get(get_http))
        .route("/v1.0/metadata/{key}", put(set_http))
        // Asks a sidecar to stop; a shared gateway acknowledges (as gRPC `Shutdown`) and keeps serving everyone.
        .route("/v1.0/shutdown", post(|| async { StatusCode::NO_CONTENT }))
}

pub(super) fn grpc_rpcs() -> Rpcs {
    vec![
        (dapr_rpc("GetMetadata"), rpc(get_grpc)),
        (dapr_rpc("SetMetadata"), rpc(set_grpc)),
        (dapr_rpc("Shutdown"), rpc(shutdown_grpc)),
    ]
}

/// daprd's name of how a subscription was declared.
fn kind_name(kind: SubscriptionKind) -> &'static str {
    match kind {
        SubscriptionKind::Declarative => "DECLARATIVE",
        SubscriptionKind::Programmatic => "PROGRAMMATIC",
        SubscriptionKind::Streaming => "STREAMING",
    }
}

async fn get_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
) -> Result<Json<Value>, DaprError> {
    let AppMetadata { info, extended, http_endpoints } = gateway.metadata(&tenant).await?;
    let http_endpoints: Vec<Value> = http_endpoints.into_iter().map(|name| json!({ "name": name })).collect();
    let components: Vec<Value> = info
        .components
        .into_iter()
        .map(|c| json!({ "name": c.name, "type": c.component_type, "version": c.version, "capabilities": c.capabilities }))
        .collect();
    let subscriptions: Vec<Value> = info
        .subscriptions
        .into_iter()
        .map(|subscription| {
            let rules: Vec<Value> = subscription
                .rules
                .iter()
                .map(|(condition, path)| json!({ "match": condition, "path": path }))
                .collect();
            let mut entry = json!({
                "pubsubname": subscription.pubsub,
                "topic": subscription.topic,
                "rules": rules,
                "type": kind_name(subscription.kind),
            });
            if let Some(dead_letter_topic) = subscription.dead_letter_topic {
                entry["deadLetterTopic"] = Value::String(dead_letter_topic);
            }
            entry
        })
        .collect();
    Ok(Json(json!({
        "id": tenant.app_id,
        "runtimeVersion": crate::RUNTIME_VERSION,
        "enabledFeatures": [],
        "actors": [],
        "components": components,
        "extended": extended,
        "subscriptions": subscriptions,
        "httpEndpoints": http_endpoints,
    })))
}

/// The body is the attribute's value, as text.
async fn set_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path(key): Path<String>,
    Body(body): Body,
) -> Result<Response, DaprError> {
    let value = std::str::from_utf8(&body).map_err(|_| DaprError::malformed("the metadata value is not UTF-8 text"))?;
    gateway.set_metadata(&tenant, &key, value).await.map(no_content)
}

async fn get_grpc(
    gateway: Gateway,
    caller: Caller,
    _: pb::GetMetadataRequest,
) -> Result<pb::GetMetadataResponse, DaprError> {
    let AppMetadata { info, extended, http_endpoints } = gateway.metadata(&caller.tenant).await?;
    let subscriptions = info
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
            r#type: pb::PubsubSubscriptionType::from_str_name(kind_name(subscription.kind))
                .unwrap_or(pb::PubsubSubscriptionType::Unknown) as i32,
        })
        .collect();
    let registered_components = info
        .components
        .into_iter()
        .map(|c| pb::RegisteredComponents {
            name: c.name,
            r#type: c.component_type,
            version: c.version,
            capabilities: c.capabilities,
        })
        .collect();
    Ok(pb::GetMetadataResponse {
        id: caller.tenant.app_id.to_string(),
        runtime_version: crate::RUNTIME_VERSION.to_owned(),
        registered_components,
        subscriptions,
        extended_metadata: extended.into_iter().collect(),
        http_endpoints: http_endpoints.into_iter().map(|name| pb::MetadataHttpEndpoint { name }).collect(),
        ..Default::default()
    })
}

async fn set_grpc(gateway: Gateway, caller: Caller, request: pb::SetMetadataRequest) -> Result<(), DaprError> {
    gateway.set_metadata(&caller.tenant, &request.key, &request.value).await
}

async fn shutdown_grpc(_: Gateway, _: Caller, _: pb::ShutdownRequest) -> Result<(), DaprError> {
    Ok(())
}
