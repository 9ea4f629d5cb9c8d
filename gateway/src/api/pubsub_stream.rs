//! `SubscribeTopicEventsAlpha1`: an app with no reachable endpoint receives events over a gRPC stream it
//! opened itself. The gateway holds the stream and long-polls the subscription's consumer group through the
//! bus; delivery state stays in the broker, so the stream may land on any gateway and any worker.
//!
//! Protocol (daprd `pkg/api/grpc/subscribe.go`): the first client message is the initial request (pub/sub,
//! topic, optional dead-letter topic); the server answers an initial response at once, then sends events;
//! the client answers each with SUCCESS, RETRY or DROP. Events not answered when the stream ends go back to
//! the group at once, for the next consumer. The stream also ends when its credential does
//! ([`crate::stream_guard`]), the same way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dapr::dapr::proto::runtime::v1 as pb;
use outrigger_bus::{
    DeadLetter, Settlement, StreamEvent, StreamFetch, StreamSettle, StreamSubscribe, StreamTopic, Tenant, Verdict,
};
use pb::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as Inbound;
use pb::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Outbound;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, Notify};
use tonic::Status;

use crate::stream_guard::StreamGuard;
use crate::{DaprError, Gateway};

/// Events sent and not yet answered, per stream.
const MAX_OUTSTANDING: usize = 32;
/// How long one pull waits for events.
const PULL_WAIT: Duration = Duration::from_secs(2);
/// Verdicts settled in one call at most; as many wait for the call before the stream stops reading verdicts.
const MAX_SETTLE: usize = 256;

type Sender = mpsc::Sender<Result<pb::SubscribeTopicEventsResponseAlpha1, Status>>;

/// One open stream's subscription.
struct Session {
    gateway: Gateway,
    tenant: Tenant,
    pubsub: String,
    topic: String,
    dead_letter_topic: Option<String>,
    /// Event id sent to the app -> (broker delivery id, stored payload).
    outstanding: Mutex<HashMap<String, (String, Vec<u8>)>>,
    answered: Notify,
    /// Set when the app's side of the stream ended: the pump finishes its pull and stops.
    closed: tokio_util::sync::CancellationToken,
    /// Ends the stream with its credential; then verdicts are no longer read and unanswered events go back.
    guard: StreamGuard,
}

/// Opens the subscription the initial request asks for and starts the session; answers the outbound stream.
/// The caller hands the answer over through `guard` ([`StreamGuard::hand_over`]).
pub async fn open(
    gateway: Gateway,
    tenant: Tenant,
    guard: StreamGuard,
    mut inbound: tonic::Streaming<pb::SubscribeTopicEventsRequestAlpha1>,
) -> Result<
    impl futures_util::Stream<Item = Result<pb::SubscribeTopicEventsResponseAlpha1, Status>> + Unpin + Send + 'static,
    Status,
> {
    let first = inbound.message().await?.and_then(|message| message.subscribe_topic_events_request_type);
    let Some(Inbound::InitialRequest(initial)) = first else {
        return Err(DaprError::malformed("the first message of SubscribeTopicEventsAlpha1 must be an initial request")
            .to_status());
    };
    if initial.pubsub_name.is_empty() || initial.topic.is_empty() {
        return Err(DaprError::malformed("the initial request needs pubsub_name and topic").to_status());
    }
    let topic = StreamTopic { pubsub: initial.pubsub_name.clone(), topic: initial.topic.clone() };
    gateway.call(tenant.clone(), StreamSubscribe { topic }).await.map_err(|err| err.to_status())?;
    let (sender, mut receiver) = mpsc::channel(MAX_OUTSTANDING);
    let initial_response = Outbound::InitialResponse(pb::SubscribeTopicEventsResponseInitialAlpha1 {});
    let _ = sender.send(Ok(response(initial_response))).await;
    let session = Arc::new(Session {
        gateway,
        tenant,
        pubsub: initial.pubsub_name,
        topic: initial.topic,
        dead_letter_topic: initial.dead_letter_topic.filter(|topic| !topic.is_empty()),
        outstanding: Mutex::new(HashMap::new()),
        answered: Notify::new(),
        closed: tokio_util::sync::CancellationToken::new(),
        guard,
    });
    let stream = (session.pubsub.as_str(), session.topic.as_str(), session.dead_letter_topic.as_deref());
    let registration = session.gateway.0.streams.register(&session.tenant, stream).await;
    tokio::spawn(async move {
        run(session, inbound, sender).await;
        drop(registration);
    });
    Ok(futures_util::stream::poll_fn(move |context| receiver.poll_recv(context)))
}

fn response(kind: Outbound) -> pb::SubscribeTopicEventsResponseAlpha1 {
    pb::SubscribeTopicEventsResponseAlpha1 { subscribe_topic_events_response_type: Some(kind) }
}

/// Pumps events out and verdicts in until either side (or the credential) ends; then unanswered events go
/// back to the group.
async fn run(
    session: Arc<Session>,
    mut inbound: tonic::Streaming<pb::SubscribeTopicEventsRequestAlpha1>,
    sender: Sender,
) {
    let pump = tokio::spawn(pump(Arc::clone(&session), sender));
    let (verdicts, waiting) = mpsc::channel(MAX_SETTLE);
    let settler = tokio::spawn(settle(Arc::clone(&session), waiting));
    loop {
        let message = tokio::select! {
            message = inbound.message() => message,
            () = session.guard.ended() => break,
        };
        let Ok(Some(message)) = message else { break };
        let Some(Inbound::EventProcessed(processed)) = message.subscribe_topic_events_request_type else { continue };
        let verdict = match processed.status.map(|status| status.status) {
            Some(0) => Verdict::Success,
            Some(2) => Verdict::Drop,
            _ => Verdict::Retry,
        };
        let taken = session.outstanding.lock().expect("outstanding lock").remove(&processed.id);
        session.answered.notify_one();
        let Some((delivery_id, payload)) = taken else { continue };
        let _ = verdicts.send(session.settlement(delivery_id, verdict, payload)).await;
    }
    // The pump is not aborted: a pull in flight still completes on a worker, and what it took must be handed
    // back rather than left held until its hold runs out.
    session.closed.cancel();
    session.answered.notify_one();
    let _ = pump.await;
    let unanswered: Vec<(String, Vec<u8>)> =
        session.outstanding.lock().expect("outstanding lock").drain().map(|(_, v)| v).collect();
    for (delivery_id, payload) in unanswered {
        let _ = verdicts.send(session.settlement(delivery_id, Verdict::Retry, payload)).await;
    }
    drop(verdicts);
    let _ = settler.await;
}

/// Settles verdicts until the stream's end, each call taking every verdict that arrived while the previous one
/// was under way: a burst of events costs a few calls (and broker writes), not one each.
async fn settle(session: Arc<Session>, mut waiting: mpsc::Receiver<Settlement>) {
    let mut settlements = Vec::with_capacity(MAX_SETTLE);
    while waiting.recv_many(&mut settlements, MAX_SETTLE).await > 0 {
        let settlements = std::mem::replace(&mut settlements, Vec::with_capacity(MAX_SETTLE));
        let call = StreamSettle { topic: session.stream_topic(), settlements };
        if let Err(err) = session.gateway.call(session.tenant.clone(), call).await {
            // Unsettled events come back after their hold: delivered again, never lost.
            tracing::warn!(error = %err, topic = %session.topic, "could not settle streamed events");
        }
    }
}

impl Session {
    fn stream_topic(&self) -> StreamTopic {
        StreamTopic { pubsub: self.pubsub.clone(), topic: self.topic.clone() }
    }

    fn settlement(&self, id: String, verdict: Verdict, payload: Vec<u8>) -> Settlement {
        let dead_letter = match (&verdict, &self.dead_letter_topic) {
            (Verdict::Drop, Some(topic)) => Some(DeadLetter { topic: topic.clone(), payload }),
            _ => None,
        };
        Settlement { id, verdict, dead_letter }
    }
}

/// Pulls events and sends them while the app keeps up.
async fn pump(session: Arc<Session>, sender: Sender) {
    loop {
        if session.closed.is_cancelled() {
            return;
        }
        let room = MAX_OUTSTANDING.saturating_sub(session.outstanding.lock().expect("outstanding lock").len());
        if room == 0 {
            session.answered.notified().await;
            continue;
        }
        let call = StreamFetch { topic: session.stream_topic(), max: room, wait_ms: PULL_WAIT.as_millis() as u64 };
        let events = match session.gateway.call(session.tenant.clone(), call).await {
            Ok(events) => events,
            Err(err) => {
                tracing::warn!(error = %err, topic = %session.topic, "pull failed; retrying");
                tokio::time::sleep(PULL_WAIT).await;
                continue;
            }
        };
        for event in events {
            let message = topic_event(&event, &session.pubsub, &session.topic);
            // Recorded before sending: whatever happens next, the stream's end settles it.
            session.outstanding.lock().expect("outstanding lock").insert(message.id.clone(), (event.id, event.payload));
            if session.closed.is_cancelled()
                || sender.send(Ok(response(Outbound::EventMessage(message)))).await.is_err()
            {
                continue;
            }
        }
    }
}

/// A stored message as the SDKs receive it: CloudEvent fields, `data` as bytes, the rest as extensions.
fn topic_event(event: &StreamEvent, pubsub: &str, topic: &str) -> pb::TopicEventRequest {
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(&event.payload) else {
        return pb::TopicEventRequest {
            id: event.id.clone(),
            source: "Dapr".to_owned(),
            r#type: "com.dapr.event.sent".to_owned(),
            spec_version: "1.0".to_owned(),
            data_content_type: "application/octet-stream".to_owned(),
            data: event.payload.clone(),
            topic: topic.to_owned(),
            pubsub_name: pubsub.to_owned(),
            path: "/".to_owned(),
            extensions: None,
        };
    };
    let mut take = |name: &str| match fields.remove(name) {
        Some(Value::String(text)) => text,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let id = Some(take("id")).filter(|id| !id.is_empty()).unwrap_or_else(|| event.id.clone());
    let (source, kind, spec_version, data_content_type) =
        (take("source"), take("type"), take("specversion"), take("datacontenttype"));
    let (event_topic, event_pubsub) = (take("topic"), take("pubsubname"));
    let data = match (fields.remove("data_base64"), fields.remove("data")) {
        (Some(Value::String(encoded)), _) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(encoded).unwrap_or_default()
        }
        (_, Some(Value::String(text))) => text.into_bytes(),
        (_, Some(value)) => serde_json::to_vec(&value).expect("JSON values serialise"),
        (_, None) => Vec::new(),
    };
    pb::TopicEventRequest {
        id,
        source,
        r#type: kind,
        spec_version,
        data_content_type,
        data,
        topic: Some(event_topic).filter(|t| !t.is_empty()).unwrap_or_else(|| topic.to_owned()),
        pubsub_name: Some(event_pubsub).filter(|p| !p.is_empty()).unwrap_or_else(|| pubsub.to_owned()),
        path: "/".to_owned(),
        extensions: Some(struct_of(fields)),
    }
}

fn proto_value(value: Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(flag) => Kind::BoolValue(flag),
        Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or_default()),
        Value::String(text) => Kind::StringValue(text),
        Value::Array(items) => {
            Kind::ListValue(prost_types::ListValue { values: items.into_iter().map(proto_value).collect() })
        }
        Value::Object(fields) => Kind::StructValue(struct_of(fields)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn struct_of(fields: Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct { fields: fields.into_iter().map(|(k, v)| (k, proto_value(v))).collect() }
}
