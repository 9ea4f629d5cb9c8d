//! `outrigger appid ...`

use serde_json::Value;

use crate::harness::{start, RunExt};

/// The value of the `NAME=value` line of CLI output.
fn env_line<'a>(output: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}=");
    output
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name}= line in:\n{output}"))
}

#[test]
fn appid_create_get_update_rotate_delete() {
    let (_data_dir, server) = start();
    let project = server.outrigger(["project", "create", "shop", "-o", "json"]).json();
    // The Configuration an App ID names must exist first.
    let configuration = tempfile::NamedTempFile::new().expect("creating a file");
    std::fs::write(
        configuration.path(),
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: appconfig\nspec: {}\n",
    )
    .expect("writing");
    server.outrigger(["apply", "-p", "shop", "-f"]).arg(configuration.path()).succeeds();
    let appid = |args: &[&str]| {
        let mut command = server.outrigger(["appid"]);
        command.args(args).env("OUTRIGGER_PROJECT", "shop");
        command
    };

    let created = appid(&[
        "create",
        "orders",
        "--app-endpoint",
        "http://127.0.0.1:3000",
        "--app-token",
        "app-secret",
        "--app-protocol",
        "http",
        "--app-health-check-path",
        "/healthz",
        "--app-config",
        "appconfig",
    ])
    .succeeds();
    assert_eq!(env_line(&created, "DAPR_HTTP_ENDPOINT"), project["httpEndpoint"], "{created}");
    assert_eq!(env_line(&created, "DAPR_GRPC_ENDPOINT"), project["grpcEndpoint"], "{created}");
    let first_token = env_line(&created, "DAPR_API_TOKEN").to_owned();
    assert!(first_token.len() >= 16, "{created}");
    assert!(created.lines().any(|line| line.trim() == first_token), "token shown on its own line:\n{created}");

    // After creation neither the API token nor the app token is ever shown again.
    for args in [&["list"][..], &["list", "-o", "json"], &["get", "orders"], &["get", "orders", "-o", "json"]] {
        let shown = appid(args).succeeds();
        assert!(!shown.contains(&first_token) && !shown.contains("app-secret"), "{args:?} shows a secret:\n{shown}");
    }
    let orders = appid(&["get", "orders", "-o", "json"]).json();
    assert_eq!(orders["appEndpoint"], "http://127.0.0.1:3000");
    assert_eq!(orders["appProtocol"], "http");
    assert_eq!(orders["appHealthCheckPath"], "/healthz");
    assert_eq!(orders["config"], "appconfig");
    assert_eq!(orders["hasAppToken"], true);
    assert!(orders.get("apiToken").is_none(), "{orders}");
    let listed = appid(&["list"]).succeeds();
    let row = listed.lines().find(|row| row.starts_with("orders ")).unwrap_or_else(|| panic!("{listed}"));
    assert!(row.contains("http://127.0.0.1:3000") && row.contains("/healthz"), "{listed}");

    // An empty value clears a setting; settings not given stay as they were.
    let updated =
        appid(&["update", "orders", "--app-endpoint", "", "--app-config", "", "--app-protocol", "grpc", "-o", "json"])
            .json();
    assert!(updated["appEndpoint"].is_null(), "{updated}");
    assert!(updated["config"].is_null(), "{updated}");
    assert_eq!(updated["appProtocol"], "grpc");
    assert_eq!(updated["appHealthCheckPath"], "/healthz");
    assert_eq!(updated["hasAppToken"], true);
    let error = appid(&["update", "orders"]).fails();
    assert!(error.contains("nothing to update"), "{error}");

    let rotated = appid(&["rotate-token", "orders", "--grace-seconds", "3600"]).succeeds();
    let second_token = env_line(&rotated, "DAPR_API_TOKEN");
    assert_ne!(second_token, first_token);
    assert_eq!(env_line(&rotated, "DAPR_HTTP_ENDPOINT"), project["httpEndpoint"], "{rotated}");

    // Both tokens are listed: the old one now expires (after the grace), the new one does not.
    let tokens = appid(&["tokens", "orders", "-o", "json"]).json();
    let tokens = tokens["items"].as_array().expect("items");
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    let (expiring, lasting): (Vec<&Value>, Vec<&Value>) =
        tokens.iter().partition(|token| token["expiresAt"].is_string());
    assert_eq!((expiring.len(), lasting.len()), (1, 1), "{tokens:?}");
    let listed = appid(&["tokens", "orders"]).succeeds();
    assert_eq!(listed.lines().count(), 3, "header and two tokens:\n{listed}");
    assert!(!listed.contains(&first_token) && !listed.contains(second_token), "{listed}");

    let old_token_id = expiring[0]["id"].as_str().expect("token id");
    appid(&["revoke-token", "orders", old_token_id]).succeeds();
    let tokens = appid(&["tokens", "orders", "-o", "json"]).json();
    let ids: Vec<&Value> = tokens["items"].as_array().expect("items").iter().map(|token| &token["id"]).collect();
    assert_eq!(ids, [&lasting[0]["id"]], "{tokens}");

    let rotated = appid(&["rotate-token", "orders", "-o", "json"]).json();
    assert!(rotated["apiToken"].is_string() && rotated["id"].is_string(), "{rotated}");

    appid(&["delete", "orders"]).succeeds();
    let error = appid(&["get", "orders"]).fails();
    assert!(error.contains("404"), "{error}");
    let listed = appid(&["list", "-o", "json"]).json();
    assert_eq!(listed["items"], Value::Array(Vec::new()), "{listed}");
}

/// The control API answers a page at a time (at most 1000 entries); `appid list` follows the continuation
/// tokens and shows every App ID, and `export` still holds them all.
#[test]
fn appid_list_and_export_show_every_page() {
    let (_data_dir, server) = start();
    server.outrigger(["project", "create", "crowded"]).succeeds();
    let names: Vec<String> = (0..1001).map(|n| format!("app{n:04}")).collect();
    let documents: Vec<String> = names
        .iter()
        .map(|name| {
            format!("apiVersion: outrigger.io/v1alpha1\nkind: AppIdentity\nmetadata:\n  name: {name}\nspec: {{}}\n")
        })
        .collect();
    let file = tempfile::NamedTempFile::new().expect("creating a file");
    std::fs::write(file.path(), documents.join("---\n")).expect("writing");
    server.outrigger(["apply", "-p", "crowded", "-o", "json", "-f"]).arg(file.path()).succeeds();

    let listed = server.outrigger(["appid", "list", "-p", "crowded", "-o", "json"]).json();
    let listed: Vec<&str> =
        listed["items"].as_array().expect("items").iter().map(|app| app["name"].as_str().unwrap()).collect();
    assert_eq!(listed, names, "every App ID once, by name");
    let exported = server.outrigger(["export", "-p", "crowded"]).succeeds();
    assert_eq!(exported.matches("kind: AppIdentity").count(), 1001);
}
