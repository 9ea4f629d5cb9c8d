//! The KV and topic explorers (`/projects/{p}/kv`, `/projects/{p}/topics`), in process over a real SQLite
//! kvstore and SQL queue as the all-in-one opens them, through the workers' explorers with the binary's thin
//! adapters (its own file, `src/explorers.rs`): listing, values, deletes, counts, roles, and that a project never
//! reaches another's keys or topics whatever it sends.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use outrigger_store::ProjectId;
use outrigger_workers::explorer::{KvExplorer, TopicExplorer};
use outrigger_workers::pubsub::{Broker, SqlBroker, SqlBrokerOptions};
use outrigger_workers::state::{Concurrency, SetRequest, StateStore};
use outrigger_workers::{managed_kvstore_namespace, managed_pubsub_namespace};
use serde_json::{json, Value};

use crate::harness::TestApp;

// The binary's adapters themselves, so that what is tested here is what it runs.
#[path = "../../../src/explorers.rs"]
mod adapters;
use adapters::{ManagedKvExplorer, ManagedKvstoreUsage, ManagedTopicsExplorer};

/// A control API with a managed kvstore and pubsub in SQLite files, and those stores.
struct Explored {
    app: TestApp,
    kvstore: Arc<dyn StateStore>,
    broker: Arc<dyn Broker>,
    _files: tempfile::TempDir,
}

impl Explored {
    async fn start() -> Explored {
        let files = tempfile::tempdir().unwrap();
        let metadata: BTreeMap<String, String> = [
            ("connectionString".to_owned(), files.path().join("kvstore.db").display().to_string()),
            ("tableName".to_owned(), "kvstore".to_owned()),
        ]
        .into();
        let kvstore = outrigger_workers::state::open("state.sqlite", &metadata).await.unwrap();
        let options = SqlBrokerOptions::new(files.path().join("pubsub.db").display().to_string(), "pubsub");
        let broker: Arc<dyn Broker> = Arc::new(SqlBroker::open(options).await.unwrap());
        let (kv, topics) = (kvstore.clone(), broker.clone());
        let app = TestApp::sqlite_with(move |options| {
            options.stored_bytes = Some(Arc::new(ManagedKvstoreUsage(kv.clone())));
            options.managed_kv = Some(Arc::new(ManagedKvExplorer(KvExplorer::new(kv))));
            options.managed_topics =
                Some(Arc::new(ManagedTopicsExplorer { explorer: TopicExplorer::new(topics), worker: None }));
        })
        .await;
        Explored { app, kvstore, broker, _files: files }
    }

    /// The project's internal id, from its files directory (`projects/<id>`).
    async fn project_id(&self, project: &str) -> ProjectId {
        let answer = self.app.get(&format!("/api/v1/projects/{project}")).await.expect(StatusCode::OK).json();
        let dir = answer["filesDir"].as_str().unwrap();
        ProjectId::received(dir.strip_prefix("projects/").unwrap().to_owned())
    }

    /// Writes the App ID's `key` as the gateway stores it.
    async fn write(&self, project: &ProjectId, app_id: &str, key: &str, value: &[u8], ttl_seconds: Option<u64>) {
        let request = SetRequest {
            key: format!("{}{app_id}||{key}", managed_kvstore_namespace(project)),
            value: value.to_vec(),
            etag: None,
            concurrency: Concurrency::LastWrite,
            ttl_seconds,
        };
        self.kvstore.set(&request).await.unwrap();
    }
}

/// Every page of a listing, following its tokens.
async fn list_all(app: &TestApp, path: &str) -> Vec<Value> {
    let (mut items, mut token) = (Vec::new(), None::<String>);
    loop {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = match &token {
            Some(token) => format!("{path}{separator}continuationToken={token}"),
            None => path.to_owned(),
        };
        let page = app.get(&url).await.expect(StatusCode::OK).json();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["continuationToken"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => return items,
        }
    }
}

fn keys_of(items: &[Value]) -> Vec<(String, String)> {
    items.iter().map(|item| (item["appId"].as_str().unwrap().into(), item["key"].as_str().unwrap().into())).collect()
}

#[tokio::test]
async fn kv_explorer_lists_shows_and_deletes_an_app_ids_keys() {
    let explored = Explored::start().await;
    let app = &explored.app;
    app.project("shop").await;
    let shop = explored.project_id("shop").await;
    for index in 0..5 {
        explored.write(&shop, "orders", &format!("order-{index}"), b"{\"total\":3}", None).await;
    }
    explored.write(&shop, "orders", "customers/ada", b"{\"name\":\"Ada\"}", Some(3600)).await;
    explored.write(&shop, "billing", "raw", &[0, 159, 146, 150], None).await;

    let every = list_all(app, "/api/v1/projects/shop/kv?limit=3").await;
    assert_eq!(every.len(), 7, "{every:?}");
    let orders = list_all(app, "/api/v1/projects/shop/kv?appId=orders&prefix=order-&limit=2").await;
    let expected: Vec<(String, String)> = (0..5).map(|i| ("orders".into(), format!("order-{i}"))).collect();
    assert_eq!(keys_of(&orders), expected, "one App ID's keys with the prefix, in key order");
    assert_eq!(orders[0]["size"], 11);
    assert!(orders[0]["etag"].is_string());
    let ada = every.iter().find(|item| item["key"] == "customers/ada").unwrap();
    assert!(ada["expiresAt"].is_string(), "{ada}");
    // Usage measures the same store: at least the values' bytes and the keys' (as stored: with Dapr's `<appId>||`
    // and the project's namespace before them).
    let sizes: u64 = every.iter().map(|item| item["size"].as_u64().unwrap()).sum();
    let names: usize =
        every.iter().map(|item| item["appId"].as_str().unwrap().len() + 2 + item["key"].as_str().unwrap().len()).sum();
    let usage = app.get("/api/v1/projects/shop/usage").await.expect(StatusCode::OK).json();
    assert!(usage["storedStateBytes"].as_u64().unwrap() > sizes + names as u64, "{usage}");

    // A value as text, bytes that are not UTF-8 in base64; a key with a slash is one encoded path segment.
    let item = app.get("/api/v1/projects/shop/kv/orders/customers%2Fada").await.expect(StatusCode::OK).json();
    assert_eq!(item["value"], "{\"name\":\"Ada\"}");
    assert_eq!((item["appId"].as_str(), item["key"].as_str()), (Some("orders"), Some("customers/ada")));
    let raw = app.get("/api/v1/projects/shop/kv/billing/raw").await.expect(StatusCode::OK).json();
    assert_eq!(raw["valueBase64"], "AJ+Slg==");
    assert!(raw.get("value").is_none());

    app.delete("/api/v1/projects/shop/kv/orders/order-1").await.expect(StatusCode::NO_CONTENT);
    app.get("/api/v1/projects/shop/kv/orders/order-1").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.delete("/api/v1/projects/shop/kv/orders/order-1").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(list_all(app, "/api/v1/projects/shop/kv?appId=orders").await.len(), 5);
    let trail = app.get("/api/v1/orgs/default/audit?action=kv.delete").await.expect(StatusCode::OK).json();
    let events = trail["items"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{trail}");
    assert_eq!(events[0]["project"], "shop");

    // What the query cannot mean is 400.
    let bad =
        |path: &'static str| async move { app.get(path).await.expect_error(StatusCode::BAD_REQUEST, "invalid_query") };
    bad("/api/v1/projects/shop/kv?prefix=order").await;
    bad("/api/v1/projects/shop/kv?appId=Not%20An%20App").await;
    bad("/api/v1/projects/shop/kv?continuationToken=garbage").await;
    bad("/api/v1/projects/shop/kv?limit=0").await;
}

#[tokio::test]
async fn kv_explorer_offers_deletes_to_developers_only() {
    let explored = Explored::start().await;
    let app = &explored.app;
    app.org("acme").await;
    app.member("acme", "ann@acme.test", "admin", None).await;
    let ann = app.access_token("ann@acme.test", "acme").await;
    app.post_as(&ann, "/api/v1/projects", json!({"name": "shop"})).await.expect(StatusCode::CREATED);
    app.member("acme", "vic@acme.test", "viewer", Some("shop")).await;
    app.member("acme", "dev@acme.test", "developer", Some("shop")).await;
    let (vic, dev) = (app.access_token("vic@acme.test", "acme").await, app.access_token("dev@acme.test", "acme").await);
    let answer =
        app.call_as(&ann, None, Method::GET, "/api/v1/projects/shop", None).await.expect(StatusCode::OK).json();
    let shop = ProjectId::received(answer["filesDir"].as_str().unwrap().trim_start_matches("projects/").to_owned());
    explored.write(&shop, "orders", "a", b"1", None).await;
    let listed = app.get_as(&vic, "/api/v1/projects/shop/kv").await.expect(StatusCode::OK).json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    app.get_as(&vic, "/api/v1/projects/shop/kv/orders/a").await.expect(StatusCode::OK);
    let path = "/api/v1/projects/shop/kv/orders/a";
    app.call_as(&vic, None, Method::DELETE, path, None).await.expect_error(StatusCode::FORBIDDEN, "forbidden");
    app.call_as(&dev, None, Method::DELETE, path, None).await.expect(StatusCode::NO_CONTENT);
    // The topic explorer is a viewer's too.
    app.get_as(&vic, "/api/v1/projects/shop/topics").await.expect(StatusCode::OK);
}

/// Project `a` never lists, reads or deletes project `b`'s keys, nor sees its topics: not with prefixes full of
/// SQL LIKE and Redis MATCH metacharacters or `||`, not with a continuation token made from `b`'s listing; `b`'s
/// keys read and delete as absent (404) through `a`.
#[tokio::test]
async fn security_explorer_isolation_keeps_each_project_to_its_own_keys_and_topics() {
    let explored = Explored::start().await;
    let app = &explored.app;
    app.project("a").await;
    app.project("b").await;
    let (a, b) = (explored.project_id("a").await, explored.project_id("b").await);
    explored.write(&a, "orders", "mine", b"a's", None).await;
    let crafted = ["secret", "%", "_", "*", "?", "[x]", "||", "x||y", "\\"];
    for key in crafted {
        explored.write(&b, "orders", key, b"b's", None).await;
    }
    let listed = list_all(app, "/api/v1/projects/a/kv").await;
    assert_eq!(keys_of(&listed), [("orders".to_owned(), "mine".to_owned())]);
    for prefix in ["%25", "_", "*", "%3F", "%5B", "%7C%7C", "%7C", "%5C", "..%2F", "%25secret", "orders%7C%7C"] {
        let listed = list_all(app, &format!("/api/v1/projects/a/kv?appId=orders&prefix={prefix}")).await;
        assert!(listed.is_empty(), "prefix {prefix} reached {listed:?}");
    }
    let b_page = app.get("/api/v1/projects/b/kv?limit=1").await.expect(StatusCode::OK).json();
    let b_token = b_page["continuationToken"].as_str().expect("b has more than one key");
    let resumed = list_all(app, &format!("/api/v1/projects/a/kv?continuationToken={b_token}")).await;
    assert!(keys_of(&resumed).iter().all(|(_, key)| key == "mine"), "{resumed:?}");
    for key in ["secret", "%25", "_", "*", "%3F", "%5Bx%5D", "%7C%7C", "x%7C%7Cy", "%5C"] {
        let path = format!("/api/v1/projects/a/kv/orders/{key}");
        app.get(&path).await.expect_error(StatusCode::NOT_FOUND, "not_found");
        app.delete(&path).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!(list_all(app, "/api/v1/projects/b/kv").await.len(), crafted.len(), "b's keys are all there");

    // Topics: b's groups and messages do not show through a.
    let (a_ns, b_ns) = (managed_pubsub_namespace(&a), managed_pubsub_namespace(&b));
    explored.broker.ensure_group(&format!("{b_ns}orders"), &format!("{b_ns}orders")).await.unwrap();
    explored.broker.publish(&format!("{b_ns}orders"), b"b's").await.unwrap();
    explored.broker.ensure_group(&format!("{a_ns}own"), &format!("{a_ns}orders")).await.unwrap();
    let topics = app.get("/api/v1/projects/a/topics").await.expect(StatusCode::OK).json();
    let names: Vec<&str> = topics["items"].as_array().unwrap().iter().map(|t| t["topic"].as_str().unwrap()).collect();
    assert_eq!(names, ["own"], "{topics}");
    assert_eq!(topics["items"][0]["messages"], 0);
}

#[tokio::test]
async fn topic_explorer_shows_subscriptions_pending_and_dead_lettered_counts() {
    let explored = Explored::start().await;
    let app = &explored.app;
    app.project("shop").await;
    app.app_id("shop", "checkout").await;
    app.app_id("shop", "orders").await;
    let subscription = "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: orders-sub\nspec:\n  \
        pubsubname: pubsub\n  topic: orders\n  routes:\n    default: /orders\n  deadLetterTopic: orders-dead\nscopes:\n- orders\n";
    app.put_yaml("/api/v1/projects/shop/subscriptions/orders-sub", subscription).await.expect(StatusCode::CREATED);
    let shop = explored.project_id("shop").await;
    let ns = managed_pubsub_namespace(&shop);
    let broker = &explored.broker;

    // Before any delivery started: the subscription shows, with no group to count yet.
    let topics = app.get("/api/v1/projects/shop/topics").await.expect(StatusCode::OK).json();
    assert_eq!(topics["countLimit"], 10_000);
    assert_eq!(topics["groupsListed"], true);
    let orders = &topics["items"].as_array().unwrap().iter().find(|t| t["topic"] == "orders").unwrap().clone();
    assert_eq!(orders["subscriptions"][0]["appId"], "orders");
    assert_eq!(orders["subscriptions"][0]["kind"], "declarative");
    assert_eq!(orders["subscriptions"][0]["name"], "orders-sub");
    assert!(orders["subscriptions"][0].get("pending").is_none(), "{orders}");

    // The delivery's group exists and three messages wait; two were dead-lettered; another App ID's group holds a
    // topic no declaration names (a programmatic subscription).
    broker.ensure_group(&format!("{ns}orders"), &format!("{ns}orders")).await.unwrap();
    for index in 0..3 {
        broker.publish(&format!("{ns}orders"), format!("m{index}").as_bytes()).await.unwrap();
    }
    broker.publish(&format!("{ns}orders-dead"), b"d1").await.unwrap();
    broker.publish(&format!("{ns}orders-dead"), b"d2").await.unwrap();
    broker.ensure_group(&format!("{ns}audit"), &format!("{ns}checkout")).await.unwrap();
    broker.publish(&format!("{ns}audit"), b"a1").await.unwrap();

    let topics = app.get("/api/v1/projects/shop/topics").await.expect(StatusCode::OK).json();
    let by_name: BTreeMap<&str, &Value> =
        topics["items"].as_array().unwrap().iter().map(|t| (t["topic"].as_str().unwrap(), t)).collect();
    assert_eq!(by_name.keys().copied().collect::<Vec<_>>(), ["audit", "orders", "orders-dead"], "{topics}");
    let subscription = &by_name["orders"]["subscriptions"][0];
    assert_eq!(subscription["pending"], 3, "{topics}");
    assert_eq!(subscription["deadLetterTopic"], "orders-dead");
    assert_eq!(subscription["deadLettered"], 2);
    assert_eq!(by_name["orders"]["messages"], 3);
    assert_eq!(by_name["orders-dead"]["deadLetter"], true);
    assert_eq!(by_name["orders-dead"]["messages"], 2);
    let audit = &by_name["audit"]["subscriptions"][0];
    assert_eq!((audit["appId"].as_str(), audit["kind"].as_str()), (Some("checkout"), Some("group")));
    assert_eq!(audit["pending"], 1);
}

#[tokio::test]
async fn explorers_answer_404_without_the_managed_stores() {
    let explored = Explored::start().await;
    let app = &explored.app;
    app.post_json("/api/v1/projects", json!({"name": "bare", "managedKvstore": false, "managedPubsub": false}))
        .await
        .expect(StatusCode::CREATED);
    for path in ["/api/v1/projects/bare/kv", "/api/v1/projects/bare/kv/orders/a", "/api/v1/projects/bare/topics"] {
        let message = app.get(path).await.expect_error(StatusCode::NOT_FOUND, "not_found");
        assert!(message.contains("no managed"), "{message}");
    }
    // A control API that reaches no managed store.
    let plain = TestApp::sqlite().await;
    plain.project("shop").await;
    plain.get("/api/v1/projects/shop/kv").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    plain.get("/api/v1/projects/shop/topics").await.expect_error(StatusCode::NOT_FOUND, "not_found");
}
