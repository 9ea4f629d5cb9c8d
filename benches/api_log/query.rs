//! The read side: a store filled with `records` calls over the 72-hour retention window (1,000 projects, the first
//! three holding 30 %, 15 % and 5 % of the rows), then the control API's `GET /projects/{p}/logs` as its route
//! runs it (the project by name, then `ApiLogTx::page_api_calls` in the log's own transaction with the route's filter, `since` at
//! least the retention's start), for each common filter set on the heaviest project and on light ones, against a
//! primary-key lookup (of one block) in the same database.

use std::time::{Duration, Instant};

use anyhow::Context;
use outrigger_store::{ApiCallFilter, CallBatch, NewProject, PageRequest, Store, DEFAULT_PAGE_SIZE};
use serde_json::{json, Value};

use crate::calls::{self, HEAVY_SHARES, QUERY_PROJECTS};
use crate::common::load::Latencies;
use crate::common::setup::progress;
use crate::db::Database;

/// The target: the logs query's p99, in milliseconds.
pub const TARGET_P99_MS: f64 = 100.0;
/// The API log's default retention (`OUTRIGGER_API_LOG_RETENTION_HOURS`), which the route applies as `since`.
const RETENTION_MS: i64 = 72 * 3600 * 1000;
/// The fill spreads the calls over the retention window less one hour, so that none leaves it during the run.
const FILL_SPAN_MS: i64 = 71 * 3600 * 1000;
/// Pages followed past the first by the continuation set.
const DEEP_PAGES: usize = 5;

/// Warnings (the API log writer's, the store's) on stderr.
pub fn install_warnings() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,sqlx=off"))
        .try_init();
}

// === the fill ===

/// What the fill made.
pub struct Filled {
    /// Calls, and the blocks that hold them.
    pub rows: u64,
    pub blocks: u64,
    pub took: Duration,
    /// Rows of the heaviest project and of a light one, on average.
    pub heavy_rows: u64,
    pub light_rows: f64,
    pub max_id: i64,
}

/// Calls per written batch of the fill: the writer's.
const FILL_BATCH: u64 = 1000;

/// The projects (through the store, as the control API creates them), then `records` calls written as the writer
/// writes them (batches of 1,000 calls in time order, each a block per project it holds), then what autovacuum
/// would do on PostgreSQL (the bench's server runs without it) or a WAL checkpoint on SQLite.
async fn fill(database: &Database, store: &Store, records: u64) -> anyhow::Result<Filled> {
    let started = Instant::now();
    let mut ids = Vec::with_capacity(QUERY_PROJECTS);
    for start in (0..QUERY_PROJECTS).step_by(500) {
        let mut tx = store.begin().await?;
        for index in start..(start + 500).min(QUERY_PROJECTS) {
            let new = NewProject {
                org_id: outrigger_store::OrgId::default_org(),
                name: calls::query_project(index),
                managed_kvstore: true,
                managed_pubsub: true,
                pool: "default".to_owned(),
            };
            ids.push(tx.create_project(&new).await?.id);
        }
        tx.commit().await?;
    }
    let end = outrigger_store::now_millis();
    let start = end - FILL_SPAN_MS;
    let total = i64::try_from(records).unwrap_or(i64::MAX);
    let report_every = records.div_ceil(10).max(1);
    let filling = Instant::now();
    let mut from = 0;
    while from < records {
        let to = (from + FILL_BATCH).min(records);
        let batch: Vec<_> = (from..to)
            .map(|index| calls::query_call(&ids, index, start + (index as i64 * FILL_SPAN_MS) / total))
            .collect();
        store.record_api_calls(CallBatch::of(&batch).all()).await.context("filling the API log")?;
        if to % report_every < FILL_BATCH || to == records {
            let elapsed = filling.elapsed().as_secs_f64();
            let rate = to as f64 / elapsed.max(1e-9);
            progress(format!(
                "fill: {to} of {records} calls ({:.0}%, {rate:.0} calls/s, {elapsed:.0} s, ~{:.0} s left)",
                100.0 * to as f64 / records as f64,
                (records - to) as f64 / rate.max(1e-9)
            ));
        }
        from = to;
    }
    let pool = database.api_log_pool(1).await?;
    if database.postgres() {
        progress("fill: VACUUM ANALYZE api_call_blocks (autovacuum is what would do it; this server runs without)");
        let native = sqlx::PgPool::connect(&database.url).await?;
        sqlx::raw_sql("VACUUM ANALYZE api_call_blocks").execute(&native).await?;
        native.close().await;
    } else {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&pool).await?;
    }
    let (rows, blocks, max_id): (i64, i64, i64) =
        sqlx::query_as("SELECT CAST(SUM(calls) AS BIGINT), COUNT(*), MAX(id) FROM api_call_blocks")
            .fetch_one(&pool)
            .await?;
    let heavy: i64 = sqlx::query_scalar("SELECT CAST(SUM(calls) AS BIGINT) FROM api_call_blocks WHERE project_id = $1")
        .bind(ids[0].as_str())
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    let light_share = 1.0 - HEAVY_SHARES.iter().sum::<f64>();
    Ok(Filled {
        rows: u64::try_from(rows).unwrap_or_default(),
        blocks: u64::try_from(blocks).unwrap_or_default(),
        took: started.elapsed(),
        heavy_rows: u64::try_from(heavy).unwrap_or_default(),
        light_rows: rows as f64 * light_share / (QUERY_PROJECTS - HEAVY_SHARES.len()) as f64,
        max_id,
    })
}

// === the filter sets ===

/// One filter set of `GET /projects/{p}/logs`.
struct FilterSet {
    key: &'static str,
    /// As the query string says it.
    query: &'static str,
    /// What its value selects in the filled data.
    selects: &'static str,
    filter: fn(now: i64) -> ApiCallFilter,
    /// Follows continuation tokens past the first page instead.
    deep: bool,
}

const HOUR_MS: i64 = 3600 * 1000;

fn filter_sets() -> Vec<FilterSet> {
    let none: fn(i64) -> ApiCallFilter = |_| ApiCallFilter::default();
    vec![
        FilterSet { key: "newest", query: "(none)", selects: "every call", filter: none, deep: false },
        FilterSet {
            key: "status_5xx",
            query: "status=5xx",
            selects: "0.8 % of calls",
            filter: |_| ApiCallFilter { status: Some((500, 600)), ..ApiCallFilter::default() },
            deep: false,
        },
        FilterSet {
            key: "app_common",
            query: "appId=cart",
            selects: "20 %",
            filter: |_| ApiCallFilter { app_id: Some("cart".to_owned()), ..ApiCallFilter::default() },
            deep: false,
        },
        FilterSet {
            key: "app_rare",
            query: "appId=audit",
            selects: "0.5 %",
            filter: |_| ApiCallFilter { app_id: Some("audit".to_owned()), ..ApiCallFilter::default() },
            deep: false,
        },
        FilterSet {
            key: "api_common",
            query: "api=pubsub",
            selects: "15 %",
            filter: |_| ApiCallFilter { api: Some("pubsub".to_owned()), ..ApiCallFilter::default() },
            deep: false,
        },
        FilterSet {
            key: "api_rare",
            query: "api=jobs",
            selects: "2 %",
            filter: |_| ApiCallFilter { api: Some("jobs".to_owned()), ..ApiCallFilter::default() },
            deep: false,
        },
        FilterSet {
            key: "text_common",
            query: "q=orders",
            selects: "~45 %",
            filter: |_| ApiCallFilter { text: Some("orders".to_owned()), ..ApiCallFilter::default() },
            deep: false,
        },
        FilterSet {
            key: "text_rare",
            query: "q=order-42424",
            selects: "one key: ~0.0007 %",
            filter: |_| ApiCallFilter { text: Some("order-42424".to_owned()), ..ApiCallFilter::default() },
            deep: false,
        },
        FilterSet {
            key: "window",
            query: "since=-25h&until=-24h",
            selects: "1 h of 71",
            filter: |now| ApiCallFilter {
                since: Some(now - 25 * HOUR_MS),
                until: Some(now - 24 * HOUR_MS),
                ..ApiCallFilter::default()
            },
            deep: false,
        },
        FilterSet {
            key: "continuation",
            query: "continuationToken (pages 2-6)",
            selects: "every call",
            filter: none,
            deep: true,
        },
    ]
}

/// The filter the route builds: `since` no earlier than the retention's start.
fn route_filter(set: &FilterSet) -> ApiCallFilter {
    let now = outrigger_store::now_millis();
    let mut filter = (set.filter)(now);
    filter.since = Some(filter.since.unwrap_or(i64::MIN).max(now - RETENTION_MS));
    filter
}

/// One request's store work, as `list_calls` does it; its time, the calls on the page and the next token.
async fn page(
    store: &Store,
    project: &str,
    filter: &ApiCallFilter,
    continuation: Option<String>,
) -> anyhow::Result<(Duration, usize, Option<String>)> {
    let started = Instant::now();
    let found = store.begin().await?.project(&outrigger_store::OrgId::default_org(), project).await?;
    let request = PageRequest { limit: DEFAULT_PAGE_SIZE, continuation };
    let page = store.begin_api_log().await?.page_api_calls(&found.id, filter, &request).await?;
    Ok((started.elapsed(), page.items.len(), page.continuation))
}

/// One filter set's figures on one kind of project.
pub struct SetResult {
    pub set: &'static str,
    pub query: &'static str,
    pub selects: &'static str,
    pub projects: &'static str,
    pub latencies: Latencies,
    /// Stopped by the time limit before the wanted number of queries.
    pub capped: bool,
    /// Calls on the pages, on average.
    pub mean_items: f64,
}

impl SetResult {
    pub fn p99(&mut self) -> f64 {
        self.latencies.percentile_ms(99.0).unwrap_or(f64::NAN)
    }

    pub fn report_json(&mut self) -> Value {
        json!({
            "filter_set": self.set, "query": self.query, "selects": self.selects, "projects": self.projects,
            "queries": self.latencies.len(), "capped_by_time": self.capped,
            "p50_ms": self.latencies.percentile_ms(50.0), "p99_ms": self.latencies.percentile_ms(99.0),
            "max_ms": self.latencies.max_ms(), "mean_calls_per_page": self.mean_items,
            "met": self.latencies.percentile_ms(99.0).map(|p99| p99 <= TARGET_P99_MS),
        })
    }
}

/// The whole read side of one engine.
pub struct QueryResults {
    pub filled: Filled,
    pub baseline: Latencies,
    pub sets: Vec<SetResult>,
}

/// Fills a fresh store on `database` and measures every filter set, `queries` times each (at most `seconds`).
pub async fn run(database: &Database, records: u64, queries: usize, seconds: f64) -> anyhow::Result<QueryResults> {
    let store = database.store().await?;
    let filled = fill(database, &store, records).await?;
    progress(format!(
        "fill: {} calls in {} blocks in {:.1} s; heaviest project {} calls, light ones ~{:.0}",
        filled.rows,
        filled.blocks,
        filled.took.as_secs_f64(),
        filled.heavy_rows,
        filled.light_rows
    ));

    let baseline = primary_key_lookups(database, filled.max_id, queries).await?;
    let limit = Duration::from_secs_f64(seconds);
    let heavy = calls::query_project(0);
    let light: Vec<String> = (HEAVY_SHARES.len()..QUERY_PROJECTS).map(calls::query_project).collect();
    let mut sets = Vec::new();
    for set in filter_sets() {
        for (kind, names) in [("heaviest", std::slice::from_ref(&heavy)), ("light", light.as_slice())] {
            let mut result = SetResult {
                set: set.key,
                query: set.query,
                selects: set.selects,
                projects: kind,
                latencies: Latencies::default(),
                capped: false,
                mean_items: 0.0,
            };
            let mut items = 0usize;
            // Two unmeasured queries first (statements prepared, pages cached as a busy server has them).
            for name in names.iter().cycle().take(2) {
                page(&store, name, &route_filter(&set), None).await?;
            }
            let started = Instant::now();
            let mut turn = 0usize;
            while result.latencies.len() < queries {
                if started.elapsed() > limit {
                    result.capped = true;
                    break;
                }
                let name = &names[turn % names.len()];
                turn += 1;
                let filter = route_filter(&set);
                if set.deep {
                    let (_, _, mut token) = page(&store, name, &filter, None).await?;
                    for _ in 0..DEEP_PAGES {
                        let Some(next) = token.take() else { break };
                        let (took, count, after) = page(&store, name, &filter, Some(next)).await?;
                        result.latencies.record(took);
                        items += count;
                        token = after;
                    }
                    if turn > queries * 4 && result.latencies.len() == 0 {
                        break;
                    }
                } else {
                    let (took, count, _) = page(&store, name, &filter, None).await?;
                    result.latencies.record(took);
                    items += count;
                }
            }
            result.mean_items = items as f64 / result.latencies.len().max(1) as f64;
            let p99 = result.p99();
            progress(format!(
                "{} on {kind} projects: p50 {:.2} ms, p99 {p99:.2} ms, max {:.2} ms over {} queries{}",
                set.query,
                result.latencies.percentile_ms(50.0).unwrap_or(f64::NAN),
                result.latencies.max_ms().unwrap_or(f64::NAN),
                result.latencies.len(),
                if result.capped { " (time limit)" } else { "" }
            ));
            sets.push(result);
        }
    }
    store.close().await;
    Ok(QueryResults { filled, baseline, sets })
}

/// `queries` lookups of random blocks by primary key, on a connection of the same driver the store uses.
async fn primary_key_lookups(database: &Database, max_id: i64, queries: usize) -> anyhow::Result<Latencies> {
    use rand::Rng;
    let pool = database.api_log_pool(1).await?;
    let sql = "SELECT id, project_id, first_at, last_at, calls, app_ids, apis, statuses, directions, body \
               FROM api_call_blocks WHERE id = $1";
    let mut latencies = Latencies::default();
    for turn in 0..queries + 2 {
        let id = rand::thread_rng().gen_range(1..=max_id.max(1));
        let started = Instant::now();
        sqlx::query(sql).bind(id).fetch_optional(&pool).await?;
        if turn >= 2 {
            latencies.record(started.elapsed());
        }
    }
    pool.close().await;
    let mut summary = latencies.clone();
    progress(format!(
        "baseline: primary-key lookup p50 {:.3} ms, p99 {:.3} ms",
        summary.percentile_ms(50.0).unwrap_or(f64::NAN),
        summary.percentile_ms(99.0).unwrap_or(f64::NAN)
    ));
    Ok(latencies)
}
