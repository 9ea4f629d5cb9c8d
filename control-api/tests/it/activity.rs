//! Call metrics and usage over what the API log writer stores: batches of calls from many App IDs and minutes,
//! added up per App ID, per API and per step.

use axum::http::StatusCode;
use outrigger_store::{now_millis, ApiCall, CallBatch, CallDirection, EXAMINED_PER_PAGE};

use crate::both_engines;
use crate::harness::TestApp;

both_engines!(
    metrics_add_up_batches_of_many_app_ids_and_minutes,
    a_text_search_pages_through_a_window_at_a_time,
    filtered_pages_over_many_blocks_list_exactly_the_matching_calls,
    trimming_and_expiry_keep_exactly_the_newest_calls,
    deleting_a_project_removes_its_log_and_counts
);

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
        span: None,
        user_agent: None,
        caller_addr: None,
        direction: CallDirection::FromApp,
        stream_ended: false,
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
    app.store.record_api_calls(CallBatch::of(&batch).all()).await.unwrap();
    app.store.record_api_calls(CallBatch::of(&batch).all()).await.unwrap();

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
    let total = EXAMINED_PER_PAGE as i64 + 5_000;
    let calls: Vec<ApiCall> = (0..total)
        .map(|n| ApiCall {
            at: template.at - n,
            app_id: if n == total - 1 { "needle".into() } else { "orders".into() },
            ..template.clone()
        })
        .collect();
    app.store.record_api_calls(CallBatch::of(&calls).all()).await.unwrap();

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

/// Which calls a listing's filter keeps.
type Keeps = Box<dyn Fn(&ApiCall) -> bool>;

/// The log keeps each written batch's calls of a project together (a block); whatever the filter, following the
/// tokens lists exactly the calls that match, newest first, none twice, and none of another project's.
async fn filtered_pages_over_many_blocks_list_exactly_the_matching_calls(app: TestApp) {
    app.project("shop").await;
    app.project("other").await;
    let template = call(&app, String::new(), 0).await;
    let org = outrigger_store::OrgId::default_org();
    let other = app.store.begin().await.unwrap().project(&org, "other").await.unwrap().id;
    let start = template.at - 3_600_000;
    let mut written = Vec::new();
    // Eight batches, each later than the one before, each mixing both projects.
    for batch in 0..8 {
        let calls: Vec<ApiCall> = (0..150)
            .map(|n| {
                let index = batch * 150 + n;
                ApiCall {
                    project_id: if index % 5 == 4 { other.clone() } else { template.project_id.clone() },
                    at: start + i64::from(index) * 1_000,
                    app_id: ["cart", "checkout", "audit"][(index % 7 % 3) as usize].into(),
                    api: ["state", "pubsub", "jobs"][(index % 11 % 3) as usize].into(),
                    path: format!("/v1.0/state/kvstore/key-{index}"),
                    status: [200, 404, 500, 204][(index % 13 % 4) as usize],
                    direction: if index % 17 == 0 { CallDirection::ToApp } else { CallDirection::FromApp },
                    ..template.clone()
                }
            })
            .collect();
        app.store.record_api_calls(CallBatch::of(&calls).all()).await.unwrap();
        written.extend(calls);
    }
    written.retain(|call| call.project_id == template.project_id);
    written.reverse();
    let time = |at: i64| {
        chrono::DateTime::from_timestamp_millis(at).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let (since, until) = (start + 200_000, start + 900_000);
    let filters: [(String, Keeps); 8] = [
        (String::new(), Box::new(|_| true)),
        ("appId=audit".into(), Box::new(|call| call.app_id == "audit")),
        ("api=jobs".into(), Box::new(|call| call.api == "jobs")),
        ("status=5xx".into(), Box::new(|call| call.status >= 500)),
        ("status=404".into(), Box::new(|call| call.status == 404)),
        ("direction=to_app".into(), Box::new(|call| call.direction == CallDirection::ToApp)),
        (
            format!("since={}&until={}", time(since), time(until)),
            Box::new(move |call| (since..until).contains(&call.at)),
        ),
        ("q=KEY-10&appId=cart".into(), Box::new(|call| call.path.contains("key-10") && call.app_id == "cart")),
    ];
    for (query, keeps) in filters {
        let expected: Vec<&str> = written.iter().filter(|call| keeps(call)).map(|call| call.path.as_str()).collect();
        let mut listed: Vec<String> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/projects/shop/logs?limit=7&{query}");
            if let Some(token) = &token {
                path.push_str(&format!("&continuationToken={token}"));
            }
            let page = app.get(&path).await.expect(StatusCode::OK).json();
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 7, "{query}: {page}");
            listed.extend(items.iter().map(|call| call["path"].as_str().unwrap().to_owned()));
            assert!(listed.len() <= expected.len(), "{query}: more calls listed than match");
            match page["continuationToken"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(listed, expected, "{query}");
    }
}

/// The paths the project `shop`'s log lists, newest first, all pages.
async fn listed_paths(app: &TestApp) -> Vec<String> {
    let page = app.get("/api/v1/projects/shop/logs?limit=1000").await.expect(StatusCode::OK).json();
    assert!(page.get("continuationToken").is_none(), "{page}");
    page["items"].as_array().unwrap().iter().map(|call| call["path"].as_str().unwrap().to_owned()).collect()
}

/// Trimming and expiry remove whole blocks and cut the one block their boundary falls in: the log lists exactly
/// the calls kept, and another project's calls stay.
async fn trimming_and_expiry_keep_exactly_the_newest_calls(app: TestApp) {
    app.project("shop").await;
    app.project("other").await;
    let template = call(&app, "orders".into(), 0).await;
    let org = outrigger_store::OrgId::default_org();
    let other = app.store.begin().await.unwrap().project(&org, "other").await.unwrap().id;
    let start = template.at - 600_000;
    // Three blocks of ten calls each, one second apart, and as many of another project's in the same batches.
    for batch in 0..3 {
        let calls: Vec<ApiCall> = (0..20)
            .map(|n| ApiCall {
                project_id: if n % 2 == 0 { template.project_id.clone() } else { other.clone() },
                at: start + (batch * 10 + n / 2) * 1_000,
                path: format!("/call/{}", batch * 10 + n / 2),
                ..template.clone()
            })
            .collect();
        app.store.record_api_calls(CallBatch::of(&calls).all()).await.unwrap();
    }
    let newest = |count: i64, oldest: i64| -> Vec<String> {
        (0..count)
            .map(|n| format!("/call/{}", 29 - n))
            .filter(|path| path[6..].parse::<i64>().unwrap() >= oldest)
            .collect()
    };
    assert_eq!(listed_paths(&app).await, newest(30, 0));

    // Expiry: the oldest block goes, and the five oldest calls of the second.
    app.store.expire_api_calls(start + 15_000, 0).await.unwrap();
    assert_eq!(listed_paths(&app).await, newest(15, 15));
    // Trimming to 12 cuts the second block again; trimming to more than it holds changes nothing.
    app.store.trim_api_calls(&template.project_id, 12).await.unwrap();
    assert_eq!(listed_paths(&app).await, newest(12, 0));
    app.store.trim_api_calls(&template.project_id, 100).await.unwrap();
    assert_eq!(listed_paths(&app).await, newest(12, 0));
    app.store.trim_api_calls(&template.project_id, 3).await.unwrap();
    assert_eq!(listed_paths(&app).await, newest(3, 0));

    // The other project lost only what expired.
    let page = app.get("/api/v1/projects/other/logs?limit=1000").await.expect(StatusCode::OK).json();
    assert_eq!(page["items"].as_array().unwrap().len(), 15, "{page}");
}

/// A deleted project's calls and per-minute counts go with it (on SQLite from the log's own file); another
/// project's stay.
async fn deleting_a_project_removes_its_log_and_counts(app: TestApp) {
    app.project("shop").await;
    app.project("other").await;
    let template = call(&app, "orders".into(), 0).await;
    let org = outrigger_store::OrgId::default_org();
    let other = app.store.begin().await.unwrap().project(&org, "other").await.unwrap().id;
    let calls: Vec<ApiCall> = (0..10)
        .map(|n| ApiCall {
            project_id: if n % 2 == 0 { template.project_id.clone() } else { other.clone() },
            ..template.clone()
        })
        .collect();
    app.store.record_api_calls(CallBatch::of(&calls).all()).await.unwrap();
    let since = template.at - 60_000;
    let totals = || async {
        let mut log = app.store.begin_api_log().await.unwrap();
        [
            log.api_call_total(&template.project_id, since).await.unwrap(),
            log.api_call_total(&other, since).await.unwrap(),
        ]
    };
    assert_eq!(totals().await, [5, 5]);

    app.delete("/api/v1/projects/shop").await.expect(StatusCode::NO_CONTENT);
    assert_eq!(totals().await, [0, 5]);
    let request = outrigger_store::PageRequest::default();
    let mut log = app.store.begin_api_log().await.unwrap();
    let page = log.page_api_calls(&template.project_id, &Default::default(), &request).await.unwrap();
    assert!(page.items.is_empty(), "the deleted project's calls are gone");
    drop(log);
    let page = app.get("/api/v1/projects/other/logs?limit=1000").await.expect(StatusCode::OK).json();
    assert_eq!(page["items"].as_array().unwrap().len(), 5, "{page}");
}
