//! The distributed lock API as a worker serves it: the caller's lock store, daprd's checks in daprd's order,
//! daprd's keys, and each store operation under the component's outbound Resiliency policy.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use outrigger_bus::{DataError, TryLock, Unlock, UnlockStatus};
use outrigger_outbound::resiliency;

use super::{LockError, LockStore};
use crate::handler::Scope;
use crate::runtime::LockComponent;

/// What a lock call needs of its store: the component, and the key of the caller's resource in it.
struct Target<'a> {
    scope: &'a Scope<'a>,
    component: &'a LockComponent,
    key: Result<String, String>,
}

/// The lock store `store` of the caller's project with the key of `resource`, after daprd's checks of the
/// resource ID and the owner (`lockValidateRequest`).
fn target<'a>(scope: &'a Scope<'a>, store: &str, resource: &str, owner: &str) -> Result<Target<'a>, DataError> {
    let app_id = &scope.tenant.app_id;
    let mut visible = scope.project.locks.values().filter(|component| component.allows(app_id)).peekable();
    if visible.peek().is_none() {
        return Err(DataError::LockStoresNotConfigured);
    }
    if resource.is_empty() {
        return Err(DataError::LockBadRequest { message: format!("ResourceId is empty in lock store {store}") });
    }
    if owner.is_empty() {
        return Err(DataError::LockBadRequest { message: format!("LockOwner is empty in lock store {store}") });
    }
    let component = visible
        .find(|component| component.name == store)
        .ok_or_else(|| DataError::LockStoreNotFound { store: store.to_owned() })?;
    let key = component.config.key_prefix.key(resource, &component.name, app_id);
    let key = key.map(|key| format!("{}{key}", component.config.namespace));
    Ok(Target { scope, component, key })
}

impl Target<'_> {
    /// Runs `call` with the backend and the key under the component's outbound policy; a failure is the
    /// store's reason, without the project's namespace (the platform's business).
    async fn run<T, Fut>(&self, call: impl Fn(Arc<dyn LockStore>, String) -> Fut) -> Result<T, String>
    where
        Fut: Future<Output = Result<T, LockError>>,
    {
        let backend = self.component.backend.clone()?;
        let key = self.key.clone()?;
        let name = &self.component.name;
        let (policy, breaker) = self.scope.component_policy(name);
        let attempt = || call(Arc::clone(&backend), key.clone());
        let what = format!("lock store {name}");
        let tenant = self.scope.tenant;
        let caller = resiliency::Caller::component(tenant.metric_labels(), "Lock", &self.component.component_type);
        let answer = resiliency::execute_fallible(&policy, breaker.as_deref(), caller, &what, attempt).await;
        answer.map_err(|reason| {
            let namespace = self.component.config.namespace.as_str();
            if namespace.is_empty() {
                reason
            } else {
                reason.replace(namespace, "")
            }
        })
    }
}

/// `TryLockAlpha1`: whether the caller's owner now holds the lock.
pub(crate) async fn try_lock(scope: &Scope<'_>, call: TryLock) -> Result<bool, DataError> {
    let TryLock { store, resource_id, owner, expiry_seconds } = call;
    if expiry_seconds <= 0 {
        return Err(DataError::LockBadRequest {
            message: format!("ExpiryInSeconds is not positive in lock store {store}"),
        });
    }
    let target = target(scope, &store, &resource_id, &owner)?;
    let expiry = Duration::from_secs(expiry_seconds.unsigned_abs().into());
    let owner = owner.as_str();
    target
        .run(|backend, key| async move { backend.try_lock(&key, owner, expiry).await })
        .await
        .map_err(|message| DataError::TryLockFailed { message })
}

/// `UnlockAlpha1`: what releasing the caller's owner's lock found.
pub(crate) async fn unlock(scope: &Scope<'_>, call: Unlock) -> Result<UnlockStatus, DataError> {
    let Unlock { store, resource_id, owner } = call;
    let target = target(scope, &store, &resource_id, &owner)?;
    let owner = owner.as_str();
    target
        .run(|backend, key| async move { backend.unlock(&key, owner).await })
        .await
        .map_err(|message| DataError::UnlockFailed { message })
}
