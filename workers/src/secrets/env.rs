//! `secretstores.local.env`: the worker process's environment variables, as daprd's store reads its own. The
//! platform's own settings (`OUTRIGGER_*`: the admin token, database URLs) are never served.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{Secret, SecretError, SecretStore};

/// Variables of the platform itself, hidden from every app.
const PLATFORM_PREFIX: &str = "OUTRIGGER_";

/// Secrets from environment variables, optionally only those under a prefix (which names leave out).
pub struct EnvSecretStore {
    prefix: String,
}

impl EnvSecretStore {
    /// Dapr's type name.
    pub const COMPONENT_TYPE: &'static str = "secretstores.local.env";

    /// A store over the variables starting with `prefix` (all when empty).
    pub fn new(prefix: &str) -> EnvSecretStore {
        EnvSecretStore { prefix: prefix.to_owned() }
    }

    fn read(&self, variable: &str) -> Option<String> {
        if variable.starts_with(PLATFORM_PREFIX) {
            return None;
        }
        std::env::var(variable).ok()
    }
}

#[async_trait]
impl SecretStore for EnvSecretStore {
    /// A variable that is not set reads as empty, as in daprd.
    async fn get(&self, name: &str) -> Result<Secret, SecretError> {
        let value = self.read(&format!("{}{name}", self.prefix)).unwrap_or_default();
        Ok(BTreeMap::from([(name.to_owned(), value)]))
    }

    async fn bulk(&self) -> Result<BTreeMap<String, Secret>, SecretError> {
        let secrets = std::env::vars()
            .filter(|(variable, _)| !variable.starts_with(PLATFORM_PREFIX))
            .filter_map(|(variable, value)| {
                let name = variable.strip_prefix(&self.prefix)?.to_owned();
                (!name.is_empty()).then(|| (name.clone(), BTreeMap::from([(name, value)])))
            })
            .collect();
        Ok(secrets)
    }

    fn capabilities(&self) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn platform_variables_are_never_served() {
        // Set once for this test binary; no other test reads these names.
        std::env::set_var("OUTRIGGER_TEST_SECRET_HIDDEN", "admin");
        std::env::set_var("ENVSTORE_TEST_DB_PASSWORD", "pw");
        let all = EnvSecretStore::new("");
        assert_eq!(all.get("OUTRIGGER_TEST_SECRET_HIDDEN").await.unwrap()["OUTRIGGER_TEST_SECRET_HIDDEN"], "");
        assert!(!all.bulk().await.unwrap().contains_key("OUTRIGGER_TEST_SECRET_HIDDEN"));
        assert_eq!(all.get("ENVSTORE_TEST_DB_PASSWORD").await.unwrap()["ENVSTORE_TEST_DB_PASSWORD"], "pw");

        let prefixed = EnvSecretStore::new("ENVSTORE_TEST_");
        assert_eq!(prefixed.get("DB_PASSWORD").await.unwrap()["DB_PASSWORD"], "pw");
        let bulk = prefixed.bulk().await.unwrap();
        assert_eq!(bulk.keys().collect::<Vec<_>>(), ["DB_PASSWORD"]);
        let hidden_by_prefix = EnvSecretStore::new("OUTRIGGER_TEST_");
        assert_eq!(hidden_by_prefix.get("SECRET_HIDDEN").await.unwrap()["SECRET_HIDDEN"], "");
    }
}
