//! Telemetry's CPU cost, timed: two all-in-one processes side by side, one with telemetry on and one with all of
//! it off, loaded in turn by closed-loop probes, the order swapped every round. Measured one after the other, a
//! few percent drown in what else the machine does from one minute to the next (two runs of the sequential rows
//! put the logged GET 17 % above the unlogged one, then below it); alternating short probes puts both processes
//! under the same conditions, and the ratio of each round's pair cancels what the conditions did to both.
//!
//! A probe's CPU is read once the API log has written the probe's calls: its writer gathers calls for a second
//! before it writes them, so a reading taken as the probe ends would leave the
//! last batch's write to the other process's probe, unmeasured. The wait is checked, after the reading, against
//! the process's `outrigger_api_log_written_total`.
//!
//! A process's CPU is the sum of its threads' run time from `/proc/<pid>/task/*/schedstat`, in nanoseconds,
//! not `/proc/<pid>/stat`'s 10 ms ticks (a 2 s probe takes ~0.7 s of the process's CPU: ticks would be 1.4 %
//! steps).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use crate::common::load;
use crate::common::procs::Process;
use crate::common::setup::{self, progress, random, server_env};
use crate::target::{Connection, Target};
use crate::{http_connections, provision, write_value, Options, KEY, TELEMETRY_OFF};

/// One of the two processes: its name, process and connections.
struct Side {
    name: &'static str,
    process: Process,
    connections: Vec<Connection>,
    target: Target,
    /// `GET /metrics` of the process and its admin token.
    metrics: (String, String),
    /// GETs sent to it so far, warm-up included.
    sent: u64,
    /// CPU microseconds per GET (all threads, SQLite's) and GETs per second, per round.
    cpu_us: Vec<f64>,
    sqlite_us: Vec<f64>,
    rates: Vec<f64>,
}

/// Run time of the threads of `pid` so far, in nanoseconds: all of them, and those of SQLite's connections
/// (`sqlx-sqlite-worker-*`), where the API log's writes and upkeep run.
fn cpu_ns(pid: u32) -> anyhow::Result<[u64; 2]> {
    let [mut total, mut sqlite] = [0, 0];
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let task = task?.path();
        // A thread that ends between the listing and the read took its time with it: it is not counted.
        let Ok(stat) = std::fs::read_to_string(task.join("schedstat")) else { continue };
        let ran: u64 = stat.split_whitespace().next().and_then(|ns| ns.parse().ok()).context("schedstat's format")?;
        total += ran;
        if std::fs::read_to_string(task.join("comm")).is_ok_and(|name| name.starts_with("sqlx-sqlite")) {
            sqlite += ran;
        }
    }
    Ok([total, sqlite])
}

/// Starts an all-in-one with `extra_env`, with the component and KEY's value, and its connections.
async fn start(
    options: &Options,
    name: &'static str,
    data_dir: &std::path::Path,
    extra_env: &[(&str, &str)],
    value: &str,
) -> anyhow::Result<Side> {
    let admin_token = random(32);
    let mut env = server_env(data_dir, &admin_token);
    env.extend(extra_env.iter().map(|(name, value)| (*name, (*value).to_owned())));
    let (process, ready) = Process::start(name, &options.binary, &[], &env)?;
    let dapr = ready.dapr_http.context("the ready line has no dapr_http")?;
    let control_api = ready.control_api.context("the ready line has no control_api")?;
    let api_token = provision(&control_api, &admin_token, &options.redis_addr).await?;
    write_value(&setup::setup_client()?, &dapr, &api_token, "redis-store", value).await?;
    let target = Target::Http {
        url: format!("http://{dapr}/v1.0/state/redis-store/{KEY}"),
        token: api_token,
        body_len: serde_json::to_string(value)?.len(),
    };
    let connections = http_connections(options.connections)?;
    let metrics = (format!("http://{control_api}/metrics"), admin_token);
    Ok(Side {
        name,
        process,
        connections,
        target,
        metrics,
        sent: 0,
        cpu_us: Vec::new(),
        sqlite_us: Vec::new(),
        rates: Vec::new(),
    })
}

/// How long a probe's last calls wait to be written: the API log's flush interval (1 s by default) and a margin.
const LOG_FLUSHED: Duration = Duration::from_millis(1500);

/// Calls the API log of `side` has written so far, when it keeps one (with metrics off, there is no `/metrics`).
async fn calls_written(side: &Side) -> anyhow::Result<Option<u64>> {
    let (url, admin_token) = &side.metrics;
    let response = setup::setup_client()?.get(url).bearer_auth(admin_token).send().await?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let text = response.error_for_status()?.text().await?;
    Ok(text
        .lines()
        .find_map(|line| line.strip_prefix("outrigger_api_log_written_total "))
        .and_then(|count| count.trim().parse().ok()))
}

/// One closed-loop probe of `side` for `probe`; its CPU per GET and rate kept when `kept`.
async fn probe(side: &mut Side, probe: Duration, kept: bool) -> anyhow::Result<()> {
    let before = cpu_ns(side.process.pid)?;
    let outcome = load::closed_loop(&mut side.connections, &side.target, probe).await?;
    let ended = Instant::now();
    tokio::time::sleep(LOG_FLUSHED).await;
    let after = cpu_ns(side.process.pid)?;
    side.sent += outcome.sent;
    if let Some(written) = calls_written(side).await? {
        if written < side.sent {
            bail!(
                "{}: the API log wrote {written} calls of the {} GETs sent, {:?} after the probe: raise LOG_FLUSHED",
                side.name,
                side.sent,
                ended.elapsed()
            );
        }
    }
    if outcome.errors > 0 {
        bail!(
            "{}: {} of {} GETs failed, first: {}",
            side.name,
            outcome.errors,
            outcome.sent,
            outcome.first_error.unwrap_or_default()
        );
    }
    if kept {
        let per_get = |ns: u64| ns as f64 / 1e3 / outcome.sent.max(1) as f64;
        side.cpu_us.push(per_get(after[0] - before[0]));
        side.sqlite_us.push(per_get(after[1] - before[1]));
        side.rates.push(outcome.achieved_rate());
    }
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => sorted[len / 2],
        len => (sorted[len / 2 - 1] + sorted[len / 2]) / 2.0,
    }
}

/// Mean and the half-width of its 95 % confidence interval (normal approximation).
fn mean_and_margin(values: &[f64]) -> (f64, f64) {
    let count = values.len() as f64;
    let mean = values.iter().sum::<f64>() / count;
    let variance = values.iter().map(|value| (value - mean).powi(2)).sum::<f64>() / (count - 1.0).max(1.0);
    (mean, 1.96 * (variance / count).sqrt())
}

/// Runs `rounds` rounds of a probe of each process, telemetry on and off, and answers the printed table and JSON.
pub async fn run(
    options: &Options,
    rounds: usize,
    probe_length: Duration,
) -> anyhow::Result<(String, serde_json::Value)> {
    let value = random(options.value_size);
    let (on_dir, off_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    progress("telemetry A/B: starting two all-in-ones, telemetry on and all telemetry off");
    let mut sides = [
        start(options, "telemetry on", on_dir.path(), &[], &value).await?,
        start(options, "telemetry off", off_dir.path(), TELEMETRY_OFF, &value).await?,
    ];
    // Warm-up: connections open, caches filled, the API log's first batches written.
    for side in &mut sides {
        probe(side, probe_length, false).await?;
    }
    for round in 0..rounds {
        // On first in even rounds, off first in odd ones: a drift within a round weighs on both sides alike.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for index in order {
            probe(&mut sides[index], probe_length, true).await?;
        }
        let [on, off] = &sides;
        progress(format!(
            "telemetry A/B: round {}/{rounds}: on {:.2} µs (SQLite {:.2}), off {:.2} µs per GET ({:+.1} %)",
            round + 1,
            on.cpu_us[round],
            on.sqlite_us[round],
            off.cpu_us[round],
            (on.cpu_us[round] / off.cpu_us[round] - 1.0) * 100.0
        ));
    }
    for side in &mut sides {
        if !side.process.alive() {
            bail!("{} died: {}", side.name, side.process.output());
        }
        side.process.stop();
    }
    let [on, off] = &sides;
    let ratios: Vec<f64> = on.cpu_us.iter().zip(&off.cpu_us).map(|(on, off)| on / off - 1.0).collect();
    let (mean, margin) = mean_and_margin(&ratios);
    let added = median(&ratios);
    let mut table = format!(
        "\ntelemetry A/B: state GET of a {} B value on state.redis, {rounds} rounds of a {:.1} s closed-loop probe \
         per process over {} connections, in alternating order\n",
        options.value_size,
        probe_length.as_secs_f64(),
        options.connections
    );
    table.push_str(&format!("{:<16}{:>22}{:>18}\n", "process", "CPU µs/GET (median)", "GETs/s (median)"));
    for side in [on, off] {
        table.push_str(&format!("{:<16}{:>22.2}{:>18.0}\n", side.name, median(&side.cpu_us), median(&side.rates)));
    }
    table.push_str(&format!(
        "CPU per GET added by telemetry: median {:+.1} %, mean {:+.1} % ± {:.1} (95 %), rounds from {:+.1} % to \
         {:+.1} % (target <= 5 %)\n",
        added * 100.0,
        mean * 100.0,
        margin * 100.0,
        ratios.iter().copied().fold(f64::INFINITY, f64::min) * 100.0,
        ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max) * 100.0,
    ));
    let side_json = |side: &Side| json!({"cpu_us_per_get": side.cpu_us, "sqlite_cpu_us_per_get": side.sqlite_us, "gets_per_second": side.rates});
    let json = json!({
        "rounds": rounds,
        "probe_s": probe_length.as_secs_f64(),
        "connections": options.connections,
        "value_bytes": options.value_size,
        "telemetry_on": side_json(on),
        "telemetry_off": side_json(off),
        "added_cpu_median": added,
        "added_cpu_mean": mean,
        "added_cpu_margin_95": margin,
        "target_met": added <= 0.05,
    });
    Ok((table, json))
}
