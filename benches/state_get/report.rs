//! Results: the printed tables and `target/bench/state_get.json`.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::common::report::{finite, mb, ms, verdict, Summary, Usage};

/// Added latency targets (scenario percentile minus baseline percentile), in milliseconds.
pub const TARGET_ADDED_MS: [(&str, f64); 3] = [("p50", 0.5), ("p90", 1.0), ("p99", 2.0)];
/// Resident memory target per Outrigger process, in MB (10^6 bytes).
pub const TARGET_RSS_MB: f64 = 50.0;

/// A process's figures with its verdict on the memory target.
fn usage_json(usage: &Usage) -> Value {
    let mut value = usage.to_json();
    if let Value::Object(fields) = &mut value {
        let met = usage.outrigger.then(|| usage.rss_kib.map(|kib| mb(kib) < TARGET_RSS_MB));
        fields.insert("rss_target_met".to_owned(), json!(met));
    }
    value
}

/// One scenario's results.
#[derive(Debug)]
pub struct Scenario {
    pub key: &'static str,
    pub name: &'static str,
    pub path: &'static str,
    pub open: Option<Summary>,
    pub probe: Option<Summary>,
    pub usage: Vec<Usage>,
    /// Cores the rest of the machine (neither Outrigger nor the load generator) used during the open loop.
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

/// The settings printed with the results.
pub struct Settings {
    pub binary: String,
    pub duration_s: f64,
    pub rate: f64,
    pub connections: usize,
    pub value_size: usize,
    pub warmup_s: f64,
    pub warmup_rate: f64,
    pub probe_s: f64,
    pub quick: bool,
}

/// Added latency of `scenario` over `baseline` per percentile: (added ms, ratio, target met).
fn added(scenario: &Summary, baseline: &Summary) -> Vec<(f64, f64, bool)> {
    scenario
        .percentiles()
        .iter()
        .zip(baseline.percentiles())
        .zip(TARGET_ADDED_MS)
        .map(|((value, base), (_, target))| (value - base, value / base, value - base <= target))
        .collect()
}

/// The tables, as printed at the end.
pub fn table(settings: &Settings, scenarios: &[Scenario]) -> String {
    let mut out = String::new();
    let baseline = scenarios.iter().find(|scenario| scenario.key == "baseline").and_then(|s| s.open.as_ref());
    let _ = writeln!(
        out,
        "\nstate GET of a {} B value: open loop {:.0} req/s for {:.0} s over {} keep-alive connections \
         (after {:.0} s at {:.0} req/s); probe: closed loop {:.0} s; latency from each request's scheduled time",
        settings.value_size,
        settings.rate,
        settings.duration_s,
        settings.connections,
        settings.warmup_s,
        settings.warmup_rate,
        settings.probe_s
    );
    let _ = writeln!(out, "binary: {}", settings.binary);
    let _ = writeln!(
        out,
        "conns: sockets open to the target at the end; bg cores: CPU other processes used meanwhile (want ~0)\n"
    );
    let _ = writeln!(
        out,
        "{:<30} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>5} {:>8} | {:>11} {:>6}",
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
            let _ = writeln!(out, "{:<30} not measured: {}", scenario.name, scenario.error.as_deref().unwrap_or("?"));
            continue;
        };
        let probe = scenario.probe.as_ref();
        let _ = writeln!(
            out,
            "{:<30} {:>8} {:>8} {:>8} {:>8} {:>8.1} {:>6} {:>5} {:>8} | {:>11} {:>6}",
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

    let _ = writeln!(
        out,
        "\nadded latency vs the baseline, ms (ratio); targets: added p50 <= {} ms, p90 <= {} ms, p99 <= {} ms",
        TARGET_ADDED_MS[0].1, TARGET_ADDED_MS[1].1, TARGET_ADDED_MS[2].1
    );
    let _ = writeln!(out, "{:<30} {:>20} {:>20} {:>20}", "scenario", "+p50", "+p90", "+p99");
    for scenario in scenarios.iter().filter(|scenario| scenario.key != "baseline") {
        let (Some(open), Some(baseline)) = (&scenario.open, baseline) else { continue };
        let cells: Vec<String> = added(open, baseline)
            .iter()
            .map(|(added, ratio, met)| format!("{} ({ratio:.1}x) {}", ms(*added), verdict(*met)))
            .collect();
        let _ = writeln!(out, "{:<30} {:>20} {:>20} {:>20}", scenario.name, cells[0], cells[1], cells[2]);
    }

    let _ = writeln!(
        out,
        "\nprocesses: CPU during the open loop (cores, CPU-ms per 1000 requests) and the probe; memory at the end \
         (target: each Outrigger process < {TARGET_RSS_MB} MB RSS)"
    );
    let _ = writeln!(
        out,
        "{:<30} {:<22} {:>6} {:>10} | {:>6} {:>10} | {:>8} {:>8}",
        "scenario", "process", "cores", "ms/1000", "cores", "ms/1000", "RSS MB", "HWM MB"
    );
    for scenario in scenarios {
        for usage in &scenario.usage {
            let memory = |kib: Option<u64>| kib.map_or("-".to_owned(), |kib| format!("{:.1}", mb(kib)));
            let rss_verdict = match (usage.outrigger, usage.rss_kib) {
                (true, Some(kib)) => verdict(mb(kib) < TARGET_RSS_MB),
                _ => "",
            };
            let _ = writeln!(
                out,
                "{:<30} {:<22} {:>6.2} {:>10.1} | {:>6} {:>10} | {:>8} {:>8} {rss_verdict}",
                scenario.name,
                usage.process,
                usage.cores,
                usage.cpu_ms_per_1000,
                usage.probe_cores.map_or("-".to_owned(), |cores| format!("{cores:.2}")),
                usage.probe_cpu_ms_per_1000.map_or("-".to_owned(), |value| format!("{value:.1}")),
                memory(usage.rss_kib),
                memory(usage.hwm_kib),
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

/// Everything as one JSON document.
pub fn to_json(settings: &Settings, scenarios: &[Scenario], cleanup: &[String]) -> Value {
    let baseline = scenarios.iter().find(|scenario| scenario.key == "baseline").and_then(|s| s.open.as_ref());
    let scenarios: Vec<Value> = scenarios
        .iter()
        .map(|scenario| {
            let added = match (&scenario.open, baseline) {
                (Some(open), Some(baseline)) if scenario.key != "baseline" => {
                    let mut fields = serde_json::Map::new();
                    for ((added, ratio, met), (name, target)) in added(open, baseline).into_iter().zip(TARGET_ADDED_MS)
                    {
                        fields.insert(
                            name.to_owned(),
                            json!({"added_ms": finite(added), "ratio": finite(ratio), "target_ms": target, "met": met}),
                        );
                    }
                    Value::Object(fields)
                }
                _ => Value::Null,
            };
            json!({
                "key": scenario.key, "name": scenario.name, "path": scenario.path,
                "open_loop": scenario.open.as_ref().map(Summary::to_json),
                "added_vs_baseline": added,
                "closed_loop_probe": scenario.probe.as_ref().map(Summary::to_json),
                "processes": scenario.usage.iter().map(usage_json).collect::<Vec<_>>(),
                "background_cores": scenario.background_cores.and_then(finite),
                "notes": scenario.notes, "error": scenario.error,
            })
        })
        .collect();
    json!({
        "benchmark": "state_get",
        "binary": settings.binary,
        "settings": {
            "duration_s": settings.duration_s, "rate_rps": settings.rate, "connections": settings.connections,
            "value_bytes": settings.value_size, "warmup_s": settings.warmup_s, "warmup_rate_rps": settings.warmup_rate,
            "probe_s": settings.probe_s, "quick": settings.quick,
        },
        "targets": {
            "added_p50_ms": TARGET_ADDED_MS[0].1, "added_p90_ms": TARGET_ADDED_MS[1].1,
            "added_p99_ms": TARGET_ADDED_MS[2].1, "rss_mb_per_process": TARGET_RSS_MB,
        },
        "scenarios": scenarios,
        "cleanup": cleanup,
    })
}
