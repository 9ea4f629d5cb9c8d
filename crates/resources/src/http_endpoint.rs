//! Rules for HTTPEndpoint documents.

use crate::fields::{check_http_url, optional_object, required_string, Object};
use crate::name_value::check_name_value_list;
use crate::Invalid;

/// Checks an HTTPEndpoint's spec.
pub(crate) fn check(spec: &Object) -> Result<(), Invalid> {
    check_http_url(required_string(spec, "baseUrl", "spec")?, "spec.baseUrl")?;
    check_name_value_list(spec, "headers", "header")?;
    optional_object(spec, "clientTLS", "spec").map(drop)
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
    fn documented_endpoint_passes() {
        let document = parse_document(fixtures::HTTP_ENDPOINT.as_bytes(), true).unwrap();
        assert_eq!(check_value(document.spec), Ok(()));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({}), "spec.baseUrl: required"),
            (json!({"baseUrl": "api.example.com"}), "spec.baseUrl: 'api.example.com' is not an absolute http(s) URL"),
            (json!({"baseUrl": "grpc://api.example.com"}), "the scheme is 'grpc'"),
            (json!({"baseUrl": "https://a.example", "headers": [{"value": "x"}]}), "spec.headers[0].name: required"),
            (
                json!({"baseUrl": "https://a.example", "headers": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}),
                "spec.headers[1].name: header 'A' is already set",
            ),
            (json!({"baseUrl": "https://a.example", "clientTLS": "yes"}), "spec.clientTLS: must be a mapping"),
        ];
        for (spec, expected) in cases {
            let error = check_value(spec.clone()).expect_err(&spec.to_string());
            assert!(error.to_string().contains(expected), "{spec}: {error}");
        }
    }
}
