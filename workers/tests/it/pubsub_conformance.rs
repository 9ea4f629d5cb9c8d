//! The contract of `pubsub::Broker`, each case written once and run against every backend that promises it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use outrigger_workers::pubsub::{Broker, BrokerError, Delivery};

use crate::pubsub_backends::{receive, receive_holding, texts, BrokerHarness, LONG_HOLD, PATIENCE};

/// Instantiates cases for backends: `mod <name> { mod <backend> { #[tokio::test] async fn <case>() } }`, each
/// test running `<case>` against `pubsub_backends::<backend>::open()`.
macro_rules! broker_cases {
    ($name:ident: [$($backend:ident),+ $(,)?] => $cases:tt) => {
        mod $name {
            $(
                mod $backend {
                    broker_cases!(@cases $backend $cases);
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

broker_cases!(every: [memory, sqlite, postgres, jetstream, redis] => [
    features_are_as_documented,
    acked_message_is_never_handed_out_again,
    every_group_gets_every_message,
    concurrent_fetchers_never_share_a_message,
    expired_hold_hands_the_message_out_again,
    retry_waits_for_its_delay,
    retry_without_delay_is_at_once,
    thousand_messages_arrive_once_per_group,
    fetch_waits_for_a_publish,
    empty_fetch_waits_its_wait,
    look_alike_topics_are_apart,
    fetch_from_a_missing_group_fails,
    malformed_ids_are_refused,
]);

broker_cases!(ordered: [memory] => [messages_arrive_in_publish_order]);

// What a topic keeps for groups created later: the SQL queue, Redis streams (daprd creates Redis groups at `0`)
// and the JetStream stream (limits retention, groups delivering all, daprd's default) keep it; the in-memory broker,
// like daprd's, keeps nothing nobody subscribed to.
broker_cases!(retaining: [sqlite, postgres, redis, jetstream] => [group_created_after_a_publish_gets_it]);
broker_cases!(not_retaining: [memory] => [
    group_created_after_a_publish_misses_it,
    deleted_group_starts_afresh,
]);

broker_cases!(durable: [sqlite, postgres, jetstream, redis] => [
    delivery_ids_work_from_another_instance,
    group_deleted_by_another_instance_is_missing,
    unacked_messages_survive_reopening,
]);

const NO_WAIT: Duration = Duration::ZERO;

/// A hold a case waits out.
const SHORT_HOLD: Duration = Duration::from_secs(1);

/// Time a backend may take to act on what is due (a redelivery, a wakeup), slow machines included.
const SLACK: Duration = Duration::from_secs(5);

/// Backends time holds and delays in whole milliseconds.
const ROUNDING: Duration = Duration::from_millis(10);

fn sorted(mut texts: Vec<String>) -> Vec<String> {
    texts.sort();
    texts
}

async fn fetch_one(broker: &dyn Broker, topic: &str, group: &str, hold: Duration) -> Delivery {
    let mut fetched = broker.fetch(topic, group, 1, SLACK, hold).await.expect("fetch");
    assert_eq!(fetched.len(), 1, "one message: {fetched:?}");
    fetched.remove(0)
}

async fn features_are_as_documented(h: BrokerHarness) {
    assert_eq!(h.broker.features(), h.features);
}

async fn acked_message_is_never_handed_out_again(h: BrokerHarness) {
    let topic = h.topic("orders");
    h.broker.ensure_group(&topic, "g").await.expect("ensure_group");
    h.broker.publish(&topic, b"hello").await.expect("publish");
    let fetched = h.broker.fetch(&topic, "g", 10, SLACK, SHORT_HOLD).await.expect("fetch");
    assert_eq!(texts(&fetched), ["hello"]);
    assert_eq!(fetched[0].attempt, 1);
    h.broker.ack(&topic, "g", &fetched[0].id).await.expect("ack");
    // Well past the hold, which would have brought an unacked message back.
    let again = h.broker.fetch(&topic, "g", 10, SHORT_HOLD * 3, SHORT_HOLD).await.expect("fetch after the ack");
    assert_eq!(again, []);
}

async fn every_group_gets_every_message(h: BrokerHarness) {
    let topic = h.topic("orders");
    let groups = ["a", "a.b", "a b/c*>"];
    for group in groups {
        h.broker.ensure_group(&topic, group).await.expect("ensure_group");
    }
    for text in ["1", "2", "3"] {
        h.broker.publish(&topic, text.as_bytes()).await.expect("publish");
    }
    for group in groups {
        let received = receive(h.broker.as_ref(), &topic, group, 3).await;
        assert_eq!(sorted(texts(&received)), ["1", "2", "3"], "group {group}");
    }
}

async fn group_created_after_a_publish_gets_it(h: BrokerHarness) {
    let topic = h.topic("orders");
    h.broker.publish(&topic, b"before any group").await.expect("publish");
    h.broker.ensure_group(&topic, "early").await.expect("ensure_group");
    h.broker.publish(&topic, b"before").await.expect("publish");
    h.broker.ensure_group(&topic, "late").await.expect("ensure_group");
    h.broker.publish(&topic, b"after").await.expect("publish");

    let late = receive(h.broker.as_ref(), &topic, "late", 3).await;
    assert_eq!(sorted(texts(&late)), ["after", "before", "before any group"]);
    for delivery in &late {
        h.broker.ack(&topic, "late", &delivery.id).await.expect("ack");
    }
    // Ensuring a group that exists changes nothing: what it acked does not come back.
    h.broker.ensure_group(&topic, "late").await.expect("ensure_group again");
    let more = h.broker.fetch(&topic, "late", 10, Duration::from_secs(1), LONG_HOLD).await.expect("fetch");
    assert_eq!(more, [], "an acked message came back after ensure_group");
    let early = receive(h.broker.as_ref(), &topic, "early", 3).await;
    assert_eq!(sorted(texts(&early)), ["after", "before", "before any group"]);
}

async fn group_created_after_a_publish_misses_it(h: BrokerHarness) {
    let topic = h.topic("orders");
    h.broker.ensure_group(&topic, "early").await.expect("ensure_group");
    h.broker.publish(&topic, b"before").await.expect("publish");
    h.broker.ensure_group(&topic, "late").await.expect("ensure_group");
    h.broker.publish(&topic, b"after").await.expect("publish");

    assert_eq!(texts(&receive(h.broker.as_ref(), &topic, "late", 1).await), ["after"]);
    let more = h.broker.fetch(&topic, "late", 10, Duration::from_secs(1), LONG_HOLD).await.expect("fetch");
    assert_eq!(more, [], "the late group got a message published before it existed");
    assert_eq!(sorted(texts(&receive(h.broker.as_ref(), &topic, "early", 2).await)), ["after", "before"]);
}

async fn concurrent_fetchers_never_share_a_message(h: BrokerHarness) {
    const MESSAGES: usize = 200;
    const FETCHERS: usize = 4;
    let topic = h.topic("orders");
    h.broker.ensure_group(&topic, "g").await.expect("ensure_group");
    stream::iter(0..MESSAGES)
        .for_each_concurrent(16, |n| {
            let (broker, topic) = (&h.broker, &topic);
            async move { broker.publish(topic, n.to_string().as_bytes()).await.expect("publish") }
        })
        .await;
    // Every durable broker can be opened twice: half the fetchers work as another process would.
    let mut instances = vec![Arc::clone(&h.broker)];
    if h.features.durable {
        instances.push(h.open_another().await);
    }
    let received = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let fetchers: Vec<_> = (0..FETCHERS)
        .map(|n| {
            let broker = Arc::clone(&instances[n % instances.len()]);
            let (topic, received) = (topic.clone(), Arc::clone(&received));
            tokio::spawn(async move {
                while received.lock().expect("lock").len() < MESSAGES && started.elapsed() < PATIENCE {
                    let batch =
                        broker.fetch(&topic, "g", 7, Duration::from_millis(200), LONG_HOLD).await.expect("fetch");
                    received.lock().expect("lock").extend(texts(&batch));
                    for delivery in batch {
                        broker.ack(&topic, "g", &delivery.id).await.expect("ack");
                    }
                }
            })
        })
        .collect();
    for fetcher in fetchers {
        fetcher.await.expect("fetcher");
    }
    let received = sorted(received.lock().expect("lock").clone());
    let expected = sorted((0..MESSAGES).map(|n| n.to_string()).collect());
    assert_eq!(received, expected, "every message once, none twice");
}

async fn expired_hold_hands_the_message_out_again(h: BrokerHarness) {
    let topic = h.topic("orders");
    h.broker.ensure_group(&topic, "g").await.expect("ensure_group");
    h.broker.publish(&topic, b"slow").await.expect("publish");
    let before_fetch = Instant::now();
    let first = fetch_one(h.broker.as_ref(), &topic, "g", SHORT_HOLD).await;
    assert_eq!(first.attempt, 1);
    let held = h.broker.fetch(&topic, "g", 1, NO_WAIT, SHORT_HOLD).await.expect("fetch while held");
    assert_eq!(held, [], "a held message was handed out again");

    let again = fetch_one(h.broker.as_ref(), &topic, "g", SHORT_HOLD).await;
    assert_eq!((again.payload.as_slice(), again.attempt), (&b"slow"[..], 2));
    let elapsed = before_fetch.elapsed();
    assert!(elapsed + ROUNDING >= SHORT_HOLD, "handed out again after {elapsed:?}, within the hold");
}

async fn retry_waits_for_its_delay(h: BrokerHarness) {
    const DELAY: Duration = Duration::from_secs(2);
    let topic = h.topic("orders");
    h.broker.ensure_group(&topic, "g").await.expect("ensure_group");
    h.broker.publish(&topic, b"flaky").await.expect("publish");
    let first = fetch_one(h.broker.as_ref(), &topic, "g", LONG_HOLD).await;
    let before_retry = Instant::now();
    h.broker.retry(&topic, "g", &first.id, DELAY).await.expect("retry");
    let early = h.broker.fetch(&topic, "g", 1, NO_WAIT, LONG_HOLD).await.expect("fetch during the delay");
    assert_eq!(early, [], "a retried message was handed out before its delay");

    let again = h.broker.fetch(&topic, "g", 1, DELAY + SLACK, LONG_HOLD).await.expect("fetch after the delay");
    let elapsed = before_retry.elapsed();
    assert_eq!(texts(&again), ["flaky"], "the retried message after {elapsed:?}");
    assert_eq!(again[0].attempt, 2);
    assert!(elapsed + ROUNDING >= DELAY, "handed out again after {elapsed:?}, within the delay");
}

async fn retry_without_delay_is_at_once(h: BrokerHarness) {
    let topic = h.topic("orders");
    h.broker.ensure_group(&topic, "g").await.expect("ensure_group");
    h.broker.publish(&topic, b"again").await.expect("publish");
    let first = fetch_one(h.broker.as_ref(), &topic, "g", LONG_HOLD).await;
    h.broker.retry(&topic, "g", &first.id, Duration::ZERO).await.expect("retry");
    let again = fetch_one(h.broker.as_ref(), &topic, "g", LONG_HOLD).await;
    assert_eq!((again.payload.as_slice(), again.attempt), (&b"again"[..], 2));
}

async fn thousand_messages_arrive_once_per_group(h: BrokerHarness) {
    const MESSAGES: usize = 1000;
    let topic = h.topic("orders");
    for group in ["a", "b"] {
        h.broker.ensure_group(&topic, group).await.expect("ensure_group");
    }
    stream::iter(0..MESSAGES)
        .for_each_concurrent(16, |n| {
            let (broker, topic) = (&h.broker, &topic);
            async move { broker.publish(topic, n.to_string().as_bytes()).await.expect("publish") }
        })
        .await;
    let expected = sorted((0..MESSAGES).map(|n| n.to_string()).collect());
    for group in ["a", "b"] {
        let received = receive(h.broker.as_ref(), &topic, group, MESSAGES).await;
        assert_eq!(sorted(texts(&received)), expected, "group {group}");
        assert!(received.iter().all(|delivery| delivery.attempt == 1), "group {group}: a message came twice");
        let more = h.broker.fetch(&topic, group, 10, Duration::from_secs(1), LONG_HOLD).await.expect("fetch");
        assert_eq!(more, [], "group {group}: messages beyond those published");
    }
}

async fn messages_arrive_in_publish_order(h: BrokerHarness) {
    assert!(h.features.ordered, "only brokers that promise order run this case");
    let topic = h.topic("orders");
    h.broker.ensure_group(&topic, "g").await.expect("ensure_group");
    for n in 0..50 {
        h.broker.publish(&topic, n.to_string().as_bytes()).await.expect("publish");
    }
    let mut received = Vec::new();
    while received.len() < 50 {
        let batch = h.broker.fetch(&topic, "g", 7, SLACK, LONG_HOLD).await.expect("fetch");
        assert!(!batch.is_empty(), "messages missing after {received:?}");
        for delivery in &batch {
            h.broker.ack(&topic, "g", &delivery.id).await.expect("ack");
        }
        received.extend(texts(&batch));
    }
    assert_eq!(received, (0..50).map(|n| n.to_string()).collect::<Vec<_>>());
}

async fn deleted_group_starts_afresh(h: BrokerHarness) {
    let topic = h.topic("orders");
    h.broker.ensure_group(&topic, "g").await.expect("ensure_group");
    h.broker.publish(&topic, b"before").await.expect("publish");
    let held = fetch_one(h.broker.as_ref(), &topic, "g", SHORT_HOLD).await;
    assert_eq!(held.payload, b"before");

    h.broker.delete_group(&topic, "g").await.expect("delete_group");
    let gone = h.broker.fetch(&topic, "g", 1, NO_WAIT, SHORT_HOLD).await;
    assert!(matches!(gone, Err(BrokerError::Backend(_))), "fetch from the deleted group: {gone:?}");
    h.broker.delete_group(&topic, "g").await.expect("deleting a deleted group");

    h.broker.ensure_group(&topic, "g").await.expect("ensure_group again");
    h.broker.publish(&topic, b"after").await.expect("publish");
    let fresh = fetch_one(h.broker.as_ref(), &topic, "g", SHORT_HOLD).await;
    assert_eq!((fresh.payload.as_slice(), fresh.attempt), (&b"after"[..], 1));
    h.broker.ack(&topic, "g", &fresh.id).await.expect("ack");
    // The old group's held message does not come back, not even once its hold is over.
    let later = h.broker.fetch(&topic, "g", 10, SHORT_HOLD * 3, SHORT_HOLD).await.expect("fetch");
    assert_eq!(later, []);
}

async fn fetch_waits_for_a_publish(h: BrokerHarness) {
    let topic = h.topic("orders");
    h.broker.ensure_group(&topic, "g").await.expect("ensure_group");
    let waiting = {
        let (broker, topic) = (Arc::clone(&h.broker), topic.clone());
        tokio::spawn(async move {
            let fetched = broker.fetch(&topic, "g", 10, PATIENCE, LONG_HOLD).await;
            (fetched, Instant::now())
        })
    };
    // The subject is time: the fetch has been waiting a while when the message comes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let published_at = Instant::now();
    h.broker.publish(&topic, b"news").await.expect("publish");
    let (fetched, returned_at) = waiting.await.expect("the waiting fetch");
    assert_eq!(texts(&fetched.expect("fetch")), ["news"]);
    let latency = returned_at.duration_since(published_at);
    assert!(latency < SLACK, "the waiting fetch returned {latency:?} after the publish");
}

async fn empty_fetch_waits_its_wait(h: BrokerHarness) {
    const WAIT: Duration = Duration::from_millis(800);
    let topic = h.topic("orders");
    h.broker.ensure_group(&topic, "g").await.expect("ensure_group");
    let started = Instant::now();
    let fetched = h.broker.fetch(&topic, "g", 10, WAIT, LONG_HOLD).await.expect("fetch");
    let elapsed = started.elapsed();
    assert_eq!(fetched, []);
    assert!(elapsed >= WAIT * 4 / 5 && elapsed < WAIT + SLACK, "an empty fetch took {elapsed:?} for a {WAIT:?} wait");
}

async fn look_alike_topics_are_apart(h: BrokerHarness) {
    // Escapes and the characters they stand for; NATS subjects reserve '.', '*', '>' and spaces.
    let names = ["a.b", "a_2Eb", "a_b", "a b", "a/b", "a*b", "a>b", "a", ""];
    for name in names {
        h.broker.ensure_group(&h.topic(name), "g").await.expect("ensure_group");
    }
    for name in names {
        h.broker.publish(&h.topic(name), name.as_bytes()).await.expect("publish");
    }
    for name in names {
        let topic = h.topic(name);
        assert_eq!(texts(&receive(h.broker.as_ref(), &topic, "g", 1).await), [name], "topic {topic:?}");
        let more = h.broker.fetch(&topic, "g", 10, Duration::from_millis(300), LONG_HOLD).await.expect("fetch");
        assert_eq!(texts(&more), Vec::<String>::new(), "topic {topic:?} got another topic's message");
    }
}

async fn fetch_from_a_missing_group_fails(h: BrokerHarness) {
    let topic = h.topic("orders");
    let fetched = h.broker.fetch(&topic, "never-created", 1, NO_WAIT, LONG_HOLD).await;
    assert!(matches!(fetched, Err(BrokerError::Backend(_))), "{fetched:?}");
}

async fn malformed_ids_are_refused(h: BrokerHarness) {
    let topic = h.topic("orders");
    h.broker.ensure_group(&topic, "g").await.expect("ensure_group");
    for id in ["", "not an id", "1-2-3 x"] {
        let acked = h.broker.ack(&topic, "g", id).await;
        assert!(matches!(acked, Err(BrokerError::InvalidId(_))), "ack {id:?}: {acked:?}");
        let retried = h.broker.retry(&topic, "g", id, Duration::ZERO).await;
        assert!(matches!(retried, Err(BrokerError::InvalidId(_))), "retry {id:?}: {retried:?}");
    }
}

async fn delivery_ids_work_from_another_instance(h: BrokerHarness) {
    let other = h.open_another().await;
    let topic = h.topic("orders");
    h.broker.ensure_group(&topic, "g").await.expect("ensure_group");
    for text in ["acked", "retried"] {
        h.broker.publish(&topic, text.as_bytes()).await.expect("publish");
    }
    let mut fetched = Vec::new();
    while fetched.len() < 2 {
        let batch = h.broker.fetch(&topic, "g", 2, SLACK, SHORT_HOLD).await.expect("fetch");
        assert!(!batch.is_empty(), "messages missing after {fetched:?}");
        fetched.extend(batch);
    }
    for delivery in &fetched {
        match delivery.payload.as_slice() {
            b"acked" => other.ack(&topic, "g", &delivery.id).await.expect("ack from the other instance"),
            _ => other.retry(&topic, "g", &delivery.id, Duration::ZERO).await.expect("retry from the other instance"),
        }
    }
    let again = fetch_one(h.broker.as_ref(), &topic, "g", SHORT_HOLD).await;
    assert_eq!((again.payload.as_slice(), again.attempt), (&b"retried"[..], 2));
    h.broker.ack(&topic, "g", &again.id).await.expect("ack");
    let later = h.broker.fetch(&topic, "g", 10, SHORT_HOLD * 3, SHORT_HOLD).await.expect("fetch");
    assert_eq!(later, [], "the message acked from the other instance came back");
}

async fn group_deleted_by_another_instance_is_missing(h: BrokerHarness) {
    let other = h.open_another().await;
    let topic = h.topic("orders");
    h.broker.ensure_group(&topic, "g").await.expect("ensure_group");
    h.broker.publish(&topic, b"before").await.expect("publish");
    let held = fetch_one(h.broker.as_ref(), &topic, "g", SHORT_HOLD).await;
    assert_eq!(held.payload, b"before");

    other.delete_group(&topic, "g").await.expect("delete_group from the other instance");
    let gone = h.broker.fetch(&topic, "g", 1, NO_WAIT, SHORT_HOLD).await;
    assert!(matches!(gone, Err(BrokerError::Backend(_))), "fetch from the group deleted elsewhere: {gone:?}");

    other.ensure_group(&topic, "g").await.expect("ensure_group from the other instance");
    h.broker.publish(&topic, b"after").await.expect("publish");
    // The group starts anew: what it gets (what the topic still keeps, then what came after) is a first attempt.
    let mut fresh = Vec::new();
    while !texts(&fresh).iter().any(|text| text == "after") {
        fresh.push(fetch_one(h.broker.as_ref(), &topic, "g", LONG_HOLD).await);
    }
    assert!(fresh.iter().all(|delivery| delivery.attempt == 1), "{fresh:?}");
    assert!(texts(&fresh).iter().all(|text| text == "before" || text == "after"), "{fresh:?}");
}

async fn unacked_messages_survive_reopening(h: BrokerHarness) {
    assert!(h.features.durable, "only durable brokers run this case");
    let topic = h.topic("orders");
    h.broker.ensure_group(&topic, "g").await.expect("ensure_group");
    for text in ["one", "two"] {
        h.broker.publish(&topic, text.as_bytes()).await.expect("publish");
    }
    let held = fetch_one(h.broker.as_ref(), &topic, "g", SHORT_HOLD).await;

    let reopened = h.reopen().await;
    let received = receive_holding(reopened.as_ref(), &topic, "g", 2, SHORT_HOLD).await;
    assert_eq!(sorted(texts(&received)), ["one", "two"]);
    for delivery in &received {
        let expected_attempt = if delivery.payload == held.payload { 2 } else { 1 };
        assert_eq!(delivery.attempt, expected_attempt, "{delivery:?}");
    }
}
