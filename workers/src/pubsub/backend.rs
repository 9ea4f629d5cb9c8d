//! What the broker backends share: the deadline of a backend call, time in milliseconds, and the answer
//! to a group that is not there.

use std::future::Future;
use std::time::Duration;

use super::BrokerError;
use crate::state::time::{within, OPERATION_DEADLINE};

/// How long a durable broker keeps a message that not every group has acked.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Runs one backend call, turning "no answer within [`OPERATION_DEADLINE`]" into [`BrokerError::Backend`].
pub(crate) fn within_deadline<'a, T, F>(
    component_type: &'a str,
    call: F,
) -> impl Future<Output = Result<T, BrokerError>> + use<'a, T, F>
where
    F: Future<Output = Result<T, BrokerError>>,
{
    within(OPERATION_DEADLINE, component_type, call, BrokerError::Backend)
}

/// A fetch waits up to `wait` for messages, and its backend calls may take [`OPERATION_DEADLINE`] besides.
pub(crate) fn within_wait<'a, T, F>(
    wait: Duration,
    component_type: &'a str,
    call: F,
) -> impl Future<Output = Result<T, BrokerError>> + use<'a, T, F>
where
    F: Future<Output = Result<T, BrokerError>>,
{
    within(wait.saturating_add(OPERATION_DEADLINE), component_type, call, BrokerError::Backend)
}

/// Whole milliseconds, saturating: holds and delays added to Unix milliseconds.
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The error of fetching from a group that does not exist (never created, or deleted meanwhile).
pub(crate) fn missing_group(component_type: &str, topic: &str, group: &str) -> BrokerError {
    BrokerError::Backend(format!(
        "{component_type}: topic '{topic}' has no consumer group '{group}'; ensure_group creates it"
    ))
}
