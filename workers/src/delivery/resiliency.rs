//! Retries of push deliveries from a project's `Resiliency` documents: the `inbound` policy of the pub/sub
//! component (`spec.targets.components.<name>.inbound.retry` and `.timeout`), as daprd applies it when it
//! delivers from that component to the app.

use std::time::Duration;

use outrigger_resources::{parse_go_duration, Document};
use serde_json::Value;

/// How failed deliveries are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    backoff: Backoff,
    /// Retries before the message goes to the dead-letter topic; `None` = without end.
    pub max_retries: Option<u32>,
    /// How long one delivery may take.
    pub timeout: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backoff {
    /// The same delay every time.
    Constant(Duration),
    /// Growing by half each time from 500 ms (daprd's backoff), up to a ceiling.
    Exponential { ceiling: Duration },
    /// Outrigger's default: doubling from 250 ms to 10 s.
    Doubling,
}

/// Without a Resiliency policy: 250 ms doubling to 10 s; five attempts before the dead-letter topic.
pub const DEFAULT: RetryPolicy = RetryPolicy { backoff: Backoff::Doubling, max_retries: Some(4), timeout: None };

impl RetryPolicy {
    /// The delay after `attempt` (1 = the first delivery) failed.
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

    /// Whether a message that failed `attempt` times has used up its retries.
    pub fn exhausted(&self, attempt: u32) -> bool {
        self.max_retries.is_some_and(|retries| attempt > retries)
    }

    /// The inbound policy of component `component` in `resiliencies`, or [`DEFAULT`].
    pub fn for_component(resiliencies: &[Document], component: &str) -> RetryPolicy {
        resiliencies.iter().find_map(|document| inbound(&document.spec, component)).unwrap_or(DEFAULT)
    }
}

fn inbound(spec: &Value, component: &str) -> Option<RetryPolicy> {
    let target = spec.get("targets")?.get("components")?.get(component)?.get("inbound")?;
    let policies = spec.get("policies");
    let retry = target.get("retry").and_then(Value::as_str).and_then(|name| policies?.get("retries")?.get(name));
    let timeout = target.get("timeout").and_then(Value::as_str).and_then(|reference| {
        let named = policies.and_then(|p| p.get("timeouts")).and_then(|t| t.get(reference)).and_then(Value::as_str);
        parse_go_duration(named.unwrap_or(reference)).ok()
    });
    let duration = |field: &str, default: Duration| {
        retry
            .and_then(|r| r.get(field))
            .and_then(Value::as_str)
            .and_then(|d| parse_go_duration(d).ok())
            .unwrap_or(default)
    };
    let backoff = match retry.and_then(|r| r.get("policy")).and_then(Value::as_str) {
        Some("exponential") => Backoff::Exponential { ceiling: duration("maxInterval", Duration::from_secs(60)) },
        Some(_) => Backoff::Constant(duration("duration", Duration::from_secs(5))),
        None => DEFAULT.backoff,
    };
    let max_retries = match retry.and_then(|r| r.get("maxRetries")).and_then(Value::as_i64) {
        Some(retries) if retries >= 0 => Some(retries as u32),
        Some(_) => None,
        None if retry.is_some() => None,
        None => DEFAULT.max_retries,
    };
    Some(RetryPolicy { backoff, max_retries, timeout })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn resiliency(spec: Value) -> Vec<Document> {
        vec![Document::new(outrigger_resources::Kind::Resiliency, "r", spec)]
    }

    #[test]
    fn without_a_policy_the_default_applies() {
        assert_eq!(RetryPolicy::for_component(&[], "pubsub"), DEFAULT);
        let delays: Vec<u128> = (1..=8).map(|attempt| DEFAULT.delay(attempt).as_millis()).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 8000, 10000, 10000]);
        assert!(!DEFAULT.exhausted(4) && DEFAULT.exhausted(5));
    }

    #[test]
    fn inbound_policies_of_the_component_apply() {
        let documents = resiliency(json!({
            "policies": {
                "timeouts": { "general": "3s" },
                "retries": {
                    "pubsubRetry": { "policy": "constant", "duration": "2s", "maxRetries": 3 },
                    "forever": { "policy": "exponential", "maxInterval": "4s", "maxRetries": -1 },
                },
            },
            "targets": { "components": {
                "orders": { "inbound": { "retry": "pubsubRetry", "timeout": "general" } },
                "events": { "inbound": { "retry": "forever", "timeout": "750ms" } },
                "other": { "outbound": { "retry": "pubsubRetry" } },
            } },
        }));
        let orders = RetryPolicy::for_component(&documents, "orders");
        assert_eq!((orders.delay(1), orders.delay(5)), (Duration::from_secs(2), Duration::from_secs(2)));
        assert_eq!(orders.timeout, Some(Duration::from_secs(3)));
        assert!(!orders.exhausted(3) && orders.exhausted(4));
        let events = RetryPolicy::for_component(&documents, "events");
        assert_eq!(
            (events.delay(1), events.delay(2), events.delay(20)),
            (Duration::from_millis(500), Duration::from_millis(750), Duration::from_secs(4))
        );
        assert_eq!(events.timeout, Some(Duration::from_millis(750)));
        assert!(!events.exhausted(1000));
        assert_eq!(
            RetryPolicy::for_component(&documents, "other"),
            DEFAULT,
            "outbound policies do not govern deliveries"
        );
    }
}
