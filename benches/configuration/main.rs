//! Configuration benchmark: how long a change takes to reach a subscribed app (an HTTP subscription, the change
//! POSTed to `/configuration/{store}/{key}`), next to how long Redis takes to tell a direct subscriber of its
//! keyspace notifications, measured in one run. Scenarios: the direct baseline (`SET`, then the notification on a
//! Redis connection of the bench), a `configuration.redis` component on the same Redis (`SET`, then the app's
//! POST), and the managed `configstore` (the control API's `PUT`, then the app's POST); on the embedded default
//! and on the distributed form. Each update waits for the previous one to arrive.
//!
//! It runs the release binary (`cargo build --release` first, or set OUTRIGGER_BIN) and needs Redis, and
//! PostgreSQL and NATS for the distributed form (`scripts/services`). `cargo bench --bench configuration --
//! --help` lists the options.

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::common::cli;
use crate::common::forms::{self, parse_forms, Form, Running, Services};
use crate::common::setup::{progress, random, ControlApi};

const USAGE: &str = "\
usage: cargo bench --bench configuration -- [options]

  --quick              100 updates per scenario; env BENCH_QUICK=1
  --updates N          updates per scenario (default 500); env BENCH_UPDATES
  --forms LIST         embedded, distributed or both (default both); env BENCH_FORMS

  OUTRIGGER_BIN        the binary to run (default target/release/outrigger)
  BENCH_REDIS_URL      default redis://127.0.0.1:6379
  BENCH_POSTGRES_URL   default postgres://postgres@127.0.0.1:5432/postgres
  BENCH_NATS_URL       default nats://127.0.0.1:4222

Writes the results to target/bench/configuration.json as well.

";

/// Updates made before the measured ones (the first also shows the subscription is in place).
const WARMUP: usize = 20;

/// How long one update may take to arrive before the run fails.
const ARRIVES_WITHIN: Duration = Duration::from_secs(10);

/// The values the app was sent, in order of arrival.
type Received = mpsc::UnboundedSender<String>;

/// An app that passes on the value of each configuration update it is POSTed; its base URL.
async fn receiving_app(received: Received) -> anyhow::Result<String> {
    let app = Router::new()
        .route(
            "/configuration/{store}/{key}",
            post(|State(received): State<Received>, Json(update): Json<Value>| async move {
                let values = update["items"].as_object().into_iter().flat_map(|items| items.values());
                for value in values.filter_map(|item| item["value"].as_str()) {
                    let _ = received.send(value.to_owned());
                }
            }),
        )
        .with_state(received);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// p50 and p99 of `latencies` (microseconds), sorted in place.
fn percentiles(latencies: &mut [f64]) -> Value {
    latencies.sort_by(f64::total_cmp);
    let at = |quantile: f64| latencies[((latencies.len() as f64 - 1.0) * quantile).round() as usize];
    json!({"p50_us": at(0.5), "p99_us": at(0.99)})
}

/// Makes `updates` changes with `change(value)` and times each until `arrived` yields that value.
async fn timed<F, Fut>(
    updates: usize,
    mut change: F,
    arrived: &mut (dyn futures_util::Stream<Item = String> + Unpin + Send),
) -> anyhow::Result<Value>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut latencies = Vec::with_capacity(updates);
    for index in 0..WARMUP + updates {
        let value = format!("v{index}-{}", random(6));
        let started = Instant::now();
        change(value.clone()).await?;
        loop {
            let next = tokio::time::timeout(ARRIVES_WITHIN, arrived.next()).await;
            match next.with_context(|| format!("update {index} did not arrive"))? {
                Some(seen) if seen == value => break,
                Some(_) => {}
                None => bail!("the subscription ended"),
            }
        }
        if index >= WARMUP {
            latencies.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(percentiles(&mut latencies))
}

/// The baseline: `SET` on Redis, then its keyspace notification and a `GET` of the value (the notification names
/// the key, not its value) on connections of the bench.
async fn direct_redis(redis: &redis::Client, updates: usize) -> anyhow::Result<Value> {
    let key = format!("bench-config-{}", random(12));
    let mut notifications = redis.get_async_pubsub().await.context("subscribing on Redis")?;
    notifications.subscribe(format!("__keyspace@0__:{key}")).await?;
    let reader = redis.get_multiplexed_async_connection().await?;
    let watched = key.clone();
    let mut arrived = notifications
        .into_on_message()
        .then(move |_| {
            let (mut reader, key) = (reader.clone(), watched.clone());
            async move { redis::cmd("GET").arg(&key).query_async::<String>(&mut reader).await.unwrap_or_default() }
        })
        .boxed();
    let connection = redis.get_multiplexed_async_connection().await?;
    let set = |value: String| {
        let (mut connection, key) = (connection.clone(), key.clone());
        async move {
            redis::cmd("SET").arg(&key).arg(value).query_async::<()>(&mut connection).await?;
            Ok(())
        }
    };
    timed(updates, set, &mut arrived).await
}

/// Subscribes the App ID behind `token` to `key` of `store` over HTTP; updates then reach the bench's app.
async fn subscribe(client: &reqwest::Client, dapr: &str, token: &str, store: &str, key: &str) -> anyhow::Result<()> {
    let answer = client
        .get(format!("http://{dapr}/v1.0/configuration/{store}/subscribe?key={key}"))
        .header("dapr-api-token", token)
        .send()
        .await?;
    if !answer.status().is_success() {
        bail!("subscribing to {store}: {} {}", answer.status(), answer.text().await.unwrap_or_default());
    }
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let args = cli::parse(USAGE, &[("updates", "BENCH_UPDATES"), ("forms", "BENCH_FORMS")])?;
    let updates: usize = args.number("updates", if args.quick { 100 } else { 500 })?;
    let forms: Vec<Form> = parse_forms(args.value("forms"))?;
    let redis_url = cli::env("BENCH_REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let redis_host = redis_url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let target_dir = cli::target_dir();
    let binary = cli::binary(&target_dir);
    if !cli::check_binary(&binary) {
        bail!("no binary to run at {}", binary.display());
    }
    let redis = redis::Client::open(redis_url.as_str())?;
    let mut connection = redis.get_multiplexed_async_connection().await.context("connecting to Redis")?;
    // daprd's Redis configuration store hears changes through keyspace notifications, as does the baseline.
    redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg("KA").query_async::<()>(&mut connection).await?;
    let services = Services::from_env();
    let schemas = Mutex::new(Vec::new());
    let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
    let mut rows = Vec::new();
    for form in forms {
        let mut running = Running::start(form, &binary, &services, &schemas, &[]).await?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut arrived = stream_of(receiver);
        let app = receiving_app(sender).await?;
        let control = ControlApi::new(&running.control_api, &running.admin_token)?;
        let project = format!("config{}", random(8).to_lowercase());
        control.create_project(&project).await?;
        let token = control.create_app(&project, json!({"name": "reader", "appEndpoint": app})).await?;
        let component = format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: appconfig\nspec:\n  type: configuration.redis\n  version: v1\n  metadata:\n  - name: redisHost\n    value: {redis_host}\n"
        );
        control.put_resource(&project, "components", "appconfig", component).await?;

        progress(format!("{}: direct Redis baseline, {updates} updates", form.name()));
        let baseline = direct_redis(&redis, updates).await?;

        progress(format!("{}: configuration.redis, {updates} updates", form.name()));
        let key = format!("bench-config-{}", random(12));
        redis::cmd("SET").arg(&key).arg("initial").query_async::<()>(&mut connection).await?;
        // The component loads a moment after it is written: subscribe once it answers.
        let deadline = Instant::now() + ARRIVES_WITHIN;
        while let Err(err) = subscribe(&client, &running.dapr_http, &token, "appconfig", &key).await {
            if Instant::now() > deadline {
                return Err(err);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let set = |value: String| {
            let (mut connection, key) = (connection.clone(), key.clone());
            async move {
                redis::cmd("SET").arg(&key).arg(value).query_async::<()>(&mut connection).await?;
                Ok(())
            }
        };
        let redis_store = timed(updates, set, &mut arrived).await?;

        progress(format!("{}: managed configstore, {updates} updates", form.name()));
        control.put_configuration_item(&project, "color", "initial").await?;
        subscribe(&client, &running.dapr_http, &token, "configstore", "color").await?;
        let put = |value: String| {
            let (control, project) = (&control, &project);
            async move { control.put_configuration_item(project, "color", &value).await }
        };
        let managed = timed(updates, put, &mut arrived).await?;

        let p50 = |summary: &Value| summary["p50_us"].as_f64().unwrap_or_default();
        let p99 = |summary: &Value| summary["p99_us"].as_f64().unwrap_or_default();
        for (scenario, summary) in [("configuration.redis", &redis_store), ("configstore", &managed)] {
            println!(
                "{:<12} {:<20} update to app p50 {:>8.0} µs p99 {:>8.0} µs ({:.1}x the direct keyspace notification)",
                form.name(),
                scenario,
                p50(summary),
                p99(summary),
                p50(summary) / p50(&baseline).max(1.0),
            );
        }
        println!(
            "{:<12} {:<20} SET to notification and GET p50 {:>8.0} µs p99 {:>8.0} µs",
            form.name(),
            "direct Redis",
            p50(&baseline),
            p99(&baseline),
        );
        rows.push(json!({"form": form.name(), "direct_redis": baseline, "configuration_redis": redis_store, "configstore": managed}));
        running.check_alive()?;
        running.stop();
    }
    forms::drop_schemas(&services, &schemas).await;
    cli::write_json(&target_dir, &json!({"bench": "configuration", "updates": updates, "results": rows}));
    Ok(())
}

/// The values an app received, as a stream.
fn stream_of(mut receiver: mpsc::UnboundedReceiver<String>) -> futures_util::stream::BoxStream<'static, String> {
    futures_util::stream::poll_fn(move |context| receiver.poll_recv(context)).boxed()
}

fn main() -> ExitCode {
    forms::main_of(run())
}
