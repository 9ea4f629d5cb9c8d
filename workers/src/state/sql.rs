//! The state table the SQL stores share: `key TEXT PRIMARY KEY, value, etag TEXT, expires_at` (Unix
//! milliseconds, NULL = never), one set of statements run through sqlx's `Any` driver on SQLite and on
//! PostgreSQL alike. ETags are random UUIDs, so a key deleted and written again never gets an old ETag back.
//!
//! Every conditional write is a single statement whose `WHERE` carries the precondition (an `UPDATE ...
//! WHERE etag = ?`, an `INSERT ... ON CONFLICT DO UPDATE ... WHERE <stored item expired>`); "no row
//! changed" is the refusal. That keeps each check and its write atomic on PostgreSQL's concurrent
//! connections without row locks, and lets a transaction be one database transaction of such statements.

use std::marker::PhantomData;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{AnyConnection, AnyPool, Row};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::open::OpenError;
use super::time::{expiry, now_ms, within_deadline, SweepSchedule, OPERATION_DEADLINE};
use super::write::{self, ApplyWrites, Change, Precondition, Write};
use super::{DeleteRequest, Features, SetRequest, StateError, StateStore, StoredItem, TransactionOperation};

/// Table name when the component's metadata names none (`tableName`).
pub const DEFAULT_TABLE_NAME: &str = "state";

/// How often expired rows are deleted when the component's metadata does not say (`cleanupInterval`).
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(3600);

/// What differs between the SQL engines: implemented by [`super::SqliteDialect`] and
/// [`super::PostgresDialect`].
pub trait SqlDialect: Send + Sync + 'static {
    /// The Dapr component type served with this engine.
    const COMPONENT_TYPE: &'static str;

    /// `CREATE TABLE IF NOT EXISTS` for a state table named `table`.
    fn create_table(table: &str) -> String;
}

/// A Dapr state store over a SQL table; see [`super::SqliteStateStore`] and [`super::PostgresStateStore`].
pub struct SqlStateStore<D: SqlDialect> {
    pool: AnyPool,
    statements: Statements,
    table_created: OnceCell<()>,
    sweeps: SweepSchedule,
    dialect: PhantomData<D>,
}

/// The statements of one table. Parameters keep the same positions across the variants of a write, so
/// that binding can add the precondition's parameters at the end.
struct Statements {
    create_table: String,
    get: String,
    scan_prefix: String,
    upsert: String,
    insert_if_absent: String,
    update_if_etag: String,
    delete: String,
    delete_if_etag: String,
    sweep: String,
}

impl Statements {
    fn new<D: SqlDialect>(table: &str) -> Statements {
        let live = |now: &str| format!("(expires_at IS NULL OR expires_at > {now})");
        let upsert = format!(
            "INSERT INTO {table} AS stored (key, value, etag, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, etag = excluded.etag, expires_at = excluded.expires_at"
        );
        Statements {
            create_table: D::create_table(table),
            get: format!("SELECT value, etag, expires_at FROM {table} WHERE key = $1 AND {}", live("$2")),
            // substr rather than LIKE: LIKE would read '%' and '_' in keys as wildcards, and SQLite's LIKE
            // ignores case.
            scan_prefix: format!(
                "SELECT key, value, etag, expires_at FROM {table} WHERE substr(key, 1, length($1)) = $1 AND {} \
                 ORDER BY key",
                live("$2")
            ),
            insert_if_absent: format!("{upsert} WHERE stored.expires_at IS NOT NULL AND stored.expires_at <= $5"),
            upsert,
            update_if_etag: format!(
                "UPDATE {table} SET value = $2, etag = $3, expires_at = $4 WHERE key = $1 AND {} AND etag = $6",
                live("$5")
            ),
            delete: format!("DELETE FROM {table} WHERE key = $1"),
            delete_if_etag: format!("DELETE FROM {table} WHERE key = $1 AND {} AND etag = $3", live("$2")),
            sweep: format!("DELETE FROM {table} WHERE expires_at IS NOT NULL AND expires_at <= $1"),
        }
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|rest| rest.is_ascii_alphanumeric() || rest == '_')
}

/// Checks a table name (metadata `field`) before it is written into SQL: identifiers only, optionally
/// `schema.table`.
pub(crate) fn check_table_name(
    component_type: &'static str,
    field: &'static str,
    name: &str,
    schema_allowed: bool,
) -> Result<(), OpenError> {
    let parts: Vec<&str> = name.split('.').collect();
    let shape_ok = parts.len() == 1 || (schema_allowed && parts.len() == 2);
    if shape_ok && parts.iter().all(|part| is_identifier(part)) {
        return Ok(());
    }
    let shape = if schema_allowed { "a table name or schema.table" } else { "a table name" };
    Err(OpenError::InvalidField {
        component_type,
        field,
        reason: format!("'{name}' is not {shape} made of letters, digits and underscores (not starting with a digit)"),
    })
}

/// What went wrong in a database call, for a backend error of `component_type`.
pub(crate) fn describe_sqlx_error(component_type: &str, err: sqlx::Error) -> String {
    match err {
        sqlx::Error::PoolTimedOut => format!(
            "{component_type}: no database connection became available in time; is the database up and the \
             connection string right?"
        ),
        other => format!("{component_type}: {other}"),
    }
}

fn backend_error<D: SqlDialect>(err: sqlx::Error) -> StateError {
    StateError::Backend(describe_sqlx_error(D::COMPONENT_TYPE, err))
}

fn stored_item<D: SqlDialect>(row: &sqlx::any::AnyRow) -> Result<StoredItem, StateError> {
    Ok(StoredItem {
        value: row.try_get("value").map_err(backend_error::<D>)?,
        etag: row.try_get("etag").map_err(backend_error::<D>)?,
        expires_at: row.try_get("expires_at").map_err(backend_error::<D>)?,
    })
}

impl<D: SqlDialect> SqlStateStore<D> {
    /// A store over `table` (already checked) through `pool`, which may not have connected yet.
    pub(crate) fn new(pool: AnyPool, table: &str, cleanup_interval: Option<Duration>) -> SqlStateStore<D> {
        SqlStateStore {
            pool,
            statements: Statements::new::<D>(table),
            table_created: OnceCell::new(),
            sweeps: SweepSchedule::new(cleanup_interval),
            dialect: PhantomData,
        }
    }

    /// Creates the table unless a previous call did; a failed attempt is retried by the next call, so a
    /// store opened while its database was down starts working once the database is back.
    pub(crate) async fn ensure_table(&self) -> Result<(), StateError> {
        self.table_created
            .get_or_try_init(|| async {
                sqlx::query(&self.statements.create_table).execute(&self.pool).await.map_err(backend_error::<D>)?;
                Ok(())
            })
            .await
            .map(drop)
    }

    async fn apply_one(
        &self,
        connection: &mut AnyConnection,
        write: &Write<'_>,
        now: i64,
    ) -> Result<Option<String>, StateError> {
        let statements = &self.statements;
        let (query, new_etag) = match write.change {
            Change::Put { value, ttl_seconds } => {
                let etag = Uuid::new_v4().to_string();
                let (sql, expected_etag) = match write.precondition {
                    Precondition::None => (&statements.upsert, None),
                    Precondition::Absent => (&statements.insert_if_absent, None),
                    Precondition::Etag(expected) => (&statements.update_if_etag, Some(expected)),
                };
                let mut query =
                    sqlx::query(sql).bind(write.key).bind(value).bind(etag.clone()).bind(expiry(ttl_seconds, now));
                if write.precondition != Precondition::None {
                    query = query.bind(now);
                }
                if let Some(expected) = expected_etag {
                    query = query.bind(expected);
                }
                (query, Some(etag))
            }
            Change::Remove => match write.precondition {
                Precondition::Etag(expected) => {
                    (sqlx::query(&statements.delete_if_etag).bind(write.key).bind(now).bind(expected), None)
                }
                Precondition::None | Precondition::Absent => (sqlx::query(&statements.delete).bind(write.key), None),
            },
        };
        let outcome = query.execute(connection).await.map_err(backend_error::<D>)?;
        if outcome.rows_affected() == 0 && write.precondition != Precondition::None {
            return Err(write.precondition.refusal(write.key));
        }
        Ok(new_etag)
    }

    /// Deletes expired rows in the background when a sweep is due.
    fn sweep_if_due(&self) {
        let now = now_ms();
        if !self.sweeps.claim(now) {
            return;
        }
        let pool = self.pool.clone();
        let sweep = self.statements.sweep.clone();
        tokio::spawn(async move {
            let deleting = sqlx::query(&sweep).bind(now).execute(&pool);
            match tokio::time::timeout(OPERATION_DEADLINE, deleting).await {
                Ok(Ok(outcome)) => {
                    tracing::debug!(
                        component_type = D::COMPONENT_TYPE,
                        rows = outcome.rows_affected(),
                        "expired state swept"
                    );
                }
                Ok(Err(err)) => {
                    tracing::warn!(component_type = D::COMPONENT_TYPE, %err, "sweeping expired state failed")
                }
                Err(_) => tracing::warn!(component_type = D::COMPONENT_TYPE, "sweeping expired state timed out"),
            }
        });
    }
}

#[async_trait]
impl<D: SqlDialect> ApplyWrites for SqlStateStore<D> {
    fn is_well_formed_etag(etag: &str) -> bool {
        Uuid::try_parse(etag).is_ok()
    }

    async fn apply(&self, writes: &[Write<'_>]) -> Result<Vec<String>, StateError> {
        let etags = within_deadline(D::COMPONENT_TYPE, async {
            self.ensure_table().await?;
            let now = now_ms();
            // A lone statement is atomic by itself; it needs no BEGIN/COMMIT round trips.
            if let [write] = writes {
                let mut connection = self.pool.acquire().await.map_err(backend_error::<D>)?;
                return Ok(self.apply_one(&mut connection, write, now).await?.into_iter().collect());
            }
            // Dropped on an error, the transaction rolls back.
            let mut transaction = self.pool.begin().await.map_err(backend_error::<D>)?;
            let mut etags = Vec::new();
            for write in writes {
                etags.extend(self.apply_one(&mut transaction, write, now).await?);
            }
            transaction.commit().await.map_err(backend_error::<D>)?;
            Ok(etags)
        })
        .await?;
        self.sweep_if_due();
        Ok(etags)
    }
}

#[async_trait]
impl<D: SqlDialect> StateStore for SqlStateStore<D> {
    fn features(&self) -> Features {
        Features { transactional: true, etag: true, ttl: true, query: true }
    }

    async fn ping(&self) -> Result<(), StateError> {
        within_deadline(D::COMPONENT_TYPE, async {
            sqlx::query("SELECT 1").execute(&self.pool).await.map_err(backend_error::<D>)?;
            Ok(())
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<StoredItem>, StateError> {
        within_deadline(D::COMPONENT_TYPE, async {
            self.ensure_table().await?;
            let row = sqlx::query(&self.statements.get)
                .bind(key)
                .bind(now_ms())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend_error::<D>)?;
            row.as_ref().map(stored_item::<D>).transpose()
        })
        .await
    }

    async fn set(&self, request: &SetRequest) -> Result<String, StateError> {
        write::set(self, request).await
    }

    async fn delete(&self, request: &DeleteRequest) -> Result<(), StateError> {
        write::delete(self, request).await
    }

    async fn transact(&self, operations: &[TransactionOperation]) -> Result<(), StateError> {
        write::transact(self, operations).await
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, StoredItem)>, StateError> {
        within_deadline(D::COMPONENT_TYPE, async {
            self.ensure_table().await?;
            let rows = sqlx::query(&self.statements.scan_prefix)
                .bind(prefix)
                .bind(now_ms())
                .fetch_all(&self.pool)
                .await
                .map_err(backend_error::<D>)?;
            rows.iter()
                .map(|row| Ok((row.try_get("key").map_err(backend_error::<D>)?, stored_item::<D>(row)?)))
                .collect()
        })
        .await
    }
}
