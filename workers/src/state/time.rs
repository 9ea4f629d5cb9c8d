//! Time as the stores see it: Unix milliseconds, TTL expiry, the deadline of a backend call, and when to
//! sweep expired items away.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures_util::FutureExt;

use super::StateError;

/// How long one backend call may take. A backend that is down or hung turns into an error within this
/// time instead of holding the app's request.
pub(crate) const OPERATION_DEADLINE: Duration = Duration::from_secs(5);

/// How long to wait for a TCP connection to a backend.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The current time in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A TTL in milliseconds.
pub(crate) fn ttl_ms(ttl_seconds: u64) -> i64 {
    i64::try_from(ttl_seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// When an item written at `now_ms` with this TTL expires (Unix milliseconds).
pub(crate) fn expiry(ttl_seconds: Option<u64>, now_ms: i64) -> Option<i64> {
    ttl_seconds.map(|seconds| now_ms.saturating_add(ttl_ms(seconds)))
}

/// Whether an item with this expiry is still readable at `now_ms`.
pub(crate) fn is_live(expires_at: Option<i64>, now_ms: i64) -> bool {
    expires_at.is_none_or(|expires_at| expires_at > now_ms)
}

/// Runs one backend call, turning "no answer within [`OPERATION_DEADLINE`]" into a backend error.
pub(crate) fn within_deadline<'a, T, F>(
    component_type: &'a str,
    call: F,
) -> impl Future<Output = Result<T, StateError>> + use<'a, T, F>
where
    F: Future<Output = Result<T, StateError>>,
{
    within(OPERATION_DEADLINE, component_type, call, StateError::Backend)
}

/// Runs a backend call for at most `limit`; past it, answers `timed_out` with a message saying so. Shared by
/// the state stores and the message brokers, whose errors differ. These wrappers are plain functions, not
/// `async fn`s: each `async fn` layer held the call's future twice ([`outrigger_outbound::deadline::Within`]).
pub(crate) fn within<'a, T, E, F>(
    limit: Duration,
    component_type: &'a str,
    call: F,
    timed_out: fn(String) -> E,
) -> impl Future<Output = Result<T, E>> + use<'a, T, E, F>
where
    F: Future<Output = Result<T, E>>,
{
    outrigger_outbound::deadline::within(limit, call).map(move |answer| {
        answer.unwrap_or_else(|| {
            outrigger_telemetry::metrics().store_timeout(component_type);
            Err(timed_out(format!("{component_type}: the backend did not answer within {} s", limit.as_secs_f64())))
        })
    })
}

/// When the next sweep of expired items is due.
///
/// Sweeps ride on writes rather than on a timer task, so nothing outlives the store and an idle store
/// costs nothing; reads never depend on them because every read filters out expired items itself.
#[derive(Debug)]
pub(crate) struct SweepSchedule {
    interval_ms: Option<i64>,
    next_due_ms: AtomicI64,
}

impl SweepSchedule {
    /// Sweeps at most once per `interval`; `None` never sweeps. The first sweep is due at once, so items
    /// that expired while no process had the store open go away with the first write.
    pub(crate) fn new(interval: Option<Duration>) -> SweepSchedule {
        let interval_ms = interval.map(|interval| i64::try_from(interval.as_millis()).unwrap_or(i64::MAX));
        SweepSchedule { interval_ms, next_due_ms: AtomicI64::new(0) }
    }

    /// Whether the caller should sweep now. Among concurrent callers at most one gets `true` per interval.
    pub(crate) fn claim(&self, now_ms: i64) -> bool {
        let Some(interval_ms) = self.interval_ms else { return false };
        let due = self.next_due_ms.load(Ordering::Relaxed);
        now_ms >= due
            && self
                .next_due_ms
                .compare_exchange(due, now_ms.saturating_add(interval_ms), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}
