//! The tenants bench's tables, as printed at the end: one column per project count, each figure next to its
//! target and, where it has one, its ratio to a baseline measured in the same run.

use std::fmt::Write as _;

use crate::common::forms::Form;
use crate::common::report::verdict;
use crate::measure::Window;
use crate::report::{
    number, ratio, FormRun, Percentiles, Settings, SizeRun, WritePhase, GET_DIRECT, GET_HOT, GET_WARM, IDLE_CORES,
    RSS_MB, WRITE_P50_MS, WRITE_RATIO,
};
use crate::seed::Write;

fn ms2(p: f64, q: f64) -> String {
    if p.is_finite() && q.is_finite() {
        format!("{p:.2} / {q:.2}")
    } else {
        "-".to_owned()
    }
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

/// The share of a window's time stalled on disk and on CPU.
fn stalls(window: Option<&Window>) -> String {
    cell(window, |window| {
        let share = |stall: Option<f64>| stall.map_or("?".to_owned(), |stall| format!("{:.0} %", stall * 100.0));
        format!("{} / {}", share(window.io_stall), share(window.cpu_stall))
    })
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

    write_rows(&mut out, &mut table, settings, run);
    idle_rows(&mut table, sizes);
    warming_rows(&mut table, settings, sizes);
    get_rows(&mut table, settings, sizes);
    table.render(&mut out);
    remarks(&mut out, run);
    out
}

/// Control-plane writes: the baseline's line above the table, and rows per project count.
fn write_rows(out: &mut String, table: &mut Table, settings: &Settings, run: &FormRun) {
    let sizes = &run.sizes;
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
}

/// Idle CPU per process, other load, and calls to the tenants' app.
fn idle_rows(table: &mut Table, sizes: &[SizeRun]) {
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
}

/// Cold projects' first calls, warming every project, and memory after.
fn warming_rows(table: &mut Table, settings: &Settings, sizes: &[SizeRun]) {
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
}

/// GETs over warm projects against the direct read.
fn get_rows(table: &mut Table, settings: &Settings, sizes: &[SizeRun]) {
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
}

/// What the figures do not show: failures and notes, per project count.
fn remarks(out: &mut String, run: &FormRun) {
    let sizes = &run.sizes;
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
}
