//! The output bindings API: HTTP `POST|PUT /v1.0/bindings/{name}` (`{"data", "metadata", "operation"}`), gRPC
//! `InvokeBinding`. As in daprd, HTTP `data` is any JSON and reaches the binding as its JSON text (a string
//! arrives quoted); the answer's metadata comes back as `metadata.<key>` headers.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use dapr::dapr::proto::runtime::v1 as pb;
use outrigger_bus::{InvokeBinding, Tenant, TraceContext};
use serde::Deserialize;
use serde_json::Value;

use super::grpc::{dapr_rpc, metadata, rpc, Caller, Rpcs};
use super::http::{body_metadata, metadata_headers, parse_json, Body};
use super::trace_context;
use crate::{DaprError, Gateway};

pub(super) fn http_routes() -> Router<Gateway> {
    Router::new().route("/v1.0/bindings/{name}", post(invoke_http).put(invoke_http))
}

pub(super) fn grpc_rpcs() -> Rpcs {
    vec![(dapr_rpc("InvokeBinding"), rpc(invoke_grpc))]
}

/// daprd's `OutputBindingRequest`.
#[derive(Deserialize)]
struct BindingBody {
    #[serde(default)]
    data: Value,
    metadata: Option<HashMap<String, Value>>,
    #[serde(default)]
    operation: String,
}

/// The caller's trace context goes to the binding in its metadata, as daprd passes it (the HTTP binding sends
/// it on as headers).
fn with_trace(mut call: InvokeBinding, trace: TraceContext) -> InvokeBinding {
    for (name, value) in [("traceparent", trace.traceparent), ("tracestate", trace.tracestate)] {
        if let Some(value) = value {
            call.metadata.entry(name.to_owned()).or_insert(value);
        }
    }
    call
}

async fn invoke_http(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, DaprError> {
    let body: BindingBody = parse_json(&body)?;
    let data =
        if body.data.is_null() { Vec::new() } else { serde_json::to_vec(&body.data).expect("a JSON value serializes") };
    let call = InvokeBinding { name, operation: body.operation, data, metadata: body_metadata(body.metadata) };
    let answer = gateway.call(tenant, with_trace(call, trace_context(&headers))).await?;
    let mut response = if answer.data.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::OK, answer.data).into_response()
    };
    metadata_headers(response.headers_mut(), &answer.metadata);
    Ok(response)
}

async fn invoke_grpc(
    gateway: Gateway,
    caller: Caller,
    request: pb::InvokeBindingRequest,
) -> Result<pb::InvokeBindingResponse, DaprError> {
    let call = InvokeBinding {
        name: request.name,
        operation: request.operation,
        data: request.data,
        metadata: metadata(request.metadata),
    };
    let call = with_trace(call, caller.trace());
    let answer = gateway.call(caller.tenant, call).await?;
    Ok(pb::InvokeBindingResponse { data: answer.data, metadata: answer.metadata.into_iter().collect() })
}
