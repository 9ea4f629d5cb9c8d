//! The Dapr HTTP API (daprd `pkg/api/http`): routes, bodies and answers as daprd has them.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::header::{CONTENT_TYPE, ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::{Extension, Json, Router};
use outrigger_bus::{
    Call, Concurrency, DeleteItem, Metadata, PublishEntry, Reply, SaveItem, SubscriptionKind, Tenant, TraceContext,
    TransactionOperation,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::Instrument;

use crate::{unexpected, AppMetadata, DaprError, Gateway, Refusal};

/// The header SDKs send the API token in.
const TOKEN_HEADER: &str = "dapr-api-token";

/// The Dapr HTTP API.
pub fn http_router(gateway: Gateway) -> Router {
    let limit = gateway.options().max_body_bytes;
    let authenticated = Router::new()
        .route("/v1.0/metadata", get(metadata))
        .route("/v1.0/metadata/{key}", put(set_metadata))
        // Asks a sidecar to stop; a shared gateway acknowledges (as gRPC `Shutdown`) and keeps serving everyone.
        .route("/v1.0/shutdown", post(|| async { StatusCode::NO_CONTENT }))
        .route("/v1.0/state/{store}", post(save_state).put(save_state))
        .route(
            "/v1.0/state/{store}/{key}",
            get(get_state).delete(delete_state).post(state_subresource).put(state_subresource),
        )
        .route("/v1.0-alpha1/state/{store}/query", post(query_state).put(query_state))
        .route("/v1.0/publish/{pubsub}/{*topic}", post(publish).put(publish))
        .route("/v1.0-alpha1/publish/bulk/{pubsub}/{*topic}", post(bulk_publish).put(bulk_publish))
        .route("/v1.0/publish/bulk/{pubsub}/{*topic}", post(bulk_publish).put(bulk_publish))
        .route("/v1.0/invoke/{app_id}/method/{*method}", any(invoke_by_path))
        .route("/v1.0/secrets/{store}/bulk", get(get_bulk_secret))
        .route("/v1.0/secrets/{store}/{key}", get(get_secret))
        .merge(crate::workflow::http::routes())
        .route_layer(axum::middleware::from_fn_with_state(gateway.clone(), authenticate));
    Router::new()
        .route("/v1.0/healthz", get(|| async { StatusCode::NO_CONTENT }))
        .route("/v1.0/healthz/outbound", get(|| async { StatusCode::NO_CONTENT }))
        .merge(authenticated)
        .fallback(invoke_by_header)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(gateway)
}

/// Lets a call in (or answers daprd's refusal) and puts the caller on the request and its span.
async fn authenticate(State(gateway): State<Gateway>, mut request: Request, next: Next) -> Response {
    let tenant = match admit(&gateway, &mut request).await {
        Ok(tenant) => tenant,
        Err(refused) => return refused,
    };
    let span = tracing::info_span!(
        "dapr_http",
        method = %request.method(),
        path = request.uri().path(),
        project = %tenant.project,
        app_id = %tenant.app_id,
    );
    request.extensions_mut().insert(tenant);
    next.run(request).instrument(span).await
}

/// The caller of a request, its token taken off the request (the token goes no further than here), or
/// daprd's refusal.
async fn admit(gateway: &Gateway, request: &mut Request) -> Result<Tenant, Response> {
    let token = request.headers().get(TOKEN_HEADER).and_then(|value| value.to_str().ok());
    let tenant = match gateway.admit(token).await {
        Ok(tenant) => tenant,
        Err(Refusal::MissingToken | Refusal::WrongToken) => {
            return Err((StatusCode::UNAUTHORIZED, [(CONTENT_TYPE, "text/plain; charset=utf-8")], "invalid api token")
                .into_response())
        }
        Err(Refusal::RateLimited(limit)) => return Err(DaprError::rate_limited(limit).into_response()),
        Err(Refusal::Unavailable) => return Err(DaprError::auth_unavailable().into_response()),
    };
    request.headers_mut().remove(TOKEN_HEADER);
    Ok(tenant)
}

/// `/v1.0/invoke/{appId}/method/{method...}`: the method is the rest of the raw path, as daprd reads it.
async fn invoke_by_path(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((app_id, _)): Path<(String, String)>,
    request: Request,
) -> Response {
    let raw_path = request.uri().path();
    let method = raw_path.find("/method/").map_or("", |at| &raw_path[at + "/method".len()..]).to_owned();
    invoke(&gateway, &tenant, &app_id, method, request).await
}

/// Any path that is no Dapr API route, with `dapr-app-id: <id>` (or `Authorization: Basic` of `dapr-app-id:<id>`):
/// an invocation of that whole path on the app, as daprd's fallback route does. Anything else is an API
/// this version does not serve.
async fn invoke_by_header(State(gateway): State<Gateway>, mut request: Request) -> Response {
    let headers = request.headers();
    let app_id = headers
        .get("dapr-app-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| headers.get(axum::http::header::AUTHORIZATION).and_then(crate::invoke::basic_app_id));
    let Some(app_id) = app_id.filter(|app_id| !app_id.is_empty()) else {
        return DaprError::unimplemented(request.uri().path()).into_response();
    };
    let tenant = match admit(&gateway, &mut request).await {
        Ok(tenant) => tenant,
        Err(refused) => return refused,
    };
    let method = request.uri().path().to_owned();
    let span = tracing::info_span!("dapr_http", method = %request.method(), path = %method, project = %tenant.project, app_id = %tenant.app_id);
    invoke(&gateway, &tenant, &app_id, method, request).instrument(span).await
}

/// Carries a request to `app_id` and its answer back, both streamed.
async fn invoke(gateway: &Gateway, tenant: &Tenant, app_id: &str, method: String, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let method = if method.starts_with('/') { method } else { format!("/{method}") };
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("{method}?{query}"),
        None => method,
    };
    let invocation = crate::invoke::Invocation { method: parts.method, path_and_query, headers: parts.headers, body };
    match gateway.invoke(tenant, app_id, invocation).await {
        Ok(answer) => {
            let (status, headers) = (answer.status(), crate::invoke::returned_headers(&answer));
            let mut response = Response::new(crate::invoke::streamed_body(answer));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        Err(err) => DaprError::from(err).into_response(),
    }
}

/// A body read whole, over-limit answered as daprd's error.
pub(crate) struct Body(pub(crate) Bytes);

impl FromRequest<Gateway> for Body {
    type Rejection = DaprError;

    async fn from_request(request: Request, gateway: &Gateway) -> Result<Body, DaprError> {
        Bytes::from_request(request, gateway).await.map(Body).map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                DaprError::body_too_large(gateway.options().max_body_bytes)
            } else {
                DaprError::malformed(format!("failed reading the request body: {}", rejection.body_text()))
            }
        })
    }
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, DaprError> {
    serde_json::from_slice(body).map_err(|err| DaprError::malformed(format!("failed deserializing HTTP body: {err}")))
}

/// `metadata.<k>=<v>` query parameters, as component metadata.
fn query_metadata(params: &HashMap<String, String>) -> Metadata {
    params
        .iter()
        .filter_map(|(name, value)| name.strip_prefix("metadata.").map(|name| (name.to_owned(), value.clone())))
        .collect()
}

/// Metadata maps in bodies: values may be JSON strings, numbers or booleans.
fn body_metadata(metadata: Option<HashMap<String, Value>>) -> Metadata {
    metadata
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            (name, text)
        })
        .collect()
}

fn concurrency(text: Option<&str>) -> Result<Concurrency, DaprError> {
    match text.unwrap_or_default() {
        "" | "last-write" => Ok(Concurrency::LastWrite),
        "first-write" => Ok(Concurrency::FirstWrite),
        other => Err(DaprError::malformed(format!("unknown concurrency '{other}': use first-write or last-write"))),
    }
}

/// A header a call acts on, as text. A value that is not visible ASCII is the caller's error, never an absent
/// header: an unreadable `If-Match` taken as none would make a conditional delete unconditional.
fn header_text(headers: &HeaderMap, name: HeaderName, label: &str) -> Result<Option<String>, DaprError> {
    let Some(value) = headers.get(name) else { return Ok(None) };
    let text = value.to_str().map_err(|_| DaprError::malformed(format!("the {label} header is not visible ASCII")))?;
    Ok(Some(text.to_owned()))
}

/// Response metadata goes back as `metadata.<k>` headers.
fn metadata_headers(headers: &mut HeaderMap, metadata: &Metadata) {
    for (name, value) in metadata {
        let name = HeaderName::try_from(format!("metadata.{name}"));
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    }
}

/// A stored value inside a JSON answer: JSON stays JSON, anything else becomes a string.
fn embedded(data: &[u8]) -> Value {
    serde_json::from_slice(data).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(data).into_owned()))
}

#[derive(Deserialize)]
struct StateOptions {
    concurrency: Option<String>,
}

#[derive(Deserialize)]
struct StateItemIn {
    key: Option<String>,
    value: Option<Value>,
    etag: Option<String>,
    metadata: Option<HashMap<String, Value>>,
    options: Option<StateOptions>,
}

impl StateItemIn {
    fn into_save(self) -> Result<SaveItem, DaprError> {
        let key =
            self.key.filter(|key| !key.is_empty()).ok_or_else(|| DaprError::malformed("a state item has no key"))?;
        let value = match self.value {
            Some(value) => serde_json::to_vec(&value).expect("JSON values serialise"),
            None => Vec::new(),
        };
        Ok(SaveItem {
            key,
            value,
            etag: self.etag,
            metadata: body_metadata(self.metadata),
            concurrency: concurrency(self.options.as_ref().and_then(|options| options.concurrency.as_deref()))?,
        })
    }

    fn into_delete(self) -> Result<DeleteItem, DaprError> {
        let key =
            self.key.filter(|key| !key.is_empty()).ok_or_else(|| DaprError::malformed("a state item has no key"))?;
        Ok(DeleteItem {
            key,
            etag: self.etag,
            metadata: body_metadata(self.metadata),
            concurrency: concurrency(self.options.as_ref().and_then(|options| options.concurrency.as_deref()))?,
        })
    }
}

async fn get_state(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((store, key)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, DaprError> {
    let call = Call::GetState { store, key, metadata: query_metadata(&params) };
    match gateway.call(tenant, call).await? {
        Reply::State(None) => Ok(StatusCode::NO_CONTENT.into_response()),
        Reply::State(Some(value)) => {
            let content_type = if serde_json::from_slice::<serde::de::IgnoredAny>(&value.data).is_ok() {
                "application/json"
            } else {
                "application/octet-stream"
            };
            let mut response = (StatusCode::OK, [(CONTENT_TYPE, content_type)], value.data).into_response();
            if let Ok(etag) = HeaderValue::from_str(&value.etag) {
                response.headers_mut().insert(ETAG, etag);
            }
            metadata_headers(response.headers_mut(), &value.metadata);
            Ok(response)
        }
        other => Err(unexpected(other)),
    }
}

async fn save_state(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path(store): Path<String>,
    Body(body): Body,
) -> Result<StatusCode, DaprError> {
    let items: Vec<StateItemIn> = parse_json(&body)?;
    let items = items.into_iter().map(StateItemIn::into_save).collect::<Result<Vec<_>, _>>()?;
    match gateway.call(tenant, Call::SaveState { store, items }).await? {
        Reply::Done => Ok(StatusCode::NO_CONTENT),
        other => Err(unexpected(other)),
    }
}

async fn delete_state(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((store, key)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<StatusCode, DaprError> {
    let etag = header_text(&headers, IF_MATCH, "If-Match")?;
    let item = DeleteItem {
        key,
        etag,
        metadata: query_metadata(&params),
        concurrency: concurrency(params.get("concurrency").map(String::as_str))?,
    };
    match gateway.call(tenant, Call::DeleteState { store, items: vec![item] }).await? {
        Reply::Done => Ok(StatusCode::NO_CONTENT),
        other => Err(unexpected(other)),
    }
}

#[derive(Deserialize)]
struct BulkGetIn {
    #[serde(default)]
    keys: Vec<String>,
    metadata: Option<HashMap<String, Value>>,
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
    metadata: Option<HashMap<String, Value>>,
}

/// `POST /v1.0/state/{store}/bulk` and `/transaction` share the path shape of a key.
async fn state_subresource(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((store, action)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Response, DaprError> {
    match action.as_str() {
        "bulk" => {
            let request: BulkGetIn = parse_json(&body)?;
            let call = Call::GetBulkState { store, keys: request.keys, metadata: body_metadata(request.metadata) };
            let Reply::BulkState(items) = gateway.call(tenant, call).await? else {
                return Err(DaprError::malformed("unexpected reply to a bulk get"));
            };
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
            let mut operations = Vec::with_capacity(request.operations.len());
            for operation in request.operations {
                operations.push(match operation.operation.as_str() {
                    "upsert" => TransactionOperation::Upsert(operation.request.into_save()?),
                    "delete" => TransactionOperation::Delete(operation.request.into_delete()?),
                    other => {
                        return Err(DaprError::malformed(format!(
                            "operation type {other} not supported: use upsert or delete"
                        )))
                    }
                });
            }
            let call = Call::Transaction { store, operations, metadata: body_metadata(request.metadata) };
            match gateway.call(tenant, call).await? {
                Reply::Done => Ok(StatusCode::NO_CONTENT.into_response()),
                other => Err(unexpected(other)),
            }
        }
        _ => Ok(StatusCode::METHOD_NOT_ALLOWED.into_response()),
    }
}

async fn query_state(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path(store): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    Body(body): Body,
) -> Result<Response, DaprError> {
    let query = String::from_utf8(body.to_vec()).map_err(|_| DaprError::malformed("the query must be UTF-8 JSON"))?;
    let call = Call::QueryState { store, query, metadata: query_metadata(&params) };
    match gateway.call(tenant, call).await? {
        Reply::Query { results, token } => {
            let results: Vec<Value> = results
                .into_iter()
                .map(|item| json!({ "key": item.key, "data": embedded(&item.data), "etag": item.etag }))
                .collect();
            let mut answer = json!({ "results": results });
            if let Some(token) = token {
                answer["token"] = Value::String(token);
            }
            Ok(Json(answer).into_response())
        }
        other => Err(unexpected(other)),
    }
}

/// `GET /v1.0/secrets/{store}/{key}`: the secret's keys and values.
async fn get_secret(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((store, key)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, DaprError> {
    match gateway.call(tenant, Call::GetSecret { store, key, metadata: query_metadata(&params) }).await? {
        Reply::Secret(secret) => Ok(Json(secret).into_response()),
        other => Err(unexpected(other)),
    }
}

/// `GET /v1.0/secrets/{store}/bulk`: every secret the caller may read, by name.
async fn get_bulk_secret(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path(store): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, DaprError> {
    match gateway.call(tenant, Call::GetBulkSecret { store, metadata: query_metadata(&params) }).await? {
        Reply::BulkSecret(secrets) => Ok(Json(secrets).into_response()),
        other => Err(unexpected(other)),
    }
}

/// `GET /v1.0/metadata`: the JS SDK's start-up probe, so the body is never empty.
async fn metadata(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
) -> Result<Json<Value>, DaprError> {
    let AppMetadata { info: metadata, extended, http_endpoints } = gateway.metadata(&tenant).await?;
    let http_endpoints: Vec<Value> = http_endpoints.into_iter().map(|name| json!({ "name": name })).collect();
    let components: Vec<Value> = metadata
        .components
        .into_iter()
        .map(|c| json!({ "name": c.name, "type": c.component_type, "version": c.version, "capabilities": c.capabilities }))
        .collect();
    let subscriptions: Vec<Value> = metadata
        .subscriptions
        .into_iter()
        .map(|subscription| {
            let rules: Vec<Value> = subscription
                .rules
                .iter()
                .map(|(condition, path)| json!({ "match": condition, "path": path }))
                .collect();
            let kind = match subscription.kind {
                SubscriptionKind::Declarative => "DECLARATIVE",
                SubscriptionKind::Programmatic => "PROGRAMMATIC",
                SubscriptionKind::Streaming => "STREAMING",
            };
            let mut entry =
                json!({ "pubsubname": subscription.pubsub, "topic": subscription.topic, "rules": rules, "type": kind });
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

/// `PUT /v1.0/metadata/{key}`: the body is the attribute's value, as text.
async fn set_metadata(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path(key): Path<String>,
    Body(body): Body,
) -> Result<StatusCode, DaprError> {
    let value = std::str::from_utf8(&body).map_err(|_| DaprError::malformed("the metadata value is not UTF-8 text"))?;
    gateway.set_metadata(&tenant, &key, value).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The W3C trace context of a request.
fn trace_context(headers: &HeaderMap) -> TraceContext {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
    TraceContext { traceparent: header("traceparent"), tracestate: header("tracestate") }
}

async fn publish(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((pubsub, topic)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<StatusCode, DaprError> {
    let content_type = header_text(&headers, CONTENT_TYPE, "Content-Type")?;
    let entry =
        PublishEntry { entry_id: String::new(), data: body.to_vec(), content_type, metadata: query_metadata(&params) };
    let call = Call::Publish { pubsub, topic, entries: vec![entry], trace: trace_context(&headers) };
    match gateway.call(tenant, call).await? {
        Reply::Published(failed) if failed.is_empty() => Ok(StatusCode::NO_CONTENT),
        other => Err(unexpected(other)),
    }
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

/// Bulk publish (daprd `v1.0-alpha1` and, since 1.17, `v1.0`): every entry needs a unique `entryId`.
async fn bulk_publish(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((pubsub, topic)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, DaprError> {
    let entries: Vec<BulkEntryIn> = parse_json(&body)?;
    let shared = query_metadata(&params);
    let mut seen = std::collections::HashSet::new();
    let mut publish = Vec::with_capacity(entries.len());
    for entry in entries {
        let entry_id = entry
            .entry_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| DaprError::bulk_entries("every entry of a bulk publish needs an entryId"))?;
        if !seen.insert(entry_id.clone()) {
            return Err(DaprError::bulk_entries(format!("entryId {entry_id} is used twice; entry ids must be unique")));
        }
        let is_json = entry.content_type.as_deref().is_some_and(|content_type| content_type.contains("json"));
        let data = match entry.event {
            Value::String(text) if !is_json => text.into_bytes(),
            event => serde_json::to_vec(&event).expect("JSON values serialise"),
        };
        let mut metadata = shared.clone();
        metadata.extend(body_metadata(entry.metadata));
        publish.push(PublishEntry { entry_id, data, content_type: entry.content_type, metadata });
    }
    let call = Call::Publish { pubsub, topic, entries: publish, trace: trace_context(&headers) };
    match gateway.call(tenant, call).await? {
        Reply::Published(failed) if failed.is_empty() => Ok(StatusCode::NO_CONTENT.into_response()),
        Reply::Published(failed) => {
            let failed: Vec<Value> =
                failed.into_iter().map(|entry| json!({ "entryId": entry.entry_id, "error": entry.error })).collect();
            let body = json!({ "failedEntries": failed, "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE" });
            Ok((StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response())
        }
        other => Err(unexpected(other)),
    }
}
