//! Security group: what a tenant configures cannot reach the platform's own stores. On the embedded default a
//! `state.sqlite` component may not open the platform's `kvstore.db` (or any file outside the project's own
//! directory), whether the path is written in the component or arrives through a secret; in the distributed
//! form components pointed at the platform's own PostgreSQL or NATS are refused even with private addresses
//! allowed.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::distributed::Cluster;
use crate::harness::{dapr_http, RunExt, Server};

fn component(type_name: &str, metadata: Value) -> Value {
    json!({"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": "x"},
           "spec": {"type": type_name, "version": "v1", "metadata": metadata}})
}

fn token_of(server: &Server, project: &str, app: &str) -> String {
    server.outrigger(["project", "create", project]).succeeds();
    let created = server.outrigger(["appid", "create", app, "-p", project, "-o", "json"]).json();
    created["apiToken"].as_str().expect("an API token").to_owned()
}

fn put_component(server: &Server, project: &str, name: &str, mut document: Value) -> (StatusCode, Value) {
    document["metadata"]["name"] = json!(name);
    server.api(Method::PUT, &format!("/projects/{project}/components/{name}"), Some(document))
}

#[test]
fn security_state_sqlite_cannot_open_the_platforms_files_or_leave_the_project_directory() {
    let (data_dir, server) = crate::harness::start();
    let dapr = format!("http://{}", server.addresses.dapr_http.expect("the all-in-one serves Dapr HTTP"));
    let victim = token_of(&server, "victim", "orders");
    let (status, body) = dapr_http(
        Method::POST,
        &format!("{dapr}/v1.0/state/kvstore"),
        &victim,
        Some(r#"[{"key":"k","value":"victim-secret"}]"#),
    );
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let thief = token_of(&server, "evil", "thief");

    let platform_file = data_dir.path().join("kvstore.db").display().to_string();
    let elsewhere = data_dir.path().join("created-elsewhere.db");
    for path in [
        platform_file.clone(),
        format!("file:{}", elsewhere.display()),
        "../kvstore.db".to_owned(),
        "a/../../kvstore.db".to_owned(),
    ] {
        let steal = component(
            "state.sqlite",
            json!([{"name": "connectionString", "value": path}, {"name": "tableName", "value": "kvstore"}, {"name": "keyPrefix", "value": "none"}]),
        );
        let (status, body) = put_component(&server, "evil", "steal", steal);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body["message"].as_str().is_some_and(|message| message.contains("connectionString")), "{body}");
    }
    let (status, _) = server.api(Method::GET, "/projects/evil/components/steal", None);
    assert_eq!(status, StatusCode::NOT_FOUND, "a refused component is not stored");
    assert!(!elsewhere.exists(), "no file was created outside the project's directory");

    // A path arriving through a secret is refused when the worker opens the store.
    let secrets = component("secretstores.local.file", json!([{"name": "secretsFile", "value": "secrets.json"}]));
    let smuggled = json!({"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": "x"},
        "spec": {"type": "state.sqlite", "version": "v1", "metadata": [
            {"name": "connectionString", "secretKeyRef": {"name": "path"}}, {"name": "tableName", "value": "kvstore"},
            {"name": "keyPrefix", "value": "none"}]},
        "auth": {"secretStore": "vault"}});
    // The relative name the tenant may use lives in its own directory, which the first open creates.
    let own = component("state.sqlite", json!([{"name": "connectionString", "value": "mine.db"}]));
    assert_eq!(put_component(&server, "evil", "mine", own).0, StatusCode::CREATED);
    let (status, body) =
        dapr_http(Method::POST, &format!("{dapr}/v1.0/state/mine"), &thief, Some(r#"[{"key":"a","value":1}]"#));
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let projects: Vec<_> =
        std::fs::read_dir(data_dir.path().join("projects")).unwrap().map(|entry| entry.unwrap().path()).collect();
    let evil_dir =
        projects.iter().find(|dir| dir.join("mine.db").exists()).expect("mine.db is in the project's directory");
    std::fs::write(evil_dir.join("secrets.json"), json!({"path": platform_file}).to_string()).unwrap();
    assert_eq!(put_component(&server, "evil", "vault", secrets).0, StatusCode::CREATED);
    assert_eq!(put_component(&server, "evil", "smuggled", smuggled).0, StatusCode::CREATED);
    let (status, body) =
        dapr_http(Method::POST, &format!("{dapr}/v1.0-alpha1/state/smuggled/query"), &thief, Some("{}"));
    assert!(status.is_server_error() || status.is_client_error(), "{status} {body}");
    assert!(!body.contains("victim-secret") && body.contains("connectionString"), "{body}");
    let (status, body) =
        dapr_http(Method::GET, &format!("{dapr}/v1.0/state/smuggled/victim%7C%7Corders%7C%7Ck"), &thief, None);
    assert!(!body.contains("victim-secret"), "{status} {body}");
    let (_, read) = dapr_http(Method::GET, &format!("{dapr}/v1.0/state/kvstore/k"), &victim, None);
    assert_eq!(read, "\"victim-secret\"", "the victim's data is untouched");
}

#[test]
fn security_components_cannot_dial_the_platforms_own_database_or_nats() {
    // The harness's cluster allows private endpoints (its apps are on loopback): the platform's own services
    // must be refused all the same.
    let cluster = Cluster::new("5000");
    let _worker = cluster.start(&["worker"]);
    let gateway = cluster.start(&["gateway"]);
    let control = cluster.start(&["control-api"]);
    let dapr = format!("http://{}", gateway.addresses.dapr_http.expect("the gateway serves Dapr HTTP"));
    let thief = token_of(&control, "evil", "thief");
    let attempts = [
        (
            "pg",
            "state.postgresql",
            json!([{"name": "connectionString", "value": "postgres://postgres@127.0.0.1:5432/postgres"}]),
        ),
        (
            "pg-name",
            "state.postgresql",
            json!([{"name": "connectionString", "value": "host=localhost port=5432 user=postgres"}]),
        ),
        (
            "pg-mapped",
            "state.postgresql",
            json!([{"name": "connectionString", "value": "postgres://postgres@[::ffff:127.0.0.1]:5432/postgres"}]),
        ),
        ("nats", "pubsub.jetstream", json!([{"name": "natsURL", "value": "nats://127.0.0.1:4222"}])),
    ];
    for (name, type_name, metadata) in attempts {
        let (status, body) = put_component(&control, "evil", name, component(type_name, metadata));
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let call = || {
            if type_name.starts_with("state.") {
                dapr_http(Method::POST, &format!("{dapr}/v1.0-alpha1/state/{name}/query"), &thief, Some("{}"))
            } else {
                dapr_http(Method::POST, &format!("{dapr}/v1.0/publish/{name}/orders"), &thief, Some("{}"))
            }
        };
        // The worker learns of the component from a change event on NATS, which the test cannot await.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let (status, body) = loop {
            let (status, body) = call();
            if !body.contains("not found") || std::time::Instant::now() > deadline {
                break (status, body);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert!(!status.is_success(), "{name}: {status} {body}");
        assert!(body.contains("own services"), "{name}: {body}");
    }
}

#[test]
fn security_app_endpoints_cannot_reach_the_platforms_own_listeners() {
    let (_data_dir, server) = crate::harness::start();
    let dapr = format!("http://{}", server.addresses.dapr_http.expect("the all-in-one serves Dapr HTTP"));
    let caller = token_of(&server, "evil", "caller");
    let control = server.addresses.control_api.expect("the all-in-one serves the control API");
    for (app, endpoint) in
        [("admin", format!("http://{control}")), ("admin-by-name", format!("http://localhost:{}", control.port()))]
    {
        let (status, body) =
            server.api(Method::POST, "/projects/evil/appids", Some(json!({"name": app, "appEndpoint": endpoint})));
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) =
            dapr_http(Method::GET, &format!("{dapr}/v1.0/invoke/{app}/method/api/v1/projects"), &caller, None);
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{app}: {body}");
        assert!(body.contains("own services") && !body.contains("items"), "{app}: {body}");
    }
}

#[test]
fn security_app_endpoints_cannot_read_the_platforms_metrics() {
    // The metrics name every project and App ID the process served: they are the platform's, not a tenant's.
    let data_dir = tempfile::tempdir().unwrap();
    let env = [("OUTRIGGER_METRICS_ADDR", "127.0.0.1:0")];
    let server = Server::start_role(&[], &env, data_dir.path(), Some(&crate::harness::random_token()));
    let dapr = format!("http://{}", server.addresses.dapr_http.expect("the all-in-one serves Dapr HTTP"));
    let metrics = server.addresses.metrics.expect("the ready line names the metrics listener");
    let caller = token_of(&server, "evil", "caller");
    let (status, body) = server.api(
        Method::POST,
        "/projects/evil/appids",
        Some(json!({"name": "scraper", "appEndpoint": format!("http://{metrics}")})),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = dapr_http(Method::GET, &format!("{dapr}/v1.0/invoke/scraper/method/metrics"), &caller, None);
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("own services") && !body.contains("dapr_http_server"), "{body}");
}
