//! The secrets API: the caller's secret store, its Configuration's secret scopes, and the store's answer.

use std::sync::Arc;

use outrigger_bus::{DataError, Reply, Tenant};

use super::Worker;
use crate::runtime::{resolve_secret_ref, ProjectComponents, SecretComponent};
use crate::secrets::{SecretScope, SecretStore};

/// A secret store the caller may use, with the caller's scope for it.
struct Reader<'a> {
    name: &'a str,
    backend: Arc<dyn SecretStore>,
    scope: Option<&'a SecretScope>,
}

impl Reader<'_> {
    fn allows(&self, key: &str) -> bool {
        self.scope.is_none_or(|scope| scope.allows(key))
    }
}

impl Worker {
    /// The secret store `store` of the caller's project, if the caller may use it.
    fn secret_reader<'a>(
        project: &'a ProjectComponents,
        tenant: &Tenant,
        store: &'a str,
    ) -> Result<Reader<'a>, DataError> {
        let visible = || project.secrets.values().filter(|component| component.allows(&tenant.app_id));
        let component: &Arc<SecretComponent> = match visible().find(|component| component.name == store) {
            Some(component) => component,
            None if visible().next().is_none() => return Err(DataError::SecretStoresNotConfigured),
            None => return Err(DataError::SecretStoreNotFound { store: store.to_owned() }),
        };
        let backend = component.backend.clone().map_err(|reason| DataError::SecretGet {
            message: format!("secret store {store} could not start: {reason}"),
        })?;
        let scope = project.secret_scopes.get(&tenant.app_id).and_then(|scopes| scopes.get(store));
        Ok(Reader { name: store, backend, scope })
    }

    /// `GET /v1.0/secrets/{store}/{key}`.
    pub(super) async fn get_secret(
        &self,
        project: &ProjectComponents,
        tenant: &Tenant,
        store: &str,
        key: &str,
    ) -> Result<Reply, DataError> {
        let reader = Worker::secret_reader(project, tenant, store)?;
        if !reader.allows(key) {
            return Err(DataError::SecretDenied { store: store.to_owned(), key: key.to_owned() });
        }
        let secret = reader.backend.get(key).await.map_err(|err| DataError::SecretGet {
            message: format!("failed getting secret with key {key} from secret store {}: {err}", reader.name),
        })?;
        Ok(Reply::Secret(secret))
    }

    /// `GET /v1.0/secrets/{store}/bulk`: the secrets the caller's scopes hide are left out.
    pub(super) async fn get_bulk_secret(
        &self,
        project: &ProjectComponents,
        tenant: &Tenant,
        store: &str,
    ) -> Result<Reply, DataError> {
        let reader = Worker::secret_reader(project, tenant, store)?;
        let mut secrets = reader.backend.bulk().await.map_err(|err| DataError::SecretGet {
            message: format!("failed getting secrets from secret store {}: {err}", reader.name),
        })?;
        secrets.retain(|name, _| reader.allows(name));
        Ok(Reply::BulkSecret(secrets))
    }

    /// The value of a `secretKeyRef` of one of the project's documents.
    pub(super) async fn resolve_secret_ref(
        &self,
        project: &ProjectComponents,
        what: &str,
        store: Option<&str>,
        name: &str,
        key: Option<&str>,
    ) -> Result<Reply, DataError> {
        let value = resolve_secret_ref(what, store, name, key, &project.secrets)
            .await
            .map_err(|message| DataError::SecretGet { message })?;
        Ok(Reply::SecretValue(value))
    }
}
