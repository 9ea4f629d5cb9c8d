//! The worker's side of the bus: the caller's project is resolved once per call, then each typed call goes to
//! its building block's module (`metadata`, `state::api`, `state::query_api`, `pubsub::api`,
//! `pubsub::stream_api`, `secrets::api`, `lock::api`,
//! `configuration::api`, `bindings::api`).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use outrigger_bus::{
    dispatch, BindingResponse, BulkStateItem, Call, ConfigurationItem, DataError, DataPlane, DeleteState, Envelope,
    ExecuteTransaction, FailedEntry, GetBulkSecret, GetBulkState, GetConfiguration, GetMetadata, GetSecret, GetState,
    Handler, InvokeBinding, MetadataInfo, Publish, QueryPage, QueryState, Reply, ResolveSecretRef, SaveState,
    StateValue, StreamEvent, StreamFetch, StreamSettle, StreamSubscribe, Tenant, TryLock, Unlock, UnlockStatus,
    WatchConfiguration,
};
use std::sync::Arc;

use outrigger_outbound::resiliency::{self, Breaker, Breakers, Policy};
use outrigger_telemetry::trace::{Hop, KeyValue, SpanKind};

use crate::runtime::{ProjectComponents, Runtime};
use crate::state::query_api::{QueryGate, QueryLimits};
use crate::{bindings, configuration, lock, metadata, pubsub, secrets, state};

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
    pub(crate) runtime: Runtime,
    pub(crate) limits: Limits,
    /// Circuit breakers of components' outbound policies.
    pub(crate) breakers: Breakers,
    pub(crate) query_limits: QueryLimits,
    /// Turns of each App ID's state queries.
    pub(crate) queries: QueryGate,
    /// Where the calls the platform makes to apps (deliveries, binding events) are recorded.
    pub(crate) api_log: outrigger_telemetry::ApiLog,
}

impl Worker {
    /// A worker over `runtime`.
    pub fn new(runtime: Runtime, limits: Limits) -> Worker {
        Worker {
            runtime,
            limits,
            breakers: Breakers::new(),
            query_limits: QueryLimits::default(),
            queries: QueryGate::default(),
            api_log: outrigger_telemetry::ApiLog::disabled(),
        }
    }

    /// The same worker recording the calls it makes to apps in `api_log`.
    pub fn with_api_log(mut self, api_log: outrigger_telemetry::ApiLog) -> Worker {
        self.api_log = api_log;
        self
    }

    /// The same worker with other limits on state queries.
    pub fn with_query_limits(mut self, query_limits: QueryLimits) -> Worker {
        self.query_limits = query_limits;
        self
    }

    /// The outbound Resiliency policy of `project`'s component `name` as the App ID of `caller` (project id, App
    /// ID) calls it (its timeout defaulting to the store timeout), and the circuit breaker it names.
    pub(crate) fn component_policy(
        &self,
        project: &ProjectComponents,
        (project_id, app_id): (&str, &str),
        name: &str,
    ) -> (Policy, Option<Arc<Breaker>>) {
        let target = resiliency::Target::ComponentOutbound(name);
        let policy =
            Policy::resolve(&project.resiliencies, app_id, target).with_default_timeout(self.limits.store_timeout);
        let breaker = self.breakers.get(project_id, &policy);
        (policy, breaker)
    }

    /// The component runtime (to deliver change events to).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
}

/// One call's view of the worker: who calls, and their project's components.
pub(crate) struct Scope<'a> {
    pub(crate) worker: &'a Worker,
    pub(crate) tenant: &'a Tenant,
    pub(crate) project: &'a ProjectComponents,
}

impl Scope<'_> {
    /// The outbound Resiliency policy of the caller's component `name` (its timeout defaulting to the store
    /// timeout), and the circuit breaker it names.
    pub(crate) fn component_policy(&self, name: &str) -> (Policy, Option<Arc<Breaker>>) {
        let caller: (&str, &str) = (self.tenant.project_id.as_str(), &self.tenant.app_id);
        self.worker.component_policy(self.project, caller, name)
    }
}

#[async_trait]
impl Handler for Worker {
    async fn handle(&self, envelope: Envelope) -> Result<Reply, DataError> {
        let Envelope { tenant, call, trace } = envelope;
        let _in_flight = outrigger_telemetry::metrics().worker_call(&tenant.pool);
        // The worker's span joins the trace of the gateway's, when that one is recorded.
        let hop = trace.as_deref().and_then(|traceparent| Hop::continuing(traceparent, None));
        let name = call.name();
        let answer = self.answer(&tenant, call).await;
        if let Some(hop) = hop.filter(Hop::recorded) {
            let attributes = vec![
                KeyValue::new("outrigger.project", tenant.project.clone()),
                KeyValue::new("outrigger.app_id", tenant.app_id.clone()),
                KeyValue::new("outrigger.pool", tenant.pool.clone()),
            ];
            let error = answer.as_ref().err().map(ToString::to_string);
            hop.finish(format!("worker/{name}"), SpanKind::Internal, attributes, error);
        }
        answer
    }
}

impl Worker {
    /// Answers `call` for `tenant`'s project.
    async fn answer(&self, tenant: &Tenant, call: Call) -> Result<Reply, DataError> {
        let project = match self.runtime.project(&tenant.project_id).await {
            Ok(Some(project)) => project,
            // A token that outlived its project finds nothing, like any unknown store.
            Ok(None) => return Err(DataError::StoresNotConfigured),
            Err(reason) => {
                tracing::error!(project_id = %tenant.project_id, %reason, "cannot read the project's components");
                return Err(DataError::ProjectUnavailable {
                    message: format!("the project's components cannot be read right now: {reason}"),
                });
            }
        };
        dispatch(&Scope { worker: self, tenant, project: &project }, call).await
    }
}

impl DataPlane for Scope<'_> {
    async fn get_metadata(&self, _call: GetMetadata) -> Result<MetadataInfo, DataError> {
        Ok(metadata::describe(self))
    }

    async fn get_state(&self, call: GetState) -> Result<Option<StateValue>, DataError> {
        state::api::get(self, call).await
    }

    async fn get_bulk_state(&self, call: GetBulkState) -> Result<Vec<BulkStateItem>, DataError> {
        state::api::bulk_get(self, call).await
    }

    async fn save_state(&self, call: SaveState) -> Result<(), DataError> {
        state::api::save(self, call).await
    }

    async fn delete_state(&self, call: DeleteState) -> Result<(), DataError> {
        state::api::delete(self, call).await
    }

    async fn execute_transaction(&self, call: ExecuteTransaction) -> Result<(), DataError> {
        state::api::transact(self, call).await
    }

    async fn query_state(&self, call: QueryState) -> Result<QueryPage, DataError> {
        state::query_api::query(self, call).await
    }

    async fn publish(&self, call: Publish) -> Result<Vec<FailedEntry>, DataError> {
        pubsub::api::publish(self, call).await
    }

    async fn stream_subscribe(&self, call: StreamSubscribe) -> Result<(), DataError> {
        pubsub::stream_api::subscribe(self, call).await
    }

    async fn stream_fetch(&self, call: StreamFetch) -> Result<Vec<StreamEvent>, DataError> {
        pubsub::stream_api::fetch(self, call).await
    }

    async fn stream_settle(&self, call: StreamSettle) -> Result<(), DataError> {
        pubsub::stream_api::settle(self, call).await
    }

    async fn get_secret(&self, call: GetSecret) -> Result<BTreeMap<String, String>, DataError> {
        secrets::api::get(self, call).await
    }

    async fn get_bulk_secret(
        &self,
        call: GetBulkSecret,
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, DataError> {
        secrets::api::bulk_get(self, call).await
    }

    async fn resolve_secret_ref(&self, call: ResolveSecretRef) -> Result<String, DataError> {
        secrets::api::resolve_ref(self, call).await
    }

    async fn try_lock(&self, call: TryLock) -> Result<bool, DataError> {
        lock::api::try_lock(self, call).await
    }

    async fn unlock(&self, call: Unlock) -> Result<UnlockStatus, DataError> {
        lock::api::unlock(self, call).await
    }

    async fn get_configuration(
        &self,
        call: GetConfiguration,
    ) -> Result<BTreeMap<String, ConfigurationItem>, DataError> {
        configuration::api::get(self, call).await
    }

    async fn watch_configuration(
        &self,
        call: WatchConfiguration,
    ) -> Result<BTreeMap<String, ConfigurationItem>, DataError> {
        configuration::api::watch(self, call).await
    }

    async fn invoke_binding(&self, call: InvokeBinding) -> Result<BindingResponse, DataError> {
        bindings::api::invoke(self, call).await
    }
}
