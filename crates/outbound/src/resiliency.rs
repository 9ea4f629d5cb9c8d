//! Dapr's Resiliency documents applied to the platform's outbound calls: which timeout, retry and circuit
//! breaker govern a call to an app (`spec.targets.apps.<app>`) or a component (`spec.targets.components.<name>`
//! `.outbound` for state and publish calls, `.inbound` for deliveries from a broker to the app), Dapr's
//! named default policies when a target names none, and running a call under them.
//!
//! Resiliency documents are loaded by the caller's sidecar in daprd, so a document applies to a call when its
//! `scopes` name the calling App ID or are empty. Circuit breakers keep their state per target in a
//! [`Breakers`] registry that outlives the documents' cache; a changed policy starts a fresh breaker.
//!
//! Calls under policies from Resiliency documents are counted in daprd's series for the [`Caller`]:
//! `dapr_resiliency_count` for each policy applied to a call, `dapr_resiliency_activations_total` for each
//! retry made, each call a timeout cut short and each change of a circuit breaker's state, and the breaker's
//! `dapr_resiliency_cb_state`. Calls without such a policy count nothing.

use std::future::Future;
use std::time::Duration;

use outrigger_resources::{parse_go_duration, Document};
use outrigger_telemetry::metrics::{self, FlowDirection, PolicyKind, PolicyLabels, TenantLabels};
use serde_json::Value;

mod breaker;

pub use breaker::{Breaker, Breakers, CircuitBreakerSpec, CircuitOpen};

/// What a call is aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// Service invocation of an App ID (or an HTTP endpoint, which daprd treats as an app).
    App(&'a str),
    /// A call from the platform to a component: state operations, publishing.
    ComponentOutbound(&'a str),
    /// A delivery from a component to the app: pub/sub push.
    ComponentInbound(&'a str),
}

impl<'a> Target<'a> {
    /// Dapr's named default policies for this kind of target, most specific first.
    fn default_names(self, policy: &str) -> Vec<String> {
        let kinds: &[&str] = match self {
            Target::App(_) => &["App", ""],
            Target::ComponentOutbound(_) => &["ComponentOutbound", "Component", ""],
            Target::ComponentInbound(_) => &["ComponentInbound", "Component", ""],
        };
        kinds.iter().map(|kind| format!("Default{kind}{policy}Policy")).collect()
    }

    fn describe(self) -> String {
        match self {
            Target::App(app) => format!("app:{app}"),
            Target::ComponentOutbound(name) => format!("component:{name}:outbound"),
            Target::ComponentInbound(name) => format!("component:{name}:inbound"),
        }
    }

    fn kind(self) -> TargetKind {
        match self {
            Target::App(_) => TargetKind::App,
            Target::ComponentOutbound(_) => TargetKind::ComponentOutbound,
            Target::ComponentInbound(_) => TargetKind::ComponentInbound,
        }
    }

    fn name(self) -> &'a str {
        match self {
            Target::App(name) | Target::ComponentOutbound(name) | Target::ComponentInbound(name) => name,
        }
    }
}

/// A [`Target`]'s variant, kept by a [`Policy`] for its metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum TargetKind {
    #[default]
    App,
    ComponentOutbound,
    ComponentInbound,
}

/// Who makes a call under a policy, as daprd's resiliency series count it: the calling App ID's labels and,
/// for a component target, daprd's type of the component (`Statestore`, `Pubsub`, `Binding`, `Configuration`,
/// `Lock`), which daprd's `target` label starts with (`Statestore_<name>`; an app's is `app_<App ID>`), and the
/// component's own type (`spec.type`, `state.redis`), which names it in `outrigger_store_timeouts_total`.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    pub tenant: TenantLabels<'a>,
    pub component_type: &'a str,
    pub spec_type: &'a str,
}

impl<'a> Caller<'a> {
    /// A call of an App ID (or an HTTP endpoint) by `tenant`.
    pub fn app(tenant: TenantLabels<'a>) -> Caller<'a> {
        Caller { tenant, component_type: "", spec_type: "" }
    }

    /// A call of a component of daprd's type `component_type` and of type `spec_type` by `tenant`.
    pub fn component(tenant: TenantLabels<'a>, component_type: &'a str, spec_type: &'a str) -> Caller<'a> {
        Caller { tenant, component_type, spec_type }
    }
}

/// What daprd's resiliency series say of a policy: the Resiliency document each of its parts came from (none:
/// not from a document, and not counted), and its target.
#[derive(Clone, Debug, Default, PartialEq)]
struct Sources {
    timeout: Option<String>,
    retry: Option<String>,
    circuit_breaker: Option<String>,
    target: String,
    kind: TargetKind,
}

/// The policies that govern one target.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    /// How long one attempt may take.
    pub timeout: Option<Duration>,
    /// How failed attempts are retried; `None`: they are not.
    pub retry: Option<Retry>,
    /// When to stop calling a failing target for a while.
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    /// Which breaker state the policy uses: the target and the breaker's settings.
    breaker_key: String,
    /// Where its parts came from, for daprd's resiliency series.
    sources: Sources,
}

impl Policy {
    /// The policy of `target` for a call made by `caller`, from a project's Resiliency documents.
    pub fn resolve(documents: &[Document], caller: &str, target: Target<'_>) -> Policy {
        let applicable: Vec<&Document> = documents.iter().filter(|document| document.applies_to(caller)).collect();
        // Every call resolves its policy: without a document there is nothing to look up (the default policy
        // names below are built per lookup, and cost more than the rest of the resolution).
        if applicable.is_empty() {
            return Policy::default();
        }
        let entry = |document: &Document| -> Option<Value> {
            let targets = document.spec.get("targets")?;
            let found = match target {
                Target::App(app) => targets.get("apps")?.get(app)?,
                Target::ComponentOutbound(name) => targets.get("components")?.get(name)?.get("outbound")?,
                Target::ComponentInbound(name) => targets.get("components")?.get(name)?.get("inbound")?,
            };
            Some(found.clone())
        };
        // The first document naming a policy for the target decides; Dapr's defaults fill what none names. Each
        // comes with the name of the document it was found in.
        let named = |reference: &str, section: &str| -> Option<(Value, String, &str)> {
            applicable.iter().find_map(|document| {
                let name = entry(document)?.get(reference)?.as_str()?.to_owned();
                let policy = document.spec.get("policies").and_then(|p| p.get(section)).and_then(|s| s.get(&name));
                let source = document.metadata.name.as_str();
                Some(match policy {
                    Some(policy) => (policy.clone(), format!("{source}/{name}"), source),
                    // A timeout may be written inline instead of naming a policy.
                    None => (Value::String(name.clone()), name, source),
                })
            })
        };
        let default = |section: &str, kind: &str| -> Option<(Value, String, &str)> {
            target.default_names(kind).into_iter().find_map(|name| {
                applicable.iter().find_map(|document| {
                    let policy = document.spec.get("policies")?.get(section)?.get(&name)?;
                    let source = document.metadata.name.as_str();
                    Some((policy.clone(), format!("{source}/{name}"), source))
                })
            })
        };
        let (timeout, timeout_source) = named("timeout", "timeouts")
            .or_else(|| default("timeouts", "Timeout"))
            .and_then(|(value, _, source)| Some((parse_timeout(value.as_str()?)?, source.to_owned())))
            .unzip();
        let (retry, retry_source) = named("retry", "retries")
            .or_else(|| default("retries", "Retry"))
            .map(|(value, _, source)| (Retry::parse(&value), source.to_owned()))
            .unzip();
        let breaker =
            named("circuitBreaker", "circuitBreakers").or_else(|| default("circuitBreakers", "CircuitBreaker"));
        let breaker_key = breaker.as_ref().map(|(value, name, _)| format!("{}|{name}|{value}", target.describe()));
        let (circuit_breaker, breaker_source) =
            breaker.map(|(value, _, source)| (CircuitBreakerSpec::parse(&value), source.to_owned())).unzip();
        // The target is kept for the metrics only when a document governs it.
        let governed = timeout_source.is_some() || retry_source.is_some() || breaker_source.is_some();
        Policy {
            timeout,
            retry,
            circuit_breaker,
            breaker_key: breaker_key.unwrap_or_default(),
            sources: Sources {
                timeout: timeout_source,
                retry: retry_source,
                circuit_breaker: breaker_source,
                target: if governed { target.name().to_owned() } else { String::new() },
                kind: target.kind(),
            },
        }
    }
}

impl Policy {
    /// The policy, with `default` as its timeout when it names none.
    pub fn with_default_timeout(mut self, default: Duration) -> Policy {
        self.timeout.get_or_insert(default);
        self
    }
}

/// daprd reads a bare number as milliseconds and anything else as a Go duration.
fn parse_timeout(text: &str) -> Option<Duration> {
    match text.parse::<u64>() {
        Ok(millis) => Some(Duration::from_millis(millis)),
        Err(_) => parse_go_duration(text).ok(),
    }
}

/// A retry policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    backoff: Backoff,
    /// Retries after the first attempt; `None`: without end.
    pub max_retries: Option<u32>,
    /// `matching.httpStatusCodes`: only these statuses are retried; `None`: every failure.
    http_status_codes: Option<Vec<(u16, u16)>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backoff {
    /// The same delay every time.
    Constant(Duration),
    /// daprd's exponential backoff: from 500 ms, growing by half each time, up to a ceiling.
    Exponential { ceiling: Duration },
    /// Outrigger's default for deliveries: doubling from 250 ms to 10 s.
    Doubling,
}

/// Retries of push deliveries without a Resiliency policy: 250 ms doubling to 10 s; five attempts before the
/// dead-letter topic.
pub const DEFAULT_DELIVERY_RETRY: Retry =
    Retry { backoff: Backoff::Doubling, max_retries: Some(4), http_status_codes: None };

impl Retry {
    /// A policy from its definition under `spec.policies.retries` (checked when it was stored).
    fn parse(definition: &Value) -> Retry {
        let duration = |field: &str, default: Duration| {
            definition.get(field).and_then(Value::as_str).and_then(|d| parse_go_duration(d).ok()).unwrap_or(default)
        };
        let backoff = match definition.get("policy").and_then(Value::as_str) {
            Some("exponential") => Backoff::Exponential { ceiling: duration("maxInterval", Duration::from_secs(60)) },
            _ => Backoff::Constant(duration("duration", Duration::from_secs(5))),
        };
        let max_retries = match definition.get("maxRetries").and_then(Value::as_i64) {
            Some(retries) if retries >= 0 => Some(u32::try_from(retries).unwrap_or(u32::MAX)),
            _ => None,
        };
        let http_status_codes = definition
            .get("matching")
            .and_then(|matching| matching.get("httpStatusCodes"))
            .and_then(Value::as_str)
            .filter(|codes| !codes.trim().is_empty())
            .map(parse_status_ranges);
        Retry { backoff, max_retries, http_status_codes }
    }

    /// The delay after `attempt` (1 = the first call) failed.
    pub fn delay(&self, attempt: u32) -> Duration {
        let steps = attempt.saturating_sub(1).min(30);
        match self.backoff {
            Backoff::Constant(delay) => delay,
            Backoff::Exponential { ceiling } => {
                Duration::from_millis(500).mul_f64(1.5f64.powi(steps as i32)).min(ceiling)
            }
            Backoff::Doubling => Duration::from_millis(250 * (1u64 << steps.min(6))).min(Duration::from_secs(10)),
        }
    }

    /// Whether a call that failed `attempt` times has used up its retries.
    pub fn exhausted(&self, attempt: u32) -> bool {
        self.max_retries.is_some_and(|retries| attempt > retries)
    }

    /// Whether a failure is one this policy retries.
    fn matches(&self, failure: Failure) -> bool {
        match (failure, &self.http_status_codes) {
            (Failure::HttpStatus(status), Some(ranges)) => {
                ranges.iter().any(|(low, high)| (*low..=*high).contains(&status))
            }
            _ => true,
        }
    }
}

/// `429,500-504` as ranges (validated when the document was stored; anything unreadable is skipped).
fn parse_status_ranges(codes: &str) -> Vec<(u16, u16)> {
    codes
        .split(',')
        .filter_map(|pattern| {
            let mut bounds = pattern.trim().splitn(2, '-').map(|bound| bound.trim().parse::<u16>());
            let low = bounds.next()?.ok()?;
            let high = bounds.next().map_or(Ok(low), |high| high).ok()?;
            Some((low, high))
        })
        .collect()
}

/// How an attempt went, as the resiliency policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The target answered with this HTTP status (an error status).
    HttpStatus(u16),
    /// The call failed without an answer (refused, reset, store error).
    Error,
}

/// How a call under a policy ended.
#[derive(Debug)]
pub enum Outcome<T> {
    /// The last attempt's result: a success, or a failure no retry was left for.
    Finished(T),
    /// The last attempt did not finish within the policy's timeout.
    TimedOut(Duration),
    /// The circuit breaker is open; no call was made.
    CircuitOpen,
}

/// [`execute`] for a call whose every error is a failure: its value, or why there is none, in words (`what`
/// names the callee in a timeout's).
pub async fn execute_fallible<T, E, F, Fut>(
    policy: &Policy,
    breaker: Option<&Breaker>,
    caller: Caller<'_>,
    what: &str,
    attempt: F,
) -> Result<T, String>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let judge = |result: &Result<T, E>| result.is_err().then_some(Failure::Error);
    match execute(policy, breaker, caller, attempt, judge).await {
        Outcome::Finished(result) => result.map_err(|err| err.to_string()),
        Outcome::TimedOut(after) => Err(format!("{what} did not answer within {after:?}")),
        Outcome::CircuitOpen => Err("circuit breaker is open".to_owned()),
    }
}

/// Runs `attempt` under `policy`: each attempt within the timeout and admitted by the breaker, failures (as
/// `judge` tells them) retried as the retry policy says. `attempt` is called again for every retry. The policies
/// from Resiliency documents count the call in daprd's series under `caller`'s labels.
pub async fn execute<T, F, Fut>(
    policy: &Policy,
    breaker: Option<&Breaker>,
    caller: Caller<'_>,
    mut attempt: F,
    judge: impl Fn(&T) -> Option<Failure>,
) -> Outcome<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let meter = Meter { policy, caller };
    meter.applied(breaker);
    let mut attempts = 0u32;
    let mut timed_out = false;
    loop {
        attempts += 1;
        if let Some(breaker) = breaker {
            if breaker.admit().is_err() {
                return Outcome::CircuitOpen;
            }
        }
        let result = match policy.timeout {
            Some(timeout) => crate::deadline::within(timeout, attempt()).await,
            None => Some(attempt().await),
        };
        if result.is_none() && !timed_out {
            // daprd counts a timeout's activation once per call, however many attempts it cuts short.
            timed_out = true;
            meter.count(PolicyKind::Timeout, None, true);
        }
        if result.is_none() && !caller.spec_type.is_empty() {
            // A component's backend has no deadline of its own under a policy: this one is its store timeout.
            metrics::metrics().store_timeout(caller.spec_type);
        }
        let failure = match &result {
            Some(value) => judge(value),
            None => Some(Failure::Error),
        };
        if let Some(breaker) = breaker {
            if let Some(changed) = breaker.record(failure.is_none()) {
                meter.count(PolicyKind::CircuitBreaker, Some(changed), true);
            }
        }
        let retry = policy.retry.as_ref().filter(|retry| !retry.exhausted(attempts));
        match (failure, retry) {
            (Some(failure), Some(retry)) if retry.matches(failure) => {
                tracing::debug!(attempt = attempts, ?failure, "attempt failed; retrying");
                meter.count(PolicyKind::Retry, None, true);
                tokio::time::sleep(retry.delay(attempts)).await;
            }
            _ => {
                return match result {
                    Some(value) => Outcome::Finished(value),
                    None => Outcome::TimedOut(policy.timeout.unwrap_or_default()),
                }
            }
        }
    }
}

/// One call's counts in daprd's resiliency series: each part of its policy that came from a Resiliency document,
/// under the caller's labels.
struct Meter<'a> {
    policy: &'a Policy,
    caller: Caller<'a>,
}

impl Meter<'_> {
    /// Counts the policies applied to the call (`dapr_resiliency_count`): its timeout, its retries (a caller
    /// may have dropped them, for a body too large to send again) and its breaker, with the breaker's state.
    fn applied(&self, breaker: Option<&Breaker>) {
        if self.policy.timeout.is_some() {
            self.count(PolicyKind::Timeout, None, false);
        }
        if self.policy.retry.is_some() {
            self.count(PolicyKind::Retry, None, false);
        }
        if let Some(breaker) = breaker.filter(|_| self.policy.sources.circuit_breaker.is_some()) {
            self.count(PolicyKind::CircuitBreaker, Some(breaker.state()), false);
        }
    }

    /// Counts one policy of the call, applied or (`activated`) acting; nothing unless a document gave it.
    fn count(&self, kind: PolicyKind, breaker: Option<metrics::BreakerState>, activated: bool) {
        let sources = &self.policy.sources;
        let source = match kind {
            PolicyKind::Timeout => &sources.timeout,
            PolicyKind::Retry => &sources.retry,
            PolicyKind::CircuitBreaker => &sources.circuit_breaker,
        };
        let Some(resiliency) = source.as_deref() else { return };
        let (target_kind, direction) = match sources.kind {
            TargetKind::App => ("app", FlowDirection::Outbound),
            TargetKind::ComponentOutbound => (self.caller.component_type, FlowDirection::Outbound),
            TargetKind::ComponentInbound => (self.caller.component_type, FlowDirection::Inbound),
        };
        let labels = PolicyLabels { resiliency, policy: kind, direction, target: (target_kind, &sources.target) };
        metrics::metrics().runtime().resiliency(self.caller.tenant, labels, breaker, activated);
    }
}

#[cfg(test)]
mod tests;
