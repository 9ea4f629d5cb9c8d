//! State GET benchmark: what a Dapr `GET /v1.0/state/<store>/<key>` through Outrigger adds to a direct
//! Redis GET, measured in one run for the baseline, the embedded default (managed `kvstore` and a
//! `state.redis` component), the embedded form again with the API log off and with all telemetry off (API log,
//! metrics, trace context; `state.redis`: what seeing every call costs, beside the same call seen) and the
//! distributed form (gateway, NATS, worker; `state.redis`); and the floor (`floor.rs`), the least an HTTP front for
//! the same Redis read can do, to tell what Outrigger adds from what any such hop adds on the machine.
//!
//! It runs the release binary (`cargo build --release` first, or set OUTRIGGER_BIN) and needs Redis at
//! 127.0.0.1:6379, PostgreSQL at 127.0.0.1:5432 and NATS at 127.0.0.1:4222 (`scripts/services`).
//! `cargo bench --bench state_get -- --help` lists the options.

mod ab;
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;
mod floor;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::common::ab::{API_LOG_OFF, TELEMETRY_OFF};
use crate::common::cli;
use crate::common::instructions::{self, Call, Callgrind, Count, HttpCall};
use crate::common::latency::{self, keep_failure, stop_all, Phases, Scenario, Settings, Targets};
use crate::common::procs::{Process, Watched};
use crate::common::setup::{self, port_of, progress, random, server_env, ControlApi};
use crate::target::{Connection, Target};

const USAGE: &str = "\
usage: cargo bench --bench state_get -- [options]

  --quick              5 s per measured phase (smoke run); env BENCH_QUICK=1
  --duration SECONDS   open-loop phase per scenario (default 30); env BENCH_DURATION
  --rate N             open-loop requests per second (default 1000); env BENCH_RATE
  --connections N      keep-alive connections (default 16); env BENCH_CONNECTIONS
  --value-size BYTES   size of the stored value (default 1024); env BENCH_VALUE_SIZE
  --probe SECONDS      closed-loop probe per scenario (default 5, quick 2); env BENCH_PROBE
  --telemetry-ab ROUNDS  only this: telemetry's CPU per GET, timed, two all-in-ones (telemetry on, all off)
                       probed in turn for ROUNDS rounds of --probe seconds each, order swapped every round;
                       env BENCH_TELEMETRY_AB (written to target/bench/state_get.json)
  --instructions N, --instructions-only N: instructions per GET under callgrind (embedded: kvstore and
                       redis-store, redis-store over gRPC too; distributed: gateway and worker), see below

  OUTRIGGER_BIN        the binary to run (default target/release/outrigger)
  BENCH_REDIS_ADDR     default 127.0.0.1:6379
  BENCH_POSTGRES_URL   default postgres://postgres@127.0.0.1:5432/postgres
  BENCH_NATS_URL       default nats://127.0.0.1:4222

Writes the results to target/bench/state_get.json as well.

";

const TARGETS: Targets = Targets { added_ms: [Some(0.5), Some(1.0), Some(2.0)], rss_mb: Some(50.0) };

/// The key every Outrigger scenario reads.
pub(crate) const KEY: &str = "bench-key";
const PROJECT: &str = "bench";
pub(crate) const APP_ID: &str = "reader";
/// How the `state.redis` component stores KEY (daprd's default `appid` key prefix).
pub(crate) const REDIS_STORE_KEY: &str = "reader||bench-key";

pub(crate) struct Options {
    phases: Phases,
    connections: usize,
    value_size: usize,
    quick: bool,
    binary: PathBuf,
    target_dir: PathBuf,
    redis_addr: String,
    postgres_url: String,
    nats_url: String,
    /// Requests per instruction count, and whether only the counts run.
    instructions: Option<(usize, bool)>,
    /// Rounds of the telemetry A/B probes, when only they run.
    telemetry_ab: Option<usize>,
}

impl Options {
    /// Environment first, then the command line over it.
    fn parse() -> anyhow::Result<Options> {
        let env = cli::env;
        let args = cli::parse(
            &format!("{USAGE}{}", instructions::USAGE),
            &[
                ("duration", "BENCH_DURATION"),
                ("rate", "BENCH_RATE"),
                ("connections", "BENCH_CONNECTIONS"),
                ("value-size", "BENCH_VALUE_SIZE"),
                ("probe", "BENCH_PROBE"),
                ("telemetry-ab", "BENCH_TELEMETRY_AB"),
                instructions::OPTIONS[0],
                instructions::OPTIONS[1],
            ],
        )?;
        let quick = args.quick;
        let duration: f64 = args.number("duration", if quick { 5.0 } else { 30.0 })?;
        let probe: f64 = args.number("probe", if quick { 2.0 } else { 5.0 })?;
        let rate: f64 = args.number("rate", 1000.0)?;
        let connections: usize = args.number("connections", 16)?;
        let value_size: usize = args.number("value-size", 1024)?;
        if !(duration > 0.0 && probe > 0.0 && rate > 0.0 && connections > 0 && value_size > 0) {
            bail!("duration, probe, rate, connections and value-size must all be greater than 0");
        }
        let instructions = instructions::requested(&args)?;
        let telemetry_ab = args.value("telemetry-ab").map(str::parse::<usize>).transpose()?;
        if telemetry_ab == Some(0) {
            bail!("--telemetry-ab takes the number of rounds, at least 1");
        }
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
            value_size,
            quick,
            binary,
            target_dir,
            redis_addr: env("BENCH_REDIS_ADDR").unwrap_or_else(|| "127.0.0.1:6379".to_owned()),
            postgres_url: env("BENCH_POSTGRES_URL")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
            nats_url: env("BENCH_NATS_URL").unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned()),
            instructions,
            telemetry_ab,
        })
    }

    fn settings(&self) -> Settings {
        Settings {
            binary: self.binary.display().to_string(),
            phases: self.phases,
            connections: self.connections,
            size: self.value_size,
            quick: self.quick,
        }
    }
}

/// What the bench created outside itself, removed at the end whatever happened.
#[derive(Default)]
struct Leftovers {
    redis_keys: Vec<String>,
    schemas: Vec<String>,
}

fn remember(leftovers: &Mutex<Leftovers>, change: impl FnOnce(&mut Leftovers)) {
    if let Ok(mut leftovers) = leftovers.lock() {
        change(&mut leftovers);
    }
}

pub(crate) fn http_connections(count: usize) -> anyhow::Result<Vec<Connection>> {
    (0..count).map(|_| Connection::http()).collect()
}

/// The baseline: a direct Redis GET from the same load generator.
async fn baseline(options: &Options, leftovers: &Mutex<Leftovers>, scenario: &mut Scenario) -> anyhow::Result<()> {
    let key = format!("bench:state_get:{}:value", random(12));
    let value = random(options.value_size);
    let client = redis::Client::open(format!("redis://{}/", options.redis_addr))?;
    let mut setup = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connecting to Redis at {} (scripts/services starts it)", options.redis_addr))?;
    remember(leftovers, |leftovers| leftovers.redis_keys.push(key.clone()));
    redis::cmd("SET").arg(&key).arg(&value).query_async::<()>(&mut setup).await?;
    drop(setup);
    let mut connections = Vec::new();
    for _ in 0..options.connections {
        connections.push(Connection::redis(&options.redis_addr).await?);
    }
    let target = Target::Redis { key, value_len: value.len() };
    let port = port_of(&options.redis_addr)?;
    latency::measure(&options.phases, scenario, &mut connections, &target, port, &[Watched::generator()]).await
}

/// The floor: a minimal HTTP front reading the same value from Redis (`floor.rs`).
async fn floor_front(options: &Options, leftovers: &Mutex<Leftovers>, scenario: &mut Scenario) -> anyhow::Result<()> {
    let value = random(options.value_size);
    remember(leftovers, |leftovers| leftovers.redis_keys.push(REDIS_STORE_KEY.to_owned()));
    floor::store_value(&options.redis_addr, &value).await?;
    let (process, address) =
        common::floor::start(&options.redis_addr, |name, binary, env| Process::start(name, binary, &[], env))?;
    let mut processes = vec![process];
    let target = Target::Http {
        url: format!("http://{address}/v1.0/state/floor/{KEY}"),
        token: String::new(),
        body_len: serde_json::to_string(&value)?.len(),
    };
    let mut connections = http_connections(options.connections)?;
    let watched = [Watched::of(&processes[0]), Watched::generator()];
    latency::measure(&options.phases, scenario, &mut connections, &target, port_of(&address)?, &watched).await?;
    stop_all(&mut processes, &mut [scenario]);
    Ok(())
}

/// Creates the project, the App ID (answering its API token) and the `state.redis` component.
pub(crate) async fn provision(control_api: &str, admin_token: &str, redis_addr: &str) -> anyhow::Result<String> {
    let api = ControlApi::new(control_api, admin_token)?;
    api.create_project(PROJECT).await?;
    let api_token = api.create_app(PROJECT, serde_json::json!({"name": APP_ID})).await?;
    let component = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: redis-store\nspec:\n  type: state.redis\n  \
         version: v1\n  metadata:\n  - name: redisHost\n    value: \"{redis_addr}\"\n"
    );
    api.put_resource(PROJECT, "components", "redis-store", component).await?;
    Ok(api_token)
}

/// Saves KEY = `value` in `store` and reads it back; retried while workers pick the component up.
pub(crate) async fn write_value(
    client: &reqwest::Client,
    dapr: &str,
    api_token: &str,
    store: &str,
    value: &str,
) -> anyhow::Result<()> {
    let body = serde_json::json!([{"key": KEY, "value": value}]);
    let expected = serde_json::to_string(value)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let saved = client
            .post(format!("http://{dapr}/v1.0/state/{store}"))
            .header("dapr-api-token", api_token)
            .json(&body)
            .send()
            .await;
        let outcome = match saved {
            Ok(response) if response.status().is_success() => {
                let read = client
                    .get(format!("http://{dapr}/v1.0/state/{store}/{KEY}"))
                    .header("dapr-api-token", api_token)
                    .send()
                    .await?;
                let status = read.status();
                let text = read.text().await?;
                if status.is_success() && text == expected {
                    return Ok(());
                }
                format!("read back HTTP {status} with {} bytes", text.len())
            }
            Ok(response) => format!("HTTP {}: {}", response.status(), response.text().await.unwrap_or_default()),
            Err(err) => format!("{err}"),
        };
        if Instant::now() > deadline {
            bail!("saving {KEY} in {store}: {outcome}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Loads `GET /v1.0/state/<store>/KEY` on `dapr` into `scenario`.
#[allow(clippy::too_many_arguments)]
async fn measure_store(
    options: &Options,
    scenario: &mut Scenario,
    client: &reqwest::Client,
    dapr: &str,
    api_token: &str,
    store: &str,
    value: &str,
    watched: &[Watched],
) -> anyhow::Result<()> {
    write_value(client, dapr, api_token, store, value).await?;
    let target = Target::Http {
        url: format!("http://{dapr}/v1.0/state/{store}/{KEY}"),
        token: api_token.to_owned(),
        body_len: serde_json::to_string(value)?.len(),
    };
    let mut connections = http_connections(options.connections)?;
    latency::measure(&options.phases, scenario, &mut connections, &target, port_of(dapr)?, watched).await
}

/// The setting that counts every tenant under the folded metric labels, as past the per-process limit of tenants
/// with series of their own: the row "tenant folded" is what most tenants of a busy installation cost.
const TENANTS_FOLDED: (&str, &str) = ("OUTRIGGER_METRICS_TENANT_LIMIT", "0");

/// Settings added to an all-in-one's environment.
type ExtraEnv<'a> = &'a [(&'static str, &'a str)];

/// The embedded scenarios: an all-in-one process (with `extra_env`), measured on each `(store, scenario)` in turn.
async fn embedded(
    options: &Options,
    leftovers: &Mutex<Leftovers>,
    extra_env: ExtraEnv<'_>,
    stores: &mut [(&str, &mut Scenario)],
) -> anyhow::Result<()> {
    // Declared first, so it is removed after the process has stopped.
    let data_dir = tempfile::tempdir()?;
    let admin_token = random(32);
    progress("embedded: starting outrigger (all-in-one)");
    let mut env = server_env(data_dir.path(), &admin_token);
    env.extend(extra_env.iter().map(|(name, value)| (*name, (*value).to_owned())));
    let (server, ready) = Process::start("outrigger (all-in-one)", &options.binary, &[], &env)?;
    let mut processes = vec![server];
    let control_api = ready.control_api.context("the ready line has no control_api")?;
    let dapr = ready.dapr_http.context("the ready line has no dapr_http")?;
    let client = setup::setup_client()?;
    let api_token = provision(&control_api, &admin_token, &options.redis_addr).await?;
    let value = random(options.value_size);
    let watched = [Watched::of(&processes[0]), Watched::generator()];
    remember(leftovers, |leftovers| leftovers.redis_keys.push(REDIS_STORE_KEY.to_owned()));
    for (store, scenario) in stores.iter_mut() {
        let outcome = measure_store(options, scenario, &client, &dapr, &api_token, store, &value, &watched).await;
        keep_failure(scenario, outcome);
    }
    if !processes[0].alive() {
        bail!("the all-in-one process died: {}", processes[0].output());
    }
    let mut scenarios: Vec<&mut Scenario> = stores.iter_mut().map(|(_, scenario)| &mut **scenario).collect();
    stop_all(&mut processes, &mut scenarios);
    Ok(())
}

/// The distributed scenario: `outrigger worker`, `gateway` and `control-api` on PostgreSQL and NATS.
async fn distributed(options: &Options, leftovers: &Mutex<Leftovers>, scenario: &mut Scenario) -> anyhow::Result<()> {
    let data_dir = tempfile::tempdir()?;
    let admin_token = random(32);
    let schema = format!("bench_{}", random(12).to_lowercase());
    remember(leftovers, |leftovers| leftovers.schemas.push(schema.clone()));
    setup::postgres(&options.postgres_url, &format!("CREATE SCHEMA {schema}")).await?;
    let database_url = setup::in_schema(&options.postgres_url, &schema);
    let mut env = server_env(data_dir.path(), &admin_token);
    env.push(("OUTRIGGER_DATABASE_URL", database_url));
    env.push(("OUTRIGGER_NATS_URL", options.nats_url.clone()));
    env.push(("OUTRIGGER_BUS_SUBJECT_PREFIX", format!("bench{}", random(12))));

    progress(format!("distributed: outrigger migrate (schema {schema})"));
    let (mut processes, addresses) = setup::start_distributed(&options.binary, &env)?;
    let dapr = addresses[1].dapr_http.clone().context("the gateway's ready line has no dapr_http")?;
    let control_api = addresses[2].control_api.clone().context("the control API's ready line has no control_api")?;
    let client = setup::setup_client()?;
    let api_token = provision(&control_api, &admin_token, &options.redis_addr).await?;
    let value = random(options.value_size);
    let watched: Vec<Watched> = processes.iter().map(Watched::of).chain([Watched::generator()]).collect();
    remember(leftovers, |leftovers| leftovers.redis_keys.push(REDIS_STORE_KEY.to_owned()));
    measure_store(options, scenario, &client, &dapr, &api_token, "redis-store", &value, &watched).await?;
    for process in &mut processes {
        if !process.alive() {
            bail!("{} died: {}", process.name, process.output());
        }
    }
    // Gateway, control API, then worker: no call is in flight when the worker goes.
    processes.rotate_left(1);
    stop_all(&mut processes, &mut [scenario]);
    Ok(())
}

/// A GET of KEY in `store` on `dapr`.
fn get_call(dapr: &str, api_token: &str, store: &str) -> Call {
    Call::Http(HttpCall {
        method: reqwest::Method::GET,
        url: format!("http://{dapr}/v1.0/state/{store}/{KEY}"),
        token: api_token.to_owned(),
        body: None,
        content_type: None,
    })
}

/// The same GET over the gRPC API on `dapr_grpc`, as the SDKs make it by default.
fn grpc_get_call(dapr_grpc: &str, api_token: &str, store: &str) -> Call {
    Call::GrpcGetState {
        endpoint: dapr_grpc.to_owned(),
        token: api_token.to_owned(),
        store: store.to_owned(),
        key: KEY.to_owned(),
    }
}

/// A measurement of GETs: its label, the store read, and whether over gRPC.
type Measured<'a> = (&'a str, &'a str, bool);

/// Instructions per GET: the all-in-one (kvstore, redis-store; redis-store over gRPC too), the all-in-one with
/// the API log off, with its tenant's metrics folded and with all telemetry off (redis-store; over gRPC too with
/// telemetry off), then the gateway and worker of the distributed form (redis-store), then the floor, each under
/// callgrind.
async fn count_instructions(
    options: &Options,
    leftovers: &Mutex<Leftovers>,
    callgrind: &Callgrind,
) -> anyhow::Result<Vec<(String, Vec<Count>)>> {
    let mut measured = Vec::new();
    let client = setup::setup_client()?;
    let value = random(options.value_size);
    let embedded_runs: [(ExtraEnv<'_>, &[Measured<'_>]); 4] = [
        (
            &[],
            &[
                ("embedded: kvstore", "kvstore", false),
                ("embedded: redis-store", "redis-store", false),
                ("embedded: redis-store, gRPC", "redis-store", true),
            ],
        ),
        (&[API_LOG_OFF], &[("embedded: redis-store, API log off", "redis-store", false)]),
        (&[TENANTS_FOLDED], &[("embedded: redis-store, tenant folded", "redis-store", false)]),
        (
            TELEMETRY_OFF,
            &[
                ("embedded: redis-store, telemetry off", "redis-store", false),
                ("embedded: redis-store, gRPC, telemetry off", "redis-store", true),
            ],
        ),
    ];
    for (extra_env, stores) in embedded_runs {
        let data_dir = tempfile::tempdir()?;
        let admin_token = random(32);
        progress("instructions: starting outrigger (all-in-one) under callgrind");
        let mut env = server_env(data_dir.path(), &admin_token);
        env.extend(extra_env.iter().map(|(name, value)| (*name, (*value).to_owned())));
        let (mut server, ready) = callgrind.start("all-in-one", &options.binary, &[], &env)?;
        let dapr = ready.dapr_http.context("the ready line has no dapr_http")?;
        let dapr_grpc = ready.dapr_grpc.context("the ready line has no dapr_grpc")?;
        let control_api = ready.control_api.context("the ready line has no control_api")?;
        let api_token = provision(&control_api, &admin_token, &options.redis_addr).await?;
        remember(leftovers, |leftovers| leftovers.redis_keys.push(REDIS_STORE_KEY.to_owned()));
        for &(label, store, grpc) in stores {
            write_value(&client, &dapr, &api_token, store, &value).await?;
            let call =
                if grpc { grpc_get_call(&dapr_grpc, &api_token, store) } else { get_call(&dapr, &api_token, store) };
            measured.push((label.to_owned(), callgrind.measure(label, &[&server], &call).await?));
        }
        server.stop();
    }
    let data_dir = tempfile::tempdir()?;
    let admin_token = random(32);
    let schema = format!("bench_{}", random(12).to_lowercase());
    remember(leftovers, |leftovers| leftovers.schemas.push(schema.clone()));
    setup::postgres(&options.postgres_url, &format!("CREATE SCHEMA {schema}")).await?;
    let mut env = server_env(data_dir.path(), &admin_token);
    env.push(("OUTRIGGER_DATABASE_URL", setup::in_schema(&options.postgres_url, &schema)));
    env.push(("OUTRIGGER_NATS_URL", options.nats_url.clone()));
    env.push(("OUTRIGGER_BUS_SUBJECT_PREFIX", format!("bench{}", random(12))));
    let start = |name: &str, args: &[&str], env: &[(&str, String)]| callgrind.start(name, &options.binary, args, env);
    let (mut processes, addresses) = setup::start_distributed_with(&options.binary, &env, start)?;
    let dapr = addresses[1].dapr_http.clone().context("the gateway's ready line has no dapr_http")?;
    let control_api = addresses[2].control_api.clone().context("the control API's ready line has no control_api")?;
    let api_token = provision(&control_api, &admin_token, &options.redis_addr).await?;
    write_value(&client, &dapr, &api_token, "redis-store", &value).await?;
    let label = "distributed: redis-store";
    let call = get_call(&dapr, &api_token, "redis-store");
    measured.push((label.to_owned(), callgrind.measure(label, &[&processes[1], &processes[0]], &call).await?));
    processes.rotate_left(1);
    setup::stop_all(&mut processes);
    floor::store_value(&options.redis_addr, &value).await?;
    let (mut floor, address) =
        common::floor::start(&options.redis_addr, |name, binary, env| callgrind.start(name, binary, &[], env))?;
    let label = "floor: minimal HTTP front";
    measured.push((label.to_owned(), callgrind.measure(label, &[&floor], &get_call(&address, "", "floor")).await?));
    floor.stop();
    Ok(measured)
}

/// Removes the Redis keys and schemas the bench made; answers what it did.
async fn clean_up(options: &Options, leftovers: Leftovers) -> Vec<String> {
    let mut done = Vec::new();
    let mut keys = leftovers.redis_keys;
    keys.dedup();
    if !keys.is_empty() {
        let outcome = async {
            let client = redis::Client::open(format!("redis://{}/", options.redis_addr))?;
            let mut connection = client.get_multiplexed_async_connection().await?;
            redis::cmd("DEL").arg(&keys).query_async::<u64>(&mut connection).await
        };
        done.push(match outcome.await {
            Ok(deleted) => format!("deleted {deleted} of Redis keys {keys:?}"),
            Err(err) => format!("could not delete Redis keys {keys:?}: {err}"),
        });
    }
    for schema in leftovers.schemas {
        done.push(setup::drop_schema(&options.postgres_url, &schema).await);
    }
    for line in &done {
        progress(format!("cleanup: {line}"));
    }
    done
}

async fn run_all(options: &Options, leftovers: &Mutex<Leftovers>, scenarios: &mut [Scenario; 7]) {
    let [base, floor, kvstore, redis_store, unlogged, unobserved, distributed_redis] = scenarios;
    if let Err(err) = baseline(options, leftovers, base).await {
        progress(format!("{}: FAILED: {err:#}", base.name));
        base.error = Some(format!("{err:#}"));
    }
    if let Err(err) = floor_front(options, leftovers, floor).await {
        progress(format!("{}: FAILED: {err:#}", floor.name));
        floor.error = Some(format!("{err:#}"));
    }
    let runs: [(ExtraEnv<'_>, Vec<(&str, &mut Scenario)>); 3] = [
        (&[], vec![("kvstore", kvstore), ("redis-store", redis_store)]),
        (&[API_LOG_OFF], vec![("redis-store", unlogged)]),
        (TELEMETRY_OFF, vec![("redis-store", unobserved)]),
    ];
    for (extra_env, mut stores) in runs {
        if let Err(err) = embedded(options, leftovers, extra_env, &mut stores).await {
            progress(format!("embedded: FAILED: {err:#}"));
            for (_, scenario) in stores {
                if scenario.error.is_none() && scenario.probe.is_none() {
                    scenario.error = Some(format!("{err:#}"));
                }
            }
        }
    }
    if let Err(err) = distributed(options, leftovers, distributed_redis).await {
        progress(format!("{}: FAILED: {err:#}", distributed_redis.name));
        distributed_redis.error = Some(format!("{err:#}"));
    }
}

async fn run(options: Options) -> ExitCode {
    if !cli::check_binary(&options.binary) {
        return ExitCode::FAILURE;
    }
    let leftovers = Mutex::new(Leftovers::default());
    if let Some((requests, true)) = options.instructions {
        return run_instructions(&options, &leftovers, requests, None).await;
    }
    if let Some(rounds) = options.telemetry_ab {
        remember(&leftovers, |leftovers| leftovers.redis_keys.push(REDIS_STORE_KEY.to_owned()));
        let measured = ab::run(&options, rounds, options.phases.probe).await;
        clean_up(&options, leftovers.into_inner().unwrap_or_default()).await;
        return common::ab::report(measured, &options.target_dir);
    }
    let mut scenarios = [
        Scenario::new("baseline", "baseline: Redis GET (direct)", "load generator -> Redis GET"),
        Scenario::new(
            "floor",
            "floor: minimal HTTP front",
            "HTTP -> axum handler -> Redis HGET of the same value (no token, tenant or telemetry)",
        ),
        Scenario::new(
            "embedded_kvstore",
            "embedded: kvstore (SQLite)",
            "HTTP -> all-in-one gateway -> in-process bus -> worker -> managed kvstore (SQLite)",
        ),
        Scenario::new(
            "embedded_redis",
            "embedded: redis-store",
            "HTTP -> all-in-one gateway -> in-process bus -> worker -> state.redis",
        ),
        Scenario::new(
            "embedded_redis_api_log_off",
            "embedded: redis-store, API log off",
            "the same, OUTRIGGER_API_LOG=false (metrics and trace context still on)",
        ),
        Scenario::new(
            "embedded_redis_telemetry_off",
            "embedded: redis-store, telemetry off",
            "the same, OUTRIGGER_API_LOG=false, OUTRIGGER_METRICS=false, OUTRIGGER_TRACE_CONTEXT=false",
        ),
        Scenario::new(
            "distributed_redis",
            "distributed: redis-store",
            "HTTP -> gateway -> NATS -> worker -> state.redis (control plane on PostgreSQL)",
        ),
    ];
    let interrupted = tokio::select! {
        () = run_all(&options, &leftovers, &mut scenarios) => false,
        _ = tokio::signal::ctrl_c() => {
            progress("interrupted: stopping the processes and cleaning up");
            true
        }
    };
    if interrupted {
        latency::interrupted(&mut scenarios);
    }
    let leftovers = leftovers.into_inner().unwrap_or_default();
    let cleanup = clean_up(&options, leftovers).await;

    let settings = options.settings();
    let what = format!("state GET of a {} B value", options.value_size);
    println!("{}", latency::table(&what, &settings, &TARGETS, &scenarios));
    let json = latency::to_json("value_bytes", &settings, &TARGETS, &scenarios, &cleanup);
    let failed = interrupted || scenarios.iter().any(|scenario| scenario.error.is_some());
    match options.instructions {
        Some((requests, _)) if !interrupted => {
            let counted = run_instructions(&options, &Mutex::new(Leftovers::default()), requests, Some(json)).await;
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

/// Counts instructions, cleans up, prints them and writes them (into `timed`'s JSON when the timed part ran).
async fn run_instructions(
    options: &Options,
    leftovers: &Mutex<Leftovers>,
    requests: usize,
    timed: Option<serde_json::Value>,
) -> ExitCode {
    let counted = match Callgrind::new(&options.target_dir, "state_get", requests) {
        Ok(callgrind) => count_instructions(options, leftovers, &callgrind).await,
        Err(err) => Err(err),
    };
    let leftovers = std::mem::take(&mut *leftovers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    clean_up(options, leftovers).await;
    instructions::finish(&options.target_dir, requests, counted, timed)
}

/// The allocator Outrigger's binary has, for the floor this binary serves when asked (`common/floor.rs`); the load
/// generator gets it too.
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
    // One scheduler thread plus the dispatcher thread: the machine running this is small, and the
    // processes under test need the cores more.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: building the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(options))
}
