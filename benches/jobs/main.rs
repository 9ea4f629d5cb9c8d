//! Jobs benchmark: how late the scheduler fires jobs that all fall due in the same second. For each size
//! (1,000 and 10,000 by default) it schedules that many one-shot jobs through the Dapr HTTP API, all due at
//! one instant a few seconds ahead, and records when each `POST /job/{name}` reaches a small app in the bench;
//! the lag of each trigger is its arrival minus the due instant. The baseline is the same number of POSTs the
//! bench sends to the same app itself at one instant, with as many in flight as the scheduler allows (128):
//! the floor any scheduler that calls the app over HTTP stands on. Duplicates (at-least-once) and missing
//! triggers are counted.
//!
//! It runs the release binary (`cargo build --release` first, or set OUTRIGGER_BIN) and needs PostgreSQL and
//! NATS (`scripts/services`) for the distributed form. `cargo bench --bench jobs -- --help` lists the options.

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use axum::extract::{Path, State};
use axum::routing::post;
use axum::Router;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::common::cli;
use crate::common::forms::{self, parse_forms, Form, Running, Services};
use crate::common::setup::{progress, random, ControlApi};

const USAGE: &str = "\
usage: cargo bench --bench jobs -- [options]

  --quick              1,000 jobs only; env BENCH_QUICK=1
  --sizes N,N          how many jobs fall due at once (default 1000,10000); env BENCH_SIZES
  --forms LIST         embedded, distributed or both (default both); env BENCH_FORMS

  OUTRIGGER_BIN        the binary to run (default target/release/outrigger)
  BENCH_POSTGRES_URL   default postgres://postgres@127.0.0.1:5432/postgres
  BENCH_NATS_URL       default nats://127.0.0.1:4222

Writes the results to target/bench/jobs.json as well.

";

/// As many triggers in flight as the scheduler sends at once (`workers/src/jobs.rs`).
const IN_FLIGHT: usize = 128;

/// Requests scheduling jobs at once.
const SCHEDULERS: usize = 32;

/// How long after the due instant the bench waits for the last trigger.
const GRACE: Duration = Duration::from_secs(60);

/// Arrival times of each job's triggers, by job name.
type Arrivals = Arc<Mutex<HashMap<String, Vec<SystemTime>>>>;

/// An app that records each trigger's arrival; its base URL.
async fn receiving_app(arrivals: Arrivals) -> anyhow::Result<String> {
    let app = Router::new()
        .route(
            "/job/{name}",
            post(|State(arrivals): State<Arrivals>, Path(name): Path<String>| async move {
                let now = SystemTime::now();
                arrivals.lock().expect("arrivals lock").entry(name).or_default().push(now);
            }),
        )
        .with_state(arrivals);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// p50, p99 and max of `lags` (milliseconds), sorted in place.
fn percentiles(lags: &mut [f64]) -> [f64; 3] {
    lags.sort_by(f64::total_cmp);
    let at =
        |quantile: f64| lags.get(((lags.len() as f64 - 1.0) * quantile).round() as usize).copied().unwrap_or(f64::NAN);
    [at(0.5), at(0.99), at(1.0)]
}

fn lag_ms(arrival: SystemTime, due: SystemTime) -> f64 {
    match arrival.duration_since(due) {
        Ok(late) => late.as_secs_f64() * 1000.0,
        Err(early) => -early.duration().as_secs_f64() * 1000.0,
    }
}

/// The baseline: `size` POSTs to the app from the bench, all meant for one instant.
async fn baseline(client: &reqwest::Client, app: &str, size: usize, arrivals: &Arrivals) -> anyhow::Result<[f64; 3]> {
    arrivals.lock().expect("arrivals lock").clear();
    let start = SystemTime::now();
    let posts =
        futures_util::stream::iter(0..size).map(|index| client.post(format!("{app}/job/direct-{index}")).send());
    let failed = posts.buffer_unordered(IN_FLIGHT).filter(|answer| std::future::ready(answer.is_err())).count().await;
    if failed > 0 {
        bail!("{failed} of the baseline's POSTs failed");
    }
    let mut lags: Vec<f64> =
        arrivals.lock().expect("arrivals lock").values().flatten().map(|at| lag_ms(*at, start)).collect();
    Ok(percentiles(&mut lags))
}

/// One size on one form: its row of the report.
async fn measure(running: &Running, size: usize, client: &reqwest::Client) -> anyhow::Result<Value> {
    let arrivals: Arrivals = Arc::default();
    let app = receiving_app(Arc::clone(&arrivals)).await?;
    let control = ControlApi::new(&running.control_api, &running.admin_token)?;
    let project = format!("jobs{}", random(8).to_lowercase());
    control.create_project(&project).await?;
    let token = control.create_app(&project, json!({"name": "receiver", "appEndpoint": app})).await?;
    let floor = baseline(client, &app, size, &arrivals).await?;
    arrivals.lock().expect("arrivals lock").clear();

    // Far enough ahead that every job is scheduled before it falls due.
    let lead = Duration::from_secs_f64(5.0 + size as f64 / 300.0);
    let due = SystemTime::now() + lead;
    let due_text = chrono::DateTime::<chrono::Utc>::from(due).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    progress(format!("{}: scheduling {size} jobs due at {due_text}", running.form.name()));
    let dapr = &running.dapr_http;
    let schedule = futures_util::stream::iter(0..size).map(|index| {
        let body = json!({"dueTime": due_text, "failurePolicy": {"drop": {}}}).to_string();
        client
            .post(format!("http://{dapr}/v1.0-alpha1/jobs/job-{index}"))
            .header("dapr-api-token", &token)
            .body(body)
            .send()
    });
    let refused = schedule
        .buffer_unordered(SCHEDULERS)
        .filter(|answer| std::future::ready(!answer.as_ref().is_ok_and(|answer| answer.status().is_success())))
        .count()
        .await;
    if refused > 0 {
        bail!("{refused} of {size} jobs were not scheduled");
    }
    let overran = SystemTime::now() > due;
    let deadline = due + GRACE;
    while arrivals.lock().expect("arrivals lock").len() < size && SystemTime::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let arrived = arrivals.lock().expect("arrivals lock").clone();
    let duplicates: usize = arrived.values().map(|times| times.len().saturating_sub(1)).sum();
    let mut lags: Vec<f64> = arrived.values().filter_map(|times| times.first()).map(|at| lag_ms(*at, due)).collect();
    let [p50, p99, max] = percentiles(&mut lags);
    let row = json!({
        "form": running.form.name(), "jobs": size, "fired": arrived.len(), "missing": size - arrived.len(),
        "duplicates": duplicates, "lag_ms": {"p50": p50, "p99": p99, "max": max},
        "baseline_ms": {"p50": floor[0], "p99": floor[1], "max": floor[2]},
        "p50_ratio": p50 / floor[0].max(0.001), "scheduling_overran_the_due_time": overran,
    });
    println!(
        "{:<12} {:>6} jobs: fired {:>6}, missing {}, duplicates {}; lag p50 {:>8.1} ms, p99 {:>8.1} ms, max {:>8.1} ms \
         (direct POSTs p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms){}",
        running.form.name(), size, arrived.len(), size - arrived.len(), duplicates, p50, p99, max, floor[0], floor[1], floor[2],
        if overran { "; scheduling overran the due time" } else { "" }
    );
    Ok(row)
}

async fn run() -> anyhow::Result<()> {
    let args = cli::parse(USAGE, &[("sizes", "BENCH_SIZES"), ("forms", "BENCH_FORMS")])?;
    let default_sizes = if args.quick { "1000" } else { "1000,10000" };
    let sizes: Vec<usize> = args
        .value("sizes")
        .unwrap_or(default_sizes)
        .split(',')
        .map(|size| size.trim().parse().with_context(|| format!("--sizes: '{size}' is not a number")))
        .collect::<anyhow::Result<_>>()?;
    let forms: Vec<Form> = parse_forms(args.value("forms"))?;
    let target_dir = cli::target_dir();
    let binary = cli::binary(&target_dir);
    if !cli::check_binary(&binary) {
        bail!("no binary to run at {}", binary.display());
    }
    let services = Services::from_env();
    let schemas = Mutex::new(Vec::new());
    let client = reqwest::Client::builder().pool_max_idle_per_host(IN_FLIGHT).build()?;
    let mut rows = Vec::new();
    for form in forms {
        let mut running = Running::start(form, &binary, &services, &schemas, &[]).await?;
        for size in &sizes {
            let row = measure(&running, *size, &client).await;
            running.check_alive()?;
            rows.push(row?);
        }
        running.stop();
    }
    forms::drop_schemas(&services, &schemas).await;
    cli::write_json(&target_dir, &json!({"bench": "jobs", "results": rows}));
    Ok(())
}

fn main() -> ExitCode {
    forms::main_of(run())
}
