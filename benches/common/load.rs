//! The load generator: a fixed number of keep-alive connections, driven open-loop at a fixed rate
//! (latency counted from each request's scheduled time) or closed-loop as fast as they answer.
//!
//! What a request is belongs to the bench: it implements [`Connection`] for its own connection type.
//! Every request gets a sequence number unique in the process ([`next_seq`]) and its scheduled time,
//! so a bench can put both into what it sends and recognise it when it comes back.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Longest a single request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

static NEXT_SEQ: AtomicU64 = AtomicU64::new(1);
static BASE: OnceLock<Instant> = OnceLock::new();

/// A sequence number no other request of this process has had.
pub fn next_seq() -> u64 {
    NEXT_SEQ.fetch_add(1, Ordering::Relaxed)
}

/// The process's time base: the first call's instant.
pub fn base() -> Instant {
    *BASE.get_or_init(Instant::now)
}

/// `at` in nanoseconds since [`base`] (0 before it).
pub fn since_base(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(base()).as_nanos()).unwrap_or(u64::MAX)
}

/// One request to make.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    pub seq: u64,
    /// When it was due: the schedule's time in the open loop, the send time in the closed loop.
    pub scheduled: Instant,
}

/// One keep-alive connection of a bench. Each is used by one task at a time and only for one request
/// at a time, so it never opens a second socket.
pub trait Connection: Send + 'static {
    /// What every request asks for.
    type Target: Clone + Send + Sync + 'static;

    /// One request; `Err` describes a failure (transport error, refusal, wrong answer).
    fn call(&mut self, target: &Self::Target, request: Request) -> impl Future<Output = Result<(), String>> + Send;
}

/// Latencies in nanoseconds, kept whole; percentiles by nearest rank.
#[derive(Default, Clone, Debug)]
pub struct Latencies {
    samples: Vec<u64>,
    sorted: bool,
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        self.record_ns(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn record_ns(&mut self, nanos: u64) {
        self.samples.push(nanos);
        self.sorted = false;
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    fn merge(&mut self, other: Latencies) {
        self.samples.extend(other.samples);
        self.sorted = false;
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.samples.sort_unstable();
            self.sorted = true;
        }
    }

    /// The `percentile` (0-100) in milliseconds, `None` without samples.
    pub fn percentile_ms(&mut self, percentile: f64) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        self.sort();
        let rank = ((percentile / 100.0) * self.samples.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.samples.len()) - 1;
        Some(self.samples[index] as f64 / 1e6)
    }

    pub fn max_ms(&mut self) -> Option<f64> {
        self.percentile_ms(100.0)
    }
}

/// What one phase of load gave.
#[derive(Debug, Default)]
pub struct PhaseOutcome {
    /// Latencies of the successful requests.
    pub latencies: Latencies,
    /// Requests sent (successful or not).
    pub sent: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Sequence numbers of the successful and of the failed requests.
    pub succeeded: Vec<u64>,
    pub failed: Vec<u64>,
    /// From the first scheduled send to the last answer.
    pub elapsed: Duration,
    /// How late the dispatcher handed requests out, worst case (open loop only).
    pub dispatch_lag_max: Duration,
    /// Sockets this process had open to the target port at the end of the phase.
    pub sockets_open: Option<usize>,
}

impl PhaseOutcome {
    pub fn completed(&self) -> u64 {
        self.sent
    }

    /// Answers per second, successful or not.
    pub fn achieved_rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[derive(Default)]
struct TaskOutcome {
    latencies: Latencies,
    sent: u64,
    errors: u64,
    first_error: Option<String>,
    succeeded: Vec<u64>,
    failed: Vec<u64>,
}

impl TaskOutcome {
    fn count(&mut self, outcome: Result<(), String>, request: Request) {
        let latency = request.scheduled.elapsed();
        self.sent += 1;
        match outcome {
            Ok(()) => {
                self.latencies.record(latency);
                self.succeeded.push(request.seq);
            }
            Err(err) => {
                self.errors += 1;
                self.failed.push(request.seq);
                self.first_error.get_or_insert(err);
            }
        }
    }
}

fn gather<C>(connections: &mut Vec<C>, joined: Vec<(C, TaskOutcome)>, outcome: &mut PhaseOutcome) {
    for (connection, task) in joined {
        connections.push(connection);
        outcome.latencies.merge(task.latencies);
        outcome.sent += task.sent;
        outcome.errors += task.errors;
        outcome.succeeded.extend(task.succeeded);
        outcome.failed.extend(task.failed);
        if outcome.first_error.is_none() {
            outcome.first_error = task.first_error;
        }
    }
}

async fn join_all<C: Send + 'static>(mut tasks: JoinSet<(C, TaskOutcome)>) -> anyhow::Result<Vec<(C, TaskOutcome)>> {
    let mut joined = Vec::new();
    while let Some(result) = tasks.join_next().await {
        joined.push(result.map_err(|err| anyhow::anyhow!("a load task failed: {err}"))?);
    }
    Ok(joined)
}

/// Sends `rate * duration` requests, request i scheduled at `start + i / rate` on connection
/// `i % connections.len()`. A request waits for its connection's previous one, and its latency runs
/// from its scheduled time, so a slow answer delays (and is charged to) the requests behind it
/// instead of silently lowering the rate. A dedicated thread does the scheduling with the OS's
/// fine-grained sleep, so tokio's 1 ms timer granularity does not add to the figures.
pub async fn open_loop<C: Connection>(
    connections: &mut Vec<C>,
    target: &C::Target,
    rate: f64,
    duration: Duration,
    port: Option<u16>,
) -> anyhow::Result<PhaseOutcome> {
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let mut senders = Vec::new();
    let mut tasks = JoinSet::new();
    for mut connection in connections.drain(..) {
        let (sender, mut scheduled) = mpsc::unbounded_channel::<Request>();
        senders.push(sender);
        let target = target.clone();
        tasks.spawn(async move {
            let mut outcome = TaskOutcome::default();
            while let Some(request) = scheduled.recv().await {
                let result = connection.call(&target, request).await;
                outcome.count(result, request);
            }
            (connection, outcome)
        });
    }
    let start = Instant::now() + Duration::from_millis(20);
    let dispatcher = std::thread::spawn(move || {
        let mut lag_max = Duration::ZERO;
        for index in 0..total {
            let at = start + Duration::from_secs_f64(index as f64 / rate);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            lag_max = lag_max.max(at.elapsed());
            // A closed channel means its task ended early; its requests are simply not sent.
            let request = Request { seq: next_seq(), scheduled: at };
            let _ = senders[(index % senders.len() as u64) as usize].send(request);
        }
        lag_max
    });
    let joined = join_all(tasks).await?;
    let elapsed = start.elapsed();
    let dispatch_lag_max = dispatcher.join().map_err(|_| anyhow::anyhow!("the dispatcher thread panicked"))?;
    let mut outcome = PhaseOutcome { elapsed, dispatch_lag_max, ..PhaseOutcome::default() };
    gather(connections, joined, &mut outcome);
    outcome.sockets_open = port.and_then(sockets_to_port);
    Ok(outcome)
}

/// Every connection sends its next request as soon as the previous one is answered, for `duration`.
pub async fn closed_loop<C: Connection>(
    connections: &mut Vec<C>,
    target: &C::Target,
    duration: Duration,
) -> anyhow::Result<PhaseOutcome> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for mut connection in connections.drain(..) {
        let target = target.clone();
        tasks.spawn(async move {
            let mut outcome = TaskOutcome::default();
            while Instant::now() < deadline {
                let request = Request { seq: next_seq(), scheduled: Instant::now() };
                let result = connection.call(&target, request).await;
                outcome.count(result, request);
            }
            (connection, outcome)
        });
    }
    let joined = join_all(tasks).await?;
    let mut outcome = PhaseOutcome { elapsed: start.elapsed(), ..PhaseOutcome::default() };
    gather(connections, joined, &mut outcome);
    Ok(outcome)
}

/// How many TCP sockets of this process are established to `port` on this host, from
/// `/proc/net/tcp{,6}` and the socket inodes in `/proc/self/fd`. `None` where /proc is not readable.
pub fn sockets_to_port(port: u16) -> Option<usize> {
    let mut own = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        if let Ok(link) = std::fs::read_link(entry.path()) {
            let link = link.to_string_lossy().into_owned();
            if let Some(inode) = link.strip_prefix("socket:[").and_then(|rest| rest.strip_suffix(']')) {
                own.insert(inode.to_owned());
            }
        }
    }
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(remote), Some(state), Some(inode)) = (fields.get(2), fields.get(3), fields.get(9)) else {
                continue;
            };
            let remote_port = remote.rsplit(':').next().and_then(|hex| u16::from_str_radix(hex, 16).ok());
            if *state == "01" && remote_port == Some(port) && own.contains(*inode) {
                count += 1;
            }
        }
    }
    Some(count)
}
