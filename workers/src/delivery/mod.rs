//! Push delivery: every worker runs one delivery loop per (project, App ID, pub/sub, topic) subscription of the
//! projects in its pool, pulling from the subscription's consumer group and POSTing to the app, and one reader
//! per (project, App ID, input binding) ([`crate::bindings::input`]).
//!
//! Delivery state (what is pending, held, retried) lives in the broker, so several workers may run the same
//! loop: the group hands each message to one of them, and a worker that dies leaves its held messages to be
//! handed out again. Which loops to run is derived project by project ([`targets`]): for every project with an
//! app endpoint at start, then only for the projects that change.

mod app;
mod routes;
mod subscription;
mod targets;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use outrigger_store::{ProjectId, Store};
use outrigger_telemetry::metrics::TenantLabels;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) use app::deliver_binding_event;
pub use app::{takes_binding_events, Outcome};
pub use outrigger_outbound::health::HealthProbe;
use outrigger_outbound::{AppChannel, AppClient, Egress};

use outrigger_outbound::health::{self, AppHealth};
pub use routes::{Origin, SubscriptionSpec};
use subscription::deliver_loop;
pub use targets::DeliveryWaker;

use crate::Worker;

/// How long a loop whose subscription cannot be served yet waits before it looks again.
const RESCAN: Duration = Duration::from_secs(2);
/// How often the control plane is asked which projects changed, in case a change event was lost.
const SAFETY_NET: Duration = Duration::from_secs(5);
/// How far back each safety-net look reaches before the previous one began: a transaction that stamped a
/// project just before that look may have committed after it.
const SAFETY_NET_OVERLAP_MS: i64 = 60_000;
/// How often an app's `/dapr/subscribe` is asked again.
const PROGRAMMATIC_REFRESH: Duration = Duration::from_secs(30);
/// How soon an app that did not answer `/dapr/subscribe` is asked again: doubling from this, as daprd reads the
/// route once the app channel is ready, until the delay would pass [`PROGRAMMATIC_REFRESH`] (about 30 s of
/// asking); after that a change to the project, or its periodic refresh, asks again.
const FIRST_ASK_AGAIN: Duration = Duration::from_secs(1);
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
    /// The project's name, for metric labels.
    project_name: String,
    channel: AppChannel,
    /// The app's health-check path, when it has one.
    health_path: Option<String>,
    spec: Arc<SubscriptionSpec>,
    source: String,
}

impl Target {
    /// The labels of the subscribing App ID's metric series.
    fn metric_labels(&self) -> TenantLabels<'_> {
        let (project, project_id, app_id) = (&self.project_name, &self.key.project_id, &self.key.app_id);
        TenantLabels::new(project, project_id, app_id)
    }
}

/// One input binding read for one App ID, with what it was derived from (to notice changes).
struct InputLoop {
    target: crate::bindings::input::InputTarget,
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
    client: AppClient,
    egress: Egress,
    wake: Arc<DeliveryWaker>,
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
    pub fn new(control_plane: Store, worker: Arc<Worker>, pool: Option<String>, egress: Egress) -> Deliverer {
        Deliverer {
            control_plane,
            worker,
            pool,
            client: egress.app_client(),
            egress,
            wake: Arc::new(DeliveryWaker::default()),
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
            wake.project_changed(&project_id);
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

    /// Wakes the deliverer to re-derive a project's loops (it changed).
    pub fn waker(&self) -> Arc<DeliveryWaker> {
        Arc::clone(&self.wake)
    }

    /// Follows the deliverer's scans, to learn when a change is in force.
    pub fn scans(&self) -> watch::Receiver<Scans> {
        self.scans.subscribe()
    }

    /// Runs until `shutdown`; loops stop with it (messages they held go to the next fetcher).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut loops = Loops::default();
        // None until the first look, which takes every project with an app endpoint.
        let mut safety_net_from: Option<i64> = None;
        let mut next_safety_net = tokio::time::Instant::now();
        let mut next_programmatic_refresh = tokio::time::Instant::now() + PROGRAMMATIC_REFRESH;
        loop {
            let mut scan = 0;
            self.scans.send_modify(|scans| {
                scans.started += 1;
                scan = scans.started;
            });
            let mut changed = self.wake.take();
            let now = tokio::time::Instant::now();
            if now >= next_safety_net {
                let looked_at = chrono::Utc::now().timestamp_millis();
                match self.changed_projects(safety_net_from).await {
                    Ok(projects) => {
                        changed.extend(projects.iter().map(|project| project.as_str().to_owned()));
                        safety_net_from = Some(looked_at - SAFETY_NET_OVERLAP_MS);
                    }
                    Err(err) => tracing::warn!(error = %err, "cannot ask which projects changed; retrying"),
                }
                next_safety_net = now + SAFETY_NET;
            }
            if now >= next_programmatic_refresh {
                // Apps may change what `/dapr/subscribe` answers without any change to the project.
                changed.extend(loops.with_programmatic.iter().cloned());
                next_programmatic_refresh = now + PROGRAMMATIC_REFRESH;
            }
            changed
                .extend(loops.unanswered.iter().filter(|(_, (at, _))| *at <= now).map(|(project, _)| project.clone()));
            let mut complete = true;
            for project_id in changed {
                match self.project_targets(&ProjectId::received(project_id.clone())).await {
                    Ok(derived) => {
                        loops.ask_again(&project_id, derived.unanswered, now);
                        self.reconcile(&mut loops, &project_id, derived.targets);
                        self.reconcile_inputs(&mut loops, &project_id, derived.inputs);
                    }
                    Err(err) => {
                        tracing::warn!(%project_id, error = %err, "cannot read the project's subscriptions; its deliveries continue as they were");
                        // Looked at again on the next round.
                        self.wake.project_changed(&project_id);
                        complete = false;
                    }
                }
            }
            if complete {
                self.scans.send_modify(|scans| scans.completed = scan);
            }
            let next_ask_again = loops.unanswered.values().map(|(at, _)| *at).min();
            let next_look =
                next_safety_net.min(next_programmatic_refresh).min(next_ask_again.unwrap_or(next_safety_net));
            tokio::select! {
                () = tokio::time::sleep_until(next_look) => {}
                () = self.wake.notified() => {}
                () = shutdown.cancelled() => break,
            }
        }
        for loop_ in loops.running.into_values().chain(loops.inputs.into_values()) {
            loop_.stop.cancel();
        }
        for probe in loops.probes.into_values() {
            probe.task.abort();
        }
    }

    /// Makes the running loops and probes of one project match its `targets`.
    fn reconcile(&self, loops: &mut Loops, project_id: &str, targets: Vec<Target>) {
        let wanted: HashMap<TargetKey, Target> =
            targets.into_iter().map(|target| (target.key.clone(), target)).collect();
        if wanted.values().any(|target| target.spec.origin == Origin::Programmatic) {
            loops.with_programmatic.insert(project_id.to_owned());
        } else {
            loops.with_programmatic.remove(project_id);
        }
        loops.probes.retain(|(project, app_id), probe| {
            if project != project_id {
                return true;
            }
            let keep = wanted.values().any(|target| {
                target.key.app_id == *app_id
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
        loops.running.retain(|key, loop_| {
            let keep =
                key.project_id != project_id || wanted.get(key).is_some_and(|target| target.source == loop_.source);
            if !keep {
                loop_.stop.cancel();
            }
            keep
        });
        loops
            .limits
            .retain(|(project, app_id), _| project != project_id || wanted.keys().any(|key| key.app_id == *app_id));
        for (key, target) in wanted {
            if loops.running.contains_key(&key) {
                continue;
            }
            let limit = loops
                .limits
                .entry((key.project_id.clone(), key.app_id.clone()))
                .or_insert_with(|| Arc::new(Semaphore::new(APP_CONCURRENCY)))
                .clone();
            let source = target.source.clone();
            let health = self.health_of(&mut loops.probes, &target);
            let stop = CancellationToken::new();
            let worker = Arc::clone(&self.worker);
            tokio::spawn(deliver_loop(worker, self.client.clone(), target, limit, health, stop.clone()));
            loops.running.insert(key, Running { source, stop });
        }
    }
}

impl Deliverer {
    /// Makes the running input binding readers of one project match `wanted`.
    fn reconcile_inputs(&self, loops: &mut Loops, project_id: &str, wanted: Vec<InputLoop>) {
        let key = |target: &crate::bindings::input::InputTarget| {
            (target.reader.project_id.clone(), target.reader.app_id.clone(), target.reader.component.clone())
        };
        let wanted: HashMap<_, _> = wanted.into_iter().map(|input| (key(&input.target), input)).collect();
        loops.inputs.retain(|key, running| {
            let keep = key.0 != project_id || wanted.get(key).is_some_and(|input| input.source == running.source);
            if !keep {
                running.stop.cancel();
            }
            keep
        });
        for (key, input) in wanted {
            if loops.inputs.contains_key(&key) {
                continue;
            }
            let stop = CancellationToken::new();
            let (worker, client) = (Arc::clone(&self.worker), self.client.clone());
            tokio::spawn(crate::bindings::input::run(worker, client, input.target, stop.clone()));
            loops.inputs.insert(key, Running { source: input.source, stop });
        }
    }
}

/// What a deliverer runs, for the projects that have subscriptions and input bindings.
#[derive(Default)]
struct Loops {
    running: HashMap<TargetKey, Running>,
    /// Input binding readers by (project, App ID, component).
    inputs: HashMap<(String, String, String), Running>,
    /// Deliveries in flight per App ID.
    limits: HashMap<(String, String), Arc<Semaphore>>,
    probes: HashMap<(String, String), Probe>,
    /// Projects with subscriptions from `/dapr/subscribe`, asked again every [`PROGRAMMATIC_REFRESH`].
    with_programmatic: std::collections::HashSet<String>,
    /// Projects with an app that did not answer `/dapr/subscribe`: when to ask again, and the delay that led there.
    unanswered: HashMap<String, (tokio::time::Instant, Duration)>,
}

impl Loops {
    /// Schedules the next question to a project's apps that did not answer `/dapr/subscribe`, backing off.
    fn ask_again(&mut self, project_id: &str, unanswered: bool, now: tokio::time::Instant) {
        if !unanswered {
            self.unanswered.remove(project_id);
            return;
        }
        let delay = self.unanswered.get(project_id).map_or(FIRST_ASK_AGAIN, |(_, delay)| delay.saturating_mul(2));
        if delay > PROGRAMMATIC_REFRESH {
            self.unanswered.remove(project_id);
        } else {
            self.unanswered.insert(project_id.to_owned(), (now + delay, delay));
        }
    }
}
