//! Tests of `document`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::*;
use crate::fixtures;

fn parse_yaml(yaml: &str) -> Document {
    parse_document(yaml.as_bytes(), true).unwrap()
}

#[test]
fn reads_multi_document_yaml_skipping_empty_documents() {
    let yaml =
        format!("---\n{}---\n---\n# only a comment\n---\n{}", fixtures::REDIS_STATESTORE, fixtures::SUBSCRIPTION_V2);
    let documents = parse_documents(&yaml).unwrap();
    let names: Vec<_> = documents.iter().map(|document| (document.kind, document.metadata.name.as_str())).collect();
    assert_eq!(names, [(Kind::Component, "statestore"), (Kind::Subscription, "myevent-subscription")]);
    assert_eq!(parse_documents(&fixtures::ALL.join("---\n")).unwrap().len(), fixtures::ALL.len());
    assert_eq!(parse_documents("").unwrap(), []);
}

#[test]
fn a_failing_document_is_named_by_its_index() {
    let yaml =
        format!("{}---\n---\napiVersion: dapr.io/v1alpha1\nkind: Component\nspec: {{}}\n", fixtures::REDIS_STATESTORE);
    let error = parse_documents(&yaml).unwrap_err();
    assert_eq!(error.index, Some(2));
    assert_eq!(error.to_string(), "document at index 2: missing metadata.name; every document needs a name");

    let broken_syntax = format!("{}---\nkind: [Component\n", fixtures::REDIS_STATESTORE);
    assert_eq!(parse_documents(&broken_syntax).unwrap_err().index, Some(1));
}

#[test]
fn says_what_is_wrong_with_a_document() {
    let cases = [
        ("- a\n- b\n", "a document must be a mapping, found a list"),
        ("apiVersion: dapr.io/v1alpha1\nmetadata: {name: x}\n", "missing kind; use one of: Component, Subscription, Resiliency, Configuration, HTTPEndpoint, AppIdentity"),
        ("kind: Secret\nmetadata: {name: x}\n", "unknown kind 'Secret'; use one of: Component, Subscription, Resiliency, Configuration, HTTPEndpoint, AppIdentity"),
        ("kind: [Component]\n", "kind must be a string, found a list"),
        ("kind: Subscription\nmetadata: {name: x}\n", "missing apiVersion; Subscription documents use dapr.io/v2alpha1 or dapr.io/v1alpha1"),
        ("kind: Component\napiVersion: 1\n", "apiVersion must be a string, found a number"),
        ("kind: Component\napiVersion: dapr.io/v1alpha1\n", "missing metadata.name; every document needs a name"),
        ("kind: Component\napiVersion: dapr.io/v1alpha1\nmetadata: {name: ''}\n", "missing metadata.name; every document needs a name"),
        ("kind: Component\napiVersion: dapr.io/v1alpha1\nmetadata: x\n", "metadata: must be a mapping, found a string"),
        ("kind: Component\napiVersion: dapr.io/v1alpha1\nmetadata: {name: 5}\n", "metadata.name: must be a string, found a number"),
        ("kind: Component\napiVersion: dapr.io/v1alpha1\nmetadata: {name: x, labels: {tier: 1}}\n", "metadata.labels.tier: must be a string, found a number; quote it"),
        ("kind: Component\napiVersion: dapr.io/v1alpha1\nmetadata: {name: x}\nspec: [a]\n", "spec must be a mapping, found a list"),
        ("kind: Component\napiVersion: dapr.io/v1alpha1\nmetadata: {name: x}\nscopes: app\n", "scopes: must be a list, found a string"),
        ("kind: Component\napiVersion: dapr.io/v1alpha1\nmetadata: {name: x}\nscopes: [a, 1]\n", "scopes[1]: must be a string, found a number"),
        ("kind: Component\napiVersion: dapr.io/v1alpha1\nmetadata: {name: x}\nauth: vault\n", "auth must be a mapping, found a string"),
    ];
    for (yaml, expected) in cases {
        let error = parse_documents(yaml).expect_err(yaml);
        assert_eq!(error.index, Some(0), "{yaml}");
        assert_eq!(error.reason, expected, "{yaml}");
    }
}

#[test]
fn reads_one_document_as_json_or_yaml() {
    let from_yaml = parse_yaml(fixtures::REDIS_STATESTORE);
    let json = serde_json::to_vec(&from_yaml).unwrap();
    assert_eq!(parse_document(&json, false).unwrap(), from_yaml);
    assert_eq!(from_yaml.spec["metadata"][0], json!({"name": "redisHost", "value": "localhost:6379"}));

    for (body, yaml) in [(&b""[..], true), (b"null", false), (b"{", false)] {
        let error = parse_document(body, yaml).unwrap_err();
        assert_eq!(error.index, None);
    }
    let two = format!("{}---\n{}", fixtures::REDIS_STATESTORE, fixtures::REDIS_PUBSUB);
    assert!(parse_document(two.as_bytes(), true).is_err());
}

#[test]
fn namespace_and_other_cluster_metadata_are_dropped_and_spec_defaults_to_empty() {
    let document = parse_yaml(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: appconfig\n  namespace: production\n  uid: 1234\n  annotations: {owner: team-a}\nstatus: {}\n",
    );
    assert_eq!(document.metadata.name, "appconfig");
    assert_eq!(document.metadata.annotations, BTreeMap::from([("owner".to_owned(), "team-a".to_owned())]));
    assert_eq!(document.spec, json!({}));
    assert_eq!(document.normalize(fixtures::registry()).unwrap().spec, json!({}));
}

#[test]
fn every_fixture_normalizes_and_normalizing_twice_changes_nothing() {
    for yaml in fixtures::ALL {
        let once = parse_yaml(yaml).normalize(fixtures::registry()).unwrap_or_else(|error| panic!("{error}\n{yaml}"));
        assert_eq!(once.clone().normalize(fixtures::registry()).unwrap(), once, "{yaml}");
    }
}

#[test]
fn v1alpha1_subscription_is_stored_as_v2alpha1() {
    let stored = parse_yaml(fixtures::SUBSCRIPTION_V1).normalize(fixtures::registry()).unwrap();
    assert_eq!(
        render_yaml(&[stored]),
        "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: order-pub-sub\n\
         spec:\n  pubsubname: orderpubsub\n  routes:\n    default: /checkout\n  topic: orders\n\
         scopes:\n- orderprocessing\n- checkout\n"
    );
}

#[test]
fn normalize_refuses_documents_that_break_the_kind_rules() {
    let statestore = || parse_yaml(fixtures::REDIS_STATESTORE);
    let app = || parse_yaml(fixtures::APP_IDENTITY);
    let cases: Vec<(Document, &str)> = vec![
        (Document { api_version: "dapr.io/v2alpha1".into(), ..statestore() }, "apiVersion: 'dapr.io/v2alpha1' is not an apiVersion of Component; use dapr.io/v1alpha1"),
        (Document { api_version: "dapr.io/v1".into(), ..app() }, "apiVersion: 'dapr.io/v1' is not an apiVersion of AppIdentity; use outrigger.io/v1alpha1 or cra.diagrid.io/v1beta1"),
        (Document { metadata: ObjectMeta { name: "State Store".into(), ..ObjectMeta::default() }, ..statestore() }, "metadata.name: 'State Store' contains ' '"),
        (Document { metadata: ObjectMeta { name: "check.out".into(), ..ObjectMeta::default() }, ..app() }, "metadata.name: 'check.out' contains '.'"),
        (Document { scopes: vec!["app1".into(), "App2".into()], ..statestore() }, "scopes[1]: 'App2' contains 'A'"),
        (Document { scopes: vec!["app1".into()], ..app() }, "scopes: AppIdentity documents take no scopes"),
        (Document { scopes: vec!["app1".into()], ..parse_yaml(fixtures::ACCESS_CONTROL) }, "scopes: Configuration documents take no scopes; an App ID picks its configuration with its config field"),
        (Document { auth: Some(json!({"secretStore": "vault"})), ..parse_yaml(fixtures::SUBSCRIPTION_V2) }, "auth: Subscription documents take no auth"),
        (Document { auth: Some(json!({"secretStore": ""})), ..statestore() }, "auth.secretStore: required"),
        (Document { auth: Some(json!({"store": "vault"})), ..statestore() }, "auth.store: unknown key"),
        (Document { spec: json!([]), ..statestore() }, "spec: must be a mapping, found a list"),
    ];
    for (document, expected) in cases {
        let error = document.clone().normalize(fixtures::registry()).expect_err(expected);
        assert!(error.to_string().starts_with(expected), "{error}\nexpected: {expected}");
    }
}

#[test]
fn stored_spec_keeps_unknown_fields_with_sorted_keys() {
    let yaml = "apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {name: api}\n\
                spec: {zeta: {b: 1, a: 2}, baseUrl: 'https://a.example', alpha: [{y: 1, x: 2}]}\n";
    let stored = parse_yaml(yaml).normalize(fixtures::registry()).unwrap();
    assert_eq!(
        serde_json::to_string(&stored.spec).unwrap(),
        r#"{"alpha":[{"x":2,"y":1}],"baseUrl":"https://a.example","zeta":{"a":2,"b":1}}"#
    );
}

#[test]
fn serializes_fields_in_kubernetes_order_and_skips_empty_ones() {
    let stored = parse_yaml(fixtures::HTTP_ENDPOINT).normalize(fixtures::registry()).unwrap();
    let json = serde_json::to_string(&stored).unwrap();
    let positions: Vec<_> = ["\"apiVersion\"", "\"kind\"", "\"metadata\"", "\"spec\"", "\"auth\""]
        .iter()
        .map(|key| json.find(key).unwrap_or_else(|| panic!("{key} missing from {json}")))
        .collect();
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{json}");
    assert!(!json.contains("\"scopes\"") && !json.contains("\"annotations\"") && !json.contains("\"labels\""));
    let round_trip: Document = serde_json::from_str(&json).unwrap();
    assert_eq!(round_trip, stored);
}

#[test]
fn render_is_stable_and_separates_documents() {
    let documents: Vec<Document> =
        fixtures::ALL.iter().map(|yaml| parse_yaml(yaml).normalize(fixtures::registry()).unwrap()).collect();
    let rendered = render_yaml(&documents);
    assert_eq!(rendered, render_yaml(&documents.clone()));
    assert_eq!(rendered.matches("---\n").count(), documents.len() - 1);
    assert_eq!(parse_documents(&rendered).unwrap(), documents);
    assert_eq!(render_yaml(&[]), "");
    assert_eq!(
        render_yaml(&documents[..1]),
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: statestore\nspec:\n  metadata:\n  \
         - name: redisHost\n    value: localhost:6379\n  - name: redisPassword\n    value: ''\n  \
         - name: actorStateStore\n    value: 'true'\n  type: state.redis\n  version: v1\n"
    );
}

#[test]
fn render_explains_withheld_values() {
    let exported =
        parse_yaml(fixtures::HTTP_ENDPOINT).normalize(fixtures::registry()).unwrap().for_export(fixtures::registry());
    let rendered = render_yaml(&[parse_yaml(fixtures::REDIS_PUBSUB), exported]);
    let second = rendered.split("---\n").nth(1).unwrap();
    assert!(
        second.starts_with(
            "# Values withheld by export: spec.headers.Authorization.\n\
         # Supply them (or turn them into secretKeyRefs) before using this document elsewhere;\n"
        ),
        "{second}"
    );
    assert!(second.contains("outrigger.io/withheld: spec.headers.Authorization\n"), "{second}");
}

struct Catalog {
    app_ids: BTreeSet<&'static str>,
    components: BTreeMap<&'static str, &'static str>,
    configurations: BTreeSet<&'static str>,
}

impl ProjectCatalog for Catalog {
    fn app_id_exists(&self, name: &str) -> bool {
        self.app_ids.contains(name)
    }
    fn component_type(&self, name: &str) -> Option<String> {
        self.components.get(name).map(|type_name| (*type_name).to_owned())
    }
    fn configuration_exists(&self, name: &str) -> bool {
        self.configurations.contains(name)
    }
}

fn project() -> Catalog {
    Catalog {
        app_ids: BTreeSet::from(["app1", "app2", "checkout", "orderprocessing"]),
        components: BTreeMap::from([
            ("orderpubsub", "pubsub.redis"),
            ("pubsub", "pubsub.outrigger"),
            ("statestore", "state.redis"),
            ("my-secretstore", "secretstores.local.file"),
        ]),
        configurations: BTreeSet::from(["appconfig"]),
    }
}

#[test]
fn references_that_resolve_pass() {
    for yaml in fixtures::ALL {
        let document = parse_yaml(yaml).normalize(fixtures::registry()).unwrap();
        assert_eq!(document.check_references(fixtures::registry(), &project()), Ok(()), "{yaml}");
    }
    let mut managed = parse_yaml(fixtures::SUBSCRIPTION_V2).normalize(fixtures::registry()).unwrap();
    managed.spec["pubsubname"] = json!("pubsub");
    assert_eq!(managed.check_references(fixtures::registry(), &project()), Ok(()));
}

#[test]
fn references_that_do_not_resolve_say_what_to_create() {
    let subscription = || parse_yaml(fixtures::SUBSCRIPTION_V2).normalize(fixtures::registry()).unwrap();
    let mut unknown_scope = subscription();
    unknown_scope.scopes.push("billing".into());
    let mut missing_pubsub = subscription();
    missing_pubsub.spec["pubsubname"] = json!("events");
    let mut state_as_pubsub = subscription();
    state_as_pubsub.spec["pubsubname"] = json!("statestore");
    let mut missing_config = parse_yaml(fixtures::APP_IDENTITY).normalize(fixtures::registry()).unwrap();
    missing_config.spec["config"] = json!("tracing");
    let with_secret_store = |store: &str| {
        let mut component = parse_yaml(fixtures::REDIS_STATESTORE).normalize(fixtures::registry()).unwrap();
        component.auth = Some(json!({"secretStore": store}));
        component
    };
    assert_eq!(with_secret_store("my-secretstore").check_references(fixtures::registry(), &project()), Ok(()));
    let cases = [
        (unknown_scope, "scopes[2]: App ID 'billing' does not exist in this project; create it first or remove it from scopes"),
        (missing_pubsub, "spec.pubsubname: there is no component 'events' in this project; create a pubsub.* component first"),
        (state_as_pubsub, "spec.pubsubname: component 'statestore' has type state.redis, which is not a pubsub component; name a pubsub.* component"),
        (with_secret_store("secrets"), "auth.secretStore: there is no component 'secrets' in this project; create a secretstores.* component first"),
        (with_secret_store("statestore"), "auth.secretStore: component 'statestore' has type state.redis, which is not a secretstores component; name a secretstores.* component"),
        (missing_config, "spec.config: Configuration 'tracing' does not exist in this project; create it first or leave config out"),
    ];
    for (document, expected) in cases {
        assert_eq!(document.check_references(fixtures::registry(), &project()).unwrap_err().to_string(), expected);
    }
}
