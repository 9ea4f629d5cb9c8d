//! What an operator sees of the calls apps make, against a real server: `outrigger logs` (filters, `--follow`),
//! `outrigger metrics`, `outrigger usage`, the Prometheus `/metrics` of the control API and of the separate
//! metrics listener, rate-limited calls in the log, and a project's log kept from every other project and
//! removed with it.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::harness::{dapr_http, random_token, start, RunExt, Server};

/// Calls reach the log in batches written about once a second.
const LOGGED_WITHIN: Duration = Duration::from_secs(30);

fn app_token(server: &Server, project: &str, app: &str) -> String {
    let created = server.outrigger(["appid", "create", app, "--project", project, "-o", "json"]).json();
    created["apiToken"].as_str().expect("apiToken").to_owned()
}

fn state_url(server: &Server, rest: &str) -> String {
    format!("http://{}/v1.0/state/{rest}", server.addresses.dapr_http.expect("a Dapr HTTP API"))
}

/// The project's log (JSON, newest first) once it holds at least `count` calls.
fn logged(server: &Server, project: &str, count: usize, filters: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + LOGGED_WITHIN;
    loop {
        let mut args = vec!["logs", "--project", project, "-o", "json"];
        args.extend(filters);
        let calls = server.outrigger(&args).json()["items"].as_array().cloned().unwrap_or_default();
        if calls.len() >= count {
            return calls;
        }
        assert!(Instant::now() < deadline, "{count} calls not logged within {LOGGED_WITHIN:?}: {calls:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn calls_are_logged_filtered_followed_and_counted() {
    let (_dir, server) = start();
    server.outrigger(["project", "create", "shop"]).succeeds();
    let token = app_token(&server, "shop", "orders");
    let (status, _) =
        dapr_http(Method::POST, &state_url(&server, "kvstore"), &token, Some(r#"[{"key":"k","value":1}]"#));
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = dapr_http(Method::GET, &state_url(&server, "kvstore/k"), &token, None);
    assert_eq!(status, StatusCode::OK);
    let (status, _) = dapr_http(Method::GET, &state_url(&server, "missing/k"), &token, None);
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The CLI shows the newest calls oldest first, as logs read (the control API pages newest first).
    let calls = logged(&server, "shop", 3, &[]);
    let methods: Vec<&str> = calls.iter().map(|call| call["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["POST", "GET", "GET"], "{calls:?}");
    assert_eq!((calls[2]["component"].as_str(), calls[2]["status"].as_u64()), (Some("missing"), Some(400)));
    assert_eq!(calls[0]["path"], "/v1.0/state/kvstore");
    assert_eq!(calls[0]["callerAddress"], "127.0.0.1");
    let text = server.outrigger(["logs", "--project", "shop"]).succeeds();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("POST") && lines[0].contains("kvstore") && lines[0].contains("204"), "{text}");
    assert!(lines[2].contains("missing") && lines[2].contains("400"), "{text}");
    let failures = logged(&server, "shop", 1, &["--status", "4xx"]);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(logged(&server, "shop", 0, &["--status", "5xx"]), Vec::<Value>::new());
    assert_eq!(logged(&server, "shop", 0, &["--app", "billing"]), Vec::<Value>::new());
    let refused = server.outrigger(["logs", "--project", "shop", "--status", "7xx"]).fails();
    assert!(refused.contains("not a status"), "{refused}");

    // --follow prints what is there, then each new call once.
    let mut follow = server
        .outrigger(["logs", "--project", "shop", "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting logs --follow");
    let (lines_sender, followed) = mpsc::channel();
    let stdout = follow.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_sender.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || followed.recv_timeout(LOGGED_WITHIN).expect("a followed line");
    let first_three: Vec<String> = (0..3).map(|_| next_line()).collect();
    assert!(first_three[2].contains("missing"), "{first_three:?}");
    let (status, _) = dapr_http(Method::DELETE, &state_url(&server, "kvstore/k"), &token, None);
    assert_eq!(status, StatusCode::NO_CONTENT);
    let followed_delete = next_line();
    assert!(
        followed_delete.contains("DELETE") && followed_delete.contains("/v1.0/state/kvstore/k"),
        "{followed_delete}"
    );
    assert!(followed.recv_timeout(Duration::from_secs(3)).is_err(), "a call was printed twice");
    follow.kill().expect("stopping logs --follow");
    let _ = follow.wait();

    let metrics = server.outrigger(["metrics", "--project", "shop", "-o", "json"]).json();
    assert_eq!((metrics["total"]["requests"].as_i64(), metrics["total"]["errors"].as_i64()), (Some(4), Some(1)));
    assert_eq!(metrics["series"].as_array().map(Vec::len), Some(60), "one point per minute of the hour");
    let table = server.outrigger(["metrics", "--project", "shop", "--window", "24h"]).succeeds();
    assert!(table.contains("app orders") && table.contains("api state"), "{table}");
    let bad_window = server.outrigger(["metrics", "--project", "shop", "--window", "2h"]).fails();
    assert!(bad_window.contains("`2h`") && bad_window.contains("`7d`"), "{bad_window}");
    let usage = server.outrigger(["usage", "--project", "shop", "-o", "json"]).json();
    assert_eq!((usage["appIds"].as_i64(), usage["requests"].as_i64()), (Some(1), Some(4)), "{usage}");

    // Prometheus text with daprd's names, for the operator only.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let scrape = |token: Option<&str>| {
        runtime.block_on(async {
            let mut request = reqwest::Client::new().get(format!("{}/metrics", server.url()));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        })
    };
    assert_eq!(scrape(None).0, StatusCode::UNAUTHORIZED);
    assert_eq!(scrape(Some(&token)).0, StatusCode::UNAUTHORIZED, "an App ID token is no operator token");
    let (status, text) = scrape(Some(server.admin_token()));
    assert_eq!(status, StatusCode::OK);
    let shop = server.outrigger(["project", "get", "shop", "-o", "json"]).json();
    let project_id = shop["filesDir"].as_str().and_then(|dir| dir.strip_prefix("projects/")).expect("a project's id");
    let count = format!(
        r#"dapr_http_server_request_count{{app_id="orders",method="GET",project="shop",project_id="{project_id}",status="400"}} 1"#
    );
    assert!(text.contains(&count), "{text}");
    for series in [
        "outrigger_api_log_written_total",
        r#"outrigger_bus_round_trip_seconds_count{call="GetState",outcome="answered"}"#,
        r#"outrigger_token_lookups_total{result="hit"}"#,
        r#"outrigger_worker_queue_depth{pool="default"} 0"#,
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }

    // A job falling due is fired by the scheduler, which reports how late it was.
    let job = format!("http://{}/v1.0-alpha1/jobs/now", server.addresses.dapr_http.unwrap());
    let (status, _) = dapr_http(Method::POST, &job, &token, Some(r#"{"dueTime":"0s"}"#));
    assert_eq!(status, StatusCode::NO_CONTENT);
    let deadline = Instant::now() + LOGGED_WITHIN;
    while !scrape(Some(server.admin_token())).1.contains(r#"outrigger_scheduler_lag_seconds_count{kind="job"} 1"#) {
        assert!(Instant::now() < deadline, "the scheduler's lag was not reported");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn isolation_a_project_s_log_is_its_own_and_goes_with_it() {
    let (_dir, server) = start();
    for project in ["alpha", "beta"] {
        server.outrigger(["project", "create", project]).succeeds();
    }
    let alpha = app_token(&server, "alpha", "orders");
    let beta = app_token(&server, "beta", "orders");
    let (status, _) = dapr_http(Method::GET, &state_url(&server, "kvstore/secret-key-of-alpha"), &alpha, None);
    assert_eq!(status, StatusCode::NO_CONTENT);
    logged(&server, "alpha", 1, &[]);
    let (status, _) = dapr_http(Method::GET, &state_url(&server, "kvstore/k"), &beta, None);
    assert_eq!(status, StatusCode::NO_CONTENT);
    let beta_calls = logged(&server, "beta", 1, &[]);
    assert_eq!(beta_calls.len(), 1, "{beta_calls:?}");
    assert!(!beta_calls[0].to_string().contains("alpha"), "{beta_calls:?}");
    assert_eq!(logged(&server, "beta", 0, &["--query", "secret-key-of-alpha"]), Vec::<Value>::new());

    server.outrigger(["project", "delete", "alpha"]).succeeds();
    server.outrigger(["project", "create", "alpha"]).succeeds();
    assert_eq!(logged(&server, "alpha", 0, &[]), Vec::<Value>::new(), "a new project of the same name starts empty");
    let usage = server.outrigger(["usage", "--project", "alpha", "-o", "json"]).json();
    assert_eq!(usage["requests"].as_i64(), Some(0), "{usage}");
}

#[test]
fn rate_limited_calls_are_logged_and_metrics_have_their_own_listener() {
    let data_dir = tempfile::tempdir().unwrap();
    let env = [("OUTRIGGER_RATE_LIMIT_PER_SECOND", "1"), ("OUTRIGGER_METRICS_ADDR", "127.0.0.1:0")];
    let server = Server::start_role(&[], &env, data_dir.path(), Some(&random_token()));
    server.outrigger(["project", "create", "shop"]).succeeds();
    let token = app_token(&server, "shop", "orders");
    let statuses: Vec<StatusCode> =
        (0..3).map(|_| dapr_http(Method::GET, &state_url(&server, "kvstore/k"), &token, None).0).collect();
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    let limited = logged(&server, "shop", 1, &["--status", "429"]);
    assert_eq!(limited[0]["component"], "kvstore", "{limited:?}");

    let metrics = server.addresses.metrics.expect("the ready line names the metrics listener");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let text = runtime
        .block_on(async { reqwest::get(format!("http://{metrics}/metrics")).await.unwrap().text().await.unwrap() });
    let shop = server.outrigger(["project", "get", "shop", "-o", "json"]).json();
    let project_id = shop["filesDir"].as_str().and_then(|dir| dir.strip_prefix("projects/")).expect("a project's id");
    let series = format!(
        r#"dapr_http_server_request_count{{app_id="orders",method="GET",project="shop",project_id="{project_id}",status="429"}}"#
    );
    assert!(text.contains(&series), "{text}");
    let (status, _) = server.api(Method::GET, "/projects", None);
    assert_eq!(status, StatusCode::OK);
    let control = runtime.block_on(async { reqwest::get(format!("{}/metrics", server.url())).await.unwrap().status() });
    assert_eq!(control, StatusCode::NOT_FOUND, "with a metrics listener the control API serves no /metrics");
}

#[test]
fn telemetry_turned_off_keeps_counts_and_traces_nothing() {
    let data_dir = tempfile::tempdir().unwrap();
    let env = [("OUTRIGGER_API_LOG", "false"), ("OUTRIGGER_METRICS", "false"), ("OUTRIGGER_TRACE_CONTEXT", "false")];
    let server = Server::start_role(&[], &env, data_dir.path(), Some(&random_token()));
    server.outrigger(["project", "create", "shop"]).succeeds();
    let token = app_token(&server, "shop", "orders");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let (status, traceparent) = runtime.block_on(async {
        let answer = reqwest::Client::new()
            .get(state_url(&server, "kvstore/k"))
            .header("dapr-api-token", &token)
            .header("traceparent", caller)
            .send()
            .await
            .unwrap();
        (answer.status(), answer.headers().get("traceparent").cloned())
    });
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(traceparent, None, "with trace context off no span is made or returned");
    let metrics = runtime.block_on(async { reqwest::get(format!("{}/metrics", server.url())).await.unwrap().status() });
    assert_eq!(metrics, StatusCode::NOT_FOUND, "with metrics off no /metrics is served");
    assert_eq!(logged(&server, "shop", 0, &[]), Vec::<Value>::new(), "with the API log off nothing is kept");
}

#[test]
fn a_project_s_own_rate_quota_holds_its_app_ids_only() {
    let (_dir, server) = start();
    for project in ["limited", "free"] {
        server.outrigger(["project", "create", project]).succeeds();
    }
    let table = server.outrigger(["project", "quotas", "limited", "--requests-per-second", "2"]).succeeds();
    assert!(
        table.contains("requestsPerSecond  2        2") && table.contains("appIds             default  no limit"),
        "{table}"
    );
    let refused = server.outrigger(["project", "quotas", "limited", "--app-ids", "many"]).fails();
    assert!(refused.contains("neither a whole number nor `default`"), "{refused}");
    let limited = app_token(&server, "limited", "orders");
    let free = app_token(&server, "free", "orders");
    let statuses = |token: &str| -> Vec<StatusCode> {
        (0..6).map(|_| dapr_http(Method::GET, &state_url(&server, "kvstore/k"), token, None).0).collect()
    };
    assert!(statuses(&limited).contains(&StatusCode::TOO_MANY_REQUESTS));
    assert!(statuses(&free).iter().all(|status| *status == StatusCode::NO_CONTENT), "another project keeps no limit");

    let json =
        server.outrigger(["project", "quotas", "limited", "--requests-per-second", "default", "-o", "json"]).json();
    assert_eq!(json["set"], serde_json::json!({}), "{json}");
}

#[test]
fn an_organization_s_rate_cap_holds_each_of_its_app_ids() {
    let (_dir, server) = start();
    let (status, _) = server.api(Method::POST, "/orgs", Some(serde_json::json!({"name": "capped"})));
    assert_eq!(status, StatusCode::CREATED);
    let cap = serde_json::json!({"requestsPerSecond": 2});
    assert_eq!(server.api(Method::PUT, "/orgs/capped/quotas", Some(cap)).0, StatusCode::OK);
    // The operator token works in the organization its header names.
    let project = serde_json::json!({"name": "shop"});
    assert_eq!(server.api_in(Some("capped"), Method::POST, "/projects", Some(project)).0, StatusCode::CREATED);
    let app = serde_json::json!({"name": "orders"});
    let (status, app) = server.api_in(Some("capped"), Method::POST, "/projects/shop/appids", Some(app));
    assert_eq!(status, StatusCode::CREATED);
    let capped = app["apiToken"].as_str().unwrap().to_owned();
    server.outrigger(["project", "create", "shop"]).succeeds();
    let free = app_token(&server, "shop", "orders");
    let statuses = |token: &str| -> Vec<StatusCode> {
        (0..6).map(|_| dapr_http(Method::GET, &state_url(&server, "kvstore/k"), token, None).0).collect()
    };
    assert!(statuses(&capped).contains(&StatusCode::TOO_MANY_REQUESTS), "the organization caps its App IDs");
    assert!(
        statuses(&free).iter().all(|status| *status == StatusCode::NO_CONTENT),
        "the project of the same name in `default` is not capped"
    );
}

/// The bytes a project keeps in its managed kvstore, as `outrigger usage` reports them.
fn stored_bytes(server: &Server, project: &str) -> u64 {
    let usage = server.outrigger(["usage", "--project", project, "-o", "json"]).json();
    usage["storedStateBytes"].as_u64().unwrap_or_else(|| panic!("usage without storedStateBytes: {usage}"))
}

#[test]
fn a_stored_bytes_quota_refuses_writes_past_it_and_deletes_make_room() {
    let (_dir, server) = start();
    for project in ["small", "other"] {
        server.outrigger(["project", "create", project]).succeeds();
    }
    let small = app_token(&server, "small", "orders");
    let other = app_token(&server, "other", "orders");
    let save = |token: &str, key: &str| {
        let body = format!(r#"[{{"key":"{key}","value":"{}"}}]"#, "x".repeat(40));
        dapr_http(Method::POST, &state_url(&server, "kvstore"), token, Some(&body))
    };
    assert_eq!(stored_bytes(&server, "small"), 0);
    assert_eq!(save(&small, "a").0, StatusCode::NO_CONTENT);
    let one_item = stored_bytes(&server, "small");
    assert!(one_item > 40, "an item of 40 characters and its key take {one_item} bytes");
    assert_eq!(stored_bytes(&server, "other"), 0, "a project's usage counts its own keys only");

    // Room for one item of that size, not two.
    let quota = (2 * one_item - 1).to_string();
    let table = server.outrigger(["project", "quotas", "small", "--stored-bytes", &quota]).succeeds();
    assert!(table.contains(&format!("storedBytes        {quota}")), "{table}");
    let (status, body) = save(&small, "b");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let refusal: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(refusal["errorCode"], "ERR_TOO_MANY_REQUESTS", "{body}");
    assert!(refusal["message"].as_str().unwrap().contains("stored-bytes quota"), "{body}");
    assert_eq!(dapr_http(Method::GET, &state_url(&server, "kvstore/b"), &small, None).0, StatusCode::NO_CONTENT);
    assert_eq!(stored_bytes(&server, "small"), one_item, "the refused write changed nothing");
    // Overwriting with the same size is within the quota by measure, though not by the estimate.
    assert_eq!(save(&small, "a").0, StatusCode::NO_CONTENT);
    assert_eq!(save(&other, "b").0, StatusCode::NO_CONTENT, "another project keeps no limit");

    let (status, _) = dapr_http(Method::DELETE, &state_url(&server, "kvstore/a"), &small, None);
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(save(&small, "b").0, StatusCode::NO_CONTENT, "a delete makes room at once");
    assert_eq!(stored_bytes(&server, "small"), one_item);
    let table = server.outrigger(["usage", "--project", "small"]).succeeds();
    assert!(table.contains("STORED BYTES") && table.contains(&one_item.to_string()), "{table}");
}

/// A text search examines a window of calls per page; `outrigger logs` follows the pages until it has what it
/// asked for, so a match older than the first window is still shown.
#[test]
fn logs_follow_a_text_search_past_windows_without_a_match() {
    let (dir, server) = start();
    server.outrigger(["project", "create", "shop"]).succeeds();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        // The server's own control-plane database, written as its API log writer would.
        let url = format!("sqlite://{}", dir.path().join("outrigger.db").display());
        let store = outrigger_store::Store::connect(&url).await.unwrap();
        let project =
            store.begin().await.unwrap().project(&outrigger_store::OrgId::default_org(), "shop").await.unwrap();
        let now = outrigger_store::now_millis();
        let total = i64::from(outrigger_store::EXAMINED_PER_PAGE) + 5_000;
        let calls: Vec<outrigger_store::ApiCall> = (0..total)
            .map(|n| outrigger_store::ApiCall {
                project_id: project.id.clone(),
                at: now - n,
                app_id: if n == total - 1 { "needle".into() } else { "orders".into() },
                target: None,
                api: "state".into(),
                protocol: "http".into(),
                method: "GET".into(),
                path: "/v1.0/state/kvstore/k".into(),
                component: Some("kvstore".into()),
                status: 200,
                grpc_code: None,
                latency_us: 300,
                span: None,
                user_agent: None,
                caller_addr: None,
                direction: outrigger_store::CallDirection::FromApp,
                stream_ended: false,
            })
            .collect();
        store.record_api_calls(outrigger_store::CallBatch::of(&calls).all()).await.unwrap();
    });
    let found = logged(&server, "shop", 1, &["--query", "NEEDLE"]);
    let apps: Vec<&str> = found.iter().map(|call| call["appId"].as_str().unwrap()).collect();
    assert_eq!(apps, ["needle"]);
}
