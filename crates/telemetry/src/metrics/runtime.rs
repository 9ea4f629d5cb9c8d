//! daprd's runtime series: workflows (`dapr_runtime_workflow_*`) and Resiliency policies (`dapr_resiliency_*`),
//! under daprd's names, label keys and label values, with `project` and `project_id` in place of daprd's
//! `namespace`.
//!
//! Every label set goes through [`Metrics::tenant`]: a tenant past the series limit is counted under
//! `project="other", project_id="other", app_id="other"`, and the names it chose (workflows, activities,
//! Resiliency documents, targets) are not kept either. The other label values come from the fixed sets of the
//! enums below. As for the calls' series, a record hashes its label values and finds its handles in a cache;
//! label values are only formatted the first time a label set is seen.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::{
    counter, histogram, label_hash, millis, tenant_labels, CachedSeries, LabelKeys, Metrics, TenantLabels, FOLDED,
    LATENCY_BUCKETS_MS, MAX_CACHED_SERIES,
};

/// Buckets of the workflow and activity latencies, in milliseconds: workflows run for seconds to hours.
const WORKFLOW_BUCKETS_MS: &[f64] = &[
    1.0,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10_000.0,
    30_000.0,
    60_000.0,
    300_000.0,
    900_000.0,
    3_600_000.0,
];

/// The operations of daprd's workflow API (`operation` of `dapr_runtime_workflow_operation_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkflowOperation {
    /// Starting an instance.
    CreateWorkflow,
    /// Reading an instance's state.
    GetWorkflow,
    /// Raising an event, terminating, suspending or resuming: each adds an event to the instance.
    AddEvent,
    /// Purging instances.
    PurgeWorkflow,
}

impl WorkflowOperation {
    fn label(self) -> &'static str {
        match self {
            WorkflowOperation::CreateWorkflow => "create_workflow",
            WorkflowOperation::GetWorkflow => "get_workflow",
            WorkflowOperation::AddEvent => "add_event",
            WorkflowOperation::PurgeWorkflow => "purge_workflow",
        }
    }
}

/// How a workflow execution or an activity execution ended (`status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutionStatus {
    /// Completed.
    Success,
    /// Failed (or, for a workflow, ended in any other way than completing or being terminated).
    Failed,
    /// A workflow terminated.
    Terminated,
    /// Not finished, to be tried again (an activity that could not be handed to its worker).
    Recoverable,
}

impl ExecutionStatus {
    fn label(self) -> &'static str {
        match self {
            ExecutionStatus::Success => "success",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Terminated => "terminated",
            ExecutionStatus::Recoverable => "recoverable",
        }
    }
}

/// The kinds of Resiliency policy (`policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    Timeout,
    Retry,
    CircuitBreaker,
}

impl PolicyKind {
    fn label(self) -> &'static str {
        match self {
            PolicyKind::Timeout => "timeout",
            PolicyKind::Retry => "retry",
            PolicyKind::CircuitBreaker => "circuitbreaker",
        }
    }
}

/// Which way the governed call goes (`flow_direction`): to the target, or from a component to the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowDirection {
    Outbound,
    Inbound,
}

impl FlowDirection {
    fn label(self) -> &'static str {
        match self {
            FlowDirection::Outbound => "outbound",
            FlowDirection::Inbound => "inbound",
        }
    }
}

/// A circuit breaker's state (`status` of its series; daprd's gobreaker names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    fn label(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half-open",
            BreakerState::Open => "open",
        }
    }
}

/// The values `dapr_resiliency_cb_state` has a series for, in order (daprd's, `unknown` included).
const BREAKER_STATES: [&str; 4] = ["closed", "half-open", "open", "unknown"];

/// One policy of a Resiliency document governing a call, as daprd's `dapr_resiliency_*` series label it.
#[derive(Clone, Copy, Debug)]
pub struct PolicyLabels<'a> {
    /// The Resiliency document the policy comes from (`name`).
    pub resiliency: &'a str,
    pub policy: PolicyKind,
    pub direction: FlowDirection,
    /// The target in daprd's form `<kind>_<name>` (`target`), in its two parts: `app` and the App ID, or daprd's
    /// component type (`Statestore`, `Pubsub`, `Binding`, `Configuration`, `Lock`, …) and the component's name.
    pub target: (&'a str, &'a str),
}

/// What happened to a policy (`status` of the resiliency series): daprd's is empty except for circuit breakers,
/// whose state it names.
fn policy_status(breaker: Option<BreakerState>) -> &'static str {
    breaker.map_or("", BreakerState::label)
}

/// A resiliency counter whose handles are cached by the hash of the label parts, so a record allocates nothing
/// (the target's two parts are joined only for a label set not seen before).
struct PolicyCounter {
    counter: IntCounterVec,
    cache: RwLock<HashMap<u64, IntCounter, LabelKeys>>,
}

impl PolicyCounter {
    fn new(counter: IntCounterVec) -> PolicyCounter {
        PolicyCounter { counter, cache: RwLock::default() }
    }

    /// Counts one in the series of `labels`: project, project_id, app_id, name, policy, flow_direction, the
    /// target's two parts, status.
    fn inc(&self, labels: [&str; 9]) {
        let key = label_hash(&labels);
        if let Some(counter) = self.cache.read().expect("resiliency cache lock").get(&key) {
            return counter.inc();
        }
        let [project, project_id, app_id, name, policy, direction, kind, target, status] = labels;
        let target = target_label(kind, target);
        let values = [project, project_id, app_id, name, policy, direction, &target, status];
        let counter = self.counter.with_label_values(&values);
        counter.inc();
        let mut cache = self.cache.write().expect("resiliency cache lock");
        if cache.len() < MAX_CACHED_SERIES {
            cache.insert(key, counter);
        }
    }
}

/// daprd's target label: `app_orders`, `Statestore_kvstore`; a folded tenant's is `other`.
fn target_label(kind: &str, name: &str) -> String {
    match (kind.is_empty(), name.is_empty()) {
        (true, _) => name.to_owned(),
        (false, true) => kind.to_owned(),
        (false, false) => format!("{kind}_{name}"),
    }
}

/// The series of daprd's runtime: one [`Metrics`] field, recorded through [`Runtime`].
pub(crate) struct RuntimeSeries {
    workflow_operation: CachedSeries,
    workflow_execution: CachedSeries,
    workflow_scheduling: CachedSeries,
    activity_operation: CachedSeries,
    activity_execution: CachedSeries,
    resiliency_applied: PolicyCounter,
    resiliency_activated: PolicyCounter,
    resiliency_loaded: IntCounterVec,
    breaker_state: IntGaugeVec,
    /// The four `dapr_resiliency_cb_state` gauges of a breaker, by the hash of its labels' parts.
    breaker_gauges: RwLock<HashMap<u64, [IntGauge; 4], LabelKeys>>,
}

impl RuntimeSeries {
    pub(crate) fn new(registry: &Registry) -> RuntimeSeries {
        let operation = &tenant_labels(&["operation", "status"]);
        let workflow = &tenant_labels(&["workflow_name", "status"]);
        let activity = &tenant_labels(&["activity_name", "status"]);
        let policy = &tenant_labels(&["name", "policy", "flow_direction", "target", "status"]);
        let breaker_state = IntGaugeVec::new(
            Opts::new(
                "dapr_resiliency_cb_state",
                "A resiliency policy's current CircuitBreakerState state. 0 is closed, 1 is half-open, 2 is open, \
                 and -1 is unknown.",
            ),
            policy,
        )
        .expect("valid gauge");
        registry.register(Box::new(breaker_state.clone())).expect("metric registered once");
        RuntimeSeries {
            workflow_operation: CachedSeries::new(
                Some(counter(
                    registry,
                    "dapr_runtime_workflow_operation_count",
                    "The number of successful/failed workflow operation requests.",
                    operation,
                )),
                histogram(
                    registry,
                    "dapr_runtime_workflow_operation_latency",
                    "The latencies of responses for workflow operation requests, in milliseconds.",
                    operation,
                    LATENCY_BUCKETS_MS,
                ),
            ),
            workflow_execution: CachedSeries::new(
                Some(counter(
                    registry,
                    "dapr_runtime_workflow_execution_count",
                    "The number of successful/failed/terminated/recoverable workflow executions.",
                    workflow,
                )),
                histogram(
                    registry,
                    "dapr_runtime_workflow_execution_latency",
                    "The total time taken to run workflow to completion, in milliseconds.",
                    workflow,
                    WORKFLOW_BUCKETS_MS,
                ),
            ),
            workflow_scheduling: CachedSeries::new(
                None,
                histogram(
                    registry,
                    "dapr_runtime_workflow_scheduling_latency",
                    "Interval between workflow execution request and workflow execution, in milliseconds.",
                    &tenant_labels(&["workflow_name"]),
                    WORKFLOW_BUCKETS_MS,
                ),
            ),
            activity_operation: CachedSeries::new(
                Some(counter(
                    registry,
                    "dapr_runtime_workflow_activity_operation_count",
                    "The number of successful/failed activity operation requests.",
                    activity,
                )),
                histogram(
                    registry,
                    "dapr_runtime_workflow_activity_operation_latency",
                    "The latencies of responses for activity operation requests, in milliseconds.",
                    activity,
                    LATENCY_BUCKETS_MS,
                ),
            ),
            activity_execution: CachedSeries::new(
                Some(counter(
                    registry,
                    "dapr_runtime_workflow_activity_execution_count",
                    "The number of successful/failed/recoverable activity executions.",
                    activity,
                )),
                histogram(
                    registry,
                    "dapr_runtime_workflow_activity_execution_latency",
                    "The total time taken to run an activity to completion, in milliseconds.",
                    activity,
                    WORKFLOW_BUCKETS_MS,
                ),
            ),
            resiliency_applied: PolicyCounter::new(counter(
                registry,
                "dapr_resiliency_count",
                "Number of times a resiliency policyKey has been applied to a building block.",
                policy,
            )),
            resiliency_activated: PolicyCounter::new(counter(
                registry,
                "dapr_resiliency_activations_total",
                "Number of times a resiliency policyKey has been activated in a building block after a failure or \
                 after a state change.",
                policy,
            )),
            resiliency_loaded: counter(
                registry,
                "dapr_resiliency_loaded",
                "Number of resiliency policies loaded.",
                &tenant_labels(&["name"]),
            ),
            breaker_state,
            breaker_gauges: RwLock::default(),
        }
    }
}

/// Records daprd's runtime series; from [`Metrics::runtime`].
#[derive(Clone, Copy)]
pub struct Runtime<'a> {
    metrics: &'a Metrics,
}

impl<'a> Runtime<'a> {
    pub(crate) fn of(metrics: &'a Metrics) -> Runtime<'a> {
        Runtime { metrics }
    }

    fn series(&self) -> &'a RuntimeSeries {
        &self.metrics.runtime
    }

    /// Counts a call of the workflow API (`dapr_runtime_workflow_operation_count` and `_latency`).
    pub fn workflow_operation(
        &self,
        tenant: TenantLabels<'_>,
        operation: WorkflowOperation,
        success: bool,
        elapsed: Duration,
    ) {
        if !self.metrics.on() {
            return;
        }
        let [project, project_id, app_id] = self.metrics.tenant(tenant).values();
        let status = if success { ExecutionStatus::Success } else { ExecutionStatus::Failed };
        let labels = [project, project_id, app_id, operation.label(), status.label()];
        self.series().workflow_operation.observe(&labels, millis(elapsed));
    }

    /// Counts a workflow execution that ended (`dapr_runtime_workflow_execution_count`) and how long it ran, from
    /// its first turn (`_latency`).
    pub fn workflow_execution(
        &self,
        tenant: TenantLabels<'_>,
        workflow_name: &str,
        status: ExecutionStatus,
        elapsed: Duration,
    ) {
        if !self.metrics.on() {
            return;
        }
        let [project, project_id, app_id, name] = self.metrics.tenant_and_name(tenant, workflow_name);
        let labels = [project, project_id, app_id, name, status.label()];
        self.series().workflow_execution.observe(&labels, millis(elapsed));
    }

    /// Records how long after its (scheduled) start an execution's first turn began
    /// (`dapr_runtime_workflow_scheduling_latency`).
    pub fn workflow_scheduling(&self, tenant: TenantLabels<'_>, workflow_name: &str, latency: Duration) {
        if !self.metrics.on() {
            return;
        }
        let labels = self.metrics.tenant_and_name(tenant, workflow_name);
        self.series().workflow_scheduling.observe(&labels, millis(latency));
    }

    /// Counts an activity handed to the app's worker (`success`) or not, to be handed out again (`recoverable`),
    /// and how long handing it over took (`dapr_runtime_workflow_activity_operation_count` and `_latency`).
    pub fn activity_operation(
        &self,
        tenant: TenantLabels<'_>,
        activity_name: &str,
        status: ExecutionStatus,
        elapsed: Duration,
    ) {
        if !self.metrics.on() {
            return;
        }
        let [project, project_id, app_id, name] = self.metrics.tenant_and_name(tenant, activity_name);
        let labels = [project, project_id, app_id, name, status.label()];
        self.series().activity_operation.observe(&labels, millis(elapsed));
    }

    /// Counts an activity whose result was recorded (`dapr_runtime_workflow_activity_execution_count`) and how
    /// long it took from being scheduled (`_latency`).
    pub fn activity_execution(
        &self,
        tenant: TenantLabels<'_>,
        activity_name: &str,
        status: ExecutionStatus,
        elapsed: Duration,
    ) {
        if !self.metrics.on() {
            return;
        }
        let [project, project_id, app_id, name] = self.metrics.tenant_and_name(tenant, activity_name);
        let labels = [project, project_id, app_id, name, status.label()];
        self.series().activity_execution.observe(&labels, millis(elapsed));
    }

    /// Counts a Resiliency policy applied to a call (`dapr_resiliency_count`; `activated: false`) or acting on
    /// it (`dapr_resiliency_activations_total`; `activated: true`): a timeout cutting an attempt short, a retry
    /// made, a circuit breaker changing state. `breaker` is a circuit breaker's state (after the change, for an
    /// activation), which also sets its `dapr_resiliency_cb_state`.
    pub fn resiliency(
        &self,
        tenant: TenantLabels<'_>,
        labels: PolicyLabels<'_>,
        breaker: Option<BreakerState>,
        activated: bool,
    ) {
        if !self.metrics.on() {
            return;
        }
        let [project, project_id, app_id, name] = self.metrics.tenant_and_name(tenant, labels.resiliency);
        let (kind, target) = if project_id == FOLDED { (FOLDED, "") } else { labels.target };
        let (policy, direction) = (labels.policy.label(), labels.direction.label());
        let series = self.series();
        let status = policy_status(breaker);
        let counter = if activated { &series.resiliency_activated } else { &series.resiliency_applied };
        counter.inc([project, project_id, app_id, name, policy, direction, kind, target, status]);
        if let Some(state) = breaker {
            self.breaker_state([project, project_id, app_id, name, policy, direction, kind, target], state);
        }
    }

    /// Counts a Resiliency document loaded for an App ID (`dapr_resiliency_loaded`): each time a process reads the
    /// project's documents, as daprd counts the documents it loads for its app.
    pub fn resiliency_loaded(&self, tenant: TenantLabels<'_>, name: &str) {
        if !self.metrics.on() {
            return;
        }
        let labels = self.metrics.tenant_and_name(tenant, name);
        self.series().resiliency_loaded.with_label_values(&labels).inc();
    }

    /// Sets the breaker's `dapr_resiliency_cb_state` series: 1 for its state, 0 for the others.
    fn breaker_state(&self, labels: [&str; 8], state: BreakerState) {
        let series = self.series();
        let key = label_hash(&labels);
        let set = |gauges: &[IntGauge; 4]| {
            for (gauge, name) in gauges.iter().zip(BREAKER_STATES) {
                gauge.set(i64::from(name == state.label()));
            }
        };
        if let Some(gauges) = series.breaker_gauges.read().expect("breaker gauges lock").get(&key) {
            return set(gauges);
        }
        let [project, project_id, app_id, name, policy, direction, kind, target] = labels;
        let target = target_label(kind, target);
        let gauges = BREAKER_STATES.map(|status| {
            let values = [project, project_id, app_id, name, policy, direction, &target, status];
            series.breaker_state.with_label_values(&values)
        });
        set(&gauges);
        let mut cache = series.breaker_gauges.write().expect("breaker gauges lock");
        if cache.len() < MAX_CACHED_SERIES {
            cache.insert(key, gauges);
        }
    }
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
