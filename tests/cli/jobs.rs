//! `outrigger job ...`: the jobs an App ID scheduled through Dapr's jobs API, listed, shown and deleted with the
//! CLI against a real server.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{dapr_http, start, RunExt};

#[test]
fn jobs_an_app_scheduled_are_listed_shown_and_deleted() {
    let (_dir, server) = start();
    server.outrigger(["project", "create", "shop"]).succeeds();
    let created = server.outrigger(["appid", "create", "orders", "--project", "shop", "-o", "json"]).json();
    let token = created["apiToken"].as_str().expect("apiToken").to_owned();
    let url = format!("http://{}/v1.0-alpha1/jobs/nightly-report", server.addresses.dapr_http.unwrap());
    let body = json!({"schedule": "0 0 2 * * *", "repeats": 30}).to_string();
    let (status, answer) = dapr_http(Method::POST, &url, &token, Some(&body));
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");

    let table = server.outrigger(["job", "list", "--project", "shop", "--app", "orders"]).succeeds();
    assert!(table.starts_with("NAME") && table.contains("nightly-report") && table.contains("0 0 2 * * *"), "{table}");
    let job = server.outrigger(["job", "get", "nightly-report", "-p", "shop", "-a", "orders", "-o", "json"]).json();
    assert_eq!((job["repeats"].clone(), job["fired"].clone()), (json!(30), json!(0)));
    assert!(job["nextFire"].as_str().is_some_and(|next| next.contains("T02:00:00")), "{job}");
    let missing_app = server.outrigger(["job", "list", "-p", "shop"]).fails();
    assert!(missing_app.contains("--app"), "{missing_app}");

    server.outrigger(["job", "delete", "nightly-report", "-p", "shop", "-a", "orders"]).succeeds();
    let (status, _) = dapr_http(Method::GET, &url, &token, None);
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "daprd answers a missing job as a failed get");
    let gone = server.outrigger(["job", "get", "nightly-report", "-p", "shop", "-a", "orders"]).fails();
    assert!(gone.contains("not found"), "{gone}");
}
