//! The state API as a worker serves it: find the store the caller may use, build stored keys the way Dapr
//! does, run each store operation under the component's outbound Resiliency policy, and turn failures into
//! [`DataError`]s.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use outrigger_bus::{
    BulkStateItem, Concurrency, DataError, DeleteItem, DeleteState, ExecuteTransaction, GetBulkState, GetState,
    Metadata, SaveItem, SaveState, StateOperation, StateValue, Tenant, TransactionOperation,
};
use outrigger_outbound::resiliency::{self, Breaker, Failure, Outcome, Policy};

use crate::handler::Scope;
use crate::runtime::{KeyPrefix, StateComponent};
use crate::state::{self, StateError, StateStore, StoredItem};

/// Daprd's separator between a key prefix and the key; keys may not contain it.
pub(crate) const KEY_SEPARATOR: &str = "||";

/// Daprd's metadata key for a TTL, and the one it answers with.
const TTL_SECONDS: &str = "ttlInSeconds";
const TTL_EXPIRE_TIME: &str = "ttlExpireTime";

pub(crate) fn bad_request(operation: StateOperation, message: impl Into<String>) -> DataError {
    DataError::BadRequest { operation, message: message.into() }
}

/// The key `key` is stored under: the component's namespace, then daprd's `keyPrefix` scheme for the
/// `(project, App ID)` calling through component `component`, then the key; written into one string sized once,
/// as a state call builds one key or several.
fn stored_key_of(
    namespace: &str,
    key_prefix: &KeyPrefix,
    (project, app_id): (&str, &str),
    component: &str,
    key: &str,
) -> String {
    let scheme: [&str; 4] = match key_prefix {
        KeyPrefix::AppId => [app_id, "", "", KEY_SEPARATOR],
        KeyPrefix::ComponentName => [component, "", "", KEY_SEPARATOR],
        KeyPrefix::Namespace => [project, ".", app_id, KEY_SEPARATOR],
        KeyPrefix::None => ["", "", "", ""],
        KeyPrefix::Custom(custom) => [custom, "", "", KEY_SEPARATOR],
    };
    let parts = [namespace, scheme[0], scheme[1], scheme[2], scheme[3], key];
    let mut stored = String::with_capacity(parts.iter().map(|part| part.len()).sum());
    parts.iter().for_each(|part| stored.push_str(part));
    stored
}

/// A state component of the calling app's project, resolved once per call.
pub(crate) struct Target<'a> {
    pub(crate) tenant: &'a Tenant,
    pub(crate) component: Arc<StateComponent>,
    pub(crate) store: Arc<dyn StateStore>,
    /// The component's outbound Resiliency policy, its timeout defaulting to the store timeout.
    policy: Policy,
    breaker: Option<Arc<Breaker>>,
}

impl Target<'_> {
    /// Everything before the app's key in a stored key.
    pub(crate) fn prefix(&self) -> String {
        self.key_with_prefix("")
    }

    /// `key` after its prefix.
    fn key_with_prefix(&self, key: &str) -> String {
        let component = &self.component;
        let config = &component.config;
        let tenant = (&*self.tenant.project, &*self.tenant.app_id);
        stored_key_of(&config.namespace, &config.key_prefix, tenant, &component.name, key)
    }

    fn stored_key(&self, operation: StateOperation, key: &str) -> Result<String, DataError> {
        if key.is_empty() {
            return Err(bad_request(operation, "key is empty: every state item needs a key"));
        }
        if key.contains(KEY_SEPARATOR) {
            return Err(bad_request(operation, format!("input key/keyPrefix '{key}' can't contain '{KEY_SEPARATOR}'")));
        }
        Ok(self.key_with_prefix(key))
    }

    /// Refuses writes putting `puts` (stored keys and values) when they would take the project past its
    /// stored-bytes quota; components without one admit everything.
    async fn admit<'k>(
        &self,
        operation: StateOperation,
        puts: impl Iterator<Item = (&'k str, &'k [u8])>,
    ) -> Result<(), DataError> {
        let Some(quota) = &self.component.config.quota else { return Ok(()) };
        let (store, component_type) = (self.store.as_ref(), self.component.component_type.as_str());
        quota.admit(store, component_type, self.timeout(), operation, &puts.collect::<Vec<_>>()).await
    }

    /// Items were deleted: room the stored-bytes quota's estimate does not know of.
    fn deleted(&self) {
        if let Some(quota) = &self.component.config.quota {
            quota.deleted();
        }
    }

    /// How long one store operation may take.
    pub(crate) fn timeout(&self) -> Duration {
        self.policy.timeout.unwrap_or_default()
    }

    /// Runs one store operation under the component's outbound policy: within its timeout, retried as it
    /// says when the store fails (not when it refuses the request), and not at all while its breaker is open.
    pub(crate) async fn run<T, Fut>(
        &self,
        operation: StateOperation,
        describe: impl FnOnce(&str) -> String,
        call: impl FnMut() -> Fut,
    ) -> Result<T, DataError>
    where
        Fut: Future<Output = Result<T, StateError>>,
    {
        let judge =
            |result: &Result<T, StateError>| matches!(result, Err(StateError::Backend(_))).then_some(Failure::Error);
        let caller =
            resiliency::Caller::component(self.tenant.metric_labels(), "Statestore", &self.component.component_type);
        let outcome = match resiliency::execute(&self.policy, self.breaker.as_deref(), caller, call, judge).await {
            Outcome::Finished(result) => result,
            Outcome::TimedOut(after) => Err(StateError::Backend(format!("the store did not answer within {after:?}"))),
            Outcome::CircuitOpen => Err(StateError::Backend("circuit breaker is open".to_owned())),
        };
        outcome.map_err(|err| self.hide_namespace(state_error(operation, describe(&self.component.name), err)))
    }

    /// Store messages may quote stored keys; the project namespace inside them is the platform's business.
    fn hide_namespace(&self, err: DataError) -> DataError {
        let namespace = &self.component.config.namespace;
        if namespace.is_empty() {
            return err;
        }
        match err {
            DataError::EtagMismatch { operation, message } => {
                DataError::EtagMismatch { operation, message: message.replace(namespace, "") }
            }
            DataError::EtagInvalid { operation, message } => {
                DataError::EtagInvalid { operation, message: message.replace(namespace, "") }
            }
            DataError::BadRequest { operation, message } => {
                DataError::BadRequest { operation, message: message.replace(namespace, "") }
            }
            DataError::StoreFailure { operation, message } => {
                DataError::StoreFailure { operation, message: message.replace(namespace, "") }
            }
            other => other,
        }
    }
}

/// Daprd's wording: "<what failed>: <why>".
fn state_error(operation: StateOperation, context: String, err: StateError) -> DataError {
    let message = format!("{context}: {err}");
    match err {
        StateError::EtagMismatch(_) => DataError::EtagMismatch { operation, message },
        StateError::EtagInvalid(_) => DataError::EtagInvalid { operation, message },
        StateError::Unsupported(_) => DataError::NotSupported { message },
        StateError::InvalidRequest(_) => DataError::BadRequest { operation, message },
        StateError::Backend(_) => DataError::StoreFailure { operation, message },
    }
}

fn ttl_seconds(operation: StateOperation, metadata: &Metadata) -> Result<Option<u64>, DataError> {
    let Some(text) = metadata.get(TTL_SECONDS) else { return Ok(None) };
    match text.trim().parse::<i64>() {
        Ok(-1) => Ok(None),
        Ok(seconds) if seconds > 0 => Ok(Some(seconds as u64)),
        _ => Err(bad_request(
            operation,
            format!("incorrect value for metadata {TTL_SECONDS}: '{text}' (use a positive number of seconds, or -1 for no expiry)"),
        )),
    }
}

fn non_empty(etag: &Option<String>) -> Option<String> {
    etag.clone().filter(|etag| !etag.is_empty())
}

fn concurrency(value: Concurrency) -> state::Concurrency {
    match value {
        Concurrency::FirstWrite => state::Concurrency::FirstWrite,
        Concurrency::LastWrite => state::Concurrency::LastWrite,
    }
}

fn value_of(item: StoredItem) -> StateValue {
    let mut metadata = Metadata::new();
    if let Some(expires_at) = item.expires_at.and_then(chrono::DateTime::from_timestamp_millis) {
        metadata.insert(TTL_EXPIRE_TIME.to_owned(), expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    StateValue { data: item.value, etag: item.etag, metadata }
}

impl Target<'_> {
    fn set_request(&self, operation: StateOperation, item: SaveItem) -> Result<state::SetRequest, DataError> {
        Ok(state::SetRequest {
            key: self.stored_key(operation, &item.key)?,
            ttl_seconds: ttl_seconds(operation, &item.metadata)?,
            value: item.value,
            etag: non_empty(&item.etag),
            concurrency: concurrency(item.concurrency),
        })
    }

    fn delete_request(&self, operation: StateOperation, item: &DeleteItem) -> Result<state::DeleteRequest, DataError> {
        Ok(state::DeleteRequest {
            key: self.stored_key(operation, &item.key)?,
            etag: non_empty(&item.etag),
            concurrency: concurrency(item.concurrency),
        })
    }
}

/// The component `store` of the caller's project, if the caller may use it.
pub(crate) fn target<'a>(scope: &Scope<'a>, store: &str, operation: StateOperation) -> Result<Target<'a>, DataError> {
    let (project, tenant) = (scope.project, scope.tenant);
    let visible = || project.state.values().filter(|component| component.allows(&tenant.app_id));
    let Some(component) = visible().find(|component| component.name == store) else {
        return Err(if visible().next().is_none() {
            DataError::StoresNotConfigured
        } else {
            DataError::StoreNotFound { store: store.to_owned() }
        });
    };
    let store = component.backend.clone().map_err(|reason| DataError::StoreFailure {
        operation,
        message: format!("state store {}: {reason}", component.name),
    })?;
    let (policy, breaker) = scope.component_policy(&component.name);
    Ok(Target { tenant, component: Arc::clone(component), store, policy, breaker })
}

/// `GetState`.
pub(crate) async fn get(scope: &Scope<'_>, GetState { store, key }: GetState) -> Result<Option<StateValue>, DataError> {
    let target = target(scope, &store, StateOperation::Get)?;
    let stored = target.stored_key(StateOperation::Get, &key)?;
    let found = target
        .run(
            StateOperation::Get,
            |store| format!("fail to get {key} from state store {store}"),
            || target.store.get(&stored),
        )
        .await?;
    Ok(found.map(value_of))
}

/// `GetBulkState`: one store round trip under the same policy as a single read. Keys the store could not
/// read are reported one by one; a store that could read none fails the call, as daprd's does.
pub(crate) async fn bulk_get(
    scope: &Scope<'_>,
    GetBulkState { store, keys }: GetBulkState,
) -> Result<Vec<BulkStateItem>, DataError> {
    let operation = StateOperation::BulkGet;
    let target = target(scope, &store, operation)?;
    let max_keys = scope.worker.limits.max_bulk_keys;
    if keys.len() > max_keys {
        return Err(bad_request(operation, format!("{} keys requested; at most {max_keys} per bulk get", keys.len())));
    }
    let stored: Vec<String> = keys.iter().map(|key| target.stored_key(operation, key)).collect::<Result<_, _>>()?;
    let answers = target
        .run(
            operation,
            |store| format!("failed getting state in state store {store}"),
            || async {
                let answers = target.store.bulk_get(&stored).await;
                match answers.iter().find_map(|answer| answer.as_ref().err()) {
                    Some(StateError::Backend(reason)) if answers.iter().all(Result::is_err) => {
                        Err(StateError::Backend(reason.clone()))
                    }
                    _ => Ok(answers),
                }
            },
        )
        .await?;
    let items = keys
        .into_iter()
        .zip(answers)
        .map(|(key, answer)| match answer {
            Ok(found) => BulkStateItem { key, value: found.map(value_of), error: None },
            Err(err) => BulkStateItem { key, value: None, error: Some(err.to_string()) },
        })
        .collect();
    Ok(items)
}

/// `SaveState`.
pub(crate) async fn save(scope: &Scope<'_>, SaveState { store, items }: SaveState) -> Result<(), DataError> {
    let target = target(scope, &store, StateOperation::Save)?;
    save_items(scope, &target, items).await
}

/// `DeleteState` (and bulk delete).
pub(crate) async fn delete(scope: &Scope<'_>, DeleteState { store, items }: DeleteState) -> Result<(), DataError> {
    let target = target(scope, &store, StateOperation::Delete)?;
    let operation = if items.len() > 1 { StateOperation::BulkDelete } else { StateOperation::Delete };
    for item in &items {
        let request = target.delete_request(operation, item)?;
        let key = &item.key;
        let deleting = target.run(
            operation,
            |_| format!("failed deleting state with key {key}"),
            || target.store.delete(&request),
        );
        deleting.await?;
        target.deleted();
    }
    Ok(())
}

/// `ExecuteStateTransaction`.
pub(crate) async fn transact(
    scope: &Scope<'_>,
    ExecuteTransaction { store, operations }: ExecuteTransaction,
) -> Result<(), DataError> {
    let operation = StateOperation::Transaction;
    let target = target(scope, &store, operation)?;
    if !target.store.features().transactional {
        return Err(DataError::NotSupported { message: format!("state store {store} doesn't support transaction") });
    }
    let limit = scope.worker.limits.max_transaction_operations;
    if operations.len() > limit {
        return Err(DataError::TooManyOperations { count: operations.len(), limit });
    }
    let mut requests = Vec::with_capacity(operations.len());
    for op in operations {
        requests.push(match op {
            TransactionOperation::Upsert(item) => {
                state::TransactionOperation::Upsert(target.set_request(operation, item)?)
            }
            TransactionOperation::Delete(item) => {
                state::TransactionOperation::Delete(target.delete_request(operation, &item)?)
            }
        });
    }
    let puts = requests.iter().filter_map(|request| match request {
        state::TransactionOperation::Upsert(set) => Some((set.key.as_str(), set.value.as_slice())),
        state::TransactionOperation::Delete(_) => None,
    });
    target.admit(operation, puts).await?;
    target
        .run(operation, |_| "error while executing state transaction".to_owned(), || target.store.transact(&requests))
        .await?;
    if requests.iter().any(|request| matches!(request, state::TransactionOperation::Delete(_))) {
        target.deleted();
    }
    Ok(())
}

/// Writes items one by one; every item is attempted and the failures are reported together, naming
/// their keys (daprd's bulk-set semantics: the successful ones stay written).
async fn save_items(scope: &Scope<'_>, target: &Target<'_>, items: Vec<SaveItem>) -> Result<(), DataError> {
    let operation = StateOperation::Save;
    if items.len() > scope.worker.limits.max_transaction_operations {
        return Err(bad_request(
            operation,
            format!("{} items in one save; at most {}", items.len(), scope.worker.limits.max_transaction_operations),
        ));
    }
    let requests: Vec<state::SetRequest> =
        items.into_iter().map(|item| target.set_request(operation, item)).collect::<Result<_, _>>()?;
    target.admit(operation, requests.iter().map(|request| (request.key.as_str(), request.value.as_slice()))).await?;
    let mut failures = Vec::new();
    for request in &requests {
        let app_key = request.key.strip_prefix(&target.prefix()).unwrap_or(&request.key).to_owned();
        if let Err(err) = target
            .run(operation, |store| format!("failed saving state in state store {store}"), || target.store.set(request))
            .await
        {
            failures.push((app_key, err));
        }
    }
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0).1),
        _ => {
            let all_etag = failures.iter().all(|(_, err)| matches!(err, DataError::EtagMismatch { .. }));
            let message = failures.iter().map(|(key, err)| format!("key {key}: {err}")).collect::<Vec<_>>().join("; ");
            Err(if all_etag {
                DataError::EtagMismatch { operation, message }
            } else {
                DataError::StoreFailure { operation, message }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_keys_follow_daprds_key_prefix_strategies() {
        let stored = |prefix: KeyPrefix| stored_key_of("ns/", &prefix, ("shop", "orders"), "statestore", "k1");
        assert_eq!(stored(KeyPrefix::AppId), "ns/orders||k1");
        assert_eq!(stored(KeyPrefix::ComponentName), "ns/statestore||k1");
        assert_eq!(stored(KeyPrefix::Namespace), "ns/shop.orders||k1");
        assert_eq!(stored(KeyPrefix::None), "ns/k1");
        assert_eq!(stored(KeyPrefix::Custom("tenant-a".into())), "ns/tenant-a||k1");
        assert_eq!(stored_key_of("", &KeyPrefix::AppId, ("shop", "orders"), "statestore", ""), "orders||");
    }
}
