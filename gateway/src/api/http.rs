//! The HTTP side shared by every building block: the router that gathers each block's routes, the
//! authentication every route but the health probes passes, and the readers of bodies, query metadata and
//! headers the blocks share.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use outrigger_bus::{Metadata, Tenant};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument;

use super::{bindings, configuration, invoke, jobs, lock, metadata, pubsub, secrets, state, workflow};
use crate::observe::{Observation, Subject};
use crate::{DaprError, Gateway};

/// The Dapr HTTP API.
pub fn http_router(gateway: Gateway) -> Router {
    let authenticated = Router::new()
        .merge(metadata::http_routes())
        .merge(state::http_routes())
        .merge(pubsub::http_routes())
        .merge(invoke::http_routes())
        .merge(secrets::http_routes())
        .merge(lock::http_routes())
        .merge(configuration::http_routes())
        .merge(jobs::http_routes())
        .merge(bindings::http_routes())
        .merge(workflow::http_routes())
        .route_layer(axum::middleware::from_fn_with_state(gateway.clone(), authenticate));
    Router::new()
        .route("/v1.0/healthz", get(|| async { StatusCode::NO_CONTENT }))
        .route("/v1.0/healthz/outbound", get(|| async { StatusCode::NO_CONTENT }))
        .merge(authenticated)
        .fallback(invoke::by_header)
        .with_state(gateway)
}

/// Lets a call in (or answers daprd's refusal), puts the caller on the request and its span, and records the
/// call once answered.
async fn authenticate(State(gateway): State<Gateway>, mut request: Request, next: Next) -> Response {
    let (tenant, observation) = match admit(&gateway, &mut request).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    // A debug span: at info level the log layer formats its fields on every call, 8 % of a state GET's
    // instructions. `OUTRIGGER_LOG=info,outrigger_gateway=debug` puts it back on every log line of a call.
    let span = tracing::debug_span!(
        "dapr_http",
        method = %request.method(),
        path = request.uri().path(),
        project = %tenant.project,
        app_id = %tenant.app_id,
    );
    request.extensions_mut().insert(tenant.clone());
    let mut response = observation.traced(next.run(request)).instrument(span).await;
    let status = response.status().as_u16();
    observation.finish(&gateway, &tenant, response.headers_mut(), (status, None), Subject::of_http_path);
    response
}

/// The caller of a request and the observation of its call, its token taken off the request (the token goes
/// no further than here) and its trace headers naming the call's span, or daprd's refusal (recorded for the
/// caller's project when the caller is known).
pub(super) async fn admit(gateway: &Gateway, request: &mut Request) -> Result<(Tenant, Observation), Response> {
    let mut observation = Observation::start(gateway, request, false);
    let token = request.headers().get(super::API_TOKEN).and_then(|value| value.to_str().ok());
    match gateway.admit(token).await {
        Ok(tenant) => {
            request.headers_mut().remove(super::API_TOKEN);
            observation.enter(gateway, &tenant, request.headers()).await;
            Ok((tenant, observation))
        }
        Err((refusal, tenant)) => {
            let mut refused = refusal.into_response();
            if let Some(tenant) = tenant {
                let status = refused.status().as_u16();
                observation.finish(gateway, &tenant, refused.headers_mut(), (status, None), Subject::of_http_path);
            }
            Err(refused)
        }
    }
}

/// A body read whole, over-limit answered as daprd's error.
pub(crate) struct Body(pub(crate) Bytes);

impl FromRequest<Gateway> for Body {
    type Rejection = DaprError;

    async fn from_request(mut request: Request, gateway: &Gateway) -> Result<Body, DaprError> {
        // The limit is set here, where a body is read, rather than by a layer on every route: a layer is one
        // more service cloned and called for every request, bodiless GETs included.
        DefaultBodyLimit::max(gateway.options().max_body_bytes).apply(&mut request);
        Bytes::from_request(request, gateway).await.map(Body).map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                DaprError::body_too_large(gateway.options().max_body_bytes)
            } else {
                DaprError::malformed(format!("failed reading the request body: {}", rejection.body_text()))
            }
        })
    }
}

/// A JSON body, or daprd's malformed-request error.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, DaprError> {
    serde_json::from_slice(body).map_err(|err| DaprError::malformed(format!("failed deserializing HTTP body: {err}")))
}

/// `metadata.<k>=<v>` query parameters, as component metadata.
pub(crate) fn query_metadata(params: &HashMap<String, String>) -> Metadata {
    params
        .iter()
        .filter_map(|(name, value)| name.strip_prefix("metadata.").map(|name| (name.to_owned(), value.clone())))
        .collect()
}

/// Metadata maps in bodies: values may be JSON strings, numbers or booleans.
pub(crate) fn body_metadata(metadata: Option<HashMap<String, Value>>) -> Metadata {
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

/// A header a call acts on, as text. A value that is not visible ASCII is the caller's error, never an absent
/// header: an unreadable `If-Match` taken as none would make a conditional delete unconditional.
pub(crate) fn header_text(headers: &HeaderMap, name: HeaderName, label: &str) -> Result<Option<String>, DaprError> {
    let Some(value) = headers.get(name) else { return Ok(None) };
    let text = value.to_str().map_err(|_| DaprError::malformed(format!("the {label} header is not visible ASCII")))?;
    Ok(Some(text.to_owned()))
}

/// Response metadata goes back as `metadata.<k>` headers.
pub(crate) fn metadata_headers(headers: &mut HeaderMap, metadata: &Metadata) {
    for (name, value) in metadata {
        let name = HeaderName::try_from(format!("metadata.{name}"));
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    }
}

/// A stored value inside a JSON answer: JSON stays JSON, anything else becomes a string.
pub(crate) fn embedded(data: &[u8]) -> Value {
    serde_json::from_slice(data).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(data).into_owned()))
}

/// An answer with no body.
pub(crate) fn no_content<T>(_: T) -> Response {
    StatusCode::NO_CONTENT.into_response()
}
