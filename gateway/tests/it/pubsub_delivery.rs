//! Push delivery's behaviour beyond the basics: pausing for an unhealthy app, bulk subscriptions, inbound
//! resiliency, and apps that speak gRPC.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::harness::{identity, serve, TestGateway};
use crate::pubsub::{subscribe_with_dead_letter, subscription, Arrivals, Subscriber};

/// An app whose health check fails gets no deliveries; they resume, complete, once it is healthy again.
#[tokio::test]
async fn deliveries_pause_while_the_app_is_unhealthy() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let gateway = TestGateway::start().await;
    let healthy = Arc::new(AtomicBool::new(true));
    let failed_probes = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(Mutex::new(Vec::<i64>::new()));
    let arrivals = Arrivals::new();
    let app = {
        let (healthy, failed_probes, received) = (healthy.clone(), failed_probes.clone(), received.clone());
        let (probed, delivered) = (arrivals.clone(), arrivals.clone());
        Router::new()
            .route(
                "/healthz",
                axum::routing::get(move || {
                    let (healthy, failed_probes, probed) = (healthy.clone(), failed_probes.clone(), probed.clone());
                    async move {
                        let status = if healthy.load(Ordering::SeqCst) {
                            StatusCode::OK
                        } else {
                            failed_probes.fetch_add(1, Ordering::SeqCst);
                            StatusCode::SERVICE_UNAVAILABLE
                        };
                        probed.record();
                        status
                    }
                }),
            )
            .route(
                "/orders",
                post(move |Json(event): Json<Value>| {
                    let (received, delivered) = (received.clone(), delivered.clone());
                    async move {
                        received.lock().unwrap().push(event["data"]["seq"].as_i64().unwrap_or(-1));
                        delivered.record();
                        Json(json!({ "status": "SUCCESS" }))
                    }
                }),
            )
    };
    let url = serve(app).await;
    let publisher = gateway.app("shop", "checkout").await;
    gateway.app_with_health("shop", "processor", Some(url), Some("/healthz")).await;
    gateway.component("shop", &subscription("orders", "orders", "    default: /orders\n", "", &["processor"])).await;
    let publish = |seq: i64| {
        let (gateway, publisher) = (&gateway, &publisher);
        async move { gateway.publish_seq(publisher, "orders", seq).await }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut probe = 1000;
    loop {
        publish(probe).await;
        if arrivals.within(Duration::from_millis(200), || !received.lock().unwrap().is_empty()).await {
            break;
        }
        assert!(Instant::now() < deadline, "the subscription never started delivering");
        probe += 1;
    }
    // Wait for every probe published to land, then turn unhealthy until the platform has seen the threshold.
    let probes_landed = || (1000..=probe).all(|seq| received.lock().unwrap().contains(&seq));
    arrivals.until(Duration::from_secs(20), || format!("probes 1000..={probe} did not all land"), probes_landed).await;
    healthy.store(false, Ordering::SeqCst);
    let unhealthy_seen = || failed_probes.load(Ordering::SeqCst) >= 3;
    arrivals.until(Duration::from_secs(20), || "the app was not probed unhealthy 3 times".into(), unhealthy_seen).await;
    let before = received.lock().unwrap().len();
    for seq in 0..5 {
        publish(seq).await;
    }
    // This one expires (1 s) while deliveries are paused: it must never be delivered.
    let expiring = gateway
        .http_with(
            "POST",
            "/v1.0/publish/pubsub/orders?metadata.ttlInSeconds=1",
            Some(&publisher),
            Some(r#"{"seq":99}"#),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(expiring.status, StatusCode::NO_CONTENT);
    // Nothing may arrive, so there is no event to wait for: several fetch waits and probe periods, in which a
    // live subscription would have delivered (a delivery ends the wait early, and the test).
    arrivals.within(Duration::from_secs(2), || received.lock().unwrap().len() > before).await;
    assert_eq!(received.lock().unwrap().len(), before, "delivered to an unhealthy app");
    healthy.store(true, Ordering::SeqCst);
    let got = || -> BTreeSet<i64> { received.lock().unwrap().iter().copied().filter(|seq| *seq < 1000).collect() };
    let resumed = || (0..5).all(|seq| got().contains(&seq));
    arrivals.until(Duration::from_secs(20), || format!("deliveries did not resume: {:?}", got()), resumed).await;
    // A fetch wait later the expired message has been settled too, without reaching the app (again no event).
    arrivals.within(Duration::from_millis(1500), || received.lock().unwrap().contains(&99)).await;
    assert!(!received.lock().unwrap().contains(&99), "an expired message was delivered");
}

/// `bulkSubscribe`: events arrive in daprd's bulk envelope; an entry answered RETRY comes again; the request
/// carries the trace context of its last event's delivery span, as daprd's does.
#[tokio::test]
async fn bulk_subscriptions_deliver_batches_with_per_entry_statuses() {
    let gateway = TestGateway::start().await;
    let batches = Arc::new(Mutex::new(Vec::<Value>::new()));
    let arrivals = Arrivals::new();
    let app = {
        let (batches, arrivals) = (batches.clone(), arrivals.clone());
        Router::new().route(
            "/bulk",
            post(move |headers: axum::http::HeaderMap, Json(mut batch): Json<Value>| {
                let (batches, arrivals) = (batches.clone(), arrivals.clone());
                async move {
                    let traceparent = headers.get("traceparent").and_then(|value| value.to_str().ok());
                    batch["traceparentHeader"] = json!(traceparent);
                    let mut seen = batches.lock().unwrap();
                    let retried_before = seen.iter().any(|earlier| {
                        earlier["entries"].as_array().unwrap().iter().any(|e| e["event"]["data"]["seq"] == 3)
                    });
                    let statuses: Vec<Value> = batch["entries"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|entry| {
                            let status =
                                if entry["event"]["data"]["seq"] == 3 && !retried_before { "RETRY" } else { "SUCCESS" };
                            json!({ "entryId": entry["entryId"], "status": status })
                        })
                        .collect();
                    seen.push(batch);
                    drop(seen);
                    arrivals.record();
                    Json(json!({ "statuses": statuses }))
                }
            }),
        )
    };
    let url = serve(app).await;
    let publisher = gateway.app("shop", "checkout").await;
    gateway.app_at("shop", "processor", Some(url)).await;
    let bulk = "  bulkSubscribe:\n    enabled: true\n    maxMessagesCount: 50\n    maxAwaitDurationMs: 500\n";
    gateway.component("shop", &subscription("bulk", "bulk", "    default: /bulk\n", bulk, &["processor"])).await;
    let delivered = |batches: &Vec<Value>| -> BTreeSet<i64> {
        batches
            .iter()
            .flat_map(|batch| {
                batch["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|e| e["event"]["data"]["seq"].as_i64())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut probe = 1000;
    loop {
        gateway.publish_seq(&publisher, "bulk", probe).await;
        if arrivals.within(Duration::from_millis(300), || !delivered(&batches.lock().unwrap()).is_empty()).await {
            break;
        }
        assert!(Instant::now() < deadline, "the bulk subscription never started delivering");
        probe += 1;
    }
    let entries: Vec<Value> = (0..10)
        .map(|seq| json!({ "entryId": seq.to_string(), "event": { "seq": seq }, "contentType": "application/json" }))
        .collect();
    let published = gateway
        .http("POST", "/v1.0-alpha1/publish/bulk/pubsub/bulk", Some(&publisher), Some(&json!(entries).to_string()))
        .await;
    assert_eq!(published.status, StatusCode::NO_CONTENT);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let batches = batches.lock().unwrap().clone();
        let threes = batches
            .iter()
            .flat_map(|b| b["entries"].as_array().unwrap().clone())
            .filter(|e| e["event"]["data"]["seq"] == 3)
            .count();
        // Everything arrived, and the entry answered RETRY came a second time.
        if (0..10).all(|seq| delivered(&batches).contains(&seq)) && threes == 2 {
            assert!(
                batches.iter().any(|batch| batch["entries"].as_array().unwrap().len() > 1),
                "events arrive in batches"
            );
            let batch = &batches[batches.len() - 1];
            assert_eq!(
                (batch["type"].as_str(), batch["topic"].as_str(), batch["pubsubname"].as_str()),
                (Some("com.dapr.event.sent.bulk"), Some("bulk"), Some("pubsub"))
            );
            let last_event = batch["entries"].as_array().unwrap().last().unwrap()["event"]["traceparent"].clone();
            let (event, header) = (last_event.as_str().unwrap(), batch["traceparentHeader"].as_str().unwrap());
            assert_eq!(header[..35], event[..35], "the delivery span belongs to the event's trace: {batch}");
            assert_ne!(header[36..52], event[36..52], "the app is called within a span of its own: {batch}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every event arrived ({threes} deliveries of seq 3): {:?}",
            delivered(&batches)
        );
        arrivals.next(Duration::from_millis(500)).await;
    }
}

/// The inbound retry policy of the pub/sub component governs redeliveries: three attempts, then the
/// dead-letter topic.
#[tokio::test]
async fn resiliency_inbound_retries_decide_when_to_dead_letter() {
    let gateway = TestGateway::start().await;
    let attempts = Arc::new(Mutex::new(Vec::<(String, i64, Instant)>::new()));
    let arrivals = Arrivals::new();
    let app = {
        let (attempts, arrivals) = (attempts.clone(), arrivals.clone());
        Router::new().route(
            "/{*path}",
            post(move |Path(path): Path<String>, Json(event): Json<Value>| {
                let (attempts, arrivals) = (attempts.clone(), arrivals.clone());
                async move {
                    attempts.lock().unwrap().push((
                        path.clone(),
                        event["data"]["seq"].as_i64().unwrap_or(-1),
                        Instant::now(),
                    ));
                    arrivals.record();
                    if path == "refuses" {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        )
    };
    let url = serve(app).await;
    let publisher = gateway.app("shop", "checkout").await;
    gateway.app_at("shop", "processor", Some(url)).await;
    let resiliency = "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: delivery\nspec:\n  policies:\n    retries:\n      twice:\n        policy: constant\n        duration: 300ms\n        maxRetries: 2\n  targets:\n    components:\n      pubsub:\n        inbound:\n          retry: twice\n";
    gateway.component("shop", resiliency).await;
    subscribe_with_dead_letter(&gateway, "fragile", "/refuses").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seq = 0;
    let first_dead = || attempts.lock().unwrap().iter().find(|(path, _, _)| path == "poison").map(|(_, seq, _)| *seq);
    let dead = loop {
        gateway.publish_seq(&publisher, "fragile", seq).await;
        seq += 1;
        if arrivals.within(Duration::from_millis(400), || first_dead().is_some()).await {
            break first_dead().expect("a dead-lettered event");
        }
        assert!(Instant::now() < deadline, "nothing reached the dead-letter topic");
    };
    let tries: Vec<Instant> = attempts
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, s, _)| path == "refuses" && *s == dead)
        .map(|(_, _, at)| *at)
        .collect();
    assert_eq!(tries.len(), 3, "one delivery and two retries, then the dead-letter topic");
    for pair in tries.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(250),
            "retries wait the policy's 300 ms: {:?}",
            pair[1] - pair[0]
        );
    }
}

/// An event no route wants goes to the subscription's dead-letter topic, as daprd sends it there, rather than
/// being acknowledged and forgotten.
#[tokio::test]
async fn an_event_no_route_wants_goes_to_the_dead_letter_topic() {
    let gateway = TestGateway::start().await;
    let subscriber = Subscriber::start().await;
    let publisher = gateway.app("shop", "checkout").await;
    gateway.app_at("shop", "processor", Some(subscriber.url.clone())).await;
    let (routes, extra) =
        ("    rules:\n    - match: 'event.data.seq < 1000'\n      path: /wanted\n", "  deadLetterTopic: poison\n");
    gateway.component("shop", &subscription("picky", "picky", routes, extra, &["processor"])).await;
    gateway.component("shop", &subscription("poison", "poison", "    default: /poison\n", "", &["processor"])).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seq = 0;
    loop {
        gateway.publish_seq(&publisher, "picky", seq).await;
        if subscriber.receives(Duration::from_millis(400), "/wanted", |_| true).await {
            break;
        }
        assert!(Instant::now() < deadline, "the subscription never started delivering");
        seq += 1;
    }
    gateway.publish_seq(&publisher, "picky", 1000).await;
    subscriber.wait_for("/poison", &BTreeSet::from([1000])).await;
    assert!(!subscriber.delivered("/wanted").contains(&1000), "no route wanted it");
}

#[tokio::test]
async fn apps_registered_with_the_grpc_protocol_get_no_http_deliveries() {
    let gateway = TestGateway::start().await;
    let http_subscriber = Subscriber::start().await;
    let grpc_subscriber = Subscriber::start().await;
    let publisher = gateway.app("shop", "checkout").await;
    gateway.app_at("shop", "processor", Some(http_subscriber.url.clone())).await;
    let mut grpc_app = identity("grpc-processor", Some(grpc_subscriber.url.clone()));
    grpc_app.app_protocol = "grpc".into();
    gateway.register("shop", &grpc_app).await;
    let declared = subscription("orders", "orders", "    default: /orders\n", "", &["processor", "grpc-processor"]);
    gateway.component("shop", &declared).await;

    // Both subscriptions are derived in the same scan: once the HTTP app has every message, a delivery loop for
    // the gRPC app would have had them too.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seq = 0;
    loop {
        gateway.publish_seq(&publisher, "orders", seq).await;
        seq += 1;
        if http_subscriber.receives(Duration::from_millis(300), "/orders", |_| true).await {
            break;
        }
        assert!(Instant::now() < deadline, "the HTTP app's subscription never started delivering");
    }
    let batch: BTreeSet<i64> = (1000..1012).collect();
    for seq in &batch {
        gateway.publish_seq(&publisher, "orders", *seq).await;
    }
    http_subscriber.wait_for("/orders", &batch).await;
    let sent = grpc_subscriber.attempts().len();
    assert_eq!(sent, 0, "the gRPC app was sent {sent} HTTP deliveries");
}

/// What an app's redirect target saw of a delivery: the app token it carried and the event's `data.seq`.
type Received = Arc<Mutex<Vec<(Option<String>, i64)>>>;

/// An app route that records what it receives and answers SUCCESS.
fn recording(received: &Received, arrivals: &Arrivals) -> axum::routing::MethodRouter {
    let (received, arrivals) = (Arc::clone(received), arrivals.clone());
    post(move |headers: axum::http::HeaderMap, Json(event): Json<Value>| {
        let (received, arrivals) = (Arc::clone(&received), arrivals.clone());
        async move {
            let token = headers.get("dapr-api-token").and_then(|value| value.to_str().ok()).map(str::to_owned);
            received.lock().unwrap().push((token, event["data"]["seq"].as_i64().unwrap_or(-1)));
            arrivals.record();
            Json(json!({ "status": "SUCCESS" }))
        }
    })
}

/// An app route that answers `status` with `location`.
fn redirecting(status: StatusCode, location: String) -> axum::routing::MethodRouter {
    post(move || {
        let location = location.clone();
        async move { (status, [(axum::http::header::LOCATION, location)]) }
    })
}

/// A delivery the app redirects follows the redirect, as Go's client in daprd does: a 307 repeats the POST
/// with its event on the app's own origin, app token included; a 308 to another origin carries the event but
/// not the token, which is the app's alone.
#[tokio::test]
async fn deliveries_follow_redirects_and_keep_the_app_token_to_its_origin() {
    let gateway = TestGateway::start().await;
    let arrivals = Arrivals::new();
    let (same_origin, elsewhere): (Received, Received) = Default::default();
    let other = serve(Router::new().route("/elsewhere", recording(&elsewhere, &arrivals))).await;
    let app = Router::new()
        .route("/orders", redirecting(StatusCode::TEMPORARY_REDIRECT, "/v2/orders".to_owned()))
        .route("/v2/orders", recording(&same_origin, &arrivals))
        .route("/audit", redirecting(StatusCode::PERMANENT_REDIRECT, format!("{other}/elsewhere")));
    let mut processor = identity("processor", Some(serve(app).await));
    processor.app_token = Some("the-apps-own-token".to_owned());
    gateway.register("shop", &processor).await;
    let publisher = gateway.app("shop", "checkout").await;
    for topic in ["orders", "audit"] {
        let routes = format!("    default: /{topic}\n");
        gateway.component("shop", &subscription(topic, topic, &routes, "", &["processor"])).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seq = 0;
    let both_arrived = |seq: i64| {
        let has = |received: &Received| received.lock().unwrap().iter().any(|(_, got)| *got == seq);
        has(&same_origin) && has(&elsewhere)
    };
    loop {
        gateway.publish_seq(&publisher, "orders", seq).await;
        gateway.publish_seq(&publisher, "audit", seq).await;
        if arrivals.within(Duration::from_millis(300), || both_arrived(seq)).await {
            break;
        }
        assert!(Instant::now() < deadline, "the redirected deliveries never arrived");
        seq += 1;
    }
    let tokens = |received: &Received| -> BTreeSet<Option<String>> {
        received.lock().unwrap().iter().map(|(token, _)| token.clone()).collect()
    };
    assert_eq!(tokens(&same_origin), BTreeSet::from([Some("the-apps-own-token".to_owned())]));
    assert_eq!(tokens(&elsewhere), BTreeSet::from([None]), "the token went to another origin");
}
