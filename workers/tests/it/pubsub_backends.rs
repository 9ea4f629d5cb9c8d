//! The five brokers as test subjects. Each opens fresh, under names of its own (SQLite in a temporary file,
//! PostgreSQL tables with a unique prefix, a JetStream stream with a unique name and subject prefix, Redis
//! keys named after unique topics), and what it leaves is removed after the case. The component types open
//! through `pubsub::open`, so every case also runs their metadata mapping.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outrigger_workers::pubsub::{self, Broker, Delivery, Features, SqlBroker, SqlBrokerOptions};
use tempfile::TempDir;
use uuid::Uuid;

use crate::backends::{delete_redis_keys, finally, metadata, postgres_url, redis_metadata, redis_url};

/// A hold that does not run out during a test.
pub const LONG_HOLD: Duration = Duration::from_secs(120);

/// How long a case waits for messages it expects before it gives up on them.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A broker under test.
pub struct BrokerHarness {
    pub broker: Arc<dyn Broker>,
    /// What the backend is documented to promise.
    pub features: Features,
    /// Unique to this test; part of every topic name.
    pub id: String,
    opening: Opening,
}

/// How to open another instance of the same broker, as another process would.
enum Opening {
    Nothing,
    Sql(SqlBrokerOptions),
    Component { component_type: &'static str, metadata: BTreeMap<String, String> },
}

/// What a test leaves behind.
pub enum Leftovers {
    Nothing,
    /// The SQLite file's directory, deleted when dropped.
    Directory {
        _deleted_on_drop: TempDir,
    },
    Tables {
        prefix: String,
    },
    RedisKeys {
        pattern: String,
    },
    Stream {
        name: String,
    },
}

impl BrokerHarness {
    /// A topic name of this test, with the characters brokers must encode: spaces, dots, slashes.
    pub fn topic(&self, name: &str) -> String {
        format!("it {}.app/{name}", self.id)
    }

    /// Another instance of the same broker on the same backend and names.
    pub async fn open_another(&self) -> Arc<dyn Broker> {
        self.opening.open().await
    }

    /// Closes this instance, then opens the broker anew, as after a restart.
    pub async fn reopen(self) -> Arc<dyn Broker> {
        let BrokerHarness { broker, opening, .. } = self;
        assert_eq!(Arc::strong_count(&broker), 1, "the broker is still in use");
        drop(broker);
        opening.open().await
    }
}

impl Opening {
    async fn open(&self) -> Arc<dyn Broker> {
        match self {
            Opening::Nothing => panic!("an in-memory broker has no other instance"),
            Opening::Sql(options) => {
                Arc::new(SqlBroker::open(options.clone()).await.expect("open the SQL broker again"))
            }
            Opening::Component { component_type, metadata } => {
                pubsub::open(component_type, metadata).await.expect("open the broker again")
            }
        }
    }
}

impl Leftovers {
    async fn clean_up(self) {
        match self {
            Leftovers::Nothing | Leftovers::Directory { .. } => {}
            Leftovers::Tables { prefix } => drop_tables(&prefix).await,
            Leftovers::RedisKeys { pattern } => delete_redis_keys(redis_url().as_str(), &pattern).await,
            Leftovers::Stream { name } => delete_stream(&name).await,
        }
    }
}

/// Runs one case against a freshly opened broker, then removes what the case left.
pub async fn run<Case, Outcome>(opening: impl Future<Output = (BrokerHarness, Leftovers)>, case: Case)
where
    Case: FnOnce(BrokerHarness) -> Outcome,
    Outcome: Future<Output = ()> + Send + 'static,
{
    let (harness, leftovers) = opening.await;
    finally(case(harness), leftovers.clean_up()).await;
}

pub fn unique_id() -> String {
    Uuid::new_v4().simple().to_string()
}

pub fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// JetStream metadata for a stream and subject prefix no other test uses.
pub fn jetstream_metadata(id: &str) -> BTreeMap<String, String> {
    metadata(&[("natsURL", &nats_url()), ("streamName", &format!("IT_{id}")), ("subjectPrefix", &format!("it.{id}"))])
}

pub async fn delete_stream(name: &str) {
    let client = async_nats::connect(nats_url()).await.expect("the test NATS is reachable");
    // A case that failed before the stream was created leaves none.
    let _ = async_nats::jetstream::new(client).delete_stream(name).await;
}

pub async fn drop_tables(prefix: &str) {
    let pool = sqlx::PgPool::connect(&postgres_url()).await.expect("the test PostgreSQL is reachable");
    for table in ["messages", "groups", "deliveries"] {
        sqlx::query(&format!("DROP TABLE IF EXISTS {prefix}_{table}")).execute(&pool).await.expect("drop a test table");
    }
    pool.close().await;
}

/// Fetches (and acks) until `count` messages came or [`PATIENCE`] ran out; returns them in arrival order.
pub async fn receive(broker: &dyn Broker, topic: &str, group: &str, count: usize) -> Vec<Delivery> {
    receive_holding(broker, topic, group, count, LONG_HOLD).await
}

/// [`receive`] with fetches that hold messages for `hold` (on JetStream, fetchers of a group share one hold).
pub async fn receive_holding(
    broker: &dyn Broker,
    topic: &str,
    group: &str,
    count: usize,
    hold: Duration,
) -> Vec<Delivery> {
    let started = Instant::now();
    let mut received = Vec::new();
    while received.len() < count && started.elapsed() < PATIENCE {
        let batch =
            broker.fetch(topic, group, count - received.len(), Duration::from_secs(1), hold).await.expect("fetch");
        for delivery in &batch {
            broker.ack(topic, group, &delivery.id).await.expect("ack");
        }
        received.extend(batch);
    }
    received
}

/// The payloads as text.
pub fn texts(deliveries: &[Delivery]) -> Vec<String> {
    deliveries.iter().map(|delivery| String::from_utf8(delivery.payload.clone()).expect("UTF-8 payload")).collect()
}

const DURABLE: Features = Features { ordered: false, durable: true };

pub mod memory {
    use super::*;

    pub async fn open() -> (BrokerHarness, Leftovers) {
        let broker = pubsub::open("pubsub.in-memory", &BTreeMap::new()).await.expect("open pubsub.in-memory");
        let features = Features { ordered: true, durable: false };
        (BrokerHarness { broker, features, id: unique_id(), opening: Opening::Nothing }, Leftovers::Nothing)
    }
}

pub mod sqlite {
    use super::*;

    pub async fn open() -> (BrokerHarness, Leftovers) {
        let directory = TempDir::new().expect("temporary directory");
        let path = directory.path().join("pubsub.db");
        let options = SqlBrokerOptions::new(path.to_str().expect("UTF-8 path"), "pubsub");
        let broker = Arc::new(SqlBroker::open(options.clone()).await.expect("open the SQLite broker"));
        let harness = BrokerHarness { broker, features: DURABLE, id: unique_id(), opening: Opening::Sql(options) };
        (harness, Leftovers::Directory { _deleted_on_drop: directory })
    }
}

pub mod postgres {
    use super::*;

    pub async fn open() -> (BrokerHarness, Leftovers) {
        let id = unique_id();
        let prefix = format!("ps_{id}");
        let options = SqlBrokerOptions::new(postgres_url(), &prefix);
        let broker = Arc::new(SqlBroker::open(options.clone()).await.expect("open the PostgreSQL broker"));
        (BrokerHarness { broker, features: DURABLE, id, opening: Opening::Sql(options) }, Leftovers::Tables { prefix })
    }
}

pub mod jetstream {
    use super::*;

    pub async fn open() -> (BrokerHarness, Leftovers) {
        let id = unique_id();
        let metadata = jetstream_metadata(&id);
        let broker = pubsub::open("pubsub.jetstream", &metadata).await.expect("open pubsub.jetstream");
        let leftovers = Leftovers::Stream { name: metadata["streamName"].clone() };
        let opening = Opening::Component { component_type: "pubsub.jetstream", metadata };
        (BrokerHarness { broker, features: DURABLE, id, opening }, leftovers)
    }
}

pub mod redis {
    use super::*;

    pub async fn open() -> (BrokerHarness, Leftovers) {
        let id = unique_id();
        let metadata = redis_metadata();
        let broker = pubsub::open("pubsub.redis", &metadata).await.expect("open pubsub.redis");
        let leftovers = Leftovers::RedisKeys { pattern: format!("*{id}*") };
        let opening = Opening::Component { component_type: "pubsub.redis", metadata };
        (BrokerHarness { broker, features: DURABLE, id, opening }, leftovers)
    }
}
