//! Security group (issue 14): a state query answers one bounded page, over HTTP and gRPC alike. `{}` used to
//! answer every item of the store at once; now it answers the default page (100) with a token, `page.limit`
//! is cut to the largest page (1000), the token continues where the page stopped, and a token the gateway
//! never issued is the caller's error (400 / INVALID_ARGUMENT), not a place to start from.

use axum::http::StatusCode;
use dapr::dapr::proto::runtime::v1 as pb;
use serde_json::{json, Value};

use crate::harness::{with_token, TestGateway};

/// More items than the largest page.
const ITEMS: usize = 1050;

async fn store_with_items(gateway: &TestGateway) -> String {
    let token = gateway.app("shop", "orders").await;
    gateway
        .component(
            "shop",
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: { name: sql }\nspec:\n  type: state.sqlite\n  \
             version: v1\n  metadata:\n    - { name: connectionString, value: state.db }\n",
        )
        .await;
    // The harness's worker takes 50 items per save.
    for chunk in (0..ITEMS).collect::<Vec<_>>().chunks(50) {
        let items: Vec<Value> = chunk.iter().map(|i| json!({"key": format!("k{i:04}"), "value": {"n": i}})).collect();
        let saved = gateway.http("POST", "/v1.0/state/sql", Some(&token), Some(&Value::from(items).to_string())).await;
        assert_eq!(saved.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&saved.body));
    }
    token
}

#[tokio::test]
async fn security_http_query_answers_bounded_pages_and_refuses_foreign_tokens() {
    let gateway = TestGateway::start().await;
    let token = store_with_items(&gateway).await;
    let query = |body: Value| {
        let gateway = &gateway;
        let token = token.clone();
        async move { gateway.http("POST", "/v1.0-alpha1/state/sql/query", Some(&token), Some(&body.to_string())).await }
    };

    let first = query(json!({})).await;
    assert_eq!(first.status, StatusCode::OK);
    let first = first.json();
    assert_eq!(first["results"].as_array().unwrap().len(), 100, "no page.limit: the default page");
    assert!(first["token"].is_string());

    let mut keys = Vec::new();
    let mut next = json!({"page": {"limit": 5000}});
    loop {
        let page = query(next.clone()).await.json();
        let results = page["results"].as_array().unwrap();
        assert!(results.len() <= 1000, "a page of {} items", results.len());
        keys.extend(results.iter().map(|item| item["key"].as_str().unwrap().to_owned()));
        match page["token"].as_str() {
            Some(token) => next["page"]["token"] = json!(token),
            None => break,
        }
    }
    assert_eq!(keys, (0..ITEMS).map(|i| format!("k{i:04}")).collect::<Vec<_>>(), "every item once, in order");

    for forged in ["1000", "not a token"] {
        let answer = query(json!({"page": {"limit": 10, "token": forged}})).await;
        let message = answer.dapr_error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
        assert!(message.contains("page.token"), "{message}");
    }
}

#[tokio::test]
async fn security_grpc_query_answers_bounded_pages_and_refuses_foreign_tokens() {
    let gateway = TestGateway::start().await;
    let token = store_with_items(&gateway).await;
    let mut client = gateway.grpc_client().await;
    let request = |query: Value| pb::QueryStateRequest {
        store_name: "sql".into(),
        query: query.to_string(),
        metadata: Default::default(),
    };

    let page = client.query_state_alpha1(with_token(request(json!({"page": {"limit": 5000}})), &token)).await;
    let page = page.expect("a page").into_inner();
    assert_eq!(page.results.len(), 1000);
    assert!(!page.token.is_empty());
    let rest = json!({"page": {"limit": 5000, "token": page.token}});
    let rest = client.query_state_alpha1(with_token(request(rest), &token)).await.expect("a page").into_inner();
    assert_eq!((rest.results.len(), rest.token.as_str()), (ITEMS - 1000, ""));
    assert_eq!(rest.results[0].key, "k1000", "the token continues after the last item of the page");

    let forged = json!({"page": {"limit": 10, "token": "1000"}});
    let status = client.query_state_alpha1(with_token(request(forged), &token)).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("page.token"), "{status:?}");
}
