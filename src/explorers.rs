//! The control API's views of the managed stores (`outrigger_control_api::StoredBytes`, `ManagedKv` and
//! `ManagedTopics`), over the stores this process opened: the workers' stores and explorers do the work, with the
//! project's namespace; this only turns their answers into the control API's.

use std::sync::Arc;

use outrigger_control_api::{ExplorerFailure, KvKey, KvPage, KvValue, TopicGroup};
use outrigger_store::ProjectId;
use outrigger_workers::explorer::{ExplorerError, KvExplorer, TopicExplorer};
use outrigger_workers::state::StateStore;
use outrigger_workers::{managed_kvstore_namespace, Worker};

/// Measures projects in the managed kvstore for the control API's usage.
pub(crate) struct ManagedKvstoreUsage(pub(crate) Arc<dyn StateStore>);

#[async_trait::async_trait]
impl outrigger_control_api::StoredBytes for ManagedKvstoreUsage {
    async fn stored_bytes(&self, project: &ProjectId) -> Result<u64, String> {
        self.0.stored_bytes(&managed_kvstore_namespace(project)).await.map_err(|err| err.to_string())
    }
}

/// The console's KV explorer over the managed kvstore.
pub(crate) struct ManagedKvExplorer(pub(crate) KvExplorer);

fn explorer_failure(err: ExplorerError) -> ExplorerFailure {
    match err {
        ExplorerError::Invalid(message) => ExplorerFailure::Invalid(message),
        ExplorerError::Store(message) => ExplorerFailure::Unavailable(message),
    }
}

#[async_trait::async_trait]
impl outrigger_control_api::ManagedKv for ManagedKvExplorer {
    async fn list(
        &self,
        project: &ProjectId,
        app_id: Option<&str>,
        prefix: &str,
        continuation: Option<&str>,
        limit: usize,
    ) -> Result<KvPage, ExplorerFailure> {
        let page = self.0.list(project, app_id, prefix, continuation, limit).await.map_err(explorer_failure)?;
        let keys = page
            .keys
            .into_iter()
            .map(|key| KvKey {
                app_id: key.app_id,
                key: key.key,
                size: key.size,
                etag: Some(key.etag),
                expires_at: key.expires_at,
            })
            .collect();
        Ok(KvPage { keys, continuation: page.continuation })
    }

    async fn get(&self, project: &ProjectId, app_id: &str, key: &str) -> Result<Option<KvValue>, ExplorerFailure> {
        let item = self.0.get(project, app_id, key).await.map_err(explorer_failure)?;
        Ok(item.map(|item| KvValue { value: item.value, etag: Some(item.etag), expires_at: item.expires_at }))
    }

    async fn delete(&self, project: &ProjectId, app_id: &str, key: &str) -> Result<bool, ExplorerFailure> {
        self.0.delete(project, app_id, key).await.map_err(explorer_failure)
    }
}

/// The console's topic explorer over the managed pubsub, with what this process's deliveries read from apps.
pub(crate) struct ManagedTopicsExplorer {
    pub(crate) explorer: TopicExplorer,
    pub(crate) worker: Option<Arc<Worker>>,
}

#[async_trait::async_trait]
impl outrigger_control_api::ManagedTopics for ManagedTopicsExplorer {
    async fn groups(&self, project: &ProjectId, max: usize) -> Result<Option<Vec<TopicGroup>>, ExplorerFailure> {
        let groups = self.explorer.groups(project, max).await.map_err(explorer_failure)?;
        Ok(groups.map(|groups| {
            groups
                .into_iter()
                .map(|group| TopicGroup { topic: group.topic, app_id: group.app_id, streaming: group.streaming })
                .collect()
        }))
    }

    async fn pending(
        &self,
        project: &ProjectId,
        topic: &str,
        app_id: &str,
        streaming: bool,
        cap: u64,
    ) -> Result<Option<u64>, ExplorerFailure> {
        self.explorer.pending(project, topic, app_id, streaming, cap).await.map_err(explorer_failure)
    }

    async fn kept_messages(&self, project: &ProjectId, topic: &str, cap: u64) -> Result<u64, ExplorerFailure> {
        self.explorer.kept_messages(project, topic, cap).await.map_err(explorer_failure)
    }

    fn programmatic(&self, project: &ProjectId, app_id: &str) -> Option<Vec<serde_json::Value>> {
        let answer = self.worker.as_ref()?.runtime().programmatic(project.as_str(), app_id)?;
        Some(answer.entries)
    }
}
