//! The app's side in Rust: a `TaskHubSidecarService` client carrying the App ID's token, and a worker that
//! holds one or more `GetWorkItems` streams open (reconnecting when one ends, as the SDKs do), answers every
//! workflow turn by replaying its history ([`crate::replay`]) through `CompleteOrchestratorTask` with the
//! turn's completion token, and every activity through `CompleteActivityTask`. A bounded number of items
//! is worked on at once; while that many are open, the streams are not read, as an SDK worker behaves.
//!
//! The worker tells the driver when an instance it completed was acknowledged: [`Completions`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use dapr_durabletask_proto as pb;
use pb::task_hub_sidecar_service_client::TaskHubSidecarServiceClient;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::common::load::Latencies;
use crate::replay;

/// A `TaskHubSidecarService` client on one HTTP/2 connection whose every call carries `dapr-api-token`.
pub type Client = TaskHubSidecarServiceClient<InterceptedService<Channel, Token>>;

/// Adds the App ID's API token to each call, as the SDKs do with `DAPR_API_TOKEN`.
#[derive(Clone)]
pub struct Token(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Token {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("dapr-api-token", self.0.clone());
        Ok(request)
    }
}

/// A client on a new connection to the Dapr gRPC address `grpc` (`host:port`) with the App ID's `token`.
pub async fn connect(grpc: &str, token: &str) -> anyhow::Result<Client> {
    let channel = Channel::from_shared(format!("http://{grpc}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connecting to the Dapr gRPC port {grpc}"))?;
    let token = Token(token.parse().context("the API token is no valid header value")?);
    Ok(TaskHubSidecarServiceClient::with_interceptor(channel, token))
}

/// How an instance the driver waits for ended, as the worker saw it.
#[derive(Debug)]
pub enum Ending {
    /// The turn that completed it was acknowledged at this instant.
    Completed(Instant),
    Failed(String),
}

/// The instances the driver waits for, and whom to tell when each ends.
#[derive(Default)]
pub struct Completions {
    waiting: Mutex<HashMap<String, oneshot::Sender<Ending>>>,
}

impl Completions {
    /// Call before starting `instance`, so that its end cannot be missed.
    pub fn expect(&self, instance: &str) -> oneshot::Receiver<Ending> {
        let (sender, receiver) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(instance.to_owned(), sender);
        }
        receiver
    }

    /// The driver gave up on `instance`.
    pub fn forget(&self, instance: &str) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(instance);
        }
    }

    fn tell(&self, instance: &str, ending: Ending) {
        let sender = self.waiting.lock().ok().and_then(|mut waiting| waiting.remove(instance));
        if let Some(sender) = sender {
            let _ = sender.send(ending);
        }
    }
}

/// What the worker did since the last [`Worker::take_stats`].
#[derive(Default)]
pub struct Stats {
    pub turns: u64,
    pub activities: u64,
    /// Events (past and new) of the turns received: the history a turn carries grows with the instance.
    pub turn_events: u64,
    /// Latency of `CompleteOrchestratorTask` and `CompleteActivityTask` as the worker saw it.
    pub turn_answers: Latencies,
    pub activity_answers: Latencies,
    /// Answers the engine refused, and turns whose history this code would not have produced.
    pub answer_errors: u64,
    pub replay_failures: u64,
    /// Streams that ended and were opened again.
    pub reconnects: u64,
    pub first_error: Option<String>,
}

#[derive(Default)]
struct Counters {
    turns: AtomicU64,
    activities: AtomicU64,
    turn_events: AtomicU64,
    answer_errors: AtomicU64,
    replay_failures: AtomicU64,
    reconnects: AtomicU64,
    /// Latencies and the first error, behind one lock.
    detail: Mutex<(Latencies, Latencies, Option<String>)>,
}

impl Counters {
    fn error(&self, counter: &AtomicU64, error: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut detail) = self.detail.lock() {
            detail.2.get_or_insert(error);
        }
    }
}

struct Shared {
    client: Client,
    completions: Arc<Completions>,
    counters: Counters,
    /// Items being worked on at once.
    open: Arc<Semaphore>,
}

/// The running worker; dropping it closes its streams.
pub struct Worker {
    shared: Arc<Shared>,
    streams: Vec<JoinHandle<()>>,
}

impl Worker {
    /// Says `Hello`, then opens `streams` work-item streams on `client`'s connection, working on at most
    /// `concurrency` items at once; returns once every stream is open.
    pub async fn start(
        client: Client,
        streams: usize,
        concurrency: usize,
        completions: Arc<Completions>,
    ) -> anyhow::Result<Worker> {
        client.clone().hello(()).await.context("Hello")?;
        let shared = Arc::new(Shared {
            client,
            completions,
            counters: Counters::default(),
            open: Arc::new(Semaphore::new(concurrency.max(1))),
        });
        let mut worker = Worker { shared: Arc::clone(&shared), streams: Vec::new() };
        for _ in 0..streams.max(1) {
            let (opened, open) = oneshot::channel();
            worker.streams.push(tokio::spawn(serve(Arc::clone(&shared), opened)));
            open.await.context("a work-item stream task ended")?.map_err(anyhow::Error::msg).context("GetWorkItems")?;
        }
        Ok(worker)
    }

    /// What the worker did since the last call, and the counters start over.
    pub fn take_stats(&self) -> Stats {
        let counters = &self.shared.counters;
        let take = |counter: &AtomicU64| counter.swap(0, Ordering::Relaxed);
        let (turn_answers, activity_answers, first_error) =
            counters.detail.lock().map(|mut detail| std::mem::take(&mut *detail)).unwrap_or_default();
        Stats {
            turns: take(&counters.turns),
            activities: take(&counters.activities),
            turn_events: take(&counters.turn_events),
            turn_answers,
            activity_answers,
            answer_errors: take(&counters.answer_errors),
            replay_failures: take(&counters.replay_failures),
            reconnects: take(&counters.reconnects),
            first_error,
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        for stream in &self.streams {
            stream.abort();
        }
    }
}

/// One work-item stream, opened again when it ends; tells `opened` whether the first one opened.
async fn serve(shared: Arc<Shared>, opened: oneshot::Sender<Result<(), String>>) {
    let mut opened = Some(opened);
    loop {
        let mut items = match shared.client.clone().get_work_items(pb::GetWorkItemsRequest {}).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                let error = format!("GetWorkItems: {status}");
                if let Some(opened) = opened.take() {
                    let _ = opened.send(Err(error));
                    return;
                }
                shared.counters.error(&shared.counters.reconnects, error);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if let Some(opened) = opened.take() {
            let _ = opened.send(Ok(()));
        }
        let ended = loop {
            // Not reading the stream while `concurrency` items are open is the worker's back-pressure.
            let Ok(permit) = Arc::clone(&shared.open).acquire_owned().await else { return };
            match items.message().await {
                Ok(Some(item)) => {
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move {
                        work(&shared, item).await;
                        drop(permit);
                    });
                }
                Ok(None) => break "the engine ended the work-item stream".to_owned(),
                Err(status) => break format!("the work-item stream failed: {status}"),
            }
        };
        shared.counters.error(&shared.counters.reconnects, ended);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Answers one work item.
async fn work(shared: &Shared, item: pb::WorkItem) {
    let counters = &shared.counters;
    let mut client = shared.client.clone();
    match item.request {
        Some(pb::work_item::Request::WorkflowRequest(request)) => {
            counters.turns.fetch_add(1, Ordering::Relaxed);
            let events = request.past_events.len() + request.new_events.len();
            counters.turn_events.fetch_add(events as u64, Ordering::Relaxed);
            let turn = replay::decide(&request);
            if let Some(Err(reason)) = &turn.finished {
                counters.error(&counters.replay_failures, format!("instance {}: {reason}", request.instance_id));
            }
            let response = pb::WorkflowResponse {
                instance_id: request.instance_id.clone(),
                actions: turn.actions,
                completion_token: item.completion_token,
                ..Default::default()
            };
            let sent = Instant::now();
            // The SDKs still call the old name (CompleteWorkflowTask is its alias).
            #[allow(deprecated)]
            let answered = client.complete_orchestrator_task(response).await;
            let at = Instant::now();
            if let Ok(mut detail) = counters.detail.lock() {
                detail.0.record(at - sent);
            }
            match (answered, turn.finished) {
                (Ok(_), Some(Ok(()))) => shared.completions.tell(&request.instance_id, Ending::Completed(at)),
                (Ok(_), Some(Err(reason))) => shared.completions.tell(&request.instance_id, Ending::Failed(reason)),
                (Ok(_), None) => {}
                (Err(status), _) => {
                    let error = format!("CompleteOrchestratorTask for {}: {status}", request.instance_id);
                    counters.error(&counters.answer_errors, error.clone());
                    shared.completions.tell(&request.instance_id, Ending::Failed(error));
                }
            }
        }
        Some(pb::work_item::Request::ActivityRequest(request)) => {
            counters.activities.fetch_add(1, Ordering::Relaxed);
            let instance = request.workflow_instance.map(|instance| instance.instance_id).unwrap_or_default();
            let known = request.name == replay::ACTIVITY;
            let response = pb::ActivityResponse {
                instance_id: instance.clone(),
                task_id: request.task_id,
                // The no-op activity returns its input.
                result: if known { request.input } else { None },
                failure_details: (!known).then(|| pb::TaskFailureDetails {
                    error_type: "ActivityNotRegistered".to_owned(),
                    error_message: format!("no activity named '{}' is registered", request.name),
                    ..Default::default()
                }),
                completion_token: item.completion_token,
            };
            let sent = Instant::now();
            let answered = client.complete_activity_task(response).await;
            if let Ok(mut detail) = counters.detail.lock() {
                detail.1.record(sent.elapsed());
            }
            if let Err(status) = answered {
                counters.error(&counters.answer_errors, format!("CompleteActivityTask for {instance}: {status}"));
            }
        }
        None => {}
    }
}
