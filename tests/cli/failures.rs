//! Failing commands exit non-zero and say why, in the server's words where the server refused.

use std::net::TcpListener;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{outrigger, start, RunExt};

#[test]
fn missing_project_fails_with_the_servers_message() {
    let (_data_dir, server) = start();
    let (status, answer) = server.api(Method::GET, "/projects/nowhere", None);
    assert_eq!(status, StatusCode::NOT_FOUND);
    let message = answer["message"].as_str().unwrap_or_else(|| panic!("no message in {answer}"));
    let code = answer["code"].as_str().unwrap_or_else(|| panic!("no code in {answer}"));

    let error = server.outrigger(["project", "get", "nowhere"]).fails();
    assert!(error.contains(message) && error.contains(code) && error.contains("404"), "{error}");
    let error = server.outrigger(["appid", "list", "-p", "nowhere"]).fails();
    assert!(error.contains("404"), "{error}");
}

#[test]
fn bad_project_name_fails_with_the_servers_message() {
    let (_data_dir, server) = start();
    let (status, answer) = server.api(Method::POST, "/projects", Some(json!({ "name": "Not_A_Label" })));
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let message = answer["message"].as_str().unwrap_or_else(|| panic!("no message in {answer}"));

    let error = server.outrigger(["project", "create", "Not_A_Label"]).fails();
    assert!(error.contains(message) && error.contains("400"), "{error}");
    let listed = server.outrigger(["project", "list", "-o", "json"]).json();
    assert_eq!(listed["items"], json!([]), "{listed}");
}

#[test]
fn wrong_token_is_refused_with_401() {
    let (_data_dir, server) = start();
    let error = server.outrigger(["project", "list"]).env("OUTRIGGER_TOKEN", "not-the-token").fails();
    assert!(error.contains("401") && error.contains("OUTRIGGER_TOKEN"), "{error}");
    let error = server.outrigger(["project", "list", "--token", "not-the-token"]).fails();
    assert!(error.contains("401"), "{error}");
}

// The checks below fail before any request, so they need no server.

#[test]
fn project_scoped_command_without_a_project_says_how_to_give_one() {
    for kind in ["appid", "component", "subscription", "resiliency", "configuration", "httpendpoint"] {
        let error = outrigger([kind, "list"]).env("OUTRIGGER_TOKEN", "any").fails();
        assert!(error.contains("--project") && error.contains("OUTRIGGER_PROJECT"), "{kind}: {error}");
    }
    let error = outrigger(["export"]).env("OUTRIGGER_TOKEN", "any").fails();
    assert!(error.contains("OUTRIGGER_PROJECT"), "{error}");
}

#[test]
fn unreachable_control_api_says_where_and_how_to_start_it() {
    // A port that was just free: nothing listens on it once the listener is dropped.
    let closed = TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("binding");
    let url = format!("http://{closed}");
    let error = outrigger(["project", "list"]).env("OUTRIGGER_URL", &url).env("OUTRIGGER_TOKEN", "any").fails();
    assert!(error.contains(&format!("not reachable at {url}")) && error.contains("cargo run --release"), "{error}");
}

#[test]
fn missing_token_says_to_set_outrigger_token() {
    let empty = tempfile::tempdir().expect("creating a directory");
    let error = outrigger(["project", "list"]).env("OUTRIGGER_DATA_DIR", empty.path()).fails();
    assert!(error.contains("set OUTRIGGER_TOKEN"), "{error}");
}

#[test]
fn apply_of_a_path_without_yaml_fails_before_calling_the_server() {
    let empty = tempfile::tempdir().expect("creating a directory");
    let apply = || {
        let mut command = outrigger(["apply", "-p", "shop", "-f"]);
        command.env("OUTRIGGER_TOKEN", "any").env("OUTRIGGER_URL", "http://127.0.0.1:1");
        command
    };
    let error = apply().arg(empty.path()).fails();
    assert!(error.contains("no *.yaml or *.yml files"), "{error}");
    let error = apply().arg(empty.path().join("missing.yaml")).fails();
    assert!(error.contains("missing.yaml"), "{error}");
}
