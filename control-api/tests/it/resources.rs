use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::both_engines;
use crate::fixtures::STATESTORE;
use crate::harness::TestApp;

both_engines!(
    component_lifecycle,
    component_validation_happens_on_write,
    secret_values_never_leave,
    subscriptions_are_stored_as_v2alpha1,
    documents_of_every_kind,
    component_types_describe_what_projects_may_create,
);

async fn component_lifecycle(app: TestApp) {
    app.project("demo").await;
    let created = app
        .put_yaml("/api/v1/projects/demo/components/statestore", STATESTORE)
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(created["apiVersion"], "dapr.io/v1alpha1");
    assert_eq!(created["kind"], "Component");
    assert_eq!(created["spec"]["type"], "state.redis");
    app.put_yaml("/api/v1/projects/demo/components/statestore", STATESTORE).await.expect(StatusCode::OK);

    // JSON bodies work the same.
    let as_json = json!({
        "apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": { "name": "cache" },
        "spec": { "type": "state.in-memory", "version": "v1", "metadata": [] }
    });
    app.call(
        Method::PUT,
        "/api/v1/projects/demo/components/cache",
        Some(("application/json", as_json.to_string().into_bytes())),
    )
    .await
    .expect(StatusCode::CREATED);

    let fetched = app.get("/api/v1/projects/demo/components/statestore").await.expect(StatusCode::OK).json();
    assert_eq!(fetched, created);
    let yaml = app
        .send(
            axum::http::Request::get("/api/v1/projects/demo/components/statestore")
                .header("authorization", format!("Bearer {}", crate::harness::ADMIN_TOKEN))
                .header("accept", "application/yaml")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(yaml.headers["content-type"], "application/yaml");
    assert!(yaml.text().contains("type: state.redis"), "{}", yaml.text());

    let list = app.get("/api/v1/projects/demo/components").await.expect(StatusCode::OK).json();
    let names: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|d| d["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cache", "statestore"]);

    app.delete("/api/v1/projects/demo/components/cache").await.expect(StatusCode::NO_CONTENT);
    app.get("/api/v1/projects/demo/components/cache").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.delete("/api/v1/projects/demo/components/cache").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/projects/demo/widgets").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/projects/ghost/components").await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

async fn component_validation_happens_on_write(app: TestApp) {
    app.project("demo").await;
    let put = |yaml: String| {
        let app = app.clone();
        async move { app.put_yaml("/api/v1/projects/demo/components/statestore", &yaml).await }
    };
    let message = put(STATESTORE.replace("state.redis", "state.cassandra"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    for supported in [
        "state.redis",
        "state.postgresql",
        "state.sqlite",
        "state.in-memory",
        "pubsub.redis",
        "pubsub.jetstream",
        "pubsub.in-memory",
    ] {
        assert!(message.contains(supported), "{message}");
    }
    let message = put(STATESTORE.replace("redisHost", "redisHostname"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    assert!(message.contains("redisHost") && message.contains("state.redis"), "{message}");
    let message = put(STATESTORE.replace("version: v1", "version: v9"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    assert!(message.contains("v9"), "{message}");
    let message = put(format!("{STATESTORE}scopes:\n- ghost-app\n"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    assert!(message.contains("ghost-app"), "{message}");
    let message = put(STATESTORE.replace("kind: Component", "kind: Subscription"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    assert!(message.contains("Subscription"), "{message}");
    let message = put(STATESTORE.replace("name: statestore", "name: other"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    assert!(message.contains("other"), "{message}");
    put("spec: [".to_owned()).await.expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    put(STATESTORE.replace("type: state.redis", "type: state.outrigger"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    app.put_yaml("/api/v1/projects/demo/components/kvstore", &STATESTORE.replace("statestore", "kvstore"))
        .await
        .expect_error(StatusCode::CONFLICT, "reserved_name");
    // A name no resource can have is refused with the path, before the document is read.
    app.put_yaml("/api/v1/projects/demo/components/_bad", &STATESTORE.replace("statestore", "_bad"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_path");
    assert_eq!(app.get("/api/v1/projects/demo/components").await.json()["items"], json!([]));
}

async fn secret_values_never_leave(app: TestApp) {
    app.project("demo").await;
    let with_secret = STATESTORE.replace("value: \"\"", "value: s3cr3t-password");
    let written =
        app.put_yaml("/api/v1/projects/demo/components/statestore", &with_secret).await.expect(StatusCode::CREATED);
    assert!(!written.text().contains("s3cr3t-password"));
    let fetched = app.get("/api/v1/projects/demo/components/statestore").await.expect(StatusCode::OK);
    assert!(!fetched.text().contains("s3cr3t-password"));
    let export = app.export("demo").await;
    assert!(!export.contains("s3cr3t-password"), "{export}");
    assert!(export.contains("redisPassword"), "the withheld field is still named: {export}");

    // The withheld document written back keeps the stored secret.
    let withheld: serde_json::Value = fetched.json();
    app.call(
        Method::PUT,
        "/api/v1/projects/demo/components/statestore",
        Some(("application/json", withheld.to_string().into_bytes())),
    )
    .await
    .expect(StatusCode::OK);
    let mut tx = app.store.begin().await.unwrap();
    let project = tx.project(&outrigger_store::OrgId::default_org(), "demo").await.unwrap();
    let stored =
        tx.find_resource(&project.id, outrigger_resources::Kind::Component, "statestore").await.unwrap().unwrap();
    assert!(serde_json::to_string(&stored.document).unwrap().contains("s3cr3t-password"));
    drop(tx);

    // Into a project that has no such value, a withheld document is refused, naming the field.
    app.project("fresh").await;
    let message = app
        .call(
            Method::PUT,
            "/api/v1/projects/fresh/components/statestore",
            Some(("application/json", withheld.to_string().into_bytes())),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    assert!(message.contains("redisPassword"), "{message}");
}

async fn subscriptions_are_stored_as_v2alpha1(app: TestApp) {
    app.project("demo").await;
    app.app_id("demo", "checkout").await;
    let v1 = "apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata:\n  name: orders\nspec:\n  topic: orders\n  route: /checkout\n  pubsubname: pubsub\nscopes:\n- checkout\n";
    let stored =
        app.put_yaml("/api/v1/projects/demo/subscriptions/orders", v1).await.expect(StatusCode::CREATED).json();
    assert_eq!(stored["apiVersion"], "dapr.io/v2alpha1");
    assert_eq!(stored["spec"]["routes"]["default"], "/checkout");
    assert!(stored["spec"].get("route").is_none());

    let message = app
        .put_yaml(
            "/api/v1/projects/demo/subscriptions/orders",
            &v1.replace("pubsubname: pubsub", "pubsubname: nosuchbroker"),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    assert!(message.contains("nosuchbroker"), "{message}");
    let message = app
        .put_yaml("/api/v1/projects/demo/subscriptions/orders", &v1.replace("  topic: orders\n", ""))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    assert!(message.contains("topic"), "{message}");
}

async fn documents_of_every_kind(app: TestApp) {
    app.project("demo").await;
    app.apply("demo", "", crate::fixtures::APPLICATION).await.expect(StatusCode::OK);
    for (collection, name) in [
        ("components", "orderpubsub"),
        ("subscriptions", "order-routing"),
        ("resiliencies", "myresiliency"),
        ("configurations", "appconfig"),
        ("httpendpoints", "payments"),
    ] {
        let path = format!("/api/v1/projects/demo/{collection}/{name}");
        let document = app.get(&path).await.expect(StatusCode::OK).json();
        assert_eq!(document["metadata"]["name"], name);
        // What GET gives, PUT takes back unchanged.
        app.call(Method::PUT, &path, Some(("application/json", document.to_string().into_bytes())))
            .await
            .expect(StatusCode::OK);
    }
    let message = app
        .delete("/api/v1/projects/demo/configurations/appconfig")
        .await
        .expect_error(StatusCode::CONFLICT, "still_referenced");
    assert!(message.contains("order-processor"), "{message}");
    let bad_resiliency = "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: r\nspec:\n  policies:\n    timeouts:\n      general: 5 seconds\n  targets: {}\n";
    app.put_yaml("/api/v1/projects/demo/resiliencies/r", bad_resiliency)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    let dangling = "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: r\nspec:\n  policies: {}\n  targets:\n    apps:\n      checkout:\n        retry: nosuchpolicy\n";
    let message = app
        .put_yaml("/api/v1/projects/demo/resiliencies/r", dangling)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    assert!(message.contains("nosuchpolicy"), "{message}");
    let bad_acl = crate::fixtures::APPLICATION
        .split("---\n")
        .find(|doc| doc.contains("kind: Configuration"))
        .unwrap()
        .replace("action: allow", "action: permit");
    app.put_yaml("/api/v1/projects/demo/configurations/appconfig", &bad_acl)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    let bad_endpoint =
        "apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata:\n  name: payments\nspec:\n  baseUrl: payments\n";
    app.put_yaml("/api/v1/projects/demo/httpendpoints/payments", bad_endpoint)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
}

async fn component_types_describe_what_projects_may_create(app: TestApp) {
    let listed = app.get("/api/v1/component-types").await.expect(StatusCode::OK).json();
    let types = listed["types"].as_array().unwrap();
    let names: Vec<&str> = types.iter().map(|t| t["type"].as_str().unwrap()).collect();
    assert!(names.windows(2).all(|pair| pair[0] < pair[1]), "sorted: {names:?}");
    for expected in ["state.redis", "state.sqlite", "pubsub.redis", "bindings.http", "secretstores.local.file"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    // The platform's own types back the managed components and are never offered for creation.
    assert!(names.iter().all(|name| !name.ends_with(".outrigger")), "{names:?}");
    let managed: Vec<(&str, &str)> = listed["managed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["type"].as_str().unwrap(), m["component"].as_str().unwrap()))
        .collect();
    assert!(managed.contains(&("state.outrigger", "kvstore")), "{managed:?}");
    assert!(managed.contains(&("pubsub.outrigger", "pubsub")), "{managed:?}");
    assert!(managed.contains(&("configuration.outrigger", "configstore")), "{managed:?}");

    let redis = types.iter().find(|t| t["type"] == "state.redis").unwrap();
    assert_eq!(redis["buildingBlock"], "state");
    assert_eq!(redis["versions"], json!(["v1"]));
    let field = |name: &str| redis["fields"].as_array().unwrap().iter().find(|f| f["name"] == name).cloned();
    assert_eq!(
        field("redisHost"),
        Some(json!({"name": "redisHost", "required": true, "sensitive": false, "file": false}))
    );
    assert_eq!(field("redisPassword").unwrap()["sensitive"], true);
    // Dapr's defaults come with the fields that have one; a required field or a secret has none.
    assert_eq!(field("redisDB").unwrap()["default"], "0");
    assert!(field("redisPassword").unwrap().get("default").is_none());
    // The building block's common fields follow the type's own.
    assert_eq!(field("keyPrefix").unwrap()["required"], false);
    assert_eq!(field("keyPrefix").unwrap()["default"], "appid");
    let default_of = |type_name: &str, name: &str| {
        let declared = types.iter().find(|t| t["type"] == type_name).unwrap();
        declared["fields"].as_array().unwrap().iter().find(|f| f["name"] == name).unwrap().get("default").cloned()
    };
    assert_eq!(default_of("bindings.http", "errorIfNot2XX"), Some(json!("true")));
    assert_eq!(default_of("pubsub.jetstream", "deliverPolicy"), Some(json!("all")));
    assert_eq!(default_of("bindings.cron", "schedule"), None);
    let sqlite = types.iter().find(|t| t["type"] == "state.sqlite").unwrap();
    let connection = sqlite["fields"].as_array().unwrap().iter().find(|f| f["name"] == "connectionString").unwrap();
    assert_eq!((connection["required"].as_bool(), connection["file"].as_bool()), (Some(true), Some(true)));
    assert!(listed["buildingBlocks"].as_array().unwrap().contains(&json!({"name": "state", "noun": "state store"})));

    // Any signed-in caller reads it, whatever its role; without a credential it is refused.
    app.org("acme").await;
    app.member("acme", "reader@acme.test", "viewer", None).await;
    let reader = app.access_token("reader@acme.test", "acme").await;
    assert_eq!(app.get_as(&reader, "/api/v1/component-types").await.expect(StatusCode::OK).json(), listed);
    let anonymous = axum::http::Request::get("/api/v1/component-types").body(axum::body::Body::empty()).unwrap();
    app.send(anonymous).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
}
