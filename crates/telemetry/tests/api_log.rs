//! The API log writer against a real SQLite control-plane store: calls written in batches, each project's
//! log trimmed to its limit and expired calls removed after a write, per-minute counts kept, queued calls
//! written on shutdown.

use std::time::{Duration, Instant};

use outrigger_store::{now_millis, ApiCall, ApiCallFilter, CallDirection, PageRequest, ProjectId, Store};
use outrigger_telemetry::{ApiLog, ApiLogOptions};
use tokio_util::sync::CancellationToken;

fn call(project: &str, at: i64, path: &str) -> ApiCall {
    ApiCall {
        project_id: ProjectId::received(project.to_owned()),
        at,
        app_id: "orders".into(),
        target: None,
        api: "state".into(),
        protocol: "http".into(),
        method: "GET".into(),
        path: path.into(),
        component: Some("kvstore".into()),
        status: 200,
        grpc_code: None,
        latency_us: 300,
        span: None,
        user_agent: None,
        caller_addr: None,
        direction: CallDirection::FromApp,
        stream_ended: false,
    }
}

async fn store(dir: &tempfile::TempDir) -> Store {
    let store =
        Store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("control.db").display())).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn paths(store: &Store, project: &str) -> Vec<String> {
    paths_of(store, project, &ApiCallFilter::default()).await
}

async fn paths_of(store: &Store, project: &str, filter: &ApiCallFilter) -> Vec<String> {
    let mut tx = store.begin_api_log().await.unwrap();
    let request = PageRequest { limit: 1000, continuation: None };
    let page = tx.page_api_calls(&ProjectId::received(project.to_owned()), filter, &request).await.unwrap();
    page.items.into_iter().map(|call| call.path).collect()
}

#[tokio::test]
async fn projects_keep_their_newest_calls_within_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let options = ApiLogOptions {
        retention: Duration::from_secs(3600),
        max_calls_per_project: 5,
        flush_interval: Duration::from_millis(20),
        maintenance_interval: Duration::ZERO,
        ..ApiLogOptions::default()
    };
    let closing = CancellationToken::new();
    let (log, writer) = ApiLog::start(store.clone(), options, closing.clone());
    let now = now_millis();
    for n in 0..8 {
        log.record(&call("busy", now + n, &format!("/busy/{n}")).logged());
    }
    log.record(&call("quiet", now - 2 * 3600 * 1000, "/quiet/expired").logged());
    log.record(&call("quiet", now, "/quiet/kept").logged());

    let deadline = Instant::now() + Duration::from_secs(10);
    while paths(&store, "busy").await.len() != 5 || paths(&store, "quiet").await.len() != 1 {
        assert!(
            Instant::now() < deadline,
            "not trimmed: {:?} {:?}",
            paths(&store, "busy").await,
            paths(&store, "quiet").await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(paths(&store, "busy").await, ["/busy/7", "/busy/6", "/busy/5", "/busy/4", "/busy/3"]);
    assert_eq!(paths(&store, "quiet").await, ["/quiet/kept"]);
    let mut tx = store.begin_api_log().await.unwrap();
    let busy = ProjectId::received("busy".into());
    assert_eq!(tx.api_call_total(&busy, now - 60_000).await.unwrap(), 8, "counts outlive trimmed calls");
    drop(tx);

    // What is queued when the process stops is still written; a call made to an app is kept with its
    // direction, found by it, and not counted among the calls App IDs made.
    log.record(&call("busy", now + 100, "/busy/last").logged());
    log.record(&ApiCall { direction: CallDirection::ToApp, ..call("busy", now + 101, "/orders") }.logged());
    closing.cancel();
    writer.await.unwrap();
    assert_eq!(paths(&store, "busy").await[..2], ["/orders", "/busy/last"]);
    let to_apps = ApiCallFilter { direction: Some(CallDirection::ToApp), ..ApiCallFilter::default() };
    assert_eq!(paths_of(&store, "busy", &to_apps).await, ["/orders"]);
    let mut tx = store.begin_api_log().await.unwrap();
    assert_eq!(tx.api_call_total(&busy, now - 60_000).await.unwrap(), 9, "only the calls App IDs made are counted");
    drop(tx);
    assert!(!ApiLog::disabled().enabled());
}

#[tokio::test]
async fn calls_beyond_the_queue_are_dropped_and_counted_never_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    // A writer that would gather for an hour: only closing writes.
    let options = ApiLogOptions { queue: 3, flush_interval: Duration::from_secs(3600), ..ApiLogOptions::default() };
    let closing = CancellationToken::new();
    let (log, writer) = ApiLog::start(store.clone(), options, closing.clone());
    let now = now_millis();
    for n in 0..5 {
        log.record(&call("full", now + n, &format!("/full/{n}")).logged());
    }
    let dropped = outrigger_telemetry::metrics().render();
    assert!(dropped.contains("outrigger_api_log_dropped_total 2"), "{dropped}");
    closing.cancel();
    writer.await.unwrap();
    assert_eq!(paths(&store, "full").await, ["/full/2", "/full/1", "/full/0"]);
}

#[tokio::test]
async fn a_full_batch_is_written_without_waiting_for_the_flush_interval() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    // A writer that would gather for an hour: the call that fills a batch (1,000 calls) wakes it.
    let options = ApiLogOptions { flush_interval: Duration::from_secs(3600), ..ApiLogOptions::default() };
    let closing = CancellationToken::new();
    let (log, writer) = ApiLog::start(store.clone(), options, closing.clone());
    let now = now_millis();
    log.record(&call("burst", now, "/burst/0").logged());
    // The first call wakes the writer, which starts gathering; the rest arrive while it waits.
    tokio::task::yield_now().await;
    for n in 1..1000 {
        log.record(&call("burst", now + n, &format!("/burst/{n}")).logged());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while paths(&store, "burst").await.len() != 1000 {
        assert!(Instant::now() < deadline, "a full batch waited for the flush interval");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    closing.cancel();
    writer.await.unwrap();
}
