//! The console's explorers over the managed stores (`outrigger_workers::explorer`), against every backend that can
//! be the managed `kvstore` (SQLite, PostgreSQL, Redis; memory too) or `pubsub` (the SQL queue, JetStream, Redis):
//! listing an App ID's keys a page at a time, one value, a delete, counting what groups have not acknowledged, and
//! above all that a project never reaches another's keys or topics, whatever prefix or token it sends.

use std::collections::BTreeSet;
use std::time::Duration;

use outrigger_store::ProjectId;
use outrigger_workers::explorer::{ExploredKey, ExplorerError, KvExplorer, TopicExplorer};
use outrigger_workers::managed_kvstore_namespace;
use outrigger_workers::state::SetRequest;

use crate::backends::{put, Harness};
use crate::pubsub_backends::{BrokerHarness, LONG_HOLD};

/// A project id of this test: under the harness's prefix, so what the case writes is removed after it.
fn project(h: &Harness, name: &str) -> ProjectId {
    ProjectId::received(h.key(name))
}

/// Writes `value` to the App ID's `key` in the project, as the gateway stores it.
async fn write(h: &Harness, project: &ProjectId, app_id: &str, key: &str, value: &str) {
    let full = format!("{}{app_id}||{key}", managed_kvstore_namespace(project));
    h.store.set(&put(&full, value)).await.expect("write a key");
}

/// Every key a listing gives, following its continuation tokens (Redis pages may be short, even empty).
async fn list_all(
    explorer: &KvExplorer,
    project: &ProjectId,
    app_id: Option<&str>,
    prefix: &str,
    limit: usize,
) -> Vec<ExploredKey> {
    let (mut keys, mut token) = (Vec::new(), None::<String>);
    for _ in 0..10_000 {
        let page = explorer.list(project, app_id, prefix, token.as_deref(), limit).await.expect("list keys");
        keys.extend(page.keys);
        token = page.continuation;
        if token.is_none() {
            return keys;
        }
    }
    panic!("the listing did not end");
}

fn names(keys: &[ExploredKey]) -> BTreeSet<(String, String)> {
    keys.iter().map(|key| (key.app_id.clone(), key.key.clone())).collect()
}

fn pairs(entries: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    entries.iter().map(|(app, key)| (app.to_string(), key.to_string())).collect()
}

async fn kv_listing_pages_by_app_id_and_prefix(h: Harness) {
    let explorer = KvExplorer::new(h.store.clone());
    let shop = project(&h, "shop");
    for index in 0..7 {
        write(&h, &shop, "orders", &format!("order-{index}"), &"x".repeat(index + 1)).await;
    }
    write(&h, &shop, "orders", "customer-1", "{\"name\":\"Ada\"}").await;
    write(&h, &shop, "billing", "order-1", "other app").await;
    let brief_key = format!("{}billing||brief", managed_kvstore_namespace(&shop));
    let ttl = SetRequest { ttl_seconds: Some(3600), ..put(&brief_key, "t") };
    h.store.set(&ttl).await.expect("write with a TTL");

    // One App ID, a page of 3 at a time, in key order.
    let orders = list_all(&explorer, &shop, Some("orders"), "", 3).await;
    assert_eq!(orders.len(), 8, "{orders:?}");
    assert!(orders.iter().all(|key| key.app_id == "orders"));
    let order_3 = orders.iter().find(|key| key.key == "order-3").expect("order-3 listed");
    assert_eq!(order_3.size, 4);
    assert!(!order_3.etag.is_empty());
    assert_eq!(order_3.expires_at, None);
    // Each key once (SQL stores and memory list in key order across pages, Redis within a page).
    assert_eq!(names(&orders).len(), 8);

    // A prefix narrows to the App ID's keys starting with it.
    let prefixed = list_all(&explorer, &shop, Some("orders"), "order-", 2).await;
    assert_eq!(prefixed.len(), 7);
    assert!(prefixed.iter().all(|key| key.key.starts_with("order-")));

    // Every App ID of the project.
    let every = list_all(&explorer, &shop, None, "", 4).await;
    assert_eq!(every.len(), 10);
    let brief = every.iter().find(|key| key.key == "brief").expect("the key with a TTL");
    assert_eq!(brief.app_id, "billing");
    assert!(brief.expires_at.is_some(), "a TTL shows as an expiry");

    // A prefix without an App ID is refused: keys of different App IDs share no range.
    let refused = explorer.list(&shop, None, "order", None, 10).await;
    assert!(matches!(refused, Err(ExplorerError::Invalid(_))), "{refused:?}");
}

async fn kv_get_and_delete_answer_one_item(h: Harness) {
    let explorer = KvExplorer::new(h.store.clone());
    let shop = project(&h, "shop");
    write(&h, &shop, "orders", "a/b c", "{\"total\": 3}").await;
    let item = explorer.get(&shop, "orders", "a/b c").await.expect("get").expect("the item");
    assert_eq!(item.value, b"{\"total\": 3}");
    assert!(!item.etag.is_empty());
    assert_eq!(explorer.get(&shop, "orders", "missing").await.expect("get"), None);
    assert_eq!(explorer.get(&shop, "billing", "a/b c").await.expect("get"), None, "another App ID's key");
    assert!(explorer.delete(&shop, "orders", "a/b c").await.expect("delete"));
    assert_eq!(explorer.get(&shop, "orders", "a/b c").await.expect("get"), None);
    assert!(!explorer.delete(&shop, "orders", "a/b c").await.expect("delete again"), "nothing left to delete");
    // App IDs are DNS labels: anything else names no key.
    assert!(matches!(explorer.get(&shop, "a||b", "k").await, Err(ExplorerError::Invalid(_))));
    assert!(matches!(explorer.list(&shop, Some("../x"), "", None, 10).await, Err(ExplorerError::Invalid(_))));
}

/// Project A lists, reads and deletes only its own keys: B's keys stay out of every listing, whatever prefix or
/// token A sends (SQL LIKE and Redis MATCH metacharacters, `||`, a token made from B's keys), and B's keys read
/// and delete as absent through A.
async fn kv_isolation_keeps_each_project_to_its_own_keys(h: Harness) {
    let explorer = KvExplorer::new(h.store.clone());
    // B's id starts with A's: only the namespace's `/` tells them apart.
    let (a, b) = (project(&h, "p1"), project(&h, "p10"));
    write(&h, &a, "orders", "mine", "a").await;
    let crafted = ["secret", "%", "_", "*", "?", "[a-z]*", "||", "x||y", "\\*", "]", "/"];
    for key in crafted {
        write(&h, &b, "orders", key, "b's").await;
        write(&h, &b, "billing", key, "b's").await;
    }
    // The same App ID name in both projects.
    assert_eq!(names(&list_all(&explorer, &a, None, "", 100).await), pairs(&[("orders", "mine")]));
    assert_eq!(names(&list_all(&explorer, &a, Some("orders"), "", 2).await), pairs(&[("orders", "mine")]));
    for prefix in ["%", "_", "*", "?", "[", "[a-z]", "||", "|", "\\", "]", "/", "..", "%secret", "*secret"] {
        let listed = list_all(&explorer, &a, Some("orders"), prefix, 5).await;
        assert!(listed.is_empty(), "prefix {prefix:?} reached {listed:?}");
    }
    // A token built from one of B's keys positions A's listing inside A's own range.
    let b_page = explorer.list(&b, Some("orders"), "", None, 1).await.expect("list B");
    if let Some(token) = b_page.continuation {
        let resumed = explorer.list(&a, Some("orders"), "", Some(&token), 100).await.expect("list A from B's token");
        assert!(resumed.keys.iter().all(|key| key.key == "mine"), "{resumed:?}");
    }
    for key in crafted {
        assert_eq!(explorer.get(&a, "orders", key).await.expect("get"), None, "B's {key:?} read through A");
        assert!(!explorer.delete(&a, "orders", key).await.expect("delete"), "B's {key:?} deleted through A");
    }
    // B's keys are all still there.
    assert_eq!(list_all(&explorer, &b, None, "", 100).await.len(), crafted.len() * 2);
}

cases_for_backends! {
    backends: [memory, sqlite, postgres, redis],
    cases: [
        kv_listing_pages_by_app_id_and_prefix,
        kv_get_and_delete_answer_one_item,
        kv_isolation_keeps_each_project_to_its_own_keys,
    ],
}

/// A project id of a broker test: carries the harness's id, so what the case leaves is removed after it.
fn broker_project(h: &BrokerHarness, name: &str) -> ProjectId {
    ProjectId::received(format!("it{}{name}", h.id))
}

async fn topic_backlog_counts_pending_per_group_and_kept_messages(h: BrokerHarness) {
    let explorer = TopicExplorer::new(h.broker.clone());
    let shop = broker_project(&h, "shop");
    let namespace = outrigger_workers::managed_pubsub_namespace(&shop);
    let (topic, group) = (format!("{namespace}orders"), format!("{namespace}checkout"));
    assert_eq!(explorer.pending(&shop, "orders", "checkout", false, 100).await.expect("count"), None, "no group yet");
    h.broker.ensure_group(&topic, &group).await.expect("group");
    for index in 0..5 {
        h.broker.publish(&topic, format!("m{index}").as_bytes()).await.expect("publish");
    }
    assert_eq!(explorer.pending(&shop, "orders", "checkout", false, 100).await.expect("count"), Some(5));
    assert_eq!(explorer.pending(&shop, "orders", "checkout", false, 3).await.expect("count"), Some(3), "capped");
    assert_eq!(explorer.kept_messages(&shop, "orders", 100).await.expect("count"), 5);
    // Held and acknowledged: a held message is still pending, an acknowledged one is not.
    let fetched = h.broker.fetch(&topic, &group, 2, Duration::from_secs(5), LONG_HOLD).await.expect("fetch");
    assert!(!fetched.is_empty());
    h.broker.ack(&topic, &group, &fetched[0].id).await.expect("ack");
    assert_eq!(explorer.pending(&shop, "orders", "checkout", false, 100).await.expect("count"), Some(4));
    // A dead-letter topic nobody subscribes to keeps what is published to it.
    h.broker.publish(&format!("{namespace}orders-dead"), b"dead").await.expect("publish");
    assert_eq!(explorer.kept_messages(&shop, "orders-dead", 100).await.expect("count"), 1);
    assert_eq!(explorer.kept_messages(&shop, "never-used", 100).await.expect("count"), 0);
}

/// Another project's groups, topics and counts never show through this one's, even where names look alike.
async fn topic_isolation_keeps_each_project_to_its_own_topics(h: BrokerHarness) {
    let explorer = TopicExplorer::new(h.broker.clone());
    let (a, b) = (broker_project(&h, "p1"), broker_project(&h, "p10"));
    let (a_ns, b_ns) =
        (outrigger_workers::managed_pubsub_namespace(&a), outrigger_workers::managed_pubsub_namespace(&b));
    h.broker.ensure_group(&format!("{a_ns}orders"), &format!("{a_ns}checkout")).await.expect("A's group");
    for topic in ["orders", "%", "_", "*"] {
        h.broker
            .ensure_group(&format!("{b_ns}{topic}"), &format!("{b_ns}checkout|streaming"))
            .await
            .expect("B's group");
        h.broker.publish(&format!("{b_ns}{topic}"), b"b's").await.expect("publish to B");
    }
    assert_eq!(explorer.pending(&a, "orders", "checkout", false, 100).await.expect("count"), Some(0));
    assert_eq!(
        explorer.pending(&a, "orders", "checkout", true, 100).await.expect("count"),
        None,
        "B's streaming group"
    );
    assert_eq!(explorer.kept_messages(&a, "%", 100).await.expect("count"), 0);
    if let Some(groups) = explorer.groups(&a, 1000).await.expect("groups") {
        let listed: Vec<(String, String, bool)> =
            groups.into_iter().map(|group| (group.topic, group.app_id, group.streaming)).collect();
        assert_eq!(listed, [("orders".to_owned(), "checkout".to_owned(), false)]);
        let of_b = explorer.groups(&b, 1000).await.expect("groups").expect("the same broker lists");
        assert_eq!(of_b.len(), 4);
        assert!(of_b.iter().all(|group| group.streaming && group.app_id == "checkout"));
    }
}

/// Instantiates topic cases for brokers, as `pubsub_conformance` does.
macro_rules! topic_cases {
    ([$($backend:ident),+ $(,)?] => $cases:tt) => {
        mod topics {
            $(
                mod $backend {
                    topic_cases!(@cases $backend $cases);
                }
            )+
        }
    };
    (@cases $backend:ident [$($case:ident),+ $(,)?]) => {
        $(
            #[tokio::test]
            async fn $case() {
                crate::pubsub_backends::run(crate::pubsub_backends::$backend::open(), super::super::$case).await;
            }
        )+
    };
}

topic_cases!([sqlite, postgres, jetstream, redis] => [
    topic_backlog_counts_pending_per_group_and_kept_messages,
    topic_isolation_keeps_each_project_to_its_own_topics,
]);
