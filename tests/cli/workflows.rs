//! `outrigger workflow ...` against instances started through the gateway's HTTP workflow API (no app runs
//! them, so they stay where the operator puts them).

use reqwest::Method;

use crate::harness::{dapr_http, start, RunExt};

#[test]
fn workflow_list_get_control_and_purge() {
    let (_data_dir, server) = start();
    server.outrigger(["project", "create", "shop"]).succeeds();
    let created = server.outrigger(["appid", "create", "orders", "-p", "shop", "-o", "json"]).json();
    let token = created["apiToken"].as_str().unwrap().to_owned();
    let dapr = format!("http://{}", server.addresses.dapr_http.unwrap());
    for (name, instance) in [("checkout", "order-1"), ("checkout", "order-2"), ("refund", "refund-1")] {
        let url = format!("{dapr}/v1.0/workflows/dapr/{name}/start?instanceID={instance}");
        let (status, body) = dapr_http(Method::POST, &url, &token, Some(r#"{"amount":3}"#));
        assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    }
    let workflow = |args: &[&str]| {
        let mut command = server.outrigger(["workflow"]);
        command.args(args).env("OUTRIGGER_PROJECT", "shop");
        command
    };

    let table = workflow(&["list"]).succeeds();
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("INSTANCE ID") && header.contains("STATUS"), "{table}");
    for instance in ["order-1", "order-2", "refund-1"] {
        assert!(table.contains(instance), "{table}");
    }
    let listed = workflow(&["list", "--name", "checkout", "-o", "json"]).json();
    let mut names: Vec<&str> =
        listed["items"].as_array().unwrap().iter().map(|i| i["instanceId"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["order-1", "order-2"]);

    // Paging: the table says how to get the next page, and the token works.
    let first = workflow(&["list", "--limit", "2"]).succeeds();
    let hint = first.lines().find_map(|line| line.strip_prefix("more instances: add --continuation-token "));
    let rest =
        workflow(&["list", "--limit", "2", "--continuation-token", hint.expect("a continuation hint")]).succeeds();
    assert_eq!(rest.lines().count(), 2, "one header and one instance:\n{rest}");

    let detail = workflow(&["get", "order-1", "-o", "json"]).json();
    assert_eq!(detail["status"], "PENDING");
    assert_eq!(detail["input"], r#"{"amount":3}"#);
    let shown = workflow(&["get", "order-1"]).succeeds();
    assert!(shown.contains("checkout") && shown.contains("HISTORY"), "{shown}");

    workflow(&["raise-event", "order-1", "approved", "--data", r#"{"by":"ann"}"#]).succeeds();
    workflow(&["suspend", "order-1", "--reason", "audit"]).succeeds();
    workflow(&["resume", "order-1"]).succeeds();
    workflow(&["terminate", "order-1", "--output", "stopped"]).succeeds();
    let refused = workflow(&["purge", "order-2"]).fails();
    assert!(refused.contains("force"), "the refusal says what to do:\n{refused}");
    workflow(&["purge", "order-2", "--force"]).succeeds();
    let gone = workflow(&["get", "order-2"]).fails();
    assert!(gone.contains("not found"), "{gone}");
    let missing = workflow(&["suspend", "nope"]).fails();
    assert!(missing.contains("not found"), "{missing}");

    let left = workflow(&["list", "-o", "json"]).json();
    assert_eq!(left["items"].as_array().unwrap().len(), 2, "{left}");
}
