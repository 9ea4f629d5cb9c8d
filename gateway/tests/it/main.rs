//! In-process tests of the gateway's routers.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use tower::{ServiceBuilder, ServiceExt};

async fn http_call(path: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let service =
        ServiceBuilder::new().map_request(outrigger_gateway::clean_path).service(outrigger_gateway::http_router());
    let response = service.oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

#[tokio::test]
async fn health_probes_answer_204() {
    for path in
        ["/v1.0/healthz", "/v1.0/healthz/outbound", "//v1.0/healthz", "/v1.0/healthz/", "//v1.0//healthz/outbound/"]
    {
        let (status, _, _) = http_call(path).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{path}");
    }
}

#[tokio::test]
async fn unserved_api_answers_dapr_unimplemented() {
    let (status, _, body) = http_call("/v1.0/state/kvstore/key?metadata.x=1").await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errorCode"], "ERR_API_UNIMPLEMENTED");
    assert!(body["message"].as_str().unwrap().contains("/v1.0/state/kvstore/key"));
}

#[tokio::test]
async fn grpc_calls_answer_unimplemented_status() {
    let request = Request::post("/dapr.proto.runtime.v1.Dapr/GetState")
        .header("content-type", "application/grpc")
        .body(Body::empty())
        .unwrap();
    let response = outrigger_gateway::grpc_router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "12");
    assert_eq!(response.headers()["content-type"], "application/grpc");
}
