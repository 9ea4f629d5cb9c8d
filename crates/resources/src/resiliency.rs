//! Rules for Resiliency documents: policies must be well-formed, and every target must
//! name policies that are defined.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::fields::{
    as_object, as_str, check_duration, check_one_of, check_optional_duration, child, optional_integer, optional_object,
    optional_string, Object,
};
use crate::Invalid;

/// One kind of policy: where it is defined, how targets refer to it, and how it is checked.
struct PolicySection {
    /// Key under `spec.policies`.
    key: &'static str,
    /// Key in a target that names a policy of this kind.
    reference: &'static str,
    /// How the policy reads in messages.
    noun: &'static str,
    /// Dapr lets a target's timeout be a duration instead of a policy name.
    inline_duration_allowed: bool,
    check: fn(&Value, &str) -> Result<(), Invalid>,
}

const SECTIONS: [PolicySection; 3] = [
    PolicySection {
        key: "timeouts",
        reference: "timeout",
        noun: "timeout",
        inline_duration_allowed: true,
        check: check_timeout_policy,
    },
    PolicySection {
        key: "retries",
        reference: "retry",
        noun: "retry",
        inline_duration_allowed: false,
        check: check_retry_policy,
    },
    PolicySection {
        key: "circuitBreakers",
        reference: "circuitBreaker",
        noun: "circuit breaker",
        inline_duration_allowed: false,
        check: check_circuit_breaker_policy,
    },
];

/// Policy names defined in the document, one set per entry of [`SECTIONS`].
type DefinedPolicies<'a> = [BTreeSet<&'a str>; 3];

const ACTOR_CIRCUIT_BREAKER_SCOPES: [&str; 3] = ["type", "id", "both"];

/// Checks a Resiliency's spec.
pub(crate) fn check(spec: &Object) -> Result<(), Invalid> {
    let defined = match optional_object(spec, "policies", "spec")? {
        Some(policies) => check_policies(policies)?,
        None => DefinedPolicies::default(),
    };
    if let Some(targets) = optional_object(spec, "targets", "spec")? {
        check_targets(targets, &defined)?;
    }
    Ok(())
}

fn check_policies(policies: &Object) -> Result<DefinedPolicies<'_>, Invalid> {
    let mut defined = DefinedPolicies::default();
    for (section, names) in SECTIONS.iter().zip(&mut defined) {
        let section_path = child("spec.policies", section.key);
        let entries = optional_object(policies, section.key, "spec.policies")?;
        for (name, policy) in entries.into_iter().flatten() {
            (section.check)(policy, &child(&section_path, name))?;
            names.insert(name.as_str());
        }
    }
    Ok(defined)
}

/// daprd reads a timeout written as a bare number as milliseconds, and anything else as a
/// Go duration.
fn check_timeout(text: &str, path: &str) -> Result<(), Invalid> {
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Ok(());
    }
    check_duration(text, path)
}

fn check_timeout_policy(policy: &Value, path: &str) -> Result<(), Invalid> {
    check_timeout(as_str(policy, path)?, path)
}

fn check_retry_policy(policy: &Value, path: &str) -> Result<(), Invalid> {
    let retry = as_object(policy, path)?;
    if let Some(kind) = optional_string(retry, "policy", path)? {
        check_one_of(kind, &["constant", "exponential"], false, &child(path, "policy"))?;
    }
    check_optional_duration(retry, "duration", path)?;
    check_optional_duration(retry, "maxInterval", path)?;
    // -1 retries forever.
    optional_integer(retry, "maxRetries", path, -1)?;
    if let Some(matching) = optional_object(retry, "matching", path)? {
        let matching_path = child(path, "matching");
        for (key, lowest, highest) in [("httpStatusCodes", 100, 599), ("gRPCStatusCodes", 0, 16)] {
            if let Some(codes) = optional_string(matching, key, &matching_path)? {
                check_status_codes(codes, lowest, highest, &child(&matching_path, key))?;
            }
        }
    }
    Ok(())
}

/// Checks a list of status codes and ranges such as `429,500-504` the way daprd reads it:
/// empty items are skipped, every code must lie in `lowest..=highest`, and a range must not
/// run backwards.
fn check_status_codes(codes: &str, lowest: u32, highest: u32, path: &str) -> Result<(), Invalid> {
    for pattern in codes.split(',').filter(|pattern| !pattern.is_empty()) {
        if let Some(problem) = status_pattern_problem(pattern, lowest, highest) {
            return Err(Invalid::at(
                path,
                format!("'{pattern}': {problem}; list codes and ranges separated by commas, like 429,500-504"),
            ));
        }
    }
    Ok(())
}

/// What is wrong with one code (`500`) or range (`500-504`), if anything.
fn status_pattern_problem(pattern: &str, lowest: u32, highest: u32) -> Option<String> {
    let bounds = match pattern.split('-').map(str::parse).collect::<Result<Vec<u32>, _>>() {
        Ok(bounds) if bounds.len() <= 2 => bounds,
        _ => return Some("it is not a code or a range of codes".to_owned()),
    };
    if let Some(code) = bounds.iter().find(|code| !(lowest..=highest).contains(*code)) {
        return Some(format!("code {code} is outside {lowest}-{highest}"));
    }
    (bounds.first() > bounds.last()).then(|| "the range runs backwards".to_owned())
}

fn check_circuit_breaker_policy(policy: &Value, path: &str) -> Result<(), Invalid> {
    let breaker = as_object(policy, path)?;
    optional_integer(breaker, "maxRequests", path, 0)?;
    check_optional_duration(breaker, "interval", path)?;
    check_optional_duration(breaker, "timeout", path)?;
    match optional_string(breaker, "trip", path)? {
        Some(trip) if trip.trim().is_empty() => {
            Err(Invalid::at(child(path, "trip"), "the CEL expression is blank; write one like consecutiveFailures > 5"))
        }
        // The same engine evaluates the trip in the breaker.
        Some(trip) => outrigger_cel::check(trip).map_err(|err| {
            Invalid::at(
                child(path, "trip"),
                format!("not a CEL expression: {err}; write one like consecutiveFailures > 5"),
            )
        }),
        None => Ok(()),
    }
}

fn check_targets(targets: &Object, defined: &DefinedPolicies<'_>) -> Result<(), Invalid> {
    for (app, target) in optional_object(targets, "apps", "spec.targets")?.into_iter().flatten() {
        let path = child("spec.targets.apps", app);
        let target = as_object(target, &path)?;
        check_policy_references(target, &path, defined)?;
        optional_integer(target, "circuitBreakerCacheSize", &path, 0)?;
    }
    for (actor_type, target) in optional_object(targets, "actors", "spec.targets")?.into_iter().flatten() {
        let path = child("spec.targets.actors", actor_type);
        let target = as_object(target, &path)?;
        check_policy_references(target, &path, defined)?;
        optional_integer(target, "circuitBreakerCacheSize", &path, 0)?;
        check_actor_circuit_breaker_scope(target, &path)?;
    }
    for (component, target) in optional_object(targets, "components", "spec.targets")?.into_iter().flatten() {
        let path = child("spec.targets.components", component);
        let target = as_object(target, &path)?;
        for direction in ["outbound", "inbound"] {
            if let Some(policies) = optional_object(target, direction, &path)? {
                check_policy_references(policies, &child(&path, direction), defined)?;
            }
        }
    }
    Ok(())
}

fn check_policy_references(target: &Object, path: &str, defined: &DefinedPolicies<'_>) -> Result<(), Invalid> {
    for (section, names) in SECTIONS.iter().zip(defined) {
        let Some(name) = optional_string(target, section.reference, path)? else {
            continue;
        };
        let is_inline_duration = section.inline_duration_allowed && check_timeout(name, path).is_ok();
        if names.contains(name) || is_inline_duration {
            continue;
        }
        let alternative = if section.inline_duration_allowed { " and is not a duration" } else { "" };
        return Err(Invalid::at(
            child(path, section.reference),
            format!(
                "{} policy '{name}' is not defined under spec.policies.{}{alternative}; define it there or name one that is",
                section.noun, section.key
            ),
        ));
    }
    Ok(())
}

/// daprd refuses an actor circuit breaker without a scope saying what it counts failures by.
fn check_actor_circuit_breaker_scope(target: &Object, path: &str) -> Result<(), Invalid> {
    let scope_path = child(path, "circuitBreakerScope");
    match optional_string(target, "circuitBreakerScope", path)? {
        Some(scope) => check_one_of(scope, &ACTOR_CIRCUIT_BREAKER_SCOPES, false, &scope_path),
        None if optional_string(target, "circuitBreaker", path)?.is_some() => Err(Invalid::at(
            scope_path,
            format!("required with an actor circuitBreaker; use one of: {}", ACTOR_CIRCUIT_BREAKER_SCOPES.join(", ")),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{fixtures, parse_document};

    fn check_value(spec: Value) -> Result<(), Invalid> {
        check(spec.as_object().unwrap())
    }

    #[test]
    fn documented_resiliency_passes() {
        let document = parse_document(fixtures::RESILIENCY.as_bytes(), true).unwrap();
        assert_eq!(check_value(document.spec), Ok(()));
    }

    #[test]
    fn unknown_fields_and_millisecond_timeouts_are_accepted() {
        let spec = json!({
            "policies": {"timeouts": {"quick": "500"}, "retries": {"r": {"policy": "constant", "futureKnob": 1}}},
            "targets": {"apps": {"a": {"timeout": "quick", "retry": "r"}}},
            "futureSection": {}
        });
        assert_eq!(check_value(spec), Ok(()));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({"policies": {"timeouts": {"general": "5 seconds"}}}), "spec.policies.timeouts.general: '5 seconds' is not a duration"),
            (json!({"policies": {"timeouts": {"general": 5}}}), "spec.policies.timeouts.general: must be a string"),
            (json!({"policies": {"retries": {"r": {"policy": "linear"}}}}), "spec.policies.retries.r.policy: 'linear' is not allowed; use one of: constant, exponential"),
            (json!({"policies": {"retries": {"r": {"duration": "-1s"}}}}), "spec.policies.retries.r.duration: '-1s' is negative"),
            (json!({"policies": {"retries": {"r": {"maxInterval": "1d"}}}}), "spec.policies.retries.r.maxInterval: '1d' is not a duration"),
            (json!({"policies": {"retries": {"r": {"maxRetries": -2}}}}), "spec.policies.retries.r.maxRetries: -2 is too small"),
            (json!({"policies": {"retries": {"r": {"maxRetries": "3"}}}}), "spec.policies.retries.r.maxRetries: must be a whole number"),
            (json!({"policies": {"retries": {"r": {"matching": {"httpStatusCodes": "600"}}}}}), "spec.policies.retries.r.matching.httpStatusCodes: '600': code 600 is outside 100-599"),
            (json!({"policies": {"retries": {"r": {"matching": {"httpStatusCodes": "504-500"}}}}}), "'504-500': the range runs backwards"),
            (json!({"policies": {"retries": {"r": {"matching": {"httpStatusCodes": "500-504-510"}}}}}), "'500-504-510': it is not a code"),
            (json!({"policies": {"retries": {"r": {"matching": {"httpStatusCodes": "429, 500"}}}}}), "' 500': it is not a code"),
            (json!({"policies": {"retries": {"r": {"matching": {"gRPCStatusCodes": "1-17"}}}}}), "gRPCStatusCodes: '1-17': code 17 is outside 0-16"),
            (json!({"policies": {"circuitBreakers": {"cb": {"interval": "often"}}}}), "spec.policies.circuitBreakers.cb.interval"),
            (json!({"policies": {"circuitBreakers": {"cb": {"trip": " "}}}}), "spec.policies.circuitBreakers.cb.trip: the CEL expression is blank"),
            (json!({"policies": {"circuitBreakers": {"cb": {"trip": "consecutiveFailures >"}}}}), "spec.policies.circuitBreakers.cb.trip: not a CEL expression: column 22: "),
            (json!({"policies": {"circuitBreakers": {"cb": {"maxRequests": -1}}}}), "spec.policies.circuitBreakers.cb.maxRequests"),
            (json!({"targets": {"apps": {"a": {"retry": "missing"}}}}), "spec.targets.apps.a.retry: retry policy 'missing' is not defined under spec.policies.retries; define it there"),
            (json!({"targets": {"apps": {"a": {"timeout": "general"}}}}), "spec.targets.apps.a.timeout: timeout policy 'general' is not defined under spec.policies.timeouts and is not a duration"),
            (json!({"targets": {"components": {"c": {"inbound": {"circuitBreaker": "cb"}}}}}), "spec.targets.components.c.inbound.circuitBreaker: circuit breaker policy 'cb' is not defined under spec.policies.circuitBreakers"),
            (json!({"policies": {"circuitBreakers": {"cb": {}}}, "targets": {"actors": {"t": {"circuitBreaker": "cb"}}}}), "spec.targets.actors.t.circuitBreakerScope: required with an actor circuitBreaker"),
            (json!({"targets": {"actors": {"t": {"circuitBreakerScope": "all"}}}}), "spec.targets.actors.t.circuitBreakerScope: 'all' is not allowed"),
            (json!({"targets": {"apps": ["a"]}}), "spec.targets.apps: must be a mapping, found a list"),
        ];
        for (spec, expected) in cases {
            let error = check_value(spec.clone()).expect_err(&spec.to_string());
            assert!(error.to_string().contains(expected), "{spec}: {error}");
        }
    }

    #[test]
    fn a_timeout_target_may_be_an_inline_duration() {
        let spec = json!({"targets": {"components": {"c": {"outbound": {"timeout": "1m30s"}}}}});
        assert_eq!(check_value(spec), Ok(()));
        let spec = json!({"targets": {"apps": {"a": {"retry": "5s"}}}});
        assert!(check_value(spec).is_err());
    }
}
