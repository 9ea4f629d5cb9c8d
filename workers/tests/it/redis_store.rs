//! The Redis store's data as daprd's Redis state store keeps it: a hash per key with `data` and `version`.

use std::collections::HashMap;

use outrigger_workers::state::{SetRequest, StateError};
use redis::AsyncCommands;

use crate::backends::{self, put, put_if, redis_connection, run, Harness};

async fn items_are_hashes_with_data_and_version(h: Harness) {
    let key = h.key("k");
    let etag = h.store.set(&put(&key, "hello")).await.expect("set");
    let mut connection = redis_connection().await;
    let fields: HashMap<String, String> = connection.hgetall(&key).await.expect("HGETALL");
    assert_eq!(fields, HashMap::from([("data".to_owned(), "hello".to_owned()), ("version".to_owned(), etag)]));
    let no_expiry: i64 = connection.pttl(&key).await.expect("PTTL");
    assert_eq!(no_expiry, -1);

    h.store.set(&SetRequest { ttl_seconds: Some(60), ..put(&key, "hello") }).await.expect("set with TTL");
    let remaining_ms: i64 = connection.pttl(&key).await.expect("PTTL");
    assert!((55_000..=60_000).contains(&remaining_ms), "{remaining_ms} ms left");

    h.store.set(&put(&key, "hello")).await.expect("set without TTL");
    let no_expiry: i64 = connection.pttl(&key).await.expect("PTTL");
    assert_eq!(no_expiry, -1, "a write without TTL removes the expiry");
}

async fn items_daprd_wrote_are_read_and_guarded(h: Harness) {
    let key = h.key("written-by-daprd");
    let mut connection = redis_connection().await;
    let () = connection.hset_multiple(&key, &[("data", r#"{"a":1}"#), ("version", "7")]).await.expect("HSET");
    let item = h.store.get(&key).await.expect("get").expect("item");
    assert_eq!((item.value.as_slice(), item.etag.as_str()), (br#"{"a":1}"#.as_slice(), "7"));
    assert_eq!(h.store.set(&put_if(&key, "next", "7")).await.expect("set with daprd's version"), "8");
    let result = h.store.set(&put_if(&key, "stale", "7")).await;
    assert!(matches!(result, Err(StateError::EtagMismatch(_))), "{result:?}");
}

async fn a_key_of_another_type_is_a_backend_error(h: Harness) {
    let key = h.key("plain-string");
    let mut connection = redis_connection().await;
    let () = connection.set(&key, "plain").await.expect("SET");
    let result = h.store.get(&key).await;
    assert!(matches!(result, Err(StateError::Backend(_))), "{result:?}");
    let result = h.store.set(&put(&key, "v")).await;
    assert!(matches!(result, Err(StateError::Backend(_))), "{result:?}");
    let untouched: String = connection.get(&key).await.expect("GET");
    assert_eq!(untouched, "plain");
}

#[tokio::test]
async fn redis_items_are_hashes_with_data_and_version() {
    run(backends::redis::open(), items_are_hashes_with_data_and_version).await;
}

#[tokio::test]
async fn redis_items_daprd_wrote_are_read_and_guarded() {
    run(backends::redis::open(), items_daprd_wrote_are_read_and_guarded).await;
}

#[tokio::test]
async fn redis_key_of_another_type_is_a_backend_error() {
    run(backends::redis::open(), a_key_of_another_type_is_a_backend_error).await;
}
