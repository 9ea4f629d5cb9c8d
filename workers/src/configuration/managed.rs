//! Each project's managed configuration store (`configstore`): items kept in the control-plane database, set by
//! operators through the control API. A change reaches watchers through the project's change event, which every
//! worker already receives ([`crate::Runtime::invalidate`]).

use std::sync::Arc;

use async_trait::async_trait;
use outrigger_bus::ConfigurationItem;
use outrigger_store::{ProjectId, Store};
use tokio::sync::broadcast;

use super::{ConfigurationError, ConfigurationStore, Items, Listener};

/// The managed configuration store of one project.
pub struct ManagedConfigurationStore {
    control_plane: Store,
    project_id: ProjectId,
    /// Ids of projects that changed.
    changes: broadcast::Sender<Arc<str>>,
}

impl ManagedConfigurationStore {
    /// The store of `project_id`, told of changes by `changes`.
    pub fn new(control_plane: Store, project_id: ProjectId, changes: broadcast::Sender<Arc<str>>) -> Self {
        ManagedConfigurationStore { control_plane, project_id, changes }
    }
}

fn backend(err: outrigger_store::Error) -> ConfigurationError {
    ConfigurationError::Backend(format!("the managed configuration store cannot be read: {err}"))
}

#[async_trait]
impl ConfigurationStore for ManagedConfigurationStore {
    async fn get(&self, keys: &[String]) -> Result<Items, ConfigurationError> {
        let mut tx = self.control_plane.begin().await.map_err(backend)?;
        let stored = tx.configuration_items(&self.project_id, keys).await.map_err(backend)?;
        let items = stored.into_iter().map(|item| {
            let value =
                ConfigurationItem { value: item.value, version: item.version.to_string(), metadata: item.metadata };
            (item.key, value)
        });
        Ok(items.collect())
    }

    async fn listen(
        &self,
        _keys: &[String],
        _metadata: &outrigger_bus::Metadata,
    ) -> Result<Box<dyn Listener>, ConfigurationError> {
        Ok(Box::new(ProjectChanges { project_id: self.project_id.as_str().into(), changes: self.changes.subscribe() }))
    }
}

/// Change events of one project.
struct ProjectChanges {
    project_id: Arc<str>,
    changes: broadcast::Receiver<Arc<str>>,
}

#[async_trait]
impl Listener for ProjectChanges {
    async fn changed(&mut self) -> Result<(), ConfigurationError> {
        loop {
            match self.changes.recv().await {
                Ok(project_id) if project_id == self.project_id => return Ok(()),
                Ok(_) => {}
                // Events were missed: any of them may have been this project's.
                Err(broadcast::error::RecvError::Lagged(_)) => return Ok(()),
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(ConfigurationError::Backend("the worker is shutting down".to_owned()))
                }
            }
        }
    }
}
