//! `/api/v1/projects/{project}/configuration-items`: the managed configuration store's items, written with a
//! version per key, listed in pages, kept per project, and announced to workers on every change.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::both_engines;
use crate::harness::TestApp;

both_engines!(
    configuration_items_are_versioned_listed_and_announced,
    configuration_items_are_checked_and_kept_per_project
);

async fn put(app: &TestApp, path: &str, body: serde_json::Value) -> crate::harness::Answer {
    app.call(Method::PUT, path, Some(("application/json", body.to_string().into_bytes()))).await
}

async fn configuration_items_are_versioned_listed_and_announced(app: TestApp) {
    app.project("shop").await;
    app.changes.take();
    let base = "/api/v1/projects/shop/configuration-items";
    let created = put(&app, &format!("{base}/color"), json!({"value": "blue", "metadata": {"owner": "team-a"}})).await;
    let created = created.expect(StatusCode::CREATED).json();
    assert_eq!(
        (created["key"].clone(), created["value"].clone(), created["version"].clone()),
        (json!("color"), json!("blue"), json!("1"))
    );
    assert_eq!(created["metadata"], json!({"owner": "team-a"}));
    let replaced = put(&app, &format!("{base}/color"), json!({"value": "green"})).await.expect(StatusCode::OK).json();
    assert_eq!((replaced["version"].clone(), replaced.get("metadata")), (json!("2"), None));
    assert_eq!(app.changes.take().len(), 2, "every write is announced to the workers");

    for key in ["a", "b", "c"] {
        put(&app, &format!("{base}/{key}"), json!({"value": key})).await.expect(StatusCode::CREATED);
    }
    let page = app.get(&format!("{base}?limit=3")).await.expect(StatusCode::OK).json();
    let keys: Vec<_> = page["items"].as_array().unwrap().iter().map(|item| item["key"].clone()).collect();
    assert_eq!(keys, [json!("a"), json!("b"), json!("c")]);
    let token = page["continuationToken"].as_str().unwrap();
    let rest = app.get(&format!("{base}?limit=3&continuationToken={token}")).await.expect(StatusCode::OK).json();
    assert_eq!(rest["items"][0]["key"], "color");

    assert_eq!(app.get(&format!("{base}/color")).await.expect(StatusCode::OK).json()["value"], "green");
    app.changes.take();
    app.delete(&format!("{base}/color")).await.expect(StatusCode::NO_CONTENT);
    assert_eq!(app.changes.take().len(), 1);
    app.get(&format!("{base}/color")).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.delete(&format!("{base}/color")).await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

async fn configuration_items_are_checked_and_kept_per_project(app: TestApp) {
    app.project("shop").await;
    app.project("rival").await;
    put(&app, "/api/v1/projects/shop/configuration-items/color", json!({"value": "blue"}))
        .await
        .expect(StatusCode::CREATED);
    app.get("/api/v1/projects/rival/configuration-items/color").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    let listed = app.get("/api/v1/projects/rival/configuration-items").await.expect(StatusCode::OK).json();
    assert_eq!(listed["items"], json!([]));

    let empty = put(&app, "/api/v1/projects/shop/configuration-items/color", json!({"value": ""})).await;
    empty.expect_error(StatusCode::BAD_REQUEST, "invalid_value");
    let long = "k".repeat(513);
    put(&app, &format!("/api/v1/projects/shop/configuration-items/{long}"), json!({"value": "x"}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_key");
    let unknown_field =
        put(&app, "/api/v1/projects/shop/configuration-items/color", json!({"value": "x", "ttl": 5})).await;
    assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);
    put(&app, "/api/v1/projects/nowhere/configuration-items/color", json!({"value": "x"}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    // Nothing refused changed the item.
    let item = app.get("/api/v1/projects/shop/configuration-items/color").await.expect(StatusCode::OK).json();
    assert_eq!((item["value"].clone(), item["version"].clone()), (json!("blue"), json!("1")));
    // Deleting the project deletes its items.
    app.delete("/api/v1/projects/shop").await.expect(StatusCode::NO_CONTENT);
    app.project("shop").await;
    app.get("/api/v1/projects/shop/configuration-items/color").await.expect_error(StatusCode::NOT_FOUND, "not_found");
}
