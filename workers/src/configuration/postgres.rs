//! `configuration.postgresql` (also daprd's `configuration.postgres`): daprd's PostgreSQL configuration store. Items
//! are the rows of the component's `table`, read by position as `key, value, version, metadata` (daprd's `SELECT
//! *`); where a key has several rows the highest numeric version wins. Changes are heard through `LISTEN` on the
//! component's `notifyChannel` (or the subscription's `pgNotifyChannel` metadata), whose payloads the table's
//! trigger writes as daprd's does: JSON with the row under `data`. The database's address passes the egress rule.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use outrigger_bus::{ConfigurationItem, Metadata};
use outrigger_resources::{optional, required, BuildingBlock, ComponentType, MetadataField};
use serde_json::Value;
use sqlx::postgres::{PgListener, PgPool, PgRow};
use sqlx::types::Json;
use sqlx::Row;

use super::{ConfigurationError, ConfigurationStore, Items, Listener};
use crate::components::{Backend, Opener, Opening};
use crate::state::connection::connection;
use crate::state::open::OpenError;
use crate::state::postgres::{native_pool, statement_timeout, POSTGRESQL_FIELDS, TIMEOUT_FIELDS};
use crate::state::time::within;

/// How long a read may take when the component names no `timeout` (daprd's default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Connections per component and worker, besides one per listening subscription.
const POOL_SIZE: u32 = 4;
/// daprd's longest table or channel name.
const LONGEST_NAME: usize = 64;

/// Dapr's PostgreSQL configuration store.
pub struct PostgresConfigurationStore {
    pool: PgPool,
    table: String,
    notify_channel: Option<String>,
    timeout: Duration,
}

impl PostgresConfigurationStore {
    /// The Dapr component type this store serves.
    pub const COMPONENT_TYPE: &'static str = "configuration.postgresql";
    /// daprd's other name for it.
    pub const ALIAS: &'static str = "configuration.postgres";
}

fn backend(err: sqlx::Error) -> ConfigurationError {
    ConfigurationError::Backend(format!("{}: {err}", PostgresConfigurationStore::COMPONENT_TYPE))
}

/// Whether `name` is a table or channel name daprd accepts: lower-case letters, digits, `.`, `/`, `_`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= LONGEST_NAME
        && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"./_".contains(&byte))
}

/// Whether `key` is a key daprd reads: letters, digits, `.`, `/`, `_`.
fn valid_key(key: &str) -> bool {
    key.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"./_".contains(&byte))
}

/// A JSON object of the metadata column as text values.
fn metadata_of(value: Option<Value>) -> std::collections::BTreeMap<String, String> {
    let Some(Value::Object(entries)) = value else { return Default::default() };
    let text = |value: Value| match value {
        Value::String(text) => text,
        other => other.to_string(),
    };
    entries.into_iter().map(|(name, value)| (name, text(value))).collect()
}

/// One row, read by position as daprd scans it.
fn row_item(row: &PgRow) -> Result<(String, ConfigurationItem), sqlx::Error> {
    let metadata = match row.try_get::<Option<Json<Value>>, _>(3) {
        Ok(json) => json.map(|json| json.0),
        Err(_) => row.try_get::<Option<String>, _>(3)?.and_then(|text| serde_json::from_str(&text).ok()),
    };
    let item = ConfigurationItem { value: row.try_get(1)?, version: row.try_get(2)?, metadata: metadata_of(metadata) };
    Ok((row.try_get(0)?, item))
}

/// A version as daprd compares them: its number, or -1.
fn version_number(version: &str) -> i64 {
    version.trim().parse().unwrap_or(-1)
}

#[async_trait]
impl ConfigurationStore for PostgresConfigurationStore {
    async fn get(&self, keys: &[String]) -> Result<Items, ConfigurationError> {
        if let Some(key) = keys.iter().find(|key| !valid_key(key)) {
            return Err(ConfigurationError::Backend(format!("invalid key : '{key}'")));
        }
        let read = async {
            let mut connection = connection(&self.pool).await.map_err(backend)?;
            let rows = if keys.is_empty() {
                sqlx::query(&format!("SELECT * FROM {}", self.table)).fetch_all(&mut *connection).await
            } else {
                let placeholders: Vec<String> = (1..=keys.len()).map(|index| format!("${index}")).collect();
                let sql = format!("SELECT * FROM {} WHERE KEY IN ({})", self.table, placeholders.join(", "));
                keys.iter().fold(sqlx::query(&sql), |query, key| query.bind(key)).fetch_all(&mut *connection).await
            };
            let rows = rows.map_err(|err| match &err {
                sqlx::Error::Database(database) if database.code().as_deref() == Some("42P01") => {
                    ConfigurationError::Backend(format!(
                        "postgreSQL configuration table '{}' does not exist",
                        self.table
                    ))
                }
                _ => backend(err),
            })?;
            let mut items = Items::new();
            for row in &rows {
                let (key, item) = row_item(row).map_err(backend)?;
                let newer =
                    items.get(&key).is_none_or(|held| version_number(&item.version) > version_number(&held.version));
                if newer {
                    items.insert(key, item);
                }
            }
            Ok(items)
        };
        within(self.timeout, Self::COMPONENT_TYPE, read, ConfigurationError::Backend).await
    }

    async fn listen(&self, keys: &[String], metadata: &Metadata) -> Result<Box<dyn Listener>, ConfigurationError> {
        let requested = metadata.iter().find(|(name, _)| name.eq_ignore_ascii_case("pgNotifyChannel"));
        let channel = self.notify_channel.clone().or_else(|| requested.map(|(_, channel)| channel.clone()));
        let channel = channel.ok_or_else(|| {
            ConfigurationError::Backend(format!(
                "unable to subscribe to \"{}\". notifyChannel must be set in component metadata or request metadata",
                self.table
            ))
        })?;
        if !valid_name(&channel) {
            return Err(ConfigurationError::Backend(format!(
                "notify channel '{channel}': use lower-case letters, digits, '.', '/' and '_'"
            )));
        }
        let listening = async {
            let mut listener = PgListener::connect_with(&self.pool).await.map_err(backend)?;
            listener.listen(&channel).await.map_err(backend)?;
            Ok(Box::new(Notifications { listener, keys: keys.to_vec() }) as Box<dyn Listener>)
        };
        within(self.timeout, Self::COMPONENT_TYPE, listening, ConfigurationError::Backend).await
    }
}

/// The notifications of one subscription's channel.
struct Notifications {
    listener: PgListener,
    keys: Vec<String>,
}

/// The key of a notification payload (`{"data": {"key": ...}}`, names in any case), if it is one.
fn notified_key(payload: &str) -> Option<String> {
    let payload: Value = serde_json::from_str(payload).ok()?;
    let Value::Object(data) = payload.get("data")? else { return None };
    data.iter().find(|(name, _)| name.eq_ignore_ascii_case("key")).and_then(|(_, key)| key.as_str().map(str::to_owned))
}

#[async_trait]
impl Listener for Notifications {
    async fn changed(&mut self) -> Result<(), ConfigurationError> {
        loop {
            let notification = self.listener.recv().await.map_err(backend)?;
            match notified_key(notification.payload()) {
                Some(key) if self.keys.is_empty() || self.keys.contains(&key) => return Ok(()),
                Some(_) => {}
                None => {
                    tracing::warn!(payload = notification.payload(), "unknown format of data received in notify event")
                }
            }
        }
    }
}

const CONFIGURATION_FIELDS: &[MetadataField] =
    &[required("table"), optional("notifyChannel"), optional("pgNotifyChannel"), optional("connMaxIdleTime")];

/// `configuration.postgresql`: a table in a PostgreSQL database the egress rule lets the project reach.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(
        PostgresConfigurationStore::COMPONENT_TYPE,
        BuildingBlock::Configuration,
        &[POSTGRESQL_FIELDS, TIMEOUT_FIELDS, CONFIGURATION_FIELDS],
    ),
    opener: Opener::Configuration(open),
};

/// `configuration.postgres`: the same store under daprd's other name.
pub(crate) static ALIAS_BACKEND: Backend = Backend {
    declared: ComponentType::v1(
        PostgresConfigurationStore::ALIAS,
        BuildingBlock::Configuration,
        &[POSTGRESQL_FIELDS, TIMEOUT_FIELDS, CONFIGURATION_FIELDS],
    ),
    opener: Opener::Configuration(open),
};

fn open(opening: Opening<'_>) -> BoxFuture<'_, Result<Arc<dyn ConfigurationStore>, OpenError>> {
    Box::pin(async move {
        let Opening { fields, boundary, .. } = opening;
        let table = fields.required("table", "the table holding the items (key, value, version, metadata)")?;
        if !valid_name(table) {
            return Err(fields.invalid(
                "table",
                format!("'{table}': use at most {LONGEST_NAME} lower-case letters, digits, '.', '/' and '_'"),
            ));
        }
        let notify_channel =
            fields.get("notifyChannel").or(fields.get("pgNotifyChannel")).filter(|name| !name.is_empty());
        if let Some(channel) = notify_channel.filter(|channel| !valid_name(channel)) {
            return Err(fields.invalid(
                "notifyChannel",
                format!("'{channel}': use at most {LONGEST_NAME} lower-case letters, digits, '.', '/' and '_'"),
            ));
        }
        let store = PostgresConfigurationStore {
            pool: native_pool(PostgresConfigurationStore::COMPONENT_TYPE, &fields, boundary, POOL_SIZE).await?,
            table: table.to_owned(),
            notify_channel: notify_channel.map(str::to_owned),
            timeout: statement_timeout(&fields)?.unwrap_or(DEFAULT_TIMEOUT),
        };
        Ok(Arc::new(store) as _)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keys_and_payloads_read_as_daprd_reads_them() {
        assert!(valid_name("configtable") && valid_name("app.config_v2"));
        assert!(!valid_name("ConfigTable") && !valid_name("t; DROP TABLE x") && !valid_name(""));
        assert!(valid_key("orders/color.v1") && !valid_key("a-b"));
        assert_eq!(
            notified_key(r#"{"table":"t","action":"INSERT","data":{"KEY":"color","VALUE":"red"}}"#).as_deref(),
            Some("color")
        );
        assert_eq!(notified_key("not json"), None);
        assert_eq!(version_number("12"), 12);
        assert_eq!(version_number("v1"), -1);
    }
}
