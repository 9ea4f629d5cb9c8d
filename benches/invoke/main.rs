//! Service invocation benchmark: what a Dapr `POST /v1.0/invoke/echo/method/echo` through Outrigger adds to
//! the direct call of the same app, measured in one run for the baseline (the load generator calls the echo
//! app itself), the floor (`floor.rs`, the least an HTTP proxy in front of the app can do), the embedded default
//! (all-in-one) and the distributed form (gateway, with the control plane on PostgreSQL and NATS). The gateway
//! calls the app itself, so the figures are one proxy hop; daprd's are two sidecars.
//!
//! It runs the release binary (`cargo build --release` first, or set OUTRIGGER_BIN) and needs PostgreSQL at
//! 127.0.0.1:5432 and NATS at 127.0.0.1:4222 (`scripts/services`) for the distributed form.
//! `cargo bench --bench invoke -- --help` lists the options.

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;
mod echo;
mod floor;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Bytes;

use crate::common::cli;
use crate::common::instructions::{self, Call, Callgrind, Count, HttpCall};
use crate::common::latency::{self, keep_failure, stop_all, Phases, Scenario, Settings, Targets};
use crate::common::procs::{Process, Watched};
use crate::common::setup::{self, port_of, progress, random, server_env, ControlApi};
use crate::echo::{EchoApp, METHOD};
use crate::target::{Connection, Target};

const USAGE: &str = "\
usage: cargo bench --bench invoke -- [options]

  --quick              5 s per measured phase (smoke run); env BENCH_QUICK=1
  --duration SECONDS   open-loop phase per scenario (default 30); env BENCH_DURATION
  --rate N             open-loop requests per second (default 1000); env BENCH_RATE
  --connections N      keep-alive connections (default 16); env BENCH_CONNECTIONS
  --body-size BYTES    size of the POSTed (and echoed) body (default 1024); env BENCH_BODY_SIZE
  --probe SECONDS      closed-loop probe per scenario (default 5, quick 2); env BENCH_PROBE

  OUTRIGGER_BIN        the binary to run (default target/release/outrigger)
  BENCH_POSTGRES_URL   default postgres://postgres@127.0.0.1:5432/postgres
  BENCH_NATS_URL       default nats://127.0.0.1:4222

  --instructions N, --instructions-only N: instructions per invocation under callgrind (the all-in-one; the
                       distributed gateway), see below

Writes the results to target/bench/invoke.json as well.

";

/// Issue 5's targets; it sets none for p90 or memory.
const TARGETS: Targets = Targets { added_ms: [Some(0.5), None, Some(1.5)], rss_mb: None };

const PROJECT: &str = "bench";
/// The App ID whose token the load generator calls with.
const CALLER: &str = "caller";
/// The App ID registered with the echo app's address.
const CALLEE: &str = "echo";

struct Options {
    phases: Phases,
    connections: usize,
    body_size: usize,
    quick: bool,
    binary: PathBuf,
    target_dir: PathBuf,
    postgres_url: String,
    nats_url: String,
    /// Requests per instruction count, and whether only the counts run.
    instructions: Option<(usize, bool)>,
}

impl Options {
    /// Environment first, then the command line over it.
    fn parse() -> anyhow::Result<Options> {
        let args = cli::parse(
            &format!("{USAGE}{}", instructions::USAGE),
            &[
                ("duration", "BENCH_DURATION"),
                ("rate", "BENCH_RATE"),
                ("connections", "BENCH_CONNECTIONS"),
                ("body-size", "BENCH_BODY_SIZE"),
                ("probe", "BENCH_PROBE"),
                instructions::OPTIONS[0],
                instructions::OPTIONS[1],
            ],
        )?;
        let quick = args.quick;
        let duration: f64 = args.number("duration", if quick { 5.0 } else { 30.0 })?;
        let probe: f64 = args.number("probe", if quick { 2.0 } else { 5.0 })?;
        let rate: f64 = args.number("rate", 1000.0)?;
        let connections: usize = args.number("connections", 16)?;
        let body_size: usize = args.number("body-size", 1024)?;
        if !(duration > 0.0 && probe > 0.0 && rate > 0.0 && connections > 0 && body_size > 0) {
            bail!("duration, probe, rate, connections and body-size must all be greater than 0");
        }
        let instructions = instructions::requested(&args)?;
        let target_dir = cli::target_dir();
        let binary = cli::binary(&target_dir);
        Ok(Options {
            phases: Phases {
                warmup: Duration::from_secs(2),
                warmup_rate: 100.0_f64.min(rate),
                duration: Duration::from_secs_f64(duration),
                rate,
                probe: Duration::from_secs_f64(probe),
            },
            connections,
            body_size,
            quick,
            binary,
            target_dir,
            postgres_url: cli::env("BENCH_POSTGRES_URL")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
            nats_url: cli::env("BENCH_NATS_URL").unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned()),
            instructions,
        })
    }

    fn settings(&self) -> Settings {
        Settings {
            binary: self.binary.display().to_string(),
            phases: self.phases,
            connections: self.connections,
            size: self.body_size,
            quick: self.quick,
        }
    }
}

/// The bench's own process and, within it, the echo app's thread: the echo app runs in every scenario, so
/// its share tells how much of the bench's CPU is the callee's.
fn bench_process(echo: &EchoApp) -> Vec<Watched> {
    let process = Watched { name: "(generator + echo app)".to_owned(), ..Watched::generator() };
    let thread = echo.thread.clone().map(|pid| Watched { name: "(echo app thread)".to_owned(), pid, outrigger: false });
    [process].into_iter().chain(thread).collect()
}

/// Loads POSTs of `body` to `url` into `scenario`.
async fn measure_calls(
    options: &Options,
    scenario: &mut Scenario,
    url: String,
    token: Option<String>,
    body: Bytes,
    port: u16,
    watched: &[Watched],
) -> anyhow::Result<()> {
    let target = Target { url, token, body };
    let mut connections = (0..options.connections).map(|_| Connection::http()).collect::<anyhow::Result<Vec<_>>>()?;
    latency::measure(&options.phases, scenario, &mut connections, &target, port, watched).await
}

/// Scenario 1: the load generator calls the echo app directly.
async fn baseline(options: &Options, echo: &EchoApp, scenario: &mut Scenario) -> anyhow::Result<()> {
    let url = format!("http://{}/{METHOD}", echo.addr);
    let body = Bytes::from(random(options.body_size));
    measure_calls(options, scenario, url, None, body, echo.addr.port(), &bench_process(echo)).await
}

/// Scenario 2: the floor, a minimal HTTP proxy in front of the echo app (`floor.rs`).
async fn floor_proxy(options: &Options, echo: &EchoApp, scenario: &mut Scenario) -> anyhow::Result<()> {
    let (process, address) =
        common::floor::start(&echo.addr.to_string(), |name, binary, env| Process::start(name, binary, &[], env))?;
    let mut processes = vec![process];
    let url = format!("http://{address}/v1.0/invoke/{CALLEE}/method/{METHOD}");
    let body = Bytes::from(random(options.body_size));
    let watched: Vec<Watched> = [Watched::of(&processes[0])].into_iter().chain(bench_process(echo)).collect();
    measure_calls(options, scenario, url, None, body, port_of(&address)?, &watched).await?;
    stop_all(&mut processes, &mut [scenario]);
    Ok(())
}

/// Creates the project, the callee App ID with the echo app as its endpoint, and the caller App ID; answers
/// the caller's API token.
async fn provision(control_api: &str, admin_token: &str, echo: &EchoApp) -> anyhow::Result<String> {
    let api = ControlApi::new(control_api, admin_token)?;
    api.create_project(PROJECT).await?;
    let endpoint = format!("http://{}", echo.addr);
    api.create_app(PROJECT, serde_json::json!({"name": CALLEE, "appEndpoint": endpoint})).await?;
    api.create_app(PROJECT, serde_json::json!({"name": CALLER})).await
}

/// Invokes the echo app once through `dapr` until the body comes back; retried while the gateway learns of
/// the new App IDs.
async fn wait_invocable(url: &str, token: &str, body: &Bytes) -> anyhow::Result<()> {
    let client = setup::setup_client()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sent = client.post(url).header("dapr-api-token", token).body(body.clone()).send().await;
        let outcome = match sent {
            Ok(response) => {
                let status = response.status();
                let answer = response.bytes().await?;
                if status.is_success() && answer == body {
                    return Ok(());
                }
                format!("HTTP {status}: {}", String::from_utf8_lossy(&answer[..answer.len().min(200)]))
            }
            Err(err) => format!("{err}"),
        };
        if Instant::now() > deadline {
            bail!("invoking {url}: {outcome}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Loads `POST /v1.0/invoke/CALLEE/method/METHOD` on `dapr` with the caller's `api_token` into `scenario`.
async fn measure_invoke(
    options: &Options,
    scenario: &mut Scenario,
    dapr: &str,
    api_token: &str,
    watched: &[Watched],
) -> anyhow::Result<()> {
    let url = format!("http://{dapr}/v1.0/invoke/{CALLEE}/method/{METHOD}");
    let body = Bytes::from(random(options.body_size));
    wait_invocable(&url, api_token, &body).await?;
    measure_calls(options, scenario, url, Some(api_token.to_owned()), body, port_of(dapr)?, watched).await
}

/// Scenario 3: the all-in-one process.
async fn embedded(options: &Options, echo: &EchoApp, scenario: &mut Scenario) -> anyhow::Result<()> {
    // Declared first, so it is removed after the process has stopped.
    let data_dir = tempfile::tempdir()?;
    let admin_token = random(32);
    progress("embedded: starting outrigger (all-in-one)");
    let env = server_env(data_dir.path(), &admin_token);
    let (server, ready) = Process::start("outrigger (all-in-one)", &options.binary, &[], &env)?;
    let mut processes = vec![server];
    let control_api = ready.control_api.context("the ready line has no control_api")?;
    let dapr = ready.dapr_http.context("the ready line has no dapr_http")?;
    let api_token = provision(&control_api, &admin_token, echo).await?;
    let watched: Vec<Watched> = [Watched::of(&processes[0])].into_iter().chain(bench_process(echo)).collect();
    measure_invoke(options, scenario, &dapr, &api_token, &watched).await?;
    if !processes[0].alive() {
        bail!("the all-in-one process died: {}", processes[0].output());
    }
    stop_all(&mut processes, &mut [scenario]);
    Ok(())
}

/// Scenario 4: `outrigger worker`, `gateway` and `control-api` on PostgreSQL and NATS. The worker serves no
/// part of an invocation; it runs because the distributed form always has one.
async fn distributed(
    options: &Options,
    schemas: &Mutex<Vec<String>>,
    echo: &EchoApp,
    scenario: &mut Scenario,
) -> anyhow::Result<()> {
    let data_dir = tempfile::tempdir()?;
    let admin_token = random(32);
    let schema = format!("bench_{}", random(12).to_lowercase());
    if let Ok(mut schemas) = schemas.lock() {
        schemas.push(schema.clone());
    }
    setup::postgres(&options.postgres_url, &format!("CREATE SCHEMA {schema}")).await?;
    let mut env = server_env(data_dir.path(), &admin_token);
    env.push(("OUTRIGGER_DATABASE_URL", setup::in_schema(&options.postgres_url, &schema)));
    env.push(("OUTRIGGER_NATS_URL", options.nats_url.clone()));
    env.push(("OUTRIGGER_BUS_SUBJECT_PREFIX", format!("bench{}", random(12))));

    progress(format!("distributed: outrigger migrate (schema {schema})"));
    let (mut processes, addresses) = setup::start_distributed(&options.binary, &env)?;
    let dapr = addresses[1].dapr_http.clone().context("the gateway's ready line has no dapr_http")?;
    let control_api = addresses[2].control_api.clone().context("the control API's ready line has no control_api")?;
    let api_token = provision(&control_api, &admin_token, echo).await?;
    let watched: Vec<Watched> = processes.iter().map(Watched::of).chain(bench_process(echo)).collect();
    measure_invoke(options, scenario, &dapr, &api_token, &watched).await?;
    for process in &mut processes {
        if !process.alive() {
            bail!("{} died: {}", process.name, process.output());
        }
    }
    // Gateway, control API, then worker, as in the other benches.
    processes.rotate_left(1);
    stop_all(&mut processes, &mut [scenario]);
    Ok(())
}

/// An invocation of the echo app through `dapr` (Outrigger or the floor) with the caller's token.
async fn invoke_call(options: &Options, dapr: &str, api_token: &str) -> anyhow::Result<Call> {
    let url = format!("http://{dapr}/v1.0/invoke/{CALLEE}/method/{METHOD}");
    let body = Bytes::from(random(options.body_size));
    wait_invocable(&url, api_token, &body).await?;
    Ok(Call::Http(HttpCall {
        method: reqwest::Method::POST,
        url,
        token: api_token.to_owned(),
        body: Some(body.to_vec()),
        content_type: None,
    }))
}

/// Instructions per invocation: the all-in-one, the distributed gateway, then the floor, each under callgrind.
async fn count_instructions(
    options: &Options,
    schemas: &Mutex<Vec<String>>,
    echo: &EchoApp,
    callgrind: &Callgrind,
) -> anyhow::Result<Vec<(String, Vec<Count>)>> {
    let mut measured = Vec::new();
    {
        let data_dir = tempfile::tempdir()?;
        let admin_token = random(32);
        progress("instructions: starting outrigger (all-in-one) under callgrind");
        let env = server_env(data_dir.path(), &admin_token);
        let (mut server, ready) = callgrind.start("all-in-one", &options.binary, &[], &env)?;
        let dapr = ready.dapr_http.context("the ready line has no dapr_http")?;
        let control_api = ready.control_api.context("the ready line has no control_api")?;
        let api_token = provision(&control_api, &admin_token, echo).await?;
        let call = invoke_call(options, &dapr, &api_token).await?;
        let label = "embedded: invoke";
        measured.push((label.to_owned(), callgrind.measure(label, &[&server], &call).await?));
        server.stop();
    }
    let data_dir = tempfile::tempdir()?;
    let admin_token = random(32);
    let schema = format!("bench_{}", random(12).to_lowercase());
    if let Ok(mut schemas) = schemas.lock() {
        schemas.push(schema.clone());
    }
    setup::postgres(&options.postgres_url, &format!("CREATE SCHEMA {schema}")).await?;
    let mut env = server_env(data_dir.path(), &admin_token);
    env.push(("OUTRIGGER_DATABASE_URL", setup::in_schema(&options.postgres_url, &schema)));
    env.push(("OUTRIGGER_NATS_URL", options.nats_url.clone()));
    env.push(("OUTRIGGER_BUS_SUBJECT_PREFIX", format!("bench{}", random(12))));
    let start = |name: &str, args: &[&str], env: &[(&str, String)]| callgrind.start(name, &options.binary, args, env);
    let (mut processes, addresses) = setup::start_distributed_with(&options.binary, &env, start)?;
    let dapr = addresses[1].dapr_http.clone().context("the gateway's ready line has no dapr_http")?;
    let control_api = addresses[2].control_api.clone().context("the control API's ready line has no control_api")?;
    let api_token = provision(&control_api, &admin_token, echo).await?;
    let call = invoke_call(options, &dapr, &api_token).await?;
    let label = "distributed: invoke";
    measured.push((label.to_owned(), callgrind.measure(label, &[&processes[1]], &call).await?));
    processes.rotate_left(1);
    setup::stop_all(&mut processes);
    let (mut floor, address) =
        common::floor::start(&echo.addr.to_string(), |name, binary, env| callgrind.start(name, binary, &[], env))?;
    let call = invoke_call(options, &address, "").await?;
    let label = "floor: minimal HTTP proxy";
    measured.push((label.to_owned(), callgrind.measure(label, &[&floor], &call).await?));
    floor.stop();
    Ok(measured)
}

/// Counts instructions, drops the schemas made, prints the counts and writes them (into `timed`'s JSON when
/// the timed part ran).
async fn run_instructions(
    options: &Options,
    echo: &EchoApp,
    requests: usize,
    timed: Option<serde_json::Value>,
) -> ExitCode {
    let schemas = Mutex::new(Vec::new());
    let counted = match Callgrind::new(&options.target_dir, "invoke", requests) {
        Ok(callgrind) => count_instructions(options, &schemas, echo, &callgrind).await,
        Err(err) => Err(err),
    };
    clean_up(options, schemas.into_inner().unwrap_or_default()).await;
    instructions::finish(&options.target_dir, requests, counted, timed)
}

/// Drops the schemas the bench made; answers what it did.
async fn clean_up(options: &Options, schemas: Vec<String>) -> Vec<String> {
    let mut done = Vec::new();
    for schema in schemas {
        done.push(setup::drop_schema(&options.postgres_url, &schema).await);
    }
    for line in &done {
        progress(format!("cleanup: {line}"));
    }
    done
}

async fn run_all(options: &Options, schemas: &Mutex<Vec<String>>, echo: &EchoApp, scenarios: &mut [Scenario; 4]) {
    let [base, floor_scenario, embedded_scenario, distributed_scenario] = scenarios;
    let outcome = baseline(options, echo, base).await;
    keep_failure(base, outcome);
    let outcome = floor_proxy(options, echo, floor_scenario).await;
    keep_failure(floor_scenario, outcome);
    let outcome = embedded(options, echo, embedded_scenario).await;
    keep_failure(embedded_scenario, outcome);
    let outcome = distributed(options, schemas, echo, distributed_scenario).await;
    keep_failure(distributed_scenario, outcome);
}

async fn run(options: Options) -> ExitCode {
    if !cli::check_binary(&options.binary) {
        return ExitCode::FAILURE;
    }
    let echo = match EchoApp::start() {
        Ok(echo) => echo,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Some((requests, true)) = options.instructions {
        return run_instructions(&options, &echo, requests, None).await;
    }
    let schemas = Mutex::new(Vec::new());
    let mut scenarios = [
        Scenario::new(latency::BASELINE, "baseline: direct call", "load generator -> echo app"),
        Scenario::new(
            "floor",
            "floor: minimal HTTP proxy",
            "HTTP -> axum handler -> hyper client POST to the echo app (no token, tenant or telemetry)",
        ),
        Scenario::new("embedded", "embedded: invoke", "HTTP -> all-in-one gateway -> echo app"),
        Scenario::new(
            "distributed",
            "distributed: invoke",
            "HTTP -> gateway -> echo app (directory from PostgreSQL, changes over NATS)",
        ),
    ];
    let interrupted = tokio::select! {
        () = run_all(&options, &schemas, &echo, &mut scenarios) => false,
        _ = tokio::signal::ctrl_c() => {
            progress("interrupted: stopping the processes and cleaning up");
            true
        }
    };
    if interrupted {
        latency::interrupted(&mut scenarios);
    }
    let cleanup = clean_up(&options, schemas.into_inner().unwrap_or_default()).await;

    let settings = options.settings();
    let what = format!("service invocation, POST of a {} B body echoed back", options.body_size);
    println!("{}", latency::table(&what, &settings, &TARGETS, &scenarios));
    let json = latency::to_json("body_bytes", &settings, &TARGETS, &scenarios, &cleanup);
    let failed = interrupted || scenarios.iter().any(|scenario| scenario.error.is_some());
    match options.instructions {
        Some((requests, _)) if !interrupted => {
            let counted = run_instructions(&options, &echo, requests, Some(json)).await;
            if failed {
                ExitCode::FAILURE
            } else {
                counted
            }
        }
        _ => {
            cli::write_json(&options.target_dir, &json);
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

/// The allocator Outrigger's binary has, for the floor this binary serves when asked (`common/floor.rs`); the load
/// generator and the echo app get it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    common::floor::serve_if_asked(floor::router);
    let options = match Options::parse() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    // One scheduler thread plus the dispatcher thread (and the echo app's): the machine running this is
    // small, and the processes under test need the cores more.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: building the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(options))
}
