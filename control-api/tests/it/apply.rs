use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::both_engines;
use crate::fixtures::{APPLICATION, STATESTORE};
use crate::harness::TestApp;

both_engines!(
    every_committed_change_is_announced,
    apply_creates_updates_and_reports,
    apply_is_all_or_nothing,
    apply_prune_removes_what_the_input_omits,
    export_apply_export_round_trips,
    binding_and_configuration_components_round_trip_with_daprs_field_names,
);

fn refs(answer: &Value, list: &str) -> Vec<String> {
    let mut refs: Vec<String> = answer[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}/{}", r["kind"].as_str().unwrap(), r["name"].as_str().unwrap()))
        .collect();
    refs.sort();
    refs
}

const ALL: [&str; 8] = [
    "AppIdentity/checkout",
    "AppIdentity/order-processor",
    "Component/orderpubsub",
    "Component/statestore",
    "Configuration/appconfig",
    "HTTPEndpoint/payments",
    "Resiliency/myresiliency",
    "Subscription/order-routing",
];

fn all() -> Vec<String> {
    ALL.iter().map(|r| r.to_string()).collect()
}

async fn apply_creates_updates_and_reports(app: TestApp) {
    app.project("demo").await;
    let dry = app.apply("demo", "?dryRun=true", APPLICATION).await.expect(StatusCode::OK).json();
    assert_eq!(dry["dryRun"], true);
    assert_eq!(refs(&dry, "created"), all());
    assert!(
        dry["created"].as_array().unwrap().iter().all(|r| r.get("apiToken").is_none()),
        "a dry run issues no token"
    );
    assert_eq!(app.export("demo").await, "", "a dry run changes nothing");
    let applies = || async {
        let trail = app.get("/api/v1/orgs/default/audit").await.expect(StatusCode::OK).json();
        trail["items"].as_array().unwrap().iter().filter(|event| event["action"] == "project.apply").count()
    };
    assert_eq!(applies().await, 0, "a dry run is no change to record");

    let applied = app.apply("demo", "", APPLICATION).await.expect(StatusCode::OK).json();
    assert_eq!(applies().await, 1);
    assert_eq!(applied["dryRun"], false);
    assert_eq!(refs(&applied, "created"), all());
    for created in applied["created"].as_array().unwrap() {
        let has_token = created.get("apiToken").is_some();
        assert_eq!(has_token, created["kind"] == "AppIdentity", "{created}");
    }
    let processor = app.get("/api/v1/projects/demo/appids/order-processor").await.expect(StatusCode::OK).json();
    assert_eq!(processor["appEndpoint"], "http://127.0.0.1:6001");
    assert_eq!(processor["config"], "appconfig");

    let again = app.apply("demo", "", APPLICATION).await.expect(StatusCode::OK).json();
    assert_eq!(refs(&again, "unchanged"), all());
    assert!(again["created"].as_array().unwrap().is_empty() && again["updated"].as_array().unwrap().is_empty());

    let changed =
        APPLICATION.replace("general: 5s", "general: 7s").replace("http://127.0.0.1:6001", "http://127.0.0.1:6002");
    let updated = app.apply("demo", "", &changed).await.expect(StatusCode::OK).json();
    assert_eq!(refs(&updated, "updated"), ["AppIdentity/order-processor", "Resiliency/myresiliency"]);
    assert_eq!(refs(&updated, "unchanged").len(), 6);
    let resiliency = app.get("/api/v1/projects/demo/resiliencies/myresiliency").await.json();
    assert_eq!(resiliency["spec"]["policies"]["timeouts"]["general"], "7s");

    // Additive: a smaller input leaves the rest alone.
    let only_store = APPLICATION.split("---\n").find(|doc| doc.contains("name: statestore")).unwrap();
    let additive = app.apply("demo", "", only_store).await.expect(StatusCode::OK).json();
    assert_eq!(refs(&additive, "unchanged"), ["Component/statestore"]);
    assert!(additive["deleted"].as_array().unwrap().is_empty());
    app.get("/api/v1/projects/demo/components/orderpubsub").await.expect(StatusCode::OK);
}

async fn apply_is_all_or_nothing(app: TestApp) {
    app.project("demo").await;
    let documents: Vec<&str> = APPLICATION.split("---\n").collect();
    // Document 5 (the resiliency) gets an undefined policy: nothing of the other seven may land.
    let mut broken = documents.clone();
    let bad_resiliency = documents[5]
        .replace("retry: retryForever\n        circuitBreaker", "retry: nosuchretry\n        circuitBreaker");
    broken[5] = &bad_resiliency;
    let answer = app.apply("demo", "", &broken.join("---\n")).await;
    let body_status = answer.status;
    let body = answer.json();
    assert_eq!(body_status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_document");
    assert_eq!(body["details"], json!({ "index": 5, "kind": "Resiliency", "name": "myresiliency" }));
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("document 5")
            && message.contains("Resiliency")
            && message.contains("myresiliency")
            && message.contains("nosuchretry"),
        "{message}"
    );
    assert_eq!(app.export("demo").await, "");

    // A reference to something only the same input creates is fine; to nothing, it names the document.
    let mut dangling = documents.clone();
    let ghost_scope = documents[2].replace("- checkout\n", "- ghost\n");
    dangling[2] = &ghost_scope;
    let body = app.apply("demo", "", &dangling.join("---\n")).await.expect(StatusCode::BAD_REQUEST).json();
    assert_eq!(body["details"], json!({ "index": 2, "kind": "Component", "name": "orderpubsub" }));
    assert!(body["message"].as_str().unwrap().contains("ghost"));

    let unknown_type = documents[3].replace("state.redis", "state.dynamodb");
    let body = app
        .apply("demo", "", &[documents[0], &unknown_type].join("---\n"))
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(body["details"]["index"], 1);
    assert!(body["message"].as_str().unwrap().contains("state.sqlite"), "lists the supported types: {body}");

    let twice = [documents[0], documents[0]].join("---\n");
    let body = app.apply("demo", "", &twice).await.expect(StatusCode::BAD_REQUEST).json();
    assert_eq!(body["details"]["index"], 1);

    let unknown_kind = "apiVersion: dapr.io/v1alpha1\nkind: Gadget\nmetadata:\n  name: g\nspec: {}\n";
    let body =
        app.apply("demo", "", &[documents[0], unknown_kind].join("---\n")).await.expect(StatusCode::BAD_REQUEST).json();
    assert_eq!(body["details"]["index"], 1);
    assert!(body["message"].as_str().unwrap().contains("Gadget"));

    app.apply("demo", "", "key: [unclosed").await.expect_error(StatusCode::BAD_REQUEST, "invalid_document");
    let managed = documents[3].replace("name: statestore", "name: kvstore");
    let body = app.apply("demo", "", &managed).await.expect(StatusCode::BAD_REQUEST).json();
    assert!(body["message"].as_str().unwrap().contains("managed"), "{body}");
    assert_eq!(app.export("demo").await, "");
    app.apply("ghost", "", APPLICATION).await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

async fn apply_prune_removes_what_the_input_omits(app: TestApp) {
    app.project("demo").await;
    app.apply("demo", "", APPLICATION).await.expect(StatusCode::OK);
    app.put_yaml("/api/v1/projects/demo/components/cache", "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: cache\nspec:\n  type: state.in-memory\n  version: v1\n")
        .await
        .expect(StatusCode::CREATED);
    // Only Components are applied, so only Components are pruned.
    let components: Vec<&str> = APPLICATION.split("---\n").filter(|doc| doc.contains("kind: Component")).collect();
    let components = components.join("---\n");
    let dry = app.apply("demo", "?prune=true&dryRun=true", &components).await.expect(StatusCode::OK).json();
    assert_eq!(refs(&dry, "deleted"), ["Component/cache"]);
    app.get("/api/v1/projects/demo/components/cache").await.expect(StatusCode::OK);

    let pruned = app.apply("demo", "?prune=true", &components).await.expect(StatusCode::OK).json();
    assert_eq!(refs(&pruned, "deleted"), ["Component/cache"]);
    assert_eq!(refs(&pruned, "unchanged"), ["Component/orderpubsub", "Component/statestore"]);
    app.get("/api/v1/projects/demo/components/cache").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/projects/demo/subscriptions/order-routing").await.expect(StatusCode::OK);

    // Pruning the broker a subscription still uses would leave it dangling: refused, nothing changes.
    let only_store = APPLICATION.split("---\n").find(|doc| doc.contains("name: statestore")).unwrap();
    let message =
        app.apply("demo", "?prune=true", only_store).await.expect_error(StatusCode::CONFLICT, "still_referenced");
    assert!(message.contains("order-routing"), "{message}");
    app.get("/api/v1/projects/demo/components/orderpubsub").await.expect(StatusCode::OK);
}

/// Names as Dapr's quickstarts write them for self-hosted daprd (mixed case, underscores), which Kubernetes
/// would refuse.
const QUICKSTART_NAMES: &str = "\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: daprConfig
spec:
  tracing:
    samplingRate: \"1\"
---
apiVersion: outrigger.io/v1alpha1
kind: AppIdentity
metadata:
  name: quickstart
spec:
  config: daprConfig
";

/// Dapr's distributed lock quickstart's component, with the `keyPrefix` every lock store reads.
const LOCKSTORE: &str = "\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: lockstore
spec:
  type: lock.redis
  version: v1
  metadata:
  - name: redisHost
    value: localhost:6379
  - name: keyPrefix
    value: name
";

async fn export_apply_export_round_trips(app: TestApp) {
    app.project("source").await;
    let store = STATESTORE.replace("name: statestore", "name: order_Store");
    let documents = format!("{APPLICATION}---\n{QUICKSTART_NAMES}---\n{store}---\n{LOCKSTORE}");
    app.apply("source", "", &documents).await.expect(StatusCode::OK);
    let first = app.export("source").await;
    for kind in [
        "kind: AppIdentity",
        "kind: Component",
        "kind: Subscription",
        "kind: Resiliency",
        "kind: Configuration",
        "kind: HTTPEndpoint",
    ] {
        assert!(first.contains(kind), "{kind} missing from {first}");
    }
    assert!(first.contains("apiVersion: dapr.io/v2alpha1"));
    assert!(first.contains("secretKeyRef"), "references stay references: {first}");

    app.project("copy").await;
    let applied = app.apply("copy", "", &first).await.expect(StatusCode::OK).json();
    let mut expected = all();
    let added = ["AppIdentity/quickstart", "Component/lockstore", "Component/order_Store", "Configuration/daprConfig"];
    expected.extend(added.map(String::from));
    expected.sort();
    assert_eq!(refs(&applied, "created"), expected);
    assert!(first.contains("name: daprConfig") && first.contains("config: daprConfig"), "{first}");
    assert!(first.contains("type: lock.redis") && first.contains("value: name"), "{first}");
    app.get("/api/v1/projects/copy/configurations/daprConfig").await.expect(StatusCode::OK);
    let second = app.export("copy").await;
    assert_eq!(first, second);
}

/// Workers cache project configuration; they learn of every committed change, and of nothing else.
async fn every_committed_change_is_announced(app: TestApp) {
    app.project("demo").await;
    let project_id = {
        let mut tx = app.store.begin().await.unwrap();
        tx.project(&outrigger_store::OrgId::default_org(), "demo").await.unwrap().id.as_str().to_owned()
    };
    app.changes.take();
    app.apply("demo", "?dryRun=true", APPLICATION).await.expect(StatusCode::OK);
    app.apply("demo", "", "key: [unclosed").await.expect(StatusCode::BAD_REQUEST);
    assert_eq!(app.changes.take(), Vec::<String>::new(), "dry runs and refused changes announce nothing");
    app.apply("demo", "", APPLICATION).await.expect(StatusCode::OK);
    app.delete("/api/v1/projects/demo/components/statestore").await.expect(StatusCode::NO_CONTENT);
    app.patch_json("/api/v1/projects/demo/appids/checkout", json!({ "appProtocol": "grpc" }))
        .await
        .expect(StatusCode::OK);
    app.delete("/api/v1/projects/demo").await.expect(StatusCode::NO_CONTENT);
    assert_eq!(app.changes.take(), vec![project_id; 4]);
}

/// The binding and configuration components of Dapr's quickstarts and docs, with the field names of
/// components-contrib's `metadata.yaml` for each type.
const BINDINGS_AND_CONFIGURATION: &str = "\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: cron
spec:
  type: bindings.cron
  version: v1
  metadata:
  - name: schedule
    value: '@every 10s'
  - name: direction
    value: input
  - name: route
    value: /batch
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: sqldb
spec:
  type: bindings.postgres
  version: v1
  metadata:
  - name: connectionString
    secretKeyRef:
      name: pg-secret
      key: url
  - name: timeout
    value: 30s
  - name: direction
    value: output
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: orders-queue
spec:
  type: bindings.rabbitmq
  version: v1
  metadata:
  - name: queueName
    value: orders
  - name: host
    value: amqp://localhost:5672
  - name: durable
    value: 'true'
  - name: deleteWhenUnused
    value: 'false'
  - name: ttlInSeconds
    value: '60'
  - name: prefetchCount
    value: '0'
  - name: exclusive
    value: 'false'
  - name: maxPriority
    value: '5'
  - name: contentType
    value: text/plain
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: sensors
spec:
  type: bindings.mqtt3
  version: v1
  metadata:
  - name: url
    value: tcp://localhost:1883
  - name: topic
    value: sensors/#
  - name: consumerID
    value: '{uuid}'
  - name: retain
    value: 'false'
  - name: cleanSession
    value: 'true'
  - name: backOffMaxRetries
    value: '3'
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: configstore-pg
spec:
  type: configuration.postgresql
  version: v1
  metadata:
  - name: connectionString
    secretKeyRef:
      name: pg-secret
      key: url
  - name: table
    value: configtable
  - name: notifyChannel
    value: config
";

async fn binding_and_configuration_components_round_trip_with_daprs_field_names(app: TestApp) {
    app.project("source").await;
    app.apply("source", "", BINDINGS_AND_CONFIGURATION).await.expect(StatusCode::OK);
    let first = app.export("source").await;
    for kind in
        ["bindings.cron", "bindings.postgres", "bindings.rabbitmq", "bindings.mqtt3", "configuration.postgresql"]
    {
        assert!(first.contains(&format!("type: {kind}")), "{kind} missing from {first}");
    }
    assert!(first.contains("secretKeyRef"), "references stay references: {first}");
    app.project("copy").await;
    let applied = app.apply("copy", "", &first).await.expect(StatusCode::OK).json();
    let expected =
        ["configstore-pg", "cron", "orders-queue", "sensors", "sqldb"].map(|name| format!("Component/{name}"));
    assert_eq!(refs(&applied, "created"), expected);
    assert_eq!(app.export("copy").await, first);
}
