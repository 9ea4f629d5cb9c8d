//! Typed reads of JSON fields that report the field's path when the value has the wrong
//! shape. A key holding `null` counts as absent, because that is what YAML gives for
//! `key:` with nothing after it.

use serde_json::{Map, Value};

use crate::{parse_go_duration, Invalid};

/// A JSON object.
pub(crate) type Object = Map<String, Value>;

/// The path of `key` under `path` (`""` being the document itself).
pub(crate) fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The path of list item `index` under `path`.
pub(crate) fn item(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// How a value's type reads in a message.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn wrong_type(path: String, expected: &str, found: &Value) -> Invalid {
    Invalid::at(path, format!("must be {expected}, found {}", describe(found)))
}

/// The value at `key`, treating `null` as absent.
pub(crate) fn present<'a>(object: &'a Object, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|value| !value.is_null())
}

/// `value` (found at `path`) as an object.
pub(crate) fn as_object<'a>(value: &'a Value, path: &str) -> Result<&'a Object, Invalid> {
    value.as_object().ok_or_else(|| wrong_type(path.to_owned(), "a mapping", value))
}

/// `value` (found at `path`) as a string.
pub(crate) fn as_str<'a>(value: &'a Value, path: &str) -> Result<&'a str, Invalid> {
    value.as_str().ok_or_else(|| wrong_type(path.to_owned(), "a string", value))
}

/// The object at `key`, if any.
pub(crate) fn optional_object<'a>(object: &'a Object, key: &str, path: &str) -> Result<Option<&'a Object>, Invalid> {
    present(object, key).map(|value| as_object(value, &child(path, key))).transpose()
}

/// The list at `key`, if any.
pub(crate) fn optional_list<'a>(object: &'a Object, key: &str, path: &str) -> Result<Option<&'a [Value]>, Invalid> {
    present(object, key)
        .map(|value| match value {
            Value::Array(items) => Ok(items.as_slice()),
            other => Err(wrong_type(child(path, key), "a list", other)),
        })
        .transpose()
}

/// The string at `key`, if any.
pub(crate) fn optional_string<'a>(object: &'a Object, key: &str, path: &str) -> Result<Option<&'a str>, Invalid> {
    present(object, key).map(|value| as_str(value, &child(path, key))).transpose()
}

/// The string at `key`, which must be present and not empty.
pub(crate) fn required_string<'a>(object: &'a Object, key: &str, path: &str) -> Result<&'a str, Invalid> {
    match optional_string(object, key, path)? {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(Invalid::at(child(path, key), "required; set a non-empty string")),
    }
}

/// Checks that `key`, if present, is a boolean.
pub(crate) fn check_optional_bool(object: &Object, key: &str, path: &str) -> Result<(), Invalid> {
    match present(object, key) {
        None | Some(Value::Bool(_)) => Ok(()),
        Some(other) => Err(wrong_type(child(path, key), "true or false", other)),
    }
}

/// The whole number at `key`, if any, which must be at least `min`.
pub(crate) fn optional_integer(object: &Object, key: &str, path: &str, min: i64) -> Result<Option<i64>, Invalid> {
    let Some(value) = present(object, key) else {
        return Ok(None);
    };
    match value.as_i64() {
        Some(number) if number >= min => Ok(Some(number)),
        Some(number) => {
            Err(Invalid::at(child(path, key), format!("{number} is too small; the least allowed is {min}")))
        }
        None => Err(wrong_type(child(path, key), "a whole number", value)),
    }
}

/// Checks that `key`, if present, is a string in Go duration syntax.
pub(crate) fn check_optional_duration(object: &Object, key: &str, path: &str) -> Result<(), Invalid> {
    match optional_string(object, key, path)? {
        Some(text) => check_duration(text, &child(path, key)),
        None => Ok(()),
    }
}

/// Checks that `text`, found at `path`, is in Go duration syntax.
pub(crate) fn check_duration(text: &str, path: &str) -> Result<(), Invalid> {
    parse_go_duration(text).map(drop).map_err(|error| error.for_field(path))
}

/// Checks that `text`, found at `path`, is an absolute `http` or `https` URL with a host and without
/// credentials: a `user:password@` would be stored and shown wherever the URL is (answers, exports, logs),
/// so it is refused, and the answer does not repeat the URL.
pub(crate) fn check_http_url(text: &str, path: &str) -> Result<(), Invalid> {
    let problem = match url::Url::parse(text) {
        Ok(url) if !url.username().is_empty() || url.password().is_some() => {
            return Err(Invalid::at(
                path,
                "carries a user name or password ('user:password@'), which would be shown in clear wherever the \
                 URL is; remove it and authenticate another way (an app token, or a secret header)",
            ));
        }
        Err(error) => Some(error.to_string()),
        Ok(url) if !matches!(url.scheme(), "http" | "https") => Some(format!("the scheme is '{}'", url.scheme())),
        Ok(url) if url.host().is_none() => Some("it has no host".to_owned()),
        Ok(_) => None,
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(Invalid::at(
            path,
            format!("'{text}' is not an absolute http(s) URL ({problem}); write it like https://api.example.com"),
        )),
    }
}

/// Checks that `value`, found at `path`, is one of `allowed` (ignoring ASCII case when
/// `ignore_case`, as Dapr does for access control actions).
pub(crate) fn check_one_of(value: &str, allowed: &[&str], ignore_case: bool, path: &str) -> Result<(), Invalid> {
    let matches = |candidate: &&str| {
        if ignore_case {
            candidate.eq_ignore_ascii_case(value)
        } else {
            *candidate == value
        }
    };
    if allowed.iter().any(matches) {
        Ok(())
    } else {
        Err(Invalid::at(path, format!("'{value}' is not allowed; use one of: {}", allowed.join(", "))))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Object {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn null_counts_as_absent() {
        let spec = object(json!({"topic": null, "metadata": null}));
        assert_eq!(optional_string(&spec, "topic", "spec"), Ok(None));
        assert_eq!(optional_object(&spec, "metadata", "spec"), Ok(None));
        let error = required_string(&spec, "topic", "spec").unwrap_err();
        assert_eq!(error.field.as_deref(), Some("spec.topic"));
    }

    #[test]
    fn wrong_types_name_the_path_and_what_was_found() {
        let spec = object(json!({"a": [1], "b": "x", "c": 1.5, "d": "yes"}));
        let error = optional_string(&spec, "a", "spec").unwrap_err();
        assert_eq!(error.to_string(), "spec.a: must be a string, found a list");
        let error = optional_list(&spec, "b", "spec").unwrap_err();
        assert_eq!(error.to_string(), "spec.b: must be a list, found a string");
        let error = optional_integer(&spec, "c", "spec", 0).unwrap_err();
        assert_eq!(error.to_string(), "spec.c: must be a whole number, found a number");
        let error = check_optional_bool(&spec, "d", "spec").unwrap_err();
        assert_eq!(error.to_string(), "spec.d: must be true or false, found a string");
    }

    #[test]
    fn integers_respect_their_minimum() {
        let spec = object(json!({"n": -2, "m": -1}));
        assert!(optional_integer(&spec, "n", "spec", -1).is_err());
        assert_eq!(optional_integer(&spec, "m", "spec", -1), Ok(Some(-1)));
        assert_eq!(optional_integer(&spec, "absent", "spec", 0), Ok(None));
    }

    #[test]
    fn http_urls() {
        for good in ["http://localhost:3000", "https://api.example.com/v1"] {
            assert_eq!(check_http_url(good, "spec.baseUrl"), Ok(()), "{good}");
        }
        for (bad, expected) in [
            ("ftp://example.com", "scheme is 'ftp'"),
            ("/relative/path", "relative URL"),
            ("example.com", "relative URL"),
            ("http://", "empty host"),
        ] {
            let error = check_http_url(bad, "spec.baseUrl").unwrap_err();
            assert!(error.reason.contains(expected), "{bad}: {error}");
            assert_eq!(error.field.as_deref(), Some("spec.baseUrl"));
        }
        for credentials in ["https://user:s3cret@api.example.com", "http://user@127.0.0.1:80", "http://:s3cret@h"] {
            let error = check_http_url(credentials, "spec.appEndpoint").unwrap_err();
            assert!(error.reason.contains("user name or password"), "{credentials}: {error}");
            assert!(!error.to_string().contains("s3cret"), "{error}");
            assert_eq!(error.field.as_deref(), Some("spec.appEndpoint"));
        }
    }

    #[test]
    fn one_of_lists_the_choices() {
        assert_eq!(check_one_of("Allow", &["allow", "deny"], true, "x"), Ok(()));
        let error = check_one_of("Allow", &["allow", "deny"], false, "x").unwrap_err();
        assert_eq!(error.to_string(), "x: 'Allow' is not allowed; use one of: allow, deny");
    }
}
