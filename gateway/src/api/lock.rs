//! The distributed lock API: HTTP `POST /v1.0-alpha1/lock/{store}` and `/v1.0-alpha1/unlock/{store}`, gRPC
//! `TryLockAlpha1` and `UnlockAlpha1`. Bodies are read as daprd reads them (protojson of `TryLockRequest` and
//! `UnlockRequest`); the fields go to the worker as sent, which checks them in daprd's order.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use dapr::dapr::proto::runtime::v1 as pb;
use outrigger_bus::{Tenant, TryLock, Unlock};
use serde::Deserialize;
use serde_json::{json, Value};

use super::grpc::{dapr_rpc, rpc, Caller, Rpcs};
use super::http::{parse_json, Body};
use crate::{DaprError, Gateway};

pub(super) fn http_routes() -> Router<Gateway> {
    Router::new()
        .route("/v1.0-alpha1/lock/{store}", post(try_lock_http))
        .route("/v1.0-alpha1/unlock/{store}", post(unlock_http))
}

pub(super) fn grpc_rpcs() -> Rpcs {
    vec![(dapr_rpc("TryLockAlpha1"), rpc(try_lock_grpc)), (dapr_rpc("UnlockAlpha1"), rpc(unlock_grpc))]
}

/// protojson of `TryLockRequest` / `UnlockRequest`: JSON names or proto names; an int32 as a number or a
/// string; the store comes from the path.
#[derive(Deserialize)]
struct LockBody {
    #[serde(default, rename = "resourceId", alias = "resource_id")]
    resource_id: String,
    #[serde(default, rename = "lockOwner", alias = "lock_owner")]
    lock_owner: String,
    #[serde(default, rename = "expiryInSeconds", alias = "expiry_in_seconds")]
    expiry_in_seconds: Option<Value>,
}

impl LockBody {
    fn expiry(&self) -> Result<i32, DaprError> {
        let number = match &self.expiry_in_seconds {
            None | Some(Value::Null) => return Ok(0),
            Some(Value::Number(number)) => number.as_i64(),
            Some(Value::String(text)) => text.trim().parse::<i64>().ok(),
            Some(_) => None,
        };
        number
            .and_then(|number| i32::try_from(number).ok())
            .ok_or_else(|| DaprError::malformed("expiryInSeconds must be a whole number of seconds (int32)"))
    }
}

/// `{"success": bool}`, always with the field (daprd emits unpopulated fields here).
async fn try_lock_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path(store): Path<String>,
    Body(body): Body,
) -> Result<Response, DaprError> {
    let body: LockBody = parse_json(&body)?;
    let expiry_seconds = body.expiry()?;
    let call = TryLock { store, resource_id: body.resource_id, owner: body.lock_owner, expiry_seconds };
    let success = gateway.call(tenant, call).await?;
    Ok(Json(json!({ "success": success })).into_response())
}

/// `{"status": n}`: the status as its number, as daprd writes it.
async fn unlock_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path(store): Path<String>,
    Body(body): Body,
) -> Result<Response, DaprError> {
    let body: LockBody = parse_json(&body)?;
    let status = gateway.call(tenant, Unlock { store, resource_id: body.resource_id, owner: body.lock_owner }).await?;
    Ok(Json(json!({ "status": status as i32 })).into_response())
}

async fn try_lock_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::TryLockRequest,
) -> Result<pb::TryLockResponse, DaprError> {
    let call = TryLock {
        store: request.store_name,
        resource_id: request.resource_id,
        owner: request.lock_owner,
        expiry_seconds: request.expiry_in_seconds,
    };
    Ok(pb::TryLockResponse { success: gateway.call(caller.tenant, call).await? })
}

async fn unlock_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::UnlockRequest,
) -> Result<pb::UnlockResponse, DaprError> {
    let call = Unlock { store: request.store_name, resource_id: request.resource_id, owner: request.lock_owner };
    Ok(pb::UnlockResponse { status: gateway.call(caller.tenant, call).await? as i32 })
}
