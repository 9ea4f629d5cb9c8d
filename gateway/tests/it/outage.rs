//! A state store whose backend goes away answers a 500-class error naming the store within the store
//! timeout, and works again by itself once the backend is back.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use crate::harness::{TestGateway, STORE_TIMEOUT};

/// A private Redis server on `port`, so stopping it disturbs nothing else.
struct PrivateRedis {
    child: Child,
}

impl PrivateRedis {
    fn start(port: u16) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/services installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis { child }
    }
}

impl Drop for PrivateRedis {
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
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: cache\nspec:\n  type: state.redis\n  version: v1\n  metadata:\n  - name: redisHost\n    value: 127.0.0.1:{port}\n"
    )
}

/// A gateway whose project `demo` has App ID `orders` (its token) and the component `cache` on a private
/// Redis (and its port).
async fn cache_on_private_redis() -> (TestGateway, String, PrivateRedis, u16) {
    let port = free_port();
    let redis = PrivateRedis::start(port);
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

    let _redis = PrivateRedis::start(port);
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
        PrivateRedis::start(port)
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
