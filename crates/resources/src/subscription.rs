//! Rules for Subscription documents. Both Dapr versions are read; what is stored is always
//! `dapr.io/v2alpha1`, so everything downstream sees one shape.

use serde_json::Value;

use crate::fields::{
    as_object, check_optional_bool, child, describe, item, optional_integer, optional_list, optional_object,
    optional_string, required_string, Object,
};
use crate::Invalid;

const V1ALPHA1: &str = "dapr.io/v1alpha1";
const V2ALPHA1: &str = "dapr.io/v2alpha1";

/// Checks a Subscription's spec and rewrites a v1alpha1 document as v2alpha1
/// (`route` becomes `routes.default`).
pub(crate) fn normalize(api_version: &mut String, spec: &mut Object) -> Result<(), Invalid> {
    required_string(spec, "pubsubname", "spec")?;
    required_string(spec, "topic", "spec")?;
    if api_version == V1ALPHA1 {
        if spec.contains_key("routes") {
            return Err(Invalid::at(
                "spec.routes",
                format!("routes belongs to {V2ALPHA1}; use route, or change apiVersion to {V2ALPHA1}"),
            ));
        }
        let route = required_string(spec, "route", "spec")?.to_owned();
        spec.remove("route");
        spec.insert("routes".to_owned(), serde_json::json!({ "default": route }));
        *api_version = V2ALPHA1.to_owned();
    } else if spec.contains_key("route") {
        return Err(Invalid::at(
            "spec.route",
            format!("route belongs to {V1ALPHA1}; in {V2ALPHA1} write routes.default"),
        ));
    }
    check_routes(spec)?;
    optional_string(spec, "deadLetterTopic", "spec")?;
    if let Some(bulk) = optional_object(spec, "bulkSubscribe", "spec")? {
        check_optional_bool(bulk, "enabled", "spec.bulkSubscribe")?;
        optional_integer(bulk, "maxMessagesCount", "spec.bulkSubscribe", 0)?;
        optional_integer(bulk, "maxAwaitDurationMs", "spec.bulkSubscribe", 0)?;
    }
    if let Some(metadata) = optional_object(spec, "metadata", "spec")? {
        // Dapr reads subscription metadata as a map of strings.
        if let Some((key, value)) = metadata.iter().find(|(_, value)| !value.is_string()) {
            return Err(Invalid::at(
                child("spec.metadata", key),
                format!("must be a string, found {}; quote it", describe(value)),
            ));
        }
    }
    Ok(())
}

fn check_routes(spec: &Object) -> Result<(), Invalid> {
    let no_route = || Invalid::at("spec.routes", "give at least one route: routes.default, routes.rules, or both");
    let routes = optional_object(spec, "routes", "spec")?.ok_or_else(no_route)?;
    let rules = optional_list(routes, "rules", "spec.routes")?.unwrap_or_default();
    for (index, rule) in rules.iter().enumerate() {
        check_rule(rule, &item("spec.routes.rules", index))?;
    }
    let default = optional_string(routes, "default", "spec.routes")?.filter(|path| !path.is_empty());
    if rules.is_empty() && default.is_none() {
        return Err(no_route());
    }
    Ok(())
}

fn check_rule(rule: &Value, path: &str) -> Result<(), Invalid> {
    let rule = as_object(rule, path)?;
    // An empty match would catch every event, which is what routes.default is for.
    let expression = optional_string(rule, "match", path)?.unwrap_or_default();
    if expression.trim().is_empty() {
        return Err(Invalid::at(
            child(path, "match"),
            "required; write a CEL expression such as event.type == \"widget\", \
             or use routes.default for a catch-all route",
        ));
    }
    // daprd compiles the expression when it loads the subscription; refusing it here instead
    // keeps a broken rule from being stored at all.
    outrigger_cel::check(expression)
        .map_err(|error| Invalid::at(child(path, "match"), format!("not a valid CEL expression: {error}")))?;
    required_string(rule, "path", path).map(drop)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{fixtures, parse_document};

    fn run(api_version: &str, spec: Value) -> Result<(String, Value), Invalid> {
        let mut api_version = api_version.to_owned();
        let mut spec = spec.as_object().unwrap().clone();
        normalize(&mut api_version, &mut spec)?;
        Ok((api_version, Value::Object(spec)))
    }

    #[test]
    fn v2alpha1_with_rules_and_default_is_kept_as_is() {
        let document = parse_document(fixtures::SUBSCRIPTION_V2.as_bytes(), true).unwrap();
        let (api_version, spec) = run(&document.api_version, document.spec.clone()).unwrap();
        assert_eq!(api_version, V2ALPHA1);
        assert_eq!(spec, document.spec);
    }

    #[test]
    fn v1alpha1_route_becomes_the_default_route() {
        let document = parse_document(fixtures::SUBSCRIPTION_V1.as_bytes(), true).unwrap();
        let (api_version, spec) = run(&document.api_version, document.spec).unwrap();
        assert_eq!(api_version, V2ALPHA1);
        assert_eq!(spec, json!({"pubsubname": "orderpubsub", "topic": "orders", "routes": {"default": "/checkout"}}));
    }

    #[test]
    fn optional_parts_are_typed() {
        let spec = json!({"pubsubname": "p", "topic": "t", "routes": {"default": "/d"},
            "deadLetterTopic": "poison", "metadata": {"rawPayload": "true"},
            "bulkSubscribe": {"enabled": true, "maxMessagesCount": 100, "maxAwaitDurationMs": 40}});
        assert!(run(V2ALPHA1, spec).is_ok());
    }

    #[test]
    fn errors_name_the_field() {
        let base = |extra: Value| {
            let mut spec = json!({"pubsubname": "p", "topic": "t"});
            spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            spec
        };
        let cases = [
            (V2ALPHA1, json!({"routes": {"default": "/d"}, "topic": ""}), "spec.topic: required"),
            (V2ALPHA1, json!({"pubsubname": null, "routes": {"default": "/d"}}), "spec.pubsubname: required"),
            (V2ALPHA1, json!({}), "spec.routes: give at least one route"),
            (V2ALPHA1, json!({"routes": {"rules": []}}), "spec.routes: give at least one route"),
            (V2ALPHA1, json!({"routes": {"default": ""}}), "spec.routes: give at least one route"),
            (V2ALPHA1, json!({"routes": {"rules": [{"path": "/a"}]}}), "spec.routes.rules[0].match: required"),
            (
                V2ALPHA1,
                json!({"routes": {"rules": [{"match": "", "path": "/a"}]}}),
                "spec.routes.rules[0].match: required",
            ),
            (
                V2ALPHA1,
                json!({"routes": {"rules": [{"match": "  ", "path": "/a"}]}}),
                "spec.routes.rules[0].match: required",
            ),
            (
                V2ALPHA1,
                json!({"routes": {"rules": [{"match": "true", "path": "/a"}, {"match": "x"}]}}),
                "spec.routes.rules[1].path: required",
            ),
            (
                V2ALPHA1,
                json!({"routes": {"rules": [{"match": "event.type = \"widget\"", "path": "/a"}]}}),
                "spec.routes.rules[0].match: not a valid CEL expression: column 12: Syntax error",
            ),
            (
                V2ALPHA1,
                json!({"routes": {"rules": [
                    {"match": "true", "path": "/a"},
                    {"match": "(event.data.price > 100", "path": "/b"},
                ]}}),
                "spec.routes.rules[1].match: not a valid CEL expression: column 24: Syntax error",
            ),
            (V2ALPHA1, json!({"route": "/a"}), "spec.route: route belongs to dapr.io/v1alpha1"),
            (V2ALPHA1, json!({"routes": {"default": "/d"}, "metadata": {"n": 1}}), "spec.metadata.n: must be a string"),
            (
                V2ALPHA1,
                json!({"routes": {"default": "/d"}, "bulkSubscribe": {"enabled": "yes"}}),
                "spec.bulkSubscribe.enabled: must be true or false",
            ),
            (
                V2ALPHA1,
                json!({"routes": {"default": "/d"}, "bulkSubscribe": {"maxMessagesCount": -1}}),
                "spec.bulkSubscribe.maxMessagesCount: -1 is too small",
            ),
            (V1ALPHA1, json!({}), "spec.route: required"),
            (
                V1ALPHA1,
                json!({"route": "/a", "routes": {"default": "/b"}}),
                "spec.routes: routes belongs to dapr.io/v2alpha1",
            ),
        ];
        for (api_version, extra, expected) in cases {
            let spec = base(extra.clone());
            let error = run(api_version, spec).expect_err(&extra.to_string());
            assert!(error.to_string().starts_with(expected), "{extra}: {error}");
        }
    }
}
