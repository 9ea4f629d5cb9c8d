//! `bindings.rabbitmq` and `bindings.mqtt3` against the machine's RabbitMQ and Mosquitto: what the output side
//! publishes reaches the input side with its metadata; an event the app refuses comes again (RabbitMQ requeues it,
//! MQTT retries it `backOffMaxRetries` times) and is settled once accepted; readers of one component and App ID
//! share its events, each delivered once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use outrigger_workers::bindings::{self, BindingRequest, EventSink, InputBinding, InputEvent, OutputBinding, Reader};
use outrigger_workers::Boundary;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backends::metadata;
use crate::pubsub_backends::unique_id;

/// Long enough for a message to cross a loaded machine's broker; a lost one fails the test by then.
const ARRIVES_WITHIN: Duration = Duration::from_secs(20);

/// A sink that records each event and refuses the next `refusals` of them.
struct Recorder {
    events: mpsc::UnboundedSender<InputEvent>,
    refusals: std::sync::Mutex<usize>,
}

#[async_trait]
impl EventSink for Recorder {
    async fn deliver(&self, event: InputEvent) -> Result<(), String> {
        self.events.send(event).expect("the test listens");
        let mut refusals = self.refusals.lock().unwrap();
        if *refusals > 0 {
            *refusals -= 1;
            return Err("the app answered 500".into());
        }
        Ok(())
    }
}

impl Recorder {
    fn refuse(&self, refusals: usize) {
        *self.refusals.lock().unwrap() = refusals;
    }
}

fn recorder() -> (Arc<Recorder>, mpsc::UnboundedReceiver<InputEvent>) {
    let (events, received) = mpsc::unbounded_channel();
    (Arc::new(Recorder { events, refusals: std::sync::Mutex::new(0) }), received)
}

async fn next(received: &mut mpsc::UnboundedReceiver<InputEvent>) -> InputEvent {
    tokio::time::timeout(ARRIVES_WITHIN, received.recv()).await.expect("an event arrived").expect("still sending")
}

async fn opened(
    component_type: &str,
    entries: &BTreeMap<String, String>,
) -> (Arc<dyn OutputBinding>, Arc<dyn InputBinding>) {
    let boundary = Boundary::operator();
    let output = bindings::open_within(component_type, entries, &boundary).await.expect("the output side opens");
    let input = bindings::open_input_within(component_type, entries, &boundary).await.expect("the input side opens");
    (output, input)
}

/// App ID `checkout` of project `project` reading component `orders`.
fn reader(project: &str) -> Reader {
    Reader { project_id: project.into(), component: "orders".into(), app_id: "checkout".into() }
}

/// Starts `reader` reading into `sink` (its events arriving at `received`) and waits until it is subscribed: a
/// message published before would not reach it (MQTT keeps nothing for a subscription that does not exist yet).
async fn start_reading(
    (input, output): (&Arc<dyn InputBinding>, &Arc<dyn OutputBinding>),
    reader: Reader,
    (sink, received): (Arc<Recorder>, &mut mpsc::UnboundedReceiver<InputEvent>),
    stop: &CancellationToken,
) {
    let (input, stop) = (Arc::clone(input), stop.clone());
    tokio::spawn(async move { input.read(&reader, sink, stop).await });
    // Published until one arrives: the first that does shows the subscription is in place.
    let warm_up = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + ARRIVES_WITHIN;
    loop {
        let request = BindingRequest { operation: "create", data: b"warm-up", metadata: &warm_up };
        output.invoke(request).await.expect("publish");
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), received.recv()).await {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the reader never received a message");
    }
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), received.recv()).await {}
}

#[tokio::test]
async fn rabbitmq_events_are_acked_once_accepted_and_requeued_when_refused() {
    let queue = format!("orders-{}", unique_id());
    let entries =
        metadata(&[("host", "amqp://guest:guest@127.0.0.1:5672"), ("queueName", &queue), ("deleteWhenUnused", "true")]);
    let (output, input) = opened("bindings.rabbitmq", &entries).await;
    let (sink, mut received) = recorder();
    let stop = CancellationToken::new();
    start_reading((&input, &output), reader("shop"), (sink, &mut received), &stop).await;

    let headers = metadata(&[("orderKind", "express"), ("ttlInSeconds", "60")]);
    output.invoke(BindingRequest { operation: "create", data: b"order 1", metadata: &headers }).await.unwrap();
    let event = next(&mut received).await;
    assert_eq!(event.data, b"order 1");
    assert_eq!(event.metadata.get("orderKind").map(String::as_str), Some("express"));
    stop.cancel();

    // A refusing reader sees the message again (requeued), then settles it; nothing is left for the next one.
    let (refusing, mut received) = recorder();
    let stop = CancellationToken::new();
    start_reading((&input, &output), reader("shop"), (Arc::clone(&refusing), &mut received), &stop).await;
    refusing.refuse(1);
    output.invoke(BindingRequest { operation: "create", data: b"order 2", metadata: &BTreeMap::new() }).await.unwrap();
    assert_eq!(next(&mut received).await.data, b"order 2");
    assert_eq!(next(&mut received).await.data, b"order 2", "a refused message comes back");
    assert!(tokio::time::timeout(Duration::from_secs(2), received.recv()).await.is_err(), "an accepted one does not");
    stop.cancel();
}

#[tokio::test]
async fn rabbitmq_readers_share_the_queue() {
    let queue = format!("shared-{}", unique_id());
    let entries =
        metadata(&[("host", "amqp://127.0.0.1:5672/%2f"), ("queueName", &queue), ("deleteWhenUnused", "true")]);
    let (output, input) = opened("bindings.rabbitmq", &entries).await;
    let (sink, mut received) = recorder();
    let stop = CancellationToken::new();
    start_reading((&input, &output), reader("shop"), (Arc::clone(&sink), &mut received), &stop).await;
    let (second, mut also_received) = recorder();
    let (other_input, other_stop) = (Arc::clone(&input), stop.clone());
    tokio::spawn(async move { other_input.read(&reader("shop"), second, other_stop).await });
    for index in 0..20 {
        let data = format!("message {index}");
        output
            .invoke(BindingRequest { operation: "create", data: data.as_bytes(), metadata: &BTreeMap::new() })
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let event = tokio::select! {
            Some(event) = received.recv() => event,
            Some(event) = also_received.recv() => event,
            () = tokio::time::sleep(ARRIVES_WITHIN) => panic!("only {} of 20 arrived", seen.len()),
        };
        seen.push(String::from_utf8(event.data).unwrap());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 20, "each message once");
    stop.cancel();
}

#[tokio::test]
async fn mqtt_events_reach_one_reader_and_are_retried_when_refused() {
    let topic = format!("orders/{}", unique_id());
    let entries = metadata(&[("url", "mqtt://127.0.0.1:1883"), ("topic", &topic), ("backOffMaxRetries", "1")]);
    let (output, input) = opened("bindings.mqtt3", &entries).await;
    let stop = CancellationToken::new();
    // Another project reading the same topic through a component and App ID of the same names (a tenant on the
    // same broker) has its own subscription: it takes none of this project's messages, and gets every one.
    let (rival, mut rival_received) = recorder();
    start_reading((&input, &output), reader("rival"), (rival, &mut rival_received), &stop).await;
    let (sink, mut received) = recorder();
    start_reading((&input, &output), reader("shop"), (sink, &mut received), &stop).await;
    // A second reader for the same project, component and App ID shares the subscription.
    let (second, mut also_received) = recorder();
    let (other_input, other_stop) = (Arc::clone(&input), stop.clone());
    tokio::spawn(async move { other_input.read(&reader("shop"), second, other_stop).await });

    let elsewhere = format!("{topic}/override");
    let request = metadata(&[("topic", &elsewhere)]);
    output.invoke(BindingRequest { operation: "create", data: b"not for us", metadata: &request }).await.unwrap();
    for index in 0..10 {
        let data = format!("reading {index}");
        output
            .invoke(BindingRequest { operation: "create", data: data.as_bytes(), metadata: &BTreeMap::new() })
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let event = tokio::select! {
            Some(event) = received.recv() => event,
            Some(event) = also_received.recv() => event,
            () = tokio::time::sleep(ARRIVES_WITHIN) => panic!("only {seen:?} arrived"),
        };
        assert_eq!(event.metadata.get("topic"), Some(&topic));
        seen.push(String::from_utf8(event.data).unwrap());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 10, "each message once across the readers: {seen:?}");
    let mut rival_seen = Vec::new();
    while rival_seen.len() < 10 {
        let event = tokio::time::timeout(ARRIVES_WITHIN, rival_received.recv()).await;
        let event = event.unwrap_or_else(|_| panic!("the other project got only {rival_seen:?}")).unwrap();
        // What this project published to warm up its own reader reaches the other project too.
        if event.data != b"warm-up" {
            rival_seen.push(String::from_utf8(event.data).unwrap());
        }
    }
    rival_seen.sort();
    assert_eq!(rival_seen, seen, "the other project got every message");
    stop.cancel();

    // Refused once, a message is tried again (backOffMaxRetries 1), then acknowledged.
    let (refusing, mut received) = recorder();
    let stop = CancellationToken::new();
    start_reading((&input, &output), reader("shop"), (Arc::clone(&refusing), &mut received), &stop).await;
    refusing.refuse(1);
    output.invoke(BindingRequest { operation: "create", data: b"retry me", metadata: &BTreeMap::new() }).await.unwrap();
    assert_eq!(next(&mut received).await.data, b"retry me");
    assert_eq!(next(&mut received).await.data, b"retry me");
    stop.cancel();
}

#[tokio::test]
async fn broker_bindings_refuse_what_they_cannot_serve() {
    let boundary = Boundary::operator();
    let cases = [
        ("bindings.rabbitmq", metadata(&[("host", "amqps://broker:5671"), ("queueName", "q")]), "amqp://"),
        ("bindings.rabbitmq", metadata(&[("host", "amqp://broker"), ("queueName", "q"), ("caCert", "PEM")]), "TLS"),
        ("bindings.mqtt3", metadata(&[("url", "ssl://broker:8883"), ("topic", "t")]), "mqtt://"),
        (
            "bindings.mqtt3",
            metadata(&[("url", "mqtt://broker"), ("topic", "t"), ("backOffMaxRetries", "x")]),
            "whole number",
        ),
    ];
    for (component_type, entries, expected) in cases {
        let Err(err) = bindings::open_within(component_type, &entries, &boundary).await else {
            panic!("{component_type} opened with {entries:?}")
        };
        assert!(err.to_string().contains(expected), "{component_type}: {err}");
    }
    // The MQTT publish answers only once the broker acknowledged: an unreachable broker is an error.
    let entries = metadata(&[("url", "mqtt://127.0.0.1:1"), ("topic", "t")]);
    let output = bindings::open_within("bindings.mqtt3", &entries, &boundary).await.unwrap();
    let refused = output.invoke(BindingRequest { operation: "create", data: b"x", metadata: &BTreeMap::new() }).await;
    assert!(refused.is_err());
}
