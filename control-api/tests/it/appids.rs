use axum::http::StatusCode;
use serde_json::json;

use crate::both_engines;
use crate::harness::TestApp;

both_engines!(
    app_id_lifecycle,
    app_id_validation,
    token_rotation_and_revocation,
    app_id_named_in_scopes_cannot_be_deleted
);

async fn app_id_lifecycle(app: TestApp) {
    app.project("demo").await;
    let body = json!({
        "name": "orders",
        "appEndpoint": "http://127.0.0.1:5001",
        "appToken": "app-secret-value",
        "appProtocol": "http",
        "appHealthCheckPath": "/healthz",
    });
    let created = app.post_json("/api/v1/projects/demo/appids", body).await.expect(StatusCode::CREATED).json();
    assert_eq!(created["name"], "orders");
    assert_eq!(created["appEndpoint"], "http://127.0.0.1:5001");
    assert_eq!(created["hasAppToken"], true);
    let token = created["apiToken"].as_str().unwrap();
    assert!(token.len() >= 40, "{token}");
    assert!(created["tokenId"].as_str().unwrap().starts_with("tok_"));

    app.post_json("/api/v1/projects/demo/appids", json!({ "name": "orders" }))
        .await
        .expect_error(StatusCode::CONFLICT, "already_exists");

    let fetched = app.get("/api/v1/projects/demo/appids/orders").await.expect(StatusCode::OK);
    let text = fetched.text();
    assert!(!text.contains(token) && !text.contains("app-secret-value") && !text.contains("apiToken"), "{text}");
    let fetched = fetched.json();
    assert_eq!(fetched["appHealthCheckPath"], "/healthz");
    assert_eq!(fetched["appProtocol"], "http");

    app.app_id("demo", "billing").await;
    let list = app.get("/api/v1/projects/demo/appids").await.expect(StatusCode::OK);
    assert!(!list.text().contains(token));
    let names: Vec<String> =
        list.json()["items"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["billing", "orders"]);

    let patched = app
        .patch_json(
            "/api/v1/projects/demo/appids/orders",
            json!({ "appEndpoint": "https://orders.example.com", "appToken": null }),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(patched["appEndpoint"], "https://orders.example.com");
    assert_eq!(patched["hasAppToken"], false);
    assert_eq!(patched["appHealthCheckPath"], "/healthz", "fields absent from a PATCH stay");
    let cleared = app
        .patch_json("/api/v1/projects/demo/appids/orders", json!({ "appEndpoint": null, "appProtocol": "grpc" }))
        .await
        .expect(StatusCode::OK)
        .json();
    assert!(cleared.get("appEndpoint").is_none(), "{cleared}");
    assert_eq!(cleared["appProtocol"], "grpc");

    app.delete("/api/v1/projects/demo/appids/orders").await.expect(StatusCode::NO_CONTENT);
    app.get("/api/v1/projects/demo/appids/orders").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.delete("/api/v1/projects/demo/appids/orders").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.patch_json("/api/v1/projects/demo/appids/orders", json!({}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
}

async fn app_id_validation(app: TestApp) {
    app.project("demo").await;
    let bad = [
        json!({ "name": "Orders" }),
        json!({ "name": "orders", "appEndpoint": "not a url" }),
        json!({ "name": "orders", "appEndpoint": "ftp://127.0.0.1/x" }),
        json!({ "name": "orders", "appProtocol": "smtp" }),
        json!({ "name": "orders", "appHealthCheckPath": "healthz" }),
    ];
    for body in bad {
        let message = app
            .post_json("/api/v1/projects/demo/appids", body.clone())
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_app_id");
        assert!(!message.is_empty(), "{body}");
    }
    let message = app
        .post_json("/api/v1/projects/demo/appids", json!({ "name": "orders", "config": "appconfig" }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    assert!(message.contains("appconfig"), "{message}");
    app.post_json("/api/v1/projects/demo/appids", json!({ "name": "orders", "colour": "red" }))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    app.post_json("/api/v1/projects/nope/appids", json!({ "name": "orders" }))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.get("/api/v1/projects/demo/appids").await.json()["items"], json!([]));

    app.app_id("demo", "orders").await;
    app.patch_json("/api/v1/projects/demo/appids/orders", json!({ "appEndpoint": "nope" }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_app_id");
    app.patch_json("/api/v1/projects/demo/appids/orders", json!({ "name": "renamed" }))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    let unchanged = app.get("/api/v1/projects/demo/appids/orders").await.json();
    assert!(unchanged.get("appEndpoint").is_none());
}

async fn token_rotation_and_revocation(app: TestApp) {
    app.project("demo").await;
    let created = app
        .post_json("/api/v1/projects/demo/appids", json!({ "name": "orders" }))
        .await
        .expect(StatusCode::CREATED)
        .json();
    let first_id = created["tokenId"].as_str().unwrap().to_owned();
    let first_token = created["apiToken"].as_str().unwrap().to_owned();

    let rotated =
        app.post_json("/api/v1/projects/demo/appids/orders/tokens", json!({})).await.expect(StatusCode::CREATED).json();
    let second_id = rotated["id"].as_str().unwrap().to_owned();
    assert_ne!(rotated["apiToken"].as_str().unwrap(), first_token);

    let tokens = app.get("/api/v1/projects/demo/appids/orders/tokens").await.expect(StatusCode::OK);
    assert!(!tokens.text().contains(&first_token));
    let tokens = tokens.json()["items"].as_array().unwrap().clone();
    assert_eq!(tokens.len(), 2, "the older token stays valid during the grace period");
    let old = tokens.iter().find(|t| t["id"] == first_id.as_str()).unwrap();
    let new = tokens.iter().find(|t| t["id"] == second_id.as_str()).unwrap();
    let expires: chrono::DateTime<chrono::Utc> = old["expiresAt"].as_str().unwrap().parse().unwrap();
    let remaining = expires - chrono::Utc::now();
    assert!(remaining > chrono::Duration::hours(23) && remaining <= chrono::Duration::hours(24), "{remaining}");
    assert!(new.get("expiresAt").is_none());

    // A zero grace ends every older token at once.
    let third = app
        .post_json("/api/v1/projects/demo/appids/orders/tokens", json!({ "graceSeconds": 0 }))
        .await
        .expect(StatusCode::CREATED)
        .json();
    let ids: Vec<String> = app.get("/api/v1/projects/demo/appids/orders/tokens").await.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [third["id"].as_str().unwrap().to_owned()]);

    app.delete(&format!("/api/v1/projects/demo/appids/orders/tokens/{}", third["id"].as_str().unwrap()))
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(app.get("/api/v1/projects/demo/appids/orders/tokens").await.json()["items"], json!([]));
    app.delete(&format!("/api/v1/projects/demo/appids/orders/tokens/{second_id}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.post_json("/api/v1/projects/demo/appids/ghost/tokens", json!({}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.post_json("/api/v1/projects/demo/appids/orders/tokens", json!({ "graceSeconds": -1 }))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
}

async fn app_id_named_in_scopes_cannot_be_deleted(app: TestApp) {
    app.project("demo").await;
    app.app_id("demo", "order-processor").await;
    let scoped = format!("{}scopes:\n- order-processor\n", crate::fixtures::STATESTORE);
    app.put_yaml("/api/v1/projects/demo/components/statestore", &scoped).await.expect(StatusCode::CREATED);
    let message = app
        .delete("/api/v1/projects/demo/appids/order-processor")
        .await
        .expect_error(StatusCode::CONFLICT, "still_referenced");
    assert!(message.contains("statestore"), "{message}");
    app.get("/api/v1/projects/demo/appids/order-processor").await.expect(StatusCode::OK);
    app.put_yaml("/api/v1/projects/demo/components/statestore", crate::fixtures::STATESTORE)
        .await
        .expect(StatusCode::OK);
    app.delete("/api/v1/projects/demo/appids/order-processor").await.expect(StatusCode::NO_CONTENT);
}
