//! Workflow benchmark: Outrigger's workflow engine driven over Dapr's workflow protocol
//! (`TaskHubSidecarService` on the Dapr gRPC port) by an app written in Rust in this bench (a worker on
//! `GetWorkItems` that replays each turn's history, and a client on `StartInstance`) and, separately, by the
//! official Python SDK (`benches/workflow/python_driver.py`). Scenarios, from the issue:
//!
//! - a chain of 5 no-op activities, 30 instances in flight: workflows/s (target >= 100; daprd ~28);
//! - a fan-out of 5 no-op activities, 110 in flight: workflows/s (target >= 200; daprd ~100);
//! - 1,000 instances of a chain of 15 started at once: wall time to all completed (target <= 30 s; daprd 90 s);
//!
//! each run several times back to back on the same processes and database ("no slowdown from one run to
//! the next"), on the embedded form (SQLite) and the distributed one (PostgreSQL).
//!
//! It runs the release binary (`cargo build --release` first, or set OUTRIGGER_BIN) and needs PostgreSQL at
//! 127.0.0.1:5432 and NATS at 127.0.0.1:4222 (`scripts/services`) for the distributed form; the Python runs
//! need the venv `scripts/sdk-tests` makes. `cargo bench --bench workflow -- --help` lists the options.

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod driver;
mod python;
mod replay;
mod report;
mod usage;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;

use crate::common::cli;
use crate::common::forms::{self, Form, Running, Services};
use crate::common::procs::{self, Watched};
use crate::common::setup::{port_of, progress, ControlApi};
use crate::driver::Measured;
use crate::replay::Shape;
use crate::report::{Driver, Load, RunResult, Scenario, Settings, Target, WorkerSummary};
use crate::usage::{Group, Postgres, Usage};
use crate::worker::{Completions, Worker};

const USAGE: &str = "\
usage: cargo bench --bench workflow -- [options]

  --quick                  2 s warm-up, 5 s windows, bursts of 200 (smoke run); env BENCH_QUICK=1
  --forms LIST             embedded,distributed (default both); env BENCH_FORMS
  --scenarios LIST         chain,fan_out,burst (default all); env BENCH_SCENARIOS
  --runs N                 runs of each scenario, back to back (default 2); env BENCH_RUNS
  --warmup SECONDS         before each in-flight window (default 5); env BENCH_WARMUP
  --window SECONDS         in-flight measuring window (default 20); env BENCH_WINDOW
  --burst N                instances of the burst (default 1000); env BENCH_BURST
  --burst-timeout SECONDS  longest a burst may take (default 300); env BENCH_BURST_TIMEOUT
  --streams N              GetWorkItems streams of the Rust app (default 1, as an SDK app process holds;
                           more act like app replicas); env BENCH_STREAMS
  --concurrency N          work items the Rust app works on at once (default 256); env BENCH_CONCURRENCY
  --python MODE            auto: also run the Python SDK app when tests/sdk/.venv has it (default);
                           on: require it; off: Rust only; env BENCH_PYTHON
  --python-burst N         instances of the Python app's burst (default: --burst); env BENCH_PYTHON_BURST
  --pg-vacuum on|off       on: VACUUM (ANALYZE) the workflow tables before each run of the distributed form,
                           as autovacuum would (for servers that run with it off; default off); env BENCH_PG_VACUUM

  OUTRIGGER_BIN            the binary to run (default target/release/outrigger)
  BENCH_POSTGRES_URL       default postgres://postgres@127.0.0.1:5432/postgres
  BENCH_NATS_URL           default nats://127.0.0.1:4222

Writes the results to target/bench/workflow.json as well.";

const PROJECT: &str = "bench";
/// The App IDs of the Rust app and of the Python one: each gets only its own work.
const RUST_APP: &str = "rust-app";
const PYTHON_APP: &str = "python-app";
/// The bench process's group in the CPU figures.
const BENCH_GROUP: &str = "(bench: rust app + driver)";

#[derive(Clone, Copy, PartialEq, Eq)]
enum PythonMode {
    Auto,
    On,
    Off,
}

struct Options {
    forms: Vec<Form>,
    scenarios: Vec<Scenario>,
    runs: usize,
    warmup: Duration,
    window: Duration,
    burst_timeout: Duration,
    streams: usize,
    concurrency: usize,
    python: PythonMode,
    python_burst: usize,
    pg_vacuum: bool,
    quick: bool,
    binary: PathBuf,
    target_dir: PathBuf,
    services: Services,
}

/// The scenarios, the burst with `burst` instances (held to the target only at 1000).
fn scenarios(keys: &[String], burst: usize) -> anyhow::Result<Vec<Scenario>> {
    let all = [
        Scenario {
            key: "chain",
            shape: Shape::Chain(5),
            load: Load::InFlight(30),
            target: Some(Target::MinRate { per_second: 100.0, daprd: 28.0 }),
        },
        Scenario {
            key: "fan_out",
            shape: Shape::FanOut(5),
            load: Load::InFlight(110),
            target: Some(Target::MinRate { per_second: 200.0, daprd: 100.0 }),
        },
        Scenario {
            key: "burst",
            shape: Shape::Chain(15),
            load: Load::Burst(burst),
            target: (burst == 1000).then_some(Target::MaxWall { seconds: 30.0, daprd: 90.0 }),
        },
    ];
    let mut chosen = Vec::new();
    for key in keys {
        match all.iter().find(|scenario| scenario.key == key) {
            Some(scenario) => chosen.push(scenario.clone()),
            None => bail!("scenarios: unknown scenario '{key}' (chain, fan_out, burst)"),
        }
    }
    Ok(chosen)
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let args = cli::parse(
            USAGE,
            &[
                ("forms", "BENCH_FORMS"),
                ("scenarios", "BENCH_SCENARIOS"),
                ("runs", "BENCH_RUNS"),
                ("warmup", "BENCH_WARMUP"),
                ("window", "BENCH_WINDOW"),
                ("burst", "BENCH_BURST"),
                ("burst-timeout", "BENCH_BURST_TIMEOUT"),
                ("streams", "BENCH_STREAMS"),
                ("concurrency", "BENCH_CONCURRENCY"),
                ("python", "BENCH_PYTHON"),
                ("python-burst", "BENCH_PYTHON_BURST"),
                ("pg-vacuum", "BENCH_PG_VACUUM"),
            ],
        )?;
        let quick = args.quick;
        let runs: usize = args.number("runs", 2)?;
        let warmup: f64 = args.number("warmup", if quick { 2.0 } else { 5.0 })?;
        let window: f64 = args.number("window", if quick { 5.0 } else { 20.0 })?;
        let burst: usize = args.number("burst", if quick { 200 } else { 1000 })?;
        let burst_timeout: f64 = args.number("burst-timeout", 300.0)?;
        let streams: usize = args.number("streams", 1)?;
        let concurrency: usize = args.number("concurrency", 256)?;
        let python_burst: usize = args.number("python-burst", burst)?;
        if !(runs > 0 && warmup >= 0.0 && window > 0.0 && burst > 0 && burst_timeout > 0.0 && streams > 0)
            || concurrency == 0
            || python_burst == 0
        {
            bail!("runs, window, burst, burst-timeout, streams, concurrency and python-burst must be greater than 0");
        }
        let pg_vacuum = match args.value("pg-vacuum").unwrap_or("off") {
            "on" | "yes" | "1" | "true" => true,
            "off" | "no" | "0" | "false" => false,
            other => bail!("pg-vacuum: '{other}' is neither on nor off"),
        };
        let python = match args.value("python").unwrap_or("auto") {
            "auto" => PythonMode::Auto,
            "on" | "yes" | "1" | "true" => PythonMode::On,
            "off" | "no" | "0" | "false" => PythonMode::Off,
            other => bail!("python: '{other}' is none of auto, on, off"),
        };
        let keys: Vec<String> = args
            .value("scenarios")
            .unwrap_or("chain,fan_out,burst")
            .split(',')
            .map(|key| key.trim().replace('-', "_"))
            .filter(|key| !key.is_empty())
            .collect();
        let target_dir = cli::target_dir();
        Ok(Options {
            forms: forms::parse_forms(args.value("forms"))?,
            scenarios: scenarios(&keys, burst)?,
            runs,
            warmup: Duration::from_secs_f64(warmup),
            window: Duration::from_secs_f64(window),
            burst_timeout: Duration::from_secs_f64(burst_timeout),
            streams,
            concurrency,
            python,
            python_burst,
            pg_vacuum,
            quick,
            binary: cli::binary(&target_dir),
            target_dir,
            services: Services::from_env(),
        })
    }

    fn settings(&self, python_skipped: Option<String>) -> Settings {
        Settings {
            binary: self.binary.display().to_string(),
            warmup_s: self.warmup.as_secs_f64(),
            window_s: self.window.as_secs_f64(),
            runs: self.runs,
            streams: self.streams,
            concurrency: self.concurrency,
            burst_timeout_s: self.burst_timeout.as_secs_f64(),
            pg_vacuum: self.pg_vacuum,
            quick: self.quick,
            python_skipped,
        }
    }
}

/// A started and provisioned form, with what its runs are measured by.
struct Product {
    running: Running,
    rust_token: String,
    python_token: Option<String>,
    groups: Vec<Group>,
    postgres: Option<Postgres>,
    /// Instances started on it so far.
    instances: u64,
}

async fn provision(
    options: &Options,
    form: Form,
    schemas: &Mutex<Vec<String>>,
    python: bool,
    notes: &mut Vec<String>,
) -> anyhow::Result<Product> {
    let running = Running::start(form, &options.binary, &options.services, schemas, &[]).await?;
    let api = ControlApi::new(&running.control_api, &running.admin_token)?;
    api.create_project(PROJECT).await?;
    let rust_token = api.create_app(PROJECT, json!({"name": RUST_APP})).await?;
    let python_token = if python { Some(api.create_app(PROJECT, json!({"name": PYTHON_APP})).await?) } else { None };
    let mut groups: Vec<Group> = running
        .processes
        .iter()
        .map(|process| {
            let watched = Watched::of(process);
            Group { name: watched.name.clone(), pids: vec![watched.pid_number()], outrigger: true }
        })
        .collect();
    groups.push(Group { name: BENCH_GROUP.to_owned(), pids: vec![std::process::id()], outrigger: false });
    let mut postgres = None;
    if let (Some(schema), Some(application_name)) = (&running.schema, &running.application_name) {
        // NATS carries no workflow traffic (the gateway runs the engine on the database), but it is the form's.
        if let Some(pid) = port_of(&options.services.nats_url).ok().and_then(procs::listener_pid) {
            groups.push(Group { name: "(nats-server)".to_owned(), pids: vec![pid], outrigger: false });
        }
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&options.services.postgres_url)
            .await
            .context("connecting to PostgreSQL for its statistics")?;
        let server = Postgres { pool, application_name: application_name.clone(), schema: schema.clone() };
        if server.autovacuum().await.as_deref() == Some("off") {
            notes.push(
                "this PostgreSQL runs with autovacuum = off: the dead rows the workflow tables churn out are never \
                 cleaned up, so the distributed runs slow down as they pile up (see the dead rows above; \
                 `--pg-vacuum on` vacuums before each run, as autovacuum would)"
                    .to_owned(),
            );
        }
        postgres = Some(server);
    }
    Ok(Product { running, rust_token, python_token, groups, postgres, instances: 0 })
}

fn worker_summary(stats: &mut worker::Stats) -> WorkerSummary {
    let percentile = |latencies: &mut common::load::Latencies, p: f64| latencies.percentile_ms(p).unwrap_or(f64::NAN);
    WorkerSummary {
        turns: stats.turns,
        activities: stats.activities,
        events_per_turn: stats.turn_events as f64 / stats.turns.max(1) as f64,
        turn_answer_p50_ms: percentile(&mut stats.turn_answers, 50.0),
        turn_answer_p99_ms: percentile(&mut stats.turn_answers, 99.0),
        activity_answer_p50_ms: percentile(&mut stats.activity_answers, 50.0),
        activity_answer_p99_ms: percentile(&mut stats.activity_answers, 99.0),
        answer_errors: stats.answer_errors,
        replay_failures: stats.replay_failures,
        reconnects: stats.reconnects,
        first_error: stats.first_error.take(),
    }
}

/// One run of `scenario` with the Rust app.
async fn rust_run(
    options: &Options,
    product: &Product,
    client: &worker::Client,
    worker: &Worker,
    completions: &Arc<Completions>,
    scenario: &Scenario,
    run: usize,
) -> (RunResult, Vec<String>) {
    let form = product.running.form;
    let title = format!("{} {} rust run {run}", scenario.title(), form.name());
    let prefix = format!("rs-{}-{run}", scenario.key);
    let _ = worker.take_stats();
    let (mut measured, (before, after)): (Measured, _) = match scenario.load {
        Load::InFlight(count) => {
            progress(format!(
                "{title}: {:.0} s warm-up, {:.0} s window",
                options.warmup.as_secs_f64(),
                options.window.as_secs_f64()
            ));
            let load = driver::keep_in_flight(
                client,
                completions,
                scenario.shape,
                count,
                options.warmup,
                options.window,
                &prefix,
            );
            let marks = async {
                tokio::time::sleep(options.warmup).await;
                let before = usage::mark(&product.groups, product.postgres.as_ref()).await;
                tokio::time::sleep(options.window).await;
                (before, usage::mark(&product.groups, product.postgres.as_ref()).await)
            };
            tokio::join!(load, marks)
        }
        Load::Burst(count) => {
            progress(format!("{title}: starting {count} at once"));
            let before = usage::mark(&product.groups, product.postgres.as_ref()).await;
            let measured =
                driver::burst(client, completions, scenario.shape, count, options.burst_timeout, &prefix).await;
            (measured, (before, usage::mark(&product.groups, product.postgres.as_ref()).await))
        }
    };
    let mut stats = worker.take_stats();
    let mut notes = driver::verify(client, scenario.shape, &measured.sample).await;
    if let Some(all_started) = measured.all_started {
        notes.push(format!(
            "all {} StartInstance calls answered after {:.2} s",
            measured.started,
            all_started.as_secs_f64()
        ));
    }
    let mut percentile = |p: f64| measured.latencies.percentile_ms(p).unwrap_or(f64::NAN);
    let (p50_ms, p99_ms, max_ms) = (percentile(50.0), percentile(99.0), percentile(100.0));
    let result = RunResult {
        scenario: scenario.clone(),
        form,
        driver: Driver::Rust,
        run,
        instances_before: product.instances,
        started: measured.started,
        completed: measured.completed,
        counted: measured.counted,
        errors: measured.errors,
        first_error: measured.first_error.take(),
        rate: measured.rate,
        p50_ms,
        p99_ms,
        max_ms,
        wall_s: measured.wall.map(|wall| wall.as_secs_f64()),
        all_started_s: measured.all_started.map(|at| at.as_secs_f64()),
        start_p50_ms: measured.start_calls.percentile_ms(50.0).unwrap_or(f64::NAN),
        start_p99_ms: measured.start_calls.percentile_ms(99.0).unwrap_or(f64::NAN),
        worker: Some(worker_summary(&mut stats)),
        usage: Some(Usage::between(&product.groups, &before, &after)),
        notes,
    };
    progress(format!(
        "{title}: {:.1} workflows/s, p50 {} ms, p99 {} ms{}, {} errors",
        result.rate,
        common::report::ms(result.p50_ms),
        common::report::ms(result.p99_ms),
        result.wall_s.map_or(String::new(), |wall| format!(", wall {wall:.1} s")),
        result.errors
    ));
    (result, std::mem::take(&mut measured.unfinished))
}

/// Before a run: what `--pg-vacuum` asks for (what autovacuum would do on a server that has it on).
async fn before_run(options: &Options, product: &Product) -> Option<String> {
    let postgres = product.postgres.as_ref().filter(|_| options.pg_vacuum)?;
    let tables = ["wf_instances", "wf_inbox", "wf_activities", "wf_history"]
        .map(|table| format!("{}.{table}", postgres.schema))
        .join(", ");
    match sqlx::raw_sql(&format!("VACUUM (ANALYZE) {tables}")).execute(&postgres.pool).await {
        Ok(_) => None,
        Err(err) => Some(format!("VACUUM before the run failed: {err}")),
    }
}

/// Purges what a run left unfinished, noting it in the run's result.
async fn clean_after(client: &worker::Client, unfinished: &[String], result: Option<&mut RunResult>) {
    if unfinished.is_empty() {
        return;
    }
    let note = match driver::purge_unfinished(client, unfinished).await {
        Ok(purged) => {
            format!("purged {purged} instances it left unfinished, so that they do not weigh on the next run")
        }
        Err(err) => format!("could not purge the instances it left unfinished: {err}"),
    };
    progress(note.clone());
    if let Some(result) = result {
        result.notes.push(note);
    }
}

/// The runs of `scenario` with the Rust app: a worker for them, then `options.runs` runs.
async fn rust_runs(options: &Options, product: &mut Product, scenario: &Scenario) -> anyhow::Result<Vec<RunResult>> {
    let grpc = product.running.dapr_grpc.clone();
    // The app: a worker on its own connection, and a client on another, as the SDKs hold them.
    let completions = Arc::new(Completions::default());
    let client = worker::connect(&grpc, &product.rust_token).await?;
    let worker_client = worker::connect(&grpc, &product.rust_token).await?;
    let worker = Worker::start(worker_client, options.streams, options.concurrency, Arc::clone(&completions))
        .await
        .context("starting the Rust app's worker")?;
    let mut results = Vec::new();
    for run in 1..=options.runs {
        let vacuum = before_run(options, product).await;
        let (mut result, unfinished) = rust_run(options, product, &client, &worker, &completions, scenario, run).await;
        result.notes.extend(vacuum);
        clean_after(&client, &unfinished, Some(&mut result)).await;
        product.instances += result.started;
        results.push(result);
        product.running.check_alive()?;
    }
    drop((worker, client));
    // The dropped streams and connections close on this thread: give them a moment, or the server's graceful
    // shutdown (or the next scenario) meets them still open.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(results)
}

/// The runs of `scenario` with the Python app (one driver process).
async fn python_runs(
    options: &Options,
    product: &mut Product,
    scenario: &Scenario,
    token: &str,
) -> anyhow::Result<Vec<RunResult>> {
    let mut scenario = scenario.clone();
    if let Load::Burst(count) = scenario.load {
        if count != options.python_burst {
            scenario.load = Load::Burst(options.python_burst);
            scenario.target = (options.python_burst == 1000).then_some(Target::MaxWall { seconds: 30.0, daprd: 90.0 });
        }
    }
    let form = product.running.form;
    progress(format!("{} {} python: {} runs", scenario.title(), form.name(), options.runs));
    let vacuum = before_run(options, product).await;
    let grpc = product.running.dapr_grpc.clone();
    let context = python::Runs {
        grpc: &grpc,
        token,
        warmup: options.warmup,
        window: options.window,
        runs: options.runs,
        burst_timeout: options.burst_timeout,
        groups: &product.groups,
        postgres: product.postgres.as_ref(),
        form,
    };
    let (mut results, unfinished) = python::run(&context, &scenario, &format!("py-{}", scenario.key)).await?;
    let client = worker::connect(&grpc, token).await?;
    clean_after(&client, &unfinished, results.last_mut()).await;
    for result in &mut results {
        result.notes.extend(vacuum.clone());
        result.instances_before = product.instances;
        product.instances += result.started;
        progress(format!(
            "{} {} python run {}: {:.1} workflows/s, {} errors",
            scenario.title(),
            form.name(),
            result.run,
            result.rate,
            result.errors
        ));
    }
    Ok(results)
}

/// Starts `form`, runs each scenario with the Rust app and then with the Python one (so that both meet the
/// database in a like state), and stops it.
async fn run_form(
    options: &Options,
    form: Form,
    schemas: &Mutex<Vec<String>>,
    python: bool,
    results: &Mutex<Vec<RunResult>>,
    notes: &Mutex<Vec<String>>,
) -> anyhow::Result<()> {
    let push = |result: RunResult| {
        if let Ok(mut results) = results.lock() {
            results.push(result);
        }
    };
    let mut found = Vec::new();
    let provisioned = provision(options, form, schemas, python, &mut found).await;
    if let Ok(mut notes) = notes.lock() {
        notes.extend(found);
    }
    let mut product = provisioned?;
    for scenario in &options.scenarios {
        for result in rust_runs(options, &mut product, scenario).await? {
            push(result);
        }
        if let Some(token) = product.python_token.clone() {
            match python_runs(options, &mut product, scenario, &token).await {
                Ok(runs) => runs.into_iter().for_each(push),
                Err(err) => {
                    progress(format!("{} {} python: FAILED: {err:#}", scenario.title(), form.name()));
                    push(failed(scenario, form, Driver::Python, &format!("{err:#}")));
                }
            }
            product.running.check_alive()?;
        }
    }
    // Connections dropped a moment ago close on this thread: give them that moment, or the server's graceful
    // shutdown waits for them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let notes = product.running.stop();
    if let Ok(mut results) = results.lock() {
        for result in results.iter_mut().filter(|result| result.form == form) {
            result.notes.extend(notes.iter().cloned());
        }
    }
    Ok(())
}

/// A run that did not happen, for the table.
fn failed(scenario: &Scenario, form: Form, driver: Driver, error: &str) -> RunResult {
    RunResult {
        scenario: scenario.clone(),
        form,
        driver,
        run: 0,
        instances_before: 0,
        started: 0,
        completed: 0,
        counted: 0,
        errors: 1,
        first_error: Some(error.to_owned()),
        rate: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        max_ms: f64::NAN,
        wall_s: None,
        all_started_s: None,
        start_p50_ms: f64::NAN,
        start_p99_ms: f64::NAN,
        worker: None,
        usage: None,
        notes: Vec::new(),
    }
}

async fn run_all(
    options: &Options,
    schemas: &Mutex<Vec<String>>,
    python: bool,
    results: &Mutex<Vec<RunResult>>,
    notes: &Mutex<Vec<String>>,
) {
    for form in &options.forms {
        if let Err(err) = run_form(options, *form, schemas, python, results, notes).await {
            progress(format!("{}: FAILED: {err:#}", form.name()));
            if let Ok(mut notes) = notes.lock() {
                notes.push(format!("{}: FAILED: {err:#}", form.name()));
            }
        }
    }
}

async fn run(options: Options) -> ExitCode {
    if !cli::check_binary(&options.binary) {
        return ExitCode::FAILURE;
    }
    let python_skipped = match options.python {
        PythonMode::Off => Some("--python off".to_owned()),
        PythonMode::Auto | PythonMode::On => match python::check().await {
            Ok(()) => None,
            Err(why) if options.python == PythonMode::On => {
                eprintln!("error: --python on, but {why}; {}", python::HOW_TO_CREATE);
                return ExitCode::FAILURE;
            }
            Err(why) => Some(format!("{why}; {}", python::HOW_TO_CREATE)),
        },
    };
    if let Some(skipped) = &python_skipped {
        progress(format!("Python SDK runs skipped: {skipped}"));
    }
    let schemas = Mutex::new(Vec::new());
    let results = Mutex::new(Vec::new());
    let notes = Mutex::new(Vec::new());
    let interrupted = tokio::select! {
        () = run_all(&options, &schemas, python_skipped.is_none(), &results, &notes) => false,
        _ = tokio::signal::ctrl_c() => {
            progress("interrupted: stopping the processes and cleaning up");
            true
        }
    };
    let cleanup = forms::drop_schemas(&options.services, &schemas).await;
    let results = results.into_inner().unwrap_or_default();
    let mut notes = notes.into_inner().unwrap_or_default();
    if interrupted {
        notes.push("interrupted: the runs after the last one shown did not happen".to_owned());
    }
    let settings = options.settings(python_skipped);
    println!("{}", report::table(&settings, &results, &notes));
    cli::write_json(&options.target_dir, &report::to_json(&settings, &results, &notes, &cleanup));
    let failed = results.iter().any(|result| result.run == 0) || notes.iter().any(|note| note.contains("FAILED"));
    if interrupted || failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    match Options::parse() {
        Ok(options) => forms::block_on(run(options)),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
