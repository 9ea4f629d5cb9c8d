//! The audit trail: every change, by whom, from where, what it was before and after (secrets withheld), kept
//! per organization and readable by its admins only.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::both_engines;
use crate::harness::TestApp;

both_engines!(changes_are_recorded_with_who_what_and_before_after);

async fn changes_are_recorded_with_who_what_and_before_after(app: TestApp) {
    app.org("acme").await;
    app.org("globex").await;
    app.member("acme", "ann@acme.test", "admin", None).await;
    app.member("acme", "vic@acme.test", "viewer", None).await;
    app.member("globex", "bob@globex.test", "admin", None).await;
    let ann = app.access_token("ann@acme.test", "acme").await;
    let bob = app.access_token("bob@globex.test", "globex").await;
    app.post_as(&ann, "/api/v1/projects", json!({"name": "shop"})).await.expect(StatusCode::CREATED);
    let component = |password: &str| {
        json!({"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": "cache"},
        "spec": {"type": "state.redis", "version": "v1", "metadata": [
            {"name": "redisHost", "value": "127.0.0.1:6379"}, {"name": "redisPassword", "value": password}]}})
    };
    app.call_as(&ann, None, Method::PUT, "/api/v1/projects/shop/components/cache", Some(component("first-secret")))
        .await
        .expect(StatusCode::CREATED);
    app.call_as(&ann, None, Method::PUT, "/api/v1/projects/shop/components/cache", Some(component("second-secret")))
        .await
        .expect(StatusCode::OK);
    // A refused change is not a change.
    app.post_as(&ann, "/api/v1/projects", json!({"name": "Not A Name"})).await.expect(StatusCode::BAD_REQUEST);
    app.post_as(&bob, "/api/v1/projects", json!({"name": "elsewhere"})).await.expect(StatusCode::CREATED);

    let trail = app.get_as(&ann, "/api/v1/orgs/acme/audit").await.expect(StatusCode::OK);
    let text = String::from_utf8_lossy(&trail.body).to_string();
    assert!(!text.contains("first-secret") && !text.contains("second-secret") && !text.contains("elsewhere"), "{text}");
    let trail = trail.json();
    let events = trail["items"].as_array().unwrap();
    let actions: Vec<&str> = events.iter().map(|event| event["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["resource.put", "resource.put", "project.create", "member.add", "member.add", "organization.create"],
        "newest first: {trail}"
    );
    let update = &events[0];
    assert_eq!(
        (update["actor"]["display"].as_str(), update["actor"]["kind"].as_str()),
        (Some("ann@acme.test"), Some("user"))
    );
    assert_eq!(
        (update["project"].as_str(), update["target"].as_str()),
        (Some("shop"), Some("/api/v1/projects/shop/components/cache"))
    );
    assert_eq!(update["status"], 200);
    assert!(
        update["before"]["Component/cache"].is_object() && update["after"]["Component/cache"].is_object(),
        "{update}"
    );
    assert!(
        events[1]["before"].is_null() && events[1]["after"]["Component/cache"]["spec"]["type"] == "state.redis",
        "{}",
        events[1]
    );
    assert_eq!(events[4]["actor"]["kind"], "operator");
    assert_eq!(events[5]["after"]["name"], "acme");

    // Filters and pages.
    let puts =
        app.get_as(&ann, "/api/v1/orgs/acme/audit?action=resource.put&limit=1").await.expect(StatusCode::OK).json();
    assert_eq!(puts["items"].as_array().unwrap().len(), 1);
    let token = puts["continuationToken"].as_str().unwrap();
    let next = app
        .get_as(&ann, &format!("/api/v1/orgs/acme/audit?action=resource.put&limit=1&continuationToken={token}"))
        .await
        .json();
    assert_eq!(next["items"][0]["id"], events[1]["id"]);
    let ann_id = update["actor"]["id"].as_str().unwrap();
    let by_ann = app.get_as(&ann, &format!("/api/v1/orgs/acme/audit?actor={ann_id}")).await.json();
    assert_eq!(by_ann["items"].as_array().unwrap().len(), 3);
    let in_shop = app.get_as(&ann, "/api/v1/orgs/acme/audit?project=shop").await.json();
    let actions: Vec<&str> =
        in_shop["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["resource.put", "resource.put", "project.create"], "a project's creation is filed under it");
    let by_operator = app.get_as(&ann, "/api/v1/orgs/acme/audit?actor=operator").await.json();
    assert_eq!(by_operator["items"].as_array().unwrap().len(), 3);

    // Admins only; another organization's admin finds no such organization.
    let viewer = app.access_token("vic@acme.test", "acme").await;
    app.get_as(&viewer, "/api/v1/orgs/acme/audit").await.expect_error(StatusCode::FORBIDDEN, "forbidden");
    app.get_as(&bob, "/api/v1/orgs/acme/audit").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    let globex = app.get_as(&bob, "/api/v1/orgs/globex/audit").await.json();
    assert_eq!(globex["items"].as_array().unwrap().len(), 3, "{globex}");

    // Past the retention, events go (the control API removes them after a write, at most hourly).
    let mut tx = app.store.begin().await.unwrap();
    assert_eq!(tx.expire_audit(outrigger_store::now_millis() + 1).await.unwrap(), 9);
    tx.commit().await.unwrap();
    let trail = app.get_as(&ann, "/api/v1/orgs/acme/audit").await.json();
    assert_eq!(trail["items"], serde_json::json!([]));
}

#[tokio::test]
async fn a_change_whose_event_cannot_be_recorded_is_not_made() {
    // The event is written in the change's own transaction: when it cannot be, the change rolls back and the
    // caller is told, rather than a change landing with no record of who made it.
    let app = TestApp::sqlite().await;
    app.project("shop").await;
    let database = format!("sqlite://{}", app.dir.path().join("control.db").display());
    let side = sqlx::SqlitePool::connect(&database).await.unwrap();
    let refuse = "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'refused'); END";
    sqlx::query(refuse).execute(&side).await.unwrap();
    app.post_json("/api/v1/projects", json!({"name": "unrecorded"})).await.expect(StatusCode::INTERNAL_SERVER_ERROR);
    app.get("/api/v1/projects/unrecorded").await.expect(StatusCode::NOT_FOUND);
    let component = json!({"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": "cache"},
        "spec": {"type": "state.redis", "version": "v1", "metadata": [{"name": "redisHost", "value": "127.0.0.1:6379"}]}});
    app.call(
        Method::PUT,
        "/api/v1/projects/shop/components/cache",
        Some(("application/json", component.to_string().into_bytes())),
    )
    .await
    .expect(StatusCode::INTERNAL_SERVER_ERROR);
    app.get("/api/v1/projects/shop/components/cache").await.expect(StatusCode::NOT_FOUND);

    sqlx::query("DROP TRIGGER refuse_audit").execute(&side).await.unwrap();
    side.close().await;
    app.post_json("/api/v1/projects", json!({"name": "recorded"})).await.expect(StatusCode::CREATED);
    let trail = app.get("/api/v1/orgs/default/audit").await.expect(StatusCode::OK).json();
    let created: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["action"] == "project.create")
        .map(|event| event["project"].as_str().unwrap())
        .collect();
    assert_eq!(created, ["recorded", "shop"], "{trail}");
    app.finish().await;
}
