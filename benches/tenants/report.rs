//! What one run of the tenants bench gives per form and project count, and how it is printed (one column per
//! project count, each figure next to its target and, where it has one, its ratio to a baseline measured in
//! the same run) and stored as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::forms::Form;
use crate::common::latency::Scenario;
use crate::common::load::Latencies;
use crate::common::report::{finite, verdict};
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

    fn get(&self, key: &str) -> Option<&Scenario> {
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

fn number(value: usize) -> String {
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

fn ms2(p: f64, q: f64) -> String {
    if p.is_finite() && q.is_finite() {
        format!("{p:.2} / {q:.2}")
    } else {
        "-".to_owned()
    }
}

fn ratio(value: f64, base: f64) -> Option<f64> {
    (value.is_finite() && base.is_finite() && base > 0.0).then(|| value / base)
}

/// A table with one column per project count.
struct Table {
    columns: Vec<String>,
    rows: Vec<(String, Vec<String>, String)>,
}

impl Table {
    fn row(&mut self, label: impl Into<String>, cells: Vec<String>, target: impl Into<String>) {
        self.rows.push((label.into(), cells, target.into()));
    }

    fn render(&self, out: &mut String) {
        let label_width = self.rows.iter().map(|(label, _, _)| label.chars().count()).max().unwrap_or(0).max(10);
        let width = self
            .rows
            .iter()
            .flat_map(|(_, cells, _)| cells.iter().map(|cell| cell.chars().count()))
            .chain(self.columns.iter().map(|column| column.chars().count()))
            .max()
            .unwrap_or(10)
            .max(12);
        let _ = write!(out, "{:<label_width$}", "");
        for column in &self.columns {
            let _ = write!(out, "  {column:>width$}");
        }
        let _ = writeln!(out, "  target");
        for (label, cells, target) in &self.rows {
            let _ = write!(out, "{label:<label_width$}");
            for cell in cells {
                let _ = write!(out, "  {cell:>width$}");
            }
            let _ = writeln!(out, "  {target}");
        }
    }
}

fn cell<T>(value: Option<T>, show: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "-".to_owned(), show)
}

/// One form's tables, as printed at the end.
pub fn form_table(settings: &Settings, run: &FormRun) -> String {
    let mut out = String::new();
    let title = match run.form {
        Form::Embedded => "embedded (all-in-one, SQLite)",
        Form::Distributed => "distributed (worker, gateway, control-api; PostgreSQL, NATS)",
    };
    let _ = writeln!(out, "\n== {title} ==");
    if let Some(error) = &run.error {
        let _ = writeln!(out, "FAILED: {error}");
    }
    let sizes = &run.sizes;
    let columns: Vec<String> = sizes.iter().map(|size| format!("{} projects", number(size.projects))).collect();
    let mut table = Table { columns, rows: Vec::new() };

    table.row(
        "seeded through the store",
        sizes
            .iter()
            .map(|size| cell(size.seeded, |(count, took)| format!("{} in {:.1} s", number(count), took.as_secs_f64())))
            .collect(),
        "",
    );
    table.row(
        "start: ready / quiet, s",
        sizes
            .iter()
            .map(|size| {
                cell(size.started.as_ref(), |(ready, settled)| {
                    format!("{ready:.1} / {:.0}{}", settled.seconds, if settled.quiet { "" } else { "!" })
                })
            })
            .collect(),
        "(quiet: 3 s under 0.05 cores, no app calls)",
    );
    table.row(
        "  its CPU-s, /dapr/subscribe calls",
        sizes
            .iter()
            .map(|size| {
                cell(size.started.as_ref(), |(_, settled)| {
                    format!("{:.1}, {}", settled.cpu_seconds, number(settled.app_calls.subscribe as usize))
                })
            })
            .collect(),
        "",
    );

    // Control-plane writes.
    let baseline = run.baseline.as_ref().map(WritePhase::all);
    if let Some(phase) = &run.baseline {
        let all = phase.all();
        let by_request: Vec<String> = Write::ALL
            .iter()
            .map(|write| {
                let p = phase.of(*write);
                format!("{} {}", write.name(), ms2(p.p50, p.p99))
            })
            .collect();
        let cost = phase.cost().map_or(String::new(), |(outrigger, postgres, background)| {
            format!(
                "; {outrigger:.2} Outrigger CPU-ms per write{}, other load {} cores",
                postgres.map_or(String::new(), |postgres| format!(" (+ {postgres:.2} PostgreSQL)")),
                background.map_or("?".to_owned(), |cores| format!("{cores:.2}"))
            )
        });
        let _ = writeln!(
            out,
            "control-plane write baseline: projects {}..{} through the control API, {} writers: p50 {:.2} ms, \
             p99 {:.2} ms ({} writes, {:.0}/s, {} errors{cost}; p50 / p99 ms by request: {})",
            number(phase.from),
            number(phase.to),
            phase.writers,
            all.p50,
            all.p99,
            all.count,
            phase.rate(),
            phase.writes.errors,
            by_request.join(", "),
        );
    }
    let write_of = |size: &SizeRun| -> Option<Percentiles> {
        match &size.writes {
            Some(phase) => Some(phase.all()),
            None if run.baseline.as_ref().is_some_and(|phase| phase.to == size.projects) => baseline,
            None => None,
        }
    };
    table.row(
        format!("writes, {} writers: p50 / p99 ms", settings.writers),
        sizes
            .iter()
            .map(|size| {
                cell(write_of(size), |all| format!("{} {}", ms2(all.p50, all.p99), verdict(all.p50 <= WRITE_P50_MS)))
            })
            .collect(),
        format!("p50 <= {WRITE_P50_MS} ms"),
    );
    table.row(
        "  ratio p50 / p99 vs the baseline",
        sizes
            .iter()
            .map(|size| {
                let (Some(all), Some(base)) = (write_of(size), baseline) else { return "-".to_owned() };
                match (ratio(all.p50, base.p50), ratio(all.p99, base.p99)) {
                    (Some(p50), Some(p99)) => format!("{p50:.2} / {p99:.2} {}", verdict(p50 <= WRITE_RATIO)),
                    _ => "-".to_owned(),
                }
            })
            .collect(),
        format!("p50 ratio <= {WRITE_RATIO}"),
    );
    for write in Write::ALL {
        table.row(
            format!("  {}", write.name()),
            sizes
                .iter()
                .map(|size| cell(size.writes.as_ref().map(|phase| phase.of(write)), |p| ms2(p.p50, p.p99)))
                .collect(),
            "",
        );
    }
    table.row(
        "  writes/s, errors",
        sizes
            .iter()
            .map(|size| cell(size.writes.as_ref(), |phase| format!("{:.0}, {}", phase.rate(), phase.writes.errors)))
            .collect(),
        "",
    );
    let cost = |phase: &WritePhase| {
        cell(phase.cost(), |(outrigger, postgres, background)| {
            format!(
                "{outrigger:.2}{}; {}",
                postgres.map_or(String::new(), |postgres| format!(" + PG {postgres:.2}")),
                cell(background, |cores| format!("{cores:.2}"))
            )
        })
    };
    table.row(
        "  CPU-ms per write; other load, cores",
        sizes
            .iter()
            .map(|size| match (&size.writes, &run.baseline) {
                (Some(phase), _) => cost(phase),
                (None, Some(phase)) if phase.to == size.projects => cost(phase),
                _ => "-".to_owned(),
            })
            .collect(),
        "(other load: want ~0)",
    );
    let stalls = |window: Option<&Window>| {
        cell(window, |window| {
            let share = |stall: Option<f64>| stall.map_or("?".to_owned(), |stall| format!("{:.0} %", stall * 100.0));
            format!("{} / {}", share(window.io_stall), share(window.cpu_stall))
        })
    };
    table.row(
        "  time stalled on disk / CPU",
        sizes
            .iter()
            .map(|size| match (&size.writes, &run.baseline) {
                (Some(phase), _) => stalls(phase.usage.as_ref()),
                (None, Some(phase)) if phase.to == size.projects => stalls(phase.usage.as_ref()),
                _ => "-".to_owned(),
            })
            .collect(),
        "(pressure stall information; want ~0)",
    );
    table.row(
        "after the writes: quiet after, s",
        sizes
            .iter()
            .map(|size| {
                cell(size.after_writes.as_ref(), |settled| {
                    format!(
                        "{:.0}{} ({:.1} CPU-s)",
                        settled.seconds,
                        if settled.quiet { "" } else { "!" },
                        settled.cpu_seconds
                    )
                })
            })
            .collect(),
        "",
    );

    // Idle.
    let idle_names: Vec<String> = {
        let mut names: Vec<String> = Vec::new();
        for size in sizes {
            for process in size.idle.iter().flat_map(|idle| idle.processes.iter()) {
                let name =
                    if process.name.starts_with("PostgreSQL") { "PostgreSQL".to_owned() } else { process.name.clone() };
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    };
    let idle_seconds = sizes.iter().find_map(|size| size.idle.as_ref().map(|idle| idle.seconds)).unwrap_or(0.0);
    table.row(format!("idle CPU over {idle_seconds:.0} s, cores:"), sizes.iter().map(|_| String::new()).collect(), "");
    for name in &idle_names {
        let held = !name.starts_with("PostgreSQL") && !name.starts_with('(');
        table.row(
            format!("  {name}"),
            sizes
                .iter()
                .map(|size| {
                    let process = size.idle.as_ref().and_then(|idle| {
                        idle.processes.iter().find(|process| {
                            process.name == *name || (name == "PostgreSQL" && process.name.starts_with("PostgreSQL"))
                        })
                    });
                    cell(process, |process| {
                        if held && process.outrigger {
                            format!("{:.4} {}", process.cores, verdict(process.cores < IDLE_CORES))
                        } else {
                            format!("{:.4}", process.cores)
                        }
                    })
                })
                .collect(),
            if held { format!("< {IDLE_CORES} (2 % of a core)") } else { String::new() },
        );
    }
    table.row(
        "  other load on the machine, cores",
        sizes
            .iter()
            .map(|size| cell(size.idle.as_ref().and_then(|idle| idle.background_cores), |c| format!("{c:.2}")))
            .collect(),
        "(want ~0)",
    );
    table.row("  time stalled on disk / CPU", sizes.iter().map(|size| stalls(size.idle.as_ref())).collect(), "");
    table.row(
        "  calls to the tenants' app",
        sizes.iter().map(|size| cell(size.idle.as_ref(), |idle| idle.app_calls.total().to_string())).collect(),
        "0",
    );

    // Cold and warm calls.
    table.row(
        "cold project, first GET: p50 / max ms",
        sizes
            .iter()
            .map(|size| {
                cell(size.cold.clone(), |mut cold| {
                    let first = Percentiles::of(&mut cold.first);
                    format!("{} (n={})", ms2(first.p50, first.max), first.count)
                })
            })
            .collect(),
        "",
    );
    table.row(
        "  its second GET p50 ms; ratio",
        sizes
            .iter()
            .map(|size| {
                cell(size.cold.clone(), |mut cold| {
                    let first = Percentiles::of(&mut cold.first);
                    let second = Percentiles::of(&mut cold.second);
                    format!("{:.2}; {}", second.p50, cell(ratio(first.p50, second.p50), |r| format!("{r:.1}x")))
                })
            })
            .collect(),
        "(baseline: the same project's next call)",
    );
    table.row(
        "warming (first save), p50 / p99 ms",
        sizes
            .iter()
            .map(|size| {
                cell(size.warmed.clone(), |mut warmed| {
                    let p = Percentiles::of(&mut warmed.latencies);
                    format!(
                        "{} ({:.0}/s)",
                        ms2(p.p50, p.p99),
                        warmed.count as f64 / warmed.elapsed.as_secs_f64().max(1e-9)
                    )
                })
            })
            .collect(),
        format!("{} connections", settings.connections),
    );
    let rss_names: Vec<String> = sizes
        .iter()
        .flat_map(|size| size.rss_after_warm.iter().map(|(name, _)| name.clone()))
        .fold(Vec::new(), |mut names, name| {
            if !names.contains(&name) {
                names.push(name);
            }
            names
        });
    for name in &rss_names {
        table.row(
            format!("RSS after warming, MB: {name}"),
            sizes
                .iter()
                .map(|size| {
                    let rss = size.rss_after_warm.iter().find(|(other, _)| other == name).and_then(|(_, rss)| *rss);
                    let warmed = size.warmed.as_ref().map_or(0, |warmed| warmed.count);
                    cell(rss, |rss| format!("{rss:.1} {} ({} warm)", verdict(rss < RSS_MB), number(warmed)))
                })
                .collect(),
            format!("< {RSS_MB} MB"),
        );
    }
    for name in &rss_names {
        table.row(
            format!("  at the end: {name}"),
            sizes
                .iter()
                .map(|size| {
                    let rss = size.rss_end.iter().find(|(other, _)| other == name).and_then(|(_, rss)| *rss);
                    cell(rss, |rss| format!("{rss:.1}"))
                })
                .collect(),
            "",
        );
    }

    // GETs.
    let gets = [
        (GET_DIRECT, "GET baseline: direct kvstore read".to_owned()),
        (GET_HOT, format!("GET over {} random warm projects", number(settings.hot))),
        (GET_WARM, "GET over every warm project".to_owned()),
    ];
    for (key, label) in gets {
        table.row(
            format!("{label}, p50 / p99 ms"),
            sizes
                .iter()
                .map(|size| {
                    cell(size.get(key).and_then(|scenario| scenario.open.as_ref()), |open| {
                        format!(
                            "{}{}",
                            ms2(open.p50, open.p99),
                            if open.errors > 0 { format!(" ({} err)", open.errors) } else { String::new() }
                        )
                    })
                })
                .collect(),
            if key == GET_DIRECT { "(baseline)".to_owned() } else { String::new() },
        );
        if key != GET_DIRECT {
            table.row(
                "  ratio p50 / p99 vs direct read",
                sizes
                    .iter()
                    .map(|size| {
                        let (Some(open), Some(base)) = (
                            size.get(key).and_then(|scenario| scenario.open.as_ref()),
                            size.get(GET_DIRECT).and_then(|scenario| scenario.open.as_ref()),
                        ) else {
                            return "-".to_owned();
                        };
                        match (ratio(open.p50, base.p50), ratio(open.p99, base.p99)) {
                            (Some(p50), Some(p99)) => format!("{p50:.1}x / {p99:.1}x"),
                            _ => "-".to_owned(),
                        }
                    })
                    .collect(),
                "",
            );
        }
        table.row(
            "  closed-loop probe req/s; other load",
            sizes
                .iter()
                .map(|size| {
                    cell(size.get(key), |scenario| {
                        format!(
                            "{}; {}",
                            cell(scenario.probe.as_ref(), |probe| format!("{:.0}", probe.rate)),
                            cell(scenario.background_cores, |cores| format!("{cores:.2}"))
                        )
                    })
                })
                .collect(),
            "",
        );
    }
    table.render(&mut out);

    let mut remarks: Vec<String> = run.notes.clone();
    for size in sizes {
        let at = format!("{} projects", number(size.projects));
        if let Some(error) = &size.error {
            remarks.push(format!("{at}: FAILED: {error}"));
        }
        for note in &size.notes {
            remarks.push(format!("{at}: {note}"));
        }
        if let Some(cold) = &size.cold {
            if let Some(first) = &cold.first_error {
                remarks.push(format!("{at}: cold calls: {} errors, first: {first}", cold.errors));
            }
        }
        if let Some(warmed) = &size.warmed {
            if let Some(first) = &warmed.first_error {
                remarks.push(format!("{at}: warming: {} errors, first: {first}", warmed.errors));
            }
        }
        if let Some(Some(first)) = size.writes.as_ref().map(|phase| &phase.writes.first_error) {
            remarks.push(format!("{at}: writes: first error: {first}"));
        }
        for scenario in &size.gets {
            if let Some(error) = &scenario.error {
                remarks.push(format!("{at}: {}: FAILED: {error}", scenario.name));
            }
            for note in &scenario.notes {
                remarks.push(format!("{at}: {}: {note}", scenario.name));
            }
            if let Some(first) = scenario.open.as_ref().and_then(|open| open.first_error.as_ref()) {
                remarks.push(format!("{at}: {}: first error: {first}", scenario.name));
            }
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
