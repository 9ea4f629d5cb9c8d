//! The state API: HTTP `/v1.0/state/...` and `/v1.0-alpha1/state/{store}/query`, gRPC `GetState`,
//! `GetBulkState`, `SaveState`, `DeleteState`, `DeleteBulkState`, `ExecuteStateTransaction` and
//! `QueryStateAlpha1`. Both sides read their items into [`ItemIn`], checked once, and send the same typed calls.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_TYPE, ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use dapr::dapr::proto::common::v1::state_options::{StateConcurrency, StateConsistency};
use dapr::dapr::proto::common::v1::{StateItem, StateOptions};
use dapr::dapr::proto::runtime::v1 as pb;
use outrigger_bus::{
    Concurrency, DeleteItem, DeleteState, ExecuteTransaction, GetBulkState, GetState, Metadata, QueryState, SaveItem,
    SaveState, Tenant, TransactionOperation,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::grpc::{dapr_rpc, metadata, rpc, Caller, Rpcs};
use super::http::{body_metadata, embedded, header_text, metadata_headers, no_content, parse_json, Body};
use crate::{DaprError, Gateway};

pub(super) fn http_routes() -> Router<Gateway> {
    Router::new()
        .route("/v1.0/state/{store}", post(save_http).put(save_http))
        .route("/v1.0/state/{store}/{key}", get(get_http).delete(delete_http).post(subresource).put(subresource))
        .route("/v1.0-alpha1/state/{store}/query", post(query_http).put(query_http))
}

pub(super) fn grpc_rpcs() -> Rpcs {
    vec![
        (dapr_rpc("GetState"), rpc(get_grpc)),
        (dapr_rpc("GetBulkState"), rpc(bulk_get_grpc)),
        (dapr_rpc("SaveState"), rpc(save_grpc)),
        (dapr_rpc("DeleteState"), rpc(delete_grpc)),
        (dapr_rpc("DeleteBulkState"), rpc(bulk_delete_grpc)),
        (dapr_rpc("ExecuteStateTransaction"), rpc(transaction_grpc)),
        (dapr_rpc("QueryStateAlpha1"), rpc(query_grpc)),
    ]
}

/// A state item as either API sends it, before its checks.
struct ItemIn {
    key: String,
    value: Vec<u8>,
    etag: Option<String>,
    metadata: Metadata,
    concurrency: Concurrency,
}

impl ItemIn {
    fn checked_key(key: String) -> Result<String, DaprError> {
        if key.is_empty() {
            return Err(DaprError::malformed("a state item has no key"));
        }
        Ok(key)
    }

    fn into_save(self) -> Result<SaveItem, DaprError> {
        let ItemIn { key, value, etag, metadata, concurrency } = self;
        Ok(SaveItem { key: ItemIn::checked_key(key)?, value, etag, metadata, concurrency })
    }

    fn into_delete(self) -> Result<DeleteItem, DaprError> {
        let ItemIn { key, etag, metadata, concurrency, .. } = self;
        Ok(DeleteItem { key: ItemIn::checked_key(key)?, etag, metadata, concurrency })
    }

    /// A transaction's operation of kind `kind` on this item.
    fn into_operation(self, kind: &str) -> Result<TransactionOperation, DaprError> {
        match kind {
            "upsert" => Ok(TransactionOperation::Upsert(self.into_save()?)),
            "delete" => Ok(TransactionOperation::Delete(self.into_delete()?)),
            other => Err(DaprError::malformed(format!("operation type {other} not supported: use upsert or delete"))),
        }
    }
}

// ---- HTTP ----

#[derive(Deserialize)]
struct StateOptionsIn {
    concurrency: Option<String>,
}

#[derive(Deserialize)]
struct StateItemIn {
    key: Option<String>,
    value: Option<Value>,
    etag: Option<String>,
    metadata: Option<HashMap<String, Value>>,
    options: Option<StateOptionsIn>,
}

impl StateItemIn {
    fn read(self) -> Result<ItemIn, DaprError> {
        Ok(ItemIn {
            key: self.key.unwrap_or_default(),
            value: self
                .value
                .map(|value| serde_json::to_vec(&value).expect("JSON values serialise"))
                .unwrap_or_default(),
            etag: self.etag,
            metadata: body_metadata(self.metadata),
            concurrency: http_concurrency(self.options.and_then(|options| options.concurrency).as_deref())?,
        })
    }
}

fn http_concurrency(text: Option<&str>) -> Result<Concurrency, DaprError> {
    match text.unwrap_or_default() {
        "" | "last-write" => Ok(Concurrency::LastWrite),
        "first-write" => Ok(Concurrency::FirstWrite),
        other => Err(DaprError::malformed(format!("unknown concurrency '{other}': use first-write or last-write"))),
    }
}

async fn get_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((store, key)): Path<(String, String)>,
) -> Result<Response, DaprError> {
    let Some(value) = gateway.call(tenant, GetState { store, key }).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    // daprd labels every value JSON (`respondWithData`), whatever its bytes: no need to read them. Both header
    // values are made without a copy: the label is static, the ETag keeps its string's buffer.
    const JSON: HeaderValue = HeaderValue::from_static("application/json");
    let mut response = (StatusCode::OK, [(CONTENT_TYPE, JSON)], value.data).into_response();
    if let Ok(etag) = HeaderValue::from_maybe_shared(Bytes::from(value.etag)) {
        response.headers_mut().insert(ETAG, etag);
    }
    metadata_headers(response.headers_mut(), &value.metadata);
    Ok(response)
}

async fn save_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path(store): Path<String>,
    Body(body): Body,
) -> Result<Response, DaprError> {
    let items: Vec<StateItemIn> = parse_json(&body)?;
    let items = items.into_iter().map(|item| item.read()?.into_save()).collect::<Result<Vec<_>, _>>()?;
    gateway.call(tenant, SaveState { store, items }).await.map(no_content)
}

async fn delete_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((store, key)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, DaprError> {
    let item = ItemIn {
        key,
        value: Vec::new(),
        etag: header_text(&headers, IF_MATCH, "If-Match")?,
        metadata: super::http::query_metadata(&params),
        concurrency: http_concurrency(params.get("concurrency").map(String::as_str))?,
    };
    gateway.call(tenant, DeleteState { store, items: vec![item.into_delete()?] }).await.map(no_content)
}

#[derive(Deserialize)]
struct BulkGetIn {
    #[serde(default)]
    keys: Vec<String>,
}

#[derive(Deserialize)]
struct TransactionOperationIn {
    operation: String,
    request: StateItemIn,
}

#[derive(Deserialize)]
struct TransactionIn {
    #[serde(default)]
    operations: Vec<TransactionOperationIn>,
}

/// `POST /v1.0/state/{store}/bulk` and `/transaction` share the path shape of a key.
async fn subresource(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((store, action)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Response, DaprError> {
    match action.as_str() {
        "bulk" => {
            let BulkGetIn { keys } = parse_json(&body)?;
            let items = gateway.call(tenant, GetBulkState { store, keys }).await?;
            let answer: Vec<Value> = items
                .into_iter()
                .map(|item| {
                    let mut entry = json!({ "key": item.key });
                    if let Some(value) = item.value {
                        entry["data"] = embedded(&value.data);
                        entry["etag"] = Value::String(value.etag);
                        if !value.metadata.is_empty() {
                            entry["metadata"] = json!(value.metadata);
                        }
                    }
                    if let Some(error) = item.error {
                        entry["error"] = Value::String(error);
                    }
                    entry
                })
                .collect();
            Ok(Json(answer).into_response())
        }
        "transaction" => {
            let request: TransactionIn = parse_json(&body)?;
            let operations = request
                .operations
                .into_iter()
                .map(|operation| operation.request.read()?.into_operation(&operation.operation))
                .collect::<Result<Vec<_>, _>>()?;
            gateway.call(tenant, ExecuteTransaction { store, operations }).await.map(no_content)
        }
        _ => Ok(StatusCode::METHOD_NOT_ALLOWED.into_response()),
    }
}

async fn query_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path(store): Path<String>,
    Body(body): Body,
) -> Result<Response, DaprError> {
    let query = String::from_utf8(body.to_vec()).map_err(|_| DaprError::malformed("the query must be UTF-8 JSON"))?;
    let page = gateway.call(tenant, QueryState { store, query }).await?;
    let results: Vec<Value> = page
        .results
        .into_iter()
        .map(|item| json!({ "key": item.key, "data": embedded(&item.data), "etag": item.etag }))
        .collect();
    let mut answer = json!({ "results": results });
    if let Some(token) = page.token {
        answer["token"] = Value::String(token);
    }
    Ok(Json(answer).into_response())
}

// ---- gRPC ----

/// The concurrency a write asks for. Values outside the enums are refused rather than read as the default
/// (prost's accessor would make a mistyped first-write a silent last-write).
fn grpc_concurrency(options: Option<&StateOptions>) -> Result<Concurrency, DaprError> {
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

/// Checks a requested consistency. It is not passed on (no backend offers a choice), but a value outside the
/// enum is still a malformed request.
fn consistency(value: i32) -> Result<(), DaprError> {
    StateConsistency::try_from(value).map(drop).map_err(|_| {
        DaprError::malformed(format!(
            "consistency {value} is not a StateConsistency: use CONSISTENCY_EVENTUAL or CONSISTENCY_STRONG"
        ))
    })
}

fn grpc_item(item: StateItem) -> Result<ItemIn, DaprError> {
    Ok(ItemIn {
        concurrency: grpc_concurrency(item.options.as_ref())?,
        key: item.key,
        value: item.value,
        etag: item.etag.map(|etag| etag.value),
        metadata: metadata(item.metadata),
    })
}

async fn get_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::GetStateRequest,
) -> Result<pb::GetStateResponse, DaprError> {
    consistency(request.consistency)?;
    let call = GetState { store: request.store_name, key: request.key };
    // A missing key is an empty answer, not an error.
    let value = gateway.call(caller.tenant, call).await?.unwrap_or_default();
    Ok(pb::GetStateResponse { data: value.data, etag: value.etag, metadata: value.metadata.into_iter().collect() })
}

async fn bulk_get_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::GetBulkStateRequest,
) -> Result<pb::GetBulkStateResponse, DaprError> {
    let items = gateway.call(caller.tenant, GetBulkState { store: request.store_name, keys: request.keys }).await?;
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

async fn save_grpc(gateway: Gateway, caller: Caller, request: pb::SaveStateRequest) -> Result<(), DaprError> {
    let items = request.states.into_iter().map(|item| grpc_item(item)?.into_save()).collect::<Result<_, _>>()?;
    gateway.call(caller.tenant, SaveState { store: request.store_name, items }).await
}

async fn delete_grpc(gateway: Gateway, caller: Caller, request: pb::DeleteStateRequest) -> Result<(), DaprError> {
    let item = ItemIn {
        concurrency: grpc_concurrency(request.options.as_ref())?,
        key: request.key,
        value: Vec::new(),
        etag: request.etag.map(|etag| etag.value),
        metadata: metadata(request.metadata),
    };
    gateway.call(caller.tenant, DeleteState { store: request.store_name, items: vec![item.into_delete()?] }).await
}

async fn bulk_delete_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::DeleteBulkStateRequest,
) -> Result<(), DaprError> {
    let items = request.states.into_iter().map(|item| grpc_item(item)?.into_delete()).collect::<Result<_, _>>()?;
    gateway.call(caller.tenant, DeleteState { store: request.store_name, items }).await
}

async fn transaction_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::ExecuteStateTransactionRequest,
) -> Result<(), DaprError> {
    let operations = request
        .operations
        .into_iter()
        .map(|operation| {
            let item =
                operation.request.ok_or_else(|| DaprError::malformed("a transaction operation has no request"))?;
            grpc_item(item)?.into_operation(&operation.operation_type)
        })
        .collect::<Result<_, _>>()?;
    gateway.call(caller.tenant, ExecuteTransaction { store: request.store_name, operations }).await
}

async fn query_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::QueryStateRequest,
) -> Result<pb::QueryStateResponse, DaprError> {
    let page = gateway.call(caller.tenant, QueryState { store: request.store_name, query: request.query }).await?;
    let results = page
        .results
        .into_iter()
        .map(|item| pb::QueryStateItem { key: item.key, data: item.data, etag: item.etag, error: String::new() })
        .collect();
    Ok(pb::QueryStateResponse { results, token: page.token.unwrap_or_default(), metadata: HashMap::new() })
}
