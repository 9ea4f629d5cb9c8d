//! `configuration.redis`: daprd's Redis configuration store. Each item is a string key whose value is
//! `value||version` (the version may be left out); changes are heard through Redis keyspace notifications,
//! which the Redis server must have switched on (`notify-keyspace-events` with `K` and the events wanted, e.g.
//! `KA`), as with daprd.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use outrigger_bus::ConfigurationItem;
use outrigger_resources::{BuildingBlock, ComponentType};
use redis::aio::{ConnectionManager, PubSubStream};

use super::{ConfigurationError, ConfigurationStore, Items, Listener};
use crate::components::{Backend, Opener, Opening};
use crate::state::open::OpenError;
use crate::state::redis::{connect, REDIS_CLIENT_FIELDS};
use crate::state::time::{within, OPERATION_DEADLINE};
use crate::state::RedisOptions;

/// daprd's separator between a value and its version.
const VERSION_SEPARATOR: &str = "||";

/// How many keys one `SCAN` step asks for when every key is read.
const SCAN_COUNT: usize = 500;

/// Dapr's Redis configuration store.
pub struct RedisConfigurationStore {
    client: redis::Client,
    connection: ConnectionManager,
    db: i64,
}

impl RedisConfigurationStore {
    /// The Dapr component type this store serves.
    pub const COMPONENT_TYPE: &'static str = "configuration.redis";

    /// A store that connects on first use and reconnects by itself.
    pub fn open(options: &RedisOptions) -> Result<RedisConfigurationStore, OpenError> {
        let (client, connection) = connect(Self::COMPONENT_TYPE, options)?;
        Ok(RedisConfigurationStore { client, connection, db: options.db })
    }

    fn channel(&self, key: &str) -> String {
        format!("__keyspace@{}__:{key}", self.db)
    }
}

fn backend(err: redis::RedisError) -> ConfigurationError {
    ConfigurationError::Backend(format!("{}: {err}", RedisConfigurationStore::COMPONENT_TYPE))
}

/// A stored `value||version` as an item; `None` for an empty value, which daprd does not answer.
fn item(stored: &str) -> Option<ConfigurationItem> {
    let (value, version) = stored.split_once(VERSION_SEPARATOR).unwrap_or((stored, ""));
    // daprd splits on every separator and keeps the first two parts.
    let version = version.split(VERSION_SEPARATOR).next().unwrap_or_default();
    (!value.is_empty()).then(|| ConfigurationItem {
        value: value.to_owned(),
        version: version.to_owned(),
        metadata: Default::default(),
    })
}

impl RedisConfigurationStore {
    /// Every key of the database, a `SCAN` step at a time (never a blocking `KEYS *`).
    async fn all_keys(&self) -> Result<Vec<String>, ConfigurationError> {
        let mut connection = self.connection.clone();
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut connection)
                .await
                .map_err(backend)?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }
}

#[async_trait]
impl ConfigurationStore for RedisConfigurationStore {
    async fn get(&self, keys: &[String]) -> Result<Items, ConfigurationError> {
        let keys = if keys.is_empty() { self.all_keys().await? } else { keys.to_vec() };
        if keys.is_empty() {
            return Ok(Items::new());
        }
        let mut connection = self.connection.clone();
        // MGET answers nil for a key that is missing or holds no string: daprd skips both.
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut connection).await.map_err(backend)?;
        let found = keys.into_iter().zip(values).filter_map(|(key, value)| Some((key, item(&value?)?)));
        Ok(found.collect())
    }

    async fn listen(
        &self,
        keys: &[String],
        _metadata: &outrigger_bus::Metadata,
    ) -> Result<Box<dyn Listener>, ConfigurationError> {
        within(
            OPERATION_DEADLINE,
            Self::COMPONENT_TYPE,
            async {
                let mut pubsub = self.client.get_async_pubsub().await.map_err(backend)?;
                if keys.is_empty() {
                    pubsub.psubscribe(self.channel("*")).await.map_err(backend)?;
                } else {
                    let channels: Vec<String> = keys.iter().map(|key| self.channel(key)).collect();
                    pubsub.subscribe(channels).await.map_err(backend)?;
                }
                Ok(Box::new(KeyspaceEvents(pubsub.into_on_message())) as Box<dyn Listener>)
            },
            ConfigurationError::Backend,
        )
        .await
    }
}

/// Keyspace notifications of the keys listened for.
struct KeyspaceEvents(PubSubStream);

#[async_trait]
impl Listener for KeyspaceEvents {
    async fn changed(&mut self) -> Result<(), ConfigurationError> {
        match self.0.next().await {
            Some(_) => Ok(()),
            None => Err(ConfigurationError::Backend(format!(
                "{}: the connection listening for changes closed",
                RedisConfigurationStore::COMPONENT_TYPE
            ))),
        }
    }
}

/// `configuration.redis`: a Redis server the egress rule lets the project reach.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(
        RedisConfigurationStore::COMPONENT_TYPE,
        BuildingBlock::Configuration,
        &[REDIS_CLIENT_FIELDS],
    ),
    opener: Opener::Configuration(open),
};

fn open(opening: Opening<'_>) -> BoxFuture<'_, Result<Arc<dyn ConfigurationStore>, OpenError>> {
    Box::pin(async move {
        let options = opening.fields.redis_options(RedisConfigurationStore::COMPONENT_TYPE, opening.boundary).await?;
        Ok(Arc::new(RedisConfigurationStore::open(&options)?) as _)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_split_as_daprd_splits_them() {
        assert_eq!(
            item("blue||3").unwrap(),
            ConfigurationItem { value: "blue".into(), version: "3".into(), ..Default::default() }
        );
        assert_eq!(item("blue").unwrap().version, "");
        assert_eq!(item("blue||3||x").unwrap().version, "3");
        assert!(item("").is_none());
        assert!(item("||3").is_none());
    }
}
