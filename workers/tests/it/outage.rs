//! Network backends that are down: requests fail promptly with a backend error, and the same store works
//! again once the backend is back, without being reopened.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use outrigger_workers::state::{self, StateError, StateStore, StoredItem};

use crate::backends::{
    delete_redis_keys, drop_table, finally, fresh_table_name, metadata, postgres_url, put, redis_metadata, redis_url,
    unique_prefix,
};
use crate::proxy::TcpProxy;

/// A backend that refuses connections fails a call within the connect timeout (3 s), or the fixed deadline (5 s) of
/// the calls that have one; and some slack. (Item calls have no deadline of their own: their callers bound them.)
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

async fn fails_during_the_outage(store: &dyn StateStore, key: &str) {
    let started = Instant::now();
    let result = store.get(key).await;
    assert!(matches!(result, Err(StateError::Backend(_))), "get during the outage: {result:?}");
    assert!(started.elapsed() < PROMPTLY, "get during the outage took {:?}", started.elapsed());
}

/// Polls until a read of `key` succeeds again.
async fn works_again(store: &dyn StateStore, key: &str) -> Option<StoredItem> {
    let back = Instant::now();
    loop {
        match store.get(key).await {
            Ok(item) => return item,
            Err(err) => assert!(
                back.elapsed() < RECOVERY,
                "still failing {:?} after the backend came back: {err}",
                back.elapsed()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn survives_an_outage(store: &dyn StateStore, proxy: &mut TcpProxy, key: &str) {
    let etag = store.set(&put(key, "before")).await.expect("set while the backend is reachable");
    proxy.cut().await;
    fails_during_the_outage(store, key).await;
    proxy.restore().await;
    assert_eq!(works_again(store, key).await.expect("the item written before").etag, etag);
    store.set(&put(key, "after")).await.expect("set after the outage");
}

async fn starts_working_once_the_backend_is_up(store: &dyn StateStore, proxy: &mut TcpProxy, key: &str) {
    fails_during_the_outage(store, key).await;
    proxy.restore().await;
    assert_eq!(works_again(store, key).await, None);
    store.set(&put(key, "v")).await.expect("set once the backend is up");
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

/// A proxy to the test Redis and `redisHost` metadata pointing at it.
async fn proxied_redis() -> (TcpProxy, BTreeMap<String, String>) {
    let url = redis_url();
    let target = resolve(url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(6379)).await;
    let proxy = TcpProxy::start(target).await;
    let mut entries = redis_metadata();
    entries.insert("redisHost".to_owned(), format!("127.0.0.1:{}", proxy.port()));
    (proxy, entries)
}

/// A proxy to the test PostgreSQL, and metadata pointing a fresh table at it.
async fn proxied_postgres() -> (TcpProxy, BTreeMap<String, String>) {
    let mut url = url::Url::parse(&postgres_url()).expect("TEST_POSTGRES_URL is a URL");
    let target = resolve(url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(5432)).await;
    let proxy = TcpProxy::start(target).await;
    url.set_host(Some("127.0.0.1")).expect("host");
    url.set_port(Some(proxy.port())).expect("port");
    (proxy, metadata(&[("connectionString", url.as_str()), ("tableName", &fresh_table_name())]))
}

#[tokio::test]
async fn redis_store_recovers_after_an_outage() {
    let (mut proxy, entries) = proxied_redis().await;
    let store = state::open("state.redis", &entries).await.expect("open");
    let key = format!("{}k", unique_prefix());
    let url = redis_url();
    let clean_up = delete_redis_keys(url.as_str(), &key);
    let test = {
        let key = key.clone();
        async move { survives_an_outage(store.as_ref(), &mut proxy, &key).await }
    };
    finally(test, clean_up).await;
}

#[tokio::test]
async fn redis_store_opened_while_redis_is_down_works_once_it_is_up() {
    let (mut proxy, entries) = proxied_redis().await;
    proxy.cut().await;
    let store = state::open("state.redis", &entries).await.expect("open while Redis is down");
    let key = format!("{}k", unique_prefix());
    let url = redis_url();
    let clean_up = delete_redis_keys(url.as_str(), &key);
    let test = {
        let key = key.clone();
        async move { starts_working_once_the_backend_is_up(store.as_ref(), &mut proxy, &key).await }
    };
    finally(test, clean_up).await;
}

#[tokio::test]
async fn postgres_store_recovers_after_an_outage() {
    let (mut proxy, entries) = proxied_postgres().await;
    let store = state::open("state.postgresql", &entries).await.expect("open");
    let test = async move { survives_an_outage(store.as_ref(), &mut proxy, "k").await };
    finally(test, drop_table(&postgres_url(), &entries["tableName"])).await;
}

#[tokio::test]
async fn postgres_store_opened_while_postgres_is_down_works_once_it_is_up() {
    let (mut proxy, entries) = proxied_postgres().await;
    proxy.cut().await;
    let store = state::open("state.postgresql", &entries).await.expect("open while PostgreSQL is down");
    let test = async move { starts_working_once_the_backend_is_up(store.as_ref(), &mut proxy, "k").await };
    finally(test, drop_table(&postgres_url(), &entries["tableName"])).await;
}
