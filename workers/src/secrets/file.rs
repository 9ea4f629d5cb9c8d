//! `secretstores.local.file`: secrets from a JSON file, read when the component opens (as daprd reads it at
//! start-up). Nested objects and arrays become flat names joined by `nestedSeparator`; with `multiValued` the
//! top-level names are the secrets and everything below them their keys.

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use serde_json::Value;

use super::{Secret, SecretError, SecretStore};
use crate::state::open::OpenError;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use outrigger_resources::{optional, required_file, BuildingBlock, ComponentType, MetadataField};

use crate::components::{Backend, Opener, Opening};

/// Secrets read from a JSON file.
pub struct FileSecretStore {
    secrets: BTreeMap<String, Secret>,
    multi_valued: bool,
}

impl FileSecretStore {
    /// Dapr's type name.
    pub const COMPONENT_TYPE: &'static str = "secretstores.local.file";

    /// Reads `path` once. Errors name the file as `name`: the component's `secretsFile` as written, never the
    /// host path a tenant's relative name resolved to.
    pub async fn open(
        path: &Path,
        name: &str,
        separator: &str,
        multi_valued: bool,
    ) -> Result<FileSecretStore, OpenError> {
        let failed = |message: String| OpenError::Backend { component_type: Self::COMPONENT_TYPE, message };
        let text = tokio::fs::read(path).await.map_err(|err| {
            let hint = match err.kind() {
                std::io::ErrorKind::NotFound => {
                    "; a relative secretsFile names a file in the project's directory on the Outrigger host, \
                     which the operator places there"
                }
                _ => "",
            };
            failed(format!("cannot read secretsFile '{name}': {err}{hint}"))
        })?;
        let document: Value = serde_json::from_slice(&text)
            .map_err(|err| failed(format!("secretsFile '{name}' is not JSON: {err}; write one JSON object")))?;
        let Value::Object(top) = document else {
            return Err(failed(format!("secretsFile '{name}' must hold one JSON object of secrets")));
        };
        let mut secrets = BTreeMap::new();
        if multi_valued {
            for (name, value) in top {
                let mut keys = BTreeMap::new();
                match value {
                    Value::Object(_) | Value::Array(_) => flatten(&value, None, separator, &mut keys),
                    scalar => drop(keys.insert(name.clone(), text_of(&scalar))),
                }
                secrets.insert(name, keys);
            }
        } else {
            let mut flat = BTreeMap::new();
            flatten(&Value::Object(top), None, separator, &mut flat);
            for (name, value) in flat {
                secrets.insert(name.clone(), BTreeMap::from([(name, value)]));
            }
        }
        Ok(FileSecretStore { secrets, multi_valued })
    }
}

/// Adds the leaves of `value` to `into`, their names joined by `separator`.
fn flatten(value: &Value, prefix: Option<&str>, separator: &str, into: &mut BTreeMap<String, String>) {
    let name = |key: &str| match prefix {
        Some(prefix) => format!("{prefix}{separator}{key}"),
        None => key.to_owned(),
    };
    match value {
        Value::Object(entries) => {
            for (key, child) in entries {
                flatten(child, Some(&name(key)), separator, into);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                flatten(child, Some(&name(&index.to_string())), separator, into);
            }
        }
        leaf => {
            into.insert(prefix.unwrap_or_default().to_owned(), text_of(leaf));
        }
    }
}

fn text_of(leaf: &Value) -> String {
    match leaf {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[async_trait]
impl SecretStore for FileSecretStore {
    async fn get(&self, name: &str) -> Result<Secret, SecretError> {
        self.secrets.get(name).cloned().ok_or_else(|| SecretError::NotFound(name.to_owned()))
    }

    async fn bulk(&self) -> Result<BTreeMap<String, Secret>, SecretError> {
        Ok(self.secrets.clone())
    }

    fn capabilities(&self) -> Vec<String> {
        if self.multi_valued {
            vec!["MULTIPLE_KEY_VALUES_PER_SECRET".to_owned()]
        } else {
            Vec::new()
        }
    }
}

const LOCAL_FILE_FIELDS: &[MetadataField] = &[
    required_file("secretsFile"),
    optional("nestedSeparator").defaults_to(":"),
    optional("multiValued").defaults_to("false"),
];

/// `secretstores.local.file`: a JSON file inside the project's directory, where the operator allows it.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(FileSecretStore::COMPONENT_TYPE, BuildingBlock::SecretStores, &[LOCAL_FILE_FIELDS]),
    opener: Opener::SecretStore(open),
};

fn open(opening: Opening<'_>) -> BoxFuture<'_, Result<Arc<dyn SecretStore>, OpenError>> {
    Box::pin(async move {
        let Opening { fields, boundary, host_secrets } = opening;
        host_secrets.check(FileSecretStore::COMPONENT_TYPE)?;
        let name = fields.required("secretsFile", "the path of a JSON file holding the secrets")?;
        let path = boundary.file(FileSecretStore::COMPONENT_TYPE, "secretsFile", name).await?;
        let separator = fields.get("nestedSeparator").filter(|separator| !separator.is_empty()).unwrap_or(":");
        let multi_valued = fields.flag("multiValued")?;
        Ok(Arc::new(FileSecretStore::open(&path, name, separator, multi_valued).await?) as _)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRETS: &str = r#"{
        "redisPassword": "s3cret",
        "connectionStrings": {"sql": "Server=x", "mysql": "mysql://y"},
        "ports": [5432, 6379],
        "enabled": true
    }"#;

    async fn store(separator: &str, multi_valued: bool) -> FileSecretStore {
        let dir = std::env::temp_dir().join(format!("outrigger-secrets-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secrets.json");
        std::fs::write(&path, SECRETS).unwrap();
        let opened = FileSecretStore::open(&path, "secrets.json", separator, multi_valued).await.unwrap();
        std::fs::remove_dir_all(dir).unwrap();
        opened
    }

    fn secret(entries: &[(&str, &str)]) -> Secret {
        entries.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
    }

    #[tokio::test]
    async fn single_valued_secrets_are_the_flattened_names() {
        let store = store(":", false).await;
        assert_eq!(store.get("redisPassword").await.unwrap(), secret(&[("redisPassword", "s3cret")]));
        assert_eq!(store.get("connectionStrings:sql").await.unwrap(), secret(&[("connectionStrings:sql", "Server=x")]));
        assert_eq!(store.get("ports:1").await.unwrap(), secret(&[("ports:1", "6379")]));
        assert_eq!(store.get("enabled").await.unwrap(), secret(&[("enabled", "true")]));
        let missing = store.get("connectionStrings").await.unwrap_err();
        assert_eq!(missing.to_string(), "secret connectionStrings not found");
        assert_eq!(store.bulk().await.unwrap().len(), 6);
        assert!(store.capabilities().is_empty());
        let dotted = self::store(".", false).await;
        assert!(dotted.get("connectionStrings.mysql").await.is_ok());
    }

    #[tokio::test]
    async fn multi_valued_secrets_are_the_top_level_names() {
        let store = store(":", true).await;
        assert_eq!(
            store.get("connectionStrings").await.unwrap(),
            secret(&[("sql", "Server=x"), ("mysql", "mysql://y")])
        );
        assert_eq!(store.get("redisPassword").await.unwrap(), secret(&[("redisPassword", "s3cret")]));
        assert_eq!(store.get("ports").await.unwrap(), secret(&[("0", "5432"), ("1", "6379")]));
        assert!(store.get("connectionStrings:sql").await.is_err());
        assert_eq!(store.bulk().await.unwrap().len(), 4);
        assert_eq!(store.capabilities(), ["MULTIPLE_KEY_VALUES_PER_SECRET"]);
    }

    #[tokio::test]
    async fn unreadable_files_say_what_is_wrong() {
        let Err(err) = FileSecretStore::open(Path::new("/nonexistent/secrets.json"), "secrets.json", ":", false).await
        else {
            panic!("a missing file opened");
        };
        let message = err.to_string();
        assert!(message.contains("cannot read secretsFile 'secrets.json'"), "{message}");
        assert!(message.contains("the project's directory"), "{message}");
        assert!(!message.contains("/nonexistent"), "the host path shows: {message}");
    }
}
