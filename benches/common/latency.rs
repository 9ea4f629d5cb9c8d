//! The shape of the request-latency benches (state GET, service invocation): each scenario is a warm-up, an
//! open loop at a fixed rate whose percentiles are compared with a baseline scenario's, then a closed-loop
//! probe for the highest rate; with the CPU and memory of the processes involved, the printed tables and
//! the JSON.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::bail;
use serde_json::{json, Value};

use super::load::{self, PhaseOutcome};
use super::procs::{self, cpu_of, cpu_seconds, Process, Watched};
use super::report::{finite, mb, ms, verdict, Summary, Usage};
use super::setup::{self, progress};

/// CPU used by processes other than the measured ones above which a phase is called disturbed.
pub const BUSY_MACHINE_CORES: f64 = 0.3;

/// The key of the scenario the others are compared with.
pub const BASELINE: &str = "baseline";

/// How long and how hard each scenario is loaded.
#[derive(Clone, Copy, Debug)]
pub struct Phases {
    pub warmup: Duration,
    pub warmup_rate: f64,
    /// The open loop.
    pub duration: Duration,
    pub rate: f64,
    /// The closed-loop probe.
    pub probe: Duration,
}

/// The settings printed with the results.
pub struct Settings {
    pub binary: String,
    pub phases: Phases,
    pub connections: usize,
    /// Bytes of the value read or the body sent.
    pub size: usize,
    pub quick: bool,
}

impl Settings {
    /// The lines above the tables; `what` names a request, e.g. "state GET of a 1024 B value".
    fn header(&self, what: &str) -> String {
        let phases = &self.phases;
        format!(
            "\n{what}: open loop {:.0} req/s for {:.0} s over {} keep-alive connections (after {:.0} s at {:.0} \
             req/s); probe: closed loop {:.0} s; latency from each request's scheduled time\nbinary: {}\n\
             conns: sockets open to the target at the end; bg cores: CPU other processes used meanwhile (want ~0)\n",
            phases.rate,
            phases.duration.as_secs_f64(),
            self.connections,
            phases.warmup.as_secs_f64(),
            phases.warmup_rate,
            phases.probe.as_secs_f64(),
            self.binary,
        )
    }

    /// The settings as JSON; `size_field` names the size (e.g. "value_bytes").
    fn to_json(&self, size_field: &str) -> Value {
        let phases = &self.phases;
        json!({
            "duration_s": phases.duration.as_secs_f64(), "rate_rps": phases.rate, "connections": self.connections,
            size_field: self.size, "warmup_s": phases.warmup.as_secs_f64(), "warmup_rate_rps": phases.warmup_rate,
            "probe_s": phases.probe.as_secs_f64(), "quick": self.quick,
        })
    }
}

/// What a bench holds its scenarios to; `None` where it sets no target.
#[derive(Clone, Copy, Debug)]
pub struct Targets {
    /// Added latency (scenario percentile minus baseline percentile) for p50, p90 and p99, in milliseconds.
    pub added_ms: [Option<f64>; 3],
    /// Resident memory per Outrigger process, in MB (10^6 bytes).
    pub rss_mb: Option<f64>,
}

const PERCENTILES: [&str; 3] = ["p50", "p90", "p99"];

/// One scenario's results.
#[derive(Debug)]
pub struct Scenario {
    pub key: &'static str,
    pub name: &'static str,
    pub path: &'static str,
    pub open: Option<Summary>,
    pub probe: Option<Summary>,
    pub usage: Vec<Usage>,
    /// Cores the rest of the machine (neither Outrigger nor the bench) used during the open loop.
    pub background_cores: Option<f64>,
    pub notes: Vec<String>,
    pub error: Option<String>,
}

impl Scenario {
    pub fn new(key: &'static str, name: &'static str, path: &'static str) -> Scenario {
        Scenario {
            key,
            name,
            path,
            open: None,
            probe: None,
            usage: Vec::new(),
            background_cores: None,
            notes: Vec::new(),
            error: None,
        }
    }
}

/// Warm-up, the open-loop phase, then the closed-loop probe, filling `scenario`. `port` is the target's,
/// whose sockets are counted; `watched` are the processes (and threads) whose CPU and memory are reported.
pub async fn measure<C: load::Connection>(
    phases: &Phases,
    scenario: &mut Scenario,
    connections: &mut Vec<C>,
    target: &C::Target,
    port: u16,
    watched: &[Watched],
) -> anyhow::Result<()> {
    let name = scenario.name;
    let ticks = procs::clock_ticks();
    progress(format!("{name}: warm-up {:.0} s at {:.0} req/s", phases.warmup.as_secs_f64(), phases.warmup_rate));
    let warm = load::open_loop(connections, target, phases.warmup_rate, phases.warmup, None).await?;
    if warm.errors == warm.sent {
        bail!("every warm-up request failed, first: {}", warm.first_error.unwrap_or_default());
    }

    progress(format!(
        "{name}: open loop {:.0} s at {:.0} req/s over {} connections",
        phases.duration.as_secs_f64(),
        phases.rate,
        connections.len()
    ));
    let (before, machine_before) = (cpu_of(watched), procs::machine_ticks());
    let mut open = load::open_loop(connections, target, phases.rate, phases.duration, Some(port)).await?;
    let (after, machine_after) = (cpu_of(watched), procs::machine_ticks());
    let open_summary = Summary::of(&mut open);
    progress(format!(
        "{name}: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms, {:.1} req/s, {} errors",
        open_summary.p50, open_summary.p90, open_summary.p99, open_summary.max, open_summary.rate, open.errors
    ));
    if let Some(sockets) = open.sockets_open.filter(|sockets| *sockets != connections.len()) {
        scenario.notes.push(format!("{sockets} sockets open to port {port} at the end, not {}", connections.len()));
    }
    if open_summary.dispatch_lag_max_ms > 5.0 {
        scenario.notes.push(format!(
            "the load generator's dispatcher fell up to {:.1} ms behind schedule",
            open_summary.dispatch_lag_max_ms
        ));
    }
    scenario.open = Some(open_summary);
    if let (Some((busy_before, _)), Some((busy_after, _))) = (machine_before, machine_after) {
        // A thread's CPU is already in its process's.
        let measured: f64 = (0..watched.len())
            .filter(|index| !watched[*index].pid.contains("/task/"))
            .map(|index| cpu_seconds(&before, &after, index, ticks))
            .filter(|cpu| cpu.is_finite())
            .sum();
        let others = (busy_after.saturating_sub(busy_before) as f64 / ticks - measured) / open.elapsed.as_secs_f64();
        scenario.background_cores = Some(others.max(0.0));
        if others > BUSY_MACHINE_CORES {
            scenario.notes.push(format!(
                "other processes kept {others:.2} cores busy during the open loop: its figures are disturbed"
            ));
        }
    }

    progress(format!("{name}: closed-loop probe {:.0} s", phases.probe.as_secs_f64()));
    let probe_before = cpu_of(watched);
    let mut probe: PhaseOutcome = load::closed_loop(connections, target, phases.probe).await?;
    let probe_after = cpu_of(watched);
    let probe_summary = Summary::of(&mut probe);
    progress(format!("{name}: probe {:.0} req/s, {} errors", probe_summary.rate, probe.errors));
    scenario.probe = Some(probe_summary);

    for (index, process) in watched.iter().enumerate() {
        let cpu = cpu_seconds(&before, &after, index, ticks);
        let probe_cpu = cpu_seconds(&probe_before, &probe_after, index, ticks);
        let memory = process.memory_kib();
        scenario.usage.push(Usage {
            process: process.name.clone(),
            pid: process.pid_number(),
            cpu_seconds: cpu,
            cores: cpu / open.elapsed.as_secs_f64(),
            cpu_ms_per_1000: cpu * 1e3 * 1000.0 / open.completed().max(1) as f64,
            probe_cores: Some(probe_cpu / probe.elapsed.as_secs_f64()),
            probe_cpu_ms_per_1000: Some(probe_cpu * 1e3 * 1000.0 / probe.completed().max(1) as f64),
            rss_kib: memory.map(|(rss, _)| rss),
            hwm_kib: memory.map(|(_, hwm)| hwm),
            outrigger: process.outrigger,
        });
    }
    Ok(())
}

/// Keeps a scenario's failure in it, so that the other scenarios of its group still run.
pub fn keep_failure(scenario: &mut Scenario, outcome: anyhow::Result<()>) {
    if let Err(err) = outcome {
        progress(format!("{}: FAILED: {err:#}", scenario.name));
        scenario.error = Some(format!("{err:#}"));
    }
}

/// Stops `processes` in order, noting any that did not exit cleanly in each of `scenarios`.
pub fn stop_all(processes: &mut [Process], scenarios: &mut [&mut Scenario]) {
    for note in setup::stop_all(processes) {
        for scenario in scenarios.iter_mut() {
            scenario.notes.push(note.clone());
        }
    }
}

/// Marks the scenarios that had not finished as interrupted.
pub fn interrupted(scenarios: &mut [Scenario]) {
    for scenario in scenarios.iter_mut().filter(|scenario| scenario.error.is_none() && scenario.probe.is_none()) {
        scenario.error = Some("interrupted".to_owned());
    }
}

/// Added latency of `scenario` over `baseline` per percentile: (added ms, ratio, target met where set).
fn added(scenario: &Summary, baseline: &Summary, targets: &Targets) -> Vec<(f64, f64, Option<bool>)> {
    scenario
        .percentiles()
        .iter()
        .zip(baseline.percentiles())
        .zip(targets.added_ms)
        .map(|((value, base), target)| (value - base, value / base, target.map(|target| value - base <= target)))
        .collect()
}

fn baseline_of(scenarios: &[Scenario]) -> Option<&Summary> {
    scenarios.iter().find(|scenario| scenario.key == BASELINE).and_then(|scenario| scenario.open.as_ref())
}

/// Whether `usage` meets the memory target: `None` without a target, for other processes, or unmeasured.
fn rss_met(usage: &Usage, targets: &Targets) -> Option<bool> {
    let target = targets.rss_mb.filter(|_| usage.outrigger)?;
    usage.rss_kib.map(|kib| mb(kib) < target)
}

/// The tables, as printed at the end; `what` names a request (see [`Settings::header`]).
pub fn table(what: &str, settings: &Settings, targets: &Targets, scenarios: &[Scenario]) -> String {
    let mut out = settings.header(what);
    // Wide enough for the longest scenario name.
    let width = scenarios.iter().map(|scenario| scenario.name.len()).max().unwrap_or(0).max(30);
    let baseline = baseline_of(scenarios);
    let _ = writeln!(
        out,
        "\n{:<width$} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>5} {:>8} | {:>11} {:>6}",
        "scenario",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "req/s",
        "errors",
        "conns",
        "bg cores",
        "probe req/s",
        "errors"
    );
    for scenario in scenarios {
        let Some(open) = &scenario.open else {
            let _ =
                writeln!(out, "{:<width$} not measured: {}", scenario.name, scenario.error.as_deref().unwrap_or("?"));
            continue;
        };
        let probe = scenario.probe.as_ref();
        let _ = writeln!(
            out,
            "{:<width$} {:>8} {:>8} {:>8} {:>8} {:>8.1} {:>6} {:>5} {:>8} | {:>11} {:>6}",
            scenario.name,
            ms(open.p50),
            ms(open.p90),
            ms(open.p99),
            ms(open.max),
            open.rate,
            open.errors,
            open.sockets_open.map_or("?".to_owned(), |n| n.to_string()),
            scenario.background_cores.map_or("?".to_owned(), |cores| format!("{cores:.2}")),
            probe.map_or("-".to_owned(), |probe| format!("{:.0}", probe.rate)),
            probe.map_or("-".to_owned(), |probe| probe.errors.to_string()),
        );
    }

    let goals: Vec<String> = PERCENTILES
        .iter()
        .zip(targets.added_ms)
        .filter_map(|(name, target)| target.map(|target| format!("added {name} <= {target} ms")))
        .collect();
    let _ = writeln!(out, "\nadded latency vs the baseline, ms (ratio); targets: {}", goals.join(", "));
    let _ = writeln!(out, "{:<width$} {:>20} {:>20} {:>20}", "scenario", "+p50", "+p90", "+p99");
    for scenario in scenarios.iter().filter(|scenario| scenario.key != BASELINE) {
        let (Some(open), Some(baseline)) = (&scenario.open, baseline) else { continue };
        let cells: Vec<String> = added(open, baseline, targets)
            .iter()
            .map(|(added, ratio, met)| format!("{} ({ratio:.1}x) {}", ms(*added), met.map_or("", verdict)))
            .collect();
        let _ = writeln!(out, "{:<width$} {:>20} {:>20} {:>20}", scenario.name, cells[0], cells[1], cells[2]);
    }

    let memory_target =
        targets.rss_mb.map_or(String::new(), |target| format!(" (target: each Outrigger process < {target} MB RSS)"));
    let _ = writeln!(
        out,
        "\nprocesses: CPU during the open loop (cores, CPU-ms per 1000 requests) and the probe; memory at the \
         end{memory_target}"
    );
    let _ = writeln!(
        out,
        "{:<width$} {:<26} {:>6} {:>10} | {:>6} {:>10} | {:>8} {:>8}",
        "scenario", "process", "cores", "ms/1000", "cores", "ms/1000", "RSS MB", "HWM MB"
    );
    for scenario in scenarios {
        for usage in &scenario.usage {
            let memory = |kib: Option<u64>| kib.map_or("-".to_owned(), |kib| format!("{:.1}", mb(kib)));
            let _ = writeln!(
                out,
                "{:<width$} {:<26} {:>6.2} {:>10.1} | {:>6} {:>10} | {:>8} {:>8} {}",
                scenario.name,
                usage.process,
                usage.cores,
                usage.cpu_ms_per_1000,
                usage.probe_cores.map_or("-".to_owned(), |cores| format!("{cores:.2}")),
                usage.probe_cpu_ms_per_1000.map_or("-".to_owned(), |value| format!("{value:.1}")),
                memory(usage.rss_kib),
                memory(usage.hwm_kib),
                rss_met(usage, targets).map_or("", verdict),
            );
        }
    }

    let mut remarks = Vec::new();
    for scenario in scenarios {
        if let Some(error) = &scenario.error {
            remarks.push(format!("{}: FAILED: {error}", scenario.name));
        }
        for (phase, summary) in [("open loop", &scenario.open), ("probe", &scenario.probe)] {
            if let Some(Summary { errors, first_error: Some(first), .. }) = summary {
                remarks.push(format!("{} ({phase}): {errors} errors, first: {first}", scenario.name));
            }
        }
        for note in &scenario.notes {
            remarks.push(format!("{}: {note}", scenario.name));
        }
    }
    if !remarks.is_empty() {
        let _ = writeln!(out);
        for remark in remarks {
            let _ = writeln!(out, "- {remark}");
        }
    }
    out
}

/// Everything as one JSON document; `size_field` names the settings' size (e.g. "value_bytes").
pub fn to_json(
    size_field: &str,
    settings: &Settings,
    targets: &Targets,
    scenarios: &[Scenario],
    cleanup: &[String],
) -> Value {
    let baseline = baseline_of(scenarios);
    let scenarios: Vec<Value> = scenarios
        .iter()
        .map(|scenario| {
            let added = match (&scenario.open, baseline) {
                (Some(open), Some(baseline)) if scenario.key != BASELINE => {
                    let mut fields = serde_json::Map::new();
                    let figures = added(open, baseline, targets).into_iter().zip(targets.added_ms);
                    for (((added, ratio, met), target), name) in figures.zip(PERCENTILES) {
                        fields.insert(
                            name.to_owned(),
                            json!({"added_ms": finite(added), "ratio": finite(ratio), "target_ms": target, "met": met}),
                        );
                    }
                    Value::Object(fields)
                }
                _ => Value::Null,
            };
            let processes: Vec<Value> = scenario
                .usage
                .iter()
                .map(|usage| {
                    let mut value = usage.to_json();
                    if let Value::Object(fields) = &mut value {
                        fields.insert("rss_target_met".to_owned(), json!(rss_met(usage, targets)));
                    }
                    value
                })
                .collect();
            json!({
                "key": scenario.key, "name": scenario.name, "path": scenario.path,
                "open_loop": scenario.open.as_ref().map(Summary::to_json),
                "added_vs_baseline": added,
                "closed_loop_probe": scenario.probe.as_ref().map(Summary::to_json),
                "processes": processes,
                "background_cores": scenario.background_cores.and_then(finite),
                "notes": scenario.notes, "error": scenario.error,
            })
        })
        .collect();
    json!({
        "benchmark": env!("CARGO_CRATE_NAME"),
        "binary": settings.binary,
        "settings": settings.to_json(size_field),
        "targets": {
            "added_p50_ms": targets.added_ms[0], "added_p90_ms": targets.added_ms[1],
            "added_p99_ms": targets.added_ms[2], "rss_mb_per_process": targets.rss_mb,
        },
        "scenarios": scenarios,
        "cleanup": cleanup,
    })
}
