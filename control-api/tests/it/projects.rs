use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::both_engines;
use crate::harness::{TestApp, ADMIN_TOKEN, MAX_BODY_BYTES};

both_engines!(
    project_lifecycle,
    project_names_are_dns_labels,
    project_without_managed_components,
    bad_bodies_are_answered_in_the_error_format,
    operator_token_is_required,
);

async fn project_lifecycle(app: TestApp) {
    let created = app.post_json("/api/v1/projects", json!({ "name": "demo" })).await.expect(StatusCode::CREATED).json();
    assert_eq!(created["name"], "demo");
    assert_eq!(created["httpEndpoint"], "http://127.0.0.1:3500");
    assert_eq!(created["grpcEndpoint"], "http://127.0.0.1:50001");
    assert_eq!(
        created["managedComponents"],
        json!([
            { "name": "configstore", "type": "configuration.outrigger" },
            { "name": "kvstore", "type": "state.outrigger" },
            { "name": "pubsub", "type": "pubsub.outrigger" },
        ])
    );
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(created["filesDir"].as_str().is_some_and(|dir| dir.starts_with("projects/prj_")), "{created}");
    assert_eq!(created["pool"], "default");
    let dedicated = app
        .post_json("/api/v1/projects", json!({ "name": "big", "pool": "big-tenants" }))
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(dedicated["pool"], "big-tenants");
    app.post_json("/api/v1/projects", json!({ "name": "odd", "pool": "No Such" }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_pool");
    app.delete("/api/v1/projects/big").await.expect(StatusCode::NO_CONTENT);

    let message = app
        .post_json("/api/v1/projects", json!({ "name": "demo" }))
        .await
        .expect_error(StatusCode::CONFLICT, "already_exists");
    assert!(message.contains("demo"), "{message}");

    app.project("other").await;
    let list = app.get("/api/v1/projects").await.expect(StatusCode::OK).json();
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["demo", "other"]);
    assert_eq!(app.get("/api/v1/projects/demo").await.expect(StatusCode::OK).json(), created);

    app.app_id("demo", "orders").await;
    app.put_yaml("/api/v1/projects/demo/components/statestore", crate::fixtures::STATESTORE)
        .await
        .expect(StatusCode::CREATED);
    app.delete("/api/v1/projects/demo").await.expect(StatusCode::NO_CONTENT);
    app.get("/api/v1/projects/demo").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/projects/demo/appids").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.delete("/api/v1/projects/demo").await.expect_error(StatusCode::NOT_FOUND, "not_found");

    // Everything under the project went with it: a new project of the same name starts empty.
    app.project("demo").await;
    assert_eq!(app.get("/api/v1/projects/demo/appids").await.expect(StatusCode::OK).json()["items"], json!([]));
    assert_eq!(app.get("/api/v1/projects/demo/components").await.expect(StatusCode::OK).json()["items"], json!([]));
}

async fn project_names_are_dns_labels(app: TestApp) {
    let too_long = "a".repeat(64);
    for name in ["Demo", "-demo", "demo-", "de_mo", "", "de.mo", too_long.as_str(), "démo"] {
        app.post_json("/api/v1/projects", json!({ "name": name }))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_name");
    }
    let longest = "a".repeat(63);
    for name in ["a", "demo-2", "0abc", longest.as_str()] {
        app.post_json("/api/v1/projects", json!({ "name": name })).await.expect(StatusCode::CREATED);
    }
    assert_eq!(app.get("/api/v1/projects").await.json()["items"].as_array().unwrap().len(), 4);
}

async fn project_without_managed_components(app: TestApp) {
    let created = app
        .post_json("/api/v1/projects", json!({ "name": "bare", "managedKvstore": false, "managedPubsub": false }))
        .await
        .expect(StatusCode::CREATED)
        .json();
    // Every project has its managed configuration store; it holds nothing until an operator sets items.
    assert_eq!(created["managedComponents"], json!([{ "name": "configstore", "type": "configuration.outrigger" }]));
    let only_pubsub = app
        .post_json("/api/v1/projects", json!({ "name": "half", "managedKvstore": false }))
        .await
        .expect(StatusCode::CREATED)
        .json();
    let expected = json!([
        { "name": "configstore", "type": "configuration.outrigger" },
        { "name": "pubsub", "type": "pubsub.outrigger" },
    ]);
    assert_eq!(only_pubsub["managedComponents"], expected);
    // Without a managed kvstore the name is free for the project's own component.
    app.put_yaml(
        "/api/v1/projects/bare/components/kvstore",
        &crate::fixtures::STATESTORE.replace("statestore", "kvstore"),
    )
    .await
    .expect(StatusCode::CREATED);
    app.put_yaml(
        "/api/v1/projects/half/components/pubsub",
        &crate::fixtures::STATESTORE.replace("statestore", "pubsub"),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "reserved_name");
}

async fn bad_bodies_are_answered_in_the_error_format(app: TestApp) {
    let malformed = app
        .call(axum::http::Method::POST, "/api/v1/projects", Some(("application/json", b"{\"name\":".to_vec())))
        .await;
    malformed.expect_error(StatusCode::BAD_REQUEST, "malformed_json");
    app.post_json("/api/v1/projects", json!({ "name": 5 }))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    app.post_json("/api/v1/projects", json!({ "name": "x", "colour": "red" }))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    let huge = json!({ "name": "x".repeat(MAX_BODY_BYTES + 1) });
    app.post_json("/api/v1/projects", huge).await.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    app.get("/api/v1/nothing-here").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    // None of that created anything.
    assert_eq!(app.get("/api/v1/projects").await.json()["items"], json!([]));
}

async fn operator_token_is_required(app: TestApp) {
    let attempts = [None, Some("Bearer wrong-token-wrong-token"), Some("Basic dXNlcjpwYXNz"), Some(ADMIN_TOKEN)];
    for authorization in attempts {
        let mut request = Request::post("/api/v1/projects").header("content-type", "application/json");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let answer = app.send(request.body(Body::from(r#"{"name":"sneaky"}"#)).unwrap()).await;
        answer.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let answer = app.send(Request::get("/api/v1/projects").body(Body::empty()).unwrap()).await;
    answer.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(app.get("/api/v1/projects").await.json()["items"], json!([]));
}
