//! What a project's App IDs did, from the API log: `/logs` (each call, newest first, filtered and paged),
//! `/metrics` (requests, errors and latency percentiles per App ID and per API over a window, as series for
//! charts) and `/usage` (what the project holds and how much it called this month).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use outrigger_store::{ApiCall, ApiCallFilter, ApiCallMinute, CallDirection, PageRequest, LATENCY_BUCKETS_US};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::timestamp;
use crate::access::ProjectScope;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::paging::{page_limit, Page};
use crate::AppState;

/// Filters and paging of the API log.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogQuery {
    /// Only calls made by this App ID.
    app_id: Option<String>,
    /// Only calls of this API: state, pubsub, invocation, workflows, jobs, bindings, secrets, lock,
    /// configuration, metadata.
    api: Option<String>,
    /// Only calls with this status: a code (`404`), a class (`5xx`), or `error` (any 4xx or 5xx).
    #[param(pattern = "^([1-5][0-9][0-9]|[1-5][xX][xX]|[eE][rR][rR][oO][rR])$")]
    status: Option<String>,
    /// Only calls at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Only calls before this time (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// Only calls whose path, method, component, target or App ID contain this text (any case).
    q: Option<String>,
    /// Only calls made by App IDs (`from_app`) or made to them by the platform (`to_app`: pub/sub deliveries,
    /// job triggers, input binding events).
    #[param(inline)]
    direction: Option<Direction>,
    /// Calls per page (1-1000, default 100). A page examines at most 20,000 calls (newest first) for its filters,
    /// so it may hold fewer calls than `limit`, or none, and still carry a `continuationToken` to examine the next
    /// ones.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where the page starts: the `continuationToken` of the previous page.
    continuation_token: Option<String>,
}

/// Which way a call went.
#[derive(Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Direction {
    /// An App ID called a Dapr API.
    FromApp,
    /// The platform called the App ID.
    ToApp,
}

impl From<Direction> for CallDirection {
    fn from(direction: Direction) -> CallDirection {
        match direction {
            Direction::FromApp => CallDirection::FromApp,
            Direction::ToApp => CallDirection::ToApp,
        }
    }
}

impl From<CallDirection> for Direction {
    fn from(direction: CallDirection) -> Direction {
        match direction {
            CallDirection::FromApp => Direction::FromApp,
            CallDirection::ToApp => Direction::ToApp,
        }
    }
}

/// One call.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CallOut {
    time: DateTime<Utc>,
    /// The App ID that made the call, or (`to_app`) the one the platform called.
    app_id: String,
    direction: Direction,
    /// The App ID or HTTP endpoint an invocation went to, the topic of a publish or delivery, or a job's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    api: String,
    /// `http` or `grpc`.
    protocol: String,
    /// HTTP method or rpc name.
    method: String,
    /// HTTP path or the rpc's full name.
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<String>,
    /// HTTP status; for gRPC calls the one paired with `grpcCode`.
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc_code: Option<i32>,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    span_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_address: Option<String>,
    /// Present (`true`) on the record of a stream's end: `status` is what it ended with (`499` when the app went
    /// away), `latencyMs` how long it was open, `time` when it ended. The stream's opening is a call of its own,
    /// the one counted in metrics and usage.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream_ended: bool,
}

fn call_out(call: ApiCall) -> CallOut {
    CallOut {
        time: timestamp(call.at),
        app_id: call.app_id,
        direction: call.direction.into(),
        target: call.target,
        api: call.api.into_owned(),
        protocol: call.protocol.into_owned(),
        method: call.method.into_owned(),
        path: call.path,
        component: call.component,
        status: call.status,
        grpc_code: call.grpc_code,
        latency_ms: call.latency_us as f64 / 1000.0,
        trace_id: call.span.map(|span| span.trace_id_hex()),
        span_id: call.span.map(|span| span.span_id_hex()),
        user_agent: call.user_agent,
        caller_address: call.caller_addr.map(|address| address.to_string()),
        stream_ended: call.stream_ended,
    }
}

/// The statuses a `status` filter names: [from, to).
fn status_range(filter: &str) -> ApiResult<(u16, u16)> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_query",
            format!("status '{filter}' is not a status: give a code (404), a class (5xx) or 'error'"),
        )
    };
    match filter.to_ascii_lowercase().as_str() {
        "error" => Ok((400, 600)),
        class if class.len() == 3 && class.ends_with("xx") => {
            let hundreds =
                class[..1].parse::<u16>().ok().filter(|digit| (1..=5).contains(digit)).ok_or_else(invalid)?;
            Ok((hundreds * 100, hundreds * 100 + 100))
        }
        code => code
            .parse::<u16>()
            .ok()
            .filter(|code| (100..600).contains(code))
            .map(|code| (code, code + 1))
            .ok_or_else(invalid),
    }
}

/// The oldest call the log shows: calls past the retention are not shown, whether or not they were removed yet.
fn retained_since(state: &AppState) -> i64 {
    Utc::now().timestamp_millis() - i64::try_from(state.options.api_log_retention.as_millis()).unwrap_or(i64::MAX)
}

/// List the calls the project's App IDs made and received, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/projects/{project}/logs", tag = "activity",
    params(("project" = String, Path), LogQuery), responses((status = 200, body = Page<CallOut>)))]
pub(crate) async fn list_calls(
    State(state): State<AppState>,
    Path(_project): Path<String>,
    scope: ProjectScope,
    Query(query): Query<LogQuery>,
) -> ApiResult<Json<Page<CallOut>>> {
    let request = PageRequest { limit: page_limit(query.limit)?, continuation: query.continuation_token };
    let since = query.since.map(|since| since.timestamp_millis()).unwrap_or(i64::MIN).max(retained_since(&state));
    let filter = ApiCallFilter {
        app_id: query.app_id,
        api: query.api,
        status: query.status.as_deref().map(status_range).transpose()?,
        since: Some(since),
        until: query.until.map(|until| until.timestamp_millis()),
        text: query.q.filter(|text| !text.is_empty()),
        direction: query.direction.map(CallDirection::from),
    };
    let page = state.store.begin_api_log().await?.page_api_calls(&scope.project.id, &filter, &request).await?;
    Ok(Json(Page::of(page, call_out)))
}

/// The window of a metrics query.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct MetricsQuery {
    /// `1h` (default; 1-minute steps), `6h` (5 minutes), `24h` (15 minutes) or `7d` (2 hours).
    #[param(inline)]
    window: Option<Window>,
}

/// A metrics window.
#[derive(Deserialize, Serialize, ToSchema, Clone, Copy)]
pub(crate) enum Window {
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "6h")]
    SixHours,
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
}

impl Window {
    /// Its length and the length of its steps, in minutes.
    fn minutes(self) -> (i64, i64) {
        match self {
            Window::Hour => (60, 1),
            Window::SixHours => (360, 5),
            Window::Day => (1440, 15),
            Window::Week => (10_080, 120),
        }
    }
}

/// Figures over a stretch of time.
#[derive(Serialize, ToSchema, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Figures {
    requests: i64,
    errors: i64,
    /// Errors (4xx and 5xx) per request, 0-1.
    error_rate: f64,
    /// Requests per second.
    rps: f64,
    /// Latency percentiles in milliseconds, estimated from latency buckets; absent without requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p95_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_ms: Option<f64>,
}

/// One step of a series.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Point {
    /// The step's start.
    time: DateTime<Utc>,
    #[serde(flatten)]
    figures: Figures,
}

/// Figures of one App ID or API: over the whole window, and per step.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Breakdown {
    /// The App ID or API.
    name: String,
    total: Figures,
    series: Vec<Point>,
}

/// A project's calls over a window.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MetricsOut {
    window: Window,
    step_seconds: i64,
    since: DateTime<Utc>,
    total: Figures,
    series: Vec<Point>,
    by_app_id: Vec<Breakdown>,
    by_api: Vec<Breakdown>,
}

/// Counts of calls added up: requests, errors, latency buckets.
#[derive(Clone, Copy, Default)]
struct Tally {
    requests: i64,
    errors: i64,
    buckets: [i64; 12],
}

impl Tally {
    fn add(&mut self, minute: &ApiCallMinute) {
        self.requests += minute.requests;
        self.errors += minute.errors;
        for (sum, count) in self.buckets.iter_mut().zip(minute.buckets) {
            *sum += count;
        }
    }

    /// The latency (ms) below which a `quantile` of the calls fell, interpolated inside its bucket.
    fn percentile(&self, quantile: f64) -> Option<f64> {
        if self.requests == 0 {
            return None;
        }
        let rank = quantile * self.requests as f64;
        let mut below = 0.0;
        for (index, count) in self.buckets.iter().enumerate() {
            let count = *count as f64;
            if count > 0.0 && below + count >= rank {
                let lower = if index == 0 { 0 } else { LATENCY_BUCKETS_US[index - 1] } as f64;
                // The unbounded bucket reports its lower bound: a call at least that slow.
                let Some(upper) = LATENCY_BUCKETS_US.get(index).map(|upper| *upper as f64) else {
                    return Some(lower / 1000.0);
                };
                return Some((lower + (upper - lower) * ((rank - below) / count).clamp(0.0, 1.0)) / 1000.0);
            }
            below += count;
        }
        None
    }

    fn figures(&self, seconds: i64) -> Figures {
        Figures {
            requests: self.requests,
            errors: self.errors,
            error_rate: if self.requests == 0 { 0.0 } else { self.errors as f64 / self.requests as f64 },
            rps: self.requests as f64 / seconds as f64,
            p50_ms: self.percentile(0.50),
            p95_ms: self.percentile(0.95),
            p99_ms: self.percentile(0.99),
        }
    }
}

/// Tallies of one breakdown: over the window and per step.
struct Tallies {
    total: Tally,
    steps: Vec<Tally>,
}

impl Tallies {
    fn new(steps: usize) -> Tallies {
        Tallies { total: Tally::default(), steps: vec![Tally::default(); steps] }
    }

    fn add(&mut self, step: usize, minute: &ApiCallMinute) {
        self.total.add(minute);
        self.steps[step].add(minute);
    }

    fn breakdown(&self, name: String, since: i64, step_ms: i64) -> Breakdown {
        Breakdown {
            name,
            total: self.total.figures(step_ms * self.steps.len() as i64 / 1000),
            series: self.series(since, step_ms),
        }
    }

    fn series(&self, since: i64, step_ms: i64) -> Vec<Point> {
        let step = |index: usize| since + step_ms * index as i64;
        self.steps
            .iter()
            .enumerate()
            .map(|(index, tally)| Point { time: timestamp(step(index)), figures: tally.figures(step_ms / 1000) })
            .collect()
    }
}

/// Requests, errors and latency of the project's calls over a window, per App ID and per API.
#[utoipa::path(get, path = "/api/v1/projects/{project}/metrics", tag = "activity",
    params(("project" = String, Path), MetricsQuery), responses((status = 200, body = MetricsOut)))]
pub(crate) async fn call_metrics(
    State(state): State<AppState>,
    Path(_project): Path<String>,
    scope: ProjectScope,
    Query(query): Query<MetricsQuery>,
) -> ApiResult<Json<MetricsOut>> {
    let window = query.window.unwrap_or(Window::Hour);
    let (window_minutes, step_minutes) = window.minutes();
    let step_ms = step_minutes * 60_000;
    // Steps end at the current step's end, so the last point is the one filling now.
    let now = Utc::now().timestamp_millis();
    let since = now - now.rem_euclid(step_ms) + step_ms - window_minutes * 60_000;
    let steps = (window_minutes / step_minutes) as usize;
    let counts = state.store.begin_api_log().await?.api_call_counts(&scope.project.id, since, step_ms).await?;
    let mut total = Tallies::new(steps);
    let (mut by_app, mut by_api) = (BTreeMap::<String, Tallies>::new(), BTreeMap::<String, Tallies>::new());
    for counted in &counts {
        let Some(step) = usize::try_from((counted.minute - since) / step_ms).ok().filter(|step| *step < steps) else {
            continue;
        };
        total.add(step, counted);
        by_app.entry(counted.app_id.clone()).or_insert_with(|| Tallies::new(steps)).add(step, counted);
        by_api.entry(counted.api.clone()).or_insert_with(|| Tallies::new(steps)).add(step, counted);
    }
    let breakdowns = |tallies: BTreeMap<String, Tallies>| {
        tallies.into_iter().map(|(name, tallies)| tallies.breakdown(name, since, step_ms)).collect()
    };
    Ok(Json(MetricsOut {
        window,
        step_seconds: step_ms / 1000,
        since: timestamp(since),
        total: total.total.figures(window_minutes * 60),
        series: total.series(since, step_ms),
        by_app_id: breakdowns(by_app),
        by_api: breakdowns(by_api),
    }))
}

/// What a project holds and how much it called in the current calendar month (UTC).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageOut {
    /// The month counted, `YYYY-MM`.
    period: String,
    app_ids: i64,
    /// Components declared (the managed `kvstore` and `pubsub` not counted).
    components: i64,
    workflow_instances: i64,
    /// Dapr API calls made this month.
    requests: i64,
    /// Pub/sub API calls (publishes) made this month.
    publish_requests: i64,
    /// Bytes (keys and values of live items) the project keeps in its managed kvstore, now; absent when the
    /// store could not be measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    stored_state_bytes: Option<u64>,
}

/// What the project holds and how many calls it made this month.
#[utoipa::path(get, path = "/api/v1/projects/{project}/usage", tag = "activity",
    params(("project" = String, Path)), responses((status = 200, body = UsageOut)))]
pub(crate) async fn usage(
    State(state): State<AppState>,
    Path(_project): Path<String>,
    scope: ProjectScope,
) -> ApiResult<Json<UsageOut>> {
    let now = Utc::now();
    let month_start =
        Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).single().unwrap_or(now).timestamp_millis();
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    let holdings = tx.project_holdings(&project.id).await?;
    drop(tx);
    let counts =
        state.store.begin_api_log().await?.api_call_counts(&project.id, month_start, 31 * 24 * 3_600_000).await?;
    let requests = counts.iter().map(|counted| counted.requests).sum();
    let publish_requests =
        counts.iter().filter(|counted| counted.api == "pubsub").map(|counted| counted.requests).sum();
    let stored_state_bytes = match (&state.options.stored_bytes, project.managed_kvstore) {
        (_, false) => Some(0),
        (None, true) => None,
        (Some(meter), true) => match meter.stored_bytes(&project.id).await {
            Ok(bytes) => Some(bytes),
            Err(err) => {
                tracing::warn!(project = %project.name, error = %err, "the managed kvstore could not be measured");
                None
            }
        },
    };
    Ok(Json(UsageOut {
        period: format!("{:04}-{:02}", now.year(), now.month()),
        app_ids: holdings.app_ids,
        components: holdings.components,
        workflow_instances: holdings.workflow_instances,
        requests,
        publish_requests,
        stored_state_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_filters_name_codes_classes_and_errors() {
        assert_eq!(status_range("5xx").unwrap(), (500, 600));
        assert_eq!(status_range("404").unwrap(), (404, 405));
        assert_eq!(status_range("error").unwrap(), (400, 600));
        for bad in ["9xx", "abc", "99", "600", ""] {
            assert!(status_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percentiles_interpolate_inside_buckets() {
        let mut tally = Tally { requests: 100, errors: 0, buckets: [0; 12] };
        tally.buckets[0] = 50; // up to 0.25 ms
        tally.buckets[1] = 50; // 0.25-0.5 ms
        assert_eq!(tally.percentile(0.5), Some(0.25));
        assert_eq!(tally.percentile(0.99), Some(0.495));
        tally.buckets = [0; 12];
        tally.buckets[11] = 100;
        assert_eq!(tally.percentile(0.5), Some(1000.0), "the unbounded bucket reports its lower bound");
        assert_eq!(Tally::default().percentile(0.5), None);
    }
}
