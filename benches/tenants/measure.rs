//! What the bench measures on a running form: CPU over a window with no traffic (idle, settling), the first
//! call of cold projects, warming projects, and the GET load over random warm projects (with a direct read
//! of the same rows as its baseline).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use sqlx::Connection as _;

use crate::app::{Counted, TenantApp};
use crate::common::load::{self, Latencies, Request, REQUEST_TIMEOUT};
use crate::common::procs::{self, cpu_of, cpu_seconds, Watched};
use crate::common::report::{finite, mb};
use crate::common::setup::{self, progress};
use crate::seed::Tenant;

/// The key every warmed project's App ID saves and the bench reads.
pub const KEY: &str = "k";
/// Bytes of the value saved under [`KEY`].
pub const VALUE_BYTES: usize = 100;

/// The value saved under [`KEY`] (a JSON string), and what a GET answers with it.
pub fn value() -> String {
    "v".repeat(VALUE_BYTES)
}

/// The form's PostgreSQL sessions (distributed form): their server processes' CPU counts with the form's.
pub struct Backends {
    pool: sqlx::PgPool,
    application_name: String,
}

impl Backends {
    pub async fn connect(postgres_url: &str, application_name: &str) -> anyhow::Result<Backends> {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(postgres_url).await?;
        Ok(Backends { pool, application_name: application_name.to_owned() })
    }

    /// The server processes of the form's sessions now.
    pub async fn pids(&self) -> Vec<u32> {
        sqlx::query_scalar::<_, i32>("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
            .bind(&self.application_name)
            .fetch_all(&self.pool)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|pid| u32::try_from(pid).ok())
            .collect()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// CPU and memory of one process over a window.
#[derive(Clone, Debug)]
pub struct ProcessUse {
    pub name: String,
    pub cpu_seconds: f64,
    pub cores: f64,
    pub rss_kib: Option<u64>,
    pub outrigger: bool,
}

impl ProcessUse {
    pub fn to_json(&self) -> Value {
        json!({
            "process": self.name, "cpu_seconds": finite(self.cpu_seconds), "cores": finite(self.cores),
            "vm_rss_kib": self.rss_kib, "outrigger": self.outrigger,
        })
    }
}

/// A window with no traffic from the bench.
#[derive(Clone, Debug)]
pub struct Window {
    pub seconds: f64,
    pub processes: Vec<ProcessUse>,
    /// Cores everything else on the machine used meanwhile (the machine is shared).
    pub background_cores: Option<f64>,
    /// What the tenants' app was asked meanwhile.
    pub app_calls: Counted,
    /// Share of the window in which some task waited for the disk, and for a CPU (kernel pressure stall
    /// information): the machine is shared, and other work stalls what is measured.
    pub io_stall: Option<f64>,
    pub cpu_stall: Option<f64>,
}

impl Window {
    /// Cores of the Outrigger processes together.
    pub fn outrigger_cores(&self) -> f64 {
        self.processes.iter().filter(|process| process.outrigger).map(|process| process.cores).sum()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "seconds": finite(self.seconds),
            "processes": self.processes.iter().map(ProcessUse::to_json).collect::<Vec<_>>(),
            "outrigger_cores": finite(self.outrigger_cores()),
            "background_cores": self.background_cores.and_then(finite),
            "app_calls": {"dapr_subscribe": self.app_calls.subscribe, "other": self.app_calls.other},
            "io_stall_share": self.io_stall.and_then(finite), "cpu_stall_share": self.cpu_stall.and_then(finite),
        })
    }
}

/// CPU of a set of processes (and of the form's PostgreSQL sessions) from [`Meter::start`] to
/// [`Meter::stop`], with the rest of the machine's.
pub struct Meter {
    all: Vec<Watched>,
    has_backends: bool,
    calls_before: Counted,
    before: Vec<Option<u64>>,
    machine_before: Option<(u64, u64)>,
    stalls_before: (Option<u64>, Option<u64>),
    started: Instant,
}

impl Meter {
    pub async fn start(watched: &[Watched], backends: Option<&Backends>, app: &TenantApp) -> Meter {
        let mut all: Vec<Watched> = watched
            .iter()
            .map(|w| Watched { name: w.name.clone(), pid: w.pid.clone(), outrigger: w.outrigger })
            .collect();
        if let Some(backends) = backends {
            for pid in backends.pids().await {
                all.push(Watched { name: format!("postgres backend {pid}"), pid: pid.to_string(), outrigger: false });
            }
        }
        let calls_before = app.counted();
        let stalls_before = (procs::pressure_us("io"), procs::pressure_us("cpu"));
        let (before, machine_before, started) = (cpu_of(&all), procs::machine_ticks(), Instant::now());
        Meter { all, has_backends: backends.is_some(), calls_before, before, machine_before, stalls_before, started }
    }

    pub fn stop(self, app: &TenantApp) -> Window {
        let ticks = procs::clock_ticks();
        let Meter { all, has_backends, calls_before, before, machine_before, stalls_before, started } = self;
        let (after, machine_after, seconds) = (cpu_of(&all), procs::machine_ticks(), started.elapsed().as_secs_f64());
        let stall = |before: Option<u64>, resource: &str| {
            Some(procs::pressure_us(resource)?.saturating_sub(before?) as f64 / 1e6 / seconds)
        };
        let (io_stall, cpu_stall) = (stall(stalls_before.0, "io"), stall(stalls_before.1, "cpu"));
        let app_calls = app.counted().since(calls_before);
        let mut processes: Vec<ProcessUse> = Vec::new();
        let mut backend_cpu = 0.0;
        let mut backend_count = 0;
        for (index, process) in all.iter().enumerate() {
            let cpu = cpu_seconds(&before, &after, index, ticks);
            if process.name.starts_with("postgres backend") {
                // A session that ended meanwhile has no second reading.
                if cpu.is_finite() {
                    backend_cpu += cpu;
                    backend_count += 1;
                }
                continue;
            }
            processes.push(ProcessUse {
                name: process.name.clone(),
                cpu_seconds: cpu,
                cores: cpu / seconds,
                rss_kib: process.memory_kib().map(|(rss, _)| rss),
                outrigger: process.outrigger,
            });
        }
        if has_backends {
            processes.push(ProcessUse {
                name: format!("PostgreSQL ({backend_count} sessions)"),
                cpu_seconds: backend_cpu,
                cores: backend_cpu / seconds,
                rss_kib: None,
                outrigger: false,
            });
        }
        let measured: f64 = all
            .iter()
            .enumerate()
            .filter(|(_, process)| !process.pid.contains("/task/"))
            .map(|(index, _)| cpu_seconds(&before, &after, index, ticks))
            .filter(|cpu| cpu.is_finite())
            .sum();
        let background_cores = match (machine_before, machine_after) {
            (Some((busy_before, _)), Some((busy_after, _))) => {
                Some(((busy_after.saturating_sub(busy_before) as f64 / ticks - measured) / seconds).max(0.0))
            }
            _ => None,
        };
        Window { seconds, processes, background_cores, app_calls, io_stall, cpu_stall }
    }
}

/// Measures CPU of `watched` (and of the form's PostgreSQL sessions) over `length` of no traffic. The bench's
/// own process is idle meanwhile and not watched: it counts as background, slightly.
pub async fn window(length: Duration, watched: &[Watched], backends: Option<&Backends>, app: &TenantApp) -> Window {
    let meter = Meter::start(watched, backends, app).await;
    tokio::time::sleep(length).await;
    meter.stop(app)
}

/// How the processes came to rest after a start or a burst of writes.
#[derive(Clone, Debug)]
pub struct Settled {
    pub seconds: f64,
    /// Whether they went quiet before the limit.
    pub quiet: bool,
    /// Outrigger CPU seconds spent meanwhile.
    pub cpu_seconds: f64,
    pub app_calls: Counted,
}

impl Settled {
    pub fn to_json(&self) -> Value {
        json!({
            "seconds": finite(self.seconds), "quiet": self.quiet, "outrigger_cpu_seconds": finite(self.cpu_seconds),
            "app_calls": {"dapr_subscribe": self.app_calls.subscribe, "other": self.app_calls.other},
        })
    }
}

/// Outrigger cores below which a 3 s step counts as quiet.
const QUIET_CORES: f64 = 0.05;
const QUIET_STEP: Duration = Duration::from_secs(3);

/// Waits at least `at_least`, then until a [`QUIET_STEP`] passes with the Outrigger processes under
/// [`QUIET_CORES`] and no call to the tenants' app, or `limit` is reached; `what` names it in progress lines.
pub async fn settle(what: &str, at_least: Duration, limit: Duration, watched: &[Watched], app: &TenantApp) -> Settled {
    let ticks = procs::clock_ticks();
    let started = Instant::now();
    let (first, calls_before) = (cpu_of(watched), app.counted());
    let total_cpu = |now: &[Option<u64>]| -> f64 {
        (0..watched.len()).map(|index| cpu_seconds(&first, now, index, ticks)).filter(|cpu| cpu.is_finite()).sum()
    };
    let mut last_report = Instant::now();
    loop {
        let (before, calls) = (cpu_of(watched), app.counted());
        tokio::time::sleep(QUIET_STEP).await;
        let after = cpu_of(watched);
        let step: f64 = (0..watched.len())
            .map(|index| cpu_seconds(&before, &after, index, ticks))
            .filter(|cpu| cpu.is_finite())
            .sum();
        let cores = step / QUIET_STEP.as_secs_f64();
        let called = app.counted().since(calls).total();
        let elapsed = started.elapsed();
        let quiet = cores < QUIET_CORES && called == 0;
        if (quiet && elapsed >= at_least) || elapsed >= limit {
            let settled = Settled {
                seconds: elapsed.as_secs_f64(),
                quiet,
                cpu_seconds: total_cpu(&after),
                app_calls: app.counted().since(calls_before),
            };
            progress(format!(
                "{what}: {} after {:.0} s ({:.1} Outrigger CPU-s, {} app calls meanwhile)",
                if quiet { "quiet" } else { "NOT quiet (limit reached)" },
                settled.seconds,
                settled.cpu_seconds,
                settled.app_calls.total()
            ));
            return settled;
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            progress(format!(
                "{what}: waiting ({:.0} s; {cores:.2} cores, {called} app calls in the last {} s)",
                elapsed.as_secs_f64(),
                QUIET_STEP.as_secs()
            ));
        }
    }
}

/// First calls of cold projects, each followed by a second call of the same project.
#[derive(Clone, Debug)]
pub struct Cold {
    pub first: Latencies,
    pub second: Latencies,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// `GET /v1.0/state/kvstore/KEY` of each of `tenants` (never called before), one at a time on one
/// keep-alive connection, then again at once: the first is the cold call, the second the warm one.
pub async fn cold_calls(dapr_http: &str, tenants: &[Tenant]) -> anyhow::Result<Cold> {
    let client = setup::keep_alive_client()?;
    let url = format!("http://{dapr_http}/v1.0/state/kvstore/{KEY}");
    let mut cold = Cold { first: Latencies::default(), second: Latencies::default(), errors: 0, first_error: None };
    progress(format!("cold calls: GET {KEY} of {} projects never called, each then once more", tenants.len()));
    for tenant in tenants {
        for latencies in [&mut cold.first, &mut cold.second] {
            let started = Instant::now();
            match get(&client, &url, &tenant.token, None).await {
                Ok(()) => latencies.record(started.elapsed()),
                Err(err) => {
                    cold.errors += 1;
                    cold.first_error.get_or_insert(format!("{}: {err}", tenant.project));
                }
            }
        }
        // Lets whatever a first call set off finish before the next cold project.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if cold.first.len() == 0 {
        bail!("every cold call failed: {}", cold.first_error.clone().unwrap_or_default());
    }
    Ok(cold)
}

/// A Dapr state GET; success is a 2xx (and, when `expected` is given, that body).
async fn get(client: &reqwest::Client, url: &str, token: &str, expected: Option<&str>) -> Result<(), String> {
    let response = client.get(url).header("dapr-api-token", token).send().await.map_err(|err| format!("{err}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|err| format!("reading the body: {err}"))?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])));
    }
    if let Some(expected) = expected {
        if body != expected.as_bytes() {
            return Err(format!("HTTP {status} with a {}-byte body, not the value saved", body.len()));
        }
    }
    Ok(())
}

/// What warming gave: each project's first call (a state save) under concurrency.
#[derive(Clone, Debug)]
pub struct Warmed {
    pub count: usize,
    pub latencies: Latencies,
    pub elapsed: Duration,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Saves KEY in each of `tenants` (its first call), `connections` at a time, printing progress.
pub async fn warm(dapr_http: &str, tenants: &[Tenant], connections: usize) -> anyhow::Result<Warmed> {
    let url = Arc::new(format!("http://{dapr_http}/v1.0/state/kvstore"));
    let body = Arc::new(serde_json::to_vec(&json!([{"key": KEY, "value": value()}]))?);
    let tokens: Arc<Vec<String>> = Arc::new(tenants.iter().map(|tenant| tenant.token.clone()).collect());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let total = tokens.len();
    progress(format!("warming {total} projects: one state save each, {connections} at a time"));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (url, body, tokens, next, done) =
            (Arc::clone(&url), Arc::clone(&body), Arc::clone(&tokens), Arc::clone(&next), Arc::clone(&done));
        tasks.spawn(async move {
            let client = setup::keep_alive_client()?;
            let (mut samples, mut errors, mut first_error) = (Vec::<Duration>::new(), 0u64, None);
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(token) = tokens.get(index) else { break };
                let sent = Instant::now();
                let outcome = client
                    .post(url.as_str())
                    .header("dapr-api-token", token)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.as_ref().clone())
                    .send()
                    .await;
                match outcome {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        samples.push(sent.elapsed());
                    }
                    Ok(response) => {
                        errors += 1;
                        let status = response.status();
                        let text = response.text().await.unwrap_or_default();
                        first_error.get_or_insert(format!("HTTP {status}: {text}"));
                    }
                    Err(err) => {
                        errors += 1;
                        first_error.get_or_insert(format!("{err}"));
                    }
                }
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            anyhow::Ok((samples, errors, first_error))
        });
    }
    let reporter = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let count = done.load(std::sync::atomic::Ordering::Relaxed);
                let elapsed = started.elapsed().as_secs_f64();
                progress(format!("warming: {count} of {total} projects ({:.0}/s)", count as f64 / elapsed.max(1e-9)));
            }
        })
    };
    let mut warmed =
        Warmed { count: total, latencies: Latencies::default(), elapsed: Duration::ZERO, errors: 0, first_error: None };
    while let Some(joined) = tasks.join_next().await {
        let (samples, errors, first_error) = joined.context("a warming task failed")??;
        for sample in samples {
            warmed.latencies.record(sample);
        }
        warmed.errors += errors;
        if warmed.first_error.is_none() {
            warmed.first_error = first_error;
        }
    }
    reporter.abort();
    warmed.elapsed = started.elapsed();
    progress(format!("warmed {total} projects in {:.1} s ({} errors)", warmed.elapsed.as_secs_f64(), warmed.errors));
    if warmed.errors as usize == total {
        bail!("every save failed: {}", warmed.first_error.unwrap_or_default());
    }
    Ok(warmed)
}

/// What a GET-load request asks for.
#[derive(Clone, Debug)]
pub enum Target {
    /// `GET url` with the token of a random one of `tokens`; a 2xx with `expected` is a success.
    Http { url: String, tokens: Arc<Vec<String>>, expected: Arc<String> },
    /// The product's own read of a random one of `keys` straight from the kvstore table.
    Direct { statement: Arc<String>, keys: Arc<Vec<String>> },
}

/// One keep-alive connection of the GET load.
pub enum Connection {
    Http(reqwest::Client),
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Connection {
    pub fn http() -> anyhow::Result<Connection> {
        Ok(Connection::Http(setup::keep_alive_client()?))
    }

    /// A connection to the managed kvstore's database: a SQLite file or a PostgreSQL URL.
    pub async fn direct(url: &str) -> anyhow::Result<Connection> {
        if url.starts_with("sqlite:") {
            Ok(Connection::Sqlite(sqlx::SqliteConnection::connect(url).await?))
        } else {
            Ok(Connection::Postgres(sqlx::PgConnection::connect(url).await?))
        }
    }
}

/// A well-spread index in `0..len` from a request's sequence number (splitmix64).
fn pick(seq: u64, len: usize) -> usize {
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % len.max(1) as u64) as usize
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl load::Connection for Connection {
    type Target = Target;

    async fn call(&mut self, target: &Target, request: Request) -> Result<(), String> {
        match (self, target) {
            (Connection::Http(client), Target::Http { url, tokens, expected }) => {
                let token = &tokens[pick(request.seq, tokens.len())];
                get(client, url, token, Some(expected)).await
            }
            (Connection::Sqlite(connection), Target::Direct { statement, keys }) => {
                let key = &keys[pick(request.seq, keys.len())];
                let query = sqlx::query(statement).bind(key).bind(now_ms()).fetch_optional(&mut *connection);
                match tokio::time::timeout(REQUEST_TIMEOUT, query).await {
                    Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
                    Ok(Err(err)) => Err(format!("{err}")),
                    Ok(Ok(None)) => Err(format!("key {key} is missing")),
                    Ok(Ok(Some(_))) => Ok(()),
                }
            }
            (Connection::Postgres(connection), Target::Direct { statement, keys }) => {
                let key = &keys[pick(request.seq, keys.len())];
                let query = sqlx::query(statement).bind(key).bind(now_ms()).fetch_optional(&mut *connection);
                match tokio::time::timeout(REQUEST_TIMEOUT, query).await {
                    Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
                    Ok(Err(err)) => Err(format!("{err}")),
                    Ok(Ok(None)) => Err(format!("key {key} is missing")),
                    Ok(Ok(Some(_))) => Ok(()),
                }
            }
            _ => Err("a connection of the wrong kind for this target".to_owned()),
        }
    }
}

/// The managed kvstore's table and up to `count` of its keys (random ones), read straight from its
/// database at `url`.
pub async fn kvstore_keys(url: &str, table: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let statement = format!("SELECT key FROM {table} ORDER BY random() LIMIT {count}");
    let keys: Vec<String> = if url.starts_with("sqlite:") {
        let mut connection = sqlx::SqliteConnection::connect(url).await?;
        let keys = sqlx::query_scalar(&statement).fetch_all(&mut connection).await?;
        connection.close().await?;
        keys
    } else {
        let mut connection = sqlx::PgConnection::connect(url).await?;
        let keys = sqlx::query_scalar(&statement).fetch_all(&mut connection).await?;
        connection.close().await?;
        keys
    };
    if keys.is_empty() {
        bail!("the kvstore table {table} has no rows");
    }
    Ok(keys)
}

/// The product's state GET statement on `table` (workers/src/state/sql.rs).
pub fn get_statement(table: &str) -> String {
    format!("SELECT value, etag, expires_at FROM {table} WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2)")
}

/// Resident memory of each of `watched` now, in MB.
pub fn rss(watched: &[Watched]) -> Vec<(String, Option<f64>)> {
    watched.iter().map(|process| (process.name.clone(), process.memory_kib().map(|(rss, _)| mb(rss)))).collect()
}
