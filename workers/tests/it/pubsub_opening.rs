//! `pubsub::open`: from component type and metadata to a broker, or to an error naming what to fix; and
//! what the metadata of each component type changes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use outrigger_workers::pubsub::{self, Broker, BrokerError, OpenError};

use crate::backends::{delete_redis_keys, finally, metadata, redis_connection, redis_metadata, redis_url};
use crate::pubsub_backends::{delete_stream, jetstream_metadata, nats_url, unique_id, LONG_HOLD};

async fn open_error(component_type: &str, entries: &[(&str, &str)]) -> OpenError {
    match pubsub::open(component_type, &metadata(entries)).await {
        Ok(_) => panic!("{component_type} opened with {entries:?}"),
        Err(err) => err,
    }
}

#[tokio::test]
async fn unknown_type_lists_the_types_there_are() {
    let message = open_error("pubsub.kafka", &[]).await.to_string();
    for expected in ["pub/sub", "pubsub.kafka", "pubsub.in-memory", "pubsub.jetstream", "pubsub.redis"] {
        assert!(message.contains(expected), "'{message}' does not mention {expected}");
    }
}

#[tokio::test]
async fn missing_required_metadata_is_named() {
    let cases = [
        ("pubsub.jetstream", vec![("streamName", "S")], "natsURL"),
        ("pubsub.redis", vec![("redisPassword", "secret")], "redisHost"),
    ];
    for (component_type, entries, field) in cases {
        let err = open_error(component_type, &entries).await;
        assert!(
            matches!(&err, OpenError::MissingField { component_type: t, field: f, .. } if *t == component_type && *f == field),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(component_type) && message.contains(field), "{message}");
    }
}

#[tokio::test]
async fn invalid_metadata_is_named_with_the_reason() {
    let nats = nats_url();
    let cases = [
        ("pubsub.jetstream", vec![("natsURL", nats.as_str()), ("streamName", "a.b")], "streamName"),
        ("pubsub.jetstream", vec![("natsURL", nats.as_str()), ("streamName", "a b")], "streamName"),
        ("pubsub.jetstream", vec![("natsURL", nats.as_str()), ("subjectPrefix", "a..b")], "subjectPrefix"),
        ("pubsub.jetstream", vec![("natsURL", nats.as_str()), ("subjectPrefix", "a.*")], "subjectPrefix"),
        ("pubsub.jetstream", vec![("natsURL", nats.as_str()), ("ackWait", "soon")], "ackWait"),
        ("pubsub.redis", vec![("redisHost", "localhost:6379"), ("maxLenApprox", "many")], "maxLenApprox"),
        ("pubsub.redis", vec![("redisHost", "localhost:6379"), ("processingTimeout", "soon")], "processingTimeout"),
        ("pubsub.redis", vec![("redisHost", "localhost:6379"), ("redisDB", "-1")], "redisDB"),
        ("pubsub.redis", vec![("redisHost", "a:1,b:2")], "redisHost"),
        ("pubsub.redis", vec![("redisHost", "localhost:6379"), ("enableTLS", "true")], "enableTLS"),
    ];
    for (component_type, entries, field) in cases {
        let err = open_error(component_type, &entries).await;
        assert!(matches!(&err, OpenError::InvalidField { field: f, .. } if *f == field), "{entries:?}: {err:?}");
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[tokio::test]
async fn jetstream_stream_is_created_as_the_metadata_says() {
    let id = unique_id();
    let (stream, prefix) = (format!("IT_{id}"), format!("it.{id}.topics"));
    let entries = metadata(&[("NatsUrl", &nats_url()), ("STREAMNAME", &stream), ("subjectprefix", &prefix)]);
    let broker = pubsub::open("pubsub.jetstream", &entries).await.expect("open");
    let test = {
        let (stream, prefix) = (stream.clone(), prefix.clone());
        async move {
            broker.ensure_group("orders", "g").await.expect("ensure_group");
            let client = async_nats::connect(nats_url()).await.expect("the test NATS is reachable");
            let mut created = async_nats::jetstream::new(client).get_stream(&stream).await.expect("the stream");
            let config = &created.info().await.expect("stream info").config;
            assert_eq!(config.subjects, [format!("{prefix}.>")]);
            assert_eq!(config.storage, async_nats::jetstream::stream::StorageType::File);
            assert_eq!(config.retention, async_nats::jetstream::stream::RetentionPolicy::Limits);
            assert_eq!(config.max_age, pubsub::DEFAULT_MAX_AGE);
        }
    };
    finally(test, delete_stream(&stream)).await;
}

#[tokio::test]
async fn jetstream_groups_start_where_the_deliver_policy_says() {
    let id = unique_id();
    let mut entries = jetstream_metadata(&id);
    entries.insert("deliverPolicy".into(), "new".into());
    let stream = format!("IT_{id}");
    let broker = pubsub::open("pubsub.jetstream", &entries).await.expect("open");
    let test = async move {
        broker.publish("orders", b"before").await.expect("publish");
        broker.ensure_group("orders", "late").await.expect("ensure_group");
        broker.publish("orders", b"after").await.expect("publish");
        let fetched = broker.fetch("orders", "late", 10, Duration::from_secs(2), LONG_HOLD).await.expect("fetch");
        let texts: Vec<_> = fetched.iter().map(|delivery| delivery.payload.clone()).collect();
        assert_eq!(texts, [b"after".to_vec()], "deliverPolicy new: only what comes after the group");
    };
    finally(test, delete_stream(&stream)).await;
    // A start time left out is 0 (every message), as in daprd; one that is no number is refused.
    let id = unique_id();
    let mut entries = jetstream_metadata(&id);
    entries.insert("deliverPolicy".into(), "time".into());
    let opened = pubsub::open("pubsub.jetstream", &entries).await.map(drop);
    delete_stream(&format!("IT_{id}")).await;
    opened.expect("deliverPolicy time without startTime opens");
    for (policy, field) in [("sometimes", "deliverPolicy"), ("sequence", "startSequence"), ("time", "startTime")] {
        let mut entries = jetstream_metadata(&unique_id());
        entries.insert("deliverPolicy".into(), policy.into());
        entries.insert("startTime".into(), "soon".into());
        let err =
            open_error("pubsub.jetstream", &entries.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>())
                .await;
        assert!(err.to_string().contains(field), "{policy}: {err}");
    }
}

#[tokio::test]
async fn jetstream_refuses_ids_of_another_group_or_topic() {
    let id = unique_id();
    let entries = jetstream_metadata(&id);
    let broker = pubsub::open("pubsub.jetstream", &entries).await.expect("open");
    let test = async move {
        for (topic, group) in [("orders", "a"), ("orders", "b"), ("invoices", "a")] {
            broker.ensure_group(topic, group).await.expect("ensure_group");
        }
        broker.publish("orders", b"m").await.expect("publish");
        let fetched = broker.fetch("orders", "a", 1, Duration::from_secs(5), LONG_HOLD).await.expect("fetch");
        let id = &fetched.first().expect("the message").id;
        for (topic, group) in [("orders", "b"), ("invoices", "a")] {
            let acked = broker.ack(topic, group, id).await;
            assert!(matches!(acked, Err(BrokerError::InvalidId(_))), "{topic}/{group}: {acked:?}");
        }
        broker.ack("orders", "a", id).await.expect("ack in its own group");
    };
    finally(test, delete_stream(&entries["streamName"])).await;
}

/// With a shortest hold of 3 s configured, a message fetched for 1 s stays held 3 s.
async fn holds_last_at_least(broker: std::sync::Arc<dyn Broker>, topic: String) {
    const SHORTEST: Duration = Duration::from_secs(3);
    broker.ensure_group(&topic, "g").await.expect("ensure_group");
    broker.publish(&topic, b"m").await.expect("publish");
    let before_fetch = Instant::now();
    let held = broker.fetch(&topic, "g", 1, Duration::from_secs(5), Duration::from_secs(1)).await.expect("fetch");
    assert_eq!(held.len(), 1);
    let again = broker.fetch(&topic, "g", 1, SHORTEST * 3, Duration::from_secs(1)).await.expect("fetch again");
    let elapsed = before_fetch.elapsed();
    assert_eq!(again.len(), 1, "the message did not come back");
    assert!(elapsed >= SHORTEST, "handed out again after {elapsed:?}");
}

#[tokio::test]
async fn jetstream_ack_wait_is_the_shortest_hold() {
    let id = unique_id();
    let mut entries = jetstream_metadata(&id);
    entries.insert("ackWait".to_owned(), "3s".to_owned());
    let broker = pubsub::open("pubsub.jetstream", &entries).await.expect("open");
    finally(holds_last_at_least(broker, "orders".to_owned()), delete_stream(&entries["streamName"])).await;
}

#[tokio::test]
async fn redis_processing_timeout_is_the_shortest_hold() {
    let id = unique_id();
    let mut entries = redis_metadata();
    // Milliseconds, as daprd reads a plain number here.
    entries.insert("processingTimeout".to_owned(), "3000".to_owned());
    let broker = pubsub::open("pubsub.redis", &entries).await.expect("open");
    let (url, pattern) = (redis_url().to_string(), format!("*{id}*"));
    finally(holds_last_at_least(broker, format!("orders {id}")), delete_redis_keys(&url, &pattern)).await;
}

#[tokio::test]
async fn redis_streams_are_trimmed_to_max_len_approx() {
    let id = unique_id();
    let mut entries: BTreeMap<String, String> = redis_metadata();
    entries.insert("maxLenApprox".to_owned(), "10".to_owned());
    let broker = pubsub::open("pubsub.redis", &entries).await.expect("open");
    let topic = format!("orders {id}");
    let test = async move {
        broker.ensure_group(&topic, "g").await.expect("ensure_group");
        for n in 0..500 {
            broker.publish(&topic, n.to_string().as_bytes()).await.expect("publish");
        }
        let mut connection = redis_connection().await;
        let length: usize =
            ::redis::cmd("XLEN").arg(format!("pubsub:{topic}")).query_async(&mut connection).await.expect("XLEN");
        // "About": Redis trims whole nodes of (by default) 100 entries.
        assert!(length < 200, "{length} entries kept");
    };
    let (url, pattern) = (redis_url().to_string(), format!("*{id}*"));
    finally(test, delete_redis_keys(&url, &pattern)).await;
}
