//! Security group: streams end with their credentials. A streaming subscription or a `GetWorkItems` stream
//! opened before its token is revoked, its App ID deleted or its project deleted ends within the token cache
//! bound (UNAUTHENTICATED, or NOT_FOUND when the App ID or project is gone), hands nothing over once the
//! credential no longer authenticates requests, and what it did not hand over reaches a valid stream.
//!
//! "The credential has ended" is observed as the gateway refusing a request with it, never guessed with a
//! sleep: from then on the stream must not hand anything over.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use dapr::dapr::proto::runtime::v1 as pb;
use dapr_durabletask_proto as wf;
use outrigger_store::IssuedToken;
use pb::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as Inbound;
use pb::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Outbound;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use wf::task_hub_sidecar_service_client::TaskHubSidecarServiceClient;

use crate::harness::{with_token, TestGateway};

/// How long a test waits for what must happen within the (100 ms) token cache bound of the harness.
const PATIENCE: Duration = Duration::from_secs(10);

/// The gRPC API served on a free port; a channel to it.
async fn grpc_channel(gateway: &TestGateway) -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = outrigger_gateway::grpc_router(gateway.gateway.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap()
}

/// An open `SubscribeTopicEventsAlpha1` stream on the managed `pubsub`.
struct Subscription {
    requests: mpsc::Sender<pb::SubscribeTopicEventsRequestAlpha1>,
    responses: tonic::Streaming<pb::SubscribeTopicEventsResponseAlpha1>,
}

impl Subscription {
    async fn open(channel: &Channel, token: &str, topic: &str) -> Subscription {
        let (requests, mut outgoing) = mpsc::channel(16);
        let initial = pb::SubscribeTopicEventsRequestInitialAlpha1 {
            pubsub_name: "pubsub".into(),
            topic: topic.into(),
            ..Default::default()
        };
        let initial = Inbound::InitialRequest(initial);
        let message = pb::SubscribeTopicEventsRequestAlpha1 { subscribe_topic_events_request_type: Some(initial) };
        requests.send(message).await.unwrap();
        let outgoing = futures_util::stream::poll_fn(move |context| outgoing.poll_recv(context));
        let mut client = pb::dapr_client::DaprClient::new(channel.clone());
        let mut responses =
            client.subscribe_topic_events_alpha1(with_token(outgoing, token)).await.unwrap().into_inner();
        let first = responses.message().await.unwrap().and_then(|message| message.subscribe_topic_events_response_type);
        assert!(matches!(first, Some(Outbound::InitialResponse(_))), "the initial response comes first: {first:?}");
        Subscription { requests, responses }
    }

    /// The next event, answered SUCCESS; answers its `seq`.
    async fn take(&mut self) -> i64 {
        let message = tokio::time::timeout(PATIENCE, self.responses.message()).await.expect("an event in time");
        let Some(Outbound::EventMessage(event)) =
            message.unwrap().and_then(|message| message.subscribe_topic_events_response_type)
        else {
            panic!("expected an event");
        };
        let processed = pb::SubscribeTopicEventsRequestProcessedAlpha1 {
            id: event.id.clone(),
            status: Some(pb::TopicEventResponse { status: 0 }),
        };
        let answer = Inbound::EventProcessed(processed);
        let message = pb::SubscribeTopicEventsRequestAlpha1 { subscribe_topic_events_request_type: Some(answer) };
        self.requests.send(message).await.unwrap();
        serde_json::from_slice::<serde_json::Value>(&event.data).unwrap()["seq"].as_i64().unwrap()
    }
}

/// How a stream ends: its status. Fails when the stream hands anything over before ending.
async fn end_of<T: std::fmt::Debug>(stream: &mut tonic::Streaming<T>) -> tonic::Status {
    match tokio::time::timeout(PATIENCE, stream.message()).await {
        Err(_) => panic!("the stream is still open {PATIENCE:?} after its credential ended"),
        Ok(Ok(Some(message))) => panic!("handed over after the credential ended: {message:?}"),
        Ok(Ok(None)) => panic!("the stream ended without saying why"),
        Ok(Err(status)) => status,
    }
}

/// A second token of the App ID, as `POST .../tokens` issues it (the first stays valid for an hour).
async fn second_token(gateway: &TestGateway, project: &str, app: &str) -> IssuedToken {
    let mut tx = gateway.store.begin().await.unwrap();
    let found = tx.project(&outrigger_store::OrgId::default_org(), project).await.unwrap();
    let issued = tx.rotate_token(&found.id, app, 3600).await.unwrap();
    tx.commit().await.unwrap();
    issued
}

/// `DELETE .../tokens/{id}`: the control API announces no change for it, so only the cache bound ends it.
async fn revoke(gateway: &TestGateway, project: &str, app: &str, token_id: &str) {
    let mut tx = gateway.store.begin().await.unwrap();
    let found = tx.project(&outrigger_store::OrgId::default_org(), project).await.unwrap();
    tx.revoke_token(&found.id, app, token_id).await.unwrap();
    tx.commit().await.unwrap();
}

/// Waits until the gateway refuses requests carrying `token`: from then on the credential has ended.
async fn until_refused(gateway: &TestGateway, token: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = gateway.http("GET", "/v1.0/metadata", Some(token), None).await;
        if answer.status == StatusCode::UNAUTHORIZED {
            return;
        }
        assert!(Instant::now() < deadline, "requests with the ended credential are still let in");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn security_revoking_a_token_ends_its_subscription_and_loses_nothing() {
    let gateway = TestGateway::start().await;
    let publisher = gateway.app("shop", "checkout").await;
    let kept = gateway.app("shop", "listener").await;
    let revoked = second_token(&gateway, "shop", "listener").await;
    let channel = grpc_channel(&gateway).await;
    let mut stream = Subscription::open(&channel, &revoked.token, "orders").await;
    gateway.publish_seq(&publisher, "orders", 1).await;
    assert_eq!(stream.take().await, 1, "the stream works before the revocation");

    revoke(&gateway, "shop", "listener", &revoked.id).await;
    until_refused(&gateway, &revoked.token).await;
    gateway.publish_seq(&publisher, "orders", 2).await;
    let ended = end_of(&mut stream.responses).await;
    assert_eq!(ended.code(), tonic::Code::Unauthenticated, "{ended:?}");

    let mut next = Subscription::open(&channel, &kept, "orders").await;
    assert_eq!(next.take().await, 2, "the event published after the revocation reaches a valid stream");
}

#[tokio::test]
async fn security_deleting_an_app_id_ends_its_subscription_with_not_found() {
    let gateway = TestGateway::start().await;
    let publisher = gateway.app("shop", "checkout").await;
    let listener = gateway.app("shop", "listener").await;
    let channel = grpc_channel(&gateway).await;
    let mut stream = Subscription::open(&channel, &listener, "orders").await;
    gateway.publish_seq(&publisher, "orders", 1).await;
    assert_eq!(stream.take().await, 1, "the stream works before the deletion");

    let mut tx = gateway.store.begin().await.unwrap();
    let found = tx.project(&outrigger_store::OrgId::default_org(), "shop").await.unwrap();
    tx.delete_app_id(&found.id, "listener").await.unwrap();
    tx.commit().await.unwrap();
    gateway.changed("shop").await;
    until_refused(&gateway, &listener).await;
    gateway.publish_seq(&publisher, "orders", 2).await;
    let ended = end_of(&mut stream.responses).await;
    assert_eq!(ended.code(), tonic::Code::NotFound, "{ended:?}");
}

#[tokio::test]
async fn security_deleting_a_project_ends_its_streams_with_not_found() {
    let gateway = TestGateway::start().await;
    let listener = gateway.app("doomed", "listener").await;
    let channel = grpc_channel(&gateway).await;
    let mut subscription = Subscription::open(&channel, &listener, "orders").await;
    let mut workflows = TaskHubSidecarServiceClient::new(channel.clone());
    let mut work =
        workflows.get_work_items(with_token(wf::GetWorkItemsRequest {}, &listener)).await.unwrap().into_inner();

    let mut tx = gateway.store.begin().await.unwrap();
    let found = tx.project(&outrigger_store::OrgId::default_org(), "doomed").await.unwrap();
    tx.delete_project(&found.id).await.unwrap();
    tx.commit().await.unwrap();
    gateway.gateway.invalidate(found.id.as_str()).await;
    until_refused(&gateway, &listener).await;
    let ended = end_of(&mut subscription.responses).await;
    assert_eq!(ended.code(), tonic::Code::NotFound, "{ended:?}");
    let ended = end_of(&mut work).await;
    assert_eq!(ended.code(), tonic::Code::NotFound, "{ended:?}");
}

#[tokio::test]
async fn security_revoking_a_token_ends_its_work_item_stream_and_the_work_goes_elsewhere() {
    let gateway = TestGateway::start().await;
    let kept = gateway.app("shop", "worker").await;
    let revoked = second_token(&gateway, "shop", "worker").await;
    let channel = grpc_channel(&gateway).await;
    let mut client = TaskHubSidecarServiceClient::new(channel);
    let mut stream =
        client.get_work_items(with_token(wf::GetWorkItemsRequest {}, &revoked.token)).await.unwrap().into_inner();

    revoke(&gateway, "shop", "worker", &revoked.id).await;
    until_refused(&gateway, &revoked.token).await;
    let start =
        wf::CreateInstanceRequest { instance_id: "after-revocation".into(), name: "flow".into(), ..Default::default() };
    client.start_instance(with_token(start, &kept)).await.unwrap();
    let ended = end_of(&mut stream).await;
    assert_eq!(ended.code(), tonic::Code::Unauthenticated, "{ended:?}");

    let mut next = client.get_work_items(with_token(wf::GetWorkItemsRequest {}, &kept)).await.unwrap().into_inner();
    let item = tokio::time::timeout(PATIENCE, next.message()).await.expect("work in time").unwrap().unwrap();
    let Some(wf::work_item::Request::WorkflowRequest(turn)) = item.request else {
        panic!("expected the workflow's first turn: {item:?}");
    };
    assert_eq!(turn.instance_id, "after-revocation", "the work reaches a worker with a valid token");
}
