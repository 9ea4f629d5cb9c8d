//! Tests of Resiliency policies: resolution, timeouts, retries, circuit breakers and their series.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use serde_json::json;

use super::*;

/// App ID `a` of the project named `project`, whose id is `prj_<project>`.
fn tenant(project: &'static str) -> TenantLabels<'static> {
    let project_id = Box::leak(format!("prj_{project}").into_boxed_str());
    TenantLabels::new(project, project_id, "a")
}

fn resiliency(name: &str, spec: Value, scopes: &[&str]) -> Document {
    let mut document = Document::new(outrigger_resources::Kind::Resiliency, name, spec);
    document.scopes = scopes.iter().map(|scope| (*scope).to_owned()).collect();
    document
}

#[test]
fn targets_name_their_policies_and_defaults_fill_the_rest() {
    let documents = vec![resiliency(
        "r",
        json!({
            "policies": {
                "timeouts": { "general": "3s", "DefaultTimeoutPolicy": "9s" },
                "retries": {
                    "fixed": { "policy": "constant", "duration": "2s", "maxRetries": 3 },
                    "DefaultAppRetryPolicy": { "policy": "exponential", "maxInterval": "4s" },
                },
                "circuitBreakers": { "cb": { "trip": "consecutiveFailures > 2", "timeout": "10s" } },
            },
            "targets": {
                "apps": { "orders": { "timeout": "general", "retry": "fixed", "circuitBreaker": "cb" } },
                "components": {
                    "statestore": { "outbound": { "timeout": "750" } },
                    "pubsub": { "inbound": { "retry": "fixed" } },
                },
            },
        }),
        &[],
    )];
    let orders = Policy::resolve(&documents, "caller", Target::App("orders"));
    assert_eq!(orders.timeout, Some(Duration::from_secs(3)));
    let retry = orders.retry.as_ref().unwrap();
    assert_eq!(
        (retry.delay(1), retry.delay(4), retry.max_retries),
        (Duration::from_secs(2), Duration::from_secs(2), Some(3))
    );
    assert_eq!(orders.circuit_breaker.as_ref().unwrap().timeout, Duration::from_secs(10));

    let other = Policy::resolve(&documents, "caller", Target::App("billing"));
    assert_eq!(other.timeout, Some(Duration::from_secs(9)), "DefaultTimeoutPolicy");
    let retry = other.retry.unwrap();
    assert_eq!(retry.max_retries, None, "a retry without maxRetries retries without end");
    assert_eq!(
        (retry.delay(1), retry.delay(2), retry.delay(20)),
        (Duration::from_millis(500), Duration::from_millis(750), Duration::from_secs(4))
    );
    assert!(other.circuit_breaker.is_none());

    let store = Policy::resolve(&documents, "caller", Target::ComponentOutbound("statestore"));
    assert_eq!(store.timeout, Some(Duration::from_millis(750)), "a bare number is milliseconds");
    assert_eq!(store.retry, None, "DefaultAppRetryPolicy does not govern components");
    let inbound = Policy::resolve(&documents, "caller", Target::ComponentInbound("pubsub"));
    assert_eq!(inbound.retry.unwrap().max_retries, Some(3));
    assert_eq!(Policy::resolve(&documents, "caller", Target::ComponentOutbound("pubsub")).retry, None);
}

#[test]
fn scopes_name_the_callers_a_document_applies_to() {
    let spec = json!({"policies": {"timeouts": {"t": "1s"}}, "targets": {"apps": {"b": {"timeout": "t"}}}});
    let documents = vec![resiliency("r", spec, &["a"])];
    assert_eq!(Policy::resolve(&documents, "a", Target::App("b")).timeout, Some(Duration::from_secs(1)));
    assert_eq!(Policy::resolve(&documents, "c", Target::App("b")), Policy::default());
}

#[test]
fn status_matching_limits_what_is_retried() {
    let retry = Retry::parse(&json!({"policy": "constant", "matching": {"httpStatusCodes": "429,500-503"}}));
    assert!(retry.matches(Failure::HttpStatus(429)) && retry.matches(Failure::HttpStatus(502)));
    assert!(!retry.matches(Failure::HttpStatus(504)) && !retry.matches(Failure::HttpStatus(404)));
    assert!(retry.matches(Failure::Error), "failures without a status are always retried");
}

fn breaker_policy(trip: &str, timeout: &str) -> Policy {
    let spec = json!({
        "policies": {"circuitBreakers": {"cb": {"trip": trip, "timeout": timeout, "maxRequests": 1}}},
        "targets": {"apps": {"b": {"circuitBreaker": "cb"}}},
    });
    Policy::resolve(&[resiliency("r", spec, &[])], "a", Target::App("b"))
}

#[tokio::test(start_paused = true)]
async fn a_breaker_opens_short_circuits_half_opens_and_closes() {
    let policy = breaker_policy("consecutiveFailures > 2", "5s");
    let breakers = Breakers::new();
    let breaker = breakers.get("p", &policy).unwrap();
    let calls = AtomicU32::new(0);
    let call = |fail: bool| {
        let calls = &calls;
        let policy = &policy;
        let breaker = &breaker;
        async move {
            execute(
                policy,
                Some(breaker),
                Caller::app(tenant("breaker-project")),
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    fail
                },
                |fail| fail.then_some(Failure::Error),
            )
            .await
        }
    };
    for _ in 0..3 {
        assert!(matches!(call(true).await, Outcome::Finished(true)));
    }
    assert!(matches!(call(false).await, Outcome::CircuitOpen), "open after 3 failures");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "an open breaker makes no call");
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(matches!(call(true).await, Outcome::Finished(true)), "half-open lets a probe through");
    assert!(matches!(call(false).await, Outcome::CircuitOpen), "a failed probe opens it again");
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(matches!(call(false).await, Outcome::Finished(false)), "a good probe closes it");
    assert!(matches!(call(false).await, Outcome::Finished(false)));
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    assert!(Arc::ptr_eq(&breaker, &breakers.get("p", &policy).unwrap()), "one breaker per target");
    assert!(!Arc::ptr_eq(&breaker, &breakers.get("q", &policy).unwrap()), "one per tenant");

    // Every call counted the breaker applied in the state it found it; every change of state activated it.
    let text = metrics::metrics().render();
    let series = |name: &str, status: &str, count: u32| {
        format!(
            "{name}{{app_id=\"a\",flow_direction=\"outbound\",name=\"r\",policy=\"circuitbreaker\",\
             project=\"breaker-project\",project_id=\"prj_breaker-project\",status=\"{status}\",target=\"app_b\"}} {count}"
        )
    };
    for expected in [
        series("dapr_resiliency_count", "closed", 4),
        series("dapr_resiliency_count", "open", 2),
        series("dapr_resiliency_count", "half-open", 2),
        series("dapr_resiliency_activations_total", "open", 2),
        series("dapr_resiliency_activations_total", "closed", 1),
        series("dapr_resiliency_cb_state", "closed", 1),
        series("dapr_resiliency_cb_state", "open", 0),
    ] {
        assert!(text.contains(&expected), "{expected} missing from:\n{text}");
    }
    assert!(
        !text.contains(
            r#"project="breaker-project",project_id="prj_breaker-project",status="half-open",target="app_b"} 1"#
        ),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn retries_and_timeouts_bound_each_attempt() {
    let spec = json!({
        "policies": {
            "timeouts": {"t": "100ms"},
            "retries": {"r": {"policy": "constant", "duration": "10ms", "maxRetries": 2}},
        },
        "targets": {"apps": {"b": {"timeout": "t", "retry": "r"}}},
    });
    let policy = Policy::resolve(&[resiliency("r", spec, &[])], "a", Target::App("b"));
    let calls = AtomicU32::new(0);
    let caller = Caller::app(tenant("retry-project"));
    let outcome = execute(
        &policy,
        None,
        caller,
        || async { calls.fetch_add(1, Ordering::SeqCst) },
        |n| (*n < 2).then_some(Failure::HttpStatus(500)),
    )
    .await;
    assert!(matches!(outcome, Outcome::Finished(2)), "third attempt succeeds");
    calls.store(0, Ordering::SeqCst);
    let outcome = execute(
        &policy,
        None,
        caller,
        || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
        },
        |_| None,
    )
    .await;
    assert!(matches!(outcome, Outcome::TimedOut(timeout) if timeout == Duration::from_millis(100)));
    assert_eq!(calls.load(Ordering::SeqCst), 3, "timeouts are retried");

    // Two calls applied both policies; four retries were made, and one call was cut short by its timeout
    // (three times, counted once, as daprd does).
    let text = metrics::metrics().render();
    let series = |name: &str, policy: &str, count: u32| {
        format!(
            "{name}{{app_id=\"a\",flow_direction=\"outbound\",name=\"r\",policy=\"{policy}\",\
             project=\"retry-project\",project_id=\"prj_retry-project\",status=\"\",target=\"app_b\"}} {count}"
        )
    };
    for expected in [
        series("dapr_resiliency_count", "timeout", 2),
        series("dapr_resiliency_count", "retry", 2),
        series("dapr_resiliency_activations_total", "retry", 4),
        series("dapr_resiliency_activations_total", "timeout", 1),
    ] {
        assert!(text.contains(&expected), "{expected} missing from:\n{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn only_policies_from_documents_are_counted_under_daprds_component_targets() {
    let spec = json!({
        "policies": {"retries": {"twice": {"policy": "constant", "duration": "10ms", "maxRetries": 2}}},
        "targets": {"components": {"kv": {"outbound": {"retry": "twice"}}}},
    });
    let documents = [resiliency("store-policies", spec, &[])];
    // The store timeout is the platform's default, not a document's: only the retry counts.
    let policy = Policy::resolve(&documents, "a", Target::ComponentOutbound("kv"))
        .with_default_timeout(Duration::from_millis(50));
    let caller = Caller::component(tenant("component-project"), "Statestore", "");
    let slow = || async { tokio::time::sleep(Duration::from_secs(1)).await };
    let outcome = execute(&policy, None, caller, slow, |_| None).await;
    assert!(matches!(outcome, Outcome::TimedOut(_)));
    // No document at all: nothing is counted, however the call goes.
    let bare = Policy::resolve(&[], "a", Target::ComponentOutbound("kv")).with_default_timeout(Duration::ZERO);
    let outcome =
        execute(&bare, None, Caller::component(tenant("bare-project"), "Statestore", ""), slow, |_| None).await;
    assert!(matches!(outcome, Outcome::TimedOut(_)));

    let text = metrics::metrics().render();
    let series = |name: &str, count: u32| {
        format!(
            "{name}{{app_id=\"a\",flow_direction=\"outbound\",name=\"store-policies\",policy=\"retry\",\
             project=\"component-project\",project_id=\"prj_component-project\",status=\"\",target=\"Statestore_kv\"}} {count}"
        )
    };
    for expected in [series("dapr_resiliency_count", 1), series("dapr_resiliency_activations_total", 2)] {
        assert!(text.contains(&expected), "{expected} missing from:\n{text}");
    }
    assert!(!text.contains(r#"policy="timeout",project="component-project""#), "{text}");
    assert!(!text.contains("bare-project"), "{text}");
}
