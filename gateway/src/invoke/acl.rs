//! Access control for service invocation: the callee's Configuration (`spec.accessControl`) decides which
//! callers may call which of its methods with which verbs (daprd `pkg/acl`, `invoke-allowlist.md`).
//!
//! Evaluation: no `accessControl` allows everything. Otherwise the global `defaultAction` (allow when unset)
//! applies unless a policy names the caller; then the policy's `defaultAction` (falling back to the global
//! one) applies unless one of its operations matches the method, whose `action` decides when the verb is
//! listed. Operation names match path segments exactly, `*` matches one segment, and `**` any number of
//! them. Callers are identified as daprd's SPIFFE ids would name them: trust domain `public`, namespace = the
//! project (policies written for a self-hosted `default` namespace still match).

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Allow,
    Deny,
}

impl Action {
    fn parse(value: Option<&Value>) -> Option<Action> {
        match value?.as_str()?.to_ascii_lowercase().as_str() {
            "allow" => Some(Action::Allow),
            "deny" => Some(Action::Deny),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Operation {
    /// Path segments of the operation's name; `*` and `**` are wildcards.
    segments: Vec<String>,
    /// Upper-case verbs, or `*`; empty matches every verb.
    verbs: Vec<String>,
    action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct CallerPolicy {
    app_id: String,
    trust_domain: Option<String>,
    namespace: Option<String>,
    default_action: Option<Action>,
    operations: Vec<Operation>,
}

/// A callee's access control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessControl {
    default_action: Action,
    policies: Vec<CallerPolicy>,
}

fn segments(path: &str) -> Vec<String> {
    path.split('/').filter(|segment| !segment.is_empty()).map(str::to_owned).collect()
}

impl AccessControl {
    /// The access control of a Configuration spec; `None` when it has none (everything is allowed).
    pub fn from_configuration(spec: &Value) -> Option<AccessControl> {
        let access = spec.get("accessControl")?;
        let text = |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let policies = access
            .get("policies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|policy| CallerPolicy {
                app_id: text(policy, "appId").unwrap_or_default(),
                trust_domain: text(policy, "trustDomain"),
                namespace: text(policy, "namespace"),
                default_action: Action::parse(policy.get("defaultAction")),
                operations: policy
                    .get("operations")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|operation| {
                        Some(Operation {
                            segments: segments(operation.get("name")?.as_str()?),
                            verbs: operation
                                .get("httpVerb")
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_str)
                                .map(str::to_ascii_uppercase)
                                .collect(),
                            action: Action::parse(operation.get("action"))?,
                        })
                    })
                    .collect(),
            })
            .collect();
        Some(AccessControl {
            default_action: Action::parse(access.get("defaultAction")).unwrap_or(Action::Allow),
            policies,
        })
    }

    /// Whether `caller` (an App ID of `project`) may call `method` with `verb`. The method is matched
    /// percent-decoded, as the app will read it; one with `.` or `..` segments is refused whatever the policy
    /// says, since the app could resolve it to a path the policy denies.
    pub fn allows(&self, project: &str, caller: &str, verb: &str, method: &str) -> bool {
        let Some(method) = decoded(method) else { return false };
        let policy = self.policies.iter().find(|policy| {
            policy.app_id == caller
                && policy.trust_domain.as_deref().is_none_or(|domain| domain == "public")
                && policy.namespace.as_deref().is_none_or(|namespace| namespace == project || namespace == "default")
        });
        let Some(policy) = policy else {
            return self.default_action == Action::Allow;
        };
        let method = segments(&method);
        let verb = verb.to_ascii_uppercase();
        let operation = policy.operations.iter().find(|operation| {
            matches_segments(&operation.segments, &method)
                && (operation.verbs.is_empty()
                    || operation.verbs.iter().any(|allowed| allowed == "*" || *allowed == verb))
        });
        let action = match operation {
            Some(operation) => operation.action,
            None => policy.default_action.unwrap_or(self.default_action),
        };
        action == Action::Allow
    }
}

/// `path` percent-decoded; `None` when it does not decode to text or has dot segments.
fn decoded(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    (!text.split('/').any(|segment| segment == "." || segment == "..")).then_some(text)
}

/// Whether an operation's segments (with `*` and `**`) match a method's segments.
fn matches_segments(pattern: &[String], method: &[String]) -> bool {
    match pattern.split_first() {
        None => method.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=method.len()).any(|taken| matches_segments(rest, &method[taken..]))
        }
        Some((first, rest)) => match method.split_first() {
            Some((segment, method_rest)) => (first == "*" || first == segment) && matches_segments(rest, method_rest),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn acl(spec: Value) -> AccessControl {
        AccessControl::from_configuration(&json!({ "accessControl": spec })).unwrap()
    }

    #[test]
    fn without_access_control_everything_is_allowed() {
        assert_eq!(AccessControl::from_configuration(&json!({"tracing": {}})), None);
        assert!(acl(json!({})).allows("p", "anyone", "GET", "/anything"));
    }

    #[test]
    fn the_matrix_of_callers_operations_and_verbs() {
        let control = acl(json!({
            "defaultAction": "deny",
            "policies": [
                {
                    "appId": "frontend",
                    "defaultAction": "deny",
                    "operations": [
                        {"name": "/orders", "httpVerb": ["GET", "POST"], "action": "allow"},
                        {"name": "/orders/*", "httpVerb": ["*"], "action": "allow"},
                        {"name": "/admin/**", "action": "deny"},
                        {"name": "/reports/**", "httpVerb": ["GET"], "action": "allow"},
                    ],
                },
                {"appId": "auditor", "defaultAction": "allow", "operations": [{"name": "/orders", "httpVerb": ["DELETE"], "action": "deny"}]},
                {"appId": "elsewhere", "namespace": "other-project", "defaultAction": "allow"},
                {"appId": "foreign", "trustDomain": "corp", "defaultAction": "allow"},
            ],
        }));
        let cases = [
            ("frontend", "GET", "/orders", true),
            ("frontend", "post", "/orders", true),
            ("frontend", "DELETE", "/orders", false),
            ("frontend", "DELETE", "/orders/42", true),
            ("frontend", "GET", "/orders/42/items", false),
            ("frontend", "GET", "/admin/users/1", false),
            ("frontend", "GET", "/reports", true),
            ("frontend", "GET", "/reports/2026/11", true),
            ("frontend", "POST", "/reports/2026", false),
            ("frontend", "GET", "/other", false),
            ("auditor", "GET", "/anything", true),
            ("auditor", "DELETE", "/orders", false),
            ("stranger", "GET", "/orders", false),
            ("elsewhere", "GET", "/orders", false),
            ("foreign", "GET", "/orders", false),
        ];
        for (caller, verb, method, allowed) in cases {
            assert_eq!(control.allows("p", caller, verb, method), allowed, "{caller} {verb} {method}");
        }
    }

    #[test]
    fn methods_are_matched_decoded_and_dot_segments_are_refused() {
        let control = acl(json!({
            "defaultAction": "deny",
            "policies": [{"appId": "a", "operations": [
                {"name": "/public/**", "action": "allow"},
                {"name": "/a b", "action": "allow"},
            ]}],
        }));
        assert!(control.allows("p", "a", "GET", "/public/x%2Fy"));
        assert!(control.allows("p", "a", "GET", "/a%20b"));
        assert!(!control.allows("p", "a", "GET", "/public/%2e%2e/admin"));
        assert!(!control.allows("p", "a", "GET", "/public/%2E%2E%2Fadmin"));
        assert!(!control.allows("p", "a", "GET", "/public/%zz"));
    }

    #[test]
    fn defaults_fall_back_from_policy_to_global() {
        let control = acl(json!({
            "defaultAction": "allow",
            "policies": [{"appId": "a", "namespace": "default", "operations": [{"name": "/x", "action": "deny"}]}],
        }));
        assert!(!control.allows("p", "a", "GET", "/x"));
        assert!(control.allows("p", "a", "GET", "/y"), "no policy default: the global one");
        assert!(control.allows("p", "b", "GET", "/x"));
    }
}
