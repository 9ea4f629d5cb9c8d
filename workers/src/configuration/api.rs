//! The configuration API as a worker serves it: the caller's configuration store, reads under the component's
//! outbound Resiliency policy, and the waits of subscriptions.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use outrigger_bus::{DataError, GetConfiguration, WatchConfiguration};
use outrigger_outbound::resiliency;

use super::{differences, ConfigurationError, ConfigurationStore, Items};
use crate::handler::Scope;

/// The longest one wait may last, whatever the caller asks: well within the bus's answer timeout.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// The configuration store `store` of the caller's project, if the caller may use it, and its type.
fn target<'s>(scope: &'s Scope<'_>, store: &str) -> Result<(Arc<dyn ConfigurationStore>, &'s str), DataError> {
    let app_id = &scope.tenant.app_id;
    let visible = || scope.project.configuration.values().filter(|component| component.allows(app_id));
    let Some(component) = visible().find(|component| component.name == store) else {
        return Err(if visible().next().is_none() {
            DataError::ConfigurationStoresNotConfigured
        } else {
            DataError::ConfigurationStoreNotFound { store: store.to_owned() }
        });
    };
    let backend = component.backend.clone().map_err(|reason| DataError::ConfigurationGet { message: reason })?;
    Ok((backend, &component.component_type))
}

/// Keys as Go prints a string slice, as daprd's messages quote them: `[a b]`.
fn go_list(keys: &[String]) -> String {
    format!("[{}]", keys.join(" "))
}

/// Runs `call` under the outbound policy of the component `store` (of type `spec_type`); a failure is the store's
/// reason.
async fn run<T, Fut>(
    scope: &Scope<'_>,
    (store, spec_type): (&str, &str),
    call: impl FnMut() -> Fut,
) -> Result<T, String>
where
    Fut: Future<Output = Result<T, ConfigurationError>>,
{
    let (policy, breaker) = scope.component_policy(store);
    let caller = resiliency::Caller::component(scope.tenant.metric_labels(), "Configuration", spec_type);
    resiliency::execute_fallible(&policy, breaker.as_deref(), caller, &format!("configuration store {store}"), call)
        .await
}

/// `GetConfiguration`: the items of the keys asked for that have a value.
pub(crate) async fn get(scope: &Scope<'_>, call: GetConfiguration) -> Result<Items, DataError> {
    let GetConfiguration { store, keys, metadata: _ } = call;
    let (backend, spec_type) = target(scope, &store)?;
    run(scope, (&store, spec_type), || backend.get(&keys)).await.map_err(|reason| DataError::ConfigurationGet {
        message: format!("failed to get {} from Configuration store {store}: {reason}", go_list(&keys)),
    })
}

/// `WatchConfiguration`: listens first, then compares what the store holds with what the caller saw, so a
/// change made at any moment after the caller's last look is answered, at once or when it is heard.
pub(crate) async fn watch(scope: &Scope<'_>, call: WatchConfiguration) -> Result<Items, DataError> {
    let WatchConfiguration { store, keys, seen, wait_ms, metadata } = call;
    let failed = |reason: String| DataError::ConfigurationSubscribe {
        message: format!("failed to subscribe {} from Configuration store {store}: {reason}", go_list(&keys)),
    };
    let (backend, spec_type) = target(scope, &store)?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms).min(MAX_WAIT);
    let mut listener = backend.listen(&keys, &metadata).await.map_err(|err| failed(err.to_string()))?;
    loop {
        let current = run(scope, (&store, spec_type), || backend.get(&keys)).await.map_err(failed)?;
        let changes = differences(&seen, &current);
        if !changes.is_empty() {
            return Ok(changes);
        }
        match tokio::time::timeout_at(deadline, listener.changed()).await {
            Err(_elapsed) => return Ok(Items::new()),
            Ok(Err(err)) => return Err(failed(err.to_string())),
            Ok(Ok(())) => {}
        }
    }
}
