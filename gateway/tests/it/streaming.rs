//! Streaming subscriptions (`SubscribeTopicEventsAlpha1`) with the generated Dapr client.

use std::collections::BTreeSet;
use std::time::Duration;

use dapr::dapr::proto::runtime::v1 as pb;
use pb::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as Inbound;
use pb::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Outbound;
use tokio::sync::mpsc;

use crate::harness::{request, with_token, TestGateway};

/// One open stream: what the test sends, what it receives.
struct Stream {
    requests: mpsc::Sender<pb::SubscribeTopicEventsRequestAlpha1>,
    responses: tonic::Streaming<pb::SubscribeTopicEventsResponseAlpha1>,
}

impl Stream {
    async fn open(gateway: &TestGateway, token: &str, topic: &str) -> Result<Stream, tonic::Status> {
        let mut client = gateway.grpc_client().await;
        let (requests, mut outgoing) = mpsc::channel(16);
        let initial = pb::SubscribeTopicEventsRequestInitialAlpha1 {
            pubsub_name: "pubsub".into(),
            topic: topic.into(),
            ..Default::default()
        };
        requests
            .send(pb::SubscribeTopicEventsRequestAlpha1 {
                subscribe_topic_events_request_type: Some(Inbound::InitialRequest(initial)),
            })
            .await
            .unwrap();
        let stream = futures_util::stream::poll_fn(move |context| outgoing.poll_recv(context));
        let mut responses = client.subscribe_topic_events_alpha1(with_token(stream, token)).await?.into_inner();
        let first = responses.message().await?.and_then(|message| message.subscribe_topic_events_response_type);
        assert!(matches!(first, Some(Outbound::InitialResponse(_))), "the initial response comes first: {first:?}");
        Ok(Stream { requests, responses })
    }

    /// The next event, within 10 s.
    async fn next_event(&mut self) -> pb::TopicEventRequest {
        let message = tokio::time::timeout(Duration::from_secs(10), self.responses.message())
            .await
            .expect("an event within 10 s");
        match message.unwrap().and_then(|message| message.subscribe_topic_events_response_type) {
            Some(Outbound::EventMessage(event)) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    async fn answer(&self, id: &str, status: i32) {
        let processed = pb::SubscribeTopicEventsRequestProcessedAlpha1 {
            id: id.into(),
            status: Some(pb::TopicEventResponse { status }),
        };
        self.requests
            .send(pb::SubscribeTopicEventsRequestAlpha1 {
                subscribe_topic_events_request_type: Some(Inbound::EventProcessed(processed)),
            })
            .await
            .unwrap();
    }
}

const SUCCESS: i32 = 0;
const RETRY: i32 = 1;

fn seq(event: &pb::TopicEventRequest) -> i64 {
    serde_json::from_slice::<serde_json::Value>(&event.data).unwrap()["seq"].as_i64().unwrap()
}

#[tokio::test]
async fn events_stream_with_success_and_retry() {
    let gateway = TestGateway::start().await;
    let publisher = gateway.app("shop", "checkout").await;
    let listener = gateway.app("shop", "listener").await;
    let mut stream = Stream::open(&gateway, &listener, "events").await.unwrap();
    for seq in 0..5 {
        gateway.publish_seq(&publisher, "events", seq).await;
    }
    let mut done = BTreeSet::new();
    let mut retried = false;
    while done.len() < 5 {
        let event = stream.next_event().await;
        assert_eq!(
            (event.topic.as_str(), event.pubsub_name.as_str(), event.source.as_str()),
            ("events", "pubsub", "checkout")
        );
        assert_eq!(event.data_content_type, "application/json");
        if !retried {
            retried = true;
            stream.answer(&event.id, RETRY).await;
            continue;
        }
        stream.answer(&event.id, SUCCESS).await;
        done.insert(seq(&event));
    }
    assert_eq!(done, (0..5).collect());
}

#[tokio::test]
async fn every_gateway_lists_an_open_stream_until_it_closes() {
    let gateway = TestGateway::start().await;
    let listener = gateway.app("shop", "listener").await;
    let neighbour = gateway.app("shop", "neighbour").await;
    let elsewhere = gateway.another_gateway();
    let streams_seen_by = |token: String| {
        let elsewhere = elsewhere.clone();
        async move {
            let listed = request(&elsewhere, "GET", "/v1.0/metadata", Some(&token), None, &[]).await.json();
            listed["subscriptions"].as_array().unwrap().clone()
        }
    };
    let stream = Stream::open(&gateway, &listener, "orders").await.unwrap();
    let listed = streams_seen_by(listener.clone()).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((&listed[0]["type"], &listed[0]["topic"]), (&"STREAMING".into(), &"orders".into()));
    assert!(streams_seen_by(neighbour).await.is_empty(), "another App ID's stream is not listed");

    drop(stream);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !streams_seen_by(listener.clone()).await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "a closed stream stays listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn unanswered_events_go_to_the_next_stream() {
    let gateway = TestGateway::start().await;
    let publisher = gateway.app("shop", "checkout").await;
    let listener = gateway.app("shop", "listener").await;
    let mut first = Stream::open(&gateway, &listener, "jobs").await.unwrap();
    let listed = gateway.http("GET", "/v1.0/metadata", Some(&listener), None).await.json();
    assert_eq!(listed["subscriptions"][0]["type"], "STREAMING", "{listed}");
    assert_eq!(listed["subscriptions"][0]["topic"], "jobs");
    gateway.publish_seq(&publisher, "jobs", 7).await;
    assert_eq!(seq(&first.next_event().await), 7);
    drop(first);
    let mut second = Stream::open(&gateway, &listener, "jobs").await.unwrap();
    let again = second.next_event().await;
    assert_eq!(seq(&again), 7, "the event left unanswered comes to the next consumer");
    second.answer(&again.id, SUCCESS).await;
}

#[tokio::test]
async fn streams_are_authenticated_and_checked() {
    let gateway = TestGateway::start().await;
    let listener = gateway.app("shop", "listener").await;
    let wrong = Stream::open(&gateway, "ort_wrong", "events").await.err().expect("refused");
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
    let mut client = gateway.grpc_client().await;
    let (requests, mut outgoing) = mpsc::channel(4);
    let initial = pb::SubscribeTopicEventsRequestInitialAlpha1 {
        pubsub_name: "nosuch".into(),
        topic: "t".into(),
        ..Default::default()
    };
    requests
        .send(pb::SubscribeTopicEventsRequestAlpha1 {
            subscribe_topic_events_request_type: Some(Inbound::InitialRequest(initial)),
        })
        .await
        .unwrap();
    let stream = futures_util::stream::poll_fn(move |context| outgoing.poll_recv(context));
    let refused = match client.subscribe_topic_events_alpha1(with_token(stream, &listener)).await {
        Err(status) => status,
        Ok(response) => response.into_inner().message().await.expect_err("an unknown pubsub is refused"),
    };
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
}
