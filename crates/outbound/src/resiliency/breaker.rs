//! Circuit breakers of Dapr's Resiliency documents: a breaker's settings, its closed / open / half-open
//! states over counts of calls, and the registry that keeps one breaker per project and target across
//! re-reads of the documents (a changed policy starts a fresh breaker).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outrigger_resources::parse_go_duration;
use outrigger_telemetry::metrics::BreakerState as Observed;
use serde_json::Value;
use tokio::time::Instant;

use super::Policy;

/// A circuit breaker's settings.
#[derive(Clone, Debug)]
pub struct CircuitBreakerSpec {
    /// Calls let through while half-open; that many successes close the breaker.
    pub max_requests: u32,
    /// How often the closed breaker clears its counts; zero: never.
    pub interval: Duration,
    /// How long the breaker stays open before it half-opens.
    pub timeout: Duration,
    /// When the breaker opens: a CEL expression over the counts.
    trip: outrigger_cel::Program,
    trip_source: String,
}

impl PartialEq for CircuitBreakerSpec {
    fn eq(&self, other: &CircuitBreakerSpec) -> bool {
        (self.max_requests, self.interval, self.timeout, &self.trip_source)
            == (other.max_requests, other.interval, other.timeout, &other.trip_source)
    }
}

/// daprd's trip condition when a breaker names none.
const DEFAULT_TRIP: &str = "consecutiveFailures > 5";

impl CircuitBreakerSpec {
    pub(super) fn parse(definition: &Value) -> CircuitBreakerSpec {
        let duration = |field: &str, default: Duration| {
            definition.get(field).and_then(Value::as_str).and_then(|d| parse_go_duration(d).ok()).unwrap_or(default)
        };
        let trip_source = definition.get("trip").and_then(Value::as_str).unwrap_or(DEFAULT_TRIP).to_owned();
        // The control API refuses a trip that does not compile; one stored before it did gets daprd's default
        // rather than a breaker that never opens.
        let trip = outrigger_cel::Program::parse(&trip_source).unwrap_or_else(|err| {
            tracing::warn!(trip = %trip_source, error = %err, "circuit breaker trip does not parse; using {DEFAULT_TRIP}");
            outrigger_cel::Program::parse(DEFAULT_TRIP).expect("the default trip compiles")
        });
        let max_requests = definition.get("maxRequests").and_then(Value::as_u64).unwrap_or(1).max(1);
        CircuitBreakerSpec {
            max_requests: u32::try_from(max_requests).unwrap_or(u32::MAX),
            interval: duration("interval", Duration::ZERO),
            timeout: duration("timeout", Duration::from_secs(60)),
            trip,
            trip_source,
        }
    }

    fn trips(&self, counts: &Counts) -> bool {
        let mut variables = outrigger_cel::Variables::default();
        for (name, value) in [
            ("requests", counts.requests),
            ("totalSuccesses", counts.total_successes),
            ("totalFailures", counts.total_failures),
            ("consecutiveSuccesses", counts.consecutive_successes),
            ("consecutiveFailures", counts.consecutive_failures),
        ] {
            variables = variables.with_int(name, i64::try_from(value).unwrap_or(i64::MAX));
        }
        self.trip.evaluate(&variables).unwrap_or(false)
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    requests: u64,
    total_successes: u64,
    total_failures: u64,
    consecutive_successes: u64,
    consecutive_failures: u64,
}

impl Counts {
    pub(super) fn record(&mut self, success: bool) {
        if success {
            self.total_successes += 1;
            self.consecutive_successes += 1;
            self.consecutive_failures = 0;
        } else {
            self.total_failures += 1;
            self.consecutive_failures += 1;
            self.consecutive_successes = 0;
        }
    }
}

#[derive(Debug)]
enum BreakerState {
    /// Calls go through; `since` is when the counts were last cleared.
    Closed { since: Instant },
    /// Calls are refused until `until`.
    Open { until: Instant },
    /// A few probe calls go through; their outcome closes or reopens the breaker.
    HalfOpen { admitted: u32 },
}

impl BreakerState {
    /// The state as daprd's metrics name it (gobreaker's `State()`: open until its timeout ran out, then
    /// half-open, even before the next call moves it there).
    fn observed(&self, now: Instant) -> Observed {
        match self {
            BreakerState::Closed { .. } => Observed::Closed,
            BreakerState::Open { until } if now < *until => Observed::Open,
            BreakerState::Open { .. } | BreakerState::HalfOpen { .. } => Observed::HalfOpen,
        }
    }
}

/// One target's circuit breaker (the sony/gobreaker state machine daprd uses).
#[derive(Debug)]
pub struct Breaker {
    spec: CircuitBreakerSpec,
    inner: Mutex<(BreakerState, Counts)>,
}

/// The breaker is open: the call was not made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker is open")]
pub struct CircuitOpen;

impl Breaker {
    fn new(spec: CircuitBreakerSpec) -> Breaker {
        Breaker { spec, inner: Mutex::new((BreakerState::Closed { since: Instant::now() }, Counts::default())) }
    }

    /// Lets a call through, or refuses it while open (or half-open with its probes taken).
    pub(super) fn admit(&self) -> Result<(), CircuitOpen> {
        let mut guard = self.inner.lock().expect("breaker lock");
        let (state, counts) = &mut *guard;
        let now = Instant::now();
        match state {
            BreakerState::Closed { since } => {
                if !self.spec.interval.is_zero() && now.duration_since(*since) >= self.spec.interval {
                    *counts = Counts::default();
                    *since = now;
                }
            }
            BreakerState::Open { until } => {
                if now < *until {
                    return Err(CircuitOpen);
                }
                *state = BreakerState::HalfOpen { admitted: 0 };
                *counts = Counts::default();
            }
            BreakerState::HalfOpen { .. } => {}
        }
        if let BreakerState::HalfOpen { admitted } = state {
            if *admitted >= self.spec.max_requests {
                return Err(CircuitOpen);
            }
            *admitted += 1;
        }
        counts.requests += 1;
        Ok(())
    }

    /// The breaker's state now.
    pub(super) fn state(&self) -> Observed {
        self.inner.lock().expect("breaker lock").0.observed(Instant::now())
    }

    /// Counts the outcome of an admitted call; the breaker's new state when the outcome changed it.
    pub(super) fn record(&self, success: bool) -> Option<Observed> {
        let mut guard = self.inner.lock().expect("breaker lock");
        let (state, counts) = &mut *guard;
        let now = Instant::now();
        let before = state.observed(now);
        counts.record(success);
        let open = BreakerState::Open { until: Instant::now() + self.spec.timeout };
        match state {
            BreakerState::Closed { .. } if !success && self.spec.trips(counts) => {
                tracing::warn!(failures = counts.consecutive_failures, "circuit breaker opened");
                *state = open;
            }
            BreakerState::HalfOpen { .. } if !success => {
                tracing::warn!("circuit breaker probe failed; open again");
                *state = open;
            }
            BreakerState::HalfOpen { .. } if counts.consecutive_successes >= u64::from(self.spec.max_requests) => {
                tracing::info!("circuit breaker closed");
                *state = BreakerState::Closed { since: Instant::now() };
                *counts = Counts::default();
            }
            _ => {}
        }
        let after = state.observed(now);
        (after != before).then_some(after)
    }
}

/// Circuit breakers by target, shared by every call a process makes.
#[derive(Default)]
pub struct Breakers {
    breakers: Mutex<HashMap<String, Arc<Breaker>>>,
}

/// Upper bound on remembered breakers; past it, closed ones are forgotten.
const MAX_BREAKERS: usize = 10_000;

impl Breakers {
    /// An empty registry.
    pub fn new() -> Breakers {
        Breakers::default()
    }

    /// The breaker for `policy` within a tenant (`scope`), if the policy has one.
    pub fn get(&self, scope: &str, policy: &Policy) -> Option<Arc<Breaker>> {
        let spec = policy.circuit_breaker.as_ref()?;
        let key = format!("{scope}|{}", policy.breaker_key);
        let mut breakers = self.breakers.lock().expect("breakers lock");
        if breakers.len() >= MAX_BREAKERS && !breakers.contains_key(&key) {
            breakers.retain(|_, breaker| {
                !matches!(breaker.inner.lock().expect("breaker lock").0, BreakerState::Closed { .. })
            });
        }
        Some(Arc::clone(breakers.entry(key).or_insert_with(|| Arc::new(Breaker::new(spec.clone())))))
    }
}
