//! The load generator: a fixed number of keep-alive connections, driven open-loop at a fixed rate
//! (latency counted from each request's scheduled time) or closed-loop as fast as they answer.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Longest a single request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What every request asks for.
#[derive(Clone, Debug)]
pub enum Target {
    /// `GET url` with the `dapr-api-token` header; 2xx with a body of `body_len` bytes is a success.
    Http { url: String, token: String, body_len: usize },
    /// Redis `GET key`; a value of `value_len` bytes is a success.
    Redis { key: String, value_len: usize },
}

/// One keep-alive connection. Each is used by one task at a time and only for one request at a
/// time, so it never opens a second socket.
pub enum Connection {
    Http(reqwest::Client),
    Redis(redis::aio::MultiplexedConnection),
}

impl Connection {
    /// An HTTP/1.1 client holding at most one connection, ignoring any proxy settings.
    pub fn http() -> anyhow::Result<Connection> {
        let client = reqwest::Client::builder()
            .http1_only()
            .no_proxy()
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(None)
            .tcp_nodelay(true)
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Connection::Http(client))
    }

    /// A dedicated Redis connection (not shared with other connections).
    pub async fn redis(addr: &str) -> anyhow::Result<Connection> {
        let client = redis::Client::open(format!("redis://{addr}/"))?;
        Ok(Connection::Redis(client.get_multiplexed_async_connection().await?))
    }

    /// One request; `Err` describes a failure (transport error, non-2xx, wrong answer).
    pub async fn call(&mut self, target: &Target) -> Result<(), String> {
        match (self, target) {
            (Connection::Http(client), Target::Http { url, token, body_len }) => {
                let response =
                    client.get(url).header("dapr-api-token", token).send().await.map_err(|err| format!("{err}"))?;
                let status = response.status();
                let body = response.bytes().await.map_err(|err| format!("reading the body: {err}"))?;
                if !status.is_success() {
                    return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])));
                }
                if body.len() != *body_len {
                    return Err(format!("HTTP {status} with a {}-byte body, expected {body_len}", body.len()));
                }
                Ok(())
            }
            (Connection::Redis(connection), Target::Redis { key, value_len }) => {
                let mut command = redis::cmd("GET");
                command.arg(key);
                match tokio::time::timeout(REQUEST_TIMEOUT, command.query_async::<Option<Vec<u8>>>(connection)).await {
                    Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
                    Ok(Err(err)) => Err(format!("{err}")),
                    Ok(Ok(None)) => Err(format!("key {key} is missing")),
                    Ok(Ok(Some(value))) if value.len() != *value_len => {
                        Err(format!("a {}-byte value, expected {value_len}", value.len()))
                    }
                    Ok(Ok(Some(_))) => Ok(()),
                }
            }
            _ => Err("connection and target are of different kinds".to_owned()),
        }
    }
}

/// Latencies in nanoseconds, kept whole; percentiles by nearest rank.
#[derive(Default, Clone, Debug)]
pub struct Latencies {
    samples: Vec<u64>,
    sorted: bool,
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        self.samples.push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
        self.sorted = false;
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
}

impl TaskOutcome {
    fn count(&mut self, outcome: Result<(), String>, latency: Duration) {
        self.sent += 1;
        match outcome {
            Ok(()) => self.latencies.record(latency),
            Err(err) => {
                self.errors += 1;
                self.first_error.get_or_insert(err);
            }
        }
    }
}

fn gather(connections: &mut Vec<Connection>, joined: Vec<(Connection, TaskOutcome)>, outcome: &mut PhaseOutcome) {
    for (connection, task) in joined {
        connections.push(connection);
        outcome.latencies.merge(task.latencies);
        outcome.sent += task.sent;
        outcome.errors += task.errors;
        if outcome.first_error.is_none() {
            outcome.first_error = task.first_error;
        }
    }
}

async fn join_all(mut tasks: JoinSet<(Connection, TaskOutcome)>) -> anyhow::Result<Vec<(Connection, TaskOutcome)>> {
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
pub async fn open_loop(
    connections: &mut Vec<Connection>,
    target: &Target,
    rate: f64,
    duration: Duration,
    port: Option<u16>,
) -> anyhow::Result<PhaseOutcome> {
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let mut senders = Vec::new();
    let mut tasks = JoinSet::new();
    for mut connection in connections.drain(..) {
        let (sender, mut scheduled) = mpsc::unbounded_channel::<Instant>();
        senders.push(sender);
        let target = target.clone();
        tasks.spawn(async move {
            let mut outcome = TaskOutcome::default();
            while let Some(at) = scheduled.recv().await {
                let result = connection.call(&target).await;
                outcome.count(result, at.elapsed());
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
            let _ = senders[(index % senders.len() as u64) as usize].send(at);
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
pub async fn closed_loop(
    connections: &mut Vec<Connection>,
    target: &Target,
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
                let sent = Instant::now();
                let result = connection.call(&target).await;
                outcome.count(result, sent.elapsed());
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
