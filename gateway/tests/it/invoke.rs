//! Service invocation end to end: a real callee app on a local port, the gateway's HTTP router and gRPC
//! listener in front of it.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use base64::Engine;
use dapr::dapr::proto::common::v1::{http_extension::Verb, HttpExtension, InvokeRequest};
use dapr::dapr::proto::runtime::v1::{self as pb, InvokeServiceRequest};
use outrigger_gateway::Options;
use outrigger_outbound::{Egress, PrivateAddresses};

use crate::harness::{identity, serve, with_token, TestGateway};

/// What the callee saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A callee app: records every request; `/status/<code>` answers that code, `/flaky` fails while
/// `failures_left` lasts, `/redirect` redirects to `/followed`, `/slow` takes 2 s, `/healthz` follows `healthy`,
/// anything else echoes.
#[derive(Default)]
struct Callee {
    seen: Mutex<Vec<Seen>>,
    failures_left: AtomicU32,
    healthy: AtomicBool,
}

impl Callee {
    async fn start() -> (Arc<Callee>, String) {
        let callee = Arc::new(Callee { healthy: AtomicBool::new(true), ..Callee::default() });
        let app = Router::new().fallback(answer).with_state(Arc::clone(&callee));
        (callee, serve(app).await)
    }

    /// The invocations it saw: not the platform's own calls (health probes, `/dapr/subscribe`).
    fn seen(&self) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap();
        let invocation = |seen: &&Seen| !["/healthz", "/dapr/subscribe"].contains(&seen.path_and_query.as_str());
        seen.iter().filter(invocation).cloned().collect()
    }

    fn calls(&self) -> usize {
        self.seen().len()
    }
}

async fn answer(State(callee): State<Arc<Callee>>, request: Request) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path_and_query = parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
    callee.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path_and_query: path_and_query.clone(),
        headers: parts.headers,
        body: body.clone(),
    });
    let path = parts.uri.path();
    if let Some(code) = path.strip_prefix("/status/") {
        return (StatusCode::from_u16(code.parse().unwrap()).unwrap(), format!("answered {code}")).into_response();
    }
    match path {
        "/healthz" if callee.healthy.load(Ordering::SeqCst) => StatusCode::OK.into_response(),
        "/healthz" => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        "/flaky" => {
            let left = callee.failures_left.load(Ordering::SeqCst);
            if left > 0 {
                callee.failures_left.store(left - 1, Ordering::SeqCst);
                return (StatusCode::INTERNAL_SERVER_ERROR, "not yet").into_response();
            }
            (StatusCode::OK, "finally").into_response()
        }
        "/redirect" => (StatusCode::TEMPORARY_REDIRECT, [("location", "/followed")], "moved").into_response(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            (StatusCode::OK, "late").into_response()
        }
        _ => ([("x-echo", "yes"), ("content-type", "text/plain")], body).into_response(),
    }
}

/// A project `shop` with a caller App ID and a callee App ID at `endpoint` (app token `callee-secret`, and
/// the Configuration `callee-config` when given). Answers the caller's token.
async fn shop(gateway: &TestGateway, endpoint: &str, config: Option<&str>) -> String {
    let caller = gateway.app("shop", "caller").await;
    let mut callee = identity("callee", Some(endpoint.to_owned()));
    callee.app_token = Some("callee-secret".into());
    callee.config = config.map(str::to_owned);
    gateway.register("shop", &callee).await;
    caller
}

#[tokio::test]
async fn invoke_carries_verb_path_query_headers_and_body_both_ways() {
    let gateway = TestGateway::start().await;
    let (callee, url) = Callee::start().await;
    let token = shop(&gateway, &url, None).await;
    let answer = gateway
        .http_with(
            "PUT",
            "/v1.0/invoke/callee/method/orders/42?expand=items&x=%2F",
            Some(&token),
            Some("the body"),
            &[("x-custom", "kept"), ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.body, b"the body");
    assert_eq!(answer.headers["x-echo"], "yes");
    let seen = &callee.seen()[0];
    assert_eq!((seen.method.as_str(), seen.path_and_query.as_str()), ("PUT", "/orders/42?expand=items&x=%2F"));
    assert_eq!(seen.body, "the body");
    assert_eq!(seen.headers["x-custom"], "kept");
    assert_eq!(seen.headers["dapr-caller-app-id"], "caller");
    assert_eq!(seen.headers["dapr-callee-app-id"], "callee");
    assert_eq!(seen.headers["dapr-api-token"], "callee-secret", "the callee gets its own app token");
    assert_eq!(seen.headers["host"], url.trim_start_matches("http://"), "the callee's own host, not the gateway's");
    // The callee is called within the gateway's span of the call: the caller's trace, a span of its own, which
    // the caller is given back.
    let forwarded = seen.headers["traceparent"].to_str().unwrap();
    assert!(forwarded.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && forwarded.ends_with("-01"), "{forwarded}");
    assert_ne!(forwarded, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    assert_eq!(answer.headers["traceparent"], forwarded);
    assert!(seen.headers.values().all(|value| value != token.as_str()), "the caller's token never reaches the callee");

    for verb in ["GET", "POST", "DELETE", "PATCH"] {
        let answer = gateway.http(verb, "/v1.0/invoke/callee/method/anything", Some(&token), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{verb}");
        assert_eq!(callee.seen().last().unwrap().method, verb);
    }
    let traceparent = callee.seen().last().unwrap().headers["traceparent"].clone();
    assert_eq!(traceparent.len(), 55, "a call without trace context gets one: {traceparent:?}");

    // The caller's `tracestate` goes on with the trace; one longer than daprd passes on is dropped, not forwarded.
    let parent = ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    let long_state = format!("vendor={}", "x".repeat(600));
    for (state, forwarded) in [("vendor=opaque", Some("vendor=opaque")), (long_state.as_str(), None)] {
        let path = "/v1.0/invoke/callee/method/traced";
        let answer = gateway.http_with("GET", path, Some(&token), None, &[parent, ("tracestate", state)]).await;
        assert_eq!(answer.status, StatusCode::OK);
        let seen = callee.seen().last().unwrap().headers.clone();
        assert_eq!(seen.get("tracestate").map(|value| value.to_str().unwrap()), forwarded);
        assert_ne!(seen["traceparent"], parent.1, "the callee's parent is the gateway's span");
    }

    let answer = gateway.http("GET", "/v1.0/invoke/callee/method/status/418", Some(&token), None).await;
    assert_eq!((answer.status, answer.body.as_slice()), (StatusCode::IM_A_TEAPOT, b"answered 418".as_slice()));
    let answer = gateway.http("GET", "/v1.0/invoke/callee/method/orders", None, None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "invocation needs a token like every call");
}

#[tokio::test]
async fn the_header_forms_invoke_any_other_path() {
    let gateway = TestGateway::start().await;
    let (callee, url) = Callee::start().await;
    let token = shop(&gateway, &url, None).await;
    let answer = gateway
        .http_with("POST", "/neworder?id=7", Some(&token), Some(r#"{"orderId":7}"#), &[("dapr-app-id", "callee")])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer.body));
    let seen = callee.seen().pop().unwrap();
    assert_eq!((seen.method.as_str(), seen.path_and_query.as_str()), ("POST", "/neworder?id=7"));
    assert!(!seen.headers.contains_key("dapr-app-id"));

    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("dapr-app-id:callee"));
    let answer = gateway.http_with("GET", "/api/v2/items", Some(&token), None, &[("authorization", &basic)]).await;
    assert_eq!(answer.status, StatusCode::OK);
    let seen = callee.seen().pop().unwrap();
    assert_eq!(seen.path_and_query, "/api/v2/items");
    assert!(!seen.headers.contains_key("authorization"), "the selector is not the callee's business");

    let answer = gateway.http_with("GET", "/neworder", None, None, &[("dapr-app-id", "callee")]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = gateway.http("GET", "/neworder", Some(&token), None).await;
    answer.dapr_error(StatusCode::NOT_IMPLEMENTED, "ERR_API_UNIMPLEMENTED");
}

#[tokio::test]
async fn unknown_unregistered_and_unreachable_callees_fail_fast_with_daprds_error() {
    let gateway = TestGateway::start().await;
    let (callee, url) = Callee::start().await;
    let token = shop(&gateway, &url, None).await;
    // Another project's App ID answers exactly like one that does not exist.
    let (other_callee, other_url) = Callee::start().await;
    gateway.app_at("elsewhere", "secret-app", Some(other_url)).await;
    let unknown = gateway.http("POST", "/v1.0/invoke/nobody/method/x", Some(&token), None).await;
    let unknown = unknown.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE");
    let foreign = gateway.http("POST", "/v1.0/invoke/secret-app/method/x", Some(&token), None).await;
    let foreign = foreign.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE");
    assert_eq!(foreign, unknown.replace("nobody", "secret-app"));
    let foreign = gateway.http_with("POST", "/x", Some(&token), None, &[("dapr-app-id", "secret-app")]).await;
    foreign.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE");
    assert_eq!(other_callee.calls(), 0);

    gateway.app_at("shop", "no-endpoint", None).await;
    let answer = gateway.http("GET", "/v1.0/invoke/no-endpoint/method/x", Some(&token), None).await;
    assert!(answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE").contains("appEndpoint"));

    // A token stored before the control API refused what a header cannot carry is refused, not sent mangled.
    let mut unsendable = identity("unsendable", Some(url.clone()));
    unsendable.app_token = Some("line\nbreak".into());
    gateway.register("shop", &unsendable).await;
    let answer = gateway.http("POST", "/v1.0/invoke/unsendable/method/x", Some(&token), None).await;
    let message = answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE");
    assert!(message.contains("app token cannot be sent") && message.contains("outrigger appid update"), "{message}");
    assert_eq!(callee.calls(), 0, "nothing reached the app");

    // An app registered as speaking gRPC is not sent HTTP it cannot read; the error says what to change.
    let (grpc_callee, grpc_url) = Callee::start().await;
    let mut grpc_app = identity("grpc-app", Some(grpc_url));
    grpc_app.app_protocol = "grpc".into();
    gateway.register("shop", &grpc_app).await;
    let answer = gateway.http("POST", "/v1.0/invoke/grpc-app/method/x", Some(&token), None).await;
    let message = answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE");
    assert!(message.contains("appProtocol http"), "{message}");
    assert_eq!(grpc_callee.calls(), 0);

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    gateway.app_at("shop", "gone", Some(closed_url)).await;
    let started = Instant::now();
    let answer = gateway.http("GET", "/v1.0/invoke/gone/method/x", Some(&token), None).await;
    answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE");
    assert!(started.elapsed() < Duration::from_secs(5), "a refused connection is not waited on");
    assert_eq!(callee.calls(), 0);
}

#[tokio::test]
async fn access_control_of_the_callee_is_enforced_before_the_call() {
    let gateway = TestGateway::start().await;
    let (callee, url) = Callee::start().await;
    let token = shop(&gateway, &url, Some("callee-config")).await;
    let auditor = gateway.app("shop", "auditor").await;
    let stranger = gateway.app("shop", "stranger").await;
    gateway
        .component(
            "shop",
            r#"
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: { name: callee-config }
spec:
  accessControl:
    defaultAction: deny
    policies:
      - appId: caller
        defaultAction: deny
        operations:
          - { name: /orders, httpVerb: [GET, POST], action: allow }
          - { name: /orders/*, httpVerb: ["*"], action: allow }
          - { name: /reports/**, httpVerb: [GET], action: allow }
      - appId: auditor
        defaultAction: allow
        operations:
          - { name: /orders, httpVerb: [DELETE], action: deny }
"#,
        )
        .await;
    let cases = [
        (&token, "GET", "/orders", true),
        (&token, "DELETE", "/orders", false),
        (&token, "PUT", "/orders/1", true),
        (&token, "GET", "/orders/1/lines", false),
        (&token, "GET", "/reports/2026/11", true),
        (&token, "POST", "/reports/2026", false),
        (&token, "GET", "/admin", false),
        (&auditor, "GET", "/admin", true),
        (&auditor, "DELETE", "/orders", false),
        (&stranger, "GET", "/orders", false),
    ];
    for (caller, verb, method, allowed) in cases {
        let before = callee.calls();
        let answer = gateway.http(verb, &format!("/v1.0/invoke/callee/method{method}"), Some(caller), None).await;
        if allowed {
            assert_eq!(answer.status, StatusCode::OK, "{verb} {method}");
            assert_eq!(callee.calls(), before + 1);
        } else {
            let message = answer.dapr_error(StatusCode::FORBIDDEN, "ERR_PERMISSION_DENIED");
            assert!(message.contains(method) && message.contains(verb), "{message}");
            assert_eq!(callee.calls(), before, "{verb} {method}: nothing reaches the callee");
        }
    }
    // The header form is held to the same policy.
    let answer = gateway.http_with("DELETE", "/orders", Some(&token), None, &[("dapr-app-id", "callee")]).await;
    answer.dapr_error(StatusCode::FORBIDDEN, "ERR_PERMISSION_DENIED");
}

const RESILIENCY: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: { name: callee-policies }
spec:
  policies:
    timeouts:
      short: 300ms
    retries:
      three: { policy: constant, duration: 10ms, maxRetries: 3 }
    circuitBreakers:
      trip-at-3: { trip: "consecutiveFailures >= 3", timeout: 1s, maxRequests: 1 }
  targets:
    apps:
      callee: { timeout: short, retry: three }
      fragile: { circuitBreaker: trip-at-3 }
"#;

#[tokio::test]
async fn resiliency_retries_time_out_and_break_the_circuit() {
    let gateway = TestGateway::start().await;
    let (callee, url) = Callee::start().await;
    let token = shop(&gateway, &url, None).await;
    gateway.app_at("shop", "fragile", Some(url.clone())).await;
    gateway.component("shop", RESILIENCY).await;

    callee.failures_left.store(2, Ordering::SeqCst);
    let answer = gateway.http("POST", "/v1.0/invoke/callee/method/flaky", Some(&token), Some("again")).await;
    assert_eq!((answer.status, answer.body.as_slice()), (StatusCode::OK, b"finally".as_slice()));
    let attempts: Vec<_> = callee.seen().into_iter().filter(|seen| seen.path_and_query == "/flaky").collect();
    assert_eq!(attempts.len(), 3, "two failures retried");
    assert!(attempts.iter().all(|seen| seen.body == "again"), "every retry sends the body again");

    let answer = gateway.http("GET", "/v1.0/invoke/callee/method/status/503", Some(&token), None).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "exhausted retries answer the callee's last answer");
    assert_eq!(callee.seen().iter().filter(|seen| seen.path_and_query == "/status/503").count(), 4);

    let started = Instant::now();
    let answer = gateway.http("GET", "/v1.0/invoke/callee/method/slow", Some(&token), None).await;
    assert!(answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE").contains("timed out"));
    assert!(started.elapsed() < Duration::from_secs(2), "the timeout cuts each attempt short");

    // fragile: no retries; the breaker opens after 3 failures in a row.
    for _ in 0..3 {
        let answer = gateway.http("GET", "/v1.0/invoke/fragile/method/status/500", Some(&token), None).await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let before = callee.calls();
    let answer = gateway.http("GET", "/v1.0/invoke/fragile/method/ok", Some(&token), None).await;
    assert!(answer
        .dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE")
        .contains("circuit breaker is open"));
    assert_eq!(callee.calls(), before, "an open breaker short-circuits");
    // After its timeout it half-opens: one probe goes through and closes it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = gateway.http("GET", "/v1.0/invoke/fragile/method/ok", Some(&token), None).await;
        if answer.status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "the breaker never half-opened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = gateway.http("GET", "/v1.0/invoke/fragile/method/ok", Some(&token), None).await;
    assert_eq!(answer.status, StatusCode::OK, "closed again");
}

#[tokio::test]
async fn retried_and_timed_out_calls_move_daprds_resiliency_series() {
    let gateway = TestGateway::start().await;
    let (callee, url) = Callee::start().await;
    let token = gateway.app("resilient-shop", "caller").await;
    gateway.register("resilient-shop", &identity("callee", Some(url))).await;
    gateway.component("resilient-shop", RESILIENCY).await;

    callee.failures_left.store(2, Ordering::SeqCst);
    let answer = gateway.http("POST", "/v1.0/invoke/callee/method/flaky", Some(&token), Some("again")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = gateway.http("GET", "/v1.0/invoke/callee/method/slow", Some(&token), None).await;
    assert!(answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE").contains("timed out"));
    assert_eq!(callee.calls(), 3 + 4, "two retries, then three");

    // Both calls applied both policies; five retries were made, and the timeout cut one call short.
    let project_id = gateway.project_id("resilient-shop").await;
    let text = outrigger_telemetry::metrics().render();
    let series = |name: &str, policy: &str, count: u32| {
        format!(
            "{name}{{app_id=\"caller\",flow_direction=\"outbound\",name=\"callee-policies\",policy=\"{policy}\",\
             project=\"resilient-shop\",project_id=\"{project_id}\",status=\"\",target=\"app_callee\"}} {count}"
        )
    };
    for expected in [
        series("dapr_resiliency_count", "retry", 2),
        series("dapr_resiliency_count", "timeout", 2),
        series("dapr_resiliency_activations_total", "retry", 5),
        series("dapr_resiliency_activations_total", "timeout", 1),
    ] {
        assert!(text.contains(&expected), "{expected} missing from:\n{text}");
    }

    // A worker reading the project's documents (for a state call) loads the Resiliency for each App ID.
    let loaded = format!(
        r#"dapr_resiliency_loaded{{app_id="caller",name="callee-policies",project="resilient-shop",project_id="{project_id}"}}"#
    );
    assert!(!text.contains(&loaded), "nothing loaded the project's documents yet:\n{text}");
    let answer = gateway.http("GET", "/v1.0/state/kvstore/k", Some(&token), None).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let text = outrigger_telemetry::metrics().render();
    assert!(text.contains(&format!("{loaded} 1")), "{loaded} missing from:\n{text}");
}

#[tokio::test]
async fn an_unhealthy_app_is_short_circuited_until_it_recovers() {
    let gateway = TestGateway::start().await;
    let (callee, url) = Callee::start().await;
    let token = gateway.app("shop", "caller").await;
    gateway.app_with_health("shop", "callee", Some(url), Some("/healthz")).await;
    let answer = gateway.http("GET", "/v1.0/invoke/callee/method/ok", Some(&token), None).await;
    assert_eq!(answer.status, StatusCode::OK);

    callee.healthy.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = gateway.http("GET", "/v1.0/invoke/callee/method/ok", Some(&token), None).await;
        if answer.status == StatusCode::INTERNAL_SERVER_ERROR {
            assert!(answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE").contains("not healthy"));
            break;
        }
        assert!(Instant::now() < deadline, "the app never counted as unhealthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = callee.calls();
    gateway.http("GET", "/v1.0/invoke/callee/method/ok", Some(&token), None).await;
    assert_eq!(callee.calls(), before, "nothing is forwarded to an unhealthy app");

    callee.healthy.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while gateway.http("GET", "/v1.0/invoke/callee/method/ok", Some(&token), None).await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "the app never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn http_endpoints_are_invoked_by_name_with_their_headers() {
    let gateway = TestGateway::start().await;
    let (service, url) = Callee::start().await;
    let token = gateway.app("shop", "caller").await;
    let yaml = format!(
        r#"
apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata: {{ name: weather }}
spec:
  baseUrl: {url}/api
  headers:
    - {{ name: x-api-key, value: k-123 }}
"#
    );
    gateway.component("shop", &yaml).await;
    let answer = gateway.http("GET", "/v1.0/invoke/weather/method/today?city=Oslo", Some(&token), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer.body));
    let seen = service.seen().pop().unwrap();
    assert_eq!(seen.path_and_query, "/api/today?city=Oslo");
    assert_eq!(seen.headers["x-api-key"], "k-123");
    assert!(!seen.headers.contains_key("dapr-api-token"));
    let answer = gateway.http_with("GET", "/tomorrow", Some(&token), None, &[("dapr-app-id", "weather")]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(service.seen().pop().unwrap().path_and_query, "/api/tomorrow");
}

#[tokio::test]
async fn http_endpoints_scoped_to_other_app_ids_do_not_exist_for_the_caller() {
    let gateway = TestGateway::start().await;
    let (service, url) = Callee::start().await;
    let allowed = gateway.app("shop", "allowed").await;
    let outsider = gateway.app("shop", "outsider").await;
    for (name, scopes) in [("weather", "[allowed]"), ("news", "[]")] {
        let yaml = format!(
            "apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {{ name: {name} }}\n\
             spec: {{ baseUrl: '{url}' }}\nscopes: {scopes}\n"
        );
        gateway.component("shop", &yaml).await;
    }
    let listed = |token: &str| {
        let token = token.to_owned();
        let gateway = &gateway;
        async move {
            let metadata = gateway.http("GET", "/v1.0/metadata", Some(&token), None).await.json();
            metadata["httpEndpoints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(&allowed).await, ["news", "weather"]);
    assert_eq!(listed(&outsider).await, ["news"]);
    let mut grpc = gateway.grpc_client().await;
    let over_grpc = grpc.get_metadata(with_token(pb::GetMetadataRequest {}, &outsider)).await.unwrap().into_inner();
    assert_eq!(over_grpc.http_endpoints.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["news"]);

    let answer = gateway.http("GET", "/v1.0/invoke/weather/method/today", Some(&allowed), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer.body));
    let seen_before = service.seen().len();
    let refused = gateway.http("GET", "/v1.0/invoke/weather/method/today", Some(&outsider), None).await;
    let message = refused.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE");
    assert!(message.contains("weather"), "{message}");
    assert_eq!(service.seen().len(), seen_before, "the out-of-scope call reached the endpoint");
    let unscoped = gateway.http("GET", "/v1.0/invoke/news/method/today", Some(&outsider), None).await;
    assert_eq!(unscoped.status, StatusCode::OK);
}

#[tokio::test]
async fn http_endpoint_headers_take_secret_values_from_the_named_store() {
    let gateway = TestGateway::start().await;
    let (service, url) = Callee::start().await;
    let token = gateway.app("shop", "caller").await;
    let secrets = crate::secrets::SecretsFile::new(
        &gateway,
        "shop",
        r#"{"weather": {"apiKey": "k-from-store", "region": "eu"}}"#,
    )
    .await;
    gateway.component("shop", &secrets.component("vault", true)).await;
    let endpoint = |reference: &str| {
        format!(
            r#"
apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata: {{ name: weather }}
spec:
  baseUrl: {url}/api
  headers:
    - {{ name: x-api-key, secretKeyRef: {reference} }}
    - {{ name: x-plain, value: plain }}
auth: {{ secretStore: vault }}
"#
        )
    };
    gateway.component("shop", &endpoint("{ name: weather, key: apiKey }")).await;
    let answer = gateway.http("GET", "/v1.0/invoke/weather/method/today", Some(&token), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer.body));
    let seen = service.seen().pop().unwrap();
    assert_eq!(
        (&seen.headers["x-api-key"], &seen.headers["x-plain"]),
        (&"k-from-store".parse().unwrap(), &"plain".parse().unwrap())
    );

    gateway.component("shop", &endpoint("{ name: weather, key: missing }")).await;
    let before = service.calls();
    let answer = gateway.http("GET", "/v1.0/invoke/weather/method/today", Some(&token), None).await;
    let message = answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE");
    assert!(
        message.contains("header 'x-api-key' of HTTPEndpoint weather") && message.contains("no key missing"),
        "{message}"
    );
    assert_eq!(service.calls(), before, "a header that cannot be read stops the call");
}

#[tokio::test]
async fn health_probes_of_a_deleted_app_id_stop() {
    let gateway = TestGateway::start().await;
    let (callee, url) = Callee::start().await;
    let token = gateway.app("shop", "caller").await;
    gateway.app_with_health("shop", "callee", Some(url), Some("/healthz")).await;
    let answer = gateway.http("GET", "/v1.0/invoke/callee/method/ok", Some(&token), None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let probes = || callee.seen.lock().unwrap().iter().filter(|seen| seen.path_and_query == "/healthz").count();

    let mut tx = gateway.store.begin().await.unwrap();
    let project = tx.project(&outrigger_store::OrgId::default_org(), "shop").await.unwrap();
    tx.delete_app_id(&project.id, "callee").await.unwrap();
    tx.commit().await.unwrap();
    gateway.changed("shop").await;
    // Probes run every 100 ms: once a whole second passes without one, none is running any more.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = (probes(), Instant::now());
    while last.1.elapsed() < Duration::from_secs(1) {
        assert!(Instant::now() < deadline, "the deleted App ID is still probed");
        tokio::time::sleep(Duration::from_millis(100)).await;
        if probes() != last.0 {
            last = (probes(), Instant::now());
        }
    }
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let gateway =
        TestGateway::with_options(Options { egress: Egress::private(PrivateAddresses::Refused), ..Options::default() })
            .await;
    let (callee, url) = Callee::start().await;
    let token = shop(&gateway, &url, None).await;
    let answer = gateway.http("GET", "/v1.0/invoke/callee/method/x", Some(&token), None).await;
    let message = answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE");
    assert!(message.contains("127.0.0.1") && message.contains("OUTRIGGER_ALLOW_PRIVATE_ENDPOINTS"), "{message}");
    let port = url.rsplit(':').next().unwrap();
    gateway.app_at("shop", "by-name", Some(format!("http://localhost:{port}"))).await;
    let answer = gateway.http("GET", "/v1.0/invoke/by-name/method/x", Some(&token), None).await;
    let message = answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE");
    assert!(message.contains("localhost (resolves to"), "names are checked after resolution: {message}");
    assert_eq!(callee.calls(), 0);
}

/// An app's redirect is the caller's answer, as daprd hands it back: the gateway follows none.
#[tokio::test]
async fn redirects_are_handed_back_not_followed() {
    let gateway = TestGateway::start().await;
    let (callee, url) = Callee::start().await;
    let token = shop(&gateway, &url, None).await;
    let answer = gateway.http("POST", "/v1.0/invoke/callee/method/redirect", Some(&token), Some("body")).await;
    assert_eq!(answer.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!((answer.headers["location"].to_str().unwrap(), answer.body.as_slice()), ("/followed", &b"moved"[..]));
    let paths: Vec<String> = callee.seen().into_iter().map(|seen| seen.path_and_query).collect();
    assert_eq!(paths, ["/redirect"]);
}

#[tokio::test]
async fn grpc_invoke_service_calls_the_app_over_http() {
    let gateway = TestGateway::start().await;
    let (callee, url) = Callee::start().await;
    let token = shop(&gateway, &url, None).await;
    let mut client = gateway.grpc_client().await;
    let request = |method: &str, verb: Verb| InvokeServiceRequest {
        id: "callee".into(),
        message: Some(InvokeRequest {
            method: method.into(),
            data: Some(prost_types::Any { type_url: String::new(), value: b"payload".to_vec() }),
            content_type: "text/plain".into(),
            http_extension: Some(HttpExtension { verb: verb as i32, querystring: "a=1".into() }),
        }),
    };
    let answer = client.invoke_service(with_token(request("echo", Verb::Put), &token)).await.unwrap().into_inner();
    assert_eq!(answer.data.unwrap().value, b"payload");
    assert_eq!(answer.content_type, "text/plain");
    let seen = callee.seen().pop().unwrap();
    assert_eq!((seen.method.as_str(), seen.path_and_query.as_str()), ("PUT", "/echo?a=1"));
    assert_eq!(seen.headers["content-type"], "text/plain");
    assert_eq!(seen.headers["dapr-caller-app-id"], "caller");

    let failed = client.invoke_service(with_token(request("status/404", Verb::Get), &token)).await.unwrap_err();
    assert!(failed.message().contains("HTTP 404"), "{failed:?}");
    let failed = client.invoke_service(with_token(request("x", Verb::None), "wrong")).await.unwrap_err();
    assert_eq!(failed.code(), tonic::Code::Unauthenticated);
    let mut unknown = request("x", Verb::None);
    unknown.id = "nobody".into();
    let failed = client.invoke_service(with_token(unknown, &token)).await.unwrap_err();
    assert_eq!(failed.code(), tonic::Code::Internal);
}
