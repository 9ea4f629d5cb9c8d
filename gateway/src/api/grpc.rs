//! The gRPC side shared by every building block: the router that gathers each block's rpcs (Dapr's
//! `dapr.proto.runtime.v1.Dapr` and durabletask's `TaskHubSidecarService`), the admission of a call from its
//! metadata, and the adapter that turns a typed handler into a unary rpc. Messages are the `dapr` crate's
//! generated types; the routing is ours so that only the rpcs Outrigger serves exist and everything else
//! answers `Unimplemented`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::OnceLock;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{post, MethodRouter};
use axum::Router;
use outrigger_bus::{Metadata, Tenant, TraceContext};
use tracing::Instrument;

use super::{bindings, configuration, invoke, jobs, lock, metadata, pubsub, secrets, state, workflow};
use crate::observe::{grpc_code_of, http_status_of_grpc, rpc_api, EndLogged, Observation, RpcSubject, Subject};
use crate::stream_guard::StreamGuard;
use crate::{DaprError, Gateway};

/// Routes of one building block's rpcs: (full path, route).
pub(crate) type Rpcs = Vec<(String, MethodRouter<Gateway>)>;

/// The full path of an rpc of Dapr's runtime service.
pub(crate) fn dapr_rpc(name: &str) -> String {
    format!("/dapr.proto.runtime.v1.Dapr/{name}")
}

/// The Dapr gRPC API (HTTP/2 without TLS, as the SDKs dial it).
pub fn grpc_router(gateway: Gateway) -> Router {
    let blocks = [
        metadata::grpc_rpcs(),
        state::grpc_rpcs(),
        pubsub::grpc_rpcs(),
        invoke::grpc_rpcs(),
        secrets::grpc_rpcs(),
        lock::grpc_rpcs(),
        configuration::grpc_rpcs(),
        jobs::grpc_rpcs(),
        bindings::grpc_rpcs(),
        workflow::grpc_rpcs(),
    ];
    let mut router = Router::new();
    for (path, route) in blocks.into_iter().flatten() {
        router = router.route(&path, route);
    }
    router.fallback(unserved_rpc).with_state(gateway)
}

/// An rpc this version does not serve: `Unimplemented` to an authenticated caller, the refusal to anyone else.
async fn unserved_rpc(State(gateway): State<Gateway>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    match admit(&gateway, &headers, uri.path()).await {
        Ok(_) => DaprError::unimplemented(uri.path()).into_grpc_response(),
        Err((refused, _)) => refused,
    }
}

/// Lets a call in, or answers the refusal (with the caller, when it is known): the caller and its span.
async fn admit(
    gateway: &Gateway,
    headers: &HeaderMap,
    rpc: &str,
) -> Result<(Tenant, tracing::Span), (Response, Option<Tenant>)> {
    let token = headers.get(super::API_TOKEN).and_then(|value| value.to_str().ok());
    let tenant = gateway.admit(token).await.map_err(|(refusal, tenant)| (refusal.into_grpc_response(), tenant))?;
    let span = tracing::debug_span!("dapr_grpc", rpc, project = %tenant.project, app_id = %tenant.app_id);
    Ok((tenant, span))
}

/// Lets a stream in: [`admit`], the guard that ends the stream when its credential ends, and the record of its
/// opening for the API log and metrics (a refusal of a known caller is recorded here).
pub(crate) async fn admit_stream(
    gateway: &Gateway,
    // `&mut`: a shared reference held across an await would ask the body to be `Sync`.
    request: &mut Request,
) -> Result<(Tenant, StreamGuard, tracing::Span, StreamOpening), Response> {
    let mut observation = Observation::start(gateway, request, true);
    let headers = request.headers();
    let (tenant, span) = match admit(gateway, headers, request.uri().path()).await {
        Ok(admitted) => admitted,
        Err((mut refused, tenant)) => {
            if let Some(tenant) = tenant {
                let code = grpc_status(&refused);
                let status = (http_status_of_grpc(code), Some(code));
                observation.finish(gateway, &tenant, refused.headers_mut(), status, of_rpc(None));
            }
            return Err(refused);
        }
    };
    let token = headers.get(super::API_TOKEN).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let guard = gateway.guard_stream(token.trim(), &tenant);
    observation.enter(gateway, &tenant, headers).await;
    Ok((tenant, guard, span, StreamOpening(observation)))
}

/// A stream's opening, recorded once its first answer (the opening's headers, or a refusal) is ready: the log
/// keeps a stream as a call that took as long as its setup (the one counted), and, once the stream ends, as
/// the record of its end.
pub(crate) struct StreamOpening(Observation);

impl StreamOpening {
    /// The stream's answer, whose body logs the stream's end when it opened.
    pub(crate) fn answered(
        self,
        gateway: &Gateway,
        tenant: &Tenant,
        response: Response<tonic::body::Body>,
    ) -> Response {
        let code = grpc_status(&response);
        let (mut parts, body) = response.into_parts();
        let status = (http_status_of_grpc(code), Some(code));
        let body = axum::body::Body::new(body);
        match self.0.finish_opening(gateway, tenant, &mut parts.headers, status, of_rpc(None)) {
            Some(end) => Response::from_parts(parts, axum::body::Body::new(EndLogged::new(body, end))),
            None => Response::from_parts(parts, body),
        }
    }
}

/// Who calls, and the trace context of the call.
pub(crate) struct Caller {
    pub(crate) tenant: Tenant,
    /// The caller's own trace context, kept only when the call has no span of its own to pass on.
    caller_trace: TraceContext,
}

impl Caller {
    /// The W3C trace context the call passes on. Made when asked: most rpcs pass nothing on, and writing the
    /// `traceparent` cost ~400 instructions a call.
    pub(crate) fn trace(&self) -> TraceContext {
        crate::observe::passed_on_or(|| self.caller_trace.clone())
    }
}

/// A unary rpc: authenticates from the call's metadata, decodes `Req`, runs `handler`, encodes its answer, and
/// records the call.
pub(crate) fn rpc<Req, Resp, H, Fut>(handler: H) -> MethodRouter<Gateway>
where
    Req: prost::Message + RpcSubject + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    H: Fn(Gateway, Caller, Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, DaprError>> + Send + 'static,
{
    post(move |State(gateway): State<Gateway>, request: Request| async move {
        let mut observation = Observation::start(&gateway, &request, true);
        let (tenant, span) = match admit(&gateway, request.headers(), request.uri().path()).await {
            Ok(admitted) => admitted,
            Err((mut refused, tenant)) => {
                if let Some(tenant) = tenant {
                    let code = grpc_status(&refused);
                    let status = (http_status_of_grpc(code), Some(code));
                    observation.finish(&gateway, &tenant, refused.headers_mut(), status, of_rpc(None));
                }
                return refused;
            }
        };
        observation.enter(&gateway, &tenant, request.headers()).await;
        let caller_trace = observation.caller_trace(request.headers());
        let limit = gateway.options().max_body_bytes;
        // What the request names (component, target), kept for the log once the message is decoded. Borrowed by
        // the service, which lives no longer than this call: shared through an `Arc`, it was one more allocation.
        let named = OnceLock::<Named>::new();
        let service = {
            let (tenant, gateway, named) = (tenant.clone(), gateway.clone(), &named);
            tower::service_fn(move |call: tonic::Request<Req>| {
                let (handler, gateway) = (handler.clone(), gateway.clone());
                let caller = Caller { tenant: tenant.clone(), caller_trace: caller_trace.clone() };
                let message = call.into_inner();
                if gateway.options().api_log.enabled() {
                    let _ = named.set(Named {
                        component: message.component().map(str::to_owned),
                        target: message.target().map(str::to_owned),
                    });
                }
                async move {
                    handler(gateway, caller, message).await.map(tonic::Response::new).map_err(|err| err.to_status())
                }
            })
        };
        let mut grpc = tonic::server::Grpc::new(crate::grpc_codec::Codec::<Resp, Req>::default())
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX);
        // Boxed where it is made: the unary call's future holds the handler's inline (a KiB or more), and the
        // trace's scope, the span and this future each moved it whole, one copy per wrapping.
        let unary = Box::pin(grpc.unary(service, request));
        let mut response: Response<tonic::body::Body> = observation.traced(unary).instrument(span).await;
        let code = grpc_status(&response);
        observation.finish(
            &gateway,
            &tenant,
            response.headers_mut(),
            (http_status_of_grpc(code), Some(code)),
            of_rpc(named.into_inner()),
        );
        response.map(axum::body::Body::new)
    })
}

/// The component and target a request named.
struct Named {
    component: Option<String>,
    target: Option<String>,
}

/// The subject of an rpc call: its block from the rpc's path, and what its message named.
fn of_rpc(named: Option<Named>) -> impl FnOnce(&str) -> Subject<'_> {
    move |path| {
        let Named { component, target } = named.unwrap_or(Named { component: None, target: None });
        let component = component.filter(|name| !name.is_empty()).map(Cow::Owned);
        Subject { api: rpc_api(path), component, target: target.map(Cow::Owned) }
    }
}

/// The gRPC status code of an answer: in its headers when the call failed before a message (trailers-only),
/// otherwise OK (an answered unary call's trailers carry OK).
fn grpc_status<B>(response: &Response<B>) -> i32 {
    grpc_code_of(response.headers()).unwrap_or(0)
}

/// A gRPC request's metadata map.
pub(crate) fn metadata(map: HashMap<String, String>) -> Metadata {
    map.into_iter().collect()
}

/// An optional string field: proto3 sends absent as empty.
pub(crate) fn non_empty(value: String) -> Option<String> {
    Some(value).filter(|value| !value.is_empty())
}
