//! The apps the bench runs for Outrigger to deliver to, on a thread and runtime of their own (so the
//! load generator's work does not delay their receipts): an HTTP app taking push deliveries on
//! `/events` (and a trivial `/baseline` handler, the embedded form's baseline), and streaming
//! subscribers over `SubscribeTopicEventsAlpha1`.
//!
//! Every payload carries its sequence number and its scheduled time (ns since the bench's time base);
//! a [`Recorder`] keeps, per sequence number, the latency of its first receipt and how often it came.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use dapr::dapr::proto::runtime::v1 as pb;
use dapr::dapr::proto::runtime::v1::dapr_client::DaprClient;
use pb::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as Inbound;
use pb::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Outbound;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::common::load::{since_base, PhaseOutcome};
use crate::common::procs;

/// `TopicEventResponse.status` SUCCESS.
const SUCCESS: i32 = 0;

/// The first receipt of one message, and how many there were.
#[derive(Clone, Copy, Debug)]
pub struct Receipt {
    pub latency_ns: u64,
    pub at: Instant,
    pub count: u32,
}

#[derive(Default)]
struct Received {
    receipts: HashMap<u64, Receipt>,
    unreadable: u64,
    first_unreadable: Option<String>,
    last: Option<Instant>,
}

/// What one subscriber received.
#[derive(Default)]
pub struct Recorder {
    received: Mutex<Received>,
}

/// Sequence number and scheduled time of a payload (`{"seq":..,"t":..,...}`).
fn stamp(data: &Value) -> Option<(u64, u64)> {
    Some((data.get("seq")?.as_u64()?, data.get("t")?.as_u64()?))
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, now: Instant, stamped: Result<(u64, u64), String>) {
        let mut received = self.lock();
        received.last = Some(now);
        match stamped {
            Ok((seq, scheduled_ns)) => {
                let latency_ns = since_base(now).saturating_sub(scheduled_ns);
                received.receipts.entry(seq).and_modify(|receipt| receipt.count += 1).or_insert(Receipt {
                    latency_ns,
                    at: now,
                    count: 1,
                });
            }
            Err(err) => {
                received.unreadable += 1;
                received.first_unreadable.get_or_insert(err);
            }
        }
    }

    /// A CloudEvent pushed to the app: the payload is its `data` (an object, or a string holding it).
    fn record_cloud_event(&self, now: Instant, body: &[u8]) {
        let stamped = serde_json::from_slice::<Value>(body)
            .map_err(|err| format!("an event that is not JSON: {err}"))
            .and_then(|event| match event.get("data") {
                Some(Value::String(text)) => {
                    serde_json::from_str::<Value>(text).map_err(|err| format!("data that is not JSON: {err}"))
                }
                Some(data) => Ok(data.clone()),
                None => Err("an event without data".to_owned()),
            })
            .and_then(|data| stamp(&data).ok_or_else(|| format!("data without seq and t: {data}")));
        self.record(now, stamped);
    }

    /// The raw payload of a streamed event.
    fn record_payload(&self, now: Instant, data: &[u8]) {
        let stamped = serde_json::from_slice::<Value>(data)
            .map_err(|err| format!("data that is not JSON: {err}"))
            .and_then(|data| stamp(&data).ok_or_else(|| format!("data without seq and t: {data}")));
        self.record(now, stamped);
    }

    pub fn has_any(&self, seqs: &[u64]) -> bool {
        let received = self.lock();
        seqs.iter().any(|seq| received.receipts.contains_key(seq))
    }

    /// How many of `seqs` arrived (at least once).
    pub fn count_of(&self, seqs: &[u64]) -> usize {
        let received = self.lock();
        seqs.iter().filter(|seq| received.receipts.contains_key(seq)).count()
    }

    /// When anything last arrived.
    pub fn last(&self) -> Option<Instant> {
        self.lock().last
    }

    /// The receipts of `seqs` (those that arrived).
    pub fn receipts(&self, seqs: impl Iterator<Item = u64>) -> Vec<(u64, Receipt)> {
        let received = self.lock();
        seqs.filter_map(|seq| received.receipts.get(&seq).map(|receipt| (seq, *receipt))).collect()
    }

    /// Deliveries that could not be attributed, and the first reason.
    pub fn unreadable(&self) -> (u64, Option<String>) {
        let received = self.lock();
        (received.unreadable, received.first_unreadable.clone())
    }

    /// Waits until every message `outcome` had acknowledged arrived, or nothing arrived for `idle`, or
    /// `limit` passed; answers when the last of them arrived (or now).
    pub async fn drain(&self, outcome: &PhaseOutcome, idle: Duration, limit: Duration) -> Instant {
        let started = Instant::now();
        loop {
            if self.count_of(&outcome.succeeded) == outcome.succeeded.len() {
                break;
            }
            let quiet_since = self.last().map_or(started, |last| last.max(started));
            if quiet_since.elapsed() > idle || started.elapsed() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sent = outcome.succeeded.iter().chain(&outcome.failed).copied();
        self.receipts(sent).iter().map(|(_, receipt)| receipt.at).max().unwrap_or_else(Instant::now)
    }
}

#[derive(Clone)]
struct AppState {
    push: Arc<Recorder>,
}

async fn events(State(state): State<AppState>, body: Bytes) -> Json<Value> {
    state.push.record_cloud_event(Instant::now(), &body);
    Json(json!({"status": "SUCCESS"}))
}

async fn baseline(_body: Bytes) -> StatusCode {
    StatusCode::NO_CONTENT
}

/// The apps' thread and runtime.
pub struct Apps {
    /// Where the HTTP app listens.
    pub addr: SocketAddr,
    /// What arrived on `/events`.
    pub push: Arc<Recorder>,
    /// The thread, as "self/task/<tid>".
    pub thread: Option<String>,
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    joined: Option<std::thread::JoinHandle<()>>,
}

impl Apps {
    pub fn start() -> anyhow::Result<Apps> {
        let push = Arc::new(Recorder::default());
        let router = Router::new()
            .route("/events", post(events))
            .route("/baseline", post(baseline))
            .with_state(AppState { push: Arc::clone(&push) });
        let (ready, started) = std::sync::mpsc::channel();
        let joined = std::thread::Builder::new().name("bench-apps".to_owned()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = ready.send(Err(anyhow!("building the apps' runtime: {err}")));
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(listener) => listener,
                    Err(err) => {
                        let _ = ready.send(Err(anyhow!("binding the subscriber app: {err}")));
                        return;
                    }
                };
                let (stop, stopped) = oneshot::channel::<()>();
                let addr = listener.local_addr().map_err(anyhow::Error::from);
                let thread = procs::current_thread();
                let _ = ready.send(addr.map(|addr| (addr, tokio::runtime::Handle::current(), stop, thread)));
                // Stopping drops the server and, with the runtime, every connection and stream.
                tokio::select! {
                    _ = axum::serve(listener, router) => {}
                    _ = stopped => {}
                }
            });
        })?;
        let (addr, handle, stop, thread) = started.recv().context("the apps' thread ended before it was ready")??;
        Ok(Apps { addr, push, thread, handle, stop: Some(stop), joined: Some(joined) })
    }

    /// Opens a streaming subscription of `topic` on the managed `pubsub` with the App ID's `token`,
    /// answering SUCCESS to every event; returns once the gateway sent its initial response.
    pub async fn open_stream(&self, grpc: &str, token: &str, topic: &str) -> anyhow::Result<StreamSubscriber> {
        let recorder = Arc::new(Recorder::default());
        let failure = Arc::new(Mutex::new(None));
        let (opened, open) = oneshot::channel();
        let task = self.handle.spawn(stream(
            format!("http://{grpc}"),
            token.to_owned(),
            topic.to_owned(),
            Arc::clone(&recorder),
            Arc::clone(&failure),
            opened,
        ));
        match tokio::time::timeout(Duration::from_secs(30), open).await {
            Ok(Ok(Ok(()))) => Ok(StreamSubscriber { recorder, failure, task }),
            Ok(Ok(Err(err))) => Err(anyhow!("opening the stream: {err}")),
            Ok(Err(_)) => Err(anyhow!("opening the stream: the task ended")),
            Err(_) => {
                task.abort();
                Err(anyhow!("opening the stream: no initial response within 30 s"))
            }
        }
    }
}

impl Drop for Apps {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(joined) = self.joined.take() {
            let _ = joined.join();
        }
    }
}

/// An open streaming subscription; closed when dropped.
pub struct StreamSubscriber {
    pub recorder: Arc<Recorder>,
    failure: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StreamSubscriber {
    /// Why the stream ended, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|failure| failure.clone())
    }
}

impl Drop for StreamSubscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn request(kind: Inbound) -> pb::SubscribeTopicEventsRequestAlpha1 {
    pb::SubscribeTopicEventsRequestAlpha1 { subscribe_topic_events_request_type: Some(kind) }
}

async fn stream(
    endpoint: String,
    token: String,
    topic: String,
    recorder: Arc<Recorder>,
    failure: Arc<Mutex<Option<String>>>,
    opened: oneshot::Sender<Result<(), String>>,
) {
    let (requests, mut outgoing) = mpsc::unbounded_channel();
    let initial =
        pb::SubscribeTopicEventsRequestInitialAlpha1 { pubsub_name: "pubsub".into(), topic, ..Default::default() };
    let _ = requests.send(request(Inbound::InitialRequest(initial)));
    let opening = async {
        let channel = tonic::transport::Channel::from_shared(endpoint)
            .map_err(|err| err.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|err| format!("connecting: {err}"))?;
        let mut client = DaprClient::new(channel);
        let outgoing = futures_util::stream::poll_fn(move |context| outgoing.poll_recv(context));
        let mut call = tonic::Request::new(outgoing);
        call.metadata_mut().insert("dapr-api-token", token.parse().map_err(|_| "a token that is no header value")?);
        let mut responses =
            client.subscribe_topic_events_alpha1(call).await.map_err(|status| format!("{status}"))?.into_inner();
        match responses.message().await.map_err(|status| format!("{status}"))? {
            Some(pb::SubscribeTopicEventsResponseAlpha1 {
                subscribe_topic_events_response_type: Some(Outbound::InitialResponse(_)),
            }) => Ok(responses),
            other => Err(format!("expected the initial response, got {other:?}")),
        }
    };
    let mut responses = match opening.await {
        Ok(responses) => {
            let _ = opened.send(Ok(()));
            responses
        }
        Err(err) => {
            let _ = opened.send(Err(err));
            return;
        }
    };
    let ended = loop {
        match responses.message().await {
            Ok(Some(message)) => {
                if let Some(Outbound::EventMessage(event)) = message.subscribe_topic_events_response_type {
                    recorder.record_payload(Instant::now(), &event.data);
                    let processed = pb::SubscribeTopicEventsRequestProcessedAlpha1 {
                        id: event.id,
                        status: Some(pb::TopicEventResponse { status: SUCCESS }),
                    };
                    if requests.send(request(Inbound::EventProcessed(processed))).is_err() {
                        break "the request side closed".to_owned();
                    }
                }
            }
            Ok(None) => break "the gateway ended the stream".to_owned(),
            Err(status) => break format!("the stream failed: {status}"),
        }
    };
    if let Ok(mut failure) = failure.lock() {
        *failure = Some(ended);
    }
}
