//! `outrigger logs` (a project's API log, filtered, or followed as calls arrive), `outrigger metrics` (requests,
//! errors and latency per App ID and per API over a window) and `outrigger usage`.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::api::ApiClient;
use super::output::{cell, emit, OutputArgs, OutputFormat, Table};
use super::ProjectArg;

/// How often `--follow` asks for new calls.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);
/// How far back each `--follow` poll looks again: calls reach the log in batches, up to a few seconds late.
const FOLLOW_OVERLAP: chrono::Duration = chrono::Duration::seconds(10);

#[derive(Args, Debug)]
pub struct LogsArgs {
    #[command(flatten)]
    project: ProjectArg,
    /// Only calls made by this App ID
    #[arg(short, long)]
    app: Option<String>,
    /// Only calls of this API (state, pubsub, invocation, workflows, jobs, bindings, secrets, lock, configuration)
    #[arg(long)]
    api: Option<String>,
    /// Only calls with this status: a code (404), a class (5xx) or `error`
    #[arg(long)]
    status: Option<String>,
    /// Only calls at or after this time (RFC 3339)
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Only calls whose path, method, component, target or App ID contain this text
    #[arg(short, long)]
    query: Option<String>,
    /// Only calls made by App IDs (`from_app`) or made to them by the platform (`to_app`: deliveries, job
    /// triggers, input binding events)
    #[arg(long, value_parser = ["from_app", "to_app"])]
    direction: Option<String>,
    /// How many of the newest calls to show
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Keep printing calls as they arrive, until interrupted
    #[arg(short, long)]
    follow: bool,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct MetricsArgs {
    #[command(flatten)]
    project: ProjectArg,
    /// The window: 1h, 6h, 24h or 7d
    #[arg(short, long, default_value = "1h")]
    window: String,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct UsageArgs {
    #[command(flatten)]
    project: ProjectArg,
    #[command(flatten)]
    output: OutputArgs,
}

/// The newest page of calls matching `args`, at or after `since`, oldest first.
async fn newest_calls(
    api: &ApiClient,
    project: &str,
    args: &LogsArgs,
    since: Option<DateTime<Utc>>,
) -> anyhow::Result<Vec<Value>> {
    let mut base = api.url(&["projects", project, "logs"]);
    {
        let mut query = base.query_pairs_mut();
        query.append_pair("limit", &args.limit.to_string());
        let filters = [
            ("appId", &args.app),
            ("api", &args.api),
            ("status", &args.status),
            ("q", &args.query),
            ("direction", &args.direction),
        ];
        for (name, value) in filters {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        if let Some(since) = since {
            query.append_pair("since", &since.to_rfc3339());
        }
    }
    // A page examines a window of calls for its filters: a short page with a token is not the end.
    let (mut calls, mut continuation) = (Vec::new(), None::<String>);
    loop {
        let mut url = base.clone();
        if let Some(token) = &continuation {
            url.query_pairs_mut().append_pair("continuationToken", token);
        }
        let mut page: Value = api.send(api.request(Method::GET, url)).await?.json().await?;
        match page["items"].take() {
            Value::Array(items) => calls.extend(items),
            _ => anyhow::bail!("the control API answered the log without items"),
        }
        continuation = page["continuationToken"].as_str().map(str::to_owned);
        if calls.len() >= args.limit as usize || continuation.is_none() {
            break;
        }
    }
    calls.truncate(args.limit as usize);
    calls.reverse();
    Ok(calls)
}

/// One call as a line: time, App ID (`<-` before it: the platform called it), API, method (`(ended)` after
/// it: a stream's end, its latency the stream's life), what it named, status, latency.
fn line(call: &Value) -> String {
    let named = call["component"].as_str().or(call["target"].as_str()).unwrap_or("-");
    let app_id = match call["direction"].as_str() {
        Some("to_app") => format!("<-{}", cell(call, "/appId")),
        _ => cell(call, "/appId"),
    };
    let method = match call["streamEnded"].as_bool() {
        Some(true) => format!("{} (ended)", cell(call, "/method")),
        _ => cell(call, "/method"),
    };
    let path = call["path"].as_str().unwrap_or("-");
    format!(
        "{}  {:<16} {:<13} {:<5} {:<16} {:<24} {:>3}  {:>9}  {path}",
        cell(call, "/time"),
        app_id,
        cell(call, "/api"),
        cell(call, "/protocol"),
        method,
        named,
        cell(call, "/status"),
        format!("{:.2}ms", call["latencyMs"].as_f64().unwrap_or_default()),
    )
}

/// A call's identity across polls: the log has no ids, and a call appears again in the next poll's overlap.
fn fingerprint(call: &Value) -> String {
    call.to_string()
}

pub async fn logs(api: &ApiClient, args: LogsArgs) -> anyhow::Result<()> {
    let project = args.project.name()?.to_owned();
    let calls = newest_calls(api, &project, &args, args.since).await?;
    if !args.follow {
        if args.output.output == OutputFormat::Table {
            calls.iter().for_each(|call| println!("{}", line(call)));
            return Ok(());
        }
        // Lines are the table form of a log; the closure is only asked for tables.
        return emit(args.output.output, &serde_json::json!({ "items": calls }), |_| Table::new(&[]));
    }
    let print = |call: &Value| match args.output.output {
        OutputFormat::Table => println!("{}", line(call)),
        _ => println!("{call}"),
    };
    // The fingerprints of recent calls already printed, oldest first, so a poll's overlap prints nothing twice.
    let mut seen: VecDeque<(DateTime<Utc>, String)> = VecDeque::new();
    let mut printed: HashSet<String> = HashSet::new();
    let mut latest = args.since.unwrap_or_else(|| Utc::now() - FOLLOW_OVERLAP);
    let mut batch = calls;
    loop {
        for call in &batch {
            let key = fingerprint(call);
            if printed.insert(key.clone()) {
                print(call);
                let time = call["time"].as_str().and_then(|time| time.parse().ok()).unwrap_or_else(Utc::now);
                latest = latest.max(time);
                seen.push_back((time, key));
            }
        }
        while seen.front().is_some_and(|(time, _)| *time < latest - FOLLOW_OVERLAP * 2) {
            let (_, key) = seen.pop_front().expect("a front entry");
            printed.remove(&key);
        }
        tokio::time::sleep(FOLLOW_INTERVAL).await;
        batch = newest_calls(api, &project, &args, Some(latest - FOLLOW_OVERLAP)).await?;
    }
}

const FIGURE_COLUMNS: &[&str] = &["NAME", "REQUESTS", "RPS", "ERRORS", "ERROR RATE", "P50 MS", "P95 MS", "P99 MS"];

fn figures_row(name: &str, figures: &Value) -> Vec<String> {
    let rounded = |pointer: &str, digits: usize| {
        figures
            .pointer(pointer)
            .and_then(Value::as_f64)
            .map_or_else(|| "-".to_owned(), |value| format!("{value:.digits$}"))
    };
    vec![
        name.to_owned(),
        cell(figures, "/requests"),
        rounded("/rps", 3),
        cell(figures, "/errors"),
        rounded("/errorRate", 3),
        rounded("/p50Ms", 2),
        rounded("/p95Ms", 2),
        rounded("/p99Ms", 2),
    ]
}

pub async fn metrics(api: &ApiClient, args: MetricsArgs) -> anyhow::Result<()> {
    let project = args.project.name()?;
    let mut url = api.url(&["projects", project, "metrics"]);
    url.query_pairs_mut().append_pair("window", &args.window);
    let answer: Value = api.send(api.request(Method::GET, url)).await?.json().await?;
    emit(args.output.output, &answer, |answer| {
        let mut table = Table::new(FIGURE_COLUMNS);
        table.push(figures_row(&format!("(all, last {})", args.window), &answer["total"]));
        for (prefix, list) in [("app ", "/byAppId"), ("api ", "/byApi")] {
            for entry in answer.pointer(list).and_then(Value::as_array).into_iter().flatten() {
                table.push(figures_row(&format!("{prefix}{}", cell(entry, "/name")), &entry["total"]));
            }
        }
        table
    })
}

pub async fn usage(api: &ApiClient, args: UsageArgs) -> anyhow::Result<()> {
    let project = args.project.name()?;
    let answer = api.get_json(&["projects", project, "usage"]).await?;
    emit(args.output.output, &answer, |answer| {
        Table::single(
            &["PERIOD", "APP IDS", "COMPONENTS", "WORKFLOW INSTANCES", "REQUESTS", "PUBLISHES", "STORED BYTES"],
            answer,
            |usage| {
                let columns = [
                    "/period",
                    "/appIds",
                    "/components",
                    "/workflowInstances",
                    "/requests",
                    "/publishRequests",
                    "/storedStateBytes",
                ];
                columns.iter().map(|pointer| cell(usage, pointer)).collect()
            },
        )
    })
}
