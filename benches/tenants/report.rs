//! What one run of the tenants bench gives per form and project count, and how it is printed (one column per
//! project count, each figure next to its target and, where it has one, its ratio to a baseline measured in
//! the same run) and stored as JSON.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::forms::Form;
use crate::common::latency::Scenario;
use crate::common::load::Latencies;
use crate::common::report::finite;
use crate::measure::{Cold, Settled, Warmed, Window};
use crate::seed::{Write, Writes};

/// The targets.
pub const IDLE_CORES: f64 = 0.02;
pub const WRITE_P50_MS: f64 = 10.0;
pub const WRITE_RATIO: f64 = 1.5;
pub const RSS_MB: f64 = 300.0;

/// Percentiles of a set of latencies, in milliseconds (NaN when empty).
#[derive(Clone, Copy, Debug)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(latencies: &mut Latencies) -> Percentiles {
        let mut at = |p: f64| latencies.percentile_ms(p).unwrap_or(f64::NAN);
        let (p50, p90, p99, max) = (at(50.0), at(90.0), at(99.0), at(100.0));
        Percentiles { count: latencies.len(), p50, p90, p99, max }
    }

    pub fn to_json(self) -> Value {
        json!({
            "count": self.count, "p50_ms": finite(self.p50), "p90_ms": finite(self.p90), "p99_ms": finite(self.p99),
            "max_ms": finite(self.max),
        })
    }
}

/// A phase of control-API writes: projects `from..to` created by `writers` concurrent writers.
pub struct WritePhase {
    pub from: usize,
    pub to: usize,
    pub writers: usize,
    pub writes: Writes,
    /// CPU of the processes (the bench's too: it is the client) and of the rest of the machine meanwhile.
    pub usage: Option<Window>,
}

impl WritePhase {
    pub fn all(&self) -> Percentiles {
        Percentiles::of(&mut self.writes.latencies(None))
    }

    pub fn of(&self, write: Write) -> Percentiles {
        Percentiles::of(&mut self.writes.latencies(Some(write)))
    }

    pub fn rate(&self) -> f64 {
        self.writes.latencies(None).len() as f64 / self.writes.elapsed.as_secs_f64().max(1e-9)
    }

    /// Outrigger CPU milliseconds per write (PostgreSQL's sessions apart), and the other load meanwhile.
    pub fn cost(&self) -> Option<(f64, Option<f64>, Option<f64>)> {
        let usage = self.usage.as_ref()?;
        let count = self.writes.latencies(None).len().max(1) as f64;
        let outrigger: f64 = usage.processes.iter().filter(|p| p.outrigger).map(|p| p.cpu_seconds).sum();
        let postgres =
            usage.processes.iter().find(|p| p.name.starts_with("PostgreSQL")).map(|p| p.cpu_seconds * 1e3 / count);
        Some((outrigger * 1e3 / count, postgres, usage.background_cores))
    }

    pub fn to_json(&self) -> Value {
        let per_write: serde_json::Map<String, Value> =
            Write::ALL.iter().map(|write| (write.name().to_owned(), self.of(*write).to_json())).collect();
        json!({
            "projects_from": self.from, "projects_to": self.to, "writers": self.writers,
            "all": self.all().to_json(), "by_request": per_write,
            "seconds": finite(self.writes.elapsed.as_secs_f64()), "writes_per_second": finite(self.rate()),
            "errors": self.writes.errors, "first_error": self.writes.first_error,
            "usage": self.usage.as_ref().map(Window::to_json),
        })
    }
}

/// Everything measured at one project count.
pub struct SizeRun {
    pub projects: usize,
    /// Projects seeded through the store to reach this count, and how long it took.
    pub seeded: Option<(usize, Duration)>,
    /// Seconds from start to the ready line(s), and the rest after it.
    pub started: Option<(f64, Settled)>,
    pub writes: Option<WritePhase>,
    pub after_writes: Option<Settled>,
    pub cold: Option<Cold>,
    pub warmed: Option<Warmed>,
    pub rss_after_warm: Vec<(String, Option<f64>)>,
    /// The direct read (baseline), GETs over the hot set, GETs over every warm project.
    pub gets: Vec<Scenario>,
    pub idle: Option<Window>,
    pub rss_end: Vec<(String, Option<f64>)>,
    pub notes: Vec<String>,
    pub error: Option<String>,
}

impl SizeRun {
    pub fn new(projects: usize) -> SizeRun {
        SizeRun {
            projects,
            seeded: None,
            started: None,
            writes: None,
            after_writes: None,
            cold: None,
            warmed: None,
            rss_after_warm: Vec::new(),
            gets: Vec::new(),
            idle: None,
            rss_end: Vec::new(),
            notes: Vec::new(),
            error: None,
        }
    }

    /// The GET scenario `key` names, when it ran its open loop.
    pub fn get(&self, key: &str) -> Option<&Scenario> {
        self.gets.iter().find(|scenario| scenario.key == key && scenario.open.is_some())
    }
}

/// One form's runs.
pub struct FormRun {
    pub form: Form,
    /// The first control-API projects, on an empty control plane: the write baseline.
    pub baseline: Option<WritePhase>,
    pub sizes: Vec<SizeRun>,
    pub notes: Vec<String>,
    pub error: Option<String>,
}

/// The settings printed with the results.
pub struct Settings {
    pub binary: String,
    pub sizes: Vec<usize>,
    pub rest: usize,
    pub writers: usize,
    pub warm: usize,
    pub hot: usize,
    pub cold: usize,
    pub idle: Duration,
    pub settle: Duration,
    pub get_duration: Duration,
    pub rate: f64,
    pub connections: usize,
    pub app_endpoints: bool,
    pub quick: bool,
}

impl Settings {
    pub fn to_json(&self) -> Value {
        json!({
            "projects": self.sizes, "through_control_api": self.rest, "writers": self.writers,
            "warmed": self.warm, "hot_set": self.hot, "cold_calls": self.cold, "idle_s": self.idle.as_secs_f64(),
            "settle_s": self.settle.as_secs_f64(), "get_duration_s": self.get_duration.as_secs_f64(),
            "get_rate_rps": self.rate, "connections": self.connections, "app_endpoints": self.app_endpoints,
            "quick": self.quick, "binary": self.binary,
        })
    }
}

pub const GET_DIRECT: &str = "direct";
pub const GET_HOT: &str = "hot";
pub const GET_WARM: &str = "warm";

/// The ratio of `value` to `base`, when both are figures and the base is above zero.
pub fn ratio(value: f64, base: f64) -> Option<f64> {
    (value.is_finite() && base.is_finite() && base > 0.0).then(|| value / base)
}

pub fn number(value: usize) -> String {
    let text = value.to_string();
    let mut out = String::new();
    for (index, digit) in text.chars().enumerate() {
        if index > 0 && (text.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The settings' lines above the tables.
pub fn header(settings: &Settings) -> String {
    format!(
        "\ntenants: {} projects per form (each: managed kvstore and pubsub, App ID 'app'{}, component 'cache' \
         state.in-memory); all but the last {} seeded through the store with the processes stopped, the rest \
         through the control API with {} writers (the first {} on an empty control plane are the write baseline)\n\
         idle: {:.0} s with no traffic, after traffic ended and at least {:.0} s after the last control-plane write; \
         cold: {} projects never called; warm: {} projects saved once each; GETs of a {} B value at {:.0} req/s \
         for {:.0} s over {} connections, each with a random project's token\nbinary: {}\n",
        settings.sizes.iter().map(|size| number(*size)).collect::<Vec<_>>().join(" and "),
        if settings.app_endpoints { " with an appEndpoint at the bench's app" } else { "" },
        number(settings.rest),
        settings.writers,
        number(settings.rest),
        settings.idle.as_secs_f64(),
        settings.settle.as_secs_f64(),
        settings.cold,
        number(settings.warm),
        crate::measure::VALUE_BYTES,
        settings.rate,
        settings.get_duration.as_secs_f64(),
        settings.connections,
        settings.binary,
    )
}

fn settled_json(settled: Option<&Settled>) -> Value {
    settled.map_or(Value::Null, Settled::to_json)
}

fn rss_json(rss: &[(String, Option<f64>)]) -> Value {
    rss.iter()
        .map(|(name, rss)| json!({"process": name, "rss_mb": rss.and_then(finite), "target_met": rss.map(|rss| rss < RSS_MB)}))
        .collect()
}

fn scenario_json(scenario: &Scenario, base: Option<&Scenario>) -> Value {
    let ratio_to_base = match (scenario.open.as_ref(), base.and_then(|base| base.open.as_ref())) {
        (Some(open), Some(base)) if scenario.key != GET_DIRECT => json!({
            "p50": ratio(open.p50, base.p50).and_then(finite), "p99": ratio(open.p99, base.p99).and_then(finite),
        }),
        _ => Value::Null,
    };
    json!({
        "key": scenario.key, "name": scenario.name, "path": scenario.path,
        "open_loop": scenario.open.as_ref().map(|summary| summary.to_json()),
        "ratio_to_direct_read": ratio_to_base,
        "closed_loop_probe": scenario.probe.as_ref().map(|summary| summary.to_json()),
        "processes": scenario.usage.iter().map(|usage| usage.to_json()).collect::<Vec<_>>(),
        "background_cores": scenario.background_cores.and_then(finite),
        "notes": scenario.notes, "error": scenario.error,
    })
}

/// Everything as one JSON document.
pub fn to_json(settings: &Settings, runs: &[FormRun], cleanup: &[String]) -> Value {
    let forms: Vec<Value> = runs
        .iter()
        .map(|run| {
            let baseline = run.baseline.as_ref().map(WritePhase::all);
            let sizes: Vec<Value> = run
                .sizes
                .iter()
                .map(|size| {
                    let writes = size.writes.as_ref().map(|phase| {
                        let mut value = phase.to_json();
                        let all = phase.all();
                        value["ratio_to_baseline"] = json!({
                            "p50": baseline.and_then(|base| ratio(all.p50, base.p50)).and_then(finite),
                            "p99": baseline.and_then(|base| ratio(all.p99, base.p99)).and_then(finite),
                        });
                        value["p50_target_met"] = json!(all.p50 <= WRITE_P50_MS);
                        value["ratio_target_met"] =
                            json!(baseline.and_then(|base| ratio(all.p50, base.p50)).map(|r| r <= WRITE_RATIO));
                        value
                    });
                    let idle = size.idle.as_ref().map(|idle| {
                        let mut value = idle.to_json();
                        let held: Vec<Value> = idle
                            .processes
                            .iter()
                            .filter(|process| process.outrigger)
                            .map(|process| json!({"process": process.name, "met": process.cores < IDLE_CORES}))
                            .collect();
                        value["target_cores"] = json!(IDLE_CORES);
                        value["target_met"] = Value::Array(held);
                        value
                    });
                    let cold = size.cold.clone().map(|mut cold| {
                        let first = Percentiles::of(&mut cold.first);
                        let second = Percentiles::of(&mut cold.second);
                        json!({
                            "first_call": first.to_json(), "second_call": second.to_json(),
                            "ratio_p50": ratio(first.p50, second.p50).and_then(finite),
                            "errors": cold.errors, "first_error": cold.first_error,
                        })
                    });
                    let warmed = size.warmed.clone().map(|mut warmed| {
                        json!({
                            "projects": warmed.count, "first_save": Percentiles::of(&mut warmed.latencies).to_json(),
                            "seconds": finite(warmed.elapsed.as_secs_f64()), "errors": warmed.errors,
                            "first_error": warmed.first_error,
                        })
                    });
                    let direct = size.get(GET_DIRECT);
                    json!({
                        "projects": size.projects,
                        "seeded": size.seeded.map(|(count, took)| json!({"projects": count, "seconds": finite(took.as_secs_f64())})),
                        "start": size.started.as_ref().map(|(ready, settled)| json!({"ready_s": finite(*ready), "settle": settled.to_json()})),
                        "writes": writes,
                        "after_writes": settled_json(size.after_writes.as_ref()),
                        "idle": idle,
                        "cold": cold,
                        "warm": warmed,
                        "rss_after_warm": rss_json(&size.rss_after_warm),
                        "rss_end": rss_json(&size.rss_end),
                        "gets": size.gets.iter().map(|scenario| scenario_json(scenario, direct)).collect::<Vec<_>>(),
                        "notes": size.notes, "error": size.error,
                    })
                })
                .collect();
            json!({
                "form": run.form.name(), "database": run.form.database(),
                "write_baseline": run.baseline.as_ref().map(WritePhase::to_json),
                "sizes": sizes, "notes": run.notes, "error": run.error,
            })
        })
        .collect();
    json!({
        "benchmark": env!("CARGO_CRATE_NAME"),
        "settings": settings.to_json(),
        "targets": {
            "idle_cores": IDLE_CORES, "write_p50_ms": WRITE_P50_MS, "write_p50_ratio": WRITE_RATIO,
            "rss_mb_per_process": RSS_MB,
        },
        "forms": forms,
        "cleanup": cleanup,
    })
}
