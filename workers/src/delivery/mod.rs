//! Push delivery: every worker runs one delivery loop per (project, App ID, pub/sub, topic) subscription of the
//! projects in its pool, pulling from the subscription's consumer group and POSTing to the app.
//!
//! Delivery state (what is pending, held, retried) lives in the broker, so several workers may run the same
//! loop: the group hands each message to one of them, and a worker that dies leaves its held messages to be
//! handed out again. Which loops to run is re-derived from the control plane every few seconds and on every
//! change event.

mod app;
mod routes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outrigger_resources::Kind;
use outrigger_store::Store;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use app::Outcome;
pub use outrigger_outbound::health::HealthProbe;
use outrigger_outbound::resiliency::{self, Policy, Retry, DEFAULT_DELIVERY_RETRY};
use outrigger_outbound::{AppChannel, Egress};

use outrigger_outbound::health::{self, AppHealth};
pub use routes::{Origin, SubscriptionSpec};

use crate::pubsub::cloudevent::{is_expired, parse_event, raw_payload_event};
use crate::pubsub::{Access, Broker, Delivery};
use crate::{ProgrammaticSubscriptions, Worker};

/// How often the set of subscriptions is re-derived without a change event.
const RESCAN: Duration = Duration::from_secs(2);
/// How often an app's `/dapr/subscribe` is asked again.
const PROGRAMMATIC_REFRESH: Duration = Duration::from_secs(30);
/// How long a fetched message is held before another fetcher may have it.
const HOLD: Duration = Duration::from_secs(90);
/// How long one fetch waits for messages.
const FETCH_WAIT: Duration = Duration::from_secs(1);
/// Messages fetched at once.
const BATCH: usize = 16;
/// Deliveries in flight per App ID at most.
const APP_CONCURRENCY: usize = 64;

/// Identifies a delivery loop.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TargetKey {
    project_id: String,
    app_id: String,
    pubsub: String,
    topic: String,
}

/// One subscription of one app, with what it was derived from (to notice changes).
struct Target {
    key: TargetKey,
    channel: AppChannel,
    /// The app's health-check path, when it has one.
    health_path: Option<String>,
    spec: Arc<SubscriptionSpec>,
    source: String,
}

/// A running health probe of one app.
struct Probe {
    source: String,
    health: Arc<AppHealth>,
    task: JoinHandle<()>,
}

/// Runs the delivery loops of a worker.
pub struct Deliverer {
    control_plane: Store,
    worker: Arc<Worker>,
    pool: Option<String>,
    /// Follows redirects, each hop checked against `egress`.
    client: reqwest::Client,
    egress: Egress,
    wake: Arc<Notify>,
    health_probe: HealthProbe,
    scans: watch::Sender<Scans>,
}

/// Progress of the deliverer's scans of subscriptions: a change is in force (loops of deleted subscriptions
/// stopped, new ones running) once a scan that began after it completed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scans {
    /// How many scans began.
    pub started: u64,
    /// The number (counting from 1 as they began) of the last scan completed.
    pub completed: u64,
}

struct Running {
    source: String,
    /// Stops the loop after its current pull: aborting it mid-batch would leave what it holds stuck until
    /// the hold runs out.
    stop: CancellationToken,
}

impl Deliverer {
    /// Deliveries for the projects of `pool` (every project when `None`: the embedded default).
    pub fn new(
        control_plane: Store,
        worker: Arc<Worker>,
        pool: Option<String>,
        egress: Egress,
    ) -> Deliverer {
        Deliverer {
            control_plane,
            worker,
            pool,
            client: egress.client(true),
            egress,
            wake: Arc::new(Notify::new()),
            health_probe: HealthProbe::default(),
            scans: watch::Sender::new(Scans::default()),
        }
    }

    /// Probes app health with `settings` instead of daprd's defaults.
    pub fn with_health_probe(mut self, settings: HealthProbe) -> Deliverer {
        self.health_probe = settings;
        self
    }

    /// The health of a target's app: probed when it has a health-check path (one probe per app).
    fn health_of(&self, probes: &mut HashMap<(String, String), Probe>, target: &Target) -> Option<Arc<AppHealth>> {
        let path = target.health_path.clone()?;
        let app = (target.key.project_id.clone(), target.key.app_id.clone());
        let source = format!("{}|{path}", target.channel.endpoint);
        if let Some(probe) = probes.get(&app).filter(|probe| probe.source == source) {
            return Some(Arc::clone(&probe.health));
        }
        let health = Arc::new(AppHealth::default());
        let (worker, wake, project_id, app_id) =
            (Arc::clone(&self.worker), Arc::clone(&self.wake), app.0.clone(), app.1.clone());
        // A recovered app may serve other subscriptions than before: ask again at once.
        let recovered = move || {
            worker.runtime().forget_programmatic(&project_id, &app_id);
            wake.notify_one();
        };
        let task = tokio::spawn(health::probe(
            self.client.clone(),
            target.channel.clone(),
            path,
            self.health_probe,
            Arc::clone(&health),
            recovered,
        ));
        if let Some(replaced) = probes.insert(app, Probe { source, health: Arc::clone(&health), task }) {
            replaced.task.abort();
        }
        Some(health)
    }

    /// Wakes the deliverer to re-derive its loops (a project changed).
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Follows the deliverer's scans, to learn when a change is in force.
    pub fn scans(&self) -> watch::Receiver<Scans> {
        self.scans.subscribe()
    }

    /// Runs until `shutdown`; loops stop with it (messages they held go to the next fetcher).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut running: HashMap<TargetKey, Running> = HashMap::new();
        let mut limits: HashMap<(String, String), Arc<Semaphore>> = HashMap::new();
        let mut probes: HashMap<(String, String), Probe> = HashMap::new();
        loop {
            let mut scan = 0;
            self.scans.send_modify(|scans| {
                scans.started += 1;
                scan = scans.started;
            });
            match self.targets().await {
                Ok(targets) => {
                    let wanted: HashMap<TargetKey, Target> = targets.into_iter().map(|t| (t.key.clone(), t)).collect();
                    probes.retain(|(project_id, app_id), probe| {
                        let keep = wanted.values().any(|target| {
                            target.key.project_id == *project_id
                                && target.key.app_id == *app_id
                                && target
                                    .health_path
                                    .as_ref()
                                    .is_some_and(|path| format!("{}|{path}", target.channel.endpoint) == probe.source)
                        });
                        if !keep {
                            probe.task.abort();
                        }
                        keep
                    });
                    running.retain(|key, loop_| {
                        let keep = wanted.get(key).is_some_and(|target| target.source == loop_.source);
                        if !keep {
                            loop_.stop.cancel();
                        }
                        keep
                    });
                    for (key, target) in wanted {
                        if running.contains_key(&key) {
                            continue;
                        }
                        let limit = limits
                            .entry((key.project_id.clone(), key.app_id.clone()))
                            .or_insert_with(|| Arc::new(Semaphore::new(APP_CONCURRENCY)))
                            .clone();
                        let source = target.source.clone();
                        let health = self.health_of(&mut probes, &target);
                        let stop = CancellationToken::new();
                        let worker = Arc::clone(&self.worker);
                        tokio::spawn(deliver_loop(worker, self.client.clone(), target, limit, health, stop.clone()));
                        running.insert(key, Running { source, stop });
                    }
                    self.scans.send_modify(|scans| scans.completed = scan);
                }
                Err(err) => tracing::warn!(error = %err, "cannot read subscriptions; deliveries continue as they were"),
            }
            tokio::select! {
                () = tokio::time::sleep(RESCAN) => {}
                () = self.wake.notified() => {}
                () = shutdown.cancelled() => break,
            }
        }
        for loop_ in running.into_values() {
            loop_.stop.cancel();
        }
        for probe in probes.into_values() {
            probe.task.abort();
        }
    }

    /// Every subscription target of the projects this worker serves.
    async fn targets(&self) -> Result<Vec<Target>, outrigger_store::Error> {
        let mut tx = self.control_plane.begin().await?;
        let mut found = Vec::new();
        let mut seen: HashMap<TargetKey, ()> = HashMap::new();
        for project in tx.list_projects().await? {
            if self.pool.as_ref().is_some_and(|pool| *pool != project.pool) {
                continue;
            }
            let apps = tx.list_app_ids(&project.id).await?;
            let declarations = tx.list_resources(&project.id, Kind::Subscription).await?;
            for app in apps {
                let Some(endpoint) = app.app_endpoint.clone() else { continue };
                if app.app_protocol == "grpc" {
                    // Its gRPC app channel (AppCallback) is not served: HTTP deliveries would fail on every try.
                    tracing::debug!(app_id = %app.name, "not delivering to an app registered with appProtocol grpc");
                    continue;
                }
                let refused = reqwest::Url::parse(&endpoint)
                    .map_err(|err| err.to_string())
                    .and_then(|url| self.egress.check_url(&url).map_err(|refused| refused.to_string()));
                if let Err(reason) = refused {
                    tracing::warn!(app_id = %app.name, %reason, "not delivering to the app's endpoint");
                    continue;
                }
                let channel = AppChannel { endpoint: endpoint.clone(), app_token: app.app_token.clone() };
                let declarative = declarations
                    .iter()
                    .filter(|stored| stored.document.applies_to(&app.name))
                    .map(|stored| (Origin::Declarative, stored.document.spec.clone()));
                let runtime = self.worker.runtime();
                let asked = match runtime.programmatic(project.id.as_str(), &app.name) {
                    Some(answer) if answer.fetched.elapsed() <= PROGRAMMATIC_REFRESH && answer.endpoint == endpoint => {
                        answer.entries
                    }
                    previous => {
                        // A failed read keeps the last answer: a busy app must not lose its subscriptions.
                        let entries = match app::subscriptions(&channel, &self.client).await {
                            Ok(entries) => entries,
                            Err(err) => {
                                tracing::debug!(project = %project.name, app_id = %app.name, error = %err, "/dapr/subscribe not read; keeping the last answer");
                                previous
                                    .filter(|answer| answer.endpoint == endpoint)
                                    .map(|answer| answer.entries)
                                    .unwrap_or_default()
                            }
                        };
                        let answer = ProgrammaticSubscriptions {
                            fetched: Instant::now(),
                            endpoint: endpoint.clone(),
                            entries: entries.clone(),
                        };
                        runtime.set_programmatic(project.id.as_str(), &app.name, answer);
                        entries
                    }
                };
                let declared = declarative.chain(asked.into_iter().map(|entry| (Origin::Programmatic, entry)));
                for (origin, declaration) in declared {
                    let spec = match SubscriptionSpec::from_json(&declaration, origin) {
                        Ok(spec) => spec,
                        Err(err) => {
                            tracing::warn!(project = %project.name, app_id = %app.name, error = %err, "subscription ignored");
                            continue;
                        }
                    };
                    let key = TargetKey {
                        project_id: project.id.as_str().to_owned(),
                        app_id: app.name.clone(),
                        pubsub: spec.pubsub.clone(),
                        topic: spec.topic.clone(),
                    };
                    // One loop per app and topic: the first declaration wins (documents before `/dapr/subscribe`).
                    if seen.insert(key.clone(), ()).is_some() {
                        continue;
                    }
                    let source =
                        format!("{endpoint}|{:?}|{:?}|{declaration}", app.app_token, app.app_health_check_path);
                    let health_path = app.app_health_check_path.clone();
                    found.push(Target { key, channel: channel.clone(), health_path, spec: Arc::new(spec), source });
                }
            }
        }
        Ok(found)
    }
}

/// Pulls and delivers the messages of one subscription until aborted.
async fn deliver_loop(
    worker: Arc<Worker>,
    client: reqwest::Client,
    target: Target,
    limit: Arc<Semaphore>,
    health: Option<Arc<AppHealth>>,
    stop: CancellationToken,
) {
    let key = &target.key;
    let mut ensured = None;
    loop {
        if let Some(health) = &health {
            tokio::select! {
                () = health.wait_healthy() => {}
                () = stop.cancelled() => return,
            }
        }
        if stop.is_cancelled() {
            return;
        }
        let (broker, namespace, policy) = match subscribed_broker(&worker, key).await {
            Ok(found) => found,
            Err(reason) => {
                tracing::debug!(project_id = %key.project_id, app_id = %key.app_id, topic = %key.topic, %reason, "subscription idle");
                tokio::time::sleep(RESCAN).await;
                continue;
            }
        };
        let (topic, group) = (format!("{namespace}{}", key.topic), format!("{namespace}{}", key.app_id));
        if ensured.as_ref() != Some(&(topic.clone(), group.clone())) {
            if let Err(err) = broker.ensure_group(&topic, &group).await {
                tracing::warn!(error = %err, topic = %key.topic, "cannot create the consumer group; retrying");
                tokio::time::sleep(RESCAN).await;
                continue;
            }
            ensured = Some((topic.clone(), group.clone()));
        }
        let (batch, wait) = match &target.spec.bulk {
            Some(bulk) => (bulk.max_messages, bulk.max_await),
            None => (BATCH, FETCH_WAIT),
        };
        let deliveries = match broker.fetch(&topic, &group, batch, wait, HOLD).await {
            Ok(deliveries) => deliveries,
            Err(err) => {
                tracing::warn!(error = %err, topic = %key.topic, "fetch failed; retrying");
                tokio::time::sleep(FETCH_WAIT).await;
                continue;
            }
        };
        // The loop was stopped, or the app turned unhealthy, while the fetch waited: hand the batch back.
        if stop.is_cancelled() || health.as_ref().is_some_and(|health| !health.is_healthy()) {
            for delivery in deliveries {
                if let Err(err) = broker.retry(&topic, &group, &delivery.id, Duration::ZERO).await {
                    tracing::debug!(error = %err, "could not hand a delivery back; it returns after its hold");
                }
            }
            continue;
        }
        if target.spec.bulk.is_some() {
            let _permit = Arc::clone(&limit).acquire_owned().await;
            handle_bulk(broker.as_ref(), &client, &target, (&topic, &group, &namespace), &policy, deliveries).await;
            continue;
        }
        let handle = |delivery: Delivery| {
            let (broker, client, target, limit) = (Arc::clone(&broker), client.clone(), &target, Arc::clone(&limit));
            let (topic, group, namespace, policy) = (topic.clone(), group.clone(), namespace.clone(), policy.clone());
            async move {
                let _permit = limit.acquire_owned().await;
                handle_delivery(broker.as_ref(), &client, target, (&topic, &group, &namespace), &policy, delivery)
                    .await;
            }
        };
        if broker.features().ordered {
            for delivery in deliveries {
                handle(delivery).await;
            }
        } else {
            futures_util::future::join_all(deliveries.into_iter().map(handle)).await;
        }
    }
}

/// The broker of the subscription's component, the project's namespace in it and the component's inbound
/// retry policy, if the app may subscribe to the topic.
async fn subscribed_broker(
    worker: &Worker,
    key: &TargetKey,
) -> Result<(Arc<dyn Broker>, String, DeliveryPolicy), String> {
    let project = worker.runtime().project(&key.project_id).await?.ok_or("the project is gone")?;
    let component = project
        .pubsub
        .get(&key.pubsub)
        .filter(|component| component.allows(&key.app_id))
        .ok_or_else(|| format!("pubsub {} is not found", key.pubsub))?;
    if !component.config.topics.permits(Access::Subscribe, &key.app_id, &key.topic) {
        return Err(format!("topic {} is not allowed for app id {}", key.topic, key.app_id));
    }
    let policy = DeliveryPolicy::of(&project.resiliencies, &key.app_id, &key.pubsub);
    Ok((component.backend.clone()?, component.config.namespace.clone(), policy))
}

/// How a subscription's deliveries are timed out and retried: the component's inbound Resiliency policy (as
/// daprd applies it when it delivers from that component to the app), or Outrigger's default retries.
#[derive(Clone, Debug)]
struct DeliveryPolicy {
    retry: Retry,
    timeout: Option<Duration>,
}

impl DeliveryPolicy {
    fn of(resiliencies: &[outrigger_resources::Document], app_id: &str, pubsub: &str) -> DeliveryPolicy {
        let policy = Policy::resolve(resiliencies, app_id, resiliency::Target::ComponentInbound(pubsub));
        DeliveryPolicy { retry: policy.retry.unwrap_or(DEFAULT_DELIVERY_RETRY), timeout: policy.timeout }
    }

    fn exhausted(&self, attempt: u32) -> bool {
        self.retry.exhausted(attempt)
    }

    fn delay(&self, attempt: u32) -> Duration {
        self.retry.delay(attempt)
    }
}

/// A CloudEvent as JSON fields.
type Event = serde_json::Map<String, serde_json::Value>;

/// Where one delivery stands before it reaches the app.
enum Prepared {
    /// Goes to `path` as `event`.
    Deliver { path: String, event: Event },
    /// Needs no delivery: expired (daprd drops those without dead-lettering) or no route wants it.
    Skip,
}

/// Reads a delivery as the subscription wants it and picks its route.
fn prepare(target: &Target, delivery: &Delivery) -> Prepared {
    let (spec, key) = (&target.spec, &target.key);
    let event = if spec.raw_payload {
        raw_payload_event(&delivery.payload, &key.pubsub, &key.topic)
    } else {
        parse_event(&delivery.payload).unwrap_or_else(|_| raw_payload_event(&delivery.payload, &key.pubsub, &key.topic))
    };
    if is_expired(&event, chrono::Utc::now()) {
        return Prepared::Skip;
    }
    match spec.route(&event) {
        Some(path) => Prepared::Deliver { path: path.to_owned(), event },
        None => Prepared::Skip,
    }
}

/// Delivers one message and settles it with the broker.
async fn handle_delivery(
    broker: &dyn Broker,
    client: &reqwest::Client,
    target: &Target,
    place: (&str, &str, &str),
    policy: &DeliveryPolicy,
    delivery: Delivery,
) {
    let outcome = match prepare(target, &delivery) {
        Prepared::Deliver { path, event } => app::deliver(&target.channel, client, &path, &event, policy.timeout).await,
        Prepared::Skip => Outcome::Success,
    };
    settle(broker, target, place, policy, &delivery, outcome).await;
}

/// Delivers a batch in daprd's bulk envelope, one request per route, and settles each message.
async fn handle_bulk(
    broker: &dyn Broker,
    client: &reqwest::Client,
    target: &Target,
    place: (&str, &str, &str),
    policy: &DeliveryPolicy,
    batch: Vec<Delivery>,
) {
    let mut by_path: std::collections::BTreeMap<String, Vec<(Delivery, Event)>> = std::collections::BTreeMap::new();
    for delivery in batch {
        match prepare(target, &delivery) {
            Prepared::Deliver { path, event } => by_path.entry(path).or_default().push((delivery, event)),
            Prepared::Skip => settle(broker, target, place, policy, &delivery, Outcome::Success).await,
        }
    }
    for (path, entries) in by_path {
        let events: Vec<_> = entries.iter().map(|(_, event)| event).collect();
        let place_of_events = (target.key.pubsub.as_str(), target.key.topic.as_str());
        let outcomes =
            app::deliver_bulk(&target.channel, client, &path, place_of_events, &events, policy.timeout).await;
        for ((delivery, _), outcome) in entries.iter().zip(outcomes) {
            settle(broker, target, place, policy, delivery, outcome).await;
        }
    }
}

/// Acks, retries or dead-letters a delivery after the app's verdict.
async fn settle(
    broker: &dyn Broker,
    target: &Target,
    (topic, group, namespace): (&str, &str, &str),
    policy: &DeliveryPolicy,
    delivery: &Delivery,
    outcome: Outcome,
) {
    let (spec, key) = (&target.spec, &target.key);
    let settled = match outcome {
        Outcome::Success => broker.ack(topic, group, &delivery.id).await,
        Outcome::Drop(reason) => {
            tracing::info!(app_id = %key.app_id, topic = %key.topic, %reason, "event dropped");
            dead_letter(broker, target, namespace, delivery).await;
            broker.ack(topic, group, &delivery.id).await
        }
        // Retries used up: to the dead-letter topic when there is one; without one, never dropped.
        Outcome::Retry(reason) if spec.dead_letter_topic.is_some() && policy.exhausted(delivery.attempt) => {
            tracing::info!(app_id = %key.app_id, topic = %key.topic, %reason, attempts = delivery.attempt, "event dead-lettered");
            dead_letter(broker, target, namespace, delivery).await;
            broker.ack(topic, group, &delivery.id).await
        }
        Outcome::Retry(reason) => {
            tracing::debug!(app_id = %key.app_id, topic = %key.topic, %reason, attempt = delivery.attempt, "event will be retried");
            broker.retry(topic, group, &delivery.id, policy.delay(delivery.attempt)).await
        }
    };
    if let Err(err) = settled {
        // The hold expires and the message is handed out again: at least once, never lost.
        tracing::warn!(error = %err, topic = %key.topic, "could not settle a delivery; it will be redelivered");
    }
}

/// Moves an undeliverable message to the subscription's dead-letter topic, if it has one.
async fn dead_letter(broker: &dyn Broker, target: &Target, namespace: &str, delivery: &Delivery) {
    let Some(dead_letter_topic) = &target.spec.dead_letter_topic else { return };
    let topic = format!("{namespace}{dead_letter_topic}");
    if let Err(err) = broker.publish(&topic, &delivery.payload).await {
        tracing::error!(error = %err, topic = %dead_letter_topic, "could not dead-letter an event");
    }
}
