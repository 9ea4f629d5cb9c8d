//! The four backends as test subjects: each opens a fresh store through `state::open` (so the metadata
//! mapping is exercised by every case) with keys under a prefix of its own, and removes what it left.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use outrigger_workers::state::{self, Concurrency, DeleteRequest, Features, SetRequest, StateStore};
use tempfile::TempDir;
use uuid::Uuid;

/// A store under test.
#[derive(Clone)]
pub struct Harness {
    pub store: Arc<dyn StateStore>,
    /// Every key of the test starts with this.
    pub prefix: String,
    /// An ETag of the form this backend issues that no item of the test has.
    pub unused_etag: String,
    /// What the backend is documented to support.
    pub features: Features,
    leftovers: Leftovers,
}

#[derive(Clone)]
enum Leftovers {
    Nothing,
    /// The SQLite file's directory, deleted when the last clone of the harness goes.
    Directory {
        _deleted_on_drop: Arc<TempDir>,
    },
    Table {
        url: String,
        table: String,
    },
    RedisKeys {
        url: String,
        pattern: String,
    },
}

impl Harness {
    /// The full key of `name` for this test.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    async fn clean_up(&self) {
        match &self.leftovers {
            Leftovers::Nothing | Leftovers::Directory { .. } => {}
            Leftovers::Table { url, table } => drop_table(url, table).await,
            Leftovers::RedisKeys { url, pattern } => delete_redis_keys(url, pattern).await,
        }
    }
}

/// Runs `test`, then `clean_up`, also when the test failed.
pub async fn finally(test: impl Future<Output = ()> + Send + 'static, clean_up: impl Future<Output = ()>) {
    let outcome = tokio::spawn(test).await;
    clean_up.await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

/// Runs one case against a freshly opened store, then removes what the case left.
pub async fn run<Case, Outcome>(opening: impl Future<Output = Harness>, case: Case)
where
    Case: FnOnce(Harness) -> Outcome,
    Outcome: Future<Output = ()> + Send + 'static,
{
    let harness = opening.await;
    finally(case(harness.clone()), harness.clean_up()).await;
}

pub fn unique_prefix() -> String {
    format!("it-{}||", Uuid::new_v4().simple())
}

pub fn metadata(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

pub fn postgres_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn redis_url() -> url::Url {
    let text = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    url::Url::parse(&text).expect("TEST_REDIS_URL is a redis:// URL")
}

/// `redisHost` and, when the URL has one, `redisPassword` of the test Redis.
pub fn redis_metadata() -> BTreeMap<String, String> {
    let url = redis_url();
    let host = format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(6379));
    let mut entries = metadata(&[("redisHost", &host)]);
    if let Some(password) = url.password() {
        entries.insert("redisPassword".to_owned(), password.to_owned());
    }
    entries
}

pub async fn redis_connection() -> ::redis::aio::MultiplexedConnection {
    let client = ::redis::Client::open(redis_url().as_str()).expect("redis client");
    client.get_multiplexed_async_connection().await.expect("the test Redis is reachable")
}

pub fn fresh_table_name() -> String {
    format!("state_{}", Uuid::new_v4().simple())
}

pub async fn drop_table(url: &str, table: &str) {
    let pool = sqlx::PgPool::connect(url).await.expect("the test PostgreSQL is reachable");
    sqlx::query(&format!("DROP TABLE IF EXISTS {table}")).execute(&pool).await.expect("drop the test table");
    pool.close().await;
}

pub async fn delete_redis_keys(url: &str, pattern: &str) {
    let client = ::redis::Client::open(url).expect("redis client");
    let mut connection = client.get_multiplexed_async_connection().await.expect("the test Redis is reachable");
    let keys: Vec<String> =
        ::redis::cmd("KEYS").arg(pattern).query_async(&mut connection).await.expect("list test keys");
    if !keys.is_empty() {
        ::redis::cmd("DEL").arg(keys).query_async::<()>(&mut connection).await.expect("delete test keys");
    }
}

/// Sets the string `key` of the test Redis to `value`, as an operator sets daprd's configuration items.
pub async fn set_redis_string(key: &str, value: &str) {
    let client = ::redis::Client::open(redis_url().as_str()).expect("redis client");
    let mut connection = client.get_multiplexed_async_connection().await.expect("the test Redis is reachable");
    ::redis::cmd("SET").arg(key).arg(value).query_async::<()>(&mut connection).await.expect("set a test key");
}

/// A write of `value` to `key` with no ETag, last-write-wins, no TTL.
pub fn put(key: &str, value: &str) -> SetRequest {
    SetRequest {
        key: key.to_owned(),
        value: value.as_bytes().to_vec(),
        etag: None,
        concurrency: Concurrency::LastWrite,
        ttl_seconds: None,
    }
}

/// [`put`] that must find `etag`.
pub fn put_if(key: &str, value: &str, etag: &str) -> SetRequest {
    SetRequest { etag: Some(etag.to_owned()), ..put(key, value) }
}

/// [`put`] in first-write mode.
pub fn put_first(key: &str, value: &str, etag: Option<&str>) -> SetRequest {
    SetRequest { etag: etag.map(str::to_owned), concurrency: Concurrency::FirstWrite, ..put(key, value) }
}

pub fn remove(key: &str) -> DeleteRequest {
    DeleteRequest { key: key.to_owned(), etag: None, concurrency: Concurrency::LastWrite }
}

pub fn remove_if(key: &str, etag: &str) -> DeleteRequest {
    DeleteRequest { etag: Some(etag.to_owned()), ..remove(key) }
}

const ALL_FEATURES: Features = Features { transactional: true, etag: true, ttl: true, query: true };
const WITHOUT_QUERY: Features = Features { query: false, ..ALL_FEATURES };

/// An ETag of the version-number form that a test never reaches.
const UNREACHED_VERSION: &str = "987654321";

pub mod memory {
    use super::*;

    pub async fn open() -> Harness {
        let store = state::open("state.in-memory", &BTreeMap::new()).await.expect("open state.in-memory");
        Harness {
            store,
            prefix: unique_prefix(),
            unused_etag: UNREACHED_VERSION.to_owned(),
            features: WITHOUT_QUERY,
            leftovers: Leftovers::Nothing,
        }
    }
}

pub mod sqlite {
    use super::*;

    pub async fn open() -> Harness {
        let directory = TempDir::new().expect("temporary directory");
        let path = directory.path().join("state.db");
        let store = state::open("state.sqlite", &metadata(&[("connectionString", path.to_str().expect("UTF-8 path"))]))
            .await
            .expect("open state.sqlite");
        Harness {
            store,
            prefix: unique_prefix(),
            unused_etag: Uuid::new_v4().to_string(),
            features: ALL_FEATURES,
            leftovers: Leftovers::Directory { _deleted_on_drop: Arc::new(directory) },
        }
    }
}

pub mod postgres {
    use super::*;

    pub async fn open() -> Harness {
        let url = postgres_url();
        let table = fresh_table_name();
        let store = state::open("state.postgresql", &metadata(&[("connectionString", &url), ("tableName", &table)]))
            .await
            .expect("open state.postgresql");
        Harness {
            store,
            prefix: unique_prefix(),
            unused_etag: Uuid::new_v4().to_string(),
            features: ALL_FEATURES,
            leftovers: Leftovers::Table { url, table },
        }
    }
}

pub mod redis {
    use super::*;

    pub async fn open() -> Harness {
        let store = state::open("state.redis", &redis_metadata()).await.expect("open state.redis");
        let prefix = unique_prefix();
        Harness {
            store,
            leftovers: Leftovers::RedisKeys { url: redis_url().to_string(), pattern: format!("{prefix}*") },
            prefix,
            unused_etag: UNREACHED_VERSION.to_owned(),
            features: ALL_FEATURES,
        }
    }
}
