//! The state table the SQL stores share: `key TEXT PRIMARY KEY, value, etag TEXT, expires_at` (Unix
//! milliseconds, NULL = never), one set of statements run through sqlx's `Any` driver on SQLite and on
//! PostgreSQL alike. ETags are random UUIDs, so a key deleted and written again never gets an old ETag back.
//!
//! Every conditional write is a single statement whose `WHERE` carries the precondition (an `UPDATE ...
//! WHERE etag = ?`, an `INSERT ... ON CONFLICT DO UPDATE ... WHERE <stored item expired>`); "no row
//! changed" is the refusal. That keeps each check and its write atomic on PostgreSQL's concurrent
//! connections without row locks, and lets a transaction be one database transaction of such statements.
//!
//! A query scan ([`super::scan`]) reads one key range (the caller's prefix) in key order, a bounded batch per
//! statement, so the single SQLite connection is free again between batches; the statement evaluates the
//! query's filter itself ([`super::sql_filter`]) and sends back only the values that may match.

use std::marker::PhantomData;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Row};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::connection::connection;
use super::keys::FOREIGN_POSITION;
use super::open::OpenError;
use super::scan::{BatchOrder, Position, ScanBatch, ScanRequest, ScanRow};
use super::sql_filter::{self, Bind, JsonDialect};
use super::time::{expiry, now_ms, within_deadline, SweepSchedule, OPERATION_DEADLINE};
use super::write::{self, ApplyWrites, Change, Precondition, Write};
use super::{DeleteRequest, Features, SetRequest, StateError, StateStore, StoredItem, TransactionOperation};
use super::{KeyPage, KeyPosition, ListedKey};
use outrigger_resources::{optional, MetadataField};

/// Table name when the component's metadata names none (`tableName`).
pub const DEFAULT_TABLE_NAME: &str = "state";

/// How often expired rows are deleted when the component's metadata does not say (`cleanupInterval`).
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(3600);

/// What differs between the SQL engines: implemented by [`super::SqliteDialect`] and
/// [`super::PostgresDialect`].
pub trait SqlDialect: Send + Sync + 'static {
    /// The Dapr component type served with this engine.
    const COMPONENT_TYPE: &'static str;

    /// The JSON functions the query pre-filter is written with.
    const JSON: JsonDialect;

    /// `key` compared byte by byte (code point order), as query pages are ordered on every engine.
    const KEY_BYTEWISE: &'static str;

    /// `CREATE TABLE IF NOT EXISTS` for a state table named `table`.
    fn create_table(table: &str) -> String;

    /// Further `CREATE ... IF NOT EXISTS` statements the table needs (indexes), one per statement.
    fn create_indexes(_table: &str) -> Vec<String> {
        Vec::new()
    }

    /// The query-scan statement: the rows of `inner` (a subquery named `s` with the columns `key`, `value`,
    /// `etag`, `expires_at`, `size` and `live`), each with its value only when `candidate` (SQL over the
    /// row's `value`) holds.
    fn scan_statement(inner: &str, candidate: Option<&str>) -> String;
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
    create_indexes: Vec<String>,
    get: String,
    /// The inner part of a query scan (see [`SqlDialect::scan_statement`]), with and without an upper bound.
    scan_bounded: String,
    scan_unbounded: String,
    upsert: String,
    insert_if_absent: String,
    update_if_etag: String,
    delete: String,
    delete_if_etag: String,
    sweep: String,
    /// Bytes of the live items in a key range ($1 now, $2 the prefix, $3 the end of its range), with and
    /// without an upper bound.
    stored_bytes_bounded: String,
    stored_bytes_unbounded: String,
    /// A page of keys without their values, positioned as a query scan's batch, with and without an upper bound.
    list_keys_bounded: String,
    list_keys_unbounded: String,
}

impl Statements {
    fn new<D: SqlDialect>(table: &str) -> Statements {
        let live = |now: &str| format!("(expires_at IS NULL OR expires_at > {now})");
        let upsert = format!(
            "INSERT INTO {table} AS stored (key, value, etag, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, etag = excluded.etag, expires_at = excluded.expires_at"
        );
        // A key range rather than LIKE or substr: the primary key's index serves it, so a query reads only the
        // caller's own rows however many other projects share the table. $1 now, $2 the key to continue after,
        // $3 the prefix, $4 the batch size, $5 the end of the prefix's range when there is one.
        let key = D::KEY_BYTEWISE;
        let scan = |upper: &str| {
            format!(
                "SELECT key, value, etag, expires_at, {size} AS size, {} AS live FROM {table} \
                 WHERE {key} > $2 AND {key} >= $3{upper} ORDER BY {key} LIMIT $4",
                live("$1"),
                size = if D::JSON == JsonDialect::Postgres { "octet_length(value)::bigint" } else { "length(value)" },
            )
        };
        let octets = |column: &str| match D::JSON {
            JsonDialect::Postgres => format!("octet_length({column})"),
            JsonDialect::Sqlite => format!("length(CAST({column} AS BLOB))"),
        };
        let stored_bytes = |upper: &str| {
            format!(
                "SELECT CAST(COALESCE(SUM({} + {}), 0) AS BIGINT) AS bytes FROM {table} WHERE {key} >= $2{upper} AND {}",
                octets("key"),
                octets("value"),
                live("$1"),
            )
        };
        // The same range and parameters as a query scan's, without the values.
        let list_keys = |upper: &str| {
            format!(
                "SELECT key, etag, expires_at, CAST({size} AS BIGINT) AS size FROM {table} \
                 WHERE {key} > $2 AND {key} >= $3{upper} AND {} ORDER BY {key} LIMIT $4",
                live("$1"),
                size = octets("value"),
            )
        };
        Statements {
            list_keys_bounded: list_keys(&format!(" AND {key} < $5")),
            list_keys_unbounded: list_keys(""),
            stored_bytes_bounded: stored_bytes(&format!(" AND {key} < $3")),
            stored_bytes_unbounded: stored_bytes(""),
            create_table: D::create_table(table),
            create_indexes: D::create_indexes(table),
            get: format!("SELECT value, etag, expires_at FROM {table} WHERE key = $1 AND {}", live("$2")),
            scan_bounded: scan(&format!(" AND {key} < $5")),
            scan_unbounded: scan(""),
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

    /// A connection of the store's pool, waited for as long as the caller waits ([`connection`]).
    async fn connection(&self) -> Result<PoolConnection<Any>, StateError> {
        connection(&self.pool).await.map_err(backend_error::<D>)
    }

    /// Creates the table unless a previous call did; a failed attempt is retried by the next call, so a
    /// store opened while its database was down starts working once the database is back.
    pub(crate) async fn ensure_table(&self) -> Result<(), StateError> {
        self.table_created
            .get_or_try_init(|| async {
                for statement in std::iter::once(&self.statements.create_table).chain(&self.statements.create_indexes) {
                    // PostgreSQL's `IF NOT EXISTS` does not hold between sessions: two workers creating the table at
                    // once make one fail on a catalog unique constraint once the other committed. The statement
                    // then finds the table there and succeeds.
                    let mut connection = self.connection().await?;
                    if sqlx::query(statement).execute(&mut *connection).await.is_err() {
                        sqlx::query(statement).execute(&mut *connection).await.map_err(backend_error::<D>)?;
                    }
                }
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
        self.ensure_table().await?;
        let now = now_ms();
        // A lone statement is atomic by itself; it needs no BEGIN/COMMIT round trips.
        let etags = if let [write] = writes {
            let mut connection = self.connection().await?;
            self.apply_one(&mut connection, write, now).await?.into_iter().collect()
        } else {
            // Dropped on an error, the transaction rolls back.
            let mut connection = self.connection().await?;
            let mut transaction = connection.begin().await.map_err(backend_error::<D>)?;
            let mut etags = Vec::new();
            for write in writes {
                etags.extend(self.apply_one(&mut transaction, write, now).await?);
            }
            transaction.commit().await.map_err(backend_error::<D>)?;
            etags
        };
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
            sqlx::query("SELECT 1").execute(&mut *self.connection().await?).await.map_err(backend_error::<D>)?;
            Ok(())
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<StoredItem>, StateError> {
        self.ensure_table().await?;
        let row = sqlx::query(&self.statements.get)
            .bind(key)
            .bind(now_ms())
            .fetch_optional(&mut *self.connection().await?)
            .await
            .map_err(backend_error::<D>)?;
        row.as_ref().map(stored_item::<D>).transpose()
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

    async fn stored_bytes(&self, prefix: &str) -> Result<u64, StateError> {
        within_deadline(D::COMPONENT_TYPE, async {
            self.ensure_table().await?;
            let upper = prefix_end(prefix);
            let statement = if upper.is_some() {
                &self.statements.stored_bytes_bounded
            } else {
                &self.statements.stored_bytes_unbounded
            };
            let mut query = sqlx::query(statement).bind(now_ms()).bind(prefix.to_owned());
            if let Some(upper) = upper {
                query = query.bind(upper);
            }
            let row = query.fetch_one(&mut *self.connection().await?).await.map_err(backend_error::<D>)?;
            let bytes: i64 = row.try_get("bytes").map_err(backend_error::<D>)?;
            Ok(u64::try_from(bytes).unwrap_or_default())
        })
        .await
    }

    async fn list_keys(&self, prefix: &str, from: &KeyPosition, limit: usize) -> Result<KeyPage, StateError> {
        let after = match from {
            KeyPosition::Start => "",
            KeyPosition::After(key) => key.as_str(),
            KeyPosition::Cursor(_) => return Err(StateError::InvalidRequest(FOREIGN_POSITION.to_owned())),
        };
        within_deadline(D::COMPONENT_TYPE, async {
            self.ensure_table().await?;
            let upper = prefix_end(prefix);
            let statement =
                if upper.is_some() { &self.statements.list_keys_bounded } else { &self.statements.list_keys_unbounded };
            // One row more than the page: whether it comes tells whether another page follows.
            let rows_asked = i64::try_from(limit.max(1)).unwrap_or(i64::MAX - 1) + 1;
            let mut query =
                sqlx::query(statement).bind(now_ms()).bind(after.to_owned()).bind(prefix.to_owned()).bind(rows_asked);
            if let Some(upper) = upper {
                query = query.bind(upper);
            }
            let rows = query.fetch_all(&mut *self.connection().await?).await.map_err(backend_error::<D>)?;
            let mut keys = rows
                .iter()
                .map(|row| {
                    let size: i64 = row.try_get("size").map_err(backend_error::<D>)?;
                    Ok(ListedKey {
                        key: row.try_get("key").map_err(backend_error::<D>)?,
                        size: u64::try_from(size).unwrap_or_default(),
                        etag: row.try_get("etag").map_err(backend_error::<D>)?,
                        expires_at: row.try_get("expires_at").map_err(backend_error::<D>)?,
                    })
                })
                .collect::<Result<Vec<_>, StateError>>()?;
            let more = keys.len() > limit.max(1);
            keys.truncate(limit.max(1));
            let next = more.then(|| keys.last().map(|last| KeyPosition::After(last.key.clone()))).flatten();
            Ok(KeyPage { keys, next })
        })
        .await
    }

    async fn scan(&self, request: &ScanRequest<'_>) -> Result<ScanBatch, StateError> {
        if let Position::Cursor { .. } = request.after {
            return Err(StateError::InvalidRequest(NOT_OUR_TOKEN.to_owned()));
        }
        within_deadline(D::COMPONENT_TYPE, async {
            self.ensure_table().await?;
            let upper = prefix_end(request.prefix);
            let first_filter_parameter = if upper.is_some() { 6 } else { 5 };
            let prefilter =
                request.query.filter().and_then(|filter| sql_filter::compile(D::JSON, filter, first_filter_parameter));
            let rows = match self.scan_rows(request, upper.as_deref(), prefilter.as_ref()).await {
                // PostgreSQL cannot test a value for JSON before converting it: a value that is not JSON
                // fails the pre-filtered statement, so that batch is read without it.
                Err(sqlx::Error::Database(err)) if prefilter.is_some() && is_data_exception(err.code().as_deref()) => {
                    self.scan_rows(request, upper.as_deref(), None).await
                }
                other => other,
            }
            .map_err(backend_error::<D>)?;
            let rows = rows
                .iter()
                .map(|row| {
                    let value: Option<Vec<u8>> = row.try_get("value").map_err(backend_error::<D>)?;
                    let etag: String = row.try_get("etag").map_err(backend_error::<D>)?;
                    let size: i64 = row.try_get("size").map_err(backend_error::<D>)?;
                    let expires_at: Option<i64> = row.try_get("expires_at").map_err(backend_error::<D>)?;
                    Ok(ScanRow {
                        key: row.try_get("key").map_err(backend_error::<D>)?,
                        item: value.map(|value| StoredItem { value, etag, expires_at }),
                        size: u64::try_from(size).unwrap_or_default(),
                    })
                })
                .collect::<Result<Vec<_>, StateError>>()?;
            // A short batch is the end of the range.
            let next = (rows.len() >= request.max_rows)
                .then(|| rows.last().map(|row| Position::After(row.key.clone())))
                .flatten();
            let examined = rows.len() as u64;
            Ok(ScanBatch { rows, next, order: BatchOrder::Keys, examined })
        })
        .await
    }
}

impl<D: SqlDialect> SqlStateStore<D> {
    /// Runs one batch of a query scan.
    async fn scan_rows(
        &self,
        request: &ScanRequest<'_>,
        upper: Option<&str>,
        prefilter: Option<&sql_filter::Prefilter>,
    ) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
        let inner = if upper.is_some() { &self.statements.scan_bounded } else { &self.statements.scan_unbounded };
        let statement = D::scan_statement(inner, prefilter.map(|prefilter| prefilter.sql.as_str()));
        let after = match request.after {
            Position::After(key) => key.as_str(),
            // Refused by `scan` before it gets here.
            Position::Start | Position::Cursor { .. } => "",
        };
        let batch = i64::try_from(request.max_rows.max(1)).unwrap_or(i64::MAX);
        let mut query =
            sqlx::query(&statement).bind(now_ms()).bind(after.to_owned()).bind(request.prefix.to_owned()).bind(batch);
        if let Some(upper) = upper {
            query = query.bind(upper.to_owned());
        }
        for value in prefilter.map(|prefilter| prefilter.binds.as_slice()).unwrap_or_default() {
            query = match value {
                Bind::Text(text) => query.bind(text.clone()),
                Bind::Float(number) => query.bind(*number),
            };
        }
        query.fetch_all(&mut *connection(&self.pool).await?).await
    }
}

/// Why a scan position of another kind of store (a Redis cursor) is refused.
const NOT_OUR_TOKEN: &str = "page.token was not issued by this state store; send the token of the previous page";

/// SQLSTATE class 22, "data exception": a value the statement could not convert.
fn is_data_exception(code: Option<&str>) -> bool {
    code.is_some_and(|code| code.starts_with("22"))
}

/// The least string above every string starting with `prefix` in code point order (byte order of UTF-8),
/// `None` when there is none (an empty prefix, or one of only U+10FFFF).
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = if last == '\u{D7FF}' { Some('\u{E000}') } else { char::from_u32(u32::from(last) + 1) };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Table settings shared by Dapr's SQL state stores.
///
/// `timeout` and `metadataTableName` declare no default although daprd has them (20 s; `dapr_metadata` or
/// `metadata`): these stores' calls are bounded by the component's Resiliency timeout (by default the store
/// timeout) or, outside a policy, by a fixed deadline ([`OPERATION_DEADLINE`]), and they keep no metadata table.
/// `cleanupInterval` is daprd's PostgreSQL default; daprd's SQLite store does not clean up unless told to, while
/// this worker sweeps SQLite files hourly too, so that expired items do not pile up in a project's file.
pub(crate) const SQL_TABLE_FIELDS: &[MetadataField] = &[
    optional("tableName").defaults_to(DEFAULT_TABLE_NAME),
    optional("metadataTableName"),
    optional("timeout"),
    optional("cleanupInterval").defaults_to("1h"),
];
