use axum::http::StatusCode;
use serde_json::json;

/// Tokens exist only as hashes: the secret appears nowhere in the database files.
#[tokio::test]
async fn api_tokens_are_stored_only_as_hashes() {
    let app = crate::harness::TestApp::sqlite().await;
    app.project("demo").await;
    let created = app
        .post_json("/api/v1/projects/demo/appids", json!({ "name": "orders" }))
        .await
        .expect(StatusCode::CREATED)
        .json();
    let first = created["apiToken"].as_str().unwrap().to_owned();
    let rotated =
        app.post_json("/api/v1/projects/demo/appids/orders/tokens", json!({})).await.expect(StatusCode::CREATED).json();
    let second = rotated["apiToken"].as_str().unwrap().to_owned();
    let dir = app.dir.clone();
    app.finish().await;

    let mut database = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        database.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let contains = |needle: &str| database.windows(needle.len()).any(|window| window == needle.as_bytes());
    assert!(contains("orders"), "the scan reads the database");
    assert!(!contains(&first) && !contains(&second));
    assert!(contains(&outrigger_store::hash_token(&first)));
}
