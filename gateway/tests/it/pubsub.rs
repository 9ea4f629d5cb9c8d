//! Publish through the gateway, push delivery to a real HTTP subscriber app: daprd's semantics end to end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::harness::{serve, TestGateway};

/// What the subscriber app saw: every attempt, by path.
#[derive(Default)]
struct Seen {
    attempts: Vec<(String, Value)>,
}

/// Tells waiters that an app received something, so tests wait for deliveries instead of sleeping.
#[derive(Clone)]
pub(crate) struct Arrivals(Arc<watch::Sender<u64>>);

impl Arrivals {
    pub(crate) fn new() -> Arrivals {
        Arrivals(Arc::new(watch::channel(0).0))
    }

    /// An app received a request.
    pub(crate) fn record(&self) {
        self.0.send_modify(|count| *count += 1);
    }

    /// Whether `done` holds within `within`, checked now and again after each arrival.
    pub(crate) async fn within(&self, within: Duration, mut done: impl FnMut() -> bool) -> bool {
        let mut arrivals = self.0.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            arrivals.borrow_and_update();
            if done() {
                return true;
            }
            if tokio::time::timeout_at(deadline, arrivals.changed()).await.is_err() {
                return done();
            }
        }
    }

    /// Waits for the next arrival, at most `within`.
    pub(crate) async fn next(&self, within: Duration) {
        let mut arrivals = self.0.subscribe();
        let _ = tokio::time::timeout(within, arrivals.changed()).await;
    }

    /// Waits for `done`, failing with `what` after `within`.
    pub(crate) async fn until(&self, within: Duration, what: impl Fn() -> String, done: impl FnMut() -> bool) {
        assert!(self.within(within, done).await, "{}", what());
    }
}

/// A subscriber app on a real port. It fails the first two attempts and every fifth one (with 500), and
/// answers 404 on `/missing`.
pub(crate) struct Subscriber {
    pub(crate) url: String,
    seen: Arc<Mutex<Seen>>,
    arrivals: Arrivals,
}

impl Subscriber {
    pub(crate) async fn start() -> Subscriber {
        let (seen, arrivals) = (Arc::new(Mutex::new(Seen::default())), Arrivals::new());
        let app = Router::new().route("/{*path}", post(receive)).with_state((Arc::clone(&seen), arrivals.clone()));
        Subscriber { url: serve(app).await, seen, arrivals }
    }

    /// Successful deliveries by path: the `data.seq` of each event, deduplicated.
    pub(crate) fn delivered(&self, path: &str) -> BTreeSet<i64> {
        let seen = self.seen.lock().unwrap();
        let attempts = &seen.attempts;
        attempts
            .iter()
            .enumerate()
            .filter(|(index, (at, _))| at == path && !fails(*index))
            .filter_map(|(_, (_, event))| event["data"]["seq"].as_i64())
            .collect()
    }

    pub(crate) fn attempts(&self) -> Vec<(String, Value)> {
        self.seen.lock().unwrap().attempts.clone()
    }

    /// Waits until `path` received every sequence number in `expected`.
    pub(crate) async fn wait_for(&self, path: &str, expected: &BTreeSet<i64>) {
        let what = || format!("{path} got {:?} of {expected:?}", self.delivered(path));
        self.arrivals.until(Duration::from_secs(60), what, || expected.is_subset(&self.delivered(path))).await;
    }

    /// Whether `path` received anything with a `data.seq` matching `wanted` within `within`.
    pub(crate) async fn receives(&self, within: Duration, path: &str, wanted: impl Fn(i64) -> bool) -> bool {
        self.arrivals.within(within, || self.delivered(path).into_iter().any(&wanted)).await
    }
}

/// The scripted failures: attempts 0 and 1, then every fifth.
fn fails(index: usize) -> bool {
    index < 2 || index % 5 == 4
}

async fn receive(
    State((seen, arrivals)): State<(Arc<Mutex<Seen>>, Arrivals)>,
    Path(path): Path<String>,
    Json(event): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let path = format!("/{path}");
    let mut seen = seen.lock().unwrap();
    let index = seen.attempts.len();
    seen.attempts.push((path.clone(), event));
    drop(seen);
    arrivals.record();
    if path == "/missing" {
        return (StatusCode::NOT_FOUND, Json(json!({})));
    }
    if fails(index) {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": "scripted failure" })));
    }
    (StatusCode::OK, Json(json!({ "status": "SUCCESS" })))
}

/// Subscribes `processor` of project `shop` to `fragile` (at `route`, subscription `name`) with the dead-letter
/// topic `poison`, and to `poison` at `/poison`.
pub(crate) async fn subscribe_with_dead_letter(gateway: &TestGateway, name: &str, route: &str) {
    let fragile = subscription(
        name,
        "fragile",
        &format!("    default: {route}\n"),
        "  deadLetterTopic: poison\n",
        &["processor"],
    );
    gateway.component("shop", &fragile).await;
    gateway.component("shop", &subscription("poison", "poison", "    default: /poison\n", "", &["processor"])).await;
}

pub(crate) fn subscription(name: &str, topic: &str, routes: &str, extra: &str, scopes: &[&str]) -> String {
    subscription_on("pubsub", name, topic, routes, extra, scopes)
}

/// A `Subscription` document `name` to `topic` of the pub/sub component `pubsub`.
pub(crate) fn subscription_on(
    pubsub: &str,
    name: &str,
    topic: &str,
    routes: &str,
    extra: &str,
    scopes: &[&str],
) -> String {
    let scopes: String = scopes.iter().map(|app| format!("\n- {app}")).collect();
    format!(
        "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: {name}\nspec:\n  pubsubname: {pubsub}\n  topic: {topic}\n  routes:\n{routes}{extra}scopes:{scopes}\n"
    )
}

#[tokio::test]
async fn every_message_arrives_despite_failures_and_routes_apply() {
    let gateway = TestGateway::start().await;
    let subscriber = Subscriber::start().await;
    let publisher = gateway.app("shop", "checkout").await;
    let processor = gateway.app_at("shop", "processor", Some(subscriber.url.clone())).await;
    // Full CEL as daprd runs it: a macro, and arithmetic on JSON numbers (doubles).
    let rule = "[1.0, 2.0].exists(n, n * event.data.priority > 5.0)";
    let routes = format!("    rules:\n    - match: '{rule}'\n      path: /urgent\n    default: /orders\n");
    gateway.component("shop", &subscription("orders", "orders", &routes, "", &["processor"])).await;
    let listed = gateway.http("GET", "/v1.0/metadata", Some(&processor), None).await.json()["subscriptions"].clone();
    assert_eq!(
        listed,
        json!([{ "pubsubname": "pubsub", "topic": "orders", "type": "DECLARATIVE", "rules": [
            { "match": rule, "path": "/urgent" }, { "match": "", "path": "/orders" },
        ] }])
    );
    let unscoped = gateway.http("GET", "/v1.0/metadata", Some(&publisher), None).await.json();
    assert_eq!(unscoped["subscriptions"], json!([]), "the subscription is scoped to processor");

    // The deliverer picks the new subscription up within its rescan period; messages published after its
    // consumer group exists are all delivered. Publish one probe until it arrives, then the real batch.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut probe = 1000;
    loop {
        let body = json!({ "seq": probe, "priority": 1 }).to_string();
        let published = gateway
            .http_with(
                "POST",
                "/v1.0/publish/pubsub/orders",
                Some(&publisher),
                Some(&body),
                &[("content-type", "application/json")],
            )
            .await;
        assert_eq!(published.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&published.body));
        if subscriber.receives(Duration::from_millis(300), "/orders", |seq| seq == probe).await {
            break;
        }
        assert!(Instant::now() < deadline, "the subscription never started delivering");
        probe += 1;
    }

    let mut expected_orders = BTreeSet::new();
    let mut expected_urgent = BTreeSet::new();
    for seq in 0..12 {
        let priority = if seq % 3 == 0 { 9 } else { 1 };
        let body = json!({ "seq": seq, "priority": priority }).to_string();
        let published = gateway
            .http_with(
                "POST",
                "/v1.0/publish/pubsub/orders",
                Some(&publisher),
                Some(&body),
                &[
                    ("content-type", "application/json"),
                    ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                ],
            )
            .await;
        assert_eq!(published.status, StatusCode::NO_CONTENT);
        if priority > 5 {
            expected_urgent.insert(seq)
        } else {
            expected_orders.insert(seq)
        };
    }
    subscriber.wait_for("/orders", &expected_orders).await;
    subscriber.wait_for("/urgent", &expected_urgent).await;

    // Every attempt carried daprd's CloudEvent.
    let (_, event) = subscriber.attempts().into_iter().find(|(_, event)| event["data"]["seq"] == 3).unwrap();
    for (field, value) in [
        ("source", json!("checkout")),
        ("topic", json!("orders")),
        ("pubsubname", json!("pubsub")),
        ("type", json!("com.dapr.event.sent")),
        ("specversion", json!("1.0")),
        ("datacontenttype", json!("application/json")),
    ] {
        assert_eq!(event[field], value, "{field} in {event}");
    }
    // The event names the publish call's span, in the publisher's trace.
    let traceparent = event["traceparent"].as_str().unwrap();
    assert!(traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"), "{event}");
    assert_ne!(traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    assert!(event["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(event.get("tracestate").is_some() && event.get("traceid").is_some(), "{event}");
}

#[tokio::test]
async fn drops_and_exhausted_retries_go_to_the_dead_letter_topic() {
    let gateway = TestGateway::start().await;
    let subscriber = Subscriber::start().await;
    let publisher = gateway.app("shop", "checkout").await;
    gateway.app_at("shop", "processor", Some(subscriber.url.clone())).await;
    subscribe_with_dead_letter(&gateway, "broken", "/missing").await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seq = 0;
    loop {
        gateway.publish_seq(&publisher, "fragile", seq).await;
        seq += 1;
        if subscriber.receives(Duration::from_millis(300), "/poison", |_| true).await {
            break;
        }
        assert!(Instant::now() < deadline, "nothing reached the dead-letter topic: {:?}", subscriber.attempts());
    }
    // A 404 means "drop": each fragile event was tried once, never again.
    let fragile: Vec<i64> = subscriber
        .attempts()
        .iter()
        .filter(|(path, _)| path == "/missing")
        .filter_map(|(_, e)| e["data"]["seq"].as_i64())
        .collect();
    let unique: BTreeSet<i64> = fragile.iter().copied().collect();
    assert_eq!(fragile.len(), unique.len(), "404 is not retried: {fragile:?}");
}

#[tokio::test]
async fn publish_errors_and_topic_scopes() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "checkout").await;
    let other = gateway.app("shop", "auditor").await;
    let t = Some(token.as_str());
    gateway
        .http("POST", "/v1.0/publish/nosuch/orders", t, Some("{}"))
        .await
        .dapr_error(StatusCode::NOT_FOUND, "ERR_PUBSUB_NOT_FOUND");
    gateway
        .http_with("POST", "/v1.0/publish/pubsub/orders?metadata.ttlInSeconds=soon", t, Some("{}"), &[])
        .await
        .dapr_error(StatusCode::BAD_REQUEST, "ERR_PUBSUB_REQUEST_METADATA");
    gateway
        .http_with(
            "POST",
            "/v1.0/publish/pubsub/orders",
            t,
            Some("[1,2]"),
            &[("content-type", "application/cloudevents+json")],
        )
        .await
        .dapr_error(StatusCode::BAD_REQUEST, "ERR_PUBSUB_CLOUD_EVENTS_SER");

    let scoped = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: scoped\nspec:\n  type: pubsub.in-memory\n  version: v1\n  metadata:\n  - name: publishingScopes\n    value: checkout=orders\n  - name: protectedTopics\n    value: audit\n";
    gateway.component("shop", scoped).await;
    assert_eq!(gateway.http("POST", "/v1.0/publish/scoped/orders", t, Some("{}")).await.status, StatusCode::NO_CONTENT);
    gateway
        .http("POST", "/v1.0/publish/scoped/refunds", t, Some("{}"))
        .await
        .dapr_error(StatusCode::FORBIDDEN, "ERR_PUBSUB_FORBIDDEN");
    gateway
        .http("POST", "/v1.0/publish/scoped/audit", Some(&other), Some("{}"))
        .await
        .dapr_error(StatusCode::FORBIDDEN, "ERR_PUBSUB_FORBIDDEN");

    // Bulk: every entry needs its own id; accepted entries answer 204.
    let bulk = json!([
        { "entryId": "1", "event": { "a": 1 }, "contentType": "application/json" },
        { "entryId": "2", "event": "text", "contentType": "text/plain" },
    ])
    .to_string();
    assert_eq!(
        gateway.http("POST", "/v1.0-alpha1/publish/bulk/pubsub/orders", t, Some(&bulk)).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        gateway.http("POST", "/v1.0/publish/bulk/pubsub/orders", t, Some(&bulk)).await.status,
        StatusCode::NO_CONTENT
    );
    let twice = json!([{ "entryId": "1", "event": 1 }, { "entryId": "1", "event": 2 }]).to_string();
    gateway
        .http("POST", "/v1.0/publish/bulk/pubsub/orders", t, Some(&twice))
        .await
        .dapr_error(StatusCode::BAD_REQUEST, "ERR_PUBSUB_EVENTS_SER");
    let metadata = gateway.http("GET", "/v1.0/metadata", t, None).await.json();
    let names: BTreeMap<String, String> = metadata["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c["type"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(names.get("pubsub").map(String::as_str), Some("pubsub.outrigger"));
    assert_eq!(names.get("scoped").map(String::as_str), Some("pubsub.in-memory"));
}

#[tokio::test]
async fn tenants_never_receive_each_others_messages() {
    let gateway = TestGateway::start().await;
    let alpha_subscriber = Subscriber::start().await;
    let beta_subscriber = Subscriber::start().await;
    let alpha = gateway.app("alpha", "checkout").await;
    let beta = gateway.app("beta", "checkout").await;
    gateway.app_at("alpha", "processor", Some(alpha_subscriber.url.clone())).await;
    gateway.app_at("beta", "processor", Some(beta_subscriber.url.clone())).await;
    for project in ["alpha", "beta"] {
        gateway
            .component(project, &subscription("orders", "orders", "    default: /orders\n", "", &["processor"]))
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seq = 0;
    loop {
        for (token, offset) in [(&alpha, 0), (&beta, 1_000_000)] {
            gateway.publish_seq(token, "orders", seq + offset).await;
        }
        seq += 1;
        let alpha_started = alpha_subscriber.receives(Duration::from_millis(300), "/orders", |_| true).await;
        if alpha_started && beta_subscriber.receives(Duration::from_millis(300), "/orders", |_| true).await {
            break;
        }
        assert!(Instant::now() < deadline, "deliveries never started");
    }
    assert!(alpha_subscriber.delivered("/orders").iter().all(|seq| *seq < 1_000_000), "alpha got beta's messages");
    assert!(beta_subscriber.delivered("/orders").iter().all(|seq| *seq >= 1_000_000), "beta got alpha's messages");
}

/// Dapr's pub/sub conformance case on every broker type: the subscriber fails the first two attempts and every
/// fifth; every message still arrives; and once the subscription is deleted, nothing more is delivered.
async fn conformance_on(component_type: &str, metadata: &str) {
    let gateway = TestGateway::start().await;
    let subscriber = Subscriber::start().await;
    let publisher = gateway.app("shop", "checkout").await;
    gateway.app_at("shop", "processor", Some(subscriber.url.clone())).await;
    let unique = uuid_like();
    let component = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: bus\nspec:\n  type: {component_type}\n  version: v1\n  metadata:\n{metadata}"
    );
    gateway.component("shop", &component).await;
    let topic = format!("conformance-{unique}");
    let declared = subscription("conformance", &topic, "    default: /orders\n", "", &["processor"])
        .replace("pubsubname: pubsub", "pubsubname: bus");
    gateway.component("shop", &declared).await;

    let publish = |seq: i64| {
        let (gateway, publisher, topic) = (&gateway, &publisher, &topic);
        async move {
            let body = json!({ "seq": seq }).to_string();
            let path = format!("/v1.0/publish/bus/{topic}");
            let answer = gateway
                .http_with("POST", &path, Some(publisher), Some(&body), &[("content-type", "application/json")])
                .await;
            assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&answer.body));
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut probe = 1000;
    loop {
        publish(probe).await;
        if subscriber.receives(Duration::from_millis(300), "/orders", |seq| seq >= 1000).await {
            break;
        }
        assert!(Instant::now() < deadline, "{component_type}: the subscription never started delivering");
        probe += 1;
    }
    for seq in 0..12 {
        publish(seq).await;
    }
    subscriber.wait_for("/orders", &(0..12).collect()).await;

    // Deleting the subscription stops deliveries.
    let mut tx = gateway.store.begin().await.unwrap();
    let project = tx.project(&outrigger_store::OrgId::default_org(), "shop").await.unwrap();
    tx.delete_resource(&project.id, outrigger_resources::Kind::Subscription, "conformance").await.unwrap();
    tx.commit().await.unwrap();
    gateway.changed("shop").await;
    let settled = subscriber.attempts().len();
    for seq in 100..105 {
        publish(seq).await;
    }
    // Nothing should arrive, so there is no event to wait for: allow a live subscription ample time (several
    // fetch waits) to deliver what was just published, returning early if it does.
    subscriber.arrivals.within(Duration::from_secs(3), || subscriber.attempts().len() > settled).await;
    let late: Vec<Value> =
        subscriber.attempts()[settled..].iter().map(|(_, event)| event["data"]["seq"].clone()).collect();
    assert!(
        late.iter().all(|seq| seq.as_i64().is_some_and(|seq| seq < 100)),
        "{component_type}: delivered after the subscription was deleted: {late:?}"
    );
}

fn uuid_like() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

#[tokio::test]
async fn conformance_in_memory() {
    conformance_on("pubsub.in-memory", "    []\n").await;
}

#[tokio::test]
async fn conformance_redis_streams() {
    conformance_on("pubsub.redis", "  - name: redisHost\n    value: 127.0.0.1:6379\n").await;
}

#[tokio::test]
async fn conformance_jetstream() {
    let stream = format!("CONFORMANCE{}", uuid_like().to_uppercase());
    conformance_on(
        "pubsub.jetstream",
        &format!("  - name: natsURL\n    value: nats://127.0.0.1:4222\n  - name: streamName\n    value: {stream}\n"),
    )
    .await;
    let client = async_nats::connect("nats://127.0.0.1:4222").await.unwrap();
    let _ = async_nats::jetstream::new(client).delete_stream(stream).await;
}
