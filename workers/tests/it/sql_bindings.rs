//! `bindings.postgresql` against the machine's PostgreSQL: daprd's `exec`/`query`/`close`, its metadata, values
//! as daprd's driver writes them, and its errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use outrigger_workers::bindings::{self, BindingRequest, OutputBinding};
use outrigger_workers::Boundary;
use serde_json::json;

use crate::backends::{drop_table, fresh_table_name, metadata, postgres_url};

async fn binding(component_type: &str) -> Arc<dyn OutputBinding> {
    let entries = metadata(&[("connectionString", &postgres_url())]);
    bindings::open_within(component_type, &entries, &Boundary::operator()).await.expect("the binding opens")
}

async fn call(
    binding: &dyn OutputBinding,
    operation: &str,
    sql: &str,
    params: Option<serde_json::Value>,
) -> Result<outrigger_bus::BindingResponse, String> {
    let mut entries = BTreeMap::from([("sql".to_owned(), sql.to_owned())]);
    if let Some(params) = params {
        entries.insert("params".to_owned(), params.to_string());
    }
    let request = BindingRequest { operation, data: b"", metadata: &entries };
    binding.invoke(request).await.map_err(|err| err.to_string())
}

#[tokio::test]
async fn exec_and_query_answer_as_daprd_does() {
    let binding = binding("bindings.postgres").await;
    let table = fresh_table_name();
    let create = format!(
        "CREATE TABLE {table} (id INT PRIMARY KEY, name TEXT, paid BOOL, amount NUMERIC(10,2), at TIMESTAMPTZ, \
         doc JSONB, ref UUID, raw BYTEA, ratio FLOAT8)"
    );
    call(&*binding, "exec", &create, None).await.expect("create the table");
    let insert = format!("INSERT INTO {table} (id, name, paid, amount, at, doc, ref, raw, ratio) VALUES ($1, $2, $3, $4::text::numeric, $5, $6, $7, $8, $9)");
    let row = json!([
        "1",
        "Ada",
        true,
        "12.50",
        "2026-12-04T08:00:00.5Z",
        {"tags": ["a"]},
        "6f9619ff-8b86-d011-b42d-00c04fc964ff",
        "hi",
        0.25
    ]);
    let inserted = call(&*binding, "exec", &insert, Some(row)).await.expect("insert with params");
    assert_eq!(inserted.metadata.get("rows-affected").map(String::as_str), Some("1"));
    assert_eq!(inserted.metadata.get("operation").map(String::as_str), Some("exec"));
    assert_eq!(inserted.metadata.get("sql"), Some(&insert));
    for key in ["start-time", "end-time", "duration"] {
        assert!(inserted.metadata.contains_key(key), "{key} in {:?}", inserted.metadata);
    }
    let nulls = json!([2, null, null, null, null, null, null, null, null]);
    call(&*binding, "exec", &insert, Some(nulls)).await.expect("insert NULLs");

    let select = format!("SELECT id, name, paid, amount, at, doc, ref, raw, ratio FROM {table} ORDER BY id");
    let answer = call(&*binding, "query", &select, None).await.expect("query");
    assert!(!answer.metadata.contains_key("rows-affected"));
    let rows: serde_json::Value = serde_json::from_slice(&answer.data).expect("JSON rows");
    assert_eq!(
        rows,
        json!([
            [
                1,
                "Ada",
                true,
                12.5,
                "2026-12-04T08:00:00.500Z",
                {"tags": ["a"]},
                "6f9619ff-8b86-d011-b42d-00c04fc964ff",
                "aGk=",
                0.25
            ],
            [2, null, null, null, null, null, null, null, null]
        ])
    );
    let filtered = format!("SELECT name FROM {table} WHERE id = $1");
    let answer = call(&*binding, "query", &filtered, Some(json!([1]))).await.expect("query with a parameter");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&answer.data).unwrap(), json!([["Ada"]]));
    let none = format!("SELECT name FROM {table} WHERE id = 99");
    let answer = call(&*binding, "query", &none, None).await.expect("query of nothing");
    assert_eq!(answer.data, b"[]");
    drop_table(&postgres_url(), &table).await;
}

#[tokio::test]
async fn bad_requests_are_refused_with_what_to_do() {
    let binding = binding("bindings.postgresql").await;
    let empty = BTreeMap::new();
    let missing = binding.invoke(BindingRequest { operation: "query", data: b"", metadata: &empty });
    assert_eq!(missing.await.err().map(|err| err.to_string()).as_deref(), Some("required metadata not set: sql"));
    let err = call(&*binding, "query", "SELECT $1::int", Some(json!({"not": "an array"}))).await.unwrap_err();
    assert!(err.starts_with("invalid metadata property params"), "{err}");
    let err = call(&*binding, "query", "SELECT $1::int", Some(json!([1, 2]))).await.unwrap_err();
    assert!(err.contains("takes 1 parameters"), "{err}");
    let err = call(&*binding, "query", "SELECT $1::int", Some(json!(["seven"]))).await.unwrap_err();
    assert!(err.contains("not a whole number"), "{err}");
    let err = call(&*binding, "query", "SELECT point(1, 2) AS spot", None).await.unwrap_err();
    assert!(err.contains("spot::text"), "{err}");
    let err = call(&*binding, "exec", "SELEKT 1", None).await.unwrap_err();
    assert!(err.starts_with("error executing query"), "{err}");
}

#[tokio::test]
async fn close_ends_the_component_as_daprd_does() {
    let binding = binding("bindings.postgresql").await;
    call(&*binding, "query", "SELECT 1", None).await.expect("a query before close");
    let empty = BTreeMap::new();
    let close = || binding.invoke(BindingRequest { operation: "close", data: b"", metadata: &empty });
    close().await.expect("close");
    let again = close();
    again.await.expect("closing twice is allowed");
    let err = call(&*binding, "query", "SELECT 1", None).await.unwrap_err();
    assert_eq!(err, "component is closed");
}
