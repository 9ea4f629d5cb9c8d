//! From a Dapr component (`spec.type` and `spec.metadata`) to an open store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::sql::{SqlDialect, DEFAULT_CLEANUP_INTERVAL, DEFAULT_TABLE_NAME};
use super::{
    MemoryStateStore, PostgresDialect, PostgresOptions, PostgresStateStore, RedisOptions, RedisStateStore,
    SqliteDialect, SqliteOptions, SqliteStateStore, StateStore,
};

const IN_MEMORY: &str = MemoryStateStore::COMPONENT_TYPE;
const SQLITE: &str = SqliteDialect::COMPONENT_TYPE;
const POSTGRESQL: &str = PostgresDialect::COMPONENT_TYPE;
const REDIS: &str = RedisStateStore::COMPONENT_TYPE;

/// Why a component's store cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `spec.type` is not a state store this worker runs.
    #[error("unknown state store type '{0}': use one of {IN_MEMORY}, {SQLITE}, {POSTGRESQL}, {REDIS}")]
    UnknownType(String),
    /// A metadata field the store needs is absent or empty.
    #[error("{component_type}: metadata field '{field}' is required: {hint}")]
    MissingField {
        /// The component type.
        component_type: &'static str,
        /// The Dapr metadata name.
        field: &'static str,
        /// What to put there.
        hint: &'static str,
    },
    /// A metadata field has a value the store cannot use.
    #[error("{component_type}: metadata field '{field}' is invalid: {reason}")]
    InvalidField {
        /// The component type.
        component_type: &'static str,
        /// The Dapr metadata name.
        field: &'static str,
        /// What is wrong and what would be right.
        reason: String,
    },
    /// The backend refused to start (e.g. the SQLite file cannot be created).
    #[error("{component_type}: {message}")]
    Backend {
        /// The component type.
        component_type: &'static str,
        /// The backend's error.
        message: String,
    },
}

/// Opens the store a Dapr component describes (`spec.type` + `spec.metadata` as name -> string value).
///
/// Metadata names match case-insensitively, as in daprd; fields this worker does not use are ignored.
/// Network backends connect on first use (see [`PostgresStateStore::open`], [`RedisStateStore::open`]).
pub async fn open(component_type: &str, metadata: &BTreeMap<String, String>) -> Result<Arc<dyn StateStore>, OpenError> {
    match component_type {
        IN_MEMORY => Ok(Arc::new(MemoryStateStore::new())),
        SQLITE => {
            let fields = Fields { component_type: SQLITE, metadata };
            let options = SqliteOptions {
                connection_string: fields
                    .required("connectionString", "a database file path such as data.db, or :memory:")?
                    .to_owned(),
                table_name: fields.get("tableName").unwrap_or(DEFAULT_TABLE_NAME).to_owned(),
                cleanup_interval: fields.cleanup_interval()?,
            };
            Ok(Arc::new(SqliteStateStore::open(options).await?))
        }
        POSTGRESQL => {
            let fields = Fields { component_type: POSTGRESQL, metadata };
            let options = PostgresOptions {
                connection_string: fields
                    .required(
                        "connectionString",
                        "a postgres://user:password@host:5432/database URL or 'host=... user=... dbname=...' settings",
                    )?
                    .to_owned(),
                table_name: fields.get("tableName").unwrap_or(DEFAULT_TABLE_NAME).to_owned(),
                cleanup_interval: fields.cleanup_interval()?,
            };
            Ok(Arc::new(PostgresStateStore::open(options).await?))
        }
        REDIS => {
            let fields = Fields { component_type: REDIS, metadata };
            if fields.flag("enableTLS")? {
                return Err(fields.invalid(
                    "enableTLS",
                    "TLS to Redis is not built into this worker; set enableTLS to false and reach Redis over a \
                     private network or a TLS-terminating proxy"
                        .to_owned(),
                ));
            }
            let db =
                match fields.get("redisDB") {
                    None => 0,
                    Some(db) => db.parse::<i64>().ok().filter(|db| *db >= 0).ok_or_else(|| {
                        fields.invalid("redisDB", format!("'{db}' is not a database number (0, 1, ...)"))
                    })?,
                };
            let options = RedisOptions {
                host: fields.required("redisHost", "the Redis address as host:port, e.g. redis:6379")?.to_owned(),
                username: fields.get("redisUsername").map(str::to_owned),
                password: fields.get("redisPassword").map(str::to_owned),
                db,
            };
            Ok(Arc::new(RedisStateStore::open(options).await?))
        }
        other => Err(OpenError::UnknownType(other.to_owned())),
    }
}

/// A component's metadata, read the way daprd reads it.
struct Fields<'a> {
    component_type: &'static str,
    metadata: &'a BTreeMap<String, String>,
}

impl Fields<'_> {
    /// The non-empty value of `field`, whatever the case of its name.
    fn get(&self, field: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(field))
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
    }

    fn required(&self, field: &'static str, hint: &'static str) -> Result<&str, OpenError> {
        self.get(field).ok_or(OpenError::MissingField { component_type: self.component_type, field, hint })
    }

    fn invalid(&self, field: &'static str, reason: String) -> OpenError {
        OpenError::InvalidField { component_type: self.component_type, field, reason }
    }

    /// A boolean as Go's `strconv.ParseBool` reads it; absent = false.
    fn flag(&self, field: &'static str) -> Result<bool, OpenError> {
        match self.get(field) {
            None => Ok(false),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(other) => Err(self.invalid(field, format!("'{other}' is not true or false"))),
        }
    }

    /// `cleanupInterval`: a Go duration (`1h`, `30m`, `10s`, `1h30m`, `500ms`) or a number of seconds;
    /// zero or negative turns cleanup off.
    fn cleanup_interval(&self) -> Result<Option<Duration>, OpenError> {
        let Some(text) = self.get("cleanupInterval") else { return Ok(Some(DEFAULT_CLEANUP_INTERVAL)) };
        let invalid = || self.invalid("cleanupInterval", format!("'{text}' is not a duration such as 1h, 30m or 10s"));
        let seconds = parse_go_duration(text).ok_or_else(invalid)?;
        if seconds <= 0.0 {
            return Ok(None);
        }
        Duration::try_from_secs_f64(seconds).map(Some).map_err(|_| invalid())
    }
}

/// Seconds in a Go duration or a plain number of seconds; `None` when it is neither.
fn parse_go_duration(text: &str) -> Option<f64> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Some(seconds as f64);
    }
    let (sign, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest.is_empty() {
        return None;
    }
    let mut seconds = 0.0;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit_seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        seconds += number * unit_seconds;
    }
    Some(sign * seconds)
}
