//! Output bindings over HTTP and gRPC: `bindings.http` against a real server (operation as method, `path`,
//! headers, status metadata, `errorIfNot2XX`), `bindings.redis` against the real Redis, and daprd's one error
//! for an unknown binding, a refused operation and a failed call.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::Router;
use dapr::dapr::proto::runtime::v1 as pb;
use serde_json::json;

use crate::harness::{serve, with_token, TestGateway};

/// An app that answers every request with its method, path and `x-tenant` header; 418 on `/teapot`.
async fn echo_server() -> String {
    let app = Router::new().fallback(|request: Request| async move {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let tenant = parts.headers.get("x-tenant").map(|value| value.to_str().unwrap().to_owned());
        let status = if parts.uri.path() == "/api/teapot" { StatusCode::IM_A_TEAPOT } else { StatusCode::OK };
        let answer = json!({"method": parts.method.as_str(), "path": parts.uri.to_string(), "tenant": tenant,
            "body": String::from_utf8_lossy(&body)});
        (status, [("x-served-by", "echo")], answer.to_string())
    });
    serve(app).await
}

fn component(name: &str, component_type: &str, fields: &[(&str, &str)], scopes: &str) -> String {
    let metadata: String =
        fields.iter().map(|(name, value)| format!("  - name: {name}\n    value: \"{value}\"\n")).collect();
    format!("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: {component_type}\n  version: v1\n  metadata:\n{metadata}{scopes}")
}

#[tokio::test]
async fn the_http_binding_calls_the_service_as_daprd_does() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    let url = format!("{}/api", echo_server().await);
    gateway.component("shop", &component("orders-api", "bindings.http", &[("url", &url)], "")).await;

    let body = json!({"operation": "post", "data": {"id": 7}, "metadata": {"path": "/orders?x=1", "x-tenant": "shop"}});
    let answer = gateway.http("POST", "/v1.0/bindings/orders-api", Some(&token), Some(&body.to_string())).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(
        answer.json(),
        json!({"method": "POST", "path": "/api/orders?x=1", "tenant": "shop", "body": "{\"id\":7}"})
    );
    assert_eq!(answer.headers["metadata.statusCode"], "200");
    assert_eq!(answer.headers["metadata.x-served-by"], "echo");
    // daprd hands HTTP `data` to the binding as JSON text: a string arrives quoted.
    let body = json!({"operation": "create", "data": "hello"});
    let answer = gateway.http("POST", "/v1.0/bindings/orders-api", Some(&token), Some(&body.to_string())).await;
    assert_eq!(answer.json()["body"], "\"hello\"");

    let teapot = json!({"operation": "get", "metadata": {"path": "teapot"}});
    let answer = gateway.http("POST", "/v1.0/bindings/orders-api", Some(&token), Some(&teapot.to_string())).await;
    let message = answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_INVOKE_OUTPUT_BINDING");
    assert_eq!(message, "error invoking output binding orders-api: received status code 418");
    let tolerated = json!({"operation": "get", "metadata": {"path": "teapot", "errorIfNot2XX": "false"}});
    let answer = gateway.http("POST", "/v1.0/bindings/orders-api", Some(&token), Some(&tolerated.to_string())).await;
    assert_eq!((answer.status, answer.headers["metadata.statusCode"].to_str().unwrap()), (StatusCode::OK, "418"));

    let mut client = gateway.grpc_client().await;
    let request = pb::InvokeBindingRequest {
        name: "orders-api".into(),
        data: b"raw".to_vec(),
        metadata: [("path".to_owned(), "/grpc".to_owned())].into(),
        operation: "put".into(),
    };
    let answer = client.invoke_binding(with_token(request, &token)).await.unwrap().into_inner();
    let echoed: serde_json::Value = serde_json::from_slice(&answer.data).unwrap();
    assert_eq!((echoed["method"].clone(), echoed["body"].clone()), (json!("PUT"), json!("raw")));
    assert_eq!(answer.metadata["statusCode"], "200");
}

#[tokio::test]
async fn the_redis_binding_sets_gets_and_deletes_keys() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    gateway.component("shop", &component("cache", "bindings.redis", &[("redisHost", "127.0.0.1:6379")], "")).await;
    let key = format!("binding-{}", uuid::Uuid::new_v4().simple());
    let call =
        |operation: &str| json!({"operation": operation, "data": {"total": 42}, "metadata": {"key": key}}).to_string();
    let created = gateway.http("POST", "/v1.0/bindings/cache", Some(&token), Some(&call("create"))).await;
    assert_eq!(created.status, StatusCode::NO_CONTENT);
    let read = gateway.http("POST", "/v1.0/bindings/cache", Some(&token), Some(&call("get"))).await;
    assert_eq!((read.status, read.json()), (StatusCode::OK, json!({"total": 42})));
    gateway.http("POST", "/v1.0/bindings/cache", Some(&token), Some(&call("delete"))).await;
    let gone = gateway.http("POST", "/v1.0/bindings/cache", Some(&token), Some(&call("get"))).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let keyless = json!({"operation": "get"}).to_string();
    let answer = gateway.http("POST", "/v1.0/bindings/cache", Some(&token), Some(&keyless)).await;
    assert!(answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_INVOKE_OUTPUT_BINDING").contains("'key'"));
}

#[tokio::test]
async fn unknown_bindings_and_operations_get_daprds_error() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    let other = gateway.app("shop", "payments").await;
    let url = echo_server().await;
    gateway
        .component("shop", &component("private-api", "bindings.http", &[("url", &url)], "scopes: [payments]\n"))
        .await;
    // An input-only binding is no output binding, as in daprd.
    gateway.component("shop", &component("tick", "bindings.cron", &[("schedule", "@every 1h")], "")).await;
    let call = json!({"operation": "get"}).to_string();
    for (token, binding) in [(&token, "nothing"), (&token, "private-api"), (&token, "tick")] {
        let answer = gateway.http("POST", &format!("/v1.0/bindings/{binding}"), Some(token), Some(&call)).await;
        let message = answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_INVOKE_OUTPUT_BINDING");
        assert_eq!(message, format!("error invoking output binding {binding}: couldn't find output binding {binding}"));
    }
    let answer = gateway
        .http("POST", "/v1.0/bindings/private-api", Some(&other), Some(&json!({"operation": "explode"}).to_string()))
        .await;
    let message = answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_INVOKE_OUTPUT_BINDING");
    assert!(message.contains("does not support operation explode"), "{message}");
    let answer = gateway.http("POST", "/v1.0/bindings/private-api", Some(&other), Some("not json")).await;
    answer.dapr_error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
    assert_eq!(
        gateway.http("POST", "/v1.0/bindings/private-api", Some(&other), Some(&call)).await.status,
        StatusCode::OK
    );
}
