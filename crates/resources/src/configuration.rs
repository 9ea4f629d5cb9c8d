//! Rules for Configuration documents. The whole spec is kept; the parts Outrigger enforces are
//! checked: access control (service invocation) and secret scopes (the secrets API); `tracing.samplingRate` is
//! read as daprd reads it ([`sampling_rate`]).

use crate::fields::{
    as_object, as_str, check_one_of, child, item, optional_list, optional_object, optional_string, required_string,
    Object,
};
use crate::Invalid;

/// daprd compares actions ignoring case.
const ACTIONS: [&str; 2] = ["allow", "deny"];

const HTTP_VERBS: [&str; 10] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "*"];

/// The `tracing.samplingRate` a Configuration's spec sets, as daprd reads it: a number (written as a string in
/// Dapr's documents; a bare number is read too), or daprd's default of 1 in 10,000 when it is not one. `None` when
/// the spec sets no rate.
pub fn sampling_rate(spec: &serde_json::Value) -> Option<f64> {
    let rate = spec.get("tracing")?.get("samplingRate")?;
    let text = rate.as_str().map(str::to_owned).unwrap_or_else(|| rate.to_string());
    Some(text.trim().parse::<f64>().ok().filter(|rate| rate.is_finite()).unwrap_or(1e-4))
}

/// Checks a Configuration's spec.
pub(crate) fn check(spec: &Object) -> Result<(), Invalid> {
    check_access_control(spec)?;
    check_secret_scopes(spec)
}

fn check_secret_scopes(spec: &Object) -> Result<(), Invalid> {
    let Some(secrets) = optional_object(spec, "secrets", "spec")? else {
        return Ok(());
    };
    const PATH: &str = "spec.secrets";
    let scopes = optional_list(secrets, "scopes", PATH)?.unwrap_or_default();
    for (index, scope) in scopes.iter().enumerate() {
        let path = item(&child(PATH, "scopes"), index);
        let scope = as_object(scope, &path)?;
        required_string(scope, "storeName", &path)?;
        check_optional_action(scope, "defaultAccess", &path)?;
        for list in ["allowedSecrets", "deniedSecrets"] {
            let names = optional_list(scope, list, &path)?.unwrap_or_default();
            for (index, name) in names.iter().enumerate() {
                as_str(name, &item(&child(&path, list), index))?;
            }
        }
    }
    Ok(())
}

fn check_access_control(spec: &Object) -> Result<(), Invalid> {
    let Some(access_control) = optional_object(spec, "accessControl", "spec")? else {
        return Ok(());
    };
    const PATH: &str = "spec.accessControl";
    check_optional_action(access_control, "defaultAction", PATH)?;
    let policies = optional_list(access_control, "policies", PATH)?.unwrap_or_default();
    for (index, policy) in policies.iter().enumerate() {
        let path = item(&child(PATH, "policies"), index);
        let policy = as_object(policy, &path)?;
        required_string(policy, "appId", &path)?;
        check_optional_action(policy, "defaultAction", &path)?;
        let operations = optional_list(policy, "operations", &path)?.unwrap_or_default();
        for (index, operation) in operations.iter().enumerate() {
            let path = item(&child(&path, "operations"), index);
            check_operation(as_object(operation, &path)?, &path)?;
        }
    }
    Ok(())
}

fn check_operation(operation: &Object, path: &str) -> Result<(), Invalid> {
    required_string(operation, "name", path)?;
    let action = required_string(operation, "action", path)?;
    check_one_of(action, &ACTIONS, true, &child(path, "action"))?;
    let verbs = optional_list(operation, "httpVerb", path)?.unwrap_or_default();
    for (index, verb) in verbs.iter().enumerate() {
        let verb_path = item(&child(path, "httpVerb"), index);
        check_one_of(as_str(verb, &verb_path)?, &HTTP_VERBS, false, &verb_path)?;
    }
    Ok(())
}

fn check_optional_action(object: &Object, key: &str, path: &str) -> Result<(), Invalid> {
    match optional_string(object, key, path)? {
        Some(action) => check_one_of(action, &ACTIONS, true, &child(path, key)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::{fixtures, parse_document};

    fn check_value(spec: Value) -> Result<(), Invalid> {
        check(spec.as_object().unwrap())
    }

    #[test]
    fn sampling_rates_read_as_daprd_reads_them() {
        let rate = |value: Value| sampling_rate(&json!({"tracing": {"samplingRate": value}}));
        assert_eq!(rate(json!("0.5")), Some(0.5));
        assert_eq!(rate(json!("0")), Some(0.0));
        assert_eq!(rate(json!(1)), Some(1.0));
        assert_eq!(rate(json!("")), Some(1e-4));
        assert_eq!(rate(json!("often")), Some(1e-4));
        assert_eq!(sampling_rate(&json!({"tracing": {}})), None);
        assert_eq!(sampling_rate(&json!({})), None);
    }

    #[test]
    fn documented_access_control_passes() {
        let document = parse_document(fixtures::ACCESS_CONTROL.as_bytes(), true).unwrap();
        assert_eq!(check_value(document.spec), Ok(()));
    }

    #[test]
    fn other_configuration_is_kept_unchecked() {
        let spec = json!({"tracing": {"samplingRate": "1"}, "features": [{"name": "x", "enabled": true}]});
        assert_eq!(check_value(spec), Ok(()));
        let spec = json!({"accessControl": {"defaultAction": "Allow"}});
        assert_eq!(check_value(spec), Ok(()));
        let spec = json!({"secrets": {"scopes": [
            {"storeName": "vault", "defaultAccess": "Deny", "allowedSecrets": ["db"], "deniedSecrets": []}
        ]}});
        assert_eq!(check_value(spec), Ok(()));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                json!({"accessControl": {"defaultAction": "permit"}}),
                "spec.accessControl.defaultAction: 'permit' is not allowed; use one of: allow, deny",
            ),
            (
                json!({"accessControl": {"policies": [{"defaultAction": "allow"}]}}),
                "spec.accessControl.policies[0].appId: required",
            ),
            (
                json!({"accessControl": {"policies": [{"appId": "a", "defaultAction": "maybe"}]}}),
                "spec.accessControl.policies[0].defaultAction: 'maybe' is not allowed",
            ),
            (
                json!({"accessControl": {"policies": [{"appId": "a", "operations": [{"action": "allow"}]}]}}),
                "spec.accessControl.policies[0].operations[0].name: required",
            ),
            (
                json!({"accessControl": {"policies": [{"appId": "a", "operations": [{"name": "/x"}]}]}}),
                "spec.accessControl.policies[0].operations[0].action: required",
            ),
            (
                json!({"accessControl": {"policies": [{"appId": "a", "operations": [{"name": "/x", "action": "block"}]}]}}),
                "operations[0].action: 'block' is not allowed",
            ),
            (
                json!({"accessControl": {"policies": [{"appId": "a", "operations": [{"name": "/x", "action": "allow", "httpVerb": ["GET", "FETCH"]}]}]}}),
                "operations[0].httpVerb[1]: 'FETCH' is not allowed",
            ),
            (
                json!({"accessControl": {"policies": [{"appId": "a", "operations": [{"name": "/x", "action": "allow", "httpVerb": "GET"}]}]}}),
                "operations[0].httpVerb: must be a list",
            ),
            (json!({"accessControl": "deny"}), "spec.accessControl: must be a mapping"),
            (json!({"secrets": {"scopes": [{"defaultAccess": "deny"}]}}), "spec.secrets.scopes[0].storeName: required"),
            (
                json!({"secrets": {"scopes": [{"storeName": "s", "defaultAccess": "hide"}]}}),
                "spec.secrets.scopes[0].defaultAccess: 'hide' is not allowed; use one of: allow, deny",
            ),
            (
                json!({"secrets": {"scopes": [{"storeName": "s", "allowedSecrets": "a"}]}}),
                "spec.secrets.scopes[0].allowedSecrets: must be a list",
            ),
            (
                json!({"secrets": {"scopes": [{"storeName": "s", "deniedSecrets": ["a", 1]}]}}),
                "spec.secrets.scopes[0].deniedSecrets[1]: must be a string",
            ),
        ];
        for (spec, expected) in cases {
            let error = check_value(spec.clone()).expect_err(&spec.to_string());
            assert!(error.to_string().contains(expected), "{spec}: {error}");
        }
    }
}
