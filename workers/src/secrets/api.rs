//! The secrets API: the caller's secret store, its Configuration's secret scopes, and the store's answer.

use std::sync::Arc;

use std::collections::BTreeMap;

use outrigger_bus::{DataError, GetBulkSecret, GetSecret, ResolveSecretRef};

use crate::handler::Scope;
use crate::runtime::{resolve_secret_ref, SecretComponent};
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

/// The secret store `store` of the caller's project, if the caller may use it, with the caller's scope on it.
fn reader<'a>(scope: &Scope<'a>, store: &'a str) -> Result<Reader<'a>, DataError> {
    let (project, tenant) = (scope.project, scope.tenant);
    let visible = || project.secrets.values().filter(|component| component.allows(&tenant.app_id));
    let component: &Arc<SecretComponent> = match visible().find(|component| component.name == store) {
        Some(component) => component,
        None if visible().next().is_none() => return Err(DataError::SecretStoresNotConfigured),
        None => return Err(DataError::SecretStoreNotFound { store: store.to_owned() }),
    };
    let backend = component.backend.clone().map_err(|reason| DataError::SecretGet {
        message: format!("secret store {store} could not start: {reason}"),
    })?;
    let scope = project.secret_scopes.get(&*tenant.app_id).and_then(|scopes| scopes.get(store));
    Ok(Reader { name: store, backend, scope })
}

/// `GetSecret`.
pub(crate) async fn get(
    scope: &Scope<'_>,
    GetSecret { store, key }: GetSecret,
) -> Result<BTreeMap<String, String>, DataError> {
    let reader = reader(scope, &store)?;
    if !reader.allows(&key) {
        return Err(DataError::SecretDenied { store: store.clone(), key });
    }
    reader.backend.get(&key).await.map_err(|err| DataError::SecretGet {
        message: format!("failed getting secret with key {key} from secret store {}: {err}", reader.name),
    })
}

/// `GetBulkSecret`: what the caller's scope allows of every secret.
pub(crate) async fn bulk_get(
    scope: &Scope<'_>,
    GetBulkSecret { store }: GetBulkSecret,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, DataError> {
    let reader = reader(scope, &store)?;
    let mut secrets = reader.backend.bulk().await.map_err(|err| DataError::SecretGet {
        message: format!("failed getting secrets from secret store {}: {err}", reader.name),
    })?;
    secrets.retain(|name, _| reader.allows(name));
    Ok(secrets)
}

/// The value of a document's `secretKeyRef`, read on the project's behalf.
pub(crate) async fn resolve_ref(scope: &Scope<'_>, call: ResolveSecretRef) -> Result<String, DataError> {
    let ResolveSecretRef { what, store, name, key } = call;
    resolve_secret_ref(&what, store.as_deref(), &name, key.as_deref(), &scope.project.secrets)
        .await
        .map_err(|message| DataError::SecretGet { message })
}
