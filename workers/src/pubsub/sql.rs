//! A durable queue in SQL: the managed `pubsub` of the embedded form (a SQLite file), and a broker on
//! PostgreSQL. One set of statements runs through sqlx's `Any` driver on both, as in the SQL state stores.
//!
//! Three tables share a prefix:
//! - `<prefix>_messages (seq, topic, payload, published_at)`: each message once;
//! - `<prefix>_groups (id, topic, name)`: the consumer groups;
//! - `<prefix>_deliveries (group_id, seq, attempts, available_at)`: one row per message and group until the
//!   group acks it. `available_at` (Unix milliseconds) is when the message may be handed out: its publish
//!   time, then the end of its hold or of its retry delay; `attempts` counts the handouts.
//!
//! Publishing inserts the message and a delivery row for every group its topic has, in one transaction: a
//! group created later never sees the message, one that exists always does. Groups keep no read position,
//! because sequence numbers on PostgreSQL commit out of order and a position could skip a message whose
//! transaction committed late.
//!
//! A fetch claims rows in one `UPDATE`: on PostgreSQL its row choice locks with `FOR UPDATE SKIP LOCKED`, so
//! concurrent fetchers (in any process) pass over each other's rows instead of claiming them twice; SQLite
//! runs one writer at a time anyway. Waiting for messages is polling every [`POLL_INTERVAL`].
//!
//! Retention: an ack deletes the group's delivery row, and a sweep (at most every
//! [`SqlBrokerOptions::sweep_interval`], riding on publishes and acks) deletes the messages left without
//! delivery rows, i.e. acked by every group that existed when they were published. Messages older than
//! [`SqlBrokerOptions::max_age`] (default [`DEFAULT_MAX_AGE`], 24 h) are deleted too, acked or not.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{AnyPool, Row};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::backend::{millis, missing_group, within_deadline, within_wait, DEFAULT_MAX_AGE};
use super::{Broker, BrokerError, Delivery, Features};
use crate::state::open::OpenError;
use crate::state::sql::{check_table_name, describe_sqlx_error};
use crate::state::time::{now_ms, SweepSchedule, OPERATION_DEADLINE};
use crate::state::{postgres, sqlite};

/// How often acked messages are deleted unless [`SqlBrokerOptions::sweep_interval`] says otherwise.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// How often a waiting fetch looks for messages again.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Where a [`SqlBroker`] keeps its queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlBrokerOptions {
    /// A `postgres://` (or `postgresql://`) URL; anything else is a SQLite database as Dapr's SQLite
    /// components take it: a file path (created when missing), `file:` and a path, or `:memory:`.
    pub connection_string: String,
    /// The tables are `<prefix>_messages`, `<prefix>_groups` and `<prefix>_deliveries`, created when missing.
    pub table_prefix: String,
    /// Messages older than this are deleted, acked or not.
    pub max_age: Duration,
    /// Acked and expired messages are deleted at most this often.
    pub sweep_interval: Duration,
}

impl SqlBrokerOptions {
    /// Options with the default retention.
    pub fn new(connection_string: impl Into<String>, table_prefix: impl Into<String>) -> SqlBrokerOptions {
        SqlBrokerOptions {
            connection_string: connection_string.into(),
            table_prefix: table_prefix.into(),
            max_age: DEFAULT_MAX_AGE,
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
        }
    }
}

/// The database engine behind a [`SqlBroker`]: what differs is column types and row locking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// Names the broker in errors.
    fn label(self) -> &'static str {
        match self {
            Engine::Sqlite => "pubsub.sqlite",
            Engine::Postgres => "pubsub.postgresql",
        }
    }

    fn create_tables(self, prefix: &str) -> Vec<String> {
        // AUTOINCREMENT, like PostgreSQL's identities, never reuses a number: an old delivery id must not
        // name a later message, nor an old group id a later group.
        let (serial, bytes, big) = match self {
            Engine::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "INTEGER"),
            Engine::Postgres => ("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BYTEA", "BIGINT"),
        };
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {prefix}_messages \
                 (seq {serial}, topic TEXT NOT NULL, payload {bytes} NOT NULL, published_at {big} NOT NULL)"
            ),
            format!("CREATE INDEX IF NOT EXISTS {prefix}_messages_age ON {prefix}_messages (published_at)"),
            format!(
                "CREATE TABLE IF NOT EXISTS {prefix}_groups \
                 (id {serial}, topic TEXT NOT NULL, name TEXT NOT NULL, UNIQUE (topic, name))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {prefix}_deliveries (group_id {big} NOT NULL, seq {big} NOT NULL, \
                 attempts {big} NOT NULL, available_at {big} NOT NULL, PRIMARY KEY (group_id, seq))"
            ),
            format!("CREATE INDEX IF NOT EXISTS {prefix}_deliveries_seq ON {prefix}_deliveries (seq)"),
        ]
    }

    /// What the claim's row choice adds so that concurrent claims skip each other's rows.
    fn claim_lock(self) -> &'static str {
        match self {
            // One writer at a time: a claim cannot interleave with another.
            Engine::Sqlite => "",
            Engine::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// The statements over one set of tables.
struct Statements {
    create_tables: Vec<String>,
    insert_message: String,
    insert_deliveries: String,
    insert_group: String,
    group_id: String,
    claim: String,
    ack: String,
    retry: String,
    delete_group_deliveries: String,
    delete_group: String,
    sweep_deliveries: String,
    sweep_messages: String,
}

impl Statements {
    fn new(engine: Engine, prefix: &str) -> Statements {
        let (messages, groups, deliveries) =
            (format!("{prefix}_messages"), format!("{prefix}_groups"), format!("{prefix}_deliveries"));
        let group_of = format!("(SELECT id FROM {groups} WHERE topic = $1 AND name = $2)");
        Statements {
            create_tables: engine.create_tables(prefix),
            insert_message: format!(
                "INSERT INTO {messages} (topic, payload, published_at) VALUES ($1, $2, $3) RETURNING seq"
            ),
            insert_deliveries: format!(
                "INSERT INTO {deliveries} (group_id, seq, attempts, available_at) \
                 SELECT id, $2, 0, $3 FROM {groups} WHERE topic = $1"
            ),
            insert_group: format!(
                "INSERT INTO {groups} (topic, name) VALUES ($1, $2) ON CONFLICT (topic, name) DO NOTHING"
            ),
            group_id: format!("SELECT id FROM {groups} WHERE topic = $1 AND name = $2"),
            // $1 group, $2 now, $3 max, $4 end of the hold.
            // No alias for the updated table: SQLite's RETURNING knows it by its name only.
            claim: format!(
                "UPDATE {deliveries} SET attempts = attempts + 1, available_at = $4 \
                 WHERE group_id = $1 AND seq IN (SELECT seq FROM {deliveries} \
                 WHERE group_id = $1 AND available_at <= $2 ORDER BY seq LIMIT $3{}) RETURNING seq, attempts, \
                 (SELECT payload FROM {messages} AS m WHERE m.seq = {deliveries}.seq) AS payload",
                engine.claim_lock()
            ),
            ack: format!("DELETE FROM {deliveries} WHERE group_id = {group_of} AND seq = $3"),
            retry: format!("UPDATE {deliveries} SET available_at = $4 WHERE group_id = {group_of} AND seq = $3"),
            delete_group_deliveries: format!("DELETE FROM {deliveries} WHERE group_id IN {group_of}"),
            delete_group: format!("DELETE FROM {groups} WHERE topic = $1 AND name = $2"),
            // Rows of groups deleted while a publish added to them are orphans; expired messages go whole.
            sweep_deliveries: format!(
                "DELETE FROM {deliveries} WHERE seq IN (SELECT seq FROM {messages} WHERE published_at < $1) \
                 OR NOT EXISTS (SELECT 1 FROM {groups} AS g WHERE g.id = {deliveries}.group_id)"
            ),
            sweep_messages: format!(
                "DELETE FROM {messages} WHERE NOT EXISTS \
                 (SELECT 1 FROM {deliveries} AS d WHERE d.seq = {messages}.seq)"
            ),
        }
    }
}

/// A durable queue over SQL tables; see the module documentation.
pub struct SqlBroker {
    engine: Engine,
    pool: AnyPool,
    statements: Statements,
    tables_created: OnceCell<()>,
    max_age: Duration,
    sweeps: SweepSchedule,
}

fn backend_error(engine: Engine) -> impl Fn(sqlx::Error) -> BrokerError {
    move |err| BrokerError::Backend(describe_sqlx_error(engine.label(), err))
}

/// The message sequence number a delivery id stands for.
fn sequence(id: &str) -> Result<i64, BrokerError> {
    id.parse::<i64>().ok().filter(|seq| *seq > 0).ok_or_else(|| BrokerError::InvalidId(id.to_owned()))
}

impl SqlBroker {
    /// A broker on the database `options` name. PostgreSQL is connected to on first use (a database that is
    /// down makes calls fail until it is back); SQLite opens the file and creates the tables here, so that
    /// problems with the file show as configuration problems.
    pub async fn open(options: SqlBrokerOptions) -> Result<SqlBroker, OpenError> {
        let connection_string = options.connection_string.as_str();
        let engine = if connection_string.starts_with("postgres://") || connection_string.starts_with("postgresql://") {
            Engine::Postgres
        } else {
            Engine::Sqlite
        };
        check_table_name(engine.label(), "tablePrefix", &options.table_prefix, false)?;
        let pool = match engine {
            Engine::Sqlite => sqlite::pool(engine.label(), connection_string)?,
            Engine::Postgres => postgres::pool(engine.label(), connection_string)?,
        };
        let broker = SqlBroker {
            engine,
            pool,
            statements: Statements::new(engine, &options.table_prefix),
            tables_created: OnceCell::new(),
            max_age: options.max_age,
            sweeps: SweepSchedule::new(Some(options.sweep_interval)),
        };
        if engine == Engine::Sqlite {
            broker
                .ensure_tables()
                .await
                .map_err(|err| OpenError::Backend { component_type: engine.label(), message: err.to_string() })?;
        }
        Ok(broker)
    }

    /// Creates the tables unless a previous call did; a failed attempt is retried by the next call.
    async fn ensure_tables(&self) -> Result<(), BrokerError> {
        self.tables_created
            .get_or_try_init(|| async {
                for statement in &self.statements.create_tables {
                    sqlx::query(statement).execute(&self.pool).await.map_err(backend_error(self.engine))?;
                }
                Ok(())
            })
            .await
            .map(drop)
    }

    /// Deletes acked and expired messages in the background when a sweep is due.
    fn sweep_if_due(&self) {
        let now = now_ms();
        if !self.sweeps.claim(now) {
            return;
        }
        let pool = self.pool.clone();
        let (sweep_deliveries, sweep_messages) =
            (self.statements.sweep_deliveries.clone(), self.statements.sweep_messages.clone());
        let cutoff = now.saturating_sub(millis(self.max_age));
        let label = self.engine.label();
        tokio::spawn(async move {
            let sweeping = async {
                let deliveries = sqlx::query(&sweep_deliveries).bind(cutoff).execute(&pool).await?.rows_affected();
                let messages = sqlx::query(&sweep_messages).execute(&pool).await?.rows_affected();
                Ok::<_, sqlx::Error>(deliveries + messages)
            };
            match tokio::time::timeout(OPERATION_DEADLINE, sweeping).await {
                Ok(Ok(rows)) => tracing::debug!(component_type = label, rows, "acked and expired messages swept"),
                Ok(Err(err)) => tracing::warn!(component_type = label, %err, "sweeping messages failed"),
                Err(_) => tracing::warn!(component_type = label, "sweeping messages timed out"),
            }
        });
    }

    /// Hands out up to `max` available deliveries of the group with id `group_id`.
    async fn claim(&self, group_id: i64, max: usize, hold: Duration) -> Result<Vec<Delivery>, BrokerError> {
        let now = now_ms();
        let rows = sqlx::query(&self.statements.claim)
            .bind(group_id)
            .bind(now)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .bind(now.saturating_add(millis(hold)))
            .fetch_all(&self.pool)
            .await
            .map_err(backend_error(self.engine))?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.try_get("seq").map_err(backend_error(self.engine))?;
            let attempts: i64 = row.try_get("attempts").map_err(backend_error(self.engine))?;
            // A message gone under its delivery row is expiring: the sweep deletes the row next.
            let Some(payload) = row.try_get::<Option<Vec<u8>>, _>("payload").map_err(backend_error(self.engine))?
            else {
                continue;
            };
            claimed.push((
                seq,
                Delivery { id: seq.to_string(), payload, attempt: u32::try_from(attempts).unwrap_or(u32::MAX) },
            ));
        }
        // RETURNING gives rows in no particular order; hand them out oldest first.
        claimed.sort_by_key(|(seq, _)| *seq);
        Ok(claimed.into_iter().map(|(_, delivery)| delivery).collect())
    }
}

#[async_trait]
impl Broker for SqlBroker {
    fn features(&self) -> Features {
        Features { ordered: false, durable: true }
    }

    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), BrokerError> {
        within_deadline(self.engine.label(), async {
            self.ensure_tables().await?;
            let now = now_ms();
            // Dropped on an error, the transaction rolls back.
            let mut transaction = self.pool.begin().await.map_err(backend_error(self.engine))?;
            let seq: i64 = sqlx::query(&self.statements.insert_message)
                .bind(topic)
                .bind(payload)
                .bind(now)
                .fetch_one(&mut *transaction)
                .await
                .and_then(|row| row.try_get("seq"))
                .map_err(backend_error(self.engine))?;
            sqlx::query(&self.statements.insert_deliveries)
                .bind(topic)
                .bind(seq)
                .bind(now)
                .execute(&mut *transaction)
                .await
                .map_err(backend_error(self.engine))?;
            transaction.commit().await.map_err(backend_error(self.engine))
        })
        .await?;
        self.sweep_if_due();
        Ok(())
    }

    async fn ensure_group(&self, topic: &str, group: &str) -> Result<(), BrokerError> {
        within_deadline(self.engine.label(), async {
            self.ensure_tables().await?;
            sqlx::query(&self.statements.insert_group)
                .bind(topic)
                .bind(group)
                .execute(&self.pool)
                .await
                .map_err(backend_error(self.engine))?;
            Ok(())
        })
        .await
    }

    async fn fetch(
        &self,
        topic: &str,
        group: &str,
        max: usize,
        wait: Duration,
        hold: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let started = Instant::now();
        let group_id = within_deadline(self.engine.label(), async {
            self.ensure_tables().await?;
            let row = sqlx::query(&self.statements.group_id)
                .bind(topic)
                .bind(group)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend_error(self.engine))?;
            let row = row.ok_or_else(|| missing_group(self.engine.label(), topic, group))?;
            row.try_get::<i64, _>("id").map_err(backend_error(self.engine))
        })
        .await?;
        if max == 0 {
            return Ok(Vec::new());
        }
        within_wait(wait, self.engine.label(), async {
            loop {
                let claimed = within_deadline(self.engine.label(), self.claim(group_id, max, hold)).await?;
                let waited = started.elapsed();
                if !claimed.is_empty() || waited >= wait {
                    return Ok(claimed);
                }
                tokio::time::sleep(POLL_INTERVAL.min(wait - waited)).await;
            }
        })
        .await
    }

    async fn ack(&self, topic: &str, group: &str, id: &str) -> Result<(), BrokerError> {
        let seq = sequence(id)?;
        within_deadline(self.engine.label(), async {
            self.ensure_tables().await?;
            sqlx::query(&self.statements.ack)
                .bind(topic)
                .bind(group)
                .bind(seq)
                .execute(&self.pool)
                .await
                .map_err(backend_error(self.engine))?;
            Ok(())
        })
        .await?;
        self.sweep_if_due();
        Ok(())
    }

    async fn retry(&self, topic: &str, group: &str, id: &str, delay: Duration) -> Result<(), BrokerError> {
        let seq = sequence(id)?;
        within_deadline(self.engine.label(), async {
            self.ensure_tables().await?;
            sqlx::query(&self.statements.retry)
                .bind(topic)
                .bind(group)
                .bind(seq)
                .bind(now_ms().saturating_add(millis(delay)))
                .execute(&self.pool)
                .await
                .map_err(backend_error(self.engine))?;
            Ok(())
        })
        .await
    }

    async fn delete_group(&self, topic: &str, group: &str) -> Result<(), BrokerError> {
        within_deadline(self.engine.label(), async {
            self.ensure_tables().await?;
            let mut transaction = self.pool.begin().await.map_err(backend_error(self.engine))?;
            for statement in [&self.statements.delete_group_deliveries, &self.statements.delete_group] {
                sqlx::query(statement)
                    .bind(topic)
                    .bind(group)
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend_error(self.engine))?;
            }
            transaction.commit().await.map_err(backend_error(self.engine))
        })
        .await
    }
}
