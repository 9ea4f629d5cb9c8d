//! Secret stores (`secretstores.*`): what the secrets API reads, and where `secretKeyRef`s in components and
//! HTTP endpoints are resolved.
//!
//! The two types served read the host the worker runs on (a JSON file, the process environment), so they are
//! opened only where the operator allows it ([`HostSecrets`]): on the embedded default the host is the user's
//! own machine; in the distributed form it is the platform's, and tenants must not read it. Even where allowed, a
//! secrets file is read from inside the project's own directory ([`Boundary`]).

pub(crate) mod api;
pub(crate) mod env;
pub(crate) mod file;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

pub use env::EnvSecretStore;
pub use file::FileSecretStore;

use crate::boundary::Boundary;
use crate::components::{self, Opener};
use crate::state::open::OpenError;

/// The keys and values of one secret (one entry for single-valued stores).
pub type Secret = BTreeMap<String, String>;

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The store has no secret of that name.
    #[error("secret {0} not found")]
    NotFound(String),
}

/// A secret store of one component.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The secret called `name`.
    async fn get(&self, name: &str) -> Result<Secret, SecretError>;
    /// Every secret, by name.
    async fn bulk(&self) -> Result<BTreeMap<String, Secret>, SecretError>;
    /// Dapr capability names, for `/v1.0/metadata`.
    fn capabilities(&self) -> Vec<String>;
}

/// Whether secret stores that read the host (its files and environment) may be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostSecrets {
    /// The host is the user's (the embedded default on their machine).
    Allowed,
    /// The host is the platform's: such stores fail to open, saying why.
    Refused,
}

impl HostSecrets {
    /// Refuses to open `component_type`, a store that reads the host, where the operator does not allow it.
    pub(crate) fn check(self, component_type: &'static str) -> Result<(), OpenError> {
        match self {
            HostSecrets::Allowed => Ok(()),
            HostSecrets::Refused => Err(OpenError::Backend {
                component_type,
                message: "this type reads the host Outrigger runs on, which this installation does not allow \
                          (OUTRIGGER_ALLOW_HOST_SECRET_STORES); use it with the embedded default on your own machine"
                    .to_owned(),
            }),
        }
    }
}

/// Opens the secret store a Dapr component describes, through the component registry
/// ([`crate::components`]); a secrets file is read from inside `boundary`.
pub async fn open(
    component_type: &str,
    metadata: &BTreeMap<String, String>,
    host: HostSecrets,
    boundary: &Boundary,
) -> Result<Arc<dyn SecretStore>, OpenError> {
    components::open(Opener::secret_store, component_type, metadata, boundary, host).await
}

/// Who may read which secrets of a store: one entry of a Configuration's `spec.secrets.scopes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretScope {
    /// `defaultAccess: deny`.
    pub deny_by_default: bool,
    /// `allowedSecrets`: when not empty, only these.
    pub allowed: Vec<String>,
    /// `deniedSecrets`.
    pub denied: Vec<String>,
}

impl SecretScope {
    /// The scopes of a Configuration's spec, by store name.
    pub fn from_configuration(spec: &serde_json::Value) -> BTreeMap<String, SecretScope> {
        let names = |scope: &serde_json::Value, list: &str| -> Vec<String> {
            let entries = scope.get(list).and_then(|names| names.as_array());
            entries.into_iter().flatten().filter_map(|name| name.as_str()).map(str::to_owned).collect()
        };
        let scopes = spec.pointer("/secrets/scopes").and_then(|scopes| scopes.as_array());
        scopes
            .into_iter()
            .flatten()
            .filter_map(|scope| {
                let store = scope.get("storeName")?.as_str()?.to_owned();
                let default_access = scope.get("defaultAccess").and_then(|access| access.as_str()).unwrap_or("allow");
                let scope = SecretScope {
                    deny_by_default: default_access.eq_ignore_ascii_case("deny"),
                    allowed: names(scope, "allowedSecrets"),
                    denied: names(scope, "deniedSecrets"),
                };
                Some((store, scope))
            })
            .collect()
    }

    /// Whether the secret `name` may be read: an allow list decides alone; otherwise a denied name is
    /// refused and the default access decides the rest (daprd's order).
    pub fn allows(&self, name: &str) -> bool {
        if !self.allowed.is_empty() {
            return self.allowed.iter().any(|allowed| allowed == name);
        }
        if self.denied.iter().any(|denied| denied == name) {
            return false;
        }
        !self.deny_by_default
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scopes_follow_daprd_precedence() {
        let spec = json!({"secrets": {"scopes": [
            {"storeName": "open"},
            {"storeName": "closed", "defaultAccess": "Deny"},
            {"storeName": "listed", "defaultAccess": "deny", "allowedSecrets": ["a"], "deniedSecrets": ["a"]},
            {"storeName": "blocked", "deniedSecrets": ["b"]},
        ]}});
        let scopes = SecretScope::from_configuration(&spec);
        assert!(scopes["open"].allows("anything"));
        assert!(!scopes["closed"].allows("anything"));
        assert!(scopes["listed"].allows("a"), "the allow list decides alone");
        assert!(!scopes["listed"].allows("b"));
        assert!(!scopes["blocked"].allows("b"));
        assert!(scopes["blocked"].allows("c"));
        assert!(SecretScope::from_configuration(&json!({"tracing": {}})).is_empty());
    }

    #[tokio::test]
    async fn host_stores_are_refused_where_the_operator_does_not_allow_them() {
        let metadata = BTreeMap::from([("secretsFile".to_owned(), "/etc/passwd".to_owned())]);
        let boundary = Boundary::operator();
        let Err(err) = open(FileSecretStore::COMPONENT_TYPE, &metadata, HostSecrets::Refused, &boundary).await else {
            panic!("a local.file store opened on a refusing host");
        };
        assert!(err.to_string().contains("OUTRIGGER_ALLOW_HOST_SECRET_STORES"), "{err}");
        let Err(err) = open(EnvSecretStore::COMPONENT_TYPE, &BTreeMap::new(), HostSecrets::Refused, &boundary).await
        else {
            panic!("a local.env store opened on a refusing host");
        };
        assert!(err.to_string().contains("does not allow"), "{err}");
        let Err(err) = open("secretstores.hashicorp.vault", &BTreeMap::new(), HostSecrets::Allowed, &boundary).await
        else {
            panic!("an unknown type opened");
        };
        assert!(err.to_string().contains("secretstores.local.file"), "{err}");
    }
}
