//! The write side: how many calls per second the real `ApiLog` writer gets into a fresh store (paced so that its
//! 65,536-call queue never overflows, then as a burst that does), against a plain multi-row INSERT loop of the
//! same rows into a bare table; what `ApiLog::record` costs the caller against a plain bounded tokio channel; and
//! how long a small control-plane read waits while the writer writes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use outrigger_store::{ApiCall, CallBatch, NewProject, Store, BUCKET_COLUMNS};
use outrigger_telemetry::{ApiLog, ApiLogOptions};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::calls::{self, VALUES_PER_ROW};
use crate::common::load::Latencies;
use crate::common::setup::progress;
use crate::db::{self, CpuMeter, CpuUse, Database};

/// Rows per transaction of the baseline: the writer's batch.
const BATCH: usize = 1000;
/// Rows per statement of the SQLite baseline: the store's (17 values each stays under SQLite's 999 placeholders).
const SQLITE_ROWS_PER_INSERT: usize = 58;
/// Calls the paced producers let wait in the writer's queue (65,536) at most, counting what the writer holds.
const PACED_QUEUE: u64 = 48_000;
/// The project the control-plane probe reads.
const PROBE_PROJECT: &str = "probe";

/// The API log counters of this process (`outrigger_api_log_written_total`, `..._dropped_total`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub written: u64,
    pub dropped: u64,
}

impl Counters {
    pub fn read() -> Counters {
        let text = outrigger_telemetry::metrics().render();
        let value = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
                .and_then(|value| value.trim().parse::<f64>().ok())
                .map_or(0, |value| value as u64)
        };
        Counters {
            written: value("outrigger_api_log_written_total"),
            dropped: value("outrigger_api_log_dropped_total"),
        }
    }

    fn since(self, before: Counters) -> Counters {
        Counters { written: self.written - before.written, dropped: self.dropped - before.dropped }
    }
}

/// One write scenario's outcome.
#[derive(Debug)]
pub struct Throughput {
    pub key: &'static str,
    pub name: String,
    /// Calls handed over (to the writer) or rows inserted (the baseline).
    pub offered: u64,
    pub written: u64,
    pub dropped: u64,
    /// Rows the table holds afterwards.
    pub rows: u64,
    /// From the first call handed over to the last row committed.
    pub elapsed: Duration,
    /// How long the producers took to hand everything over.
    pub handed_over: Option<Duration>,
    pub cpu: CpuUse,
    /// Control-plane read latencies, idle and while the writer wrote.
    pub probe: Option<(Latencies, Latencies)>,
    pub notes: Vec<String>,
}

impl Throughput {
    pub fn rate(&self) -> f64 {
        self.written as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn to_json(&self, baseline: Option<f64>) -> Value {
        let probe = self.probe.clone().map(|(mut idle, mut busy)| {
            let summary = |latencies: &mut Latencies| {
                json!({
                    "samples": latencies.len(), "p50_ms": latencies.percentile_ms(50.0),
                    "p99_ms": latencies.percentile_ms(99.0), "max_ms": latencies.max_ms(),
                })
            };
            json!({"idle": summary(&mut idle), "while_writing": summary(&mut busy)})
        });
        json!({
            "key": self.key, "name": self.name, "offered": self.offered, "written": self.written,
            "dropped": self.dropped, "rows": self.rows, "elapsed_s": self.elapsed.as_secs_f64(),
            "records_per_s": self.rate(), "ratio_to_baseline": baseline.map(|base| self.rate() / base),
            "handed_over_s": self.handed_over.map(|took| took.as_secs_f64()),
            "cpu": self.cpu.to_json(), "control_plane_read": probe, "notes": self.notes,
        })
    }
}

/// Binds a call's 17 stored values, in `api_calls`' column order.
macro_rules! bind_call {
    ($query:expr, $call:expr) => {{
        let call: &ApiCall = $call;
        $query
            .bind(call.project_id.as_str())
            .bind(call.at)
            .bind(call.app_id.as_str())
            .bind(call.target.as_deref())
            .bind(&*call.api)
            .bind(&*call.protocol)
            .bind(&*call.method)
            .bind(call.path.as_str())
            .bind(call.component.as_deref())
            .bind(i64::from(call.status))
            .bind(call.grpc_code.map(i64::from))
            .bind(call.latency_us)
            .bind(call.span.map(|span| span.trace_id_hex()))
            .bind(call.span.map(|span| span.span_id_hex()))
            .bind(call.user_agent.as_deref())
            .bind(call.caller_addr.map(|address| address.to_string()))
            .bind(call.direction.as_str())
    }};
}

/// `INSERT INTO bare_api_calls (...) VALUES (...), ...` for `rows` rows, with `?` or `$n` placeholders.
fn bare_insert(rows: usize, numbered: bool) -> String {
    let mut values = Vec::with_capacity(rows);
    for row in 0..rows {
        let placeholders: Vec<String> = (1..=VALUES_PER_ROW)
            .map(|column| if numbered { format!("${}", row * VALUES_PER_ROW + column) } else { "?".to_owned() })
            .collect();
        values.push(format!("({})", placeholders.join(", ")));
    }
    format!("INSERT INTO bare_api_calls ({}) VALUES {}", calls::STORED_COLUMNS, values.join(", "))
}

/// Per-minute count rows per upsert statement of the what-if scenario: 19 values each stays under SQLite's 999.
const MINUTE_ROWS_PER_UPSERT: usize = 50;

/// `api_call_minutes`' columns and key, without the expiry index.
fn bare_minutes_table() -> String {
    format!(
        "CREATE TABLE bare_api_call_minutes (project_id TEXT NOT NULL, minute BIGINT NOT NULL, app_id TEXT NOT NULL, \
         api TEXT NOT NULL, requests BIGINT NOT NULL, errors BIGINT NOT NULL, latency_us_sum BIGINT NOT NULL, {}, \
         PRIMARY KEY (project_id, minute, app_id, api))",
        BUCKET_COLUMNS.iter().map(|bucket| format!("{bucket} BIGINT NOT NULL")).collect::<Vec<_>>().join(", ")
    )
}

/// One per-minute count row: project, minute, App ID, API, requests, errors, latency sum, buckets.
type MinuteRow<'a> = (&'a str, i64, &'a str, &'a str, [i64; 15]);

/// The per-minute counts a batch adds, as the store adds them (the calls App IDs made, by project, minute, App
/// ID and API).
fn minute_counts(batch: &[ApiCall]) -> Vec<MinuteRow<'_>> {
    let mut counts: std::collections::BTreeMap<(&str, i64, &str, &str), [i64; 15]> = std::collections::BTreeMap::new();
    for call in batch.iter().filter(|call| call.direction == outrigger_store::CallDirection::FromApp) {
        let minute = call.at - call.at.rem_euclid(60_000);
        let entry = counts.entry((call.project_id.as_str(), minute, &call.app_id, &call.api)).or_insert([0; 15]);
        entry[0] += 1;
        entry[1] += i64::from(call.failed());
        entry[2] += call.latency_us;
        entry[3 + outrigger_store::latency_bucket(call.latency_us)] += 1;
    }
    counts.into_iter().map(|((project, minute, app, api), values)| (project, minute, app, api, values)).collect()
}

/// A multi-row upsert of `rows` per-minute count rows, adding to the counts already there.
fn minutes_upsert(rows: usize, numbered: bool) -> String {
    let per_row = 4 + 15;
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let placeholders: Vec<String> = (1..=per_row)
                .map(|column| if numbered { format!("${}", row * per_row + column) } else { "?".to_owned() })
                .collect();
            format!("({})", placeholders.join(", "))
        })
        .collect();
    let additions: Vec<String> = ["requests", "errors", "latency_us_sum"]
        .iter()
        .chain(&BUCKET_COLUMNS)
        .map(|column| format!("{column} = bare_api_call_minutes.{column} + excluded.{column}"))
        .collect();
    format!(
        "INSERT INTO bare_api_call_minutes (project_id, minute, app_id, api, requests, errors, latency_us_sum, {}) \
         VALUES {} ON CONFLICT (project_id, minute, app_id, api) DO UPDATE SET {}",
        BUCKET_COLUMNS.join(", "),
        values.join(", "),
        additions.join(", ")
    )
}

/// Binds a per-minute count row's 19 values.
macro_rules! bind_minute {
    ($query:expr, $row:expr) => {{
        let row: &MinuteRow<'_> = $row;
        let mut query = $query.bind(row.0).bind(row.1).bind(row.2).bind(row.3);
        for value in row.4 {
            query = query.bind(value);
        }
        query
    }};
}

/// The baseline: the same rows into a bare table of a fresh database, one transaction per [`BATCH`], multi-row
/// INSERTs through sqlx's own driver (SQLite: 58 rows per statement, as the store; PostgreSQL: one statement per
/// transaction), nothing else.
pub async fn bare_inserts(database: &Database, rows: &[ApiCall], with_counts: bool) -> anyhow::Result<Throughput> {
    let offered = rows.len() as u64;
    let (elapsed, cpu, counted) = if database.postgres() {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&database.url).await?;
        for statement in calls::bare_table(true) {
            sqlx::query(&statement).execute(&pool).await?;
        }
        sqlx::query(&bare_minutes_table()).execute(&pool).await?;
        let full = bare_insert(BATCH, true);
        let meter = CpuMeter::start();
        let started = Instant::now();
        for batch in rows.chunks(BATCH) {
            let partial;
            let sql = if batch.len() == BATCH {
                &full
            } else {
                partial = bare_insert(batch.len(), true);
                &partial
            };
            let mut query = sqlx::query(sql);
            for call in batch {
                query = bind_call!(query, call);
            }
            let mut tx = pool.begin().await?;
            query.execute(&mut *tx).await?;
            if with_counts {
                let counts = minute_counts(batch);
                for chunk in counts.chunks(MINUTE_ROWS_PER_UPSERT) {
                    let sql = minutes_upsert(chunk.len(), true);
                    let mut query = sqlx::query(&sql);
                    for row in chunk {
                        query = bind_minute!(query, row);
                    }
                    query.execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
        }
        let elapsed = started.elapsed();
        let cpu = meter.stop();
        let counted: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bare_api_calls").fetch_one(&pool).await?;
        pool.close().await;
        (elapsed, cpu, counted)
    } else {
        let pool = db::sqlite_pool(&database.url).await?;
        for statement in calls::bare_table(false) {
            sqlx::query(&statement).execute(&pool).await?;
        }
        sqlx::query(&bare_minutes_table()).execute(&pool).await?;
        let full = bare_insert(SQLITE_ROWS_PER_INSERT, false);
        let meter = CpuMeter::start();
        let started = Instant::now();
        for batch in rows.chunks(BATCH) {
            let mut tx = pool.begin().await?;
            for chunk in batch.chunks(SQLITE_ROWS_PER_INSERT) {
                let partial;
                let sql = if chunk.len() == SQLITE_ROWS_PER_INSERT {
                    &full
                } else {
                    partial = bare_insert(chunk.len(), false);
                    &partial
                };
                let mut query = sqlx::query(sql);
                for call in chunk {
                    query = bind_call!(query, call);
                }
                query.execute(&mut *tx).await?;
            }
            if with_counts {
                let counts = minute_counts(batch);
                for chunk in counts.chunks(MINUTE_ROWS_PER_UPSERT) {
                    let sql = minutes_upsert(chunk.len(), false);
                    let mut query = sqlx::query(&sql);
                    for row in chunk {
                        query = bind_minute!(query, row);
                    }
                    query.execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
        }
        let elapsed = started.elapsed();
        let cpu = meter.stop();
        let counted: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bare_api_calls").fetch_one(&pool).await?;
        pool.close().await;
        (elapsed, cpu, counted)
    };
    let rows = u64::try_from(counted).unwrap_or_default();
    let mut notes = Vec::new();
    if rows != offered {
        notes.push(format!("the table holds {rows} rows, not {offered}"));
    }
    Ok(Throughput {
        key: if with_counts { "bare_with_counts" } else { "baseline" },
        name: if with_counts {
            format!("bare table + per-minute counts, {MINUTE_ROWS_PER_UPSERT} rows/upsert")
        } else {
            format!("baseline: multi-row INSERT, bare table, {BATCH} rows/tx")
        },
        offered,
        written: rows,
        dropped: 0,
        rows,
        elapsed,
        handed_over: None,
        cpu,
        probe: None,
        notes,
    })
}

/// The store alone: `Store::record_api_calls` (what the writer calls) on batches of [`BATCH`], one after the other,
/// without the queue: the writer's ceiling.
pub async fn store_direct(database: &Database, rows: &[ApiCall]) -> anyhow::Result<Throughput> {
    let offered = rows.len() as u64;
    let store = database.store().await?;
    // Encoded before the clock starts, as the request path encodes each call when it logs it.
    let batches: Vec<CallBatch> = rows.chunks(BATCH).map(CallBatch::of).collect();
    let meter = CpuMeter::start();
    let started = Instant::now();
    for batch in &batches {
        store.record_api_calls(batch.all()).await?;
    }
    let elapsed = started.elapsed();
    let cpu = meter.stop();
    store.close().await;
    let rows = database.logged_calls().await?;
    let mut notes = Vec::new();
    if rows != offered {
        notes.push(format!("the table holds {rows} rows, not {offered}"));
    }
    Ok(Throughput {
        key: "store_direct",
        name: format!("Store::record_api_calls, {BATCH} per call, no queue"),
        offered,
        written: rows,
        dropped: 0,
        rows,
        elapsed,
        handed_over: None,
        cpu,
        probe: None,
        notes,
    })
}

/// Per-minute count rows (project, minute, App ID, API of the calls App IDs made) a batch of [`BATCH`] upserts, on
/// average over `rows`: the writer's statements per batch beside its inserts.
pub fn minute_rows_per_batch(rows: &[ApiCall]) -> f64 {
    let mut total = 0usize;
    let mut batches = 0usize;
    for batch in rows.chunks(BATCH) {
        let groups: std::collections::HashSet<(&str, i64, &str, &str)> = batch
            .iter()
            .filter(|call| call.direction == outrigger_store::CallDirection::FromApp)
            .map(|call| {
                (call.project_id.as_str(), call.at - call.at.rem_euclid(60_000), call.app_id.as_str(), &*call.api)
            })
            .collect();
        total += groups.len();
        batches += 1;
    }
    total as f64 / batches.max(1) as f64
}

/// Hands `calls` to the real writer on a fresh store from `producers` tasks, paced (each waits while the queue may
/// hold [`PACED_QUEUE`] calls) or as fast as they can; ends the writer (it writes what is queued, then returns)
/// once everything is handed over, and counts the rows. `probe`: a small control-plane read every 5 ms meanwhile,
/// and 200 of them before, idle. `prefilled`: the store already holds that many calls (the query part's).
pub async fn writer(
    database: &Database,
    calls: Vec<ApiCall>,
    producers: usize,
    paced: bool,
    probe: bool,
    one_group: bool,
    prefilled: u64,
) -> anyhow::Result<Throughput> {
    let offered = calls.len() as u64;
    let store = database.store().await?;
    let rows_before = if prefilled > 0 { database.logged_calls().await? } else { 0 };
    let mut idle = Latencies::default();
    if probe {
        let mut tx = store.begin().await?;
        let new = NewProject {
            org_id: outrigger_store::OrgId::default_org(),
            name: PROBE_PROJECT.to_owned(),
            managed_kvstore: true,
            managed_pubsub: true,
            pool: "default".to_owned(),
        };
        tx.create_project(&new).await?;
        tx.commit().await?;
        for _ in 0..200 {
            idle.record(probe_read(&store).await?);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // Whole batches in turn to each producer.
    let mut runs: Vec<Vec<ApiCall>> = (0..producers.max(1)).map(|_| Vec::new()).collect();
    let count = runs.len();
    for (index, call) in calls.into_iter().enumerate() {
        runs[(index / BATCH) % count].push(call);
    }

    let closing = CancellationToken::new();
    let before = Counters::read();
    let (log, writer) = ApiLog::start(store.clone(), ApiLogOptions::default(), closing.clone());
    let recorded = Arc::new(AtomicU64::new(0));
    let stop_probe = Arc::new(AtomicBool::new(false));
    let busy_probe = probe.then(|| {
        let (store, stop) = (store.clone(), Arc::clone(&stop_probe));
        tokio::spawn(async move {
            let mut busy = Latencies::default();
            while !stop.load(Ordering::Relaxed) {
                busy.record(probe_read(&store).await?);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            anyhow::Ok(busy)
        })
    });
    let meter = CpuMeter::start();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for run in runs {
        let (log, recorded) = (log.clone(), Arc::clone(&recorded));
        tasks.push(tokio::spawn(async move {
            let mut run = run.into_iter();
            loop {
                if paced {
                    // Waits for the writer when the queue may be nearly full: the writer's sustainable rate.
                    loop {
                        let settled = Counters::read().since(before);
                        if recorded.load(Ordering::Relaxed) <= settled.written + settled.dropped + PACED_QUEUE {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                let mut handed = 0;
                for call in run.by_ref().take(BATCH) {
                    log.record(&call.logged());
                    handed += 1;
                }
                if handed == 0 {
                    break;
                }
                recorded.fetch_add(handed, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.context("a producer panicked")?;
    }
    let handed_over = started.elapsed();
    drop(log);
    closing.cancel();
    writer.await.context("the API log writer panicked")?;
    let elapsed = started.elapsed();
    let cpu = meter.stop();
    stop_probe.store(true, Ordering::Relaxed);
    let busy = match busy_probe {
        Some(task) => Some(task.await.context("the probe panicked")??),
        None => None,
    };
    let counters = Counters::read().since(before);
    store.close().await;
    let rows = database.logged_calls().await?;
    let mut notes = Vec::new();
    if rows - rows_before != counters.written {
        notes.push(format!(
            "the table gained {} rows, the writer counted {} written",
            rows - rows_before,
            counters.written
        ));
    }
    if counters.written + counters.dropped != offered {
        notes.push(format!(
            "{} calls neither written nor counted as dropped",
            offered - counters.written - counters.dropped
        ));
    }
    if probe {
        notes.push("a control-plane read every 5 ms ran meanwhile (about 200/s, through the same store)".to_owned());
    }
    Ok(Throughput {
        key: match (paced, one_group, prefilled > 0) {
            (_, _, true) => "writer_prefilled",
            (_, true, false) => "writer_one_group",
            (true, false, false) => "writer_paced",
            (false, false, false) => "writer_burst",
        },
        name: match (paced, one_group, prefilled > 0) {
            (_, _, true) => format!("ApiLog writer, paced, store holding {prefilled} calls"),
            (_, true, false) => "ApiLog writer, paced, one project/App ID/API".to_owned(),
            (true, false, false) => format!("ApiLog writer, {producers} producers paced to the queue"),
            (false, false, false) => format!("ApiLog writer, {producers} producers unpaced (burst)"),
        },
        offered,
        written: counters.written,
        dropped: counters.dropped,
        rows,
        elapsed,
        handed_over: Some(handed_over),
        cpu,
        probe: busy.map(|busy| (idle, busy)),
        notes,
    })
}

/// What the control API does first for any request about a project: a transaction that looks it up by name.
async fn probe_read(store: &Store) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut tx = store.begin().await?;
    tx.project(&outrigger_store::OrgId::default_org(), PROBE_PROJECT).await?;
    drop(tx);
    Ok(started.elapsed())
}

/// The caller's side: nanoseconds per hand-over, for `ApiLog::record` and for a plain bounded channel.
pub struct RecordCost {
    pub record: Latencies,
    pub channel: Latencies,
    pub record_total: Duration,
    pub channel_total: Duration,
    pub dropped: u64,
    pub calls: u64,
    pub burst: usize,
}

/// `total` calls in bursts of `burst` (below the queue's 65,536, so none is dropped), each timed on its own, into
/// `ApiLog::record` with the writer writing into a fresh store and into a plain `mpsc::channel(65_536)` whose
/// receiver takes up to 1,000 at a time and drops them; bursts alternate between the two, and each waits until the
/// previous one of its kind was taken (written).
pub async fn record_cost(database: &Database, total: u64, burst: usize) -> anyhow::Result<RecordCost> {
    let store = database.store().await?;
    let closing = CancellationToken::new();
    let before = Counters::read();
    let (log, writer) = ApiLog::start(store.clone(), ApiLogOptions::default(), closing.clone());
    let (sender, mut receiver) = mpsc::channel::<ApiCall>(ApiLogOptions::default().queue);
    let taken = Arc::new(AtomicU64::new(0));
    let consumer = {
        let taken = Arc::clone(&taken);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while receiver.recv_many(&mut batch, BATCH).await > 0 {
                taken.fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.clear();
            }
        })
    };
    let projects = calls::write_projects();
    let start = outrigger_store::now_millis();
    let mut cost = RecordCost {
        record: Latencies::default(),
        channel: Latencies::default(),
        record_total: Duration::ZERO,
        channel_total: Duration::ZERO,
        dropped: 0,
        calls: 0,
        burst,
    };
    let mut sent = 0u64;
    let mut from = 0u64;
    while sent < total {
        let to = from + burst.min(usize::try_from(total - sent).unwrap_or(burst)) as u64;
        // The channel first, then the log, with the same calls.
        let batch = calls::calls(&projects, from, to, start);
        let began = Instant::now();
        for call in batch {
            let started = Instant::now();
            let _ = sender.try_send(call);
            cost.channel.record(started.elapsed());
        }
        cost.channel_total += began.elapsed();
        let batch = calls::calls(&projects, from, to, start);
        let began = Instant::now();
        for call in batch {
            let started = Instant::now();
            log.record(&call.logged());
            cost.record.record(started.elapsed());
        }
        cost.record_total += began.elapsed();
        sent += to - from;
        from = to;
        // Both drained before the next burst (the writer writes a partial batch after its 1 s flush interval).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let settled = Counters::read().since(before);
            if taken.load(Ordering::Relaxed) >= sent && settled.written + settled.dropped >= sent {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "the writer did not catch up within 10 s ({} of {sent} settled)",
                    settled.written + settled.dropped
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    drop(sender);
    drop(log);
    closing.cancel();
    writer.await.context("the API log writer panicked")?;
    consumer.await.context("the channel's receiver panicked")?;
    store.close().await;
    cost.dropped = Counters::read().since(before).dropped;
    cost.calls = sent;
    progress(format!("record cost: {sent} calls each way in bursts of {burst}, {} dropped", cost.dropped));
    Ok(cost)
}

impl RecordCost {
    pub fn report_json(&mut self) -> Value {
        let calls = self.calls.max(1) as f64;
        let summary = |latencies: &mut Latencies, total: Duration| {
            let ns = |value: Option<f64>| value.map(|ms| ms * 1e6);
            json!({
                "p50_ns": ns(latencies.percentile_ms(50.0)), "p99_ns": ns(latencies.percentile_ms(99.0)),
                "p999_ns": ns(latencies.percentile_ms(99.9)), "max_ns": ns(latencies.max_ms()),
                "mean_ns": total.as_secs_f64() * 1e9 / calls,
            })
        };
        let (record_total, channel_total) = (self.record_total, self.channel_total);
        json!({
            "calls": self.calls, "burst": self.burst, "dropped": self.dropped,
            "api_log_record": summary(&mut self.record, record_total),
            "baseline_mpsc_try_send": summary(&mut self.channel, channel_total),
        })
    }
}
