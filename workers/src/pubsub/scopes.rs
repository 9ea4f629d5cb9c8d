//! Dapr's topic scoping metadata of a pub/sub component: `publishingScopes`, `subscriptionScopes`,
//! `allowedTopics` and `protectedTopics` (daprd `pkg/runtime/pubsub/pubsub.go`, docs "Scope topic access").

use std::collections::{BTreeMap, BTreeSet};

/// Per-app topic lists from `app1=t1,t2;app2=;...`: an app listed may use only its topics (none when
/// empty); an app not listed is not restricted by this list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct AppTopics(BTreeMap<String, BTreeSet<String>>);

impl AppTopics {
    fn parse(value: Option<&str>) -> AppTopics {
        let mut apps = BTreeMap::new();
        for entry in value.unwrap_or_default().split(';').map(str::trim).filter(|entry| !entry.is_empty()) {
            let (app, topics) = entry.split_once('=').unwrap_or((entry, ""));
            let topics = topics.split(',').map(str::trim).filter(|topic| !topic.is_empty()).map(str::to_owned);
            apps.entry(app.trim().to_owned()).or_insert_with(BTreeSet::new).extend(topics);
        }
        AppTopics(apps)
    }

    fn grants(&self, app: &str, topic: &str) -> Option<bool> {
        self.0.get(app).map(|topics| topics.contains(topic))
    }
}

fn topic_set(value: Option<&str>) -> BTreeSet<String> {
    value.unwrap_or_default().split(',').map(str::trim).filter(|topic| !topic.is_empty()).map(str::to_owned).collect()
}

/// Which App IDs may publish or subscribe to which topics of one component.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicScopes {
    publishing: AppTopics,
    subscription: AppTopics,
    allowed: BTreeSet<String>,
    protected: BTreeSet<String>,
}

/// Publishing or subscribing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Publishing to the topic.
    Publish,
    /// Subscribing to the topic.
    Subscribe,
}

impl TopicScopes {
    /// Reads the component's metadata (name -> text).
    pub fn from_metadata(metadata: &BTreeMap<String, String>) -> TopicScopes {
        let field = |name: &str| metadata.get(name).map(String::as_str);
        TopicScopes {
            publishing: AppTopics::parse(field("publishingScopes")),
            subscription: AppTopics::parse(field("subscriptionScopes")),
            allowed: topic_set(field("allowedTopics")),
            protected: topic_set(field("protectedTopics")),
        }
    }

    /// Whether `app` may `access` `topic`.
    pub fn permits(&self, access: Access, app: &str, topic: &str) -> bool {
        let scopes = match access {
            Access::Publish => &self.publishing,
            Access::Subscribe => &self.subscription,
        };
        if !self.allowed.is_empty() && !self.allowed.contains(topic) && !self.protected.contains(topic) {
            return false;
        }
        match scopes.grants(app, topic) {
            Some(granted) => granted,
            // Protected topics need an explicit grant; others are open to apps the scopes do not list.
            None => !self.protected.contains(topic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(fields: &[(&str, &str)]) -> TopicScopes {
        TopicScopes::from_metadata(&fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn no_metadata_permits_everything() {
        let open = scopes(&[]);
        assert!(open.permits(Access::Publish, "any", "t"));
        assert!(open.permits(Access::Subscribe, "any", "t"));
    }

    #[test]
    fn scoping_rules_as_dapr_documents_them() {
        let rules = scopes(&[
            ("publishingScopes", "app1=topic1;app2=topic2,topic3;app3="),
            ("subscriptionScopes", "app2=;app3=topic1"),
        ]);
        let cases = [
            (Access::Publish, "app1", "topic1", true),
            (Access::Publish, "app1", "topic2", false),
            (Access::Publish, "app2", "topic3", true),
            (Access::Publish, "app3", "topic1", false),
            (Access::Publish, "unlisted", "topic9", true),
            (Access::Subscribe, "app2", "topic2", false),
            (Access::Subscribe, "app3", "topic1", true),
            (Access::Subscribe, "app3", "topic2", false),
            (Access::Subscribe, "app1", "topic2", true),
        ];
        for (access, app, topic, expected) in cases {
            assert_eq!(rules.permits(access, app, topic), expected, "{access:?} {app} {topic}");
        }
    }

    #[test]
    fn allowed_and_protected_topics() {
        let rules = scopes(&[
            ("allowedTopics", "orders, refunds"),
            ("protectedTopics", "audit"),
            ("publishingScopes", "auditor=audit,orders"),
            ("subscriptionScopes", "auditor=audit"),
        ]);
        let cases = [
            (Access::Publish, "shop", "orders", true),
            (Access::Publish, "shop", "payments", false),
            (Access::Publish, "shop", "audit", false),
            (Access::Publish, "auditor", "audit", true),
            (Access::Subscribe, "auditor", "audit", true),
            (Access::Subscribe, "auditor", "orders", false),
            (Access::Subscribe, "shop", "audit", false),
        ];
        for (access, app, topic, expected) in cases {
            assert_eq!(rules.permits(access, app, topic), expected, "{access:?} {app} {topic}");
        }
    }
}
