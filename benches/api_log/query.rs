//! The read side: a store filled with `records` calls over the 72-hour retention window (1,000 projects, the first
//! three holding 30 %, 15 % and 5 % of the rows), then the control API's `GET /projects/{p}/logs` as its route
//! runs it (a transaction: the project by name, then `Tx::page_api_calls` with the route's filter, `since` at
//! least the retention's start), for each common filter set on the heaviest project and on light ones, against a
//! primary-key lookup in the same database. A filter set above the target gets its query plan: the statement is
//! the one the store ran (captured from sqlx's statement log), the values bound as the store binds them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use outrigger_store::{ApiCallFilter, NewProject, PageRequest, Store, DEFAULT_PAGE_SIZE};
use serde_json::{json, Value};
use sqlx::Row;

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

// === the statements the store runs, captured from sqlx's log ===

static CAPTURING: AtomicBool = AtomicBool::new(false);
static CAPTURED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Keeps the SQL of sqlx's statement events while [`CAPTURING`]; otherwise sqlx is told nobody listens, and
/// formats nothing.
struct CaptureFilter;

impl<S> tracing_subscriber::layer::Filter<S> for CaptureFilter {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        metadata.target() == "sqlx::query" && CAPTURING.load(Ordering::Relaxed)
    }

    fn callsite_enabled(&self, metadata: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        if metadata.target() == "sqlx::query" {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
}

struct CaptureLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CaptureLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Statement(Option<String>);
        impl tracing::field::Visit for Statement {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "db.statement" {
                    self.0 = Some(value.trim().to_owned());
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        let mut statement = Statement(None);
        event.record(&mut statement);
        if let (Some(sql), Ok(mut captured)) = (statement.0.filter(|sql| !sql.is_empty()), CAPTURED.lock()) {
            captured.push(sql);
        }
    }
}

/// Installs the capture, and warnings (the API log writer's, the store's) on stderr.
pub fn install_capture() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;
    let warnings = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(tracing_subscriber::EnvFilter::new("warn,sqlx=off"));
    let subscriber = tracing_subscriber::registry().with(CaptureLayer.with_filter(CaptureFilter)).with(warnings);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

// === the fill ===

/// What the fill made.
pub struct Filled {
    pub rows: u64,
    pub took: Duration,
    /// Rows of the heaviest project and of a light one, on average.
    pub heavy_rows: u64,
    pub light_rows: f64,
    pub max_id: i64,
}

/// The projects (through the store, as the control API creates them), then `records` calls in ten statements
/// (progress after each), then what autovacuum would do on PostgreSQL (the bench's server runs without it) or a
/// WAL checkpoint on SQLite.
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
    let pool = database.any_pool(1).await?;
    let postgres = database.postgres();
    let key = if postgres { "idx BIGINT PRIMARY KEY" } else { "idx INTEGER PRIMARY KEY" };
    sqlx::query(&format!("CREATE TABLE bench_projects ({key}, id TEXT NOT NULL)")).execute(&pool).await?;
    for (chunk_index, chunk) in ids.chunks(100).enumerate() {
        let values: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(offset, id)| format!("({}, '{}')", chunk_index * 100 + offset, id.as_str()))
            .collect();
        sqlx::query(&format!("INSERT INTO bench_projects (idx, id) VALUES {}", values.join(", ")))
            .execute(&pool)
            .await?;
    }
    if !postgres {
        // The fill's own connection only: 256 MB of page cache for the index inserts.
        sqlx::query("PRAGMA cache_size = -262144").execute(&pool).await?;
    }
    let statement = calls::fill_statement(postgres);
    let end = outrigger_store::now_millis();
    let start = end - FILL_SPAN_MS;
    let total = i64::try_from(records).unwrap_or(i64::MAX);
    let step = records.div_ceil(10).max(1);
    let filling = Instant::now();
    let mut from = 0;
    while from < records {
        let to = (from + step).min(records);
        sqlx::query(&statement)
            .bind(from as i64)
            .bind(to as i64 - 1)
            .bind(start)
            .bind(FILL_SPAN_MS)
            .bind(total)
            .execute(&pool)
            .await
            .context("filling api_calls")?;
        from = to;
        let elapsed = filling.elapsed().as_secs_f64();
        let rate = from as f64 / elapsed.max(1e-9);
        progress(format!(
            "fill: {from} of {records} rows ({:.0}%, {rate:.0} rows/s, {elapsed:.0} s, ~{:.0} s left)",
            100.0 * from as f64 / records as f64,
            (records - from) as f64 / rate.max(1e-9)
        ));
    }
    if postgres {
        progress("fill: VACUUM ANALYZE api_calls (autovacuum is what would do it; this server runs without)");
        let native = sqlx::PgPool::connect(&database.url).await?;
        sqlx::raw_sql("VACUUM ANALYZE api_calls").execute(&native).await?;
        native.close().await;
    } else {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&pool).await?;
    }
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_calls").fetch_one(&pool).await?;
    let heavy: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_calls WHERE project_id = $1")
        .bind(ids[0].as_str())
        .fetch_one(&pool)
        .await?;
    let max_id: i64 = sqlx::query_scalar("SELECT MAX(id) FROM api_calls").fetch_one(&pool).await?;
    pool.close().await;
    let light_share = 1.0 - HEAVY_SHARES.iter().sum::<f64>();
    Ok(Filled {
        rows: u64::try_from(rows).unwrap_or_default(),
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
    let mut tx = store.begin().await?;
    let found = tx.project(&outrigger_store::OrgId::default_org(), project).await?;
    let request = PageRequest { limit: DEFAULT_PAGE_SIZE, continuation };
    let page = tx.page_api_calls(&found.id, filter, &request).await?;
    drop(tx);
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
    pub plan: Vec<String>,
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
            "plan": self.plan,
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
pub async fn run(
    database: &Database,
    records: u64,
    queries: usize,
    seconds: f64,
    all_plans: bool,
) -> anyhow::Result<QueryResults> {
    let store = database.store().await?;
    let filled = fill(database, &store, records).await?;
    progress(format!(
        "fill: {} rows in {:.1} s; heaviest project {} rows, light ones ~{:.0}",
        filled.rows,
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
                plan: Vec::new(),
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
            if p99 > TARGET_P99_MS || (all_plans && result.latencies.len() > 0) {
                result.plan = match explain(database, &store, &names[0], &set).await {
                    Ok(plan) => plan,
                    Err(err) => vec![format!("no plan: {err:#}")],
                };
            }
            sets.push(result);
        }
    }
    store.close().await;
    Ok(QueryResults { filled, baseline, sets })
}

/// `queries` lookups of random rows by primary key, on a connection of the same driver the store uses.
async fn primary_key_lookups(database: &Database, max_id: i64, queries: usize) -> anyhow::Result<Latencies> {
    use rand::Rng;
    let pool = database.any_pool(1).await?;
    let sql = "SELECT id, project_id, at, app_id, target, api, protocol, method, path, component, status, grpc_code, \
               latency_us, trace_id, span_id, user_agent, caller_addr, direction FROM api_calls WHERE id = $1";
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

// === query plans ===

/// A value bound to a placeholder.
enum Bound {
    Text(String),
    Number(i64),
}

impl Bound {
    fn literal(&self) -> String {
        match self {
            Bound::Text(text) => format!("'{}'", text.replace('\'', "''")),
            Bound::Number(number) => number.to_string(),
        }
    }
}

/// The values `Tx::page_api_calls` binds for `filter`, in its order (project, App ID, API, statuses, direction,
/// since, until, the text's LIKE pattern, then the continuation's key).
fn page_binds(project_id: &str, filter: &ApiCallFilter, continuation: Option<&str>) -> Vec<Bound> {
    let mut binds = vec![Bound::Text(project_id.to_owned())];
    binds.extend(filter.app_id.clone().map(Bound::Text));
    binds.extend(filter.api.clone().map(Bound::Text));
    if let Some((from, to)) = filter.status {
        binds.extend([Bound::Number(from.into()), Bound::Number(to.into())]);
    }
    binds.extend(filter.direction.map(|direction| Bound::Text(direction.as_str().to_owned())));
    binds.extend(filter.since.map(Bound::Number));
    binds.extend(filter.until.map(Bound::Number));
    if let Some(key) = continuation.and_then(decode_token) {
        binds.extend(key.into_iter().map(Bound::Number));
    }
    // The text search is examined over a window of the rows the conditions above select: bound after them.
    binds.extend(filter.text.as_deref().map(|text| Bound::Text(outrigger_store::text_search_pattern(text))));
    binds
}

/// The key a continuation token names (hex of a JSON array of numbers).
fn decode_token(token: &str) -> Option<Vec<i64>> {
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|at| token.get(at..at + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect();
    serde_json::from_slice(&bytes?).ok()
}

/// The highest `$n` in `sql`.
fn placeholders(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// The plan of `set`'s statement on `project`: captured from a run through the store, then `EXPLAIN (ANALYZE,
/// BUFFERS)` with the values bound (PostgreSQL's custom plan) and `EXPLAIN (ANALYZE, BUFFERS) EXECUTE` of it
/// prepared under `plan_cache_mode = force_generic_plan` (the plan a prepared statement run again and again may
/// switch to after five runs: the store now plans this listing for each run's values), or SQLite's `EXPLAIN QUERY
/// PLAN`.
async fn explain(database: &Database, store: &Store, project: &str, set: &FilterSet) -> anyhow::Result<Vec<String>> {
    let filter = route_filter(set);
    let mut continuation = None;
    if set.deep {
        continuation = page(store, project, &filter, None).await?.2;
    }
    CAPTURED.lock().map(|mut captured| captured.clear()).ok();
    CAPTURING.store(true, Ordering::Relaxed);
    let outcome = page(store, project, &filter, continuation.clone()).await;
    CAPTURING.store(false, Ordering::Relaxed);
    outcome?;
    let mut tx = store.begin().await?;
    let project_id = tx.project(&outrigger_store::OrgId::default_org(), project).await?.id;
    drop(tx);
    let binds = page_binds(project_id.as_str(), &filter, continuation.as_deref());
    // The statement reading the page: a text search's short page also reads where its window ends, after it.
    let sql = CAPTURED
        .lock()
        .ok()
        .and_then(|captured| {
            let mut newest_first = captured.iter().rev().filter(|sql| sql.contains("FROM api_calls"));
            let newest = newest_first.clone().next();
            newest_first.find(|sql| placeholders(sql) == binds.len()).or(newest).cloned()
        })
        .context("sqlx logged no statement on api_calls (is its statement log off?)")?;
    if placeholders(&sql) != binds.len() {
        anyhow::bail!(
            "the statement has {} placeholders, the bench knows {} values: {sql}",
            placeholders(&sql),
            binds.len()
        );
    }
    let mut plan = vec![format!("statement: {}", sql.split_whitespace().collect::<Vec<_>>().join(" "))];
    let values: Vec<String> = binds.iter().map(Bound::literal).collect();
    plan.push(format!("values: {}", values.join(", ")));
    if database.postgres() {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&database.url).await?;
        let explained = format!("EXPLAIN (ANALYZE, BUFFERS) {sql}");
        let mut query = sqlx::query(&explained);
        for bound in &binds {
            query = match bound {
                Bound::Text(text) => query.bind(text.clone()),
                Bound::Number(number) => query.bind(*number),
            };
        }
        plan.push("custom plan (values known when planning):".to_owned());
        for row in query.fetch_all(&pool).await? {
            plan.push(format!("  {}", row.try_get::<String, _>(0)?));
        }
        let mut connection = pool.acquire().await?;
        sqlx::raw_sql("SET plan_cache_mode = force_generic_plan").execute(&mut *connection).await?;
        sqlx::raw_sql(&format!("PREPARE bench_page AS {sql}")).execute(&mut *connection).await?;
        let rows = sqlx::raw_sql(&format!("EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_page({})", values.join(", ")))
            .fetch_all(&mut *connection)
            .await?;
        plan.push("generic plan (prepared and reused, values unknown when planning; for comparison):".to_owned());
        for row in rows {
            plan.push(format!("  {}", row.try_get::<String, _>(0)?));
        }
        sqlx::raw_sql("DEALLOCATE bench_page; RESET plan_cache_mode").execute(&mut *connection).await?;
        drop(connection);
        pool.close().await;
    } else {
        let pool = crate::db::sqlite_pool(&database.url).await?;
        let explained = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query(&explained);
        for bound in &binds {
            query = match bound {
                Bound::Text(text) => query.bind(text.clone()),
                Bound::Number(number) => query.bind(*number),
            };
        }
        plan.push("EXPLAIN QUERY PLAN:".to_owned());
        for row in query.fetch_all(&pool).await? {
            plan.push(format!("  {}", row.try_get::<String, _>(3)?));
        }
        pool.close().await;
    }
    Ok(plan)
}
