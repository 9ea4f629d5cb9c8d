//! The scenarios, what one run of one gives, and how the bench prints and stores them: a table of the
//! runs with their targets, the Rust worker's view of each run (turns, activities, answer times), the
//! database work per workflow (distributed form), and how each scenario's last run compares with its
//! first.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::common::forms::Form;
use crate::common::report::{finite, ms, verdict};
use crate::replay::Shape;
use crate::usage::Usage;

/// How instances are started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// This many kept running: a new one starts when one completes.
    InFlight(usize),
    /// This many started at once.
    Burst(usize),
}

/// What the issue holds a scenario to, with daprd's figure for comparison.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    MinRate { per_second: f64, daprd: f64 },
    MaxWall { seconds: f64, daprd: f64 },
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub key: &'static str,
    pub shape: Shape,
    pub load: Load,
    /// The target, where the scenario has the size (a smaller one is not held to it).
    pub target: Option<Target>,
}

impl Scenario {
    pub fn title(&self) -> String {
        let what = match self.shape {
            Shape::Chain(n) => format!("chain of {n}"),
            Shape::FanOut(n) => format!("fan-out of {n}"),
        };
        match self.load {
            Load::InFlight(count) => format!("{what}, {count} in flight"),
            Load::Burst(count) => format!("{count} x {what} at once"),
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Some(Target::MinRate { per_second, daprd }) => format!(">= {per_second:.0}/s (daprd ~{daprd:.0})"),
            Some(Target::MaxWall { seconds, daprd }) => format!("<= {seconds:.0} s (daprd {daprd:.0})"),
            None => "- (not the issue's size)".to_owned(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    Rust,
    Python,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Rust => "rust",
            Driver::Python => "python",
        }
    }
}

/// The Rust worker's view of a run (warm-up and drain included).
#[derive(Clone, Debug, Default)]
pub struct WorkerSummary {
    pub turns: u64,
    pub activities: u64,
    pub events_per_turn: f64,
    pub turn_answer_p50_ms: f64,
    pub turn_answer_p99_ms: f64,
    pub activity_answer_p50_ms: f64,
    pub activity_answer_p99_ms: f64,
    pub answer_errors: u64,
    pub replay_failures: u64,
    pub reconnects: u64,
    pub first_error: Option<String>,
}

/// One run of one scenario.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub scenario: Scenario,
    pub form: Form,
    pub driver: Driver,
    pub run: usize,
    /// Instances the bench had started on this form before the run (completed ones stay in the database).
    pub instances_before: u64,
    pub started: u64,
    pub completed: u64,
    /// Completions the rate is made of: in the window, or the whole burst.
    pub counted: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub wall_s: Option<f64>,
    pub all_started_s: Option<f64>,
    pub start_p50_ms: f64,
    pub start_p99_ms: f64,
    pub worker: Option<WorkerSummary>,
    pub usage: Option<Usage>,
    pub notes: Vec<String>,
}

impl RunResult {
    /// Whether the run met its scenario's target; `None` without one.
    pub fn met(&self) -> Option<bool> {
        match self.scenario.target? {
            Target::MinRate { per_second, .. } => Some(self.errors == 0 && self.rate >= per_second),
            Target::MaxWall { seconds, .. } => Some(self.wall_s.is_some_and(|wall| wall <= seconds)),
        }
    }

    fn label(&self) -> String {
        format!("{} {} {}", self.scenario.key, self.form.name(), self.driver.name())
    }
}

/// The settings printed above the tables and stored with the results.
pub struct Settings {
    pub binary: String,
    pub warmup_s: f64,
    pub window_s: f64,
    pub runs: usize,
    pub streams: usize,
    pub concurrency: usize,
    pub burst_timeout_s: f64,
    /// Whether the distributed form's workflow tables were vacuumed before each run.
    pub pg_vacuum: bool,
    pub quick: bool,
    /// Why the Python runs did not happen, when they did not.
    pub python_skipped: Option<String>,
}

fn cores(value: Option<f64>) -> String {
    value.filter(|value| value.is_finite()).map_or("-".to_owned(), |value| format!("{value:.2}"))
}

/// A scenario's runs in order, first against last: (label, first, last, ratio of last to first, whether the
/// last is no more than 10 % worse).
fn run_to_run(results: &[RunResult]) -> Vec<(String, f64, f64, f64, bool)> {
    let mut compared = Vec::new();
    let mut labels: Vec<String> = results.iter().map(RunResult::label).collect();
    labels.dedup();
    for label in labels {
        let runs: Vec<&RunResult> = results.iter().filter(|result| result.label() == label).collect();
        let (Some(first), Some(last)) = (runs.first(), runs.last()) else { continue };
        if runs.len() < 2 {
            continue;
        }
        // Throughput for both loads: a burst's rate is its size over its wall time.
        let ratio = last.rate / first.rate;
        if first.rate > 0.0 && last.rate.is_finite() {
            compared.push((label, first.rate, last.rate, ratio, ratio >= 0.9));
        }
    }
    compared
}

pub fn table(settings: &Settings, results: &[RunResult], notes: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nworkflows: each scenario run {} times back to back on the same processes and database; in-flight loads \
         counted over a {:.0} s window after {:.0} s of warm-up; bursts timed from the first start to the last \
         completion\nRust app: {} GetWorkItems stream(s), up to {} work items at once; Python app: the SDK's \
         WorkflowRuntime (one stream, its default limits){}\nbinary: {}\nmachine: {} cores, shared with other work \
         (bg cores: what other processes used meanwhile)\n",
        settings.runs,
        settings.window_s,
        settings.warmup_s,
        settings.streams,
        settings.concurrency,
        if settings.pg_vacuum { "\nPostgreSQL: the workflow tables vacuumed (ANALYZE) before each run" } else { "" },
        settings.binary,
        std::thread::available_parallelism().map_or(0, |cores| cores.get()),
    );
    let _ = writeln!(
        out,
        "{:<36} {:<11} {:<6} {:>3} {:>8} {:>9} {:>9} {:>7} {:>6} {:>6} {:<24} {:>9} {:>8} {:>6} {:>8}",
        "scenario",
        "form",
        "app",
        "run",
        "wf/s",
        "p50 ms",
        "p99 ms",
        "wall s",
        "done",
        "errors",
        "target",
        "outrigger",
        "postgres",
        "app",
        "bg cores"
    );
    for result in results {
        let app_cores = result.usage.as_ref().and_then(|usage| match result.driver {
            Driver::Rust => usage.of("(bench: rust app + driver)"),
            Driver::Python => usage.of("(python app)"),
        });
        let _ = writeln!(
            out,
            "{:<36} {:<11} {:<6} {:>3} {:>8.1} {:>9} {:>9} {:>7} {:>6} {:>6} {:<24} {:>9} {:>8} {:>6} {:>8}",
            result.scenario.title(),
            result.form.name(),
            result.driver.name(),
            result.run,
            result.rate,
            ms(result.p50_ms),
            ms(result.p99_ms),
            result.wall_s.map_or("-".to_owned(), |wall| format!("{wall:.1}")),
            result.counted,
            result.errors,
            format!("{} {}", result.scenario.target_text(), result.met().map_or("", verdict)),
            cores(result.usage.as_ref().map(Usage::outrigger)),
            cores(result.usage.as_ref().and_then(|usage| usage.postgres)),
            cores(app_cores),
            cores(result.usage.as_ref().and_then(|usage| usage.background)),
        );
    }

    let rust: Vec<&RunResult> = results.iter().filter(|result| result.worker.is_some()).collect();
    if !rust.is_empty() {
        let _ = writeln!(
            out,
            "\nthe Rust app's view (whole run): work items, history events per turn, answer times in ms \
             (CompleteOrchestratorTask, CompleteActivityTask, StartInstance)"
        );
        let _ = writeln!(
            out,
            "{:<36} {:<11} {:>3} {:>7} {:>7} {:>6} {:>15} {:>15} {:>15} {:>7}",
            "scenario",
            "form",
            "run",
            "turns",
            "acts",
            "ev/tn",
            "turn p50/p99",
            "activity p50/99",
            "start p50/p99",
            "errors"
        );
        for result in rust {
            let Some(worker) = &result.worker else { continue };
            let pair = |p50: f64, p99: f64| format!("{}/{}", ms(p50), ms(p99));
            let _ = writeln!(
                out,
                "{:<36} {:<11} {:>3} {:>7} {:>7} {:>6.1} {:>15} {:>15} {:>15} {:>7}",
                result.scenario.title(),
                result.form.name(),
                result.run,
                worker.turns,
                worker.activities,
                worker.events_per_turn,
                pair(worker.turn_answer_p50_ms, worker.turn_answer_p99_ms),
                pair(worker.activity_answer_p50_ms, worker.activity_answer_p99_ms),
                pair(result.start_p50_ms, result.start_p99_ms),
                worker.answer_errors + worker.replay_failures,
            );
        }
    }

    let database: Vec<&RunResult> =
        results.iter().filter(|result| result.usage.as_ref().is_some_and(|usage| !usage.tables.is_empty())).collect();
    if !database.is_empty() {
        let _ = writeln!(
            out,
            "\nPostgreSQL work per counted workflow in the measured span (pg_stat_user_tables of the form's schema): \
             sequential scans / rows read, index scans / rows fetched, rows written; live and dead rows at the end"
        );
        for result in database {
            let Some(usage) = &result.usage else { continue };
            if result.counted == 0 {
                let _ = writeln!(out, "{} run {}: no workflow completed", result.label(), result.run);
                continue;
            }
            let per = |value: i64| value as f64 / result.counted.max(1) as f64;
            let cells: Vec<String> = usage
                .tables
                .iter()
                .map(|(name, table)| {
                    format!(
                        "{name} {:.1}/{:.0} seq, {:.1}/{:.0} idx, {:.1} w, {}+{} dead",
                        per(table.seq_scans),
                        per(table.seq_rows),
                        per(table.index_scans),
                        per(table.index_rows),
                        per(table.written),
                        table.live,
                        table.dead
                    )
                })
                .collect();
            let _ = writeln!(out, "{} run {}: {}", result.label(), result.run, cells.join("; "));
        }
    }

    let compared = run_to_run(results);
    if !compared.is_empty() {
        let _ = writeln!(
            out,
            "\nrun to run (workflows/s of the first and the last run; slowdown = last below 90 % of first)"
        );
        for (label, first, last, ratio, kept) in compared {
            let _ = writeln!(
                out,
                "{label:<40} {first:>8.1} -> {last:>8.1} ({ratio:.2}x) {}",
                if kept { "no slowdown" } else { "SLOWDOWN" }
            );
        }
    }

    let mut remarks: Vec<String> = notes.to_vec();
    if let Some(skipped) = &settings.python_skipped {
        remarks.push(format!("Python SDK runs skipped: {skipped}"));
    }
    if results.iter().any(|result| result.driver == Driver::Python) {
        remarks.push(
            "python: an instance counts as completed when its workflow code returns outside a replay, before the SDK \
             sends that turn's answer (rust: when the engine acknowledged it)"
                .to_owned(),
        );
    }
    for result in results {
        let label = format!("{} run {}", result.label(), result.run);
        if let Some(error) = &result.first_error {
            remarks.push(format!("{label}: {} errors, first: {error}", result.errors));
        }
        if let Some(worker) = &result.worker {
            if let Some(error) = &worker.first_error {
                remarks.push(format!(
                    "{label}: the worker saw {} refused answers, {} failed replays, {} stream ends; first: {error}",
                    worker.answer_errors, worker.replay_failures, worker.reconnects
                ));
            }
        }
        for note in &result.notes {
            remarks.push(format!("{label}: {note}"));
        }
    }
    remarks.dedup();
    if !remarks.is_empty() {
        let _ = writeln!(out);
        for remark in remarks {
            let _ = writeln!(out, "- {remark}");
        }
    }
    out
}

pub fn to_json(settings: &Settings, results: &[RunResult], notes: &[String], cleanup: &[String]) -> Value {
    let runs: Vec<Value> = results
        .iter()
        .map(|result| {
            let (load, count) = match result.scenario.load {
                Load::InFlight(count) => ("in_flight", count),
                Load::Burst(count) => ("burst", count),
            };
            let target = match result.scenario.target {
                Some(Target::MinRate { per_second, daprd }) => {
                    json!({"min_workflows_per_second": per_second, "daprd_workflows_per_second": daprd})
                }
                Some(Target::MaxWall { seconds, daprd }) => json!({"max_wall_s": seconds, "daprd_wall_s": daprd}),
                None => Value::Null,
            };
            let worker = result.worker.as_ref().map(|worker| {
                json!({
                    "turns": worker.turns, "activities": worker.activities,
                    "events_per_turn": finite(worker.events_per_turn),
                    "complete_turn_p50_ms": finite(worker.turn_answer_p50_ms),
                    "complete_turn_p99_ms": finite(worker.turn_answer_p99_ms),
                    "complete_activity_p50_ms": finite(worker.activity_answer_p50_ms),
                    "complete_activity_p99_ms": finite(worker.activity_answer_p99_ms),
                    "answer_errors": worker.answer_errors, "replay_failures": worker.replay_failures,
                    "stream_reconnects": worker.reconnects, "first_error": worker.first_error,
                })
            });
            json!({
                "scenario": result.scenario.key, "title": result.scenario.title(), "form": result.form.name(),
                "database": result.form.database(), "app": result.driver.name(), "run": result.run,
                "workflow": result.scenario.shape.workflow_name(), "activities": result.scenario.shape.activities(),
                "load": load, "count": count, "instances_before": result.instances_before,
                "started": result.started, "completed": result.completed, "counted": result.counted,
                "errors": result.errors, "first_error": result.first_error,
                "workflows_per_second": finite(result.rate), "latency_p50_ms": finite(result.p50_ms),
                "latency_p99_ms": finite(result.p99_ms), "latency_max_ms": finite(result.max_ms),
                "wall_s": result.wall_s.and_then(finite), "all_started_s": result.all_started_s.and_then(finite),
                "start_instance_p50_ms": finite(result.start_p50_ms), "start_instance_p99_ms": finite(result.start_p99_ms),
                "target": target, "target_met": result.met(), "worker": worker,
                "usage": result.usage.as_ref().map(Usage::to_json), "notes": result.notes,
            })
        })
        .collect();
    let compared: Vec<Value> = run_to_run(results)
        .into_iter()
        .map(|(label, first, last, ratio, kept)| {
            json!({"runs": label, "first_per_second": finite(first), "last_per_second": finite(last),
                   "ratio": finite(ratio), "no_slowdown": kept})
        })
        .collect();
    json!({
        "settings": {
            "binary": settings.binary, "warmup_s": settings.warmup_s, "window_s": settings.window_s,
            "runs": settings.runs, "rust_streams": settings.streams, "rust_concurrency": settings.concurrency,
            "burst_timeout_s": settings.burst_timeout_s, "pg_vacuum": settings.pg_vacuum, "quick": settings.quick,
            "python_skipped": settings.python_skipped,
            "cores": std::thread::available_parallelism().map_or(0, |cores| cores.get()),
        },
        "runs": runs,
        "run_to_run": compared,
        "notes": notes,
        "cleanup": cleanup,
    })
}
