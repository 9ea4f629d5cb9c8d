//! Tenants benchmark: what many projects cost, idle and in use (issue 14, "a tenant costs nothing at rest").
//! For each form (embedded all-in-one on SQLite; distributed worker, gateway and control API on PostgreSQL
//! and NATS) it grows one control plane to each project count: the first projects through the REST control
//! API on an empty control plane (the write baseline), the bulk seeded straight into the control-plane
//! database through the `outrigger-store` crate while the processes are stopped, and the last ones through
//! the REST API again with concurrent writers (the write latency at that count). Every project has the
//! managed kvstore and pubsub, one App ID (whose `appEndpoint` is a small app in the bench, so that the
//! worker's delivery machinery sees every project) and one `state.in-memory` component. Then, per count, it
//! measures: the first call of cold projects, warming projects (one state save each), the resident memory
//! after that, Dapr state GETs over random warm projects against a direct read of the same kvstore rows, and
//! the CPU of every process over a window with no traffic.
//!
//! It runs the release binary (`cargo build --release` first, or set OUTRIGGER_BIN) and needs PostgreSQL at
//! 127.0.0.1:5432 and NATS at 127.0.0.1:4222 (`scripts/services`) for the distributed form.
//! `cargo bench --bench tenants -- --help` lists the options.

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod app;
mod measure;
mod report;
mod seed;
mod site;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::seq::SliceRandom;

use crate::app::TenantApp;
use crate::common::cli;
use crate::common::forms::{self, Form, Services};
use crate::common::latency::{self, Phases, Scenario};
use crate::common::procs::Watched;
use crate::common::setup::{self, progress};
use crate::measure::{Backends, Connection, Target};
use crate::report::{FormRun, Settings, SizeRun, WritePhase, GET_DIRECT, GET_HOT, GET_WARM};
use crate::seed::Tenant;
use crate::site::Site;

const USAGE: &str = "\
usage: cargo bench --bench tenants -- [options]

  --quick               smoke run: 1,000 and 5,000 projects, 10 s phases; env BENCH_QUICK=1
  --projects LIST       project counts, ascending (default 10000,100000); env BENCH_PROJECTS
  --forms LIST          embedded,distributed (default both); env BENCH_FORMS
  --rest N              projects created through the control API at each count, the rest seeded through the
                        store; also the write baseline's size (default 1000); env BENCH_REST
  --writers N           concurrent control-API writers (default 8); env BENCH_WRITERS
  --warm N              projects warmed (one state save each) at each count (default 10000); env BENCH_WARM
  --hot N               warm projects the first GET load picks from (default 1000); env BENCH_HOT
  --cold N              cold projects called for the first-call latency (default 50, quick 20); env BENCH_COLD
  --idle SECONDS        the idle window (default 60, quick 10); env BENCH_IDLE
  --settle SECONDS      quiet time after the last control-plane write before measuring (default 70: workers
                        re-read projects changed in the last minute; quick 10); env BENCH_SETTLE
  --duration SECONDS    each GET load phase (default 20, quick 10); env BENCH_DURATION
  --rate N              GET requests per second (default 500); env BENCH_RATE
  --connections N       keep-alive connections of the GET load and the warming (default 16); env BENCH_CONNECTIONS
  --app-endpoints on|off  give every App ID an appEndpoint (default on); env BENCH_APP_ENDPOINTS

  OUTRIGGER_BIN         the binary to run (default target/release/outrigger)
  BENCH_POSTGRES_URL    default postgres://postgres@127.0.0.1:5432/postgres
  BENCH_NATS_URL        default nats://127.0.0.1:4222

Writes the results to target/bench/tenants.json as well.";

/// Longest the processes may take to come to rest after a start.
const STARTUP_LIMIT: Duration = Duration::from_secs(300);
/// The first safety-net look of a worker comes 5 s after its start: the wait covers it.
const STARTUP_AT_LEAST: Duration = Duration::from_secs(7);
/// How long after a write a worker's safety net may still name the project (workers/src/delivery: each look
/// reaches 60 s before the previous one, looks come every 5 s).
const SAFETY_NET_REACH: Duration = Duration::from_secs(70);
/// How much longer than `--settle` the processes may take to come to rest after writes.
const SETTLE_EXTRA: Duration = Duration::from_secs(120);

struct Options {
    sizes: Vec<usize>,
    forms: Vec<Form>,
    rest: usize,
    writers: usize,
    warm: usize,
    hot: usize,
    cold: usize,
    idle: Duration,
    settle: Duration,
    phases: Phases,
    connections: usize,
    app_endpoints: bool,
    quick: bool,
    binary: PathBuf,
    target_dir: PathBuf,
    services: Services,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let args = cli::parse(
            USAGE,
            &[
                ("projects", "BENCH_PROJECTS"),
                ("forms", "BENCH_FORMS"),
                ("rest", "BENCH_REST"),
                ("writers", "BENCH_WRITERS"),
                ("warm", "BENCH_WARM"),
                ("hot", "BENCH_HOT"),
                ("cold", "BENCH_COLD"),
                ("idle", "BENCH_IDLE"),
                ("settle", "BENCH_SETTLE"),
                ("duration", "BENCH_DURATION"),
                ("rate", "BENCH_RATE"),
                ("connections", "BENCH_CONNECTIONS"),
                ("app-endpoints", "BENCH_APP_ENDPOINTS"),
            ],
        )?;
        let quick = args.quick;
        let sizes_text = args.value("projects").unwrap_or(if quick { "1000,5000" } else { "10000,100000" });
        let mut sizes = Vec::new();
        for part in sizes_text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let size: usize =
                part.replace('_', "").parse().map_err(|_| anyhow::anyhow!("projects: '{part}' is not a number"))?;
            sizes.push(size);
        }
        let rest: usize = args.number("rest", 1000)?;
        if sizes.is_empty() || sizes.windows(2).any(|pair| pair[0] >= pair[1]) {
            bail!("projects: give one or more counts in ascending order");
        }
        if rest == 0 || sizes[0] < rest {
            bail!("projects: every count must be at least --rest ({rest}), which must be more than 0");
        }
        let seconds = |name: &str, default: f64| -> anyhow::Result<Duration> {
            let value: f64 = args.number(name, default)?;
            if value.is_nan() || value <= 0.0 {
                bail!("{name} must be greater than 0");
            }
            Ok(Duration::from_secs_f64(value))
        };
        let rate: f64 = args.number("rate", 500.0)?;
        let connections: usize = args.number("connections", 16)?;
        let writers: usize = args.number("writers", 8)?;
        let (warm, hot, cold) = (
            args.number("warm", 10_000)?,
            args.number("hot", 1000)?,
            args.number("cold", if quick { 20 } else { 50 })?,
        );
        if rate.is_nan() || rate <= 0.0 || connections == 0 || writers == 0 || warm == 0 || hot == 0 {
            bail!("rate, connections, writers, warm and hot must all be greater than 0");
        }
        let app_endpoints = match args.value("app-endpoints").unwrap_or("on") {
            "on" | "true" | "1" | "yes" => true,
            "off" | "false" | "0" | "no" => false,
            other => bail!("app-endpoints: '{other}' is not on or off"),
        };
        let target_dir = cli::target_dir();
        Ok(Options {
            sizes,
            forms: forms::parse_forms(args.value("forms"))?,
            rest,
            writers,
            warm,
            hot,
            cold,
            idle: seconds("idle", if quick { 10.0 } else { 60.0 })?,
            settle: seconds("settle", if quick { 10.0 } else { 70.0 })?,
            phases: Phases {
                warmup: Duration::from_secs(2),
                warmup_rate: 100.0_f64.min(rate),
                duration: seconds("duration", if quick { 10.0 } else { 20.0 })?,
                rate,
                probe: Duration::from_secs(if quick { 2 } else { 3 }),
            },
            connections,
            app_endpoints,
            quick,
            binary: cli::binary(&target_dir),
            target_dir,
            services: Services::from_env(),
        })
    }

    fn settings(&self) -> Settings {
        Settings {
            binary: self.binary.display().to_string(),
            sizes: self.sizes.clone(),
            rest: self.rest,
            writers: self.writers,
            warm: self.warm,
            hot: self.hot,
            cold: self.cold,
            idle: self.idle,
            settle: self.settle,
            get_duration: self.phases.duration,
            rate: self.phases.rate,
            connections: self.connections,
            app_endpoints: self.app_endpoints,
            quick: self.quick,
        }
    }
}

/// One form's control plane as it grows: its tenants by project index and which were ever called.
struct Grown {
    tenants: Vec<Tenant>,
    called: Vec<bool>,
    /// When the control plane was last written (by the bench).
    last_write: Instant,
}

impl Grown {
    fn add(&mut self, tenants: Vec<Tenant>) {
        self.called.extend(std::iter::repeat_n(false, tenants.len()));
        self.tenants.extend(tenants);
    }
}

/// The bench's own process, with the tenants' app thread in it.
fn bench_process() -> Watched {
    Watched { name: "(load generator)".to_owned(), ..Watched::generator() }
}

/// `watched` and the bench's own process.
fn with_bench(mut watched: Vec<Watched>) -> Vec<Watched> {
    watched.push(bench_process());
    watched
}

/// Runs one form at every project count into `run`.
async fn run_form(
    options: &Options,
    schemas: &Mutex<Vec<String>>,
    app: &TenantApp,
    run: &mut FormRun,
) -> anyhow::Result<()> {
    let form = run.form;
    let mut site = Site::create(form, &options.services, schemas, &[]).await?;
    let backends = match &site.application_name {
        Some(name) => Some(Backends::connect(&options.services.postgres_url, name).await?),
        None => None,
    };
    let endpoint = options.app_endpoints.then(|| app.endpoint());
    let outcome = async {
        site.start(&options.binary)?;
        measure::settle(
            &format!("{}: start (empty)", form.name()),
            STARTUP_AT_LEAST,
            STARTUP_LIMIT,
            &site.watched(),
            app,
        )
        .await;
        let meter = measure::Meter::start(&with_bench(site.watched()), backends.as_ref(), app).await;
        let (tenants, writes) = seed::through_api(
            &site.control_api,
            &site.admin_token,
            0,
            options.rest,
            options.writers,
            endpoint.as_deref(),
        )
        .await?;
        let usage = Some(meter.stop(app));
        let phase = WritePhase { from: 0, to: options.rest, writers: options.writers, writes, usage };
        let all = phase.all();
        progress(format!(
            "{}: write baseline (0..{} projects): p50 {:.2} ms, p99 {:.2} ms",
            form.name(),
            options.rest,
            all.p50,
            all.p99
        ));
        run.baseline = Some(phase);
        let mut grown = Grown { tenants: Vec::new(), called: Vec::new(), last_write: Instant::now() };
        grown.add(tenants);
        for &size in &options.sizes {
            let mut size_run = SizeRun::new(size);
            let outcome = run_size(options, &mut site, backends.as_ref(), app, &mut grown, &mut size_run).await;
            if let Err(err) = outcome {
                progress(format!("{} at {size} projects: FAILED: {err:#}", form.name()));
                size_run.error = Some(format!("{err:#}"));
                run.sizes.push(size_run);
                break;
            }
            run.sizes.push(size_run);
        }
        anyhow::Ok(())
    }
    .await;
    run.notes.extend(site.stop());
    if let Some(backends) = backends {
        backends.close().await;
    }
    outcome
}

/// Grows the control plane to `size_run.projects` and measures it.
async fn run_size(
    options: &Options,
    site: &mut Site,
    backends: Option<&Backends>,
    app: &TenantApp,
    grown: &mut Grown,
    size_run: &mut SizeRun,
) -> anyhow::Result<()> {
    let form = site.form.name();
    let size = size_run.projects;
    let label = format!("{form} at {size} projects");
    let endpoint = options.app_endpoints.then(|| app.endpoint());
    let total = grown.tenants.len();
    if size > total {
        let through_api = options.rest.min(size - total);
        let seeded = size - total - through_api;
        if seeded > 0 {
            size_run.notes.extend(site.stop());
            let (tenants, took) = seed::seed(&site.database_url(), total, total + seeded, endpoint.as_deref()).await?;
            size_run.seeded = Some((tenants.len(), took));
            grown.add(tenants);
            grown.last_write = Instant::now();
        }
        if !site.running() {
            let started = Instant::now();
            site.start(&options.binary)?;
            let ready = started.elapsed().as_secs_f64();
            let watched = site.watched();
            // Workers re-read the projects seeded in the last minute on every safety-net look: the writes are
            // measured once that is over.
            let at_least = STARTUP_AT_LEAST.max(SAFETY_NET_REACH.saturating_sub(grown.last_write.elapsed()));
            let limit = STARTUP_LIMIT.max(at_least);
            let settled = measure::settle(&format!("{label}: start"), at_least, limit, &watched, app).await;
            size_run.started = Some((ready, settled));
        }
        let from = grown.tenants.len();
        let meter = measure::Meter::start(&with_bench(site.watched()), backends, app).await;
        let (tenants, writes) =
            seed::through_api(&site.control_api, &site.admin_token, from, size, options.writers, endpoint.as_deref())
                .await?;
        let usage = Some(meter.stop(app));
        grown.last_write = Instant::now();
        grown.add(tenants);
        let phase = WritePhase { from, to: size, writers: options.writers, writes, usage };
        let all = phase.all();
        progress(format!("{label}: writes p50 {:.2} ms, p99 {:.2} ms", all.p50, all.p99));
        size_run.writes = Some(phase);
    }
    site.check_alive()?;
    let watched = site.watched();

    // Quiet again after the writes.
    let since_write = grown.last_write.elapsed();
    let at_least = options.settle.saturating_sub(since_write);
    size_run.after_writes = Some(
        measure::settle(&format!("{label}: after the writes"), at_least, at_least + SETTLE_EXTRA, &watched, app).await,
    );

    // Cold projects: never called before, chosen at random.
    let mut rng = rand::thread_rng();
    let mut never: Vec<usize> = (0..grown.tenants.len()).filter(|index| !grown.called[*index]).collect();
    never.shuffle(&mut rng);
    let cold: Vec<usize> = never.iter().copied().take(options.cold).collect();
    if cold.is_empty() {
        size_run.notes.push("no project left that was never called: no cold calls".to_owned());
    } else {
        let tenants: Vec<Tenant> = cold.iter().map(|index| grown.tenants[*index].clone()).collect();
        let outcome = measure::cold_calls(&site.dapr_http, &tenants).await;
        for index in &cold {
            grown.called[*index] = true;
        }
        size_run.cold = Some(outcome?);
    }

    // Warm projects: any others, chosen at random.
    let mut others: Vec<usize> = (0..grown.tenants.len()).filter(|index| !cold.contains(index)).collect();
    others.shuffle(&mut rng);
    others.truncate(options.warm);
    let warm: Vec<Tenant> = others.iter().map(|index| grown.tenants[*index].clone()).collect();
    for index in &others {
        grown.called[*index] = true;
    }
    size_run.warmed = Some(measure::warm(&site.dapr_http, &warm, options.connections).await?);
    size_run.rss_after_warm = measure::rss(&watched);
    site.check_alive()?;

    // GETs: the direct read of the same rows first (the baseline), then over the hot set and every warm project.
    let (kv_url, kv_table) = match &site.schema {
        None => (format!("sqlite://{}?mode=ro", site.kvstore_file().display()), "kvstore"),
        Some(schema) => (setup::in_schema(&options.services.postgres_url, schema), "outrigger_kvstore"),
    };
    let keys = Arc::new(measure::kvstore_keys(&kv_url, kv_table, options.hot).await?);
    let expected = Arc::new(serde_json::to_string(&measure::value())?);
    let hot: Arc<Vec<String>> = Arc::new(warm.iter().take(options.hot).map(|tenant| tenant.token.clone()).collect());
    let all_warm: Arc<Vec<String>> = Arc::new(warm.iter().map(|tenant| tenant.token.clone()).collect());
    let dapr_port = setup::port_of(&site.dapr_http)?;
    let processes = with_bench(site.watched());
    let url = format!("http://{}/v1.0/state/kvstore/{}", site.dapr_http, measure::KEY);
    let loads: Vec<(&'static str, String, String, Target)> = {
        let mut loads = vec![
            (
                GET_DIRECT,
                format!("{label}: direct kvstore read ({} keys)", keys.len()),
                format!("load generator -> {} {kv_table} (the product's GET statement)", site.form.database()),
                Target::Direct { statement: Arc::new(measure::get_statement(kv_table)), keys: Arc::clone(&keys) },
            ),
            (
                GET_HOT,
                format!("{label}: GET over {} warm projects", hot.len()),
                "load generator -> Dapr HTTP GET /v1.0/state/kvstore/k, a random project's token".to_owned(),
                Target::Http { url: url.clone(), tokens: hot, expected: Arc::clone(&expected) },
            ),
        ];
        if all_warm.len() > options.hot {
            loads.push((
                GET_WARM,
                format!("{label}: GET over {} warm projects", all_warm.len()),
                "load generator -> Dapr HTTP GET /v1.0/state/kvstore/k, a random project's token".to_owned(),
                Target::Http { url, tokens: all_warm, expected },
            ));
        }
        loads
    };
    for (key, name, path, target) in loads {
        let mut scenario = Scenario::new(key, Box::leak(name.into_boxed_str()), Box::leak(path.into_boxed_str()));
        let outcome = async {
            let mut connections = Vec::new();
            for _ in 0..options.connections {
                connections.push(match &target {
                    Target::Direct { .. } => Connection::direct(&kv_url).await?,
                    Target::Http { .. } => Connection::http()?,
                });
            }
            let port = if key == GET_DIRECT { 0 } else { dapr_port };
            latency::measure(&options.phases, &mut scenario, &mut connections, &target, port, &processes).await
        }
        .await;
        latency::keep_failure(&mut scenario, outcome);
        if key == GET_DIRECT {
            // Not a socket to count: a file, or PostgreSQL shared with the form's own sessions.
            scenario.notes.retain(|note| !note.contains("sockets open to port"));
        }
        size_run.gets.push(scenario);
        site.check_alive()?;
    }

    // Idle: nothing from the bench, after the traffic ended.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let at_least = options.settle.saturating_sub(grown.last_write.elapsed());
    if !at_least.is_zero() {
        progress(format!("{label}: waiting {:.0} s more since the last write", at_least.as_secs_f64()));
        tokio::time::sleep(at_least).await;
    }
    let since_write = grown.last_write.elapsed();
    if since_write < SAFETY_NET_REACH {
        size_run.notes.push(format!(
            "the idle window began {:.0} s after the last control-plane write: workers may still re-read the \
             projects written in the last minute (raise --settle to {} s for a clean idle figure)",
            since_write.as_secs_f64(),
            SAFETY_NET_REACH.as_secs()
        ));
    }
    progress(format!("{label}: idle window, {:.0} s with no traffic", options.idle.as_secs_f64()));
    let idle = measure::window(options.idle, &watched, backends, app).await;
    progress(format!(
        "{label}: idle {}",
        idle.processes
            .iter()
            .map(|process| format!("{} {:.4} cores", process.name, process.cores))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    size_run.idle = Some(idle);
    size_run.rss_end = measure::rss(&watched);
    site.check_alive()?;
    Ok(())
}

async fn run_all(options: &Options, schemas: &Mutex<Vec<String>>, app: &TenantApp, runs: &mut Vec<FormRun>) {
    for form in &options.forms {
        let mut run = FormRun { form: *form, baseline: None, sizes: Vec::new(), notes: Vec::new(), error: None };
        if let Err(err) = run_form(options, schemas, app, &mut run).await {
            progress(format!("{}: FAILED: {err:#}", form.name()));
            run.error = Some(format!("{err:#}"));
        }
        runs.push(run);
    }
}

async fn run(options: Options) -> ExitCode {
    if !cli::check_binary(&options.binary) {
        return ExitCode::FAILURE;
    }
    let app = match TenantApp::start().context("starting the tenants' app") {
        Ok(app) => app,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let schemas = Mutex::new(Vec::new());
    let mut runs = Vec::new();
    let interrupted = tokio::select! {
        () = run_all(&options, &schemas, &app, &mut runs) => false,
        _ = tokio::signal::ctrl_c() => {
            progress("interrupted: stopping the processes and cleaning up");
            true
        }
    };
    drop(app);
    let cleanup = forms::drop_schemas(&options.services, &schemas).await;

    let settings = options.settings();
    let mut out = report::header(&settings);
    for run in &runs {
        out.push_str(&table::form_table(&settings, run));
    }
    println!("{out}");
    cli::write_json(&options.target_dir, &report::to_json(&settings, &runs, &cleanup));
    let failed = runs.iter().any(|run| run.error.is_some() || run.sizes.iter().any(|size| size.error.is_some()));
    if interrupted || failed || runs.len() < options.forms.len() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    forms::block_on(run(options))
}
