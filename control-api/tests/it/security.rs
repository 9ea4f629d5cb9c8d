//! Security group: bounded listings and clean refusals. Every list of the control API pages (so no request
//! reads a whole table, however many tenants there are), bad query strings and path parameters answer the
//! documented JSON error instead of text, and an `appEndpoint` or `baseUrl` carrying credentials is refused
//! without storing or echoing them.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::both_engines;
use crate::harness::{Answer, TestApp, ADMIN_TOKEN};

both_engines!(
    security_project_listing_walks_every_project_exactly_once,
    security_every_project_list_pages,
    security_page_limits_and_tokens_are_checked,
    security_query_string_and_path_errors_answer_json,
    security_endpoint_credentials_are_refused_and_nothing_is_stored
);

/// Walks a listing with `limit`, asserting every page's size; the names in order and how many pages.
async fn walk(app: &TestApp, base: &str, limit: usize, name_of: fn(&Value) -> String) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut pages = 0;
    let mut url = format!("{base}?limit={limit}");
    loop {
        let page = app.get(&url).await.expect(StatusCode::OK).json();
        pages += 1;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= limit, "a page of {} items with limit {limit}", items.len());
        names.extend(items.iter().map(name_of));
        match page["continuationToken"].as_str() {
            Some(token) => {
                assert_eq!(items.len(), limit, "only the last page may be short");
                url = format!("{base}?limit={limit}&continuationToken={token}");
            }
            None => return (names, pages),
        }
        assert!(pages < 1000, "the listing does not end");
    }
}

/// A valid document of the kind `collection` holds.
fn document(collection: &str, name: &str) -> Value {
    let (api_version, kind, spec) = match collection {
        "components" => ("dapr.io/v1alpha1", "Component", json!({"type": "state.in-memory", "version": "v1"})),
        "subscriptions" => (
            "dapr.io/v2alpha1",
            "Subscription",
            json!({"pubsubname": "pubsub", "topic": "t", "routes": {"default": "/t"}}),
        ),
        "resiliencies" => ("dapr.io/v1alpha1", "Resiliency", json!({"policies": {}, "targets": {}})),
        "configurations" => ("dapr.io/v1alpha1", "Configuration", json!({})),
        _ => ("dapr.io/v1alpha1", "HTTPEndpoint", json!({"baseUrl": "https://api.example.com"})),
    };
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, "spec": spec})
}

fn name(item: &Value) -> String {
    item["name"].as_str().expect("name").to_owned()
}

fn metadata_name(item: &Value) -> String {
    item["metadata"]["name"].as_str().expect("metadata.name").to_owned()
}

fn id(item: &Value) -> String {
    item["id"].as_str().expect("id").to_owned()
}

async fn security_project_listing_walks_every_project_exactly_once(app: TestApp) {
    let mut expected: Vec<String> = (0..250).map(|n| format!("p{n:03}")).collect();
    for name in &expected {
        app.project(name).await;
    }
    let (names, pages) = walk(&app, "/api/v1/projects", 100, name).await;
    expected.sort();
    assert_eq!(pages, 3, "250 projects in pages of 100");
    assert_eq!(names, expected, "every project once, by name");

    // Without a limit a page holds the default 100; a project created behind the cursor is not seen twice.
    let first = app.get("/api/v1/projects").await.expect(StatusCode::OK).json();
    assert_eq!(first["items"].as_array().unwrap().len(), 100);
    let token = first["continuationToken"].as_str().expect("more pages").to_owned();
    app.project("a-created-meanwhile").await;
    let second = app.get(&format!("/api/v1/projects?continuationToken={token}")).await.expect(StatusCode::OK).json();
    let second: Vec<String> = second["items"].as_array().unwrap().iter().map(name).collect();
    assert_eq!(second, expected[100..200]);
}

async fn security_every_project_list_pages(app: TestApp) {
    app.project("paged").await;
    let apps: Vec<String> = (0..7).map(|n| format!("app{n}")).collect();
    for app_name in &apps {
        app.app_id("paged", app_name).await;
    }
    let first = app.get("/api/v1/projects/paged/appids/app0/tokens").await.expect(StatusCode::OK).json();
    let created_token = id(&first["items"][0]);
    assert_eq!(walk(&app, "/api/v1/projects/paged/appids", 3, name).await, (apps.clone(), 3));

    let mut tokens = vec![];
    for _ in 0..4 {
        let issued = app
            .post_json("/api/v1/projects/paged/appids/app0/tokens", json!({}))
            .await
            .expect(StatusCode::CREATED)
            .json();
        tokens.push(id(&issued));
    }
    let (mut listed, pages) = walk(&app, "/api/v1/projects/paged/appids/app0/tokens", 2, id).await;
    assert_eq!((listed.len(), pages), (5, 3), "the first token and four rotations: {listed:?}");
    // Oldest first, but rotations within one millisecond are ordered by id: compare as sets.
    listed.sort();
    listed.dedup();
    tokens.push(created_token);
    tokens.sort();
    assert_eq!(listed, tokens, "every token once");

    for collection in ["components", "subscriptions", "resiliencies", "configurations", "httpendpoints"] {
        let names: Vec<String> = (0..5).map(|n| format!("{}-{n}", &collection[..4])).collect();
        for name in &names {
            let path = format!("/api/v1/projects/paged/{collection}/{name}");
            let body = document(collection, name).to_string().into_bytes();
            app.call(Method::PUT, &path, Some(("application/json", body))).await.expect(StatusCode::CREATED);
        }
        let listed = walk(&app, &format!("/api/v1/projects/paged/{collection}"), 2, metadata_name).await;
        assert_eq!(listed, (names, 3), "{collection}");
    }
    // Export still holds everything, whatever the page size.
    let exported = app.export("paged").await;
    assert_eq!(exported.matches("kind: AppIdentity").count(), 7, "{exported}");
    assert_eq!(exported.matches("kind: Component").count(), 5, "{exported}");
}

/// Asserts a 400 in the API's JSON error format with `code`.
#[track_caller]
fn assert_json_error(answer: Answer, status: StatusCode, code: &str) {
    let content_type = answer.headers.get("content-type").and_then(|value| value.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "content type {content_type:?}: {}", answer.text());
    let message = answer.expect_error(status, code);
    assert!(!message.is_empty());
}

async fn security_page_limits_and_tokens_are_checked(app: TestApp) {
    app.project("limits").await;
    app.app_id("limits", "one").await;
    let lists = [
        "/api/v1/projects",
        "/api/v1/projects/limits/appids",
        "/api/v1/projects/limits/appids/one/tokens",
        "/api/v1/projects/limits/components",
        "/api/v1/projects/limits/workflows",
    ];
    for list in lists {
        for query in ["limit=0", "limit=1001", "limit=-1"] {
            assert_json_error(app.get(&format!("{list}?{query}")).await, StatusCode::BAD_REQUEST, "invalid_query");
        }
        let answer = app.get(&format!("{list}?continuationToken=not-one-of-ours")).await;
        assert_json_error(answer, StatusCode::BAD_REQUEST, "invalid_continuation_token");
        let page = app.get(&format!("{list}?limit=1000")).await.expect(StatusCode::OK).json();
        assert!(page["items"].is_array(), "{list}: {page}");
    }
}

async fn security_query_string_and_path_errors_answer_json(app: TestApp) {
    app.project("queries").await;
    app.app_id("queries", "one").await;
    for url in [
        "/api/v1/projects?limit=abc",
        "/api/v1/projects/queries/appids?limit=abc",
        "/api/v1/projects/queries/appids/one/tokens?limit=1e3",
        "/api/v1/projects/queries/components?limit=",
        "/api/v1/projects/queries/workflows?limit=abc",
        "/api/v1/projects/queries/workflows?createdFrom=yesterday",
        "/api/v1/projects/queries/workflows?unknown=1",
    ] {
        assert_json_error(app.get(url).await, StatusCode::BAD_REQUEST, "invalid_query");
    }
    let answer = app.delete("/api/v1/projects/queries/workflows/w1?force=perhaps").await;
    assert_json_error(answer, StatusCode::BAD_REQUEST, "invalid_query");
    let answer = app.apply("queries", "?dryRun=perhaps", "").await;
    assert_json_error(answer, StatusCode::BAD_REQUEST, "invalid_query");

    // A path segment that is not UTF-8 once decoded.
    for url in
        ["/api/v1/projects/%FF", "/api/v1/projects/queries/appids/%C3%28", "/api/v1/projects/queries/components/%FE"]
    {
        assert_json_error(app.get(url).await, StatusCode::BAD_REQUEST, "invalid_path");
    }
    // A name no project can have is refused as such rather than looked up.
    let long = "a".repeat(64);
    for url in ["/api/v1/projects/Upper".to_owned(), format!("/api/v1/projects/{long}/appids")] {
        assert_json_error(app.get(&url).await, StatusCode::BAD_REQUEST, "invalid_path");
    }

    // A method the route does not take.
    let answer = app.call(Method::PATCH, "/api/v1/projects", None).await;
    assert!(answer.headers.get("allow").is_some(), "405 lists the methods");
    assert_json_error(answer, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");

    // Malformed and mis-shaped JSON bodies keep answering JSON too.
    let request = Request::post("/api/v1/projects")
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    assert_json_error(app.send(request).await, StatusCode::BAD_REQUEST, "malformed_json");
    let answer = app.post_json("/api/v1/projects", json!({"name": 7})).await;
    assert_json_error(answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    // serde reads a struct from an array by position: `[null, null]` must not clear the first two fields.
    let patch = json!({"appEndpoint": "http://127.0.0.1:7000", "appToken": "kept-token"});
    app.patch_json("/api/v1/projects/queries/appids/one", patch).await.expect(StatusCode::OK);
    let answer = app.patch_json("/api/v1/projects/queries/appids/one", json!([null, null])).await;
    assert_json_error(answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    let kept = app.get("/api/v1/projects/queries/appids/one").await.expect(StatusCode::OK).json();
    assert_eq!((&kept["appEndpoint"], &kept["hasAppToken"]), (&json!("http://127.0.0.1:7000"), &json!(true)));
}

async fn security_endpoint_credentials_are_refused_and_nothing_is_stored(app: TestApp) {
    app.project("creds").await;
    let secret = "s3cretpassw0rd";
    let endpoint = format!("http://admin:{secret}@127.0.0.1:9000");
    let answer =
        app.post_json("/api/v1/projects/creds/appids", json!({"name": "leaky", "appEndpoint": endpoint})).await;
    assert!(!answer.text().contains(secret), "the password is echoed: {}", answer.text());
    let message = answer.expect_error(StatusCode::BAD_REQUEST, "invalid_app_id");
    assert!(message.contains("appEndpoint"), "{message}");
    app.get("/api/v1/projects/creds/appids/leaky").await.expect_error(StatusCode::NOT_FOUND, "not_found");

    app.app_id("creds", "kept").await;
    let answer = app.patch_json("/api/v1/projects/creds/appids/kept", json!({"appEndpoint": endpoint})).await;
    assert!(!answer.text().contains(secret), "{}", answer.text());
    answer.expect_error(StatusCode::BAD_REQUEST, "invalid_app_id");
    let user_only =
        app.patch_json("/api/v1/projects/creds/appids/kept", json!({"appEndpoint": "https://me@example.com"}));
    user_only.await.expect_error(StatusCode::BAD_REQUEST, "invalid_app_id");
    let kept = app.get("/api/v1/projects/creds/appids/kept").await.expect(StatusCode::OK).json();
    assert!(kept.get("appEndpoint").is_none(), "{kept}");

    let document = format!(
        "apiVersion: outrigger.io/v1alpha1\nkind: AppIdentity\nmetadata:\n  name: applied\nspec:\n  appEndpoint: {endpoint}\n"
    );
    let answer = app.apply("creds", "", &document).await;
    assert!(!answer.text().contains(secret), "{}", answer.text());
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());

    let document = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata:\n  name: remote\nspec:\n  baseUrl: https://svc:{secret}@api.example.com\n"
    );
    let answer = app.put_yaml("/api/v1/projects/creds/httpendpoints/remote", &document).await;
    assert!(!answer.text().contains(secret), "{}", answer.text());
    let message = answer.expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    assert!(message.contains("spec.baseUrl"), "{message}");

    let exported = app.export("creds").await;
    assert!(!exported.contains(secret) && !exported.contains("leaky") && !exported.contains("remote"), "{exported}");
}
