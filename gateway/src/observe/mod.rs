//! What the gateway tells about each call it lets in: counted in the process's metrics under daprd's names,
//! and kept in the project's API log (who called which API, on which component or App ID, with what outcome,
//! how fast, from where), and traced: the call's span is the child of the caller's `traceparent` (or starts a
//! trace), every later hop descends from it, the caller gets it back, and it is exported when recorded. An
//! [`Observation`] starts when a request arrives, [enters](Observation::enter) the trace once the caller is
//! let in, and is finished with the call's status once its answer is ready; the log write and the span export
//! happen off the request path.

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::ConnectInfo;
use axum::http::header::{Entry, USER_AGENT};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body::Frame;
use outrigger_bus::{Tenant, TraceContext};
use outrigger_store::{ApiCall, CallDirection, LoggedCall};
use outrigger_telemetry::trace::{self, Hop, KeyValue, SpanIds, SpanKind, TRACEPARENT, TRACESTATE};
use outrigger_telemetry::ApiLog;

use crate::Gateway;

mod subject;

pub(crate) use subject::{rpc_api, rpc_name, RpcSubject, Subject};

/// A call from its arrival until its answer.
pub(crate) struct Observation {
    started: Instant,
    at: i64,
    /// HTTP method as daprd labels it (an unknown one is `OTHER`), or `None` for gRPC.
    http_method: Option<&'static str>,
    /// The request's URI, for its path: a clone shares the request's bytes, where a copy of the path allocated.
    uri: Uri,
    user_agent: Option<HeaderValue>,
    caller_addr: Option<SocketAddr>,
    /// The call's span, once the caller is let in.
    hop: Option<Hop>,
}

/// The trace context a call passes on while it is answered: its own span's.
struct PassedOn {
    ids: SpanIds,
    tracestate: Option<String>,
    recorded: bool,
}

impl PassedOn {
    fn of(hop: &Hop) -> PassedOn {
        PassedOn { ids: *hop.ids(), tracestate: hop.tracestate().map(str::to_owned), recorded: hop.recorded() }
    }

    fn context(&self) -> TraceContext {
        TraceContext { traceparent: Some(self.ids.traceparent()), tracestate: self.tracestate.clone() }
    }
}

tokio::task_local! {
    /// The trace context of the call being answered, kept beside the call rather than written into its
    /// request's headers: inserting them there cost ~300 instructions a call, and most calls pass nothing on.
    static CALL_TRACE: Option<PassedOn>;
}

/// The `traceparent` a bus call carries: the span of the call it serves, when that span is recorded.
pub(crate) fn bus_trace() -> Option<String> {
    CALL_TRACE
        .try_with(|trace| trace.as_ref().filter(|trace| trace.recorded).map(|trace| trace.ids.traceparent()))
        .ok()
        .flatten()
}

/// The W3C trace context a call passes on (to an app, into a CloudEvent, to a workflow): its own span, or,
/// when calls carry no trace context, the caller's headers as they came (HTTP headers or gRPC metadata).
pub(crate) fn trace_context(headers: &HeaderMap) -> TraceContext {
    passed_on_or(|| caller_trace_context(headers))
}

/// The trace context a call passes on: its own span's while it is [traced](Observation::traced), else `caller`'s.
pub(crate) fn passed_on_or(caller: impl FnOnce() -> TraceContext) -> TraceContext {
    match CALL_TRACE.try_with(|trace| trace.as_ref().map(PassedOn::context)) {
        Ok(Some(context)) => context,
        _ => caller(),
    }
}

/// Sets the trace context a call passes on over `headers`, the caller's, which an invocation forwards.
pub(crate) fn pass_on_trace(headers: &mut HeaderMap) {
    let passed_on = CALL_TRACE.try_with(|trace| {
        trace
            .as_ref()
            .map(|trace| (trace.ids.traceparent_header(), trace.tracestate.as_deref().map(HeaderValue::from_str)))
    });
    let Ok(Some((parent, state))) = passed_on else { return };
    headers.insert(TRACEPARENT, parent);
    match state {
        Some(Ok(state)) => drop(headers.insert(TRACESTATE, state)),
        // A caller's `tracestate` too long to pass on is not forwarded.
        _ => drop(headers.remove(TRACESTATE)),
    }
}

fn caller_trace_context(headers: &HeaderMap) -> TraceContext {
    let [traceparent, tracestate] = caller_trace_headers(headers).map(|value| value.map(str::to_owned));
    TraceContext { traceparent, tracestate }
}

/// The caller's `traceparent` and `tracestate` (each name's first value, as a look-up finds).
fn caller_trace_headers(headers: &HeaderMap) -> [Option<&str>; 2] {
    first_values(headers, [&TRACEPARENT, &TRACESTATE]).map(|value| value.and_then(|value| value.to_str().ok()))
}

/// The first value of each of `names` in `headers`, found in one pass over a request's few headers: a look-up
/// hashes the name, ~100 to 150 instructions apiece.
fn first_values<'a, const N: usize>(headers: &'a HeaderMap, names: [&HeaderName; N]) -> [Option<&'a HeaderValue>; N] {
    let mut found = [None; N];
    for (name, value) in headers {
        let Some(slot) = names.iter().position(|wanted| *wanted == name) else { continue };
        found[slot].get_or_insert(value);
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    found
}

fn http_method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN.iter().find(|known| *known == method).map_or("OTHER", Method::as_str)
}

impl Observation {
    /// A request arrived (`grpc`: over the gRPC API).
    pub(crate) fn start<B>(gateway: &Gateway, request: &Request<B>, grpc: bool) -> Observation {
        let logged = gateway.0.options.api_log.enabled();
        Observation {
            started: Instant::now(),
            at: if logged { outrigger_store::now_millis() } else { 0 },
            http_method: (!grpc).then(|| http_method_label(request.method())),
            uri: request.uri().clone(),
            // The header's value shares the request's buffer: kept, not copied.
            user_agent: logged.then(|| first_values(request.headers(), [&USER_AGENT])[0].cloned()).flatten(),
            caller_addr: request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0),
            hop: None,
        }
    }

    /// The caller was let in: the call's span starts, as the child of the caller's `traceparent` (`headers`,
    /// the request's) or as a new trace sampled at the App ID's rate. Whatever the call passes on (to an app,
    /// into a CloudEvent) descends from it: [`trace_context`] reads it while the call is [traced](Self::traced).
    pub(crate) async fn enter(&mut self, gateway: &Gateway, tenant: &Tenant, headers: &HeaderMap) {
        if !trace::context_on() {
            return;
        }
        // Only a process that exports spans needs the App ID's rate.
        let rate = if trace::exporting() { gateway.sampling_rate(tenant).await } else { 0.0 };
        let [traceparent, tracestate] = caller_trace_headers(headers);
        self.hop = Hop::arriving(traceparent, tracestate, rate);
    }

    /// The caller's trace context (`headers`, the request's) when the call has no span to pass on instead
    /// (calls carry no trace context), for [`passed_on_or`]; empty otherwise, so that nothing is copied.
    pub(crate) fn caller_trace(&self, headers: &HeaderMap) -> TraceContext {
        if self.hop.is_some() {
            TraceContext::default()
        } else {
            caller_trace_context(headers)
        }
    }

    /// Runs `answer` (the call's handling) with the call's span as what it passes on, and as the parent of
    /// its bus calls.
    pub(crate) fn traced<F: Future>(&self, answer: F) -> impl Future<Output = F::Output> {
        CALL_TRACE.scope(self.hop.as_ref().map(PassedOn::of), answer)
    }

    /// The call ended with `status` (for gRPC: the HTTP status paired with `grpc_code`) and the answer whose
    /// headers are `answer` (they get the call's trace context unless the answer has one, as daprd's do);
    /// `subject` tells, from the path or rpc, what it was about, and is only asked when the call is logged or
    /// its span recorded.
    pub(crate) fn finish(
        self,
        gateway: &Gateway,
        tenant: &Tenant,
        answer: &mut HeaderMap,
        status: (u16, Option<i32>),
        subject: impl FnOnce(&str) -> Subject<'_>,
    ) {
        self.conclude(gateway, tenant, answer, status, subject, false);
    }

    /// A stream's opening was answered ([`Observation::finish`], with its status): when it opened and the log
    /// is on, what records its end.
    pub(crate) fn finish_opening(
        self,
        gateway: &Gateway,
        tenant: &Tenant,
        answer: &mut HeaderMap,
        status: (u16, Option<i32>),
        subject: impl FnOnce(&str) -> Subject<'_>,
    ) -> Option<StreamEnd> {
        self.conclude(gateway, tenant, answer, status, subject, true)
    }

    /// Counts the call, gives the answer its trace context, exports its span and logs it, if the log is on;
    /// when `opening` a stream that opened, answers what logs its end.
    fn conclude(
        mut self,
        gateway: &Gateway,
        tenant: &Tenant,
        answer: &mut HeaderMap,
        (status, grpc_code): (u16, Option<i32>),
        subject: impl FnOnce(&str) -> Subject<'_>,
        opening: bool,
    ) -> Option<StreamEnd> {
        let elapsed = self.started.elapsed();
        let metrics = outrigger_telemetry::metrics();
        match (self.http_method, grpc_code) {
            (Some(method), _) => metrics.http_call(tenant.metric_labels(), method, status, elapsed),
            (None, code) => metrics.grpc_call(tenant.metric_labels(), self.uri.path(), code.unwrap_or(2), elapsed),
        }
        let hop = self.hop.take();
        if let Some(hop) = &hop {
            // One look-up: the answer keeps a trace context of its own.
            if let Entry::Vacant(slot) = answer.entry(TRACEPARENT) {
                slot.insert(hop.ids().traceparent_header());
                if let Some(state) = hop.tracestate().and_then(|state| HeaderValue::from_str(state).ok()) {
                    answer.insert(TRACESTATE, state);
                }
            }
        }
        let logged = gateway.0.options.api_log.enabled();
        let recorded = hop.as_ref().is_some_and(Hop::recorded);
        if !logged && !recorded {
            return None;
        }
        let subject = subject(self.uri.path());
        let ids = hop.as_ref().map(|hop| *hop.ids());
        if let Some(hop) = hop.filter(Hop::recorded) {
            self.export(hop, tenant, &subject, status, grpc_code);
        }
        if !logged {
            return None;
        }
        let call = LoggedCall {
            project_id: &tenant.project_id,
            at: self.at,
            app_id: &tenant.app_id,
            target: subject.target.as_deref(),
            api: subject.api,
            protocol: if self.http_method.is_some() { "http" } else { "grpc" },
            method: match self.http_method {
                Some(method) => method,
                None => rpc_name(self.uri.path()),
            },
            path: self.uri.path(),
            component: subject.component.as_deref(),
            status,
            grpc_code,
            latency_us: i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX),
            span: ids.map(|ids| ids.call_span()),
            user_agent: self.user_agent.as_ref().and_then(|agent| agent.to_str().ok()),
            caller_addr: self.caller_addr.map(|addr| addr.ip()),
            direction: CallDirection::FromApp,
            stream_ended: false,
        };
        let log = &gateway.0.options.api_log;
        log.record(&call);
        (opening && grpc_code == Some(0)).then(|| StreamEnd {
            log: log.clone(),
            opened: self.started,
            call: call.to_call(),
        })
    }

    /// Exports the call's span under daprd's names: the path (HTTP) or rpc (gRPC), with its attributes.
    fn export(&self, hop: Hop, tenant: &Tenant, subject: &Subject<'_>, status: u16, grpc_code: Option<i32>) {
        let mut attributes = vec![
            KeyValue::new("outrigger.project", tenant.project.to_string()),
            KeyValue::new("outrigger.app_id", tenant.app_id.to_string()),
            KeyValue::new("dapr.status_code", i64::from(grpc_code.unwrap_or(i32::from(status)))),
        ];
        match self.http_method {
            Some(method) => attributes.extend([
                KeyValue::new("dapr.protocol", "http"),
                KeyValue::new("dapr.api", format!("{method} {}", self.uri.path())),
                KeyValue::new("http.request.method", method),
            ]),
            None => attributes.extend([
                KeyValue::new("dapr.protocol", "grpc"),
                KeyValue::new("dapr.api", self.uri.path().to_owned()),
                KeyValue::new("rpc.system", "grpc"),
            ]),
        }
        let owned = |text: &Option<Cow<'_, str>>| text.as_deref().map(str::to_owned);
        match (subject.api, owned(&subject.component), owned(&subject.target)) {
            ("state" | "secrets" | "bindings" | "lock" | "configuration", Some(name), _) => {
                attributes.extend([KeyValue::new("db.system", subject.api), KeyValue::new("db.name", name)])
            }
            ("pubsub", name, topic) => {
                attributes.push(KeyValue::new("messaging.system", "pubsub"));
                attributes.extend(name.map(|name| KeyValue::new("db.name", name)));
                attributes.extend(topic.map(|topic| KeyValue::new("messaging.destination.name", topic)));
            }
            ("invocation", _, Some(target)) => attributes
                .extend([KeyValue::new("rpc.service", "ServiceInvocation"), KeyValue::new("net.peer.name", target)]),
            _ => {}
        }
        let failed = status >= 400;
        let error = failed.then(|| {
            let reason = axum::http::StatusCode::from_u16(status).ok().and_then(|code| code.canonical_reason());
            format!("Code({status}): {}", reason.unwrap_or("Unknown"))
        });
        hop.finish(self.uri.path().to_owned(), SpanKind::Server, attributes, error);
    }
}

/// What logs an open stream's end: the call its opening logged, again, with the status the stream ended with,
/// when it ended, and how long it was open.
pub(crate) struct StreamEnd {
    log: ApiLog,
    opened: Instant,
    call: ApiCall,
}

impl StreamEnd {
    /// The record of the stream's end with gRPC status `code`.
    fn ended(self, code: i32) -> (ApiLog, ApiCall) {
        let StreamEnd { log, opened, call } = self;
        let life = i64::try_from(opened.elapsed().as_micros()).unwrap_or(i64::MAX);
        let status = http_status_of_grpc(code);
        let at = outrigger_store::now_millis();
        (log, ApiCall { at, status, grpc_code: Some(code), latency_us: life, stream_ended: true, ..call })
    }
}

/// The body of a stream's answer, which logs the stream's end when it is dropped: with the status of its
/// trailers, or `CANCELLED` when the app went away before them.
pub(crate) struct EndLogged {
    body: axum::body::Body,
    end: Option<StreamEnd>,
    code: Option<i32>,
}

impl EndLogged {
    pub(crate) fn new(body: axum::body::Body, end: StreamEnd) -> EndLogged {
        EndLogged { body, end: Some(end), code: None }
    }
}

impl http_body::Body for EndLogged {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(context);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    self.code = Some(grpc_code_of(trailers).unwrap_or(0));
                }
            }
            // The stream breaks off: the connection is reset.
            Poll::Ready(Some(Err(_))) => self.code = Some(2),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for EndLogged {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            let (log, call) = end.ended(self.code.unwrap_or(CANCELLED));
            log.record(&call.logged());
        }
    }
}

/// gRPC's code for a call its client gave up.
const CANCELLED: i32 = 1;

/// The gRPC status code in a call's trailers (or trailers-only headers).
pub(crate) fn grpc_code_of(headers: &HeaderMap) -> Option<i32> {
    const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
    headers.get(GRPC_STATUS).and_then(|value| value.to_str().ok()?.parse().ok())
}

/// The HTTP status paired with a gRPC code (as gRPC-gateway and daprd's error pairs do).
pub(crate) fn http_status_of_grpc(code: i32) -> u16 {
    match code {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_paths_name_their_block_and_component() {
        let subject = Subject::of_http_path("/v1.0/state/kvstore/order-1");
        assert_eq!((subject.api, subject.component.as_deref()), ("state", Some("kvstore")));
        let subject = Subject::of_http_path("/v1.0-alpha1/publish/bulk/pubsub/orders");
        assert_eq!((subject.api, subject.component.as_deref()), ("pubsub", Some("pubsub")));
        assert_eq!(subject.target.as_deref(), Some("orders"));
        assert_eq!(Subject::of_http_path("/v1.0/publish/pubsub/orders").target.as_deref(), Some("orders"));
        let subject = Subject::of_http_path("/v1.0/invoke/checkout/method/pay");
        assert_eq!((subject.api, subject.target.as_deref()), ("invocation", Some("checkout")));
        assert_eq!(Subject::of_http_path("/v1.0-alpha1/jobs/nightly").api, "jobs");
        assert_eq!(Subject::of_http_path("/v1.0/metadata").api, "metadata");
        assert_eq!(Subject::of_http_path("/v1.0-beta1/workflows/dapr/wf/start").component.as_deref(), Some("dapr"));
        assert_eq!(Subject::of_http_path("/anything").api, "other");
    }

    fn stream_end() -> StreamEnd {
        let call = ApiCall {
            project_id: outrigger_store::ProjectId::received("p1".to_owned()),
            at: 1,
            app_id: "shipping".to_owned(),
            target: Some("orders".to_owned()),
            api: "pubsub".into(),
            protocol: "grpc".into(),
            method: "SubscribeTopicEventsAlpha1".into(),
            path: "/dapr.proto.runtime.v1.Dapr/SubscribeTopicEventsAlpha1".to_owned(),
            component: Some("pubsub".to_owned()),
            status: 200,
            grpc_code: Some(0),
            latency_us: 900,
            span: None,
            user_agent: None,
            caller_addr: None,
            direction: CallDirection::FromApp,
            stream_ended: false,
        };
        // Opened five seconds ago.
        let opened = Instant::now().checked_sub(std::time::Duration::from_secs(5)).unwrap();
        StreamEnd { log: ApiLog::disabled(), opened, call }
    }

    /// A stream's body: its messages, then its trailers (`grpc-status: code`), if any.
    fn stream_body(code: Option<&str>) -> EndLogged {
        let trailers =
            code.map(|code| HeaderMap::from_iter([(HeaderName::from_static("grpc-status"), code.parse().unwrap())]));
        let frames = [Some(Frame::data(axum::body::Bytes::from_static(b"event"))), trailers.map(Frame::trailers)];
        let frames = frames.into_iter().flatten().map(Ok::<_, std::convert::Infallible>);
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        EndLogged::new(axum::body::Body::new(body), stream_end())
    }

    #[tokio::test]
    async fn a_stream_ends_with_its_trailers_status_or_cancelled_when_the_app_goes_away() {
        use http_body_util::BodyExt;
        let mut revoked = stream_body(Some("16"));
        while revoked.frame().await.is_some() {}
        assert_eq!(revoked.code, Some(16));
        let mut abandoned = stream_body(None);
        abandoned.frame().await.unwrap().unwrap();
        assert_eq!(abandoned.code, None, "no trailers: ended as CANCELLED when dropped");

        let at = outrigger_store::now_millis();
        let (_, ended) = revoked.end.take().unwrap().ended(16);
        assert!(ended.stream_ended && ended.at >= at && ended.latency_us >= 5_000_000, "{ended:?}");
        assert_eq!(
            (ended.status, ended.grpc_code, ended.method.as_ref()),
            (401, Some(16), "SubscribeTopicEventsAlpha1")
        );
        let (_, cancelled) = abandoned.end.take().unwrap().ended(CANCELLED);
        assert_eq!((cancelled.status, cancelled.grpc_code), (499, Some(1)));
    }

    #[test]
    fn the_callers_trace_headers_are_each_names_first_value() {
        let header =
            |name: &str, value: &str| (HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        let mut headers = HeaderMap::from_iter([header("host", "x"), header("tracestate", "a=1")]);
        assert_eq!(caller_trace_headers(&headers), [None, Some("a=1")]);
        headers.append(TRACEPARENT, "first".parse().unwrap());
        headers.append(TRACEPARENT, "second".parse().unwrap());
        headers.append(TRACESTATE, "b=2".parse().unwrap());
        assert_eq!(caller_trace_headers(&headers), [Some("first"), Some("a=1")]);
        assert_eq!(caller_trace_headers(&HeaderMap::new()), [None, None]);
        let context = caller_trace_context(&headers);
        assert_eq!((context.traceparent.as_deref(), context.tracestate.as_deref()), (Some("first"), Some("a=1")));
    }

    #[test]
    fn rpcs_name_their_block() {
        assert_eq!(rpc_api("/dapr.proto.runtime.v1.Dapr/GetBulkState"), "state");
        assert_eq!((rpc_name("/dapr.proto.runtime.v1.Dapr/GetState"), rpc_name("GetState")), ("GetState", "GetState"));
        assert_eq!(rpc_api("/dapr.proto.runtime.v1.Dapr/BulkPublishEventAlpha1"), "pubsub");
        assert_eq!(rpc_api("/dapr.proto.runtime.v1.Dapr/SubscribeTopicEventsAlpha1"), "pubsub");
        assert_eq!(rpc_api("/dapr.proto.runtime.v1.Dapr/ScheduleJobAlpha1"), "jobs");
        assert_eq!(rpc_api("/dapr.proto.runtime.v1.Dapr/SubscribeConfiguration"), "configuration");
        assert_eq!(rpc_api("/TaskHubSidecarService/StartInstance"), "workflows");
        assert_eq!(rpc_api("/dapr.proto.runtime.v1.Dapr/StartWorkflowBeta1"), "workflows");
        assert_eq!(http_status_of_grpc(5), 404);
        assert_eq!(http_status_of_grpc(0), 200);
    }
}
