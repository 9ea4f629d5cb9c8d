//! The API log and its per-minute counts: every Dapr call an App ID makes, written in batches by the processes
//! that see the calls (in blocks: `api_log_blocks`), read newest first by the control API, and kept for a
//! bounded time and number of calls per project. Expiry and trimming cost in proportion to what they remove and
//! to the projects that wrote, never to the number of projects.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use sqlx::Row;

use crate::api_log_blocks::{BatchedCall, Calls};
use crate::{ApiLogTx, Engine, ProjectId, Result, Store, Tx};

/// Upper bounds (microseconds) of the latency buckets the per-minute counts keep; the last is unbounded.
pub const LATENCY_BUCKETS_US: [i64; 11] =
    [250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000];
/// The per-minute table's latency-bucket columns, in [`LATENCY_BUCKETS_US`] order, then the unbounded one.
pub const BUCKET_COLUMNS: [&str; 12] = [
    "le_250",
    "le_500",
    "le_1000",
    "le_2500",
    "le_5000",
    "le_10000",
    "le_25000",
    "le_50000",
    "le_100000",
    "le_250000",
    "le_1000000",
    "le_inf",
];

/// One Dapr call, as the API log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiCall {
    /// The caller's project.
    pub project_id: ProjectId,
    /// When the call arrived (Unix milliseconds).
    pub at: i64,
    /// The calling App ID.
    pub app_id: String,
    /// The App ID or HTTP endpoint an invocation went to, the topic of a publish or delivery, or a job's name.
    pub target: Option<String>,
    /// The building block (`state`, `pubsub`, `invocation`, `workflows`, …). This and the next two are words
    /// of a fixed vocabulary as a call is recorded: borrowed, not allocated, on the request path.
    pub api: Cow<'static, str>,
    /// `http` or `grpc`.
    pub protocol: Cow<'static, str>,
    /// The HTTP method, or the rpc's name.
    pub method: Cow<'static, str>,
    /// The HTTP path, or the rpc's full path.
    pub path: String,
    /// The component the call named.
    pub component: Option<String>,
    /// The HTTP status (for gRPC, the one daprd pairs with the code).
    pub status: u16,
    /// The gRPC status code of a gRPC call.
    pub grpc_code: Option<i32>,
    /// How long the call took, in microseconds.
    pub latency_us: i64,
    /// The W3C ids of the call's span.
    pub span: Option<CallSpan>,
    /// The caller's `User-Agent`.
    pub user_agent: Option<String>,
    /// The address the call came from.
    pub caller_addr: Option<IpAddr>,
    /// Whether the App ID made the call or received it.
    pub direction: CallDirection,
    /// The record of a stream's end: the status it ended with, and its whole life as the latency. A stream is
    /// logged twice, when it opens (the call the per-minute counts count, its latency the setup's) and when it
    /// ends.
    pub stream_ended: bool,
}

/// The W3C ids of a logged call's span, kept as bytes: they are written in hex only into a block and onto a
/// listing, not on the request path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallSpan {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

impl CallSpan {
    /// The trace id in hex.
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// The span id in hex.
    pub fn span_id_hex(&self) -> String {
        hex::encode(self.span_id)
    }
}

/// Which way a logged call went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CallDirection {
    /// The App ID called a Dapr API.
    #[default]
    FromApp,
    /// The platform called the App ID: a pub/sub delivery, a job trigger, an input binding's event.
    ToApp,
}

impl CallDirection {
    /// The query-string form.
    pub fn as_str(self) -> &'static str {
        match self {
            CallDirection::FromApp => "from_app",
            CallDirection::ToApp => "to_app",
        }
    }
}

/// Whether a call with `status` failed (any 4xx or 5xx).
fn failed(status: u16) -> bool {
    status >= 400
}

impl ApiCall {
    /// Whether the call failed.
    pub fn failed(&self) -> bool {
        failed(self.status)
    }
}

/// What a log listing keeps.
#[derive(Clone, Debug, Default)]
pub struct ApiCallFilter {
    pub app_id: Option<String>,
    pub api: Option<String>,
    /// HTTP statuses from (inclusive) and to (exclusive).
    pub status: Option<(u16, u16)>,
    /// Calls at or after this time (Unix milliseconds).
    pub since: Option<i64>,
    /// Calls before this time.
    pub until: Option<i64>,
    /// Text found (any case) in the path, method, component, target or App ID.
    pub text: Option<String>,
    pub direction: Option<CallDirection>,
}

/// One minute of one App ID's calls to one API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiCallMinute {
    /// The minute's start (Unix milliseconds).
    pub minute: i64,
    pub app_id: String,
    pub api: String,
    pub requests: i64,
    pub errors: i64,
    pub latency_us_sum: i64,
    /// Calls per latency bucket ([`LATENCY_BUCKETS_US`], then the unbounded one).
    pub buckets: [i64; 12],
}

/// What a project holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holdings {
    pub app_ids: i64,
    /// Components the project declared (the managed ones not counted).
    pub components: i64,
    pub workflow_instances: i64,
}

/// The bucket a latency falls in.
pub fn latency_bucket(latency_us: i64) -> usize {
    LATENCY_BUCKETS_US.iter().position(|bound| latency_us <= *bound).unwrap_or(LATENCY_BUCKETS_US.len())
}

/// Values per per-minute count row: project, minute, App ID, API, requests, errors, latency sum, the buckets.
const MINUTE_COLUMNS: usize = 7 + BUCKET_COLUMNS.len();
/// Count rows per upsert on SQLite: 19 values each stays under its 999 placeholders.
const MINUTE_ROWS_PER_UPSERT: usize = 52;

/// The per-minute counts a batch adds, by (project, minute, App ID, API): the calls App IDs made (charts and
/// usage count those; calls to apps and the ends of streams are in the log only).
fn minute_counts<'a>(calls: Calls<'a>) -> BTreeMap<(&'a str, i64, &'a str, &'a str), ApiCallMinute> {
    let minute_of = |call: &BatchedCall| call.at - call.at.rem_euclid(60_000);
    let mut counts = BTreeMap::new();
    // Calls come in runs of one App ID's calls to one API in one minute: the map is looked up once per run.
    let same_row = |a: &BatchedCall, b: &BatchedCall| {
        minute_of(a) == minute_of(b)
            && a.direction == b.direction
            && a.stream_ended == b.stream_ended
            && a.project_id == b.project_id
            && calls.same_names(a, b)
    };
    let counted = |run: &&[BatchedCall]| run[0].direction == CallDirection::FromApp && !run[0].stream_ended;
    for run in calls.calls.chunk_by(same_row).filter(counted) {
        let (first, minute) = (&run[0], minute_of(&run[0]));
        let (app_id, api) = (calls.app_id(first), calls.api(first));
        let entry = counts.entry((first.project_id.as_str(), minute, app_id, api)).or_insert_with(|| ApiCallMinute {
            minute,
            app_id: app_id.to_owned(),
            api: api.to_owned(),
            requests: 0,
            errors: 0,
            latency_us_sum: 0,
            buckets: [0; 12],
        });
        for call in run {
            entry.requests += 1;
            entry.errors += i64::from(failed(call.status));
            entry.latency_us_sum += call.latency_us;
            entry.buckets[latency_bucket(call.latency_us)] += 1;
        }
    }
    counts
}

impl Store {
    /// Writes calls of a batch and adds them to the per-minute counts, in one transaction.
    pub async fn record_api_calls(&self, calls: Calls<'_>) -> Result<()> {
        let mut tx = self.api_log.pool.begin().await?;
        crate::api_log_blocks::insert(&mut tx, self.engine, calls).await?;
        let counts = minute_counts(calls);
        let additions: Vec<String> = ["requests", "errors", "latency_us_sum"]
            .iter()
            .chain(&BUCKET_COLUMNS)
            .map(|c| format!("{c} = api_call_minutes.{c} + excluded.{c}"))
            .collect();
        let upsert = |rows: &str| {
            format!(
                "INSERT INTO api_call_minutes (project_id, minute, app_id, api, requests, errors, latency_us_sum, {}) \
                 {rows} ON CONFLICT (project_id, minute, app_id, api) DO UPDATE SET {}",
                BUCKET_COLUMNS.join(", "),
                additions.join(", ")
            )
        };
        // Many rows per statement: a batch of calls from many App IDs adds hundreds of count rows,
        // and one statement each cost the embedded writer two thirds of its throughput.
        match self.engine {
            Engine::Sqlite => {
                let counts: Vec<_> = counts.into_iter().collect();
                let mut rest = counts.as_slice();
                for size in crate::api_log_blocks::statement_rows(counts.len(), MINUTE_ROWS_PER_UPSERT) {
                    let (chunk, after) = rest.split_at(size);
                    rest = after;
                    let row = format!("({})", ["?"; MINUTE_COLUMNS].join(", "));
                    let sql = upsert(&format!("VALUES {}", vec![row; chunk.len()].join(", ")));
                    let mut query = sqlx::query(&sql);
                    for ((project, ..), counts) in chunk {
                        query = query
                            .bind(*project)
                            .bind(counts.minute)
                            .bind(&counts.app_id)
                            .bind(&counts.api)
                            .bind(counts.requests)
                            .bind(counts.errors)
                            .bind(counts.latency_us_sum);
                        for count in counts.buckets {
                            query = query.bind(count);
                        }
                    }
                    query.execute(&mut *tx).await?;
                }
            }
            Engine::Postgres if !counts.is_empty() => {
                let rows: Vec<_> = counts
                    .iter()
                    .map(|((project, ..), counts)| {
                        let (minute, app_id, api) = (counts.minute, counts.app_id.as_str(), counts.api.as_str());
                        (
                            *project,
                            minute,
                            app_id,
                            api,
                            counts.requests,
                            counts.errors,
                            counts.latency_us_sum,
                            counts.buckets,
                        )
                    })
                    .collect();
                // Each row a JSON array whose last element is the array of bucket counts.
                let values: Vec<String> = ["row ->> 0", "(row ->> 1)::BIGINT", "row ->> 2", "row ->> 3"]
                    .into_iter()
                    .map(str::to_owned)
                    .chain((4..7).map(|index| format!("(row ->> {index})::BIGINT")))
                    .chain((0..BUCKET_COLUMNS.len()).map(|bucket| format!("(row -> 7 ->> {bucket})::BIGINT")))
                    .collect();
                let sql = upsert(&format!("SELECT {} FROM jsonb_array_elements($1::jsonb) AS row", values.join(", ")));
                let rows = serde_json::to_string(&rows).expect("per-minute counts serialise to JSON");
                sqlx::query(&sql).bind(rows).execute(&mut *tx).await?;
            }
            Engine::Postgres => {}
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes logged calls from before `calls_before` and per-minute counts from before `minutes_before`.
    pub async fn expire_api_calls(&self, calls_before: i64, minutes_before: i64) -> Result<()> {
        self.expire_api_call_blocks(calls_before).await?;
        sqlx::query("DELETE FROM api_call_minutes WHERE minute < $1")
            .bind(minutes_before)
            .execute(&self.api_log.pool)
            .await?;
        Ok(())
    }
}

impl ApiLogTx {
    /// The project's calls from `since` (Unix milliseconds) on, counted per `step` milliseconds (a multiple of
    /// a minute), App ID and API, oldest first; [`ApiCallMinute::minute`] is each step's start.
    pub async fn api_call_counts(&mut self, project: &ProjectId, since: i64, step: i64) -> Result<Vec<ApiCallMinute>> {
        // PostgreSQL sums BIGINTs as NUMERIC; the cast keeps one row type on both engines.
        let sums: Vec<String> = ["requests", "errors", "latency_us_sum"]
            .iter()
            .chain(&BUCKET_COLUMNS)
            .map(|column| format!("CAST(SUM({column}) AS BIGINT) AS {column}"))
            .collect();
        let sql = format!(
            "SELECT minute - minute % $3 AS step_start, app_id, api, {} FROM api_call_minutes \
             WHERE project_id = $1 AND minute >= $2 GROUP BY minute - minute % $3, app_id, api ORDER BY step_start",
            sums.join(", ")
        );
        let rows = sqlx::query(&sql).bind(project.as_str()).bind(since).bind(step).fetch_all(&mut *self.tx).await?;
        rows.iter()
            .map(|row| {
                let mut buckets = [0; 12];
                for (bucket, column) in buckets.iter_mut().zip(BUCKET_COLUMNS) {
                    *bucket = row.try_get(column)?;
                }
                Ok(ApiCallMinute {
                    minute: row.try_get("step_start")?,
                    app_id: row.try_get("app_id")?,
                    api: row.try_get("api")?,
                    requests: row.try_get("requests")?,
                    errors: row.try_get("errors")?,
                    latency_us_sum: row.try_get("latency_us_sum")?,
                    buckets,
                })
            })
            .collect()
    }

    /// The project's calls since `since` (Unix milliseconds), in all.
    pub async fn api_call_total(&mut self, project: &ProjectId, since: i64) -> Result<i64> {
        let total: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(SUM(requests) AS BIGINT) FROM api_call_minutes WHERE project_id = $1 AND minute >= $2",
        )
        .bind(project.as_str())
        .bind(since)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(total.unwrap_or(0))
    }
}

impl Tx {
    /// What the project holds: App IDs, components, workflow instances.
    pub async fn project_holdings(&mut self, project: &ProjectId) -> Result<Holdings> {
        Ok(Holdings {
            app_ids: self.count("SELECT COUNT(*) FROM app_ids WHERE project_id = $1", project).await?,
            components: self
                .count("SELECT COUNT(*) FROM resources WHERE project_id = $1 AND kind = 'Component'", project)
                .await?,
            workflow_instances: self.count("SELECT COUNT(*) FROM wf_instances WHERE project_id = $1", project).await?,
        })
    }

    async fn count(&mut self, sql: &str, project: &ProjectId) -> Result<i64> {
        Ok(sqlx::query_scalar(sql).bind(project.as_str()).fetch_one(&mut *self.tx).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CallBatch;

    #[test]
    fn latencies_fall_in_the_first_bucket_that_holds_them() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(250), 0);
        assert_eq!(latency_bucket(251), 1);
        assert_eq!(latency_bucket(1_000_000), 10);
        assert_eq!(latency_bucket(1_000_001), 11);
    }

    #[test]
    fn counts_hold_the_calls_app_ids_made_not_deliveries_nor_the_ends_of_streams() {
        let call = |at: i64, latency_us: i64, status: u16| ApiCall {
            project_id: ProjectId::received("p1".to_owned()),
            at,
            app_id: "orders".to_owned(),
            target: None,
            api: "pubsub".into(),
            protocol: "grpc".into(),
            method: "SubscribeTopicEventsAlpha1".into(),
            path: "/dapr.proto.runtime.v1.Dapr/SubscribeTopicEventsAlpha1".to_owned(),
            component: Some("pubsub".to_owned()),
            status,
            grpc_code: Some(0),
            latency_us,
            span: None,
            user_agent: None,
            caller_addr: None,
            direction: CallDirection::FromApp,
            stream_ended: false,
        };
        let opened = call(60_000, 300, 200);
        let ended = ApiCall { stream_ended: true, ..call(60_500, 400_000_000, 499) };
        let delivered = ApiCall { direction: CallDirection::ToApp, ..call(60_600, 900, 200) };
        let published = call(60_700, 700, 500);
        let calls = [opened, ended, delivered, published];
        let batch = CallBatch::of(&calls);
        let counts: Vec<ApiCallMinute> = minute_counts(batch.all()).into_values().collect();
        let expected = ApiCallMinute {
            minute: 60_000,
            app_id: "orders".to_owned(),
            api: "pubsub".to_owned(),
            requests: 2,
            errors: 1,
            latency_us_sum: 1_000,
            buckets: [0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        };
        assert_eq!(counts, [expected]);
    }
}
