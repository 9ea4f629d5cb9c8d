//! Project quotas: set per project, falling back to the installation's defaults, and enforced on every change
//! of App IDs and components (routes and apply alike), refusing only growth past them.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_engines;
use crate::fixtures::STATESTORE;
use crate::harness::TestApp;

both_engines!(quotas_default_to_the_installation_s_and_are_set_per_project, counts_past_a_quota_are_refused);

async fn put_quotas(app: &TestApp, project: &str, body: Value) -> Value {
    let path = format!("/api/v1/projects/{project}/quotas");
    app.call(Method::PUT, &path, Some(("application/json", body.to_string().into_bytes())))
        .await
        .expect(StatusCode::OK)
        .json()
}

async fn quotas_default_to_the_installation_s_and_are_set_per_project(app: TestApp) {
    app.project("shop").await;
    app.project("other").await;
    // The harness's installation allows 50 App IDs per project and sets no other quota.
    let quotas = app.get("/api/v1/projects/shop/quotas").await.expect(StatusCode::OK).json();
    assert_eq!(quotas, json!({"set": {}, "effective": {"appIds": 50}}));

    let set = put_quotas(&app, "shop", json!({"requestsPerSecond": 5, "components": 0})).await;
    assert_eq!(
        set,
        json!({"set": {"requestsPerSecond": 5, "components": 0}, "effective": {"requestsPerSecond": 5, "appIds": 50, "components": 0}})
    );
    assert_eq!(app.get("/api/v1/projects/shop/quotas").await.expect(StatusCode::OK).json(), set);
    assert_eq!(app.get("/api/v1/projects/other/quotas").await.expect(StatusCode::OK).json()["set"], json!({}));
    let reset = put_quotas(&app, "shop", json!({})).await;
    assert_eq!(reset["set"], json!({}), "absent quotas go back to the default");

    let path = "/api/v1/projects/shop/quotas";
    let negative = app.call(Method::PUT, path, Some(("application/json", br#"{"appIds": -1}"#.to_vec()))).await;
    assert_eq!(negative.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = app.call(Method::PUT, path, Some(("application/json", br#"{"apps": 1}"#.to_vec()))).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    for refused in [r#"{"appIds": 1.5}"#, r#"{"appIds": 1000000001}"#, r#"{"appIds": "3"}"#] {
        let answer = app.call(Method::PUT, path, Some(("application/json", refused.as_bytes().to_vec()))).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    }
    let whole = put_quotas(&app, "shop", json!({"appIds": 7.0, "components": null})).await;
    assert_eq!(whole["set"], json!({"appIds": 7}), "JSON's 7.0 is the whole number 7");
    // Stored bytes go far past the counts' bound, to a pebibyte.
    let bytes = put_quotas(&app, "shop", json!({"storedBytes": 5_000_000_000_u64})).await;
    assert_eq!(bytes["set"], json!({"storedBytes": 5_000_000_000_u64}));
    assert_eq!(app.get(path).await.expect(StatusCode::OK).json()["effective"]["storedBytes"], 5_000_000_000_u64);
    for refused in [r#"{"storedBytes": 1125899906842625}"#, r#"{"storedBytes": -1}"#, r#"{"storedBytes": 0.5}"#] {
        let answer = app.call(Method::PUT, path, Some(("application/json", refused.as_bytes().to_vec()))).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    }
    app.call(Method::PUT, "/api/v1/projects/nope/quotas", Some(("application/json", b"{}".to_vec())))
        .await
        .expect(StatusCode::NOT_FOUND);
}

async fn counts_past_a_quota_are_refused(app: TestApp) {
    app.project("shop").await;
    put_quotas(&app, "shop", json!({"appIds": 2, "components": 1})).await;
    app.app_id("shop", "orders").await;
    app.app_id("shop", "billing").await;
    let refused = app.post_json("/api/v1/projects/shop/appids", json!({"name": "shipping"})).await;
    let message = refused.expect_error(StatusCode::CONFLICT, "quota_exceeded");
    assert!(message.contains("may have 2 App IDs") && message.contains("/quotas"), "{message}");
    let applied = app
        .apply("shop", "", "apiVersion: outrigger.io/v1alpha1\nkind: AppIdentity\nmetadata:\n  name: shipping\n")
        .await;
    applied.expect_error(StatusCode::CONFLICT, "quota_exceeded");
    assert_eq!(app.get("/api/v1/projects/shop/appids").await.json()["items"].as_array().unwrap().len(), 2);

    app.put_yaml("/api/v1/projects/shop/components/statestore", STATESTORE).await.expect(StatusCode::CREATED);
    app.put_yaml("/api/v1/projects/shop/components/statestore", STATESTORE).await.expect(StatusCode::OK);
    let second = STATESTORE.replace("name: statestore", "name: second");
    app.put_yaml("/api/v1/projects/shop/components/second", &second)
        .await
        .expect_error(StatusCode::CONFLICT, "quota_exceeded");

    // Lowering a quota removes nothing; changes that do not grow the project still go through.
    put_quotas(&app, "shop", json!({"appIds": 1})).await;
    app.patch_json("/api/v1/projects/shop/appids/orders", json!({"appEndpoint": "http://127.0.0.1:6001"}))
        .await
        .expect(StatusCode::OK);
    app.delete("/api/v1/projects/shop/appids/billing").await.expect(StatusCode::NO_CONTENT);
    put_quotas(&app, "shop", json!({"appIds": 0})).await;
    app.app_id("shop", "shipping").await;
}
