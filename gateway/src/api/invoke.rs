//! Service invocation: HTTP `/v1.0/invoke/{appId}/method/...` and daprd's fallback route (any other path with a
//! `dapr-app-id` header), gRPC `InvokeService`. The gateway carries these itself, through [`crate::invoke`],
//! rather than over the bus.

use axum::extract::{Path, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use dapr::dapr::proto::common::v1::http_extension::Verb;
use dapr::dapr::proto::common::v1::InvokeResponse;
use dapr::dapr::proto::runtime::v1 as pb;
use outrigger_bus::Tenant;
use outrigger_telemetry::trace::{TRACEPARENT, TRACESTATE};
use tracing::Instrument;

use super::grpc::{dapr_rpc, rpc, Caller, Rpcs};
use crate::invoke::{Invocation, InvokeError};
use crate::observe::Subject;
use crate::{DaprError, Gateway};

pub(super) fn http_routes() -> Router<Gateway> {
    Router::new().route("/v1.0/invoke/{app_id}/method/{*method}", any(by_path))
}

pub(super) fn grpc_rpcs() -> Rpcs {
    vec![(dapr_rpc("InvokeService"), rpc(invoke_grpc))]
}

/// `/v1.0/invoke/{appId}/method/{method...}`: the method is the rest of the raw path, as daprd reads it.
async fn by_path(
    State(gateway): State<Gateway>,
    Extension(tenant): Extension<Tenant>,
    Path((app_id, _)): Path<(String, String)>,
    request: Request,
) -> Response {
    let method = method_of(request.uri().path()).to_owned();
    invoke(&gateway, &tenant, &app_id, method, request).await
}

/// The method of an invocation by path, from the raw path the route matched: what follows `/method` after the
/// App ID's segment (an App ID named `method` included), starting with `/`. Found by the segment's end, not by
/// searching for `/method/` (~440 instructions).
fn method_of(raw_path: &str) -> &str {
    let after_app_id = raw_path.strip_prefix("/v1.0/invoke/").and_then(|rest| rest.split_once('/'));
    after_app_id.and_then(|(_, rest)| rest.strip_prefix("method")).unwrap_or("")
}

/// Any path that is no Dapr API route, with `dapr-app-id: <id>` (or `Authorization: Basic` of `dapr-app-id:<id>`):
/// an invocation of that whole path on the app, as daprd's fallback route does. Anything else is an API
/// this version does not serve. The caller is authenticated first, as daprd's token check comes before its
/// routes: without a valid token every path but the health probes answers 401.
pub(super) async fn by_header(State(gateway): State<Gateway>, mut request: Request) -> Response {
    let (tenant, observation) = match super::http::admit(&gateway, &mut request).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let headers = request.headers();
    let app_id = headers
        .get(crate::invoke::DAPR_APP_ID)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| headers.get(axum::http::header::AUTHORIZATION).and_then(crate::invoke::basic_app_id));
    let Some(app_id) = app_id.filter(|app_id| !app_id.is_empty()) else {
        let mut unserved = DaprError::unimplemented(request.uri().path()).into_response();
        let status = unserved.status().as_u16();
        observation.finish(&gateway, &tenant, unserved.headers_mut(), (status, None), Subject::of_http_path);
        return unserved;
    };
    let method = request.uri().path().to_owned();
    let span = tracing::debug_span!("dapr_http", method = %request.method(), path = %method, project = %tenant.project, app_id = %tenant.app_id);
    let mut answer = observation.traced(invoke(&gateway, &tenant, &app_id, method, request)).instrument(span).await;
    let status = answer.status().as_u16();
    observation.finish(&gateway, &tenant, answer.headers_mut(), (status, None), |_| Subject::invocation(&app_id));
    answer
}

/// Carries a request to `app_id` and its answer back, both streamed.
async fn invoke(gateway: &Gateway, tenant: &Tenant, app_id: &str, method: String, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    crate::observe::pass_on_trace(&mut parts.headers);
    let method = if method.starts_with('/') { method } else { format!("/{method}") };
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("{method}?{query}"),
        None => method,
    };
    let invocation = Invocation { method: parts.method, path_and_query, headers: parts.headers, body };
    match gateway.invoke(tenant, app_id, invocation).await {
        Ok(mut answer) => {
            *answer.headers_mut() = crate::invoke::returned_headers(&answer);
            answer
        }
        Err(err) => DaprError::from(err).into_response(),
    }
}

/// `InvokeService`: the message goes to the callee as an HTTP request (verb and query from its HTTP extension,
/// POST without one) and the callee's body comes back; a callee's error status becomes the rpc's error.
async fn invoke_grpc(
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
    let mut set = |name: HeaderName, value: Option<&str>| {
        if let Some(value) = value.filter(|value| !value.is_empty()).and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    };
    set(CONTENT_TYPE, Some(&message.content_type));
    let trace = caller.trace();
    set(TRACEPARENT, trace.traceparent.as_deref());
    set(TRACESTATE, trace.tracestate.as_deref());
    let body = axum::body::Body::from(message.data.map(|data| data.value).unwrap_or_default());
    let invocation = Invocation { method: verb, path_and_query, headers, body };
    let answer = gateway.invoke(&caller.tenant, &request.id, invocation).await?;
    let status = answer.status();
    let content_type =
        answer.headers().get("content-type").and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    let body = axum::body::to_bytes(answer.into_body(), usize::MAX)
        .await
        .map_err(|err| InvokeError::Unreachable { id: request.id.clone(), reason: err.to_string() })?;
    if !status.is_success() {
        let body = String::from_utf8_lossy(&body).into_owned();
        return Err(InvokeError::AppFailed { id: request.id, status: status.as_u16(), body }.into());
    }
    Ok(InvokeResponse { data: Some(prost_types::Any { type_url: String::new(), value: body.to_vec() }), content_type })
}

#[cfg(test)]
mod tests {
    use super::method_of;

    #[test]
    fn the_method_is_what_follows_the_app_ids_segment() {
        assert_eq!(method_of("/v1.0/invoke/checkout/method/pay/now"), "/pay/now");
        assert_eq!(method_of("/v1.0/invoke/method/method/method/x"), "/method/x");
        assert_eq!(method_of("/v1.0/invoke/a.b%2Fc/method/"), "/");
        assert_eq!(method_of("/v1.0/invoke/checkout/method/a%20b"), "/a%20b");
    }
}
