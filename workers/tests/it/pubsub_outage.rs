//! Brokers whose backend is down: calls fail promptly with a backend error, and the same broker works
//! again once the backend is back, without being reopened.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outrigger_workers::pubsub::{self, Broker, BrokerError, SqlBroker, SqlBrokerOptions};

use crate::backends::{delete_redis_keys, finally, metadata, postgres_url, redis_metadata, redis_url};
use crate::proxy::TcpProxy;
use crate::pubsub_backends::{delete_stream, drop_tables, jetstream_metadata, nats_url, unique_id, LONG_HOLD};

/// A backend that refuses connections fails a call within the connect timeout (3 s), or the fixed deadline (5 s) of
/// the calls that have one; and some slack. (A publish has no deadline of its own: its callers bound it.)
const PROMPTLY: Duration = Duration::from_secs(7);

/// How long a broker may take to notice that its backend is back (NATS clients back off up to 4 s).
const RECOVERY: Duration = Duration::from_secs(20);

/// The bound a publish's caller puts on it (the publish API: the component's Resiliency timeout, by default the store
/// timeout): a publish has no deadline of its own, and JetStream's client holds one while it reconnects.
const CALLER_DEADLINE: Duration = Duration::from_secs(5);

/// Publishes as a caller does, within [`CALLER_DEADLINE`].
async fn publish(broker: &dyn Broker, topic: &str, payload: &[u8]) -> Result<(), BrokerError> {
    let cut_short = || Err(BrokerError::Backend(format!("no answer within the caller's {CALLER_DEADLINE:?}")));
    tokio::time::timeout(CALLER_DEADLINE, broker.publish(topic, payload)).await.unwrap_or_else(|_| cut_short())
}

fn assert_backend_error<T: std::fmt::Debug>(call: &str, result: Result<T, BrokerError>, started: Instant) {
    let elapsed = started.elapsed();
    assert!(matches!(result, Err(BrokerError::Backend(_))), "{call}: {result:?}");
    assert!(elapsed < PROMPTLY, "{call} took {elapsed:?} to fail");
}

async fn fails_promptly(broker: &dyn Broker) {
    let started = Instant::now();
    assert_backend_error("publish", publish(broker, "t", b"m").await, started);
    let started = Instant::now();
    assert_backend_error("ensure_group", broker.ensure_group("t", "g").await, started);
    let started = Instant::now();
    assert_backend_error("fetch", broker.fetch("t", "g", 1, Duration::from_secs(1), LONG_HOLD).await, started);
    let started = Instant::now();
    assert_backend_error("delete_group", broker.delete_group("t", "g").await, started);
}

#[tokio::test]
async fn postgres_broker_that_is_down_fails_promptly() {
    let options = SqlBrokerOptions::new("postgres://postgres@127.0.0.1:1/postgres", "down");
    fails_promptly(&SqlBroker::open(options).await.expect("open")).await;
}

#[tokio::test]
async fn redis_broker_that_is_down_fails_promptly() {
    let broker = pubsub::open("pubsub.redis", &metadata(&[("redisHost", "127.0.0.1:1")])).await.expect("open");
    fails_promptly(broker.as_ref()).await;
}

#[tokio::test]
async fn jetstream_broker_that_is_down_fails_promptly() {
    let broker = pubsub::open("pubsub.jetstream", &metadata(&[("natsURL", "nats://127.0.0.1:1")])).await.expect("open");
    fails_promptly(broker.as_ref()).await;
}

/// Polls until `call` succeeds, at most [`RECOVERY`] after the backend came back.
async fn works_again<T, Call>(call: &str, mut attempt: impl FnMut() -> Call) -> T
where
    Call: std::future::Future<Output = Result<T, BrokerError>>,
{
    let back = Instant::now();
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(err) => {
                assert!(back.elapsed() < RECOVERY, "{call} still fails {:?} after the outage: {err}", back.elapsed())
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn survives_an_outage(broker: Arc<dyn Broker>, mut proxy: TcpProxy, topic: String) {
    broker.ensure_group(&topic, "g").await.expect("ensure_group while the backend is up");
    broker.publish(&topic, b"before").await.expect("publish while the backend is up");
    let held = broker.fetch(&topic, "g", 1, Duration::from_secs(5), LONG_HOLD).await.expect("fetch");
    assert_eq!(held.len(), 1, "{held:?}");

    proxy.cut().await;
    let started = Instant::now();
    assert_backend_error("publish during the outage", publish(broker.as_ref(), &topic, b"during").await, started);
    let started = Instant::now();
    assert_backend_error("ack during the outage", broker.ack(&topic, "g", &held[0].id).await, started);
    let started = Instant::now();
    let fetched = broker.fetch(&topic, "g", 1, Duration::from_secs(1), LONG_HOLD).await;
    assert_backend_error("fetch during the outage", fetched, started);

    proxy.restore().await;
    works_again("publish", || publish(broker.as_ref(), &topic, b"after")).await;
    broker.ack(&topic, "g", &held[0].id).await.expect("ack after the outage");
    // A publish that failed may still have landed: at least once, not exactly once.
    let mut received = Vec::new();
    while !received.contains(&b"after".to_vec()) {
        let batch = broker.fetch(&topic, "g", 10, Duration::from_secs(5), LONG_HOLD).await.expect("fetch");
        assert!(!batch.is_empty(), "'after' missing; received {received:?}");
        received.extend(batch.into_iter().map(|delivery| delivery.payload));
    }
    assert!(!received.contains(&b"before".to_vec()), "the message acked after the outage came back");
}

async fn starts_working_once_the_backend_is_up(broker: Arc<dyn Broker>, mut proxy: TcpProxy, topic: String) {
    let started = Instant::now();
    assert_backend_error("ensure_group while the backend is down", broker.ensure_group(&topic, "g").await, started);
    proxy.restore().await;
    works_again("ensure_group", || broker.ensure_group(&topic, "g")).await;
    broker.publish(&topic, b"first").await.expect("publish once the backend is up");
    let fetched = broker.fetch(&topic, "g", 1, Duration::from_secs(5), LONG_HOLD).await.expect("fetch");
    assert_eq!(fetched.len(), 1, "{fetched:?}");
}

/// A proxy to `host:port`.
async fn proxy_to(host: &str, port: u16) -> TcpProxy {
    let target = tokio::net::lookup_host((host, port)).await.expect("resolve").next().expect("an address");
    TcpProxy::start(target).await
}

async fn proxied_redis() -> (TcpProxy, BTreeMap<String, String>) {
    let url = redis_url();
    let proxy = proxy_to(url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(6379)).await;
    let mut entries = redis_metadata();
    entries.insert("redisHost".to_owned(), format!("127.0.0.1:{}", proxy.port()));
    (proxy, entries)
}

async fn proxied_jetstream(id: &str) -> (TcpProxy, BTreeMap<String, String>) {
    let url = url::Url::parse(&nats_url()).expect("TEST_NATS_URL is a URL");
    let proxy = proxy_to(url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(4222)).await;
    let mut entries = jetstream_metadata(id);
    entries.insert("natsURL".to_owned(), format!("nats://127.0.0.1:{}", proxy.port()));
    (proxy, entries)
}

async fn proxied_postgres(prefix: &str) -> (TcpProxy, SqlBrokerOptions) {
    let mut url = url::Url::parse(&postgres_url()).expect("TEST_POSTGRES_URL is a URL");
    let proxy = proxy_to(url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(5432)).await;
    url.set_host(Some("127.0.0.1")).expect("host");
    url.set_port(Some(proxy.port())).expect("port");
    (proxy, SqlBrokerOptions::new(url.as_str(), prefix))
}

#[tokio::test]
async fn redis_broker_recovers_after_an_outage() {
    let id = unique_id();
    let (proxy, entries) = proxied_redis().await;
    let broker = pubsub::open("pubsub.redis", &entries).await.expect("open");
    let (url, pattern) = (redis_url().to_string(), format!("*{id}*"));
    finally(survives_an_outage(broker, proxy, format!("outage {id}")), delete_redis_keys(&url, &pattern)).await;
}

#[tokio::test]
async fn redis_broker_opened_while_redis_is_down_works_once_it_is_up() {
    let id = unique_id();
    let (mut proxy, entries) = proxied_redis().await;
    proxy.cut().await;
    let broker = pubsub::open("pubsub.redis", &entries).await.expect("open while Redis is down");
    let (url, pattern) = (redis_url().to_string(), format!("*{id}*"));
    let test = starts_working_once_the_backend_is_up(broker, proxy, format!("outage {id}"));
    finally(test, delete_redis_keys(&url, &pattern)).await;
}

#[tokio::test]
async fn jetstream_broker_recovers_after_an_outage() {
    let id = unique_id();
    let (proxy, entries) = proxied_jetstream(&id).await;
    let broker = pubsub::open("pubsub.jetstream", &entries).await.expect("open");
    finally(survives_an_outage(broker, proxy, "outage".to_owned()), delete_stream(&entries["streamName"])).await;
}

#[tokio::test]
async fn jetstream_broker_opened_while_nats_is_down_works_once_it_is_up() {
    let id = unique_id();
    let (mut proxy, entries) = proxied_jetstream(&id).await;
    proxy.cut().await;
    let broker = pubsub::open("pubsub.jetstream", &entries).await.expect("open while NATS is down");
    let test = starts_working_once_the_backend_is_up(broker, proxy, "outage".to_owned());
    finally(test, delete_stream(&entries["streamName"])).await;
}

#[tokio::test]
async fn postgres_broker_recovers_after_an_outage() {
    let prefix = format!("ps_{}", unique_id());
    let (proxy, options) = proxied_postgres(&prefix).await;
    let broker = Arc::new(SqlBroker::open(options).await.expect("open"));
    finally(survives_an_outage(broker, proxy, "outage".to_owned()), drop_tables(&prefix)).await;
}

#[tokio::test]
async fn postgres_broker_opened_while_postgres_is_down_works_once_it_is_up() {
    let prefix = format!("ps_{}", unique_id());
    let (mut proxy, options) = proxied_postgres(&prefix).await;
    proxy.cut().await;
    let broker = Arc::new(SqlBroker::open(options).await.expect("open while PostgreSQL is down"));
    let test = starts_working_once_the_backend_is_up(broker, proxy, "outage".to_owned());
    finally(test, drop_tables(&prefix)).await;
}
