//! Network backends that are down: requests fail promptly with a backend error, and the same store works
//! again once the backend is back, without being reopened.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use outrigger_workers::state::{self, StateError, StateStore};

use crate::backends::{
    delete_redis_keys, drop_table, finally, fresh_table_name, metadata, postgres_url, put, redis_metadata, redis_url,
    unique_prefix,
};
use crate::proxy::TcpProxy;

/// The stores' deadline for one call (5 s) and some slack.
const PROMPTLY: Duration = Duration::from_secs(7);

/// How long a store may take to notice that its backend is back.
const RECOVERY: Duration = Duration::from_secs(20);

async fn fails_promptly(store: &dyn StateStore, key: &str) {
    let started = Instant::now();
    let result = store.get(key).await;
    assert!(matches!(result, Err(StateError::Backend(_))), "get: {result:?}");
    let result = store.set(&put(key, "v")).await;
    assert!(matches!(result, Err(StateError::Backend(_))), "set: {result:?}");
    let result = store.ping().await;
    assert!(matches!(result, Err(StateError::Backend(_))), "ping: {result:?}");
    assert!(started.elapsed() < PROMPTLY * 3, "three calls took {:?}", started.elapsed());
}

async fn survives_an_outage(store: &dyn StateStore, proxy: &mut TcpProxy, key: &str) {
    let etag = store.set(&put(key, "before")).await.expect("set while the backend is reachable");
    proxy.cut().await;
    let started = Instant::now();
    let result = store.get(key).await;
    assert!(matches!(result, Err(StateError::Backend(_))), "get during the outage: {result:?}");
    assert!(started.elapsed() < PROMPTLY, "get during the outage took {:?}", started.elapsed());
    proxy.restore().await;
    let back = Instant::now();
    loop {
        match store.get(key).await {
            Ok(Some(item)) => {
                assert_eq!(item.etag, etag);
                break;
            }
            other => assert!(
                back.elapsed() < RECOVERY,
                "still failing {:?} after the backend came back: {other:?}",
                back.elapsed()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    store.set(&put(key, "after")).await.expect("set after the outage");
}

async fn resolve(host: &str, port: u16) -> SocketAddr {
    tokio::net::lookup_host((host, port)).await.expect("resolve").next().expect("an address")
}

#[tokio::test]
async fn redis_that_is_down_fails_promptly() {
    let store = state::open("state.redis", &metadata(&[("redisHost", "127.0.0.1:1")])).await.expect("open");
    fails_promptly(store.as_ref(), "k").await;
}

#[tokio::test]
async fn postgres_that_is_down_fails_promptly() {
    let entries = [("connectionString", "postgres://postgres@127.0.0.1:1/postgres")];
    let store = state::open("state.postgresql", &metadata(&entries)).await.expect("open");
    fails_promptly(store.as_ref(), "k").await;
}

#[tokio::test]
async fn redis_store_recovers_after_an_outage() {
    let url = redis_url();
    let target = resolve(url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(6379)).await;
    let mut proxy = TcpProxy::start(target).await;
    let mut entries = redis_metadata();
    entries.insert("redisHost".to_owned(), format!("127.0.0.1:{}", proxy.port()));
    let store = state::open("state.redis", &entries).await.expect("open");
    let key = format!("{}k", unique_prefix());
    let pattern = key.clone();
    let test = async move { survives_an_outage(store.as_ref(), &mut proxy, &key).await };
    finally(test, delete_redis_keys(url.as_str(), &pattern)).await;
}

#[tokio::test]
async fn postgres_store_recovers_after_an_outage() {
    let mut url = url::Url::parse(&postgres_url()).expect("TEST_POSTGRES_URL is a URL");
    let target = resolve(url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(5432)).await;
    let mut proxy = TcpProxy::start(target).await;
    url.set_host(Some("127.0.0.1")).expect("host");
    url.set_port(Some(proxy.port())).expect("port");
    let table = fresh_table_name();
    let entries = [("connectionString", url.as_str()), ("tableName", table.as_str())];
    let store = state::open("state.postgresql", &metadata(&entries)).await.expect("open");
    let test = async move { survives_an_outage(store.as_ref(), &mut proxy, "k").await };
    finally(test, drop_table(&postgres_url(), &table)).await;
}
