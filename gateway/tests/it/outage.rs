//! A state store whose backend goes away answers a 500-class error naming the store within the store
//! timeout, and works again by itself once the backend is back; a message a failing dead-letter topic refuses
//! is delivered again, not lost.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Path as UrlPath;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::harness::{serve, TestGateway, STORE_TIMEOUT};
use crate::pubsub::{subscription_on, Arrivals};

/// A backend server of this test's own (Redis, NATS), so stopping it disturbs nothing else.
struct PrivateServer {
    child: Child,
}

impl PrivateServer {
    /// Runs `program` with `args` and waits until it listens on `port`.
    fn start(program: &str, args: &[&str], port: u16) -> PrivateServer {
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("{program} must be installed (scripts/services installs it): {err}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < deadline, "{program} did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateServer { child }
    }

    /// A Redis server on `port` that keeps nothing on disk.
    fn redis(port: u16) -> PrivateServer {
        let port_arg = port.to_string();
        let args = ["--port", &port_arg, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
        PrivateServer::start("redis-server", &args, port)
    }

    /// A NATS server with JetStream on `port`, keeping its streams in `store`.
    fn nats(port: u16, store: &Path) -> PrivateServer {
        let (port_arg, store) = (port.to_string(), store.display().to_string());
        let args = ["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd", &store];
        let program = if Path::new("/usr/sbin/nats-server").exists() { "/usr/sbin/nats-server" } else { "nats-server" };
        PrivateServer::start(program, &args, port)
    }

    /// Stops the server without closing its connections: it holds every request and answers none, like a hung
    /// backend.
    fn hang(&self) {
        let stopped = Command::new("kill").args(["-STOP", &self.child.id().to_string()]).status().expect("run kill");
        assert!(stopped.success(), "kill -STOP {}", self.child.id());
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free local port.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// A `state.redis` component `cache` on the Redis at `port`.
fn cache_component(port: u16) -> String {
    component("cache", "state.redis", "redisHost", &format!("127.0.0.1:{port}"))
}

/// A component `name` of `component_type` with one metadata field.
fn component(name: &str, component_type: &str, field: &str, value: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: {component_type}\n  version: v1\n  metadata:\n  - name: {field}\n    value: {value}\n"
    )
}

/// A gateway whose project `demo` has App ID `orders` (its token) and the component `cache` on a private
/// Redis (and its port).
async fn cache_on_private_redis() -> (TestGateway, String, PrivateServer, u16) {
    let port = free_port();
    let redis = PrivateServer::redis(port);
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    gateway.component("demo", &cache_component(port)).await;
    (gateway, token, redis, port)
}

#[tokio::test]
async fn a_store_that_goes_down_fails_fast_and_recovers_by_itself() {
    let (gateway, token, redis, port) = cache_on_private_redis().await;
    let t = Some(token.as_str());
    let saved = gateway.http("POST", "/v1.0/state/cache", t, Some(r#"[{"key":"k","value":"v"}]"#)).await;
    assert_eq!(saved.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&saved.body));

    drop(redis);
    let started = Instant::now();
    let message = gateway
        .http("GET", "/v1.0/state/cache/k", t, None)
        .await
        .dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_STATE_GET");
    assert!(started.elapsed() < STORE_TIMEOUT + Duration::from_secs(1), "took {:?}", started.elapsed());
    assert!(message.contains("cache"), "the error names the store: {message}");
    gateway
        .http("POST", "/v1.0/state/cache", t, Some(r#"[{"key":"k","value":"w"}]"#))
        .await
        .dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_STATE_SAVE");

    let _redis = PrivateServer::redis(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = gateway.http("POST", "/v1.0/state/cache", t, Some(r#"[{"key":"k","value":"back"}]"#)).await;
        if answer.status == StatusCode::NO_CONTENT {
            break;
        }
        assert!(Instant::now() < deadline, "the store did not come back: {}", String::from_utf8_lossy(&answer.body));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(gateway.http("GET", "/v1.0/state/cache/k", t, None).await.body, br#""back""#);
}

#[tokio::test]
async fn a_components_outbound_resiliency_retries_and_breaks_the_circuit() {
    let (gateway, token, redis, port) = cache_on_private_redis().await;
    gateway
        .component(
            "demo",
            r#"
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: { name: cache-policy }
spec:
  policies:
    timeouts: { quick: 300ms }
    retries:
      patient: { policy: constant, duration: 200ms, maxRetries: 20 }
    circuitBreakers:
      cache-breaker: { trip: "consecutiveFailures >= 3", timeout: 30s }
  targets:
    components:
      cache: { outbound: { timeout: quick, retry: patient } }
"#,
        )
        .await;
    let t = Some(token.as_str());
    let saved = gateway.http("POST", "/v1.0/state/cache", t, Some(r#"[{"key":"k","value":"v"}]"#)).await;
    assert_eq!(saved.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&saved.body));

    // Redis goes away for a moment: the retries carry the read over the gap.
    drop(redis);
    let restart = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        PrivateServer::redis(port)
    });
    let read = gateway.http("GET", "/v1.0/state/cache/k", t, None).await;
    let _redis = restart.await.unwrap();
    assert_eq!(
        read.status,
        StatusCode::NO_CONTENT,
        "the key is gone with the restarted in-memory Redis, but the read succeeded: {}",
        String::from_utf8_lossy(&read.body)
    );

    // With a breaker and no retries, three failures open the circuit and later calls fail at once.
    gateway.component("demo", &cache_component(free_port())).await;
    gateway
        .component(
            "demo",
            r#"
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: { name: cache-policy }
spec:
  policies:
    circuitBreakers:
      cache-breaker: { trip: "consecutiveFailures >= 3", timeout: 30s }
  targets:
    components:
      cache: { outbound: { circuitBreaker: cache-breaker } }
"#,
        )
        .await;
    for _ in 0..3 {
        let message = gateway.http("GET", "/v1.0/state/cache/k", t, None).await;
        let message = message.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_STATE_GET");
        assert!(!message.contains("circuit breaker"), "{message}");
    }
    let started = Instant::now();
    let message = gateway.http("GET", "/v1.0/state/cache/k", t, None).await;
    let message = message.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_STATE_GET");
    assert!(message.contains("circuit breaker is open"), "{message}");
    assert!(started.elapsed() < STORE_TIMEOUT, "an open breaker answers without trying the store");
}

#[tokio::test]
async fn a_resiliency_timeout_longer_than_the_store_timeout_is_the_one_that_holds() {
    // Longer than this gateway's store timeout (2 s) and than the 5 s the backends once also applied themselves.
    const LONG: Duration = Duration::from_secs(6);
    let (gateway, token, redis, redis_port) = cache_on_private_redis().await;
    let (nats_port, nats_store) = (free_port(), tempfile::tempdir().unwrap());
    let nats = PrivateServer::nats(nats_port, nats_store.path());
    let redis_host = format!("127.0.0.1:{redis_port}");
    gateway.component("demo", &component("bus", "pubsub.redis", "redisHost", &redis_host)).await;
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    gateway.component("demo", &component("stream", "pubsub.jetstream", "natsURL", &nats_url)).await;
    gateway
        .component(
            "demo",
            r#"
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: { name: patient }
spec:
  policies:
    timeouts: { long: 6s }
  targets:
    components:
      cache: { outbound: { timeout: long } }
      bus: { outbound: { timeout: long } }
      stream: { outbound: { timeout: long } }
"#,
        )
        .await;
    let t = Some(token.as_str());
    // Every component connects before its server hangs: a connection attempt has a deadline of its own.
    let saved = gateway.http("POST", "/v1.0/state/cache", t, Some(r#"[{"key":"k","value":"v"}]"#)).await;
    assert_eq!(saved.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&saved.body));
    for pubsub in ["bus", "stream"] {
        let published = gateway.http("POST", &format!("/v1.0/publish/{pubsub}/orders"), t, Some(r#"{"n":1}"#)).await;
        assert_eq!(published.status, StatusCode::NO_CONTENT, "{pubsub}: {}", String::from_utf8_lossy(&published.body));
    }

    redis.hang();
    nats.hang();
    let started = Instant::now();
    let (read, on_redis, on_jetstream) = tokio::join!(
        gateway.http("GET", "/v1.0/state/cache/k", t, None),
        gateway.http("POST", "/v1.0/publish/bus/orders", t, Some(r#"{"n":2}"#)),
        gateway.http("POST", "/v1.0/publish/stream/orders", t, Some(r#"{"n":2}"#)),
    );
    let elapsed = started.elapsed();
    let messages = [
        read.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_STATE_GET"),
        on_redis.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_PUBSUB_PUBLISH_MESSAGE"),
        on_jetstream.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_PUBSUB_PUBLISH_MESSAGE"),
    ];
    for message in &messages {
        assert!(message.contains("did not answer within 6s"), "the policy's timeout ended the call: {message}");
    }
    assert!(elapsed >= LONG && elapsed < LONG + Duration::from_secs(2), "the calls ended after {elapsed:?}");
    // Each is counted as its store's timeout, once (nextest runs each test in a process of its own).
    let text = outrigger_telemetry::metrics().render();
    for component_type in ["state.redis", "pubsub.redis", "pubsub.jetstream"] {
        let series = format!("outrigger_store_timeouts_total{{component_type=\"{component_type}\"}} 1");
        assert!(text.contains(&series), "{series} in:\n{text}");
    }
}

/// How many calls of `command` the Redis behind `redis` refused or failed (`INFO commandstats`).
async fn refused_calls(redis: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(redis).await.unwrap();
    let line = info.lines().find(|line| line.starts_with(&format!("cmdstat_{command}:")));
    let field = |name: &str| -> u64 {
        line.and_then(|line| line.split([':', ',']).find_map(|part| part.strip_prefix(name)))
            .map_or(0, |count| count.parse().unwrap())
    };
    field("rejected_calls=") + field("failed_calls=")
}

/// A message the app drops while its dead-letter topic refuses writes is not acknowledged (that would lose it):
/// it is delivered again, and moves to the dead-letter topic once that takes it. Each dead-letter publish runs
/// under the pub/sub component's outbound Resiliency policy, as daprd's does: its retries are the policy's.
#[tokio::test]
async fn a_message_the_dead_letter_topic_refuses_is_delivered_again_not_lost() {
    let port = free_port();
    let _redis = PrivateServer::redis(port);
    let mut admin = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let gateway = TestGateway::start().await;
    let publisher = gateway.app("shop", "checkout").await;

    // The app takes every order but the doomed one, which it drops each time once the test lets it answer.
    let (arrived, arrivals) = (Arc::new(Mutex::new(Vec::<(String, i64)>::new())), Arrivals::new());
    let (doomed, answers) = (Arc::new(Mutex::new(None::<i64>)), Arc::new(Semaphore::new(0)));
    let app = {
        let (arrived, arrivals, doomed, answers) = (arrived.clone(), arrivals.clone(), doomed.clone(), answers.clone());
        Router::new().route(
            "/{*path}",
            post(move |UrlPath(path): UrlPath<String>, Json(event): Json<Value>| {
                let (arrived, arrivals, doomed, answers) =
                    (arrived.clone(), arrivals.clone(), doomed.clone(), answers.clone());
                async move {
                    let seq = event["data"]["seq"].as_i64().unwrap_or(-1);
                    arrived.lock().unwrap().push((path.clone(), seq));
                    arrivals.record();
                    if path == "orders" && Some(seq) == *doomed.lock().unwrap() {
                        answers.acquire().await.unwrap().forget();
                        return Json(json!({ "status": "DROP" }));
                    }
                    Json(json!({ "status": "SUCCESS" }))
                }
            }),
        )
    };
    gateway.app_at("shop", "processor", Some(serve(app).await)).await;
    gateway.component("shop", &component("bus", "pubsub.redis", "redisHost", &format!("127.0.0.1:{port}"))).await;
    for (topic, extra) in [("orders", "  deadLetterTopic: poison\n"), ("poison", "")] {
        let route = format!("    default: /{topic}\n");
        gateway.component("shop", &subscription_on("bus", topic, topic, &route, extra, &["processor"])).await;
    }
    gateway
        .component(
            "shop",
            r#"
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: { name: bus-policy }
spec:
  policies:
    retries:
      twice: { policy: constant, duration: 50ms, maxRetries: 2 }
  targets:
    components:
      bus: { outbound: { retry: twice } }
"#,
        )
        .await;
    let publish = |seq: i64| {
        let (gateway, publisher) = (&gateway, &publisher);
        async move {
            let body = json!({ "seq": seq }).to_string();
            let json = [("content-type", "application/json")];
            let answer =
                gateway.http_with("POST", "/v1.0/publish/bus/orders", Some(publisher), Some(&body), &json).await;
            assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&answer.body));
        }
    };
    let times_arrived =
        |path: &str, seq: i64| arrived.lock().unwrap().iter().filter(|(at, s)| at == path && *s == seq).count();

    // Orders until the subscription delivers.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seq = 0;
    loop {
        publish(seq).await;
        if arrivals.within(Duration::from_millis(400), || times_arrived("orders", seq) > 0).await {
            break;
        }
        assert!(Instant::now() < deadline, "the subscription never started delivering");
        seq += 1;
    }
    let doomed_seq = seq + 1;
    *doomed.lock().unwrap() = Some(doomed_seq);
    publish(doomed_seq).await;
    let within = Duration::from_secs(20);
    assert!(arrivals.within(within, || times_arrived("orders", doomed_seq) == 1).await, "the doomed order arrives");

    // The dead-letter topic's keys become unwritable: Redis refuses the publish there with NOPERM.
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("default")
        .arg("resetkeys")
        .arg("~*orders*")
        .query_async(&mut admin)
        .await
        .unwrap();
    answers.add_permits(1);
    assert!(
        arrivals.within(within, || times_arrived("orders", doomed_seq) == 2).await,
        "a message the dead-letter topic refused is delivered again"
    );
    assert_eq!(refused_calls(&mut admin, "xadd").await, 3, "one dead-letter publish and the policy's two retries");
    assert_eq!(times_arrived("poison", doomed_seq), 0);

    // Writable again: the next drop moves the message to the dead-letter topic, and it is not delivered again.
    let _: () = redis::cmd("ACL").arg("SETUSER").arg("default").arg("allkeys").query_async(&mut admin).await.unwrap();
    answers.add_permits(1);
    assert!(
        arrivals.within(within, || times_arrived("poison", doomed_seq) == 1).await,
        "the message reaches the dead-letter topic once it takes it"
    );
    // The second delivery, held until now, was the one that moved.
    assert_eq!(times_arrived("orders", doomed_seq), 2);
}
