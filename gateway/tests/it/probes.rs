use axum::http::StatusCode;

use crate::harness::TestGateway;

#[tokio::test]
async fn health_probes_answer_204_without_a_token() {
    let gateway = TestGateway::start().await;
    for path in
        ["/v1.0/healthz", "/v1.0/healthz/outbound", "//v1.0/healthz", "/v1.0/healthz/", "//v1.0//healthz/outbound/"]
    {
        assert_eq!(gateway.http("GET", path, None, None).await.status, StatusCode::NO_CONTENT, "{path}");
    }
}

#[tokio::test]
async fn unserved_api_answers_dapr_unimplemented() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    let answer = gateway.http("GET", "/v1.0/configuration/appconfig?key=a", Some(&token), None).await;
    let message = answer.dapr_error(StatusCode::NOT_IMPLEMENTED, "ERR_API_UNIMPLEMENTED");
    assert!(message.contains("/v1.0/configuration/appconfig"), "{message}");
}

#[tokio::test]
async fn metadata_names_the_caller_and_its_components() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    for path in ["/v1.0/metadata", "//v1.0/metadata/"] {
        let answer = gateway.http("GET", path, Some(&token), None).await;
        assert_eq!(answer.status, StatusCode::OK);
        let body = answer.json();
        assert_eq!(body["id"], "orders");
        let kvstore =
            body["components"].as_array().unwrap().iter().find(|c| c["name"] == "kvstore").expect("kvstore listed");
        assert_eq!(kvstore["type"], "state.outrigger");
        assert!(kvstore["capabilities"].as_array().unwrap().iter().any(|c| c == "ETAG"), "{body}");
    }
}
