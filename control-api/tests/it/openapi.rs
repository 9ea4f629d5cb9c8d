use axum::body::Body;
use axum::http::{Request, StatusCode};

/// Any change to the API shows up here as a snapshot difference to review.
#[test]
fn openapi_document_snapshot() {
    let document = serde_json::to_value(outrigger_control_api::openapi()).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    insta::assert_json_snapshot!("openapi", document);
}

#[tokio::test]
async fn openapi_document_is_served_without_a_token() {
    let app = crate::harness::TestApp::sqlite().await;
    let answer =
        app.send(Request::get("/api/v1/openapi.json").body(Body::empty()).unwrap()).await.expect(StatusCode::OK);
    assert_eq!(answer.json(), serde_json::to_value(outrigger_control_api::openapi()).unwrap());
    app.finish().await;
}
