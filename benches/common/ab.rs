//! Telemetry's CPU cost, timed: two all-in-one processes side by side, one with telemetry on and one with all of
//! it off, loaded in turn by closed-loop probes, the order swapped every round. Measured one after the other, a
//! few percent drown in what else the machine does from one minute to the next (two runs of the sequential rows
//! put the logged state GET 17 % above the unlogged one, then below it); alternating short probes puts both
//! processes under the same conditions, and the ratio of each round's pair cancels what the conditions did to
//! both. Each bench says what a probe is (`state_get`: GETs; `pubsub`: publishes, each with its push delivery).
//!
//! A probe's CPU is read once the API log has written the probe's calls: its writer gathers calls for a second
//! before it writes them, so a reading taken as the probe ends would leave the last batch's write to the other
//! process's probe, unmeasured. The wait is checked, after the reading, against the process's
//! `outrigger_api_log_written_total`.
//!
//! A process's CPU is the sum of its threads' run time from `/proc/<pid>/task/*/schedstat`, in nanoseconds,
//! not `/proc/<pid>/stat`'s 10 ms ticks (a 2 s probe takes ~0.7 s of the process's CPU: ticks would be 1.4 %
//! steps).

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use crate::common::cli;
use crate::common::load::PhaseOutcome;
use crate::common::procs::Process;
use crate::common::setup::{self, progress};

/// The setting that turns the API log off.
pub const API_LOG_OFF: (&str, &str) = ("OUTRIGGER_API_LOG", "false");
/// The settings that turn all telemetry off (API log, metrics, trace context): what every telemetry cost is read
/// against.
pub const TELEMETRY_OFF: &[(&str, &str)] =
    &[API_LOG_OFF, ("OUTRIGGER_METRICS", "false"), ("OUTRIGGER_TRACE_CONTEXT", "false")];

/// How long a probe's last calls wait to be written: the API log's flush interval (1 s by default) and a margin.
const LOG_FLUSHED: Duration = Duration::from_millis(1500);

/// One of the two processes, and what the bench probes it with (`load`: its connections, its target).
pub struct Side<L> {
    pub name: &'static str,
    pub process: Process,
    pub load: L,
    /// `GET /metrics` of the process and its admin token.
    metrics: (String, String),
    /// The calls the API log writes for each call a probe makes (a publish: 2, with its delivery).
    logged_per_call: u64,
    /// Calls sent to it so far, warm-up included.
    sent: u64,
    /// CPU microseconds per call (all threads, SQLite's) and calls per second, per round.
    cpu_us: Vec<f64>,
    sqlite_us: Vec<f64>,
    rates: Vec<f64>,
}

impl<L> Side<L> {
    /// `control_api`: the process's control API address, whose `/metrics` `admin_token` reads.
    pub fn new(
        name: &'static str,
        process: Process,
        load: L,
        (control_api, admin_token): (&str, &str),
        logged_per_call: u64,
    ) -> Side<L> {
        Side {
            name,
            process,
            load,
            metrics: (format!("http://{control_api}/metrics"), admin_token.to_owned()),
            logged_per_call,
            sent: 0,
            cpu_us: Vec::new(),
            sqlite_us: Vec::new(),
            rates: Vec::new(),
        }
    }

    /// Runs one probe (`probe` loads the process and waits for whatever work the calls left behind, such as
    /// deliveries); its CPU per call and rate kept when `kept`.
    pub async fn measure(
        &mut self,
        kept: bool,
        probe: impl AsyncFnOnce(&mut L) -> anyhow::Result<PhaseOutcome>,
    ) -> anyhow::Result<()> {
        let before = cpu_ns(self.process.pid)?;
        let outcome = probe(&mut self.load).await?;
        let ended = Instant::now();
        tokio::time::sleep(LOG_FLUSHED).await;
        let after = cpu_ns(self.process.pid)?;
        self.sent += outcome.sent;
        if let Some(written) = self.calls_written().await? {
            if written < self.sent * self.logged_per_call {
                bail!(
                    "{}: the API log wrote {written} calls for the {} calls sent ({} each), {:?} after the probe: \
                     raise LOG_FLUSHED",
                    self.name,
                    self.sent,
                    self.logged_per_call,
                    ended.elapsed()
                );
            }
        }
        if outcome.errors > 0 {
            bail!(
                "{}: {} of {} calls failed, first: {}",
                self.name,
                outcome.errors,
                outcome.sent,
                outcome.first_error.unwrap_or_default()
            );
        }
        if kept {
            let per_call = |ns: u64| ns as f64 / 1e3 / outcome.sent.max(1) as f64;
            self.cpu_us.push(per_call(after[0] - before[0]));
            self.sqlite_us.push(per_call(after[1] - before[1]));
            self.rates.push(outcome.achieved_rate());
        }
        Ok(())
    }

    /// Calls the API log has written so far, when it keeps one (with metrics off, there is no `/metrics`).
    async fn calls_written(&self) -> anyhow::Result<Option<u64>> {
        let (url, admin_token) = &self.metrics;
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

    /// Stops the process; an error when it had died.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if !self.process.alive() {
            bail!("{} died: {}", self.name, self.process.output());
        }
        self.process.stop();
        Ok(())
    }
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

/// Probes each side once unmeasured (connections open, caches filled, the API log's first batches written),
/// then `rounds` rounds of a probe of each, telemetry on (`sides[0]`) and off, in alternating order; `call` names
/// what a probe's calls are (`GET`).
pub async fn alternate<L>(
    sides: &mut [Side<L>; 2],
    rounds: usize,
    call: &str,
    mut probe: impl AsyncFnMut(&mut Side<L>, bool) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for side in sides.iter_mut() {
        probe(side, false).await?;
    }
    for round in 0..rounds {
        // On first in even rounds, off first in odd ones: a drift within a round weighs on both sides alike.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for index in order {
            probe(&mut sides[index], true).await?;
        }
        let [on, off] = &*sides;
        progress(format!(
            "telemetry A/B: round {}/{rounds}: on {:.2} µs (SQLite {:.2}), off {:.2} µs per {call} ({:+.1} %)",
            round + 1,
            on.cpu_us[round],
            on.sqlite_us[round],
            off.cpu_us[round],
            (on.cpu_us[round] / off.cpu_us[round] - 1.0) * 100.0
        ));
    }
    for side in sides.iter_mut() {
        side.stop()?;
    }
    Ok(())
}

/// The rounds' figures: a table under `heading`, and the JSON (`settings` merged in); `call` as for
/// [`alternate`].
pub fn summary<L>(
    sides: &[Side<L>; 2],
    heading: &str,
    call: &str,
    settings: serde_json::Value,
) -> (String, serde_json::Value) {
    let [on, off] = sides;
    let ratios: Vec<f64> = on.cpu_us.iter().zip(&off.cpu_us).map(|(on, off)| on / off - 1.0).collect();
    let (mean, margin) = mean_and_margin(&ratios);
    let added = median(&ratios);
    let mut table = format!("\n{heading}\n");
    let cpu_column = format!("CPU µs/{call} (median)");
    table.push_str(&format!("{:<16}{cpu_column:>26}{:>22}\n", "process", "calls/s (median)"));
    for side in [on, off] {
        table.push_str(&format!("{:<16}{:>26.2}{:>22.0}\n", side.name, median(&side.cpu_us), median(&side.rates)));
    }
    table.push_str(&format!(
        "CPU per {call} added by telemetry: median {:+.1} %, mean {:+.1} % ± {:.1} (95 %), rounds from {:+.1} % to \
         {:+.1} % (target <= 5 %)\n",
        added * 100.0,
        mean * 100.0,
        margin * 100.0,
        ratios.iter().copied().fold(f64::INFINITY, f64::min) * 100.0,
        ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max) * 100.0,
    ));
    let side_json = |side: &Side<L>| json!({"cpu_us_per_call": side.cpu_us, "sqlite_cpu_us_per_call": side.sqlite_us, "calls_per_second": side.rates});
    let mut json = json!({
        "rounds": ratios.len(),
        "call": call,
        "telemetry_on": side_json(on),
        "telemetry_off": side_json(off),
        "added_cpu_median": added,
        "added_cpu_mean": mean,
        "added_cpu_margin_95": margin,
        "target_met": added <= 0.05,
    });
    if let (Some(json), serde_json::Value::Object(settings)) = (json.as_object_mut(), settings) {
        json.extend(settings);
    }
    (table, json)
}

/// Prints what an A/B `measured` and writes its JSON under `target_dir`; the bench's exit code.
pub fn report(measured: anyhow::Result<(String, serde_json::Value)>, target_dir: &Path) -> ExitCode {
    match measured {
        Ok((table, json)) => {
            println!("{table}");
            cli::write_json(target_dir, &json);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: telemetry A/B: {err:#}");
            ExitCode::FAILURE
        }
    }
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
