//! The Python SDK runs: `benches/workflow/python_driver.py` with the interpreter of the venv that
//! `scripts/sdk-tests` creates (`tests/sdk/.venv`, `dapr==1.19.0`), one process per scenario. Its stdout
//! says when each run's window starts and ends, so that the CPU figures cover the same span as its
//! throughput, and carries each run's result.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::setup::progress;
use crate::report::{Driver, Load, RunResult, Scenario};
use crate::usage::{self, Group, Postgres, Usage};

/// The venv's interpreter.
pub fn interpreter() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/.venv/bin/python")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/workflow/python_driver.py")
}

/// How to make the venv, for the messages that say it is missing.
pub const HOW_TO_CREATE: &str = "create it with `scripts/sdk-tests` (or `python3 -m venv tests/sdk/.venv && \
    tests/sdk/.venv/bin/pip install -r tests/sdk/python/requirements.txt`)";

/// Whether the venv's interpreter can import the SDK's workflow extension; why not otherwise.
pub async fn check() -> Result<(), String> {
    let python = interpreter();
    if !python.is_file() {
        return Err(format!("{} does not exist", python.display()));
    }
    let output = tokio::process::Command::new(&python)
        .args(["-c", "import dapr.ext.workflow"])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|err| format!("running {}: {err}", python.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "{} cannot import dapr.ext.workflow: {}",
            python.display(),
            stderr.lines().last().unwrap_or_default()
        ));
    }
    Ok(())
}

/// What a Python run needs besides the scenario.
pub struct Runs<'a> {
    pub grpc: &'a str,
    pub token: &'a str,
    pub warmup: Duration,
    pub window: Duration,
    pub runs: usize,
    pub burst_timeout: Duration,
    /// Processes measured besides the driver itself.
    pub groups: &'a [Group],
    pub postgres: Option<&'a Postgres>,
    pub form: crate::common::forms::Form,
}

fn number(value: &Value, field: &str) -> f64 {
    value.get(field).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// Runs `scenario` `context.runs` times in one driver process; a result per run.
/// The results, and the instances that did not complete in time.
pub async fn run(
    context: &Runs<'_>,
    scenario: &Scenario,
    prefix: &str,
) -> anyhow::Result<(Vec<RunResult>, Vec<String>)> {
    let (load, count) = match scenario.load {
        Load::InFlight(count) => ("in_flight", count),
        Load::Burst(count) => ("burst", count),
    };
    let shape = match scenario.shape {
        crate::replay::Shape::Chain(_) => "chain",
        crate::replay::Shape::FanOut(_) => "fan_out",
    };
    let mut child = tokio::process::Command::new(interpreter())
        .arg(script())
        .args(["--endpoint", &format!("http://{}", context.grpc), "--token", context.token])
        .args(["--shape", shape, "--activities", &scenario.shape.activities().to_string()])
        .args(["--load", load, "--count", &count.to_string(), "--runs", &context.runs.to_string()])
        .args(["--warmup", &context.warmup.as_secs_f64().to_string()])
        .args(["--window", &context.window.as_secs_f64().to_string()])
        .args(["--timeout", &context.burst_timeout.as_secs_f64().to_string(), "--prefix", prefix])
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", interpreter().display()))?;
    let pid = child.id().context("the driver exited at once")?;
    let mut groups = context.groups.to_vec();
    groups.push(Group { name: "(python app)".to_owned(), pids: vec![pid], outrigger: false });
    let mut lines = BufReader::new(child.stdout.take().context("stdout is piped")?).lines();
    // Each run: its warm-up and window (or its burst), then the drain; and starting the runtime.
    let per_run = match scenario.load {
        Load::InFlight(_) => context.warmup + context.window + Duration::from_secs(90),
        Load::Burst(_) => context.burst_timeout + Duration::from_secs(30),
    };
    let limit = per_run * context.runs as u32 + Duration::from_secs(60);
    let mut results = Vec::new();
    let mut unfinished = Vec::new();
    let mut window_start = None;
    let mut usage = None;
    let reading = async {
        while let Some(line) = lines.next_line().await? {
            let Ok(message) = serde_json::from_str::<Value>(&line) else {
                progress(format!("python: {line}"));
                continue;
            };
            match message.get("event").and_then(Value::as_str) {
                Some("window_start") => window_start = Some(usage::mark(&groups, context.postgres).await),
                Some("window_end") => {
                    let after = usage::mark(&groups, context.postgres).await;
                    usage = window_start.take().map(|before| Usage::between(&groups, &before, &after));
                }
                Some("result") => {
                    let run = message.get("run").and_then(Value::as_u64).unwrap_or(0) as usize;
                    let count = |field: &str| message.get(field).and_then(Value::as_u64).unwrap_or(0);
                    let notes: Vec<String> = message
                        .get("notes")
                        .and_then(Value::as_array)
                        .map(|notes| notes.iter().filter_map(|note| note.as_str().map(str::to_owned)).collect())
                        .unwrap_or_default();
                    let ids = message.get("unfinished").and_then(Value::as_array).into_iter().flatten();
                    unfinished.extend(ids.filter_map(|id| id.as_str().map(str::to_owned)));
                    let wall = message.get("wall_s").and_then(Value::as_f64);
                    results.push(RunResult {
                        scenario: scenario.clone(),
                        form: context.form,
                        driver: Driver::Python,
                        run,
                        instances_before: 0,
                        started: count("started"),
                        completed: count("completed"),
                        counted: count("counted"),
                        errors: count("errors"),
                        first_error: message.get("first_error").and_then(Value::as_str).map(str::to_owned),
                        rate: number(&message, "rate"),
                        p50_ms: number(&message, "p50_ms"),
                        p99_ms: number(&message, "p99_ms"),
                        max_ms: number(&message, "max_ms"),
                        wall_s: wall,
                        all_started_s: message.get("all_started_s").and_then(Value::as_f64),
                        start_p50_ms: number(&message, "start_p50_ms"),
                        start_p99_ms: number(&message, "start_p99_ms"),
                        worker: None,
                        usage: usage.take(),
                        notes,
                    });
                }
                _ => {}
            }
        }
        anyhow::Ok(())
    };
    match tokio::time::timeout(limit, reading).await {
        Ok(read) => read?,
        Err(_) => {
            let _ = child.kill().await;
            bail!("the Python driver took longer than {limit:?}; stopped it");
        }
    }
    let status = child.wait().await?;
    if !status.success() {
        bail!(
            "the Python driver exited with {status} after {} of {} runs (its output is above)",
            results.len(),
            context.runs
        );
    }
    Ok((results, unfinished))
}
