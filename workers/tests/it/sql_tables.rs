//! The SQL stores' tables as a database client sees them: where rows go, and that expired rows are
//! deleted, not only hidden.

use std::time::{Duration, Instant};

use outrigger_workers::state::{self, SetRequest, StateStore};
use sqlx::AnyPool;
use tempfile::TempDir;
use uuid::Uuid;

use crate::backends::{drop_table, finally, fresh_table_name, metadata, postgres_url, put};

async fn raw_pool(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPool::connect(url).await.expect("connect to the test database")
}

async fn rows_with_key(pool: &AnyPool, table: &str, key: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE key = $1"))
        .bind(key)
        .fetch_one(pool)
        .await
        .expect("count rows")
}

/// With `cleanupInterval` short, a row whose TTL ran out is deleted by a later write's sweep.
async fn expired_rows_are_deleted(store: &dyn StateStore, raw: &AnyPool, table: &str) {
    store.set(&SetRequest { ttl_seconds: Some(1), ..put("short", "v") }).await.expect("set");
    store.set(&put("long", "v")).await.expect("set");
    assert_eq!(rows_with_key(raw, table, "short").await, 1);
    // Time is what is tested: wait for the TTL to run out, then for a write's sweep to remove the row.
    let started = Instant::now();
    while store.get("short").await.expect("get").is_some() {
        assert!(started.elapsed() < Duration::from_secs(3), "still readable after its TTL of 1 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let expired = Instant::now();
    loop {
        store.set(&put("trigger", "v")).await.expect("set");
        if rows_with_key(raw, table, "short").await == 0 {
            break;
        }
        assert!(expired.elapsed() < Duration::from_secs(5), "the expired row is still in the table");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(rows_with_key(raw, table, "long").await, 1, "rows without TTL stay");
}

#[tokio::test]
async fn sqlite_expired_rows_are_deleted() {
    let directory = TempDir::new().expect("temporary directory");
    let database = directory.path().join("state.db");
    let database = database.to_str().expect("UTF-8 path");
    let entries = [("connectionString", database), ("cleanupInterval", "100ms")];
    let store = state::open("state.sqlite", &metadata(&entries)).await.expect("open");
    let raw = raw_pool(&format!("sqlite:{database}")).await;
    expired_rows_are_deleted(store.as_ref(), &raw, "state").await;
}

#[tokio::test]
async fn postgres_expired_rows_are_deleted() {
    let url = postgres_url();
    let table = fresh_table_name();
    let entries = [("connectionString", url.as_str()), ("tableName", table.as_str()), ("cleanupInterval", "0.1s")];
    let store = state::open("state.postgresql", &metadata(&entries)).await.expect("open");
    let raw = raw_pool(&url).await;
    let test = {
        let table = table.clone();
        async move { expired_rows_are_deleted(store.as_ref(), &raw, &table).await }
    };
    finally(test, drop_table(&url, &table)).await;
}

#[tokio::test]
async fn postgres_table_may_be_schema_qualified() {
    let url = postgres_url();
    let schema = format!("schema_{}", Uuid::new_v4().simple());
    let table = format!("{schema}.dapr_state");
    let raw = raw_pool(&url).await;
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&raw).await.expect("create schema");
    let entries = [("connectionString", url.as_str()), ("tableName", table.as_str())];
    let store = state::open("state.postgresql", &metadata(&entries)).await.expect("open");
    let test = {
        let raw = raw.clone();
        async move {
            store.set(&put("k", "v")).await.expect("set");
            assert_eq!(store.get("k").await.expect("get").expect("item").value, b"v");
            assert_eq!(rows_with_key(&raw, &table, "k").await, 1);
        }
    };
    let drop_schema = async {
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&raw).await.expect("drop schema");
    };
    finally(test, drop_schema).await;
}
