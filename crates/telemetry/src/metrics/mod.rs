//! The process's Prometheus registry. Calls are counted under daprd's metric names and label keys
//! (`dapr_http_server_request_count`, `dapr_grpc_io_server_completed_rpcs`, … with `app_id`, `method`,
//! `status`, `grpc_server_method`, `grpc_server_status`), plus the project's name and id ([`TenantLabels`]), so
//! Dapr's dashboards work with a label added; Outrigger's own figures are named `outrigger_*`. A project's name is
//! unique only within its organization, so its id is a label too: two organizations' projects of one name never
//! share a series.
//!
//! Series stay bounded however many projects an installation holds: only the first
//! [`Metrics::set_tenant_limit`] (project, App ID) pairs a process sees get series of their own; every later
//! pair is counted under `project="other", project_id="other", app_id="other"` (and
//! `outrigger_metrics_tenants_folded_total` counts such calls). Per-project figures for every project come from
//! the API log's counts, read through the control API, not from series. Recording a call hashes its label values
//! once (foldhash, which takes 8 bytes a step where FNV took one) and finds the series' counter and histogram in a
//! cache keyed by that hash, so the busy path is a short hash, a read lock and a few atomic adds; the registry's
//! own look-up runs once per label set. Labels are only formatted when `/metrics` is read.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use prometheus::{Encoder, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

mod runtime;
mod series;
mod tenant;
pub use runtime::{BreakerState, ExecutionStatus, FlowDirection, PolicyKind, PolicyLabels, Runtime, WorkflowOperation};
use series::{
    counter, histogram, label_hash, label_hash_after, single, static_key, CachedSeries, LabelKeys, MAX_CACHED_SERIES,
};
use tenant::{named, tenant_labels, FOLDED, FOLDED_TENANT};
pub use tenant::{TenantHash, TenantLabels};

/// Latency buckets in milliseconds (daprd's start at 1 ms; a remote sidecar's calls are mostly below that).
pub(crate) const LATENCY_BUCKETS_MS: &[f64] =
    &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0];
/// (project, App ID) pairs with series of their own, unless the operator says otherwise.
pub const DEFAULT_TENANT_LIMIT: usize = 100;

/// A call counted in its worker pool's queue depth while it is held ([`Metrics::worker_call`]).
#[must_use = "the call leaves the queue when this is dropped"]
pub struct InWorkerQueue(Option<IntGauge>);

impl Drop for InWorkerQueue {
    fn drop(&mut self) {
        self.0.iter().for_each(IntGauge::dec);
    }
}

/// A project cache whose look-ups are counted in `outrigger_cache_lookups_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheName {
    /// The gateway's invocation directory.
    GatewayDirectory,
    /// The worker's project components.
    WorkerComponents,
}

impl CacheName {
    const COUNT: usize = 2;

    /// Its `cache` label.
    fn label(self) -> &'static str {
        match self {
            CacheName::GatewayDirectory => "gateway_directory",
            CacheName::WorkerComponents => "worker_components",
        }
    }
}

/// Every metric the process keeps.
pub struct Metrics {
    registry: Registry,
    http: CachedSeries,
    grpc: CachedSeries,
    bus_round_trip: CachedSeries,
    api_log_written: IntCounter,
    api_log_dropped: IntCounter,
    token_hits: IntCounter,
    token_misses: IntCounter,
    tenants_folded: IntCounter,
    pubsub_ingress: CachedSeries,
    pubsub_egress: CachedSeries,
    delivery_lag: CachedSeries,
    store_timeouts: IntCounterVec,
    cache_lookups: IntCounterVec,
    /// Each cache's miss and hit counters (in that order), found in `cache_lookups` at first use: a look-up is
    /// counted on every call, and with the handle held that is ~45 instructions, where finding the series in a
    /// map under a read lock cost ~180.
    cache_lookup_counters: [[OnceLock<IntCounter>; 2]; CacheName::COUNT],
    token_cache_ttl: prometheus::Gauge,
    scheduler_lag: HistogramVec,
    queue_depth: IntGaugeVec,
    /// The queue-depth gauge of each pool a process serves (one or a few: a list, looked up by name without
    /// hashing it).
    queue_depth_of: RwLock<Vec<(String, IntGauge)>>,
    /// daprd's workflow and resiliency series, recorded through [`Metrics::runtime`].
    runtime: runtime::RuntimeSeries,
    /// Hashes of the (project, App ID) pairs with series of their own (hashes: no allocation per call).
    tenants: RwLock<HashSet<u64, LabelKeys>>,
    tenant_limit: AtomicUsize,
    /// Whether anything is counted (`OUTRIGGER_METRICS`): every record looks at it first, so that a process
    /// with metrics off pays one load per record.
    on: AtomicBool,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Seconds as milliseconds, the unit of daprd's latency histograms.
pub(crate) fn millis(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1000.0
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let http = &tenant_labels(&["method", "status"]);
        let grpc = &tenant_labels(&["grpc_server_method", "grpc_server_status"]);
        let ingress = &tenant_labels(&["component", "topic", "process_status", "status"]);
        let egress = &tenant_labels(&["component", "topic", "success"]);
        let seconds = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];
        let token_lookups = counter(
            &registry,
            "outrigger_token_lookups_total",
            "API token lookups, answered from the cache (hit) or the database (miss).",
            &["result"],
        );
        Metrics {
            http: CachedSeries::new(
                Some(counter(
                    &registry,
                    "dapr_http_server_request_count",
                    "Count of HTTP requests processed by the server.",
                    http,
                )),
                histogram(
                    &registry,
                    "dapr_http_server_latency",
                    "HTTP request end-to-end latency in server, in milliseconds.",
                    http,
                    LATENCY_BUCKETS_MS,
                ),
            ),
            grpc: CachedSeries::new(
                Some(counter(
                    &registry,
                    "dapr_grpc_io_server_completed_rpcs",
                    "Count of RPCs by method and status.",
                    grpc,
                )),
                histogram(
                    &registry,
                    "dapr_grpc_io_server_server_latency",
                    "Time from a request's arrival to its last response byte or terminal error, in milliseconds.",
                    grpc,
                    LATENCY_BUCKETS_MS,
                ),
            ),
            bus_round_trip: CachedSeries::new(
                None,
                histogram(
                    &registry,
                    "outrigger_bus_round_trip_seconds",
                    "Time from a gateway sending a call to a worker until its answer arrived.",
                    &["call", "outcome"],
                    seconds,
                ),
            ),
            api_log_written: single(&registry, "outrigger_api_log_written_total", "Calls written to the API log."),
            api_log_dropped: single(
                &registry,
                "outrigger_api_log_dropped_total",
                "Calls the API log could not keep (its queue was full or a write failed).",
            ),
            token_hits: token_lookups.with_label_values(&["hit"]),
            token_misses: token_lookups.with_label_values(&["miss"]),
            tenants_folded: single(
                &registry,
                "outrigger_metrics_tenants_folded_total",
                "Calls counted under project=\"other\", project_id=\"other\" because the per-tenant series limit was \
                 reached.",
            ),
            pubsub_ingress: CachedSeries::new(
                Some(counter(
                    &registry,
                    "dapr_component_pubsub_ingress_count",
                    "The number of incoming messages arriving from the pub/sub component (delivered to apps).",
                    ingress,
                )),
                histogram(
                    &registry,
                    "dapr_component_pubsub_ingress_latencies",
                    "The consuming app event processing latency, in milliseconds.",
                    ingress,
                    LATENCY_BUCKETS_MS,
                ),
            ),
            pubsub_egress: CachedSeries::new(
                Some(counter(
                    &registry,
                    "dapr_component_pubsub_egress_count",
                    "The number of outgoing messages published to the pub/sub component.",
                    egress,
                )),
                histogram(
                    &registry,
                    "dapr_component_pubsub_egress_latencies",
                    "The latency of the response from the pub/sub component, in milliseconds.",
                    egress,
                    LATENCY_BUCKETS_MS,
                ),
            ),
            delivery_lag: CachedSeries::new(
                None,
                histogram(
                    &registry,
                    "outrigger_pubsub_delivery_lag_seconds",
                    "Time from a message's publication to its first delivery to a subscription's app.",
                    &tenant_labels(&["component", "topic"]),
                    seconds,
                ),
            ),
            store_timeouts: counter(
                &registry,
                "outrigger_store_timeouts_total",
                "Backend calls of components that got no answer in time.",
                &["component_type"],
            ),
            cache_lookups: counter(
                &registry,
                "outrigger_cache_lookups_total",
                "Look-ups of a project's cached settings (hit) or reads of them from the control plane (miss).",
                &["cache", "result"],
            ),
            cache_lookup_counters: Default::default(),
            token_cache_ttl: {
                let gauge = prometheus::Gauge::new(
                    "outrigger_token_cache_ttl_seconds",
                    "How long a token lookup is trusted: the most time a revoked token keeps working.",
                )
                .expect("valid gauge");
                registry.register(Box::new(gauge.clone())).expect("metric registered once");
                gauge
            },
            scheduler_lag: histogram(
                &registry,
                "outrigger_scheduler_lag_seconds",
                "How late the scheduler fired a due job or cron binding.",
                &["kind"],
                seconds,
            ),
            queue_depth: {
                let gauge = IntGaugeVec::new(
                    Opts::new("outrigger_worker_queue_depth", "Calls a worker is handling now."),
                    &["pool"],
                )
                .expect("valid gauge");
                registry.register(Box::new(gauge.clone())).expect("metric registered once");
                gauge
            },
            runtime: runtime::RuntimeSeries::new(&registry),
            registry,
            tenants: RwLock::default(),
            queue_depth_of: RwLock::default(),
            tenant_limit: AtomicUsize::new(DEFAULT_TENANT_LIMIT),
            on: AtomicBool::new(true),
        }
    }

    /// Stops counting: every record from now on does nothing (the process serves no `/metrics` either).
    pub fn turn_off(&self) {
        self.on.store(false, Ordering::Relaxed);
    }

    /// Whether records count.
    pub(crate) fn on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// How many (project, App ID) pairs get series of their own.
    pub fn set_tenant_limit(&self, limit: usize) {
        self.tenant_limit.store(limit, Ordering::Relaxed);
    }

    /// The label values a tenant's calls are counted under: its own, or the folded ones past the limit.
    pub(crate) fn tenant<'a>(&self, tenant: TenantLabels<'a>) -> TenantLabels<'a> {
        self.tenant_of_hash(tenant, tenant.hash_value()).0
    }

    /// [`tenant`](Self::tenant) for a tenant whose labels hash to `key`, with the hash of the labels it answers.
    /// Once the limit is reached, a tenant past it is folded under the read lock: every call of a folded tenant
    /// asks, and taking the write lock for each would make one queue of all such calls of the process.
    fn tenant_of_hash<'a>(&self, tenant: TenantLabels<'a>, key: u64) -> (TenantLabels<'a>, u64) {
        let limit = self.tenant_limit.load(Ordering::Relaxed);
        let full = {
            let tenants = self.tenants.read().expect("tenant labels lock");
            if tenants.contains(&key) {
                return (tenant, key);
            }
            tenants.len() >= limit
        };
        if !full {
            let mut tenants = self.tenants.write().expect("tenant labels lock");
            if tenants.contains(&key) || tenants.len() < limit {
                tenants.insert(key);
                return (tenant, key);
            }
        }
        self.tenants_folded.inc();
        let folded = *FOLDED_TENANT;
        (folded, folded.hash_value())
    }

    /// Counts an HTTP call of the Dapr API; `method` is daprd's label for its method, a word of a fixed
    /// vocabulary.
    pub fn http_call(&self, tenant: TenantLabels<'_>, method: &'static str, status: u16, elapsed: Duration) {
        if !self.on() {
            return;
        }
        // The method's address and the status join the tenant's hash without being hashed themselves.
        let spread = static_key(method, false).rotate_left(17) ^ u64::from(status).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let labels = |_| {
            let status = http::StatusCode::from_u16(status).ok();
            vec![method.to_owned(), status.as_ref().map_or("other", http::StatusCode::as_str).to_owned()]
        };
        self.tenant_observe(&self.http, tenant, |tenant, _| tenant ^ spread, labels, millis(elapsed));
    }

    /// Counts a gRPC call of the Dapr API; `method` is the rpc's full path, `code` its gRPC status code.
    pub fn grpc_call(&self, tenant: TenantLabels<'_>, method: &str, code: i32, elapsed: Duration) {
        if !self.on() {
            return;
        }
        let code = grpc_code_name(code);
        let key = |tenant, _| label_hash_after(tenant, &[method, code]);
        self.tenant_observe(&self.grpc, tenant, key, |_| vec![method.to_owned(), code.to_owned()], millis(elapsed));
    }

    /// Counts `value` in `series`, labelled by its tenant, then the labels `rest` makes (told whether the tenant
    /// is counted under the folded labels, whose own names are not kept either); `key` makes the series' key from
    /// the tenant's hash and whether it is folded (a key must not tell apart what the folded labels do not). A
    /// series already cached is counted before the tenant is looked at, and `rest` is only asked for a series not
    /// cached yet: only a tenant past the limit of [`set_tenant_limit`](Self::set_tenant_limit) is looked up on
    /// every call, under a read lock, and counted in the folded series cached for all such tenants.
    fn tenant_observe(
        &self,
        series: &CachedSeries,
        tenant: TenantLabels<'_>,
        key: impl Fn(u64, bool) -> u64,
        rest: impl FnOnce(bool) -> Vec<String>,
        value: f64,
    ) {
        let own = tenant.hash_value();
        if series.observe_cached(key(own, false), value) {
            return;
        }
        let (tenant, tenant_key) = self.tenant_of_hash(tenant, own);
        let folded = tenant.folded();
        let key = key(tenant_key, folded);
        if folded && series.observe_cached(key, value) {
            return;
        }
        let rest = rest(folded);
        let mut labels = tenant.values().to_vec();
        labels.extend(rest.iter().map(String::as_str));
        series.observe_keyed(key, &labels, value);
    }

    /// Times a call's trip over the bus (`call` names the call type, a fixed set).
    pub fn bus_round_trip(&self, call: &'static str, succeeded: bool, elapsed: Duration) {
        if !self.on() {
            return;
        }
        let outcome = if succeeded { "answered" } else { "failed" };
        self.bus_round_trip.observe_keyed(static_key(call, succeeded), &[call, outcome], elapsed.as_secs_f64());
    }

    /// Counts calls the API log wrote.
    pub fn api_log_written(&self, calls: usize) {
        if !self.on() {
            return;
        }
        self.api_log_written.inc_by(calls as u64);
    }

    /// Counts calls the API log lost.
    pub fn api_log_dropped(&self, calls: usize) {
        if !self.on() {
            return;
        }
        self.api_log_dropped.inc_by(calls as u64);
    }

    /// Counts a token lookup.
    pub fn token_lookup(&self, cached: bool) {
        if !self.on() {
            return;
        }
        if cached { &self.token_hits } else { &self.token_misses }.inc();
    }

    /// The label values of a tenant's series that name one of its own things (a topic, a workflow): folded
    /// tenants' names are not kept either.
    pub(crate) fn tenant_and_name<'a>(&self, tenant: TenantLabels<'a>, name: &'a str) -> [&'a str; 4] {
        let tenant = self.tenant(tenant);
        let [project, project_id, app_id] = tenant.values();
        [project, project_id, app_id, named(tenant.folded(), name)]
    }

    /// Counts a message handed to an app (daprd's ingress): `process_status` is the app's verdict,
    /// `success`, `retry` or `drop`.
    pub fn pubsub_delivery(
        &self,
        tenant: TenantLabels<'_>,
        (component, topic): (&str, &str),
        process_status: &str,
        elapsed: Duration,
    ) {
        if !self.on() {
            return;
        }
        let key = |tenant, folded| label_hash_after(tenant, &[component, named(folded, topic), process_status]);
        let labels = |folded| [component, named(folded, topic), process_status, ""].map(str::to_owned).to_vec();
        self.tenant_observe(&self.pubsub_ingress, tenant, key, labels, millis(elapsed));
    }

    /// Counts a message an app published (daprd's egress), `success` when the broker took it.
    pub fn pubsub_publish(
        &self,
        tenant: TenantLabels<'_>,
        (component, topic): (&str, &str),
        success: bool,
        elapsed: Duration,
    ) {
        if !self.on() {
            return;
        }
        let success = if success { "true" } else { "false" };
        let key = |tenant, folded| label_hash_after(tenant, &[component, named(folded, topic), success]);
        let labels = |folded| [component, named(folded, topic), success].map(str::to_owned).to_vec();
        self.tenant_observe(&self.pubsub_egress, tenant, key, labels, millis(elapsed));
    }

    /// Records how long a message waited from its publication until its first delivery to a subscription.
    pub fn delivery_lag(&self, tenant: TenantLabels<'_>, (component, topic): (&str, &str), lag: Duration) {
        if !self.on() {
            return;
        }
        let key = |tenant, folded| label_hash_after(tenant, &[component, named(folded, topic)]);
        let labels = |folded| [component, named(folded, topic)].map(str::to_owned).to_vec();
        self.tenant_observe(&self.delivery_lag, tenant, key, labels, lag.as_secs_f64());
    }

    /// Counts a backend call of a component (by its `spec.type`) that timed out.
    pub fn store_timeout(&self, component_type: &str) {
        if !self.on() {
            return;
        }
        self.store_timeouts.with_label_values(&[component_type]).inc();
    }

    /// Counts a look-up of a project cache.
    pub fn cache_lookup(&self, cache: CacheName, hit: bool) {
        if !self.on() {
            return;
        }
        let result = if hit { "hit" } else { "miss" };
        self.cache_lookup_counters[cache as usize][usize::from(hit)]
            .get_or_init(|| self.cache_lookups.with_label_values(&[cache.label(), result]))
            .inc();
    }

    /// Says how long token lookups are trusted.
    pub fn set_token_cache_ttl(&self, ttl: Duration) {
        if !self.on() {
            return;
        }
        self.token_cache_ttl.set(ttl.as_secs_f64());
    }

    /// Records how late the scheduler fired something due (`kind`: `job` or `cron-binding`).
    pub fn scheduler_lag(&self, kind: &str, late: Duration) {
        if !self.on() {
            return;
        }
        self.scheduler_lag.with_label_values(&[kind]).observe(late.as_secs_f64());
    }

    /// Counts a call a worker of `pool` starts in `outrigger_worker_queue_depth`, until the answer is dropped
    /// (the call ended). The series is found once per call, for both counts.
    pub fn worker_call(&self, pool: &str) -> InWorkerQueue {
        if !self.on() {
            return InWorkerQueue(None);
        }
        let known = |gauges: &Vec<(String, IntGauge)>| {
            gauges.iter().find(|(name, _)| name == pool).map(|(_, gauge)| gauge.clone())
        };
        let found = known(&self.queue_depth_of.read().expect("queue depth lock"));
        let depth = found.unwrap_or_else(|| {
            let mut gauges = self.queue_depth_of.write().expect("queue depth lock");
            known(&gauges).unwrap_or_else(|| {
                let gauge = self.queue_depth.with_label_values(&[pool]);
                gauges.push((pool.to_owned(), gauge.clone()));
                gauge
            })
        });
        depth.inc();
        InWorkerQueue(Some(depth))
    }

    /// daprd's runtime series: workflows and Resiliency policies.
    pub fn runtime(&self) -> Runtime<'_> {
        Runtime::of(self)
    }

    /// Everything, in Prometheus's text format.
    pub fn render(&self) -> String {
        let mut text = Vec::new();
        prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut text).expect("text encoding cannot fail");
        String::from_utf8(text).expect("the text format is UTF-8")
    }
}

/// gRPC's canonical code names, as OpenCensus labels them.
fn grpc_code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code).ok().and_then(|code| NAMES.get(code)).copied().unwrap_or("UNKNOWN")
}

#[cfg(test)]
mod tests;
