//! The secrets API: HTTP `GET /v1.0/secrets/{store}/{key}` and `/bulk`, gRPC `GetSecret` and `GetBulkSecret`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use dapr::dapr::proto::runtime::v1 as pb;
use outrigger_bus::{GetBulkSecret, GetSecret, Tenant};

use super::grpc::{dapr_rpc, rpc, Caller, Rpcs};
use crate::{DaprError, Gateway};

pub(super) fn http_routes() -> Router<Gateway> {
    Router::new()
        .route("/v1.0/secrets/{store}/bulk", get(bulk_get_http))
        .route("/v1.0/secrets/{store}/{key}", get(get_http))
}

pub(super) fn grpc_rpcs() -> Rpcs {
    vec![(dapr_rpc("GetSecret"), rpc(get_grpc)), (dapr_rpc("GetBulkSecret"), rpc(bulk_get_grpc))]
}

/// The secret's keys and values.
async fn get_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((store, key)): Path<(String, String)>,
) -> Result<Response, DaprError> {
    Ok(Json(gateway.call(tenant, GetSecret { store, key }).await?).into_response())
}

/// Every secret the caller may read, by name.
async fn bulk_get_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path(store): Path<String>,
) -> Result<Response, DaprError> {
    Ok(Json(gateway.call(tenant, GetBulkSecret { store }).await?).into_response())
}

async fn get_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::GetSecretRequest,
) -> Result<pb::GetSecretResponse, DaprError> {
    let secret = gateway.call(caller.tenant, GetSecret { store: request.store_name, key: request.key }).await?;
    Ok(pb::GetSecretResponse { data: secret.into_iter().collect() })
}

async fn bulk_get_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::GetBulkSecretRequest,
) -> Result<pb::GetBulkSecretResponse, DaprError> {
    let secrets = gateway.call(caller.tenant, GetBulkSecret { store: request.store_name }).await?;
    let data = secrets
        .into_iter()
        .map(|(name, secret)| (name, pb::SecretResponse { secrets: secret.into_iter().collect() }))
        .collect();
    Ok(pb::GetBulkSecretResponse { data })
}
