//! `outrigger config ...`: the items of a project's managed configuration store, set with the CLI and read by
//! an app with Dapr's configuration API.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{dapr_http, start, RunExt};

#[test]
fn config_items_set_by_the_cli_are_what_apps_read() {
    let (_dir, server) = start();
    server.outrigger(["project", "create", "shop"]).succeeds();
    let created = server.outrigger(["appid", "create", "orders", "--project", "shop", "-o", "json"]).json();
    let token = created["apiToken"].as_str().expect("apiToken").to_owned();

    let set =
        server.outrigger(["config", "set", "color", "blue", "--metadata", "owner=team-a", "-p", "shop"]).succeeds();
    assert!(set.starts_with("KEY") && set.contains("color") && set.contains("owner=team-a"), "{set}");
    let item = server.outrigger(["config", "set", "color", "green", "-p", "shop", "-o", "json"]).json();
    assert_eq!((item["value"].clone(), item["version"].clone()), (json!("green"), json!("2")));
    server.outrigger(["config", "set", "size", "large", "-p", "shop"]).succeeds();
    let listed = server.outrigger(["config", "list", "-p", "shop", "-o", "json"]).json();
    let keys: Vec<&Value> = listed["items"].as_array().expect("items").iter().map(|item| &item["key"]).collect();
    assert_eq!(keys, [&json!("color"), &json!("size")]);
    assert_eq!(server.outrigger(["config", "get", "color", "-p", "shop", "-o", "json"]).json()["value"], "green");

    let url = format!("http://{}/v1.0/configuration/configstore?key=color", server.addresses.dapr_http.unwrap());
    let (status, body) = dapr_http(Method::GET, &url, &token, None);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"color": {"value": "green", "version": "2"}}));

    server.outrigger(["config", "delete", "color", "-p", "shop"]).succeeds();
    let missing = server.outrigger(["config", "get", "color", "-p", "shop"]).fails();
    assert!(missing.contains("not found"), "{missing}");
    let bad = server.outrigger(["config", "set", "color", "blue", "--metadata", "owner", "-p", "shop"]).fails();
    assert!(bad.contains("NAME=VALUE"), "{bad}");
    let (status, _) = dapr_http(Method::GET, &url, &token, None);
    assert_eq!(status, StatusCode::NO_CONTENT);
}
