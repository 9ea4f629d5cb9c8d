//! Call metrics and usage over what the API log writer stores: batches of calls from many App IDs and minutes,
//! added up per App ID, per API and per step.

use axum::http::StatusCode;
use outrigger_store::{now_millis, ApiCall, CallDirection, TEXT_SEARCH_WINDOW};

use crate::both_engines;
use crate::harness::TestApp;

both_engines!(metrics_add_up_batches_of_many_app_ids_and_minutes, a_text_search_pages_through_a_window_at_a_time);

/// More App IDs than one statement upserts per-minute counts for on SQLite, over three minutes.
const APP_IDS: usize = 120;

/// A successful state save by `app_id` of the project `shop`, `ago` milliseconds ago.
async fn call(app: &TestApp, app_id: String, ago: i64) -> ApiCall {
    let project =
        app.store.begin().await.unwrap().project(&outrigger_store::OrgId::default_org(), "shop").await.unwrap();
    ApiCall {
        project_id: project.id,
        at: now_millis() - ago,
        app_id,
        target: None,
        api: "state".into(),
        protocol: "http".into(),
        method: "POST".into(),
        path: "/v1.0/state/kvstore".into(),
        component: Some("kvstore".into()),
        status: 204,
        grpc_code: None,
        latency_us: 300,
        trace_id: None,
        span_id: None,
        user_agent: None,
        caller_addr: None,
        direction: CallDirection::FromApp,
    }
}

async fn metrics_add_up_batches_of_many_app_ids_and_minutes(app: TestApp) {
    app.project("shop").await;
    let template = call(&app, String::new(), 0).await;
    let batch: Vec<ApiCall> = (0..APP_IDS)
        .map(|n| ApiCall {
            at: template.at - (n % 3) as i64 * 60_000,
            app_id: format!("app-{n}"),
            api: if n % 2 == 0 { "state" } else { "pubsub" }.into(),
            status: if n % 10 == 0 { 500 } else { 204 },
            ..template.clone()
        })
        .collect();
    // The second batch adds to the counts the first one made.
    app.store.record_api_calls(&batch).await.unwrap();
    app.store.record_api_calls(&batch).await.unwrap();

    let metrics = app.get("/api/v1/projects/shop/metrics?window=1h").await.expect(StatusCode::OK).json();
    assert_eq!(metrics["total"]["requests"], 2 * APP_IDS, "{metrics}");
    assert_eq!(metrics["total"]["errors"], 2 * APP_IDS / 10, "{metrics}");
    let by_app = metrics["byAppId"].as_array().unwrap();
    assert_eq!(by_app.len(), APP_IDS);
    assert!(by_app.iter().all(|app| app["total"]["requests"] == 2), "{by_app:?}");
    let by_api: Vec<(&str, u64)> = metrics["byApi"]
        .as_array()
        .unwrap()
        .iter()
        .map(|api| (api["name"].as_str().unwrap(), api["total"]["requests"].as_u64().unwrap()))
        .collect();
    assert_eq!(by_api, [("pubsub", APP_IDS as u64), ("state", APP_IDS as u64)]);
    // Every call took 300 µs: the 250-500 µs bucket.
    let p50 = metrics["total"]["p50Ms"].as_f64().unwrap();
    assert!((0.25..=0.5).contains(&p50), "{p50}");
    let usage = app.get("/api/v1/projects/shop/usage").await.expect(StatusCode::OK).json();
    assert_eq!(usage["requests"], 2 * APP_IDS, "{usage}");
}

/// No index serves a text search, so a page examines a window of the newest calls and says where it stopped:
/// a rare text older than the window is found on a later page, after an empty one.
async fn a_text_search_pages_through_a_window_at_a_time(app: TestApp) {
    app.project("shop").await;
    let template = call(&app, "orders".into(), 0).await;
    let total = TEXT_SEARCH_WINDOW as i64 + 5_000;
    let calls: Vec<ApiCall> = (0..total)
        .map(|n| ApiCall {
            at: template.at - n,
            app_id: if n == total - 1 { "needle".into() } else { "orders".into() },
            ..template.clone()
        })
        .collect();
    app.store.record_api_calls(&calls).await.unwrap();

    let first = app.get("/api/v1/projects/shop/logs?q=NEEDLE&limit=10").await.expect(StatusCode::OK).json();
    assert_eq!(first["items"], serde_json::json!([]), "the newest window holds no match");
    let token = first["continuationToken"].as_str().expect("a token where the window ended");
    let path = format!("/api/v1/projects/shop/logs?q=NEEDLE&limit=10&continuationToken={token}");
    let second = app.get(&path).await.expect(StatusCode::OK).json();
    let found: Vec<&str> =
        second["items"].as_array().unwrap().iter().map(|call| call["appId"].as_str().unwrap()).collect();
    assert_eq!(found, ["needle"]);
    assert!(second.get("continuationToken").is_none(), "the oldest calls were examined: {second}");

    // A text most calls hold fills its pages as any filter does.
    let common = app.get("/api/v1/projects/shop/logs?q=orders&limit=10").await.expect(StatusCode::OK).json();
    assert_eq!(common["items"].as_array().unwrap().len(), 10);
    assert!(common["continuationToken"].is_string());
}
