//! API log benchmark: the per-project API log's figures, in one run, in this process (no binary to build):
//!
//! 1. write throughput: the real `ApiLog` writer (`outrigger-telemetry`) writing into a fresh store, its producers
//!    paced so that its bounded queue never overflows (the writer's sustainable rate), then unpaced (a burst: what
//!    the queue drops is counted), against a plain multi-row INSERT loop of the same rows into a bare table with
//!    the same columns and indexes: target >= 50,000 records/s on the embedded form (SQLite);
//! 2. "without slowing calls": what `ApiLog::record` costs the caller per call against a plain bounded tokio
//!    channel's `try_send`, and how long a small control-plane read waits while the writer writes;
//! 3. the logs query (`GET /projects/{p}/logs`, through the store as the control API runs it) over `--records`
//!    calls for each common filter set, against a primary-key lookup in the same database: target p99 <= 100 ms
//!    over 10 million records.
//!
//! Each on SQLite (the embedded form) and PostgreSQL (the distributed form's control plane, a fresh schema dropped
//! at the end). `cargo bench --bench api_log -- --help` lists the options.

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod calls;
mod db;
mod query;
mod write;

use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::bail;
use serde_json::{json, Value};

use crate::common::cli;
use crate::common::forms::{parse_forms, Form};
use crate::common::setup::progress;
use crate::db::Database;
use crate::query::{QueryResults, TARGET_P99_MS};
use crate::write::{RecordCost, Throughput};

const USAGE: &str = "\
usage: cargo bench --bench api_log -- [options]

  --quick              smaller everything (50,000 writes, 100,000 records, 50 queries per filter set);
                       env BENCH_QUICK=1
  --writes N           calls written per write scenario (default 500000); env BENCH_WRITES
  --producers N        tasks handing calls to the writer (default 4); env BENCH_PRODUCERS
  --record-calls N     calls timed one by one for record()'s cost (default 200000); env BENCH_RECORD_CALLS
  --records N          calls in the store the logs query reads (default 1000000; the target is about
                       10000000); env BENCH_RECORDS
  --queries N          queries per filter set (default 200); env BENCH_QUERIES
  --set-seconds S      time limit per filter set (default 15); env BENCH_SET_SECONDS
  --forms LIST         embedded (SQLite), distributed (PostgreSQL) or both (default both); env BENCH_FORMS
  --parts LIST         write, record, query, or several (default all three); env BENCH_PARTS

  BENCH_POSTGRES_URL   default TEST_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432/postgres

Writes the results to target/bench/api_log.json as well.

";

/// The targets.
const TARGET_WRITES_PER_S: f64 = 50_000.0;

struct Options {
    quick: bool,
    writes: u64,
    producers: usize,
    record_calls: u64,
    records: u64,
    queries: usize,
    set_seconds: f64,
    forms: Vec<Form>,
    parts: Vec<String>,
    postgres_url: String,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let args = cli::parse(
            USAGE,
            &[
                ("writes", "BENCH_WRITES"),
                ("producers", "BENCH_PRODUCERS"),
                ("record-calls", "BENCH_RECORD_CALLS"),
                ("records", "BENCH_RECORDS"),
                ("queries", "BENCH_QUERIES"),
                ("set-seconds", "BENCH_SET_SECONDS"),
                ("forms", "BENCH_FORMS"),
                ("parts", "BENCH_PARTS"),
            ],
        )?;
        let quick = args.quick;
        let parts: Vec<String> = args
            .value("parts")
            .unwrap_or("write,record,query")
            .split(',')
            .map(|part| part.trim().to_owned())
            .filter(|part| !part.is_empty())
            .collect();
        if let Some(unknown) = parts.iter().find(|part| !["write", "record", "query"].contains(&part.as_str())) {
            bail!("parts: unknown part '{unknown}' (write, record, query)");
        }
        let options = Options {
            quick,
            writes: args.number("writes", if quick { 50_000 } else { 500_000 })?,
            producers: args.number("producers", 4)?,
            record_calls: args.number("record-calls", if quick { 50_000 } else { 200_000 })?,
            records: args.number("records", if quick { 100_000 } else { 1_000_000 })?,
            queries: args.number("queries", if quick { 50 } else { 200 })?,
            set_seconds: args.number("set-seconds", if quick { 5.0 } else { 15.0 })?,
            forms: parse_forms(args.value("forms"))?,
            parts,
            postgres_url: cli::env("BENCH_POSTGRES_URL")
                .or_else(|| cli::env("TEST_POSTGRES_URL"))
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        };
        if options.writes == 0
            || options.producers == 0
            || options.record_calls == 0
            || options.records == 0
            || options.queries == 0
            || options.set_seconds <= 0.0
        {
            bail!("writes, producers, record-calls, records, queries and set-seconds must all be greater than 0");
        }
        Ok(options)
    }

    fn runs(&self, part: &str) -> bool {
        self.parts.iter().any(|wanted| wanted == part)
    }

    fn to_json(&self) -> Value {
        json!({
            "quick": self.quick, "writes": self.writes, "producers": self.producers,
            "record_calls": self.record_calls, "records": self.records, "queries": self.queries,
            "set_seconds": self.set_seconds, "forms": self.forms.iter().map(|form| form.name()).collect::<Vec<_>>(),
            "parts": self.parts,
        })
    }
}

/// One form's results.
struct FormResults {
    form: Form,
    writes: Vec<Throughput>,
    mean_text_bytes: f64,
    minute_rows_per_batch: f64,
    record: Option<RecordCost>,
    query: Option<QueryResults>,
    errors: Vec<String>,
}

async fn measure_writes(
    options: &Options,
    form: Form,
    schemas: &Mutex<Vec<String>>,
    results: &mut FormResults,
) -> anyhow::Result<()> {
    let postgres = (form == Form::Distributed).then_some(options.postgres_url.as_str());
    let projects = calls::write_projects();
    let start = outrigger_store::now_millis();
    let rows = calls::calls(&projects, 0, options.writes, start);
    results.mean_text_bytes = calls::mean_text_bytes(&rows);
    let name = form.database();
    progress(format!("{name}: baseline, {} rows into a bare table", options.writes));
    let database = Database::fresh(postgres, schemas).await?;
    let baseline = write::bare_inserts(&database, &rows, false).await?;
    progress(format!("{name}: baseline {:.0} rows/s", baseline.rate()));
    results.writes.push(baseline);
    progress(format!("{name}: the same rows and their per-minute counts, upserted in multi-row statements"));
    let database = Database::fresh(postgres, schemas).await?;
    let with_counts = write::bare_inserts(&database, &rows, true).await?;
    drop(rows);
    progress(format!("{name}: bare table with counts {:.0} rows/s", with_counts.rate()));
    results.writes.push(with_counts);
    let database = Database::fresh(postgres, schemas).await?;
    let rows = calls::calls(&projects, 0, options.writes, start);
    results.minute_rows_per_batch = write::minute_rows_per_batch(&rows);
    progress(format!("{name}: Store::record_api_calls directly, {} calls", options.writes));
    let direct = write::store_direct(&database, &rows).await?;
    drop((rows, database));
    progress(format!("{name}: store alone {:.0} rows/s", direct.rate()));
    results.writes.push(direct);
    for (paced, one_group) in [(true, false), (false, false), (true, true)] {
        let database = Database::fresh(postgres, schemas).await?;
        let mut rows = calls::calls(&projects, 0, options.writes, start);
        if one_group {
            // Every call from one App ID of one project to one API: one per-minute row per batch and minute.
            for call in &mut rows {
                call.project_id = projects[0].clone();
                call.app_id = "checkout".to_owned();
                call.api = "state".into();
                call.direction = outrigger_store::CallDirection::FromApp;
            }
        }
        progress(format!(
            "{name}: ApiLog writer, {} calls from {} producers{}{}",
            options.writes,
            options.producers,
            if paced { ", paced" } else { " as fast as they can" },
            if one_group { ", one project/App ID/API" } else { "" }
        ));
        let probe = paced && !one_group;
        let outcome = write::writer(&database, rows, options.producers, paced, probe, one_group, 0).await?;
        progress(format!(
            "{name}: {:.0} records/s written, {} dropped, {:.2} s",
            outcome.rate(),
            outcome.dropped,
            outcome.elapsed.as_secs_f64()
        ));
        results.writes.push(outcome);
    }
    Ok(())
}

async fn measure_form(options: &Options, form: Form, schemas: &Mutex<Vec<String>>) -> FormResults {
    let mut results = FormResults {
        form,
        writes: Vec::new(),
        mean_text_bytes: 0.0,
        minute_rows_per_batch: 0.0,
        record: None,
        query: None,
        errors: Vec::new(),
    };
    let postgres = (form == Form::Distributed).then_some(options.postgres_url.as_str());
    let name = form.database();
    if options.runs("write") {
        if let Err(err) = measure_writes(options, form, schemas, &mut results).await {
            progress(format!("{name}: write throughput FAILED: {err:#}"));
            results.errors.push(format!("write throughput: {err:#}"));
        }
    }
    if options.runs("record") {
        let outcome = async {
            let database = Database::fresh(postgres, schemas).await?;
            write::record_cost(&database, options.record_calls, 10_000).await
        };
        match outcome.await {
            Ok(cost) => results.record = Some(cost),
            Err(err) => {
                progress(format!("{name}: record() cost FAILED: {err:#}"));
                results.errors.push(format!("record() cost: {err:#}"));
            }
        }
    }
    if options.runs("query") {
        let outcome = async {
            let database = Database::fresh(postgres, schemas).await?;
            progress(format!("{name}: filling a store with {} calls", options.records));
            let query = query::run(&database, options.records, options.queries, options.set_seconds).await;
            // The writer's rate into a store that already holds calls: its indexes no longer fit in caches.
            let prefilled = match &query {
                Ok(query) if options.runs("write") => {
                    progress(format!("{name}: ApiLog writer, {} calls, paced, into the filled store", options.writes));
                    let rows = calls::calls(&calls::write_projects(), 0, options.writes, outrigger_store::now_millis());
                    let rows_before = query.filled.rows;
                    Some(write::writer(&database, rows, options.producers, true, false, false, rows_before).await)
                }
                _ => None,
            };
            if let Some(schema) = &database.schema {
                // 10 million rows take gigabytes: gone as soon as they were read.
                let line = common::setup::drop_schema(&options.postgres_url, schema).await;
                progress(format!("cleanup: {line}"));
                if let Ok(mut schemas) = schemas.lock() {
                    schemas.retain(|kept| kept != schema);
                }
            }
            anyhow::Ok((query?, prefilled))
        };
        match outcome.await {
            Ok((query, prefilled)) => {
                results.query = Some(query);
                match prefilled {
                    Some(Ok(write)) => {
                        progress(format!("{name}: {:.0} records/s into the filled store", write.rate()));
                        results.writes.push(write);
                    }
                    Some(Err(err)) => {
                        progress(format!("{name}: writing into the filled store FAILED: {err:#}"));
                        results.errors.push(format!("writing into the filled store: {err:#}"));
                    }
                    None => {}
                }
            }
            Err(err) => {
                progress(format!("{name}: logs query FAILED: {err:#}"));
                results.errors.push(format!("logs query: {err:#}"));
            }
        }
    }
    results
}

fn ns(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |ms| format!("{:.0}", ms * 1e6))
}

fn ms(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |value| format!("{value:.2}"))
}

fn report(options: &Options, results: &mut [FormResults]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if results.iter().any(|form| !form.writes.is_empty()) {
        let bytes = results.iter().map(|form| form.mean_text_bytes).fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "\nAPI log write throughput: {} calls per scenario (~{bytes:.0} B of text each, 100 projects), a fresh \
             database each; records/s = rows committed / time from the first call handed over to the last commit",
            options.writes
        );
        let _ = writeln!(
            out,
            "{:<11} {:<52} {:>10} {:>7} {:>9} {:>9} {:>8} {:>6} {:>6}",
            "database", "scenario", "records/s", "ratio", "written", "dropped", "secs", "bench", "other"
        );
        for form in results.iter() {
            let baseline = form.writes.iter().find(|write| write.key == "baseline").map(Throughput::rate);
            for write in &form.writes {
                let _ = writeln!(
                    out,
                    "{:<11} {:<52} {:>10.0} {:>6.2}x {:>9} {:>9} {:>8.2} {:>6.2} {:>6.2}",
                    form.form.database(),
                    write.name,
                    write.rate(),
                    baseline.map_or(f64::NAN, |base| write.rate() / base),
                    write.written,
                    write.dropped,
                    write.elapsed.as_secs_f64(),
                    write.cpu.bench_cores,
                    write.cpu.other_cores,
                );
            }
        }
        let _ = writeln!(out, "(bench/other: cores this process and the rest of the machine used meanwhile)");
        for form in results.iter().filter(|form| form.minute_rows_per_batch > 0.0) {
            let _ = writeln!(
                out,
                "{}: besides its inserts, the writer upserts {:.0} per-minute count rows per 1000-call batch (52 per \
                 statement on SQLite, one statement on PostgreSQL) for this mix; the one-project/App ID/API run \
                 upserts 1-2",
                form.form.database(),
                form.minute_rows_per_batch
            );
        }
        for form in results.iter() {
            if let Some(paced) = form.writes.iter().find(|write| write.key == "writer_paced") {
                let target = if form.form == Form::Embedded { " (the target)" } else { "" };
                let _ = writeln!(
                    out,
                    "{}: writer's sustainable rate {:.0} records/s{target}: {}",
                    form.form.database(),
                    paced.rate(),
                    if paced.rate() >= TARGET_WRITES_PER_S { "ok (>= 50,000)" } else { "MISS (< 50,000)" }
                );
            }
            if let Some(prefilled) = form.writes.iter().find(|write| write.key == "writer_prefilled") {
                let _ = writeln!(
                    out,
                    "{}: writer's rate into the query part's filled store ({} rows before): {:.0} records/s: {}",
                    form.form.database(),
                    prefilled.rows - prefilled.written,
                    prefilled.rate(),
                    if prefilled.rate() >= TARGET_WRITES_PER_S { "ok (>= 50,000)" } else { "MISS (< 50,000)" }
                );
            }
            if let Some(burst) = form.writes.iter().find(|write| write.key == "writer_burst") {
                let _ = writeln!(
                    out,
                    "{}: burst: {} calls handed over in {:.3} s ({:.0}/s), {} dropped by the full queue ({:.1} %)",
                    form.form.database(),
                    burst.offered,
                    burst.handed_over.unwrap_or_default().as_secs_f64(),
                    burst.offered as f64 / burst.handed_over.unwrap_or_default().as_secs_f64().max(1e-9),
                    burst.dropped,
                    100.0 * burst.dropped as f64 / burst.offered.max(1) as f64
                );
            }
            for write in &form.writes {
                if let Some((idle, busy)) = &write.probe {
                    let (mut idle, mut busy) = (idle.clone(), busy.clone());
                    let _ = writeln!(
                        out,
                        "{}: control-plane read (a transaction looking a project up) p50 / p99 / max: idle {} / {} / \
                         {} ms, while the writer writes {} / {} / {} ms",
                        form.form.database(),
                        ms(idle.percentile_ms(50.0)),
                        ms(idle.percentile_ms(99.0)),
                        ms(idle.max_ms()),
                        ms(busy.percentile_ms(50.0)),
                        ms(busy.percentile_ms(99.0)),
                        ms(busy.max_ms()),
                    );
                }
                for note in &write.notes {
                    let _ = writeln!(out, "- {} {}: {note}", form.form.database(), write.key);
                }
            }
        }
    }

    if results.iter().any(|form| form.record.is_some()) {
        let _ = writeln!(
            out,
            "\ncaller's cost per call, ns (each call timed alone, timer included; bursts of 10,000, each drained \
             before the next)"
        );
        let _ = writeln!(
            out,
            "{:<11} {:<40} {:>7} {:>7} {:>7} {:>9} {:>7} {:>14}",
            "writer on", "hand-over", "p50", "p99", "p99.9", "max", "mean", "ratio p50/mean"
        );
        for form in results.iter_mut() {
            let Some(cost) = &mut form.record else { continue };
            let calls = cost.calls.max(1) as f64;
            let base_p50 = cost.channel.percentile_ms(50.0).unwrap_or(f64::NAN);
            let base_mean = cost.channel_total.as_secs_f64() * 1e3 / calls;
            let rows = [
                ("baseline: tokio mpsc try_send (65,536)", &mut cost.channel, cost.channel_total),
                ("ApiLog::record", &mut cost.record, cost.record_total),
            ];
            for (label, latencies, total) in rows {
                let mean = total.as_secs_f64() * 1e3 / calls;
                let _ = writeln!(
                    out,
                    "{:<11} {:<40} {:>7} {:>7} {:>7} {:>9} {:>7.0} {:>6.2}x/{:.2}x",
                    form.form.database(),
                    label,
                    ns(latencies.percentile_ms(50.0)),
                    ns(latencies.percentile_ms(99.0)),
                    ns(latencies.percentile_ms(99.9)),
                    ns(latencies.max_ms()),
                    mean * 1e6,
                    latencies.percentile_ms(50.0).unwrap_or(f64::NAN) / base_p50,
                    mean / base_mean,
                );
            }
            if cost.dropped > 0 {
                let _ = writeln!(out, "- {}: {} calls dropped", form.form.database(), cost.dropped);
            }
        }
    }

    for form in results.iter_mut() {
        let Some(query) = &mut form.query else { continue };
        let filled = &query.filled;
        let _ = writeln!(
            out,
            "\nlogs query on {} over {} calls in {} blocks (1,000 projects over 71 h; heaviest {} calls, light ones \
             ~{:.0}; filled in {:.0} s); each query: a transaction, the project by name, one page of 100 (as the \
             route); target p99 <= {TARGET_P99_MS} ms",
            form.form.database(),
            filled.rows,
            filled.blocks,
            filled.heavy_rows,
            filled.light_rows,
            filled.took.as_secs_f64()
        );
        let base_p99 = query.baseline.percentile_ms(99.0).unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "{:<32} {:<18} {:<9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>6}  target",
            "filter", "selects", "projects", "queries", "p50 ms", "p99 ms", "max ms", "p99 ratio", "calls"
        );
        let _ = writeln!(
            out,
            "{:<32} {:<18} {:<9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>6}",
            "baseline: primary-key lookup",
            "one block",
            "-",
            query.baseline.len(),
            ms(query.baseline.percentile_ms(50.0)),
            ms(query.baseline.percentile_ms(99.0)),
            ms(query.baseline.max_ms()),
            "1.0x",
            1
        );
        for set in &mut query.sets {
            let p99 = set.p99();
            let measured = set.latencies.len() > 0;
            let met = !measured || p99 <= TARGET_P99_MS;
            let _ = writeln!(
                out,
                "{:<32} {:<18} {:<9} {:>7} {:>9} {:>9} {:>9} {:>8.0}x {:>6.0}  {}{}",
                set.query,
                set.selects,
                set.projects,
                set.latencies.len(),
                ms(set.latencies.percentile_ms(50.0)),
                ms(Some(p99)),
                ms(set.latencies.max_ms()),
                p99 / base_p99,
                set.mean_items,
                match (measured, met) {
                    (false, _) => "n/a: no second page",
                    (true, true) => "ok",
                    (true, false) => "MISS",
                },
                if set.capped { " (time limit)" } else { "" }
            );
        }
    }
    for form in results.iter() {
        for error in &form.errors {
            let _ = writeln!(out, "- {}: FAILED: {error}", form.form.database());
        }
    }
    out
}

fn to_json(options: &Options, results: &mut [FormResults], cleanup: &[String]) -> Value {
    let forms: Vec<Value> = results
        .iter_mut()
        .map(|form| {
            let baseline = form.writes.iter().find(|write| write.key == "baseline").map(Throughput::rate);
            let writes: Vec<Value> = form.writes.iter().map(|write| write.to_json(baseline)).collect();
            let query = form.query.as_mut().map(|query| {
                let mut baseline = query.baseline.clone();
                json!({
                    "rows": query.filled.rows, "blocks": query.filled.blocks, "fill_s": query.filled.took.as_secs_f64(),
                    "heaviest_project_rows": query.filled.heavy_rows, "light_project_rows": query.filled.light_rows,
                    "baseline_primary_key": {
                        "queries": baseline.len(), "p50_ms": baseline.percentile_ms(50.0),
                        "p99_ms": baseline.percentile_ms(99.0), "max_ms": baseline.max_ms(),
                    },
                    "filter_sets": query.sets.iter_mut().map(query::SetResult::report_json).collect::<Vec<_>>(),
                })
            });
            json!({
                "form": form.form.name(), "database": form.form.database(),
                "write_throughput": writes, "mean_text_bytes_per_call": form.mean_text_bytes,
                "minute_rows_per_1000_call_batch": form.minute_rows_per_batch,
                "record_cost": form.record.as_mut().map(RecordCost::report_json),
                "logs_query": query, "errors": form.errors,
            })
        })
        .collect();
    json!({
        "benchmark": "api_log",
        "settings": options.to_json(),
        "targets": {"write_records_per_s_embedded": TARGET_WRITES_PER_S, "logs_query_p99_ms": TARGET_P99_MS},
        "forms": forms,
        "cleanup": cleanup,
    })
}

async fn run(options: Options) -> ExitCode {
    query::install_warnings();
    let schemas = Mutex::new(Vec::new());
    let mut results = Vec::new();
    let interrupted = tokio::select! {
        () = async {
            for form in options.forms.clone() {
                results.push(measure_form(&options, form, &schemas).await);
            }
        } => false,
        _ = tokio::signal::ctrl_c() => {
            progress("interrupted: cleaning up");
            true
        }
    };
    let cleanup = db::drop_schemas(&options.postgres_url, &schemas).await;
    println!("{}", report(&options, &mut results));
    cli::write_json(&cli::target_dir(), &to_json(&options, &mut results, &cleanup));
    if interrupted || results.iter().any(|form| !form.errors.is_empty()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    // Two scheduler threads: the producers and the writer run side by side, as in the gateway.
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: building the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(options))
}
