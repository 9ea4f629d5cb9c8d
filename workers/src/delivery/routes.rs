//! What a subscription declares: which topic, where events go (CEL rules, then a default path), the
//! dead-letter topic, and whether payloads are raw. Declarative (`Subscription` documents) and programmatic
//! (`GET /dapr/subscribe`) subscriptions both become a [`SubscriptionSpec`].

use outrigger_cel::Program;
use serde::Deserialize;
use serde_json::{Map, Value};

/// One routing rule: the first whose `match` is true picks the path.
pub struct Rule {
    /// The CEL condition over `event`.
    pub condition: Program,
    /// The app path to POST to.
    pub path: String,
}

/// A subscription of one app to one topic.
pub struct SubscriptionSpec {
    /// Pub/sub component name.
    pub pubsub: String,
    /// Topic.
    pub topic: String,
    /// Rules in order.
    pub rules: Vec<Rule>,
    /// Path when no rule matches (none: such events are dropped).
    pub default_path: Option<String>,
    /// Where undeliverable events go.
    pub dead_letter_topic: Option<String>,
    /// Events are the publisher's bytes, not CloudEvents (`rawPayload` metadata).
    pub raw_payload: bool,
    /// Deliver in batches (`bulkSubscribe.enabled`).
    pub bulk: Option<BulkSettings>,
    /// Kind shown in `/v1.0/metadata`.
    pub origin: Origin,
}

/// Batching of a bulk subscription (daprd's defaults: 100 messages, 1 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BulkSettings {
    /// Most messages in one batch.
    pub max_messages: usize,
    /// Longest wait for a batch to fill.
    pub max_await: std::time::Duration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkIn {
    #[serde(default)]
    enabled: bool,
    max_messages_count: Option<usize>,
    max_await_duration_ms: Option<u64>,
}

/// How a subscription was declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A `Subscription` document.
    Declarative,
    /// The app's `GET /dapr/subscribe`.
    Programmatic,
}

impl SubscriptionSpec {
    /// The path an event goes to, or `None` when no rule matches and there is no default.
    ///
    /// A rule whose condition cannot be evaluated for this event (e.g. it reads a field the event lacks)
    /// does not match; the next rule is tried.
    pub fn route(&self, event: &Map<String, Value>) -> Option<&str> {
        if self.rules.is_empty() {
            return self.default_path.as_deref();
        }
        let variables = crate::pubsub::cloudevent::match_variables(event);
        self.rules
            .iter()
            .find(|rule| rule.condition.evaluate(&variables).unwrap_or(false))
            .map(|rule| rule.path.as_str())
            .or(self.default_path.as_deref())
    }
}

#[derive(Deserialize)]
struct RuleIn {
    #[serde(rename = "match", default)]
    condition: String,
    path: String,
}

#[derive(Deserialize)]
struct RoutesIn {
    #[serde(default)]
    rules: Vec<RuleIn>,
    default: Option<String>,
}

/// The shape shared by a v2alpha1 `spec` and an entry of `/dapr/subscribe` (which may use v1's `route`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeclarationIn {
    pubsubname: String,
    topic: String,
    route: Option<String>,
    routes: Option<RoutesIn>,
    dead_letter_topic: Option<String>,
    #[serde(default)]
    metadata: Map<String, Value>,
    bulk_subscribe: Option<BulkIn>,
}

fn normalise_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

impl SubscriptionSpec {
    /// Reads a declaration (a v2alpha1 `spec`, or one entry of `/dapr/subscribe`).
    pub fn from_json(value: &Value, origin: Origin) -> Result<SubscriptionSpec, String> {
        let declared: DeclarationIn = serde_json::from_value(value.clone()).map_err(|err| err.to_string())?;
        let routes = declared.routes.unwrap_or(RoutesIn { rules: Vec::new(), default: None });
        let rules = routes
            .rules
            .into_iter()
            .map(|rule| {
                let condition =
                    Program::parse(&rule.condition).map_err(|err| format!("match '{}': {err}", rule.condition))?;
                Ok(Rule { condition, path: normalise_path(&rule.path) })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let raw_payload = declared.metadata.get("rawPayload").is_some_and(|value| match value {
            Value::String(text) => text.eq_ignore_ascii_case("true"),
            Value::Bool(flag) => *flag,
            _ => false,
        });
        Ok(SubscriptionSpec {
            pubsub: declared.pubsubname,
            topic: declared.topic,
            rules,
            default_path: routes.default.or(declared.route).map(|path| normalise_path(&path)),
            dead_letter_topic: declared.dead_letter_topic.filter(|topic| !topic.is_empty()),
            raw_payload,
            bulk: declared.bulk_subscribe.filter(|bulk| bulk.enabled).map(|bulk| BulkSettings {
                max_messages: bulk.max_messages_count.unwrap_or(100).clamp(1, 1000),
                max_await: std::time::Duration::from_millis(bulk.max_await_duration_ms.unwrap_or(1000)),
            }),
            origin,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn first_matching_rule_wins_then_the_default() {
        let spec = SubscriptionSpec::from_json(
            &json!({
                "pubsubname": "pubsub", "topic": "orders",
                "routes": { "rules": [
                    { "match": "event.type == \"order.created\"", "path": "/created" },
                    { "match": "event.data.priority > 5", "path": "urgent" },
                ], "default": "/orders" },
            }),
            Origin::Declarative,
        )
        .unwrap();
        assert_eq!(spec.route(&event(json!({ "type": "order.created", "data": { "priority": 9 } }))), Some("/created"));
        assert_eq!(spec.route(&event(json!({ "type": "x", "data": { "priority": 9 } }))), Some("/urgent"));
        assert_eq!(spec.route(&event(json!({ "type": "x", "data": { "priority": 1 } }))), Some("/orders"));
        // A rule that reads a missing field does not match.
        assert_eq!(spec.route(&event(json!({ "type": "x", "data": "text" }))), Some("/orders"));
    }

    #[test]
    fn programmatic_v1_route_and_raw_payload() {
        let spec = SubscriptionSpec::from_json(
            &json!({ "pubsubname": "pubsub", "topic": "t", "route": "checkout", "deadLetterTopic": "dead", "metadata": { "rawPayload": "true" } }),
            Origin::Programmatic,
        )
        .unwrap();
        assert_eq!(spec.default_path.as_deref(), Some("/checkout"));
        assert_eq!(spec.dead_letter_topic.as_deref(), Some("dead"));
        assert!(spec.raw_payload);
        let no_default =
            SubscriptionSpec::from_json(&json!({ "pubsubname": "p", "topic": "t" }), Origin::Programmatic).unwrap();
        assert_eq!(no_default.route(&event(json!({}))), None);
    }

    #[test]
    fn bad_declarations_say_why() {
        let refused = |value: Value| SubscriptionSpec::from_json(&value, Origin::Declarative).err().expect("refused");
        assert!(refused(json!({ "topic": "t" })).contains("pubsubname"));
        let bad_rule = json!({ "pubsubname": "p", "topic": "t", "routes": { "rules": [{ "match": "event.type ==", "path": "/x" }] } });
        assert!(refused(bad_rule).contains("match"));
    }
}
