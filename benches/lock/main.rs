//! Distributed lock benchmark: what taking and releasing a lock through Outrigger's Dapr HTTP API costs next to
//! doing the same directly on Redis (`SET key owner NX EX`, then daprd's unlock script), measured in one run.
//! Each scenario runs sequential acquire/release pairs over one keep-alive connection: the direct Redis
//! baseline, the managed `kvstore` as a lock store, and a `lock.redis` component on the same Redis; on the
//! embedded default and on the distributed form.
//!
//! It runs the release binary (`cargo build --release` first, or set OUTRIGGER_BIN) and needs Redis, and
//! PostgreSQL and NATS for the distributed form (`scripts/services`). `cargo bench --bench lock -- --help` lists
//! the options.

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::common::cli;
use crate::common::forms::{self, parse_forms, Form, Running, Services};
use crate::common::setup::{progress, random, ControlApi};

const USAGE: &str = "\
usage: cargo bench --bench lock -- [options]

  --quick              500 pairs per scenario; env BENCH_QUICK=1
  --pairs N            acquire/release pairs per scenario (default 2000); env BENCH_PAIRS
  --forms LIST         embedded, distributed or both (default both); env BENCH_FORMS

  OUTRIGGER_BIN        the binary to run (default target/release/outrigger)
  BENCH_REDIS_URL      default redis://127.0.0.1:6379
  BENCH_POSTGRES_URL   default postgres://postgres@127.0.0.1:5432/postgres
  BENCH_NATS_URL       default nats://127.0.0.1:4222

Writes the results to target/bench/lock.json as well.

";

/// daprd's unlock script (components-contrib `lock/redis`): delete only for the owner.
const UNLOCK_SCRIPT: &str = r#"local v = redis.call("get",KEYS[1]); if v==false then return -1 end; if v~=ARGV[1] then return -2 else return redis.call("del",KEYS[1]) end"#;

/// Pairs run before the measured ones.
const WARMUP: usize = 200;

/// Acquire and release times of one scenario, in microseconds.
#[derive(Default)]
struct Timings {
    acquire: Vec<f64>,
    release: Vec<f64>,
}

impl Timings {
    fn record(&mut self, acquire: Duration, release: Duration) {
        self.acquire.push(acquire.as_secs_f64() * 1e6);
        self.release.push(release.as_secs_f64() * 1e6);
    }

    fn summary(&mut self) -> Value {
        let percentiles = |values: &mut Vec<f64>| {
            values.sort_by(f64::total_cmp);
            let at = |quantile: f64| values[((values.len() as f64 - 1.0) * quantile).round() as usize];
            json!({"p50_us": at(0.5), "p99_us": at(0.99)})
        };
        json!({"acquire": percentiles(&mut self.acquire), "release": percentiles(&mut self.release)})
    }
}

/// The direct baseline: `SET NX EX` and the unlock script on Redis.
async fn direct_redis(url: &str, pairs: usize) -> anyhow::Result<Timings> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_multiplexed_async_connection().await.context("connecting to Redis")?;
    let unlock = redis::Script::new(UNLOCK_SCRIPT);
    let key = format!("bench-lock-{}", random(12));
    let mut timings = Timings::default();
    for index in 0..WARMUP + pairs {
        let started = Instant::now();
        let taken: Option<String> =
            redis::cmd("SET").arg(&key).arg("owner").arg("NX").arg("EX").arg(10).query_async(&mut connection).await?;
        let acquired = started.elapsed();
        let started = Instant::now();
        let released: i64 = unlock.key(&key).arg("owner").invoke_async(&mut connection).await?;
        let release = started.elapsed();
        if taken.is_none() || released != 1 {
            bail!("the direct lock was not taken and released");
        }
        if index >= WARMUP {
            timings.record(acquired, release);
        }
    }
    Ok(timings)
}

/// Acquire/release pairs on `store` through the Dapr HTTP API.
async fn through_outrigger(
    client: &reqwest::Client,
    dapr: &str,
    token: &str,
    store: &str,
    pairs: usize,
) -> anyhow::Result<Timings> {
    let resource = format!("bench-{}", random(12));
    let lock = json!({"resourceId": resource, "lockOwner": "owner", "expiryInSeconds": 10}).to_string();
    let unlock = json!({"resourceId": resource, "lockOwner": "owner"}).to_string();
    let mut timings = Timings::default();
    for index in 0..WARMUP + pairs {
        let started = Instant::now();
        let taken: Value = client
            .post(format!("http://{dapr}/v1.0-alpha1/lock/{store}"))
            .header("dapr-api-token", token)
            .body(lock.clone())
            .send()
            .await?
            .json()
            .await?;
        let acquired = started.elapsed();
        let started = Instant::now();
        let released: Value = client
            .post(format!("http://{dapr}/v1.0-alpha1/unlock/{store}"))
            .header("dapr-api-token", token)
            .body(unlock.clone())
            .send()
            .await?
            .json()
            .await?;
        let release = started.elapsed();
        if taken["success"] != true || released["status"] != 0 {
            bail!("{store}: the lock was not taken and released ({taken}, {released})");
        }
        if index >= WARMUP {
            timings.record(acquired, release);
        }
    }
    Ok(timings)
}

async fn run() -> anyhow::Result<()> {
    let args = cli::parse(USAGE, &[("pairs", "BENCH_PAIRS"), ("forms", "BENCH_FORMS")])?;
    let pairs: usize = args.number("pairs", if args.quick { 500 } else { 2000 })?;
    let forms: Vec<Form> = parse_forms(args.value("forms"))?;
    let redis_url = cli::env("BENCH_REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let redis_host = redis_url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let target_dir = cli::target_dir();
    let binary = cli::binary(&target_dir);
    if !cli::check_binary(&binary) {
        bail!("no binary to run at {}", binary.display());
    }
    let services = Services::from_env();
    let schemas = Mutex::new(Vec::new());
    let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
    let mut rows = Vec::new();
    for form in forms {
        let mut running = Running::start(form, &binary, &services, &schemas, &[]).await?;
        let control = ControlApi::new(&running.control_api, &running.admin_token)?;
        let project = format!("lock{}", random(8).to_lowercase());
        control.create_project(&project).await?;
        let token = control.create_app(&project, json!({"name": "locker"})).await?;
        let component = format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: redislock\nspec:\n  type: lock.redis\n  version: v1\n  metadata:\n  - name: redisHost\n    value: {redis_host}\n"
        );
        control.put_resource(&project, "components", "redislock", component).await?;
        progress(format!("{}: direct Redis baseline, {pairs} pairs", form.name()));
        let mut baseline = direct_redis(&redis_url, pairs).await?;
        let baseline = baseline.summary();
        for store in ["kvstore", "redislock"] {
            progress(format!("{}: {store}, {pairs} pairs", form.name()));
            let mut timings = through_outrigger(&client, &running.dapr_http, &token, store, pairs).await?;
            let summary = timings.summary();
            let ratio = |phase: &str| {
                summary[phase]["p50_us"].as_f64().unwrap_or_default()
                    / baseline[phase]["p50_us"].as_f64().unwrap_or(1.0)
            };
            println!(
                "{:<12} {:<10} acquire p50 {:>7.0} µs p99 {:>7.0} µs ({:.1}x direct SET NX); release p50 {:>7.0} µs p99 {:>7.0} µs ({:.1}x direct unlock script)",
                form.name(), store,
                summary["acquire"]["p50_us"].as_f64().unwrap_or_default(), summary["acquire"]["p99_us"].as_f64().unwrap_or_default(), ratio("acquire"),
                summary["release"]["p50_us"].as_f64().unwrap_or_default(), summary["release"]["p99_us"].as_f64().unwrap_or_default(), ratio("release"),
            );
            rows.push(
                json!({"form": form.name(), "store": store, "outrigger": summary, "direct_redis": baseline.clone()}),
            );
        }
        println!(
            "{:<12} direct     acquire p50 {:>7.0} µs p99 {:>7.0} µs; release p50 {:>7.0} µs p99 {:>7.0} µs",
            form.name(),
            baseline["acquire"]["p50_us"].as_f64().unwrap_or_default(),
            baseline["acquire"]["p99_us"].as_f64().unwrap_or_default(),
            baseline["release"]["p50_us"].as_f64().unwrap_or_default(),
            baseline["release"]["p99_us"].as_f64().unwrap_or_default(),
        );
        running.check_alive()?;
        running.stop();
    }
    forms::drop_schemas(&services, &schemas).await;
    cli::write_json(&target_dir, &json!({"bench": "lock", "pairs": pairs, "results": rows}));
    Ok(())
}

fn main() -> ExitCode {
    forms::main_of(run())
}
