use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;

use crate::harness::TestGateway;

#[tokio::test]
async fn save_get_delete_with_etags() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    let t = Some(token.as_str());

    let saved = gateway
        .http("POST", "/v1.0/state/kvstore", t, Some(r#"[{"key":"order-1","value":{"id":1,"item":"tea"}}]"#))
        .await;
    assert_eq!(saved.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&saved.body));
    let got = gateway.http("GET", "/v1.0/state/kvstore/order-1", t, None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json(), json!({ "id": 1, "item": "tea" }));
    assert_eq!(got.headers["content-type"], "application/json");
    let etag = got.headers["etag"].to_str().unwrap().to_owned();
    assert!(!etag.is_empty());

    // A write with the current ETag succeeds and changes the ETag; the old one is then stale.
    let body = json!([{ "key": "order-1", "value": "second", "etag": etag }]).to_string();
    assert_eq!(gateway.http("PUT", "/v1.0/state/kvstore", t, Some(&body)).await.status, StatusCode::NO_CONTENT);
    let got = gateway.http("GET", "/v1.0/state/kvstore/order-1", t, None).await;
    assert_eq!(got.body, br#""second""#);
    let new_etag = got.headers["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    gateway
        .http("POST", "/v1.0/state/kvstore", t, Some(&body))
        .await
        .dapr_error(StatusCode::CONFLICT, "ERR_STATE_SAVE");

    // Delete with a stale ETag fails, with the current one succeeds; then the key is gone (204).
    gateway
        .http_with("DELETE", "/v1.0/state/kvstore/order-1", t, None, &[("if-match", &etag)])
        .await
        .dapr_error(StatusCode::CONFLICT, "ERR_STATE_DELETE");
    let deleted = gateway.http_with("DELETE", "/v1.0/state/kvstore/order-1", t, None, &[("if-match", &new_etag)]).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(gateway.http("GET", "/v1.0/state/kvstore/order-1", t, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(gateway.http("DELETE", "/v1.0/state/kvstore/never-was", t, None).await.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn first_write_refuses_a_second_write_without_etag() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    let t = Some(token.as_str());
    let first = r#"[{"key":"k","value":1,"options":{"concurrency":"first-write"}}]"#;
    assert_eq!(gateway.http("POST", "/v1.0/state/kvstore", t, Some(first)).await.status, StatusCode::NO_CONTENT);
    gateway
        .http("POST", "/v1.0/state/kvstore", t, Some(first))
        .await
        .dapr_error(StatusCode::CONFLICT, "ERR_STATE_SAVE");
    let etag = gateway.http("GET", "/v1.0/state/kvstore/k", t, None).await.headers["etag"].to_str().unwrap().to_owned();
    let with_etag =
        json!([{ "key": "k", "value": 2, "etag": etag, "options": { "concurrency": "first-write" } }]).to_string();
    assert_eq!(gateway.http("POST", "/v1.0/state/kvstore", t, Some(&with_etag)).await.status, StatusCode::NO_CONTENT);
    assert_eq!(gateway.http("GET", "/v1.0/state/kvstore/k", t, None).await.body, b"2");
}

#[tokio::test]
async fn bulk_get_and_transactions_in_order() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    let t = Some(token.as_str());
    let save = r#"[{"key":"a","value":"A"},{"key":"b","value":{"n":2}},{"key":"c","value":"C"}]"#;
    assert_eq!(gateway.http("POST", "/v1.0/state/kvstore", t, Some(save)).await.status, StatusCode::NO_CONTENT);

    let bulk = gateway
        .http("POST", "/v1.0/state/kvstore/bulk", t, Some(r#"{"keys":["a","b","missing"],"parallelism":2}"#))
        .await;
    assert_eq!(bulk.status, StatusCode::OK);
    let items = bulk.json();
    assert_eq!(items[0]["key"], "a");
    assert_eq!(items[0]["data"], "A");
    assert!(!items[0]["etag"].as_str().unwrap().is_empty());
    assert_eq!(items[1]["data"], json!({ "n": 2 }));
    assert_eq!(items[2], json!({ "key": "missing" }));

    // Applied in order: delete a, upsert d, upsert a again, delete d.
    let transaction = json!({ "operations": [
        { "operation": "delete", "request": { "key": "a" } },
        { "operation": "upsert", "request": { "key": "d", "value": "D" } },
        { "operation": "upsert", "request": { "key": "a", "value": "A2" } },
        { "operation": "delete", "request": { "key": "d" } },
        { "operation": "delete", "request": { "key": "never-was" } },
    ]})
    .to_string();
    let applied = gateway.http("POST", "/v1.0/state/kvstore/transaction", t, Some(&transaction)).await;
    assert_eq!(applied.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&applied.body));
    assert_eq!(gateway.http("GET", "/v1.0/state/kvstore/a", t, None).await.body, br#""A2""#);
    assert_eq!(gateway.http("GET", "/v1.0/state/kvstore/d", t, None).await.status, StatusCode::NO_CONTENT);

    // A transaction with one stale ETag changes nothing.
    let stale = json!({ "operations": [
        { "operation": "upsert", "request": { "key": "b", "value": "changed" } },
        { "operation": "upsert", "request": { "key": "c", "value": "changed", "etag": "424242" } },
    ]})
    .to_string();
    gateway
        .http("POST", "/v1.0/state/kvstore/transaction", t, Some(&stale))
        .await
        .dapr_error(StatusCode::CONFLICT, "ERR_STATE_TRANSACTION");
    assert_eq!(gateway.http("GET", "/v1.0/state/kvstore/b", t, None).await.json(), json!({ "n": 2 }));
}

#[tokio::test]
async fn ttl_expires_and_is_reported() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    let t = Some(token.as_str());
    let save = r#"[{"key":"short","value":"x","metadata":{"ttlInSeconds":"2"}}]"#;
    assert_eq!(gateway.http("POST", "/v1.0/state/kvstore", t, Some(save)).await.status, StatusCode::NO_CONTENT);
    let got = gateway.http("GET", "/v1.0/state/kvstore/short", t, None).await;
    assert_eq!(got.status, StatusCode::OK);
    let expire: chrono::DateTime<chrono::Utc> =
        got.headers["metadata.ttlexpiretime"].to_str().unwrap().parse().unwrap();
    let ahead = expire - chrono::Utc::now();
    assert!(ahead > chrono::Duration::zero() && ahead <= chrono::Duration::seconds(3), "{ahead}");
    let deadline = Instant::now() + Duration::from_secs(3);
    while gateway.http("GET", "/v1.0/state/kvstore/short", t, None).await.status != StatusCode::NO_CONTENT {
        assert!(Instant::now() < deadline, "a 2 s TTL item still readable after 3 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn bad_input_is_refused_and_writes_nothing() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    let t = Some(token.as_str());
    let cases: [(&str, &str, &str, StatusCode, &str); 7] = [
        ("POST", "/v1.0/state/kvstore", "[{\"key\":", StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST"),
        ("POST", "/v1.0/state/kvstore", r#"[{"value":"no key"}]"#, StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST"),
        (
            "POST",
            "/v1.0/state/kvstore",
            r#"[{"key":"x||y","value":1}]"#,
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "POST",
            "/v1.0/state/kvstore",
            r#"[{"key":"t","value":1,"metadata":{"ttlInSeconds":"soon"}}]"#,
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "POST",
            "/v1.0/state/nostore",
            r#"[{"key":"k","value":1}]"#,
            StatusCode::BAD_REQUEST,
            "ERR_STATE_STORE_NOT_FOUND",
        ),
        (
            "POST",
            "/v1.0/state/kvstore",
            r#"[{"key":"k","value":1,"options":{"concurrency":"whenever"}}]"#,
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "POST",
            "/v1.0/state/kvstore/transaction",
            r#"{"operations":[{"operation":"merge","request":{"key":"k"}}]}"#,
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
        ),
    ];
    for (method, path, body, status, code) in cases {
        gateway.http(method, path, t, Some(body)).await.dapr_error(status, code);
    }
    let keys: Vec<String> = (0..51).map(|i| format!("k{i}")).collect();
    let huge_bulk = json!({ "keys": keys }).to_string();
    gateway
        .http("POST", "/v1.0/state/kvstore/bulk", t, Some(&huge_bulk))
        .await
        .dapr_error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
    let operations: Vec<_> =
        (0..51).map(|i| json!({ "operation": "upsert", "request": { "key": format!("k{i}"), "value": i } })).collect();
    let huge_transaction = json!({ "operations": operations }).to_string();
    gateway
        .http("POST", "/v1.0/state/kvstore/transaction", t, Some(&huge_transaction))
        .await
        .dapr_error(StatusCode::BAD_REQUEST, "ERR_STATE_STORE_TOO_MANY_TRANSACTIONS");
    let oversize = format!(r#"[{{"key":"big","value":"{}"}}]"#, "x".repeat(4 * 1024 * 1024));
    gateway
        .http("POST", "/v1.0/state/kvstore", t, Some(&oversize))
        .await
        .dapr_error(StatusCode::PAYLOAD_TOO_LARGE, "ERR_BODY_READ");
    let message = gateway
        .http("GET", "/v1.0/state/nostore/k", t, None)
        .await
        .dapr_error(StatusCode::BAD_REQUEST, "ERR_STATE_STORE_NOT_FOUND");
    assert_eq!(message, "state store nostore is not found");
    for key in ["k", "t", "big", "k0", "x||y"] {
        let path = format!("/v1.0/state/kvstore/{key}");
        let status = gateway.http("GET", &path, t, None).await.status;
        assert!(status == StatusCode::NO_CONTENT || status == StatusCode::BAD_REQUEST, "{key}: {status}");
    }
}

#[tokio::test]
async fn a_body_under_the_gateway_limit_is_read_whole() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    let t = Some(token.as_str());
    // Under the gateway's limit (4 MiB) but over axum's own default (2 MiB): the gateway's limit is the one read.
    let value = "x".repeat(3 * 1024 * 1024);
    let large = format!(r#"[{{"key":"large","value":"{value}"}}]"#);
    let saved = gateway.http("POST", "/v1.0/state/kvstore", t, Some(&large)).await;
    assert_eq!(saved.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&saved.body));
    let read = gateway.http("GET", "/v1.0/state/kvstore/large", t, None).await;
    assert_eq!(read.body, format!("\"{value}\"").into_bytes());
}

#[tokio::test]
async fn query_on_a_store_without_query_says_so() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    // The harness backs the managed kvstore with the in-memory store, which has no query.
    let answer = gateway.http("POST", "/v1.0-alpha1/state/kvstore/query", Some(&token), Some(r#"{"filter":{}}"#)).await;
    answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_STATE_STORE_NOT_SUPPORTED");
}
