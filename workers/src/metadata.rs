//! What `/v1.0/metadata` shows of the caller's project: the components it may use (with their capabilities)
//! and its declarative and programmatic subscriptions.

use outrigger_bus::{ComponentInfo, MetadataInfo, SubscriptionInfo, SubscriptionKind};
use serde_json::Value;

use crate::handler::Scope;
use crate::runtime::Component;

/// The caller's components and subscriptions.
pub(crate) fn describe(scope: &Scope<'_>) -> MetadataInfo {
    MetadataInfo { components: components(scope), subscriptions: subscriptions(scope) }
}

fn components(scope: &Scope<'_>) -> Vec<ComponentInfo> {
    fn info<B: ?Sized, C>(component: &Component<B, C>, capabilities: Vec<String>) -> ComponentInfo {
        ComponentInfo {
            name: component.name.clone(),
            component_type: component.component_type.clone(),
            version: component.version.clone(),
            capabilities,
        }
    }
    let (project, app_id) = (scope.project, &scope.tenant.app_id);
    let stores = project.state.values().filter(|c| c.allows(app_id)).map(|component| {
        let capabilities = match &component.backend {
            Ok(store) => store.features().capabilities().into_iter().map(str::to_owned).collect(),
            Err(_) => Vec::new(),
        };
        info(component.as_ref(), capabilities)
    });
    let brokers = project.pubsub.values().filter(|c| c.allows(app_id)).map(|c| info(c.as_ref(), Vec::new()));
    let secret_stores = project.secrets.values().filter(|c| c.allows(app_id)).map(|component| {
        let capabilities = component.backend.as_ref().map(|store| store.capabilities()).unwrap_or_default();
        info(component.as_ref(), capabilities)
    });
    // The managed `kvstore` serves locks too; it is listed once, as the state store it is.
    let locks = project.locks.values().filter(|c| c.allows(app_id) && !project.state.contains_key(&c.name));
    let locks = locks.map(|component| info(component.as_ref(), Vec::new()));
    let configuration = project.configuration.values().filter(|c| c.allows(app_id));
    let configuration = configuration.map(|component| info(component.as_ref(), Vec::new()));
    let bindings = project.bindings.values().filter(|c| c.allows(app_id)).map(|c| info(c.as_ref(), Vec::new()));
    stores.chain(brokers).chain(secret_stores).chain(locks).chain(configuration).chain(bindings).collect()
}

fn subscriptions(scope: &Scope<'_>) -> Vec<SubscriptionInfo> {
    let tenant = scope.tenant;
    let declarative = scope
        .project
        .subscriptions
        .iter()
        .filter(|document| document.applies_to(&tenant.app_id))
        .filter_map(|document| subscription_info(&document.spec, SubscriptionKind::Declarative));
    let asked = scope
        .worker
        .runtime
        .programmatic(tenant.project_id.as_str(), &tenant.app_id)
        .map(|answer| answer.entries)
        .unwrap_or_default();
    let programmatic = asked.iter().filter_map(|entry| subscription_info(entry, SubscriptionKind::Programmatic));
    declarative.chain(programmatic).collect()
}

/// A subscription declaration (v2alpha1 spec or `/dapr/subscribe` entry) as metadata lists it.
fn subscription_info(declaration: &Value, kind: SubscriptionKind) -> Option<SubscriptionInfo> {
    let text = |value: Option<&Value>| value.and_then(|v| v.as_str()).map(str::to_owned);
    let routes = declaration.get("routes");
    let mut rules: Vec<(String, String)> = routes
        .and_then(|routes| routes.get("rules"))
        .and_then(|rules| rules.as_array())
        .map(|rules| {
            let rule = |r: &Value| Some((text(r.get("match")).unwrap_or_default(), text(r.get("path"))?));
            rules.iter().filter_map(rule).collect()
        })
        .unwrap_or_default();
    if let Some(default) =
        text(routes.and_then(|routes| routes.get("default"))).or_else(|| text(declaration.get("route")))
    {
        rules.push((String::new(), default));
    }
    Some(SubscriptionInfo {
        pubsub: text(declaration.get("pubsubname"))?,
        topic: text(declaration.get("topic"))?,
        rules,
        dead_letter_topic: text(declaration.get("deadLetterTopic")).filter(|topic| !topic.is_empty()),
        kind,
    })
}
