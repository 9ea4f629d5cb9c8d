//! The SQL queue's own promises: its tables, and retention (a message goes once every group that existed
//! when it was published has acked it, or once it is older than the maximum age).

use std::time::{Duration, Instant};

use outrigger_workers::pubsub::{Broker, OpenError, SqlBroker, SqlBrokerOptions};
use sqlx::AnyPool;
use tempfile::TempDir;

use crate::backends::{finally, postgres_url};
use crate::pubsub_backends::{drop_tables, receive, texts, unique_id, LONG_HOLD, PATIENCE};

/// Sweeps as often as a test can use.
const SWEEP_INTERVAL: Duration = Duration::from_millis(20);

/// A broker and a direct connection to its tables.
struct Queue {
    broker: SqlBroker,
    database: AnyPool,
    prefix: String,
}

impl Queue {
    async fn open(connection_string: &str, database_url: &str, prefix: &str, max_age: Duration) -> Queue {
        let options = SqlBrokerOptions {
            max_age,
            sweep_interval: SWEEP_INTERVAL,
            ..SqlBrokerOptions::new(connection_string, prefix)
        };
        let broker = SqlBroker::open(options).await.expect("open the SQL broker");
        sqlx::any::install_default_drivers();
        let database = AnyPool::connect(database_url).await.expect("connect to the broker's database");
        Queue { broker, database, prefix: prefix.to_owned() }
    }

    /// How many messages of `topic` the table holds.
    async fn stored(&self, topic: &str) -> i64 {
        let count = format!("SELECT COUNT(*) AS n FROM {}_messages WHERE topic = $1", self.prefix);
        sqlx::query_scalar(&count).bind(topic).fetch_one(&self.database).await.expect("count messages")
    }

    /// Returns once a sweep has run after this call began: a message its topic's only group acked is deleted by
    /// the first sweep after the ack. Acks of nothing give the sweeps their occasions.
    async fn sweep(&self) {
        let marker = format!("marker {}", unique_id());
        self.broker.ensure_group(&marker, "marker").await.expect("ensure the marker's group");
        self.broker.publish(&marker, b"swept").await.expect("publish a marker");
        for delivery in receive(&self.broker, &marker, "marker", 1).await {
            self.broker.ack(&marker, "marker", &delivery.id).await.expect("ack the marker");
        }
        let started = Instant::now();
        while self.stored(&marker).await > 0 {
            assert!(started.elapsed() < PATIENCE, "no sweep within {PATIENCE:?}");
            tokio::time::sleep(SWEEP_INTERVAL).await;
            self.broker.ack(&marker, "nobody", "1").await.expect("ack");
        }
    }
}

async fn sqlite_queue(directory: &TempDir, max_age: Duration) -> Queue {
    let path = directory.path().join("pubsub.db");
    let path = path.to_str().expect("UTF-8 path");
    Queue::open(path, &format!("sqlite:{path}"), "queue", max_age).await
}

async fn postgres_queue(prefix: &str, max_age: Duration) -> Queue {
    Queue::open(&postgres_url(), &postgres_url(), prefix, max_age).await
}

async fn messages_stay_until_every_group_acked(queue: Queue) {
    let topic = "orders";
    for group in ["a", "b"] {
        queue.broker.ensure_group(topic, group).await.expect("ensure_group");
    }
    for text in ["1", "2", "3"] {
        queue.broker.publish(topic, text.as_bytes()).await.expect("publish");
    }
    assert_eq!(receive(&queue.broker, topic, "a", 3).await.len(), 3);
    let held = queue.broker.fetch(topic, "b", 3, Duration::from_secs(5), LONG_HOLD).await.expect("fetch");
    let acked = held.iter().find(|delivery| delivery.payload == b"2").expect("message 2 among those fetched");
    queue.broker.ack(topic, "b", &acked.id).await.expect("ack");

    queue.sweep().await;
    assert_eq!(queue.stored(topic).await, 2, "message 2 gone, 1 and 3 kept for group b");
    for delivery in &held {
        queue.broker.ack(topic, "b", &delivery.id).await.expect("ack");
    }
    queue.sweep().await;
    assert_eq!(queue.stored(topic).await, 0);
}

/// A topic nobody subscribed to yet keeps its messages through sweeps, for its first group.
async fn messages_wait_for_their_topics_first_group(queue: Queue) {
    let topic = "orders";
    queue.broker.publish(topic, b"early").await.expect("publish");
    queue.sweep().await;
    assert_eq!(queue.stored(topic).await, 1, "the sweep deleted a message its topic's first group has not seen");
    queue.broker.ensure_group(topic, "g").await.expect("ensure_group");
    let received = receive(&queue.broker, topic, "g", 1).await;
    assert_eq!(texts(&received), ["early"]);
    queue.broker.ack(topic, "g", &received[0].id).await.expect("ack");
    queue.sweep().await;
    assert_eq!(queue.stored(topic).await, 0, "acked by the topic's group, the message stays");
}

async fn messages_older_than_the_maximum_age_go_unacked(queue: Queue) {
    const MAX_AGE: Duration = Duration::from_secs(1);
    let topic = "orders";
    queue.broker.ensure_group(topic, "g").await.expect("ensure_group");
    queue.broker.publish(topic, b"stale").await.expect("publish");
    // The subject is time: the message has to grow old.
    tokio::time::sleep(MAX_AGE + Duration::from_millis(100)).await;
    queue.broker.publish(topic, b"fresh").await.expect("publish");
    queue.sweep().await;
    assert_eq!(queue.stored(topic).await, 1);
    let received = queue.broker.fetch(topic, "g", 10, Duration::from_secs(1), LONG_HOLD).await.expect("fetch");
    assert_eq!(texts(&received), ["fresh"]);
}

/// A sweep goes through the table in windows of sequence numbers: every window is swept, the last one too.
async fn a_sweep_reaches_every_window(queue: Queue) {
    const MESSAGES: i64 = 1500;
    queue.broker.ensure_group("kept", "g").await.expect("ensure_group");
    queue.broker.publish("kept", b"first").await.expect("publish");
    queue.broker.ensure_group("unread", "g").await.expect("ensure_group");
    // Stored straight into the table without delivery rows, as if their topic's group had acked them: publishes
    // would give the broker occasions to sweep while the table fills.
    let insert = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $3) \
         INSERT INTO {}_messages (topic, payload, published_at) SELECT $1, $2, $4 FROM n",
        queue.prefix
    );
    let now = i64::try_from(std::time::UNIX_EPOCH.elapsed().expect("clock").as_millis()).expect("milliseconds");
    let query = sqlx::query(&insert).bind("unread").bind(b"x".to_vec()).bind(MESSAGES).bind(now);
    let stored = query.execute(&queue.database).await.expect("store messages").rows_affected();
    assert_eq!(stored, MESSAGES as u64);
    // This publish may start a sweep already (they ride on publishes): whichever sweeps, all must go.
    queue.broker.publish("kept", b"last").await.expect("publish");

    queue.sweep().await;
    assert_eq!(queue.stored("unread").await, 0, "messages every group acked were left");
    assert_eq!(queue.stored("kept").await, 2, "messages the group has not acked were deleted");
}

#[tokio::test]
async fn sqlite_sweeps_every_window() {
    let directory = TempDir::new().expect("temporary directory");
    a_sweep_reaches_every_window(sqlite_queue(&directory, Duration::from_secs(3600)).await).await;
}

#[tokio::test]
async fn postgres_sweeps_every_window() {
    let prefix = format!("ps_{}", unique_id());
    let queue = postgres_queue(&prefix, Duration::from_secs(3600)).await;
    finally(a_sweep_reaches_every_window(queue), drop_tables(&prefix)).await;
}

#[tokio::test]
async fn sqlite_keeps_messages_until_every_group_acked() {
    let directory = TempDir::new().expect("temporary directory");
    messages_stay_until_every_group_acked(sqlite_queue(&directory, Duration::from_secs(3600)).await).await;
}

#[tokio::test]
async fn postgres_keeps_messages_until_every_group_acked() {
    let prefix = format!("ps_{}", unique_id());
    let queue = postgres_queue(&prefix, Duration::from_secs(3600)).await;
    finally(messages_stay_until_every_group_acked(queue), drop_tables(&prefix)).await;
}

#[tokio::test]
async fn sqlite_keeps_messages_for_a_topics_first_group() {
    let directory = TempDir::new().expect("temporary directory");
    messages_wait_for_their_topics_first_group(sqlite_queue(&directory, Duration::from_secs(3600)).await).await;
}

#[tokio::test]
async fn postgres_keeps_messages_for_a_topics_first_group() {
    let prefix = format!("ps_{}", unique_id());
    let queue = postgres_queue(&prefix, Duration::from_secs(3600)).await;
    finally(messages_wait_for_their_topics_first_group(queue), drop_tables(&prefix)).await;
}

#[tokio::test]
async fn sqlite_deletes_messages_past_the_maximum_age() {
    let directory = TempDir::new().expect("temporary directory");
    messages_older_than_the_maximum_age_go_unacked(sqlite_queue(&directory, Duration::from_secs(1)).await).await;
}

#[tokio::test]
async fn postgres_deletes_messages_past_the_maximum_age() {
    let prefix = format!("ps_{}", unique_id());
    let queue = postgres_queue(&prefix, Duration::from_secs(1)).await;
    finally(messages_older_than_the_maximum_age_go_unacked(queue), drop_tables(&prefix)).await;
}

#[tokio::test]
async fn table_prefix_must_be_an_identifier() {
    let directory = TempDir::new().expect("temporary directory");
    let path = directory.path().join("pubsub.db");
    for prefix in ["queue; DROP TABLE x", "main.queue", "", "1queue"] {
        let opened = SqlBroker::open(SqlBrokerOptions::new(path.to_str().expect("UTF-8 path"), prefix)).await;
        assert!(
            matches!(opened, Err(OpenError::InvalidField { field: "tablePrefix", .. })),
            "{prefix:?}: {:?}",
            opened.err()
        );
    }
}

#[tokio::test]
async fn sqlite_in_a_missing_directory_fails_at_open() {
    let directory = TempDir::new().expect("temporary directory");
    let path = directory.path().join("missing").join("pubsub.db");
    let opened = SqlBroker::open(SqlBrokerOptions::new(path.to_str().expect("UTF-8 path"), "queue")).await;
    assert!(matches!(opened, Err(OpenError::Backend { component_type: "pubsub.sqlite", .. })), "{:?}", opened.err());
}
