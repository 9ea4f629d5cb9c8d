//! Call metrics and usage over what the API log writer stores: batches of calls from many App IDs and minutes,
//! added up per App ID, per API and per step.

use axum::http::StatusCode;
use outrigger_store::{now_millis, ApiCall, CallDirection};

use crate::both_engines;
use crate::harness::TestApp;

both_engines!(metrics_add_up_batches_of_many_app_ids_and_minutes);

/// More App IDs than one statement upserts per-minute counts for on SQLite, over three minutes.
const APP_IDS: usize = 120;

async fn metrics_add_up_batches_of_many_app_ids_and_minutes(app: TestApp) {
    app.project("shop").await;
    let project = app.store.begin().await.unwrap().project("shop").await.unwrap();
    let now = now_millis();
    let batch: Vec<ApiCall> = (0..APP_IDS)
        .map(|n| ApiCall {
            project_id: project.id.clone(),
            at: now - (n % 3) as i64 * 60_000,
            app_id: format!("app-{n}"),
            target: None,
            api: if n % 2 == 0 { "state" } else { "pubsub" }.into(),
            protocol: "http".into(),
            method: "POST".into(),
            path: "/v1.0/state/kvstore".into(),
            component: Some("kvstore".into()),
            status: if n % 10 == 0 { 500 } else { 204 },
            grpc_code: None,
            latency_us: 300,
            trace_id: None,
            span_id: None,
            user_agent: None,
            caller_addr: None,
            direction: CallDirection::FromApp,
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
