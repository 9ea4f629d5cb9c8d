//! Organizations own projects: names are unique within one, and nothing of another organization can be read,
//! changed, listed or even detected — through a session, an API key or the organization header.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::both_engines;
use crate::harness::TestApp;

both_engines!(
    security_organizations_keep_their_projects_apart,
    security_an_api_key_works_in_its_own_organization_only,
    organization_quotas_bound_projects_and_app_ids,
    an_organization_is_removed_only_when_empty,
);

async fn security_organizations_keep_their_projects_apart(app: TestApp) {
    app.org("acme").await;
    app.org("globex").await;
    app.member("acme", "ann@acme.test", "admin", None).await;
    app.member("globex", "bob@globex.test", "admin", None).await;
    let ann = app.access_token("ann@acme.test", "acme").await;
    let bob = app.access_token("bob@globex.test", "globex").await;

    // The same project name in two organizations: two projects.
    app.post_as(&ann, "/api/v1/projects", json!({"name": "shop"})).await.expect(StatusCode::CREATED);
    app.post_as(&bob, "/api/v1/projects", json!({"name": "shop"})).await.expect(StatusCode::CREATED);
    app.post_as(&bob, "/api/v1/projects", json!({"name": "secret-plans"})).await.expect(StatusCode::CREATED);
    app.post_as(&ann, "/api/v1/projects/shop/appids", json!({"name": "web"})).await.expect(StatusCode::CREATED);
    let listed = app.get_as(&ann, "/api/v1/projects").await.expect(StatusCode::OK).json();
    let names: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["shop"], "{listed}");
    let bobs_apps = app.get_as(&bob, "/api/v1/projects/shop/appids").await.expect(StatusCode::OK).json();
    assert_eq!(bobs_apps["items"], json!([]), "globex's shop is not acme's");

    // Another organization's project answers exactly as one that does not exist.
    let absent =
        app.get_as(&ann, "/api/v1/projects/no-such-project").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    let theirs =
        app.get_as(&ann, "/api/v1/projects/secret-plans").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(theirs, absent.replace("no-such-project", "secret-plans"));
    // Naming the other organization does not help, and is answered like an organization that does not exist.
    for (method, path) in [
        (Method::GET, "/api/v1/projects/secret-plans"),
        (Method::GET, "/api/v1/projects"),
        (Method::DELETE, "/api/v1/projects/shop"),
        (Method::GET, "/api/v1/auth/whoami"),
    ] {
        let other = app.call_as(&ann, Some("globex"), method.clone(), path, None).await;
        let nowhere = app.call_as(&ann, Some("initech"), method, path, None).await;
        let other = other.expect_error(StatusCode::NOT_FOUND, "not_found");
        assert_eq!(
            other,
            nowhere.expect_error(StatusCode::NOT_FOUND, "not_found").replace("initech", "globex"),
            "{path}"
        );
    }
    for path in [
        "/api/v1/orgs/globex",
        "/api/v1/orgs/globex/members",
        "/api/v1/orgs/globex/audit",
        "/api/v1/orgs/globex/apikeys",
    ] {
        let other = app.get_as(&ann, path).await.expect_error(StatusCode::NOT_FOUND, "not_found");
        let nowhere =
            app.get_as(&ann, &path.replace("globex", "initech")).await.expect_error(StatusCode::NOT_FOUND, "not_found");
        assert_eq!(other, nowhere.replace("initech", "globex"), "{path}");
    }
    // Her organization list names hers only; the operator sees all three (and `default`).
    let orgs = app.get_as(&ann, "/api/v1/orgs").await.expect(StatusCode::OK).json();
    assert_eq!(orgs["items"].as_array().unwrap().len(), 1, "{orgs}");
    let all = app.get("/api/v1/orgs").await.expect(StatusCode::OK).json();
    let names: Vec<&str> = all["items"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme", "default", "globex"]);
    // The operator token works in the organization the header names, and in `default` without one.
    app.operator_in("acme", Method::GET, "/api/v1/projects/shop", None).await.expect(StatusCode::OK);
    app.get("/api/v1/projects/shop").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    // Deleting globex's shop leaves acme's.
    app.call_as(&bob, None, Method::DELETE, "/api/v1/projects/shop", None).await.expect(StatusCode::NO_CONTENT);
    app.get_as(&ann, "/api/v1/projects/shop/appids/web").await.expect(StatusCode::OK);
}

async fn security_an_api_key_works_in_its_own_organization_only(app: TestApp) {
    app.org("acme").await;
    app.org("globex").await;
    app.member("acme", "ann@acme.test", "admin", None).await;
    app.member("globex", "ann@acme.test", "viewer", None).await;
    let ann = app.access_token("ann@acme.test", "acme").await;
    let key =
        app.post_as(&ann, "/api/v1/orgs/acme/apikeys", json!({"name": "ci"})).await.expect(StatusCode::CREATED).json();
    let key = key["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("ork_"), "{key}");
    let who = app.get_as(&key, "/api/v1/auth/whoami").await.expect(StatusCode::OK).json();
    assert_eq!(
        (who["email"].as_str(), who["organization"].as_str(), who["role"].as_str()),
        (Some("ann@acme.test"), Some("acme"), Some("admin"))
    );
    // Ann is a member of globex too, but the key is acme's.
    app.call_as(&key, Some("globex"), Method::GET, "/api/v1/projects", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get_as(&key, "/api/v1/orgs/globex").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    let orgs = app.get_as(&key, "/api/v1/orgs").await.expect(StatusCode::OK).json();
    assert_eq!(orgs["items"].as_array().unwrap().len(), 1, "{orgs}");
    // Her session may switch organization; there she is a viewer.
    let who =
        app.call_as(&ann, Some("globex"), Method::GET, "/api/v1/auth/whoami", None).await.expect(StatusCode::OK).json();
    assert_eq!(who["role"], "viewer");
}

async fn organization_quotas_bound_projects_and_app_ids(app: TestApp) {
    app.org("acme").await;
    app.member("acme", "ann@acme.test", "admin", None).await;
    let ann = app.access_token("ann@acme.test", "acme").await;
    // Only the operator sets an organization's quotas.
    let body = json!({"projects": 1, "appIds": 2, "requestsPerSecond": 5});
    let refused = app.call_as(&ann, None, Method::PUT, "/api/v1/orgs/acme/quotas", Some(body.clone())).await;
    refused.expect_error(StatusCode::FORBIDDEN, "forbidden");
    app.call(Method::PUT, "/api/v1/orgs/acme/quotas", Some(("application/json", body.to_string().into_bytes())))
        .await
        .expect(StatusCode::OK);
    let read = app.get_as(&ann, "/api/v1/orgs/acme/quotas").await.expect(StatusCode::OK).json();
    assert_eq!(read, body);
    app.post_as(&ann, "/api/v1/projects", json!({"name": "one"})).await.expect(StatusCode::CREATED);
    let message = app
        .post_as(&ann, "/api/v1/projects", json!({"name": "two"}))
        .await
        .expect_error(StatusCode::CONFLICT, "quota_exceeded");
    assert!(message.contains("may have 1 projects"), "{message}");
    for name in ["a", "b"] {
        app.post_as(&ann, "/api/v1/projects/one/appids", json!({"name": name})).await.expect(StatusCode::CREATED);
    }
    let message = app
        .post_as(&ann, "/api/v1/projects/one/appids", json!({"name": "c"}))
        .await
        .expect_error(StatusCode::CONFLICT, "quota_exceeded");
    assert!(message.contains("2 App IDs"), "{message}");
    // Other organizations are not bound by acme's quotas.
    app.project("free").await;
    app.project("free-too").await;
}

async fn an_organization_is_removed_only_when_empty(app: TestApp) {
    app.org("acme").await;
    app.member("acme", "ann@acme.test", "admin", None).await;
    let token = app.access_token("ann@acme.test", "acme").await;
    app.post_as(&token, "/api/v1/projects", json!({"name": "shop"})).await.expect(StatusCode::CREATED);
    app.delete("/api/v1/orgs/acme").await.expect_error(StatusCode::CONFLICT, "organization_not_empty");
    app.delete("/api/v1/orgs/default").await.expect_error(StatusCode::CONFLICT, "default_organization");
    app.call_as(&token, None, Method::DELETE, "/api/v1/orgs/acme", None)
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    app.call_as(&token, None, Method::DELETE, "/api/v1/projects/shop", None).await.expect(StatusCode::NO_CONTENT);
    app.delete("/api/v1/orgs/acme").await.expect(StatusCode::NO_CONTENT);
    // Her session belonged to acme; it ended with it.
    app.get_as(&token, "/api/v1/auth/whoami").await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // The name is free again.
    app.org("acme").await;
}
