//! `state.sqlite`: the state table in a SQLite file (or in memory).

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;
use sqlx::Executor;

use super::open::OpenError;
use super::sql::{
    check_table_name, SqlDialect, SqlStateStore, DEFAULT_CLEANUP_INTERVAL, DEFAULT_TABLE_NAME, SQL_TABLE_FIELDS,
};
use super::sql_filter::JsonDialect;
use super::StateStore;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use outrigger_resources::{optional, required_file, BuildingBlock, ComponentType, MetadataField};

use crate::components::{Backend, Opener, Opening};

/// SQLite as a [`SqlDialect`].
#[derive(Debug)]
pub struct SqliteDialect;

impl SqlDialect for SqliteDialect {
    const COMPONENT_TYPE: &'static str = "state.sqlite";
    const JSON: JsonDialect = JsonDialect::Sqlite;
    // TEXT compares with BINARY (memcmp) unless a column says otherwise, and the primary key's index does.
    const KEY_BYTEWISE: &'static str = "key";

    fn create_table(table: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {table} \
             (key TEXT NOT NULL PRIMARY KEY, value BLOB NOT NULL, etag TEXT NOT NULL, expires_at INTEGER)"
        )
    }

    fn scan_statement(inner: &str, candidate: Option<&str>) -> String {
        let selected = candidate.map_or_else(|| "live".to_owned(), |candidate| format!("live AND ({candidate})"));
        format!(
            "SELECT key, etag, expires_at, size, CASE WHEN {selected} THEN value END AS value FROM ({inner}) AS s \
             ORDER BY key"
        )
    }
}

/// Dapr's SQLite state store.
pub type SqliteStateStore = SqlStateStore<SqliteDialect>;

/// Where and how a [`SqliteStateStore`] keeps its data (Dapr metadata `connectionString`, `tableName`,
/// `cleanupInterval`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// A file path, `file:` followed by one, or `:memory:`. The file is created when missing.
    pub connection_string: String,
    /// The table; created when missing.
    pub table_name: String,
    /// How often expired rows are deleted; `None` never.
    pub cleanup_interval: Option<Duration>,
}

impl SqliteOptions {
    /// Options with the default table name and cleanup interval.
    pub fn new(connection_string: impl Into<String>) -> SqliteOptions {
        SqliteOptions {
            connection_string: connection_string.into(),
            table_name: DEFAULT_TABLE_NAME.to_owned(),
            cleanup_interval: Some(DEFAULT_CLEANUP_INTERVAL),
        }
    }
}

/// The sqlx URL of a Dapr SQLite connection string.
fn database_url(component_type: &'static str, connection_string: &str) -> Result<String, OpenError> {
    let invalid =
        |reason: &str| OpenError::InvalidField { component_type, field: "connectionString", reason: reason.to_owned() };
    let path = connection_string.strip_prefix("file:").unwrap_or(connection_string);
    if path.contains('?') {
        return Err(invalid("connection parameters ('?...') are not supported; give the database file path alone"));
    }
    match path {
        "" => Err(invalid("no database file path; give one, such as data.db, or :memory:")),
        ":memory:" => Ok("sqlite::memory:".to_owned()),
        // sqlx percent-decodes the path and a URL ends at '#'.
        path => Ok(format!("sqlite:{}?mode=rwc", path.replace('%', "%25").replace('#', "%23"))),
    }
}

/// When a commit returns, relative to the disk (SQLite's `synchronous` in WAL mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Synced to disk (`FULL`): the commit survives a power loss.
    Disk,
    /// Written to the OS, synced at checkpoints (`NORMAL`): the commit survives the process crashing, not the
    /// machine.
    Os,
}

/// The pool's own limit on waiting for its connection, a backstop only (see [`pool`]).
const POOL_WAIT_BACKSTOP: Duration = Duration::from_secs(24 * 3600);

/// A pool on the SQLite database a Dapr connection string names (a file path, `file:` and one, or
/// `:memory:`), connecting on first use; `component_type` names the component in errors.
pub(crate) fn pool(
    component_type: &'static str,
    connection_string: &str,
    durability: Durability,
) -> Result<AnyPool, OpenError> {
    let url = database_url(component_type, connection_string)?;
    sqlx::any::install_default_drivers();
    let connect_options = AnyConnectOptions::from_str(&url).map_err(|err| OpenError::InvalidField {
        component_type,
        field: "connectionString",
        reason: err.to_string(),
    })?;
    Ok(AnyPoolOptions::new()
        // One connection: SQLite has a single writer anyway, and one connection queues the store's
        // transactions instead of failing one of two that upgrade to writing at once with SQLITE_BUSY.
        // Never closing it also keeps a `:memory:` database alive.
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        // Waiting for the one connection is part of the call that waits, which its caller bounds (the component's
        // Resiliency timeout, or a fixed deadline outside a policy): a limit of the pool's own would cut a
        // tenant's longer timeout short while another call holds the connection.
        .acquire_timeout(POOL_WAIT_BACKSTOP)
        // A file has no other end to lose: pinging it before each use would only cost a round trip to the
        // connection's thread.
        .test_before_acquire(false)
        .after_connect(move |connection, _| {
            Box::pin(async move {
                connection.execute("PRAGMA journal_mode = WAL").await?;
                let synchronous = match durability {
                    Durability::Disk => "PRAGMA synchronous = FULL",
                    Durability::Os => "PRAGMA synchronous = NORMAL",
                };
                connection.execute(synchronous).await?;
                Ok(())
            })
        })
        .connect_lazy_with(connect_options))
}

impl SqlStateStore<SqliteDialect> {
    /// Opens (creating when missing) the database file and the table. Problems with the file are reported
    /// here, as configuration problems, rather than on first use.
    pub async fn open(options: SqliteOptions) -> Result<SqliteStateStore, OpenError> {
        check_table_name(SqliteDialect::COMPONENT_TYPE, "tableName", &options.table_name, false)?;
        let pool = pool(SqliteDialect::COMPONENT_TYPE, &options.connection_string, Durability::Disk)?;
        let store = SqliteStateStore::new(pool, &options.table_name, options.cleanup_interval);
        store.ensure_table().await.map_err(|err| OpenError::Backend {
            component_type: SqliteDialect::COMPONENT_TYPE,
            message: err.to_string(),
        })?;
        Ok(store)
    }
}

/// `busyTimeout` declares no default: daprd waits 2 s for a locked file, this worker the driver's 5 s.
const SQLITE_FIELDS: &[MetadataField] =
    &[required_file("connectionString"), optional("busyTimeout"), optional("disableWAL").defaults_to("false")];

/// `state.sqlite`: a database file inside the project's directory (or `:memory:`).
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(
        SqliteDialect::COMPONENT_TYPE,
        BuildingBlock::State,
        &[SQLITE_FIELDS, SQL_TABLE_FIELDS],
    ),
    opener: Opener::State(open),
};

fn open(opening: Opening<'_>) -> BoxFuture<'_, Result<Arc<dyn StateStore>, OpenError>> {
    Box::pin(async move {
        let Opening { fields, boundary, .. } = opening;
        let given = fields.required("connectionString", "a database file path such as data.db, or :memory:")?;
        let connection_string = match outrigger_resources::sqlite_file(given) {
            Some(file) => {
                boundary.file(SqliteDialect::COMPONENT_TYPE, "connectionString", file).await?.display().to_string()
            }
            None => given.to_owned(),
        };
        let options = SqliteOptions {
            connection_string,
            table_name: fields.get("tableName").unwrap_or(DEFAULT_TABLE_NAME).to_owned(),
            cleanup_interval: fields.cleanup_interval()?,
        };
        Ok(Arc::new(SqliteStateStore::open(options).await?) as _)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call waiting for the connection another call holds is bounded by its caller alone: it still gets the
    /// connection after the 5 s the pool once allowed.
    #[tokio::test]
    async fn a_call_waits_for_the_connection_as_long_as_its_caller_allows() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.db").display().to_string();
        let pool = pool(SqliteDialect::COMPONENT_TYPE, &file, Durability::Disk).unwrap();
        let store = SqliteStateStore::new(pool.clone(), DEFAULT_TABLE_NAME, None);
        store.ensure_table().await.unwrap();
        let held = pool.acquire().await.unwrap();
        let waiting = tokio::spawn(async move { store.get("k").await.map(|item| item.is_none()) });
        // Longer than the pool's old limit: the wait itself is what is tested.
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(!waiting.is_finished(), "the read still waits for the connection: {:?}", waiting.await);
        drop(held);
        assert!(waiting.await.unwrap().unwrap(), "the read gets the connection once it is free, and finds no item");
    }
}
