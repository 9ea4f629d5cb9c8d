//! `state::open`: from component type and metadata to a store, or to an error naming what to fix.

use outrigger_workers::state::{self, OpenError};
use tempfile::TempDir;

use crate::backends::{drop_table, fresh_table_name, metadata, postgres_url, put};

async fn open_error(component_type: &str, entries: &[(&str, &str)]) -> OpenError {
    match state::open(component_type, &metadata(entries)).await {
        Ok(_) => panic!("{component_type} opened with {entries:?}"),
        Err(err) => err,
    }
}

#[tokio::test]
async fn unknown_type_lists_the_types_there_are() {
    let message = open_error("state.mongodb", &[]).await.to_string();
    for expected in ["state.mongodb", "state.in-memory", "state.sqlite", "state.postgresql", "state.redis"] {
        assert!(message.contains(expected), "'{message}' does not mention {expected}");
    }
}

#[tokio::test]
async fn missing_required_metadata_is_named() {
    let cases = [
        ("state.sqlite", vec![("tableName", "t")], "connectionString"),
        ("state.postgresql", vec![("connectionString", "  ")], "connectionString"),
        ("state.redis", vec![("redisPassword", "secret")], "redisHost"),
    ];
    for (component_type, entries, field) in cases {
        let err = open_error(component_type, &entries).await;
        assert!(
            matches!(&err, OpenError::MissingField { component_type: t, field: f, .. } if *t == component_type && *f == field),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(component_type) && message.contains(field), "{message}");
    }
}

#[tokio::test]
async fn invalid_metadata_is_named_with_the_reason() {
    let directory = TempDir::new().expect("temporary directory");
    let database = directory.path().join("state.db");
    let database = database.to_str().expect("UTF-8 path");
    let cases = [
        ("state.sqlite", vec![("connectionString", database), ("tableName", "state; DROP TABLE x")], "tableName"),
        ("state.sqlite", vec![("connectionString", database), ("tableName", "main.state")], "tableName"),
        ("state.sqlite", vec![("connectionString", "file:data.db?_pragma=busy_timeout(5000)")], "connectionString"),
        ("state.sqlite", vec![("connectionString", database), ("cleanupInterval", "soon")], "cleanupInterval"),
        ("state.postgresql", vec![("connectionString", "host='unterminated")], "connectionString"),
        ("state.postgresql", vec![("connectionString", "postgres://x@h/db"), ("tableName", "a.b.c")], "tableName"),
        ("state.redis", vec![("redisHost", "localhost:port")], "redisHost"),
        ("state.redis", vec![("redisHost", "a:1,b:2")], "redisHost"),
        ("state.redis", vec![("redisHost", "localhost:6379"), ("redisDB", "-1")], "redisDB"),
        ("state.redis", vec![("redisHost", "localhost:6379"), ("enableTLS", "maybe")], "enableTLS"),
    ];
    for (component_type, entries, field) in cases {
        let err = open_error(component_type, &entries).await;
        assert!(matches!(&err, OpenError::InvalidField { field: f, .. } if *f == field), "{entries:?}: {err:?}");
    }
}

#[tokio::test]
async fn redis_with_tls_is_refused_with_what_to_do() {
    let err = open_error("state.redis", &[("redisHost", "localhost:6379"), ("enableTLS", "true")]).await;
    let message = err.to_string();
    assert!(matches!(err, OpenError::InvalidField { field: "enableTLS", .. }), "{message}");
    assert!(message.contains("TLS") && message.contains("enableTLS to false"), "{message}");
}

#[tokio::test]
async fn redis_modes_this_worker_lacks_are_refused_not_ignored() {
    let cases = [
        ("redisType", "cluster", "set redisType to node"),
        ("failover", "true", "set failover to false"),
        ("useOIDC", "true", "set useOIDC to false"),
        ("useEntraID", "true", "set useEntraID to false"),
    ];
    for (field, value, what_to_do) in cases {
        // Every Redis component reads its client fields in one place: a state store and a pub/sub stand for all.
        for component_type in ["state.redis", "pubsub.redis"] {
            let entries = [("redisHost", "localhost:6379"), (field, value)];
            let err = match component_type {
                "state.redis" => open_error(component_type, &entries).await,
                _ => outrigger_workers::pubsub::open(component_type, &metadata(&entries)).await.err().expect("refused"),
            };
            let message = err.to_string();
            assert!(
                matches!(err, OpenError::InvalidField { field: f, .. } if f == field),
                "{component_type}: {message}"
            );
            assert!(message.contains(what_to_do), "{component_type}: {message}");
        }
    }
    // daprd's defaults, written out, still open.
    let defaults =
        [("redisHost", "localhost:6379"), ("redisType", "Node"), ("failover", "false"), ("useOIDC", "false")];
    state::open("state.redis", &metadata(&defaults)).await.expect("daprd's defaults open");
}

#[tokio::test]
async fn metadata_names_match_whatever_their_case() {
    let directory = TempDir::new().expect("temporary directory");
    let database = directory.path().join("state.db");
    let entries = [("ConnectionString", database.to_str().expect("UTF-8 path")), ("TABLENAME", "custom")];
    let store = state::open("state.sqlite", &metadata(&entries)).await.expect("open");
    store.set(&put("k", "v")).await.expect("set");

    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", database.display())).await.expect("open the file");
    let (value,): (Vec<u8>,) =
        sqlx::query_as("SELECT value FROM custom WHERE key = 'k'").fetch_one(&pool).await.expect("the row");
    assert_eq!(value, b"v");
}

#[tokio::test]
async fn in_memory_sqlite_keeps_its_data_while_open() {
    let store = state::open("state.sqlite", &metadata(&[("connectionString", ":memory:")])).await.expect("open");
    store.set(&put("k", "v")).await.expect("set");
    assert_eq!(store.get("k").await.expect("get").expect("item").value, b"v");
}

#[tokio::test]
async fn sqlite_reopened_file_has_the_data() {
    let directory = TempDir::new().expect("temporary directory");
    let database = directory.path().join("with space #1 %20.db");
    let entries = [("connectionString", database.to_str().expect("UTF-8 path"))];
    let etag = {
        let store = state::open("state.sqlite", &metadata(&entries)).await.expect("open");
        store.set(&put("k", "v")).await.expect("set")
    };
    assert!(database.exists(), "the database file is where the connection string says");
    let store = state::open("state.sqlite", &metadata(&entries)).await.expect("reopen");
    assert_eq!(store.get("k").await.expect("get").expect("item").etag, etag);
}

#[tokio::test]
async fn sqlite_in_a_missing_directory_fails_at_open() {
    let directory = TempDir::new().expect("temporary directory");
    let database = directory.path().join("missing").join("state.db");
    let err = open_error("state.sqlite", &[("connectionString", database.to_str().expect("UTF-8 path"))]).await;
    assert!(matches!(err, OpenError::Backend { component_type: "state.sqlite", .. }), "{err:?}");
}

/// The libpq `key=value` form of the test database's URL.
fn key_value_connection_string(url: &str) -> String {
    let url = url::Url::parse(url).expect("TEST_POSTGRES_URL is a URL");
    let mut settings = vec![
        format!("host={}", url.host_str().unwrap_or("127.0.0.1")),
        format!("port = {}", url.port().unwrap_or(5432)),
        format!("user='{}'", url.username()),
        format!("database={}", url.path().trim_start_matches('/')),
    ];
    if let Some(password) = url.password() {
        settings.push(format!("password='{}'", password.replace('\\', "\\\\").replace('\'', "\\'")));
    }
    settings.join(" ")
}

#[tokio::test]
async fn postgres_accepts_key_value_connection_strings() {
    let table = fresh_table_name();
    let connection_string = key_value_connection_string(&postgres_url());
    let store =
        state::open("state.postgresql", &metadata(&[("connectionString", &connection_string), ("tableName", &table)]))
            .await
            .expect("open");
    let outcome = store.set(&put("k", "v")).await;
    drop_table(&postgres_url(), &table).await;
    outcome.expect("set through a key=value connection string");
}
