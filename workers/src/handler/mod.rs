//! The worker's answer to each call: find the component the caller may use, build stored keys the way
//! Dapr does, run the store operation under a timeout, and turn failures into [`DataError`]s.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use outrigger_bus::{
    BulkStateItem, Call, ComponentInfo, Concurrency, DataError, DeleteItem, Envelope, Handler, Metadata, MetadataInfo,
    Reply, SaveItem, StateOperation, StateValue, SubscriptionInfo, SubscriptionKind, Tenant, TransactionOperation,
};

mod publish;
mod query;
mod secrets;
mod stream;

pub use query::QueryLimits;

use outrigger_outbound::resiliency::{self, Breaker, Breakers, Failure, Outcome, Policy};

use crate::runtime::{Component, KeyPrefix, ProjectComponents, Runtime, StateComponent};
use crate::state::{self, StateError, StateStore, StoredItem};

/// Limits that keep one request from monopolising a worker.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most keys in one bulk read.
    pub max_bulk_keys: usize,
    /// Most operations in one transaction (and items in one save).
    pub max_transaction_operations: usize,
    /// How long one store operation may take before it fails as a store failure.
    pub store_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_bulk_keys: 1000, max_transaction_operations: 1000, store_timeout: Duration::from_secs(5) }
    }
}

/// Answers bus calls for every project.
pub struct Worker {
    runtime: Runtime,
    limits: Limits,
    /// Circuit breakers of components' outbound policies.
    breakers: Breakers,
    query_limits: QueryLimits,
    /// Turns of each App ID's state queries.
    queries: query::QueryGate,
}

impl Worker {
    /// A worker over `runtime`.
    pub fn new(runtime: Runtime, limits: Limits) -> Worker {
        Worker {
            runtime,
            limits,
            breakers: Breakers::new(),
            query_limits: QueryLimits::default(),
            queries: query::QueryGate::default(),
        }
    }

    /// The same worker with other limits on state queries.
    pub fn with_query_limits(mut self, query_limits: QueryLimits) -> Worker {
        self.query_limits = query_limits;
        self
    }

    /// The component runtime (to deliver change events to).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
}

/// Daprd's separator between a key prefix and the key; keys may not contain it.
const KEY_SEPARATOR: &str = "||";

/// Daprd's metadata key for a TTL, and the one it answers with.
const TTL_SECONDS: &str = "ttlInSeconds";
const TTL_EXPIRE_TIME: &str = "ttlExpireTime";

/// A subscription declaration (v2alpha1 spec or `/dapr/subscribe` entry) as metadata lists it.
fn subscription_info(declaration: &serde_json::Value, kind: SubscriptionKind) -> Option<SubscriptionInfo> {
    let text = |value: Option<&serde_json::Value>| value.and_then(|v| v.as_str()).map(str::to_owned);
    let routes = declaration.get("routes");
    let mut rules: Vec<(String, String)> = routes
        .and_then(|routes| routes.get("rules"))
        .and_then(|rules| rules.as_array())
        .map(|rules| {
            let rule = |r: &serde_json::Value| Some((text(r.get("match")).unwrap_or_default(), text(r.get("path"))?));
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

fn bad_request(operation: StateOperation, message: impl Into<String>) -> DataError {
    DataError::BadRequest { operation, message: message.into() }
}

/// A state component of the calling app's project, resolved once per call.
struct Target<'a> {
    tenant: &'a Tenant,
    component: Arc<StateComponent>,
    store: Arc<dyn StateStore>,
    /// The component's outbound Resiliency policy, its timeout defaulting to the store timeout.
    policy: Policy,
    breaker: Option<Arc<Breaker>>,
}

impl Target<'_> {
    /// Everything before the app's key in a stored key.
    fn prefix(&self) -> String {
        let component = &self.component;
        let scheme = match &component.config.key_prefix {
            KeyPrefix::AppId => format!("{}{KEY_SEPARATOR}", self.tenant.app_id),
            KeyPrefix::ComponentName => format!("{}{KEY_SEPARATOR}", component.name),
            KeyPrefix::Namespace => format!("{}.{}{KEY_SEPARATOR}", self.tenant.project, self.tenant.app_id),
            KeyPrefix::None => String::new(),
            KeyPrefix::Custom(custom) => format!("{custom}{KEY_SEPARATOR}"),
        };
        format!("{}{scheme}", component.config.namespace)
    }

    fn stored_key(&self, operation: StateOperation, key: &str) -> Result<String, DataError> {
        if key.is_empty() {
            return Err(bad_request(operation, "key is empty: every state item needs a key"));
        }
        if key.contains(KEY_SEPARATOR) {
            return Err(bad_request(operation, format!("input key/keyPrefix '{key}' can't contain '{KEY_SEPARATOR}'")));
        }
        Ok(format!("{}{key}", self.prefix()))
    }

    /// How long one store operation may take.
    fn timeout(&self) -> Duration {
        self.policy.timeout.unwrap_or_default()
    }

    /// Runs one store operation under the component's outbound policy: within its timeout, retried as it
    /// says when the store fails (not when it refuses the request), and not at all while its breaker is open.
    async fn run<T, Fut>(
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
        let outcome = match resiliency::execute(&self.policy, self.breaker.as_deref(), call, judge).await {
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

impl Worker {
    fn component_infos(project: &ProjectComponents, tenant: &Tenant) -> Vec<ComponentInfo> {
        fn info<B: ?Sized, C>(component: &Component<B, C>, capabilities: Vec<String>) -> ComponentInfo {
            ComponentInfo {
                name: component.name.clone(),
                component_type: component.component_type.clone(),
                version: component.version.clone(),
                capabilities,
            }
        }
        let stores = project.state.values().filter(|c| c.allows(&tenant.app_id)).map(|component| {
            let capabilities = match &component.backend {
                Ok(store) => store.features().capabilities().into_iter().map(str::to_owned).collect(),
                Err(_) => Vec::new(),
            };
            info(component.as_ref(), capabilities)
        });
        let brokers =
            project.pubsub.values().filter(|c| c.allows(&tenant.app_id)).map(|c| info(c.as_ref(), Vec::new()));
        let secret_stores = project.secrets.values().filter(|c| c.allows(&tenant.app_id)).map(|component| {
            let capabilities = component.backend.as_ref().map(|store| store.capabilities()).unwrap_or_default();
            info(component.as_ref(), capabilities)
        });
        stores.chain(brokers).chain(secret_stores).collect()
    }

    /// The caller's declarative and programmatic subscriptions.
    fn subscription_infos(&self, project: &ProjectComponents, tenant: &Tenant) -> Vec<SubscriptionInfo> {
        let declarative = project
            .subscriptions
            .iter()
            .filter(|document| document.applies_to(&tenant.app_id))
            .filter_map(|document| subscription_info(&document.spec, SubscriptionKind::Declarative));
        let asked = self
            .runtime
            .programmatic(&tenant.project_id, &tenant.app_id)
            .map(|answer| answer.entries)
            .unwrap_or_default();
        let programmatic = asked.iter().filter_map(|entry| subscription_info(entry, SubscriptionKind::Programmatic));
        declarative.chain(programmatic).collect()
    }

    /// The component `store` of the caller's project, if the caller may use it.
    fn target<'a>(
        &self,
        project: &ProjectComponents,
        tenant: &'a Tenant,
        store: &str,
        operation: StateOperation,
    ) -> Result<Target<'a>, DataError> {
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
        let policy = Policy::resolve(
            &project.resiliencies,
            &tenant.app_id,
            resiliency::Target::ComponentOutbound(&component.name),
        )
        .with_default_timeout(self.limits.store_timeout);
        let breaker = self.breakers.get(&tenant.project_id, &policy);
        Ok(Target { tenant, component: Arc::clone(component), store, policy, breaker })
    }

    async fn state_call(&self, tenant: &Tenant, project: &ProjectComponents, call: Call) -> Result<Reply, DataError> {
        match call {
            Call::Metadata => Ok(Reply::Metadata(MetadataInfo {
                components: Worker::component_infos(project, tenant),
                subscriptions: self.subscription_infos(project, tenant),
            })),
            Call::GetState { store, key, metadata: _ } => {
                let target = self.target(project, tenant, &store, StateOperation::Get)?;
                let stored = target.stored_key(StateOperation::Get, &key)?;
                let found = target
                    .run(
                        StateOperation::Get,
                        |store| format!("fail to get {key} from state store {store}"),
                        || target.store.get(&stored),
                    )
                    .await?;
                Ok(Reply::State(found.map(value_of)))
            }
            Call::GetBulkState { store, keys, metadata: _ } => {
                let target = self.target(project, tenant, &store, StateOperation::BulkGet)?;
                if keys.len() > self.limits.max_bulk_keys {
                    return Err(bad_request(
                        StateOperation::BulkGet,
                        format!("{} keys requested; at most {} per bulk get", keys.len(), self.limits.max_bulk_keys),
                    ));
                }
                let stored: Vec<String> =
                    keys.iter().map(|key| target.stored_key(StateOperation::BulkGet, key)).collect::<Result<_, _>>()?;
                let answers =
                    tokio::time::timeout(target.timeout(), target.store.bulk_get(&stored)).await.map_err(|_| {
                        DataError::StoreFailure {
                            operation: StateOperation::BulkGet,
                            message: format!(
                                "failed getting state in state store {store}: no answer within {:?}",
                                target.timeout()
                            ),
                        }
                    })?;
                let items = keys
                    .into_iter()
                    .zip(answers)
                    .map(|(key, answer)| match answer {
                        Ok(found) => BulkStateItem { key, value: found.map(value_of), error: None },
                        Err(err) => BulkStateItem { key, value: None, error: Some(err.to_string()) },
                    })
                    .collect();
                Ok(Reply::BulkState(items))
            }
            Call::SaveState { store, items } => {
                let target = self.target(project, tenant, &store, StateOperation::Save)?;
                self.save(&target, items).await?;
                Ok(Reply::Done)
            }
            Call::DeleteState { store, items } => {
                let target = self.target(project, tenant, &store, StateOperation::Delete)?;
                let operation = if items.len() > 1 { StateOperation::BulkDelete } else { StateOperation::Delete };
                for item in &items {
                    let request = target.delete_request(operation, item)?;
                    let key = &item.key;
                    target
                        .run(
                            operation,
                            |_| format!("failed deleting state with key {key}"),
                            || target.store.delete(&request),
                        )
                        .await?;
                }
                Ok(Reply::Done)
            }
            Call::Transaction { store, operations, metadata: _ } => {
                let target = self.target(project, tenant, &store, StateOperation::Transaction)?;
                if !target.store.features().transactional {
                    return Err(DataError::NotSupported {
                        message: format!("state store {store} doesn't support transaction"),
                    });
                }
                if operations.len() > self.limits.max_transaction_operations {
                    return Err(DataError::TooManyOperations {
                        count: operations.len(),
                        limit: self.limits.max_transaction_operations,
                    });
                }
                let operation = StateOperation::Transaction;
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
                target
                    .run(
                        operation,
                        |_| "error while executing state transaction".to_owned(),
                        || target.store.transact(&requests),
                    )
                    .await?;
                Ok(Reply::Done)
            }
            Call::Publish { pubsub, topic, entries, trace } => {
                self.publish(project, tenant, &pubsub, &topic, entries, trace).await
            }
            Call::StreamSubscribe { pubsub, topic } => self.stream_subscribe(project, tenant, &pubsub, &topic).await,
            Call::StreamFetch { pubsub, topic, max, wait_ms } => {
                self.stream_fetch(project, tenant, (&pubsub, &topic), max, Duration::from_millis(wait_ms)).await
            }
            Call::StreamSettle { pubsub, topic, settlements } => {
                self.stream_settle(project, tenant, (&pubsub, &topic), settlements).await
            }
            Call::GetSecret { store, key, metadata: _ } => self.get_secret(project, tenant, &store, &key).await,
            Call::GetBulkSecret { store, metadata: _ } => self.get_bulk_secret(project, tenant, &store).await,
            Call::ResolveSecretRef { what, store, name, key } => {
                self.resolve_secret_ref(project, &what, store.as_deref(), &name, key.as_deref()).await
            }
            Call::QueryState { store, query, metadata: _ } => {
                let target = self.target(project, tenant, &store, StateOperation::Query)?;
                self.query_state(&target, &query).await
            }
        }
    }

    /// Writes items one by one; every item is attempted and the failures are reported together, naming
    /// their keys (daprd's bulk-set semantics: the successful ones stay written).
    async fn save(&self, target: &Target<'_>, items: Vec<SaveItem>) -> Result<(), DataError> {
        let operation = StateOperation::Save;
        if items.len() > self.limits.max_transaction_operations {
            return Err(bad_request(
                operation,
                format!("{} items in one save; at most {}", items.len(), self.limits.max_transaction_operations),
            ));
        }
        let requests: Vec<state::SetRequest> =
            items.into_iter().map(|item| target.set_request(operation, item)).collect::<Result<_, _>>()?;
        let mut failures = Vec::new();
        for request in &requests {
            let app_key = request.key.strip_prefix(&target.prefix()).unwrap_or(&request.key).to_owned();
            if let Err(err) = target
                .run(
                    operation,
                    |store| format!("failed saving state in state store {store}"),
                    || target.store.set(request),
                )
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
                let message =
                    failures.iter().map(|(key, err)| format!("key {key}: {err}")).collect::<Vec<_>>().join("; ");
                Err(if all_etag {
                    DataError::EtagMismatch { operation, message }
                } else {
                    DataError::StoreFailure { operation, message }
                })
            }
        }
    }
}

#[async_trait]
impl Handler for Worker {
    async fn handle(&self, envelope: Envelope) -> Result<Reply, DataError> {
        let Envelope { tenant, call } = envelope;
        let project = match self.runtime.project(&tenant.project_id).await {
            Ok(Some(project)) => project,
            // A token that outlived its project finds nothing, like any unknown store.
            Ok(None) => return Err(DataError::StoresNotConfigured),
            Err(reason) => {
                tracing::error!(project_id = %tenant.project_id, %reason, "cannot read the project's components");
                return Err(DataError::StoreFailure {
                    operation: StateOperation::Get,
                    message: format!("the project's components cannot be read right now: {reason}"),
                });
            }
        };
        self.state_call(&tenant, &project, call).await
    }
}
