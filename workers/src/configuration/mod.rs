//! Configuration stores (`configuration.*`): what Dapr's configuration API reads and watches. Each backend is a
//! file of its own ([`redis`] for `configuration.redis`, [`postgres`] for `configuration.postgresql`); [`managed`] serves each project's `configstore`,
//! whose items operators set through the control API.

pub(crate) mod api;
pub(crate) mod managed;
pub(crate) mod postgres;
pub(crate) mod redis;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use outrigger_bus::{ConfigurationItem, Metadata};

use crate::boundary::Boundary;
use crate::components::{self, Opener};
use crate::secrets::HostSecrets;
use crate::state::open::OpenError;

pub use managed::ManagedConfigurationStore;
pub use redis::RedisConfigurationStore;

/// Configuration items by key.
pub type Items = BTreeMap<String, ConfigurationItem>;

/// Why a configuration store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ConfigurationError {
    /// The backend failed (down, timed out, answered something unexpected).
    #[error("{0}")]
    Backend(String),
}

/// A configuration store of one component.
#[async_trait]
pub trait ConfigurationStore: Send + Sync {
    /// The items of `keys` that have a value; every item of the store when `keys` is empty. No deadline of its own:
    /// the configuration API runs it under the component's Resiliency policy.
    async fn get(&self, keys: &[String]) -> Result<Items, ConfigurationError>;

    /// Starts listening for changes of `keys` (of any key when empty), with the subscription's request
    /// `metadata`: whatever changes after this returns is reported by the listener.
    async fn listen(&self, keys: &[String], metadata: &Metadata) -> Result<Box<dyn Listener>, ConfigurationError>;
}

/// Changes a [`ConfigurationStore::listen`] call listens for.
#[async_trait]
pub trait Listener: Send {
    /// Returns once an item listened for may have changed since the listener began or last returned.
    async fn changed(&mut self) -> Result<(), ConfigurationError>;
}

/// Opens the configuration store a Dapr component describes, reaching only what `boundary` allows.
pub async fn open_within(
    component_type: &str,
    metadata: &BTreeMap<String, String>,
    boundary: &Boundary,
) -> Result<Arc<dyn ConfigurationStore>, OpenError> {
    components::open(Opener::configuration, component_type, metadata, boundary, HostSecrets::Refused).await
}

/// The items of `current` that differ from `seen`, and an empty item for each key of `seen` that `current`
/// no longer has (daprd's notice of a removed key).
pub(crate) fn differences(seen: &Items, current: &Items) -> Items {
    let changed = current.iter().filter(|(key, item)| seen.get(*key) != Some(item));
    let removed = seen.keys().filter(|key| !current.contains_key(*key));
    let removed = removed.map(|key| (key.clone(), ConfigurationItem::default()));
    changed.map(|(key, item)| (key.clone(), item.clone())).chain(removed).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(value: &str, version: &str) -> ConfigurationItem {
        ConfigurationItem { value: value.into(), version: version.into(), metadata: Default::default() }
    }

    #[test]
    fn differences_name_changed_added_and_removed_keys() {
        let seen =
            Items::from([("a".into(), item("1", "1")), ("b".into(), item("2", "1")), ("c".into(), item("3", "1"))]);
        let current =
            Items::from([("a".into(), item("1", "1")), ("b".into(), item("2", "2")), ("d".into(), item("4", "1"))]);
        let changes = differences(&seen, &current);
        let expected = Items::from([
            ("b".into(), item("2", "2")),
            ("c".into(), ConfigurationItem::default()),
            ("d".into(), item("4", "1")),
        ]);
        assert_eq!(changes, expected);
        assert!(differences(&current, &current).is_empty());
    }
}
