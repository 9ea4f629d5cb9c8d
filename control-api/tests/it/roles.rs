//! Every route against every role: what the OpenAPI document says a route requires is what the server lets
//! each role do. A role below a route's rule is refused with 403 (the caller sees the project or organization);
//! one the route allows gets past authorization (whatever the handler then answers).

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::TestApp;

/// The fixtures' values for each path parameter.
fn fill(path: &str, ids: &Ids) -> String {
    path.replace("{org}", "acme")
        .replace("{project}", "shop")
        .replace("{app}", "web")
        .replace("{kind}", "components")
        .replace("{name}", "statestore")
        .replace("{token_id}", &ids.token)
        .replace("{member}", &ids.member)
        .replace("{key_id}", &ids.key)
        .replace("{instance}", "wf-1")
        .replace("{event}", "go")
        .replace("{key}", "greeting")
        .replace("{job}", "nightly")
}

struct Ids {
    token: String,
    member: String,
    key: String,
}

const ROLES: [&str; 4] = ["viewer", "developer", "operator", "admin"];

/// The lowest of [`ROLES`] a requirement admits (by its wording in the document), for a role held on the whole
/// organization or only on the project the paths name; `None`: no role does.
fn lowest_allowed(required: &str, on_project: bool) -> Option<usize> {
    if required.starts_with("the installation's operator token") {
        return None;
    }
    if required.starts_with("any") {
        return Some(0);
    }
    if on_project && required.ends_with("on the organization") {
        return None;
    }
    ROLES.iter().position(|role| required.starts_with(role))
}

#[tokio::test]
async fn security_every_route_admits_exactly_the_roles_its_rule_names() {
    every_route_against_each_role(false).await;
}

#[tokio::test]
async fn security_every_route_admits_exactly_the_roles_held_on_its_project() {
    every_route_against_each_role(true).await;
}

/// Tries every route with a user of each role, held on the organization or (`on_project`) on the project only.
async fn every_route_against_each_role(on_project: bool) {
    let app = TestApp::sqlite().await;
    app.org("acme").await;
    // The fixtures every path names: made by an admin of the organization.
    app.member("acme", "owner@acme.test", "admin", None).await;
    let admin = app.access_token("owner@acme.test", "acme").await;
    app.post_as(&admin, "/api/v1/projects", json!({"name": "shop"})).await.expect(StatusCode::CREATED);
    let mut tokens = Vec::new();
    for role in ROLES {
        let email = format!("{role}@acme.test");
        app.member("acme", &email, role, on_project.then_some("shop")).await;
        tokens.push(app.access_token(&email, "acme").await);
    }
    app.post_as(&admin, "/api/v1/projects/shop/appids", json!({"name": "web"})).await.expect(StatusCode::CREATED);
    let token = app
        .post_as(&admin, "/api/v1/projects/shop/appids/web/tokens", json!({}))
        .await
        .expect(StatusCode::CREATED)
        .json();
    let key = app
        .post_as(&admin, "/api/v1/orgs/acme/apikeys", json!({"name": "fixture"}))
        .await
        .expect(StatusCode::CREATED)
        .json();
    let member = app.member("acme", "someone@acme.test", "viewer", None).await;
    let ids =
        Ids { token: token["id"].as_str().unwrap().to_owned(), member, key: key["id"].as_str().unwrap().to_owned() };

    let document = outrigger_control_api::openapi();
    let mut operations: Vec<(String, Method, String)> = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
            let required = operation["x-required-role"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} states no role"))
                .to_owned();
            operations.push((path.clone(), method, required));
        }
    }
    // Routes that remove what the others name go last.
    operations.sort_by_key(|(path, method, _)| {
        (*method == Method::DELETE
            && (path.ends_with("{project}") || path.ends_with("{org}") || path.ends_with("{member}"))) as u8
    });
    let mut checked = 0;
    for (path, method, required) in &operations {
        // Signing in needs no role; signing out would end the session the next routes are tried with (the
        // sessions tests cover it).
        if required.starts_with("none") || path.ends_with("/logout") {
            continue;
        }
        let url = fill(path, &ids);
        let body =
            matches!(*method, Method::POST | Method::PUT | Method::PATCH).then(|| Value::Object(Default::default()));
        let lowest = lowest_allowed(required, on_project);
        for (index, role) in ROLES.iter().enumerate() {
            let allowed = lowest.is_some_and(|lowest| index >= lowest);
            // A destructive route is run once, by the lowest role it admits; higher ones would find nothing.
            if allowed && lowest != Some(index) {
                continue;
            }
            let answer = app.call_as(&tokens[index], None, method.clone(), &url, body.clone()).await;
            let status = answer.status;
            if allowed {
                assert!(
                    ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&status),
                    "{role} may {method} {path} ({required}) but got {status}: {}",
                    String::from_utf8_lossy(&answer.body)
                );
            } else {
                let message = answer.expect_error(StatusCode::FORBIDDEN, "forbidden");
                assert!(!message.is_empty());
            }
            checked += 1;
        }
    }
    // 53 routes: each with every role it refuses and the lowest it admits.
    assert!(checked >= 95, "every route was tried ({checked})");
    app.finish().await;
}

#[tokio::test]
async fn security_a_role_on_one_project_reaches_that_project_only() {
    let app = TestApp::sqlite().await;
    app.org("acme").await;
    app.member("acme", "admin@acme.test", "admin", None).await;
    let admin = app.access_token("admin@acme.test", "acme").await;
    for name in ["shop", "billing"] {
        app.post_as(&admin, "/api/v1/projects", json!({"name": name})).await.expect(StatusCode::CREATED);
    }
    app.member("acme", "dev@acme.test", "developer", Some("shop")).await;
    let dev = app.access_token("dev@acme.test", "acme").await;
    app.post_as(&dev, "/api/v1/projects/shop/appids", json!({"name": "web"})).await.expect(StatusCode::CREATED);
    let listed = app.get_as(&dev, "/api/v1/projects").await.expect(StatusCode::OK).json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["name"], "shop");
    // The other project is out of sight; the organization-wide routes are above the role.
    app.get_as(&dev, "/api/v1/projects/billing").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.post_as(&dev, "/api/v1/projects", json!({"name": "mine"}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    app.call_as(&dev, None, Method::DELETE, "/api/v1/projects/shop", None)
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    app.get_as(&dev, "/api/v1/orgs/acme/members").await.expect_error(StatusCode::FORBIDDEN, "forbidden");
    let who = app.get_as(&dev, "/api/v1/auth/whoami").await.expect(StatusCode::OK).json();
    assert_eq!(who["projectRoles"], json!([{"project": "shop", "role": "developer"}]));
    assert!(who.get("role").is_none(), "{who}");
    // Removing the grant takes the project out of sight at once.
    let members = app.get_as(&admin, "/api/v1/orgs/acme/members").await.expect(StatusCode::OK).json();
    let id = members["items"].as_array().unwrap().iter().find(|m| m["email"] == "dev@acme.test").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.call_as(&admin, None, Method::DELETE, &format!("/api/v1/orgs/acme/members/{id}?project=shop"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get_as(&dev, "/api/v1/projects/shop").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.finish().await;
}

#[tokio::test]
async fn security_a_viewer_never_sees_token_values_or_withheld_secrets() {
    let app = TestApp::sqlite().await;
    app.org("acme").await;
    app.member("acme", "admin@acme.test", "admin", None).await;
    app.member("acme", "viewer@acme.test", "viewer", None).await;
    let admin = app.access_token("admin@acme.test", "acme").await;
    let viewer = app.access_token("viewer@acme.test", "acme").await;
    app.post_as(&admin, "/api/v1/projects", json!({"name": "shop"})).await.expect(StatusCode::CREATED);
    let created = app
        .post_as(&admin, "/api/v1/projects/shop/appids", json!({"name": "web"}))
        .await
        .expect(StatusCode::CREATED)
        .json();
    let api_token = created["apiToken"].as_str().unwrap().to_owned();
    let component = json!({"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": "cache"},
        "spec": {"type": "state.redis", "version": "v1", "metadata": [
            {"name": "redisHost", "value": "127.0.0.1:6379"}, {"name": "redisPassword", "value": "hunter2-very-secret"}]}});
    app.call_as(&admin, None, Method::PUT, "/api/v1/projects/shop/components/cache", Some(component))
        .await
        .expect(StatusCode::CREATED);
    let mut seen = String::new();
    for path in [
        "/api/v1/projects/shop",
        "/api/v1/projects/shop/appids",
        "/api/v1/projects/shop/appids/web",
        "/api/v1/projects/shop/appids/web/tokens",
        "/api/v1/projects/shop/components",
        "/api/v1/projects/shop/components/cache",
        "/api/v1/projects/shop/export",
    ] {
        seen.push_str(&String::from_utf8_lossy(&app.get_as(&viewer, path).await.expect(StatusCode::OK).body));
    }
    assert!(!seen.contains(&api_token) && !seen.contains("hunter2-very-secret"), "{seen}");
    app.post_as(&viewer, "/api/v1/projects/shop/appids/web/tokens", json!({}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    app.finish().await;
}
