//! The name rules of the control API, in one table: which path parameters and body fields are names of what
//! shape. The [`Path`](crate::extract::Path) extractor enforces the path rules before a handler runs, the
//! resource model enforces the body rules, and the OpenAPI document declares both from these same entries
//! (pattern and length), so what the document promises and what the server refuses cannot drift apart.

use outrigger_resources::{validate_dns_label, validate_resource_name};
use serde_json::{json, Value};

/// The shape a name must have.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rule {
    /// Projects, App IDs and pools: 1-63 of `a-z0-9-`, starting and ending alphanumeric.
    DnsLabel,
    /// Dapr resources: dot-separated parts of letters, digits, `-` and `_`, at most 253 characters.
    ResourceName,
    /// Identifiers as the server issues them: one of the prefixes, `_`, and 32 hexadecimal digits.
    Id {
        /// The prefixes ids of this kind have.
        prefixes: &'static [&'static str],
        /// What they identify, and where they are listed.
        what: &'static str,
    },
}

const DNS_LABEL: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const RESOURCE_NAME_PART: &str = "[A-Za-z0-9]([-_A-Za-z0-9]*[A-Za-z0-9])?";

impl Rule {
    /// Why `value` does not follow the rule, if it does not.
    fn check(self, value: &str) -> Result<(), String> {
        match self {
            Rule::DnsLabel => validate_dns_label(value).map_err(|invalid| invalid.to_string()),
            Rule::ResourceName => validate_resource_name(value).map_err(|invalid| invalid.to_string()),
            Rule::Id { prefixes, what } => {
                let hex = value.split_once('_').filter(|(prefix, _)| prefixes.contains(prefix)).map(|(_, hex)| hex);
                let valid = hex.is_some_and(|hex| {
                    hex.len() == 32 && hex.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
                });
                valid.then_some(()).ok_or_else(|| {
                    format!(
                        "is not {what} id: ids are '{}_' and 32 hexadecimal digits, as their listing shows them",
                        prefixes.join("_' or '")
                    )
                })
            }
        }
    }

    /// The rule as a JSON Schema (ECMA-262 pattern, lengths in characters).
    pub(crate) fn schema(self) -> Value {
        let (pattern, max_length) = match self {
            Rule::DnsLabel => (format!("^{DNS_LABEL}$"), 63),
            Rule::ResourceName => (format!("^{RESOURCE_NAME_PART}(\\.{RESOURCE_NAME_PART})*$"), 253),
            Rule::Id { prefixes, .. } => (format!("^({})_[0-9a-f]{{32}}$", prefixes.join("|")), 36),
        };
        json!({"type": "string", "pattern": pattern, "minLength": 1, "maxLength": max_length})
    }
}

/// Path parameters that are names, by parameter name. `instance` and `event` are free-form, as in Dapr.
pub(crate) const PATH_RULES: &[(&str, Rule)] = &[
    ("org", Rule::DnsLabel),
    ("project", Rule::DnsLabel),
    ("app", Rule::DnsLabel),
    ("name", Rule::ResourceName),
    ("token_id", Rule::Id { prefixes: &["tok"], what: "a token" }),
    ("member", Rule::Id { prefixes: &["usr", "sva"], what: "a member" }),
    ("key_id", Rule::Id { prefixes: &["key"], what: "an API key" }),
];

/// Body fields that are names: (schema component, property, rule).
pub(crate) const FIELD_RULES: &[(&str, &str, Rule)] = &[
    ("CreateProject", "name", Rule::DnsLabel),
    ("CreateProject", "pool", Rule::DnsLabel),
    ("CreateOrg", "name", Rule::DnsLabel),
    ("CreateAppId", "name", Rule::DnsLabel),
    ("CreateAppId", "config", Rule::ResourceName),
    ("UpdateAppId", "config", Rule::ResourceName),
    ("ObjectMeta", "name", Rule::ResourceName),
];

/// Checks one path parameter against its rule: `Err` says what is wrong, naming the parameter.
pub(crate) fn check_path_param(name: &str, value: &str) -> Result<(), String> {
    match PATH_RULES.iter().find(|(param, _)| *param == name) {
        Some((_, rule)) => rule.check(value).map_err(|problem| format!("path parameter '{name}': {problem}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rules_name_the_parameter_and_leave_free_ones_alone() {
        assert_eq!(check_path_param("project", "shop-1"), Ok(()));
        let problem = check_path_param("project", "Shop").unwrap_err();
        assert!(problem.starts_with("path parameter 'project': 'Shop' contains 'S'"), "{problem}");
        assert!(check_path_param("app", &"a".repeat(64)).is_err());
        assert_eq!(check_path_param("name", "state.redis-1"), Ok(()));
        assert!(check_path_param("name", "a..b").is_err());
        assert_eq!(check_path_param("token_id", "tok_0123456789abcdef0123456789abcdef"), Ok(()));
        assert!(check_path_param("token_id", "tok_0123").is_err());
        assert!(check_path_param("token_id", "key_0123456789abcdef0123456789abcdef").is_err());
        assert_eq!(check_path_param("member", "sva_0123456789abcdef0123456789abcdef"), Ok(()));
        assert_eq!(check_path_param("instance", "Any Thing/at all"), Ok(()));
    }
}
