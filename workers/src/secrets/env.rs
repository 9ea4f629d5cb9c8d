//! `secretstores.local.env`: the worker process's environment variables, as daprd's store reads its own,
//! taken when the component opens. The platform's own settings (`OUTRIGGER_*`: the admin token, database
//! URLs) are never served.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{Secret, SecretError, SecretStore};
use std::sync::Arc;

use outrigger_resources::{optional, BuildingBlock, ComponentType, MetadataField};

use crate::components::{Backend, Opener, Opening};

/// Variables of the platform itself, hidden from every app.
const PLATFORM_PREFIX: &str = "OUTRIGGER_";

/// Secrets from environment variables, optionally only those under a prefix (which names leave out).
pub struct EnvSecretStore {
    /// Secret name (the variable without the prefix) -> value.
    values: BTreeMap<String, String>,
}

impl EnvSecretStore {
    /// Dapr's type name.
    pub const COMPONENT_TYPE: &'static str = "secretstores.local.env";

    /// A store over those of `variables` that start with `prefix` (all when empty).
    pub fn new(prefix: &str, variables: impl IntoIterator<Item = (String, String)>) -> EnvSecretStore {
        let values = variables
            .into_iter()
            .filter(|(variable, _)| !variable.starts_with(PLATFORM_PREFIX))
            .filter_map(|(variable, value)| {
                let name = variable.strip_prefix(prefix)?;
                (!name.is_empty()).then(|| (name.to_owned(), value))
            })
            .collect();
        EnvSecretStore { values }
    }
}

#[async_trait]
impl SecretStore for EnvSecretStore {
    /// A variable that is not set reads as empty, as in daprd.
    async fn get(&self, name: &str) -> Result<Secret, SecretError> {
        let value = self.values.get(name).cloned().unwrap_or_default();
        Ok(BTreeMap::from([(name.to_owned(), value)]))
    }

    async fn bulk(&self) -> Result<BTreeMap<String, Secret>, SecretError> {
        let secret =
            |(name, value): (&String, &String)| (name.clone(), BTreeMap::from([(name.clone(), value.clone())]));
        Ok(self.values.iter().map(secret).collect())
    }

    fn capabilities(&self) -> Vec<String> {
        Vec::new()
    }
}

const LOCAL_ENV_FIELDS: &[MetadataField] = &[optional("prefix")];

/// `secretstores.local.env`: the worker's own environment, where the operator allows it.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(EnvSecretStore::COMPONENT_TYPE, BuildingBlock::SecretStores, &[LOCAL_ENV_FIELDS]),
    opener: Opener::SecretStore(|opening: Opening<'_>| {
        Box::pin(async move {
            opening.host_secrets.check(EnvSecretStore::COMPONENT_TYPE)?;
            let prefix = opening.fields.get("prefix").unwrap_or_default();
            Ok(Arc::new(EnvSecretStore::new(prefix, std::env::vars())) as _)
        })
    }),
};

#[cfg(test)]
mod tests {
    use super::*;

    fn environment() -> Vec<(String, String)> {
        [("OUTRIGGER_ADMIN_TOKEN", "admin"), ("APP_DB_PASSWORD", "pw"), ("HOME", "/root")]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }

    #[tokio::test]
    async fn platform_variables_are_never_served() {
        let all = EnvSecretStore::new("", environment());
        assert_eq!(all.get("OUTRIGGER_ADMIN_TOKEN").await.unwrap()["OUTRIGGER_ADMIN_TOKEN"], "");
        assert_eq!(all.bulk().await.unwrap().keys().collect::<Vec<_>>(), ["APP_DB_PASSWORD", "HOME"]);
        assert_eq!(all.get("APP_DB_PASSWORD").await.unwrap()["APP_DB_PASSWORD"], "pw");
        let by_prefix = EnvSecretStore::new("OUTRIGGER_", environment());
        assert_eq!(by_prefix.get("ADMIN_TOKEN").await.unwrap()["ADMIN_TOKEN"], "");
    }

    #[tokio::test]
    async fn a_prefix_selects_variables_and_is_left_out_of_names() {
        let prefixed = EnvSecretStore::new("APP_", environment());
        assert_eq!(prefixed.get("DB_PASSWORD").await.unwrap()["DB_PASSWORD"], "pw");
        assert_eq!(prefixed.get("HOME").await.unwrap()["HOME"], "", "outside the prefix");
        assert_eq!(prefixed.bulk().await.unwrap().keys().collect::<Vec<_>>(), ["DB_PASSWORD"]);
    }
}
