//! Name rules: DNS labels for projects and App IDs (they become host names); for Dapr resources, the names
//! daprd takes in self-hosted mode that are also safe as one URL path segment: dot-separated parts of letters of
//! either case, digits, `-` and `_` (Dapr's own quickstarts name a Configuration `daprConfig`).

use crate::Invalid;

const DNS_LABEL_MAX: usize = 63;
const RESOURCE_NAME_MAX: usize = 253;

/// Checks a project or App ID name: 1-63 characters of `a-z`, `0-9` and `-`, starting and
/// ending with a letter or digit.
pub fn validate_dns_label(name: &str) -> Result<(), Invalid> {
    let problem = if name.len() > DNS_LABEL_MAX {
        Some(format!("is longer than {DNS_LABEL_MAX} characters"))
    } else {
        label_problem(name, Part::DnsLabel)
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(Invalid::new(format!(
            "'{name}' {problem}; use 1-{DNS_LABEL_MAX} lowercase letters, digits and '-', \
             starting and ending with a letter or digit"
        ))),
    }
}

/// Checks a Dapr resource name: 1-253 characters of letters, digits, `-`, `_` and `.`, where each
/// dot-separated part starts and ends with a letter or digit.
pub fn validate_resource_name(name: &str) -> Result<(), Invalid> {
    let problem = if name.len() > RESOURCE_NAME_MAX {
        Some(format!("is longer than {RESOURCE_NAME_MAX} characters"))
    } else {
        name.split('.').find_map(|part| label_problem(part, Part::ResourceName))
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(Invalid::new(format!(
            "'{name}' {problem}; use 1-{RESOURCE_NAME_MAX} letters, digits, '-', '_' and '.', \
             with every dot-separated part starting and ending with a letter or digit"
        ))),
    }
}

/// Which name a label is (a part of).
#[derive(Clone, Copy)]
enum Part {
    DnsLabel,
    ResourceName,
}

/// What is wrong with one label, if anything. Dots never reach here: resource names are split on them first.
fn label_problem(label: &str, part: Part) -> Option<String> {
    let (alphanumeric, punctuation, wording): (fn(char) -> bool, &[char], _) = match part {
        Part::DnsLabel => {
            (|c: char| c.is_ascii_lowercase() || c.is_ascii_digit(), &['-'], "a lowercase letter, digit or '-'")
        }
        Part::ResourceName => (|c: char| c.is_ascii_alphanumeric(), &['-', '_'], "a letter, digit, '-', '_' or '.'"),
    };
    if label.is_empty() {
        return Some("has an empty part".to_owned());
    }
    if let Some(bad) = label.chars().find(|&c| !alphanumeric(c) && !punctuation.contains(&c)) {
        return Some(format!("contains '{bad}', which is not {wording}"));
    }
    let first = label.chars().next().is_some_and(alphanumeric);
    let last = label.chars().next_back().is_some_and(alphanumeric);
    (!first || !last).then(|| "does not start and end with a letter or digit".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        let long_ok = "a".repeat(63);
        for good in ["a", "app-1", "0", "order-processor", long_ok.as_str()] {
            assert_eq!(validate_dns_label(good), Ok(()), "{good}");
        }
        let too_long = "a".repeat(64);
        let cases = [
            ("", "empty part"),
            ("-app", "does not start and end"),
            ("app-", "does not start and end"),
            ("App", "contains 'A'"),
            ("my_app", "contains '_'"),
            ("my.app", "contains '.'"),
            (too_long.as_str(), "longer than 63"),
        ];
        for (bad, expected) in cases {
            let error = validate_dns_label(bad).expect_err(bad);
            assert!(error.reason.contains(expected), "{bad}: {error}");
            assert_eq!(error.field, None);
        }
    }

    #[test]
    fn resource_names() {
        let long_ok = ["a"; 127].join(".");
        for good in ["statestore", "my.pubsub-1", "a", "0.0", "daprConfig", "order_store", long_ok.as_str()] {
            assert_eq!(validate_resource_name(good), Ok(()), "{good}");
        }
        let too_long = "a".repeat(254);
        let cases = [
            ("", "empty part"),
            ("state..store", "empty part"),
            (".state", "empty part"),
            ("state.-x", "does not start and end"),
            ("_state", "does not start and end"),
            ("state/x", "contains '/'"),
            ("state store", "contains ' '"),
            (too_long.as_str(), "longer than 253"),
        ];
        for (bad, expected) in cases {
            let error = validate_resource_name(bad).expect_err(bad);
            assert!(error.reason.contains(expected), "{bad}: {error}");
        }
    }
}
