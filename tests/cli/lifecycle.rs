//! The server's process lifecycle as operators and the CLI meet it.

use std::net::TcpStream;

use crate::harness::{random_token, RunExt, Server};

#[test]
fn sigterm_exits_zero_and_a_restart_keeps_projects_and_app_ids() {
    let data_dir = tempfile::tempdir().expect("creating a data directory");
    let token = random_token();

    let server = Server::start(data_dir.path(), Some(&token));
    // The ready line comes once every listener is bound.
    let addresses = server.addresses;
    let dapr =
        [addresses.dapr_http, addresses.dapr_grpc].map(|address| address.expect("the all-in-one serves the Dapr APIs"));
    let control_api = addresses.control_api.expect("the all-in-one serves the control API");
    for address in [control_api, dapr[0], dapr[1]] {
        TcpStream::connect(address).unwrap_or_else(|error| panic!("connecting to {address}: {error}"));
    }
    server.outrigger(["project", "create", "shop"]).succeeds();
    server.outrigger(["appid", "create", "orders", "-p", "shop", "--app-endpoint", "http://127.0.0.1:3000"]).succeeds();
    let (status, output) = server.stop();
    assert!(status.success(), "SIGTERM should end the server with status 0, got {status}; output:\n{output}");

    let server = Server::start(data_dir.path(), Some(&token));
    let shop = server.outrigger(["project", "get", "shop", "-o", "json"]).json();
    assert_eq!(shop["name"], "shop");
    let orders = server.outrigger(["appid", "get", "orders", "-p", "shop", "-o", "json"]).json();
    assert_eq!(orders["appEndpoint"], "http://127.0.0.1:3000");
    let (status, output) = server.stop();
    assert!(status.success(), "second SIGTERM: {status}; output:\n{output}");
}

#[test]
fn first_start_writes_the_admin_token_that_the_cli_then_uses() {
    let data_dir = tempfile::tempdir().expect("creating a data directory");
    let token_file = data_dir.path().join("admin-token");

    let server = Server::start(data_dir.path(), None);
    let token = std::fs::read_to_string(&token_file).expect("the first start writes <data dir>/admin-token");
    let token = token.trim().to_owned();
    assert!(token.len() >= 16, "a short admin token: {token:?}");
    // Without OUTRIGGER_TOKEN the CLI reads the token from OUTRIGGER_DATA_DIR.
    server.outrigger(["project", "create", "shop"]).succeeds();
    let (status, output) = server.stop();
    assert!(status.success(), "{status}; output:\n{output}");
    assert!(output.contains(&token), "the first start should print the admin token; output:\n{output}");

    // Later starts keep the token.
    let server = Server::start(data_dir.path(), None);
    assert_eq!(std::fs::read_to_string(&token_file).expect("reading admin-token").trim(), token);
    let listed = server.outrigger(["project", "list", "-o", "json"]).json();
    assert_eq!(listed["items"][0]["name"], "shop", "{listed}");
    server.outrigger(["project", "list"]).env("OUTRIGGER_TOKEN", &token).succeeds();
    let (status, output) = server.stop();
    assert!(status.success(), "{status}; output:\n{output}");
}
