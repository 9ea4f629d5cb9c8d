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
//! Publishing inserts the message and a delivery row for every group its topic has, in one execution inside
//! one transaction: a group created later never sees the message, one that exists always does. Groups keep no
//! read position, because sequence numbers on PostgreSQL commit out of order and a position could skip a
//! message whose transaction committed late.
//!
//! A fetch claims rows in one `UPDATE`: on PostgreSQL its row choice locks with `FOR UPDATE SKIP LOCKED`, so
//! concurrent fetchers (in any process) pass over each other's rows instead of claiming them twice; SQLite
//! runs one writer at a time anyway. A waiting fetch is woken by publishes and hand-backs through this broker
//! (in this process), and polls every [`POLL_INTERVAL`] for those of other processes.
//!
//! Group commit on SQLite: every write (publish, claim, ack, retry, group changes) goes to one writer task,
//! which runs whatever is waiting in a single transaction, so that one commit (and one WAL sync) serves every
//! write that arrived meanwhile instead of one each. Each caller is answered only after the commit that holds
//! its write. Each write is one execution (a round trip to sqlx's connection thread costs more than the SQL),
//! except deleting a group, whose statements share a savepoint. PostgreSQL commits concurrent transactions
//! together by itself: there writes run on pooled connections directly.
//!
//! Retention: an ack deletes the group's delivery row, and a sweep (at most every
//! [`SqlBrokerOptions::sweep_interval`], riding on publishes and acks) deletes the messages left without
//! delivery rows, i.e. acked by every group that existed when they were published. A topic without any group
//! keeps its messages, and the first group created gets them (daprd's Redis groups start at `0`). Messages
//! older than [`SqlBrokerOptions::max_age`] (default [`DEFAULT_MAX_AGE`], 24 h) are deleted too, acked or not. A
//! sweep goes through the table [`SWEEP_WINDOW`] sequence numbers at a time, each window its own statements:
//! on SQLite, whose one connection is shared by every call, deleting a minute of messages at 1000 msgs/s in one
//! statement held publishes up for tens of milliseconds; between windows they go ahead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool, Connection, Row};
use tokio::sync::{mpsc, oneshot, Notify, OnceCell};
use tokio::time::Instant;

use super::backend::{millis, missing_group, within_deadline, within_wait, DEFAULT_MAX_AGE};
use super::{Broker, BrokerError, Delivery, Features};
use crate::state::connection::connection;
use crate::state::open::OpenError;
use crate::state::sql::{check_table_name, describe_sqlx_error, prefix_end};
use crate::state::time::{now_ms, SweepSchedule};
use crate::state::{postgres, sqlite};

mod statements;

use statements::{Engine, Statements};

/// How often acked messages are deleted unless [`SqlBrokerOptions::sweep_interval`] says otherwise.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// How often a waiting fetch looks for messages again (those published by other processes; this process's
/// publishes wake it at once).
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// The most writes one SQLite transaction takes; more wait for the next.
const MAX_BATCH: usize = 512;

/// How many sequence numbers one step of a sweep covers.
const SWEEP_WINDOW: i64 = 512;

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

/// A durable queue over SQL tables; see the module documentation.
pub struct SqlBroker {
    engine: Engine,
    pool: AnyPool,
    statements: Arc<Statements>,
    writes: Writes,
    tables_created: OnceCell<()>,
    max_age: Duration,
    sweeps: SweepSchedule,
    /// Per topic, wakes the fetches of this process waiting on it.
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
}

/// Where writes run.
enum Writes {
    /// On a pooled connection each (PostgreSQL).
    Direct,
    /// Through the writer task, in its next batch (SQLite).
    Batched(mpsc::Sender<Job>),
}

/// A write waiting for the SQLite writer. It runs its statements on the batch's transaction (or is told why
/// the batch could not begin), and gives back what answers its caller once the batch is over.
type Job = Box<dyn for<'c> FnOnce(Result<&'c mut AnyConnection, &'c str>) -> BoxFuture<'c, Answer> + Send>;

/// Answers a write's caller, given whether its batch committed.
type Answer = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// The SQLite writer: runs the writes that are waiting, up to [`MAX_BATCH`], in one transaction, then answers
/// each. Ends when the broker is dropped.
async fn write_batches(pool: AnyPool, label: &'static str, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut answers = Vec::with_capacity(batch.len());
        // IMMEDIATE takes the write lock at once, waiting for another process's writer if need be: a deferred
        // transaction whose first statement reads fails with SQLITE_BUSY when it upgrades to writing after
        // another process wrote.
        let committed = match pool.begin_with("BEGIN IMMEDIATE").await {
            Ok(mut transaction) => {
                for job in batch.drain(..) {
                    answers.push(job(Ok(&mut transaction)).await);
                }
                transaction.commit().await
            }
            Err(err) => Err(err),
        }
        .map_err(|err| describe_sqlx_error(label, err));
        if let Err(reason) = &committed {
            for job in batch.drain(..) {
                answers.push(job(Err(reason)).await);
            }
        }
        for answer in answers {
            answer(committed.as_ref().map(drop).map_err(String::as_str));
        }
    }
}

fn backend_error(engine: Engine) -> impl Fn(sqlx::Error) -> BrokerError {
    move |err| BrokerError::Backend(describe_sqlx_error(engine.label(), err))
}

/// Deletes the delivery rows of expired messages (published before `cutoff`) and of deleted groups, then the
/// messages without delivery rows, window by window over the sequence numbers the table holds now; returns how
/// many rows went. Each window is one backend call, with its deadline.
async fn sweep(engine: Engine, pool: &AnyPool, statements: &Statements, cutoff: i64) -> Result<u64, BrokerError> {
    let label = engine.label();
    let bounds = within_deadline(label, async {
        let bounds = sqlx::query(&statements.sweep_bounds).fetch_one(pool).await.map_err(backend_error(engine))?;
        let bound = |column| bounds.try_get::<Option<i64>, _>(column).map_err(backend_error(engine));
        Ok(bound("low")?.zip(bound("high")?))
    })
    .await?;
    let Some((low, high)) = bounds else { return Ok(0) };
    let mut rows = 0;
    for start in (low..=high).step_by(SWEEP_WINDOW as usize) {
        let end = start.saturating_add(SWEEP_WINDOW);
        rows += within_deadline(label, async {
            let deliveries = sqlx::query(&statements.sweep_deliveries).bind(cutoff).bind(start).bind(end);
            let messages = sqlx::query(&statements.sweep_messages).bind(start).bind(end).bind(cutoff);
            let deleted = deliveries.execute(pool).await.map_err(backend_error(engine))?.rows_affected();
            Ok(deleted + messages.execute(pool).await.map_err(backend_error(engine))?.rows_affected())
        })
        .await?;
    }
    Ok(rows)
}

/// A count's cap as SQL takes it.
fn count_limit(cap: u64) -> i64 {
    i64::try_from(cap).unwrap_or(i64::MAX)
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
            // A publish is acknowledged once its commit reached the OS: it survives the process crashing, not
            // the machine, as with JetStream's file storage (which syncs every two minutes by default). Syncing
            // every commit to disk doubled the publish latency (docs/decisions.md).
            Engine::Sqlite => sqlite::pool(engine.label(), connection_string, sqlite::Durability::Os)?,
            Engine::Postgres => postgres::pool(engine.label(), connection_string)?,
        };
        let writes = match engine {
            Engine::Sqlite => {
                let (jobs, waiting) = mpsc::channel(MAX_BATCH);
                tokio::spawn(write_batches(pool.clone(), engine.label(), waiting));
                Writes::Batched(jobs)
            }
            Engine::Postgres => Writes::Direct,
        };
        let broker = SqlBroker {
            engine,
            pool,
            statements: Arc::new(Statements::new(engine, &options.table_prefix)),
            writes,
            tables_created: OnceCell::new(),
            max_age: options.max_age,
            sweeps: SweepSchedule::new(Some(options.sweep_interval)),
            wakers: Mutex::new(HashMap::new()),
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
                let mut connection = connection(&self.pool).await.map_err(backend_error(self.engine))?;
                for statement in &self.statements.create_tables {
                    sqlx::query(statement).execute(&mut *connection).await.map_err(backend_error(self.engine))?;
                }
                Ok(())
            })
            .await
            .map(drop)
    }

    /// Runs `work`, a write, and answers once it is committed: on SQLite in the writer's next batch, on
    /// PostgreSQL on a pooled connection. Work of several statements that must hold together wraps them in
    /// `Connection::begin` (a savepoint within SQLite's batch, a transaction on PostgreSQL).
    async fn write<T, F>(&self, work: F) -> Result<T, BrokerError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, sqlx::Error>> + Send + 'static,
    {
        let label = self.engine.label();
        let jobs = match &self.writes {
            Writes::Direct => {
                let mut connection = connection(&self.pool).await.map_err(backend_error(self.engine))?;
                return work(&mut connection).await.map_err(backend_error(self.engine));
            }
            Writes::Batched(jobs) => jobs,
        };
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |connection| {
            Box::pin(async move {
                let outcome = match connection {
                    Ok(connection) => work(connection).await.map_err(|err| describe_sqlx_error(label, err)),
                    Err(reason) => Err(reason.to_owned()),
                };
                Box::new(move |committed: Result<(), &str>| {
                    // The caller may have given up waiting; the write stands all the same.
                    let _ = answer.send(committed.map_err(str::to_owned).and(outcome));
                }) as Answer
            })
        });
        let stopped = || BrokerError::Backend(format!("{label}: the writer stopped"));
        jobs.send(job).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?.map_err(BrokerError::Backend)
    }

    /// What wakes the fetches of this process waiting on `topic`.
    fn waker(&self, topic: &str) -> Arc<Notify> {
        let mut wakers = self.wakers.lock().expect("wakers lock");
        if let Some(waker) = wakers.get(topic) {
            return Arc::clone(waker);
        }
        // Topics no fetch waits on any more go.
        wakers.retain(|_, waker| Arc::strong_count(waker) > 1);
        Arc::clone(wakers.entry(topic.to_owned()).or_default())
    }

    /// Messages became available on `topic`: wakes this process's fetches waiting on it.
    fn wake(&self, topic: &str) {
        if let Some(waker) = self.wakers.lock().expect("wakers lock").get(topic) {
            waker.notify_waiters();
        }
    }

    /// Deletes acked and expired messages in the background when a sweep is due.
    fn sweep_if_due(&self) {
        let now = now_ms();
        if !self.sweeps.claim(now) {
            return;
        }
        let (pool, statements) = (self.pool.clone(), Arc::clone(&self.statements));
        let cutoff = now.saturating_sub(millis(self.max_age));
        let (engine, label) = (self.engine, self.engine.label());
        tokio::spawn(async move {
            match sweep(engine, &pool, &statements, cutoff).await {
                Ok(rows) => tracing::debug!(component_type = label, rows, "acked and expired messages swept"),
                Err(err) => tracing::warn!(component_type = label, %err, "sweeping messages failed"),
            }
        });
    }

    /// Hands out up to `max` available deliveries of the group (none when `max` is 0); fails when the group
    /// does not exist.
    async fn claim(&self, topic: &str, group: &str, max: usize, hold: Duration) -> Result<Vec<Delivery>, BrokerError> {
        let statements = Arc::clone(&self.statements);
        let (topic_name, group_name) = (topic.to_owned(), group.to_owned());
        let claimed = self
            .write(move |connection| {
                Box::pin(async move {
                    let now = now_ms();
                    let rows = sqlx::query(&statements.claim)
                        .bind(&topic_name)
                        .bind(&group_name)
                        .bind(now)
                        .bind(i64::try_from(max).unwrap_or(i64::MAX))
                        .bind(now.saturating_add(millis(hold)))
                        .fetch_all(&mut *connection)
                        .await?;
                    // Nothing to hand out: is there a group at all?
                    if rows.is_empty() {
                        let group = sqlx::query(&statements.group_id)
                            .bind(topic_name)
                            .bind(group_name)
                            .fetch_optional(connection);
                        return Ok(group.await?.map(|_| Vec::new()));
                    }
                    let mut claimed = Vec::with_capacity(rows.len());
                    for row in rows {
                        let seq: i64 = row.try_get("seq")?;
                        let attempts: i64 = row.try_get("attempts")?;
                        let published_at: Option<i64> = row.try_get("published_at")?;
                        claimed.push((seq, attempts, row.try_get::<Option<Vec<u8>>, _>("payload")?, published_at));
                    }
                    Ok(Some(claimed))
                })
            })
            .await?
            .ok_or_else(|| missing_group(self.engine.label(), topic, group))?;
        let mut deliveries: Vec<(i64, Delivery)> = claimed
            .into_iter()
            // A message gone under its delivery row is expiring: the sweep deletes the row next.
            .filter_map(|(seq, attempts, payload, published_at)| {
                let attempt = u32::try_from(attempts).unwrap_or(u32::MAX);
                Some((seq, Delivery { id: seq.to_string(), payload: payload?, attempt, published_at }))
            })
            .collect();
        // RETURNING gives rows in no particular order; hand them out oldest first.
        deliveries.sort_by_key(|(seq, _)| *seq);
        Ok(deliveries.into_iter().map(|(_, delivery)| delivery).collect())
    }
}

#[async_trait]
impl Broker for SqlBroker {
    fn features(&self) -> Features {
        Features { ordered: false, durable: true }
    }

    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), BrokerError> {
        self.ensure_tables().await?;
        let statements = Arc::clone(&self.statements);
        let (owned_topic, payload) = (topic.to_owned(), payload.to_vec());
        self.write(move |connection| {
            Box::pin(async move {
                let publish = sqlx::query(&statements.publish).bind(owned_topic).bind(payload).bind(now_ms());
                publish.execute(connection).await.map(drop)
            })
        })
        .await?;
        self.wake(topic);
        self.sweep_if_due();
        Ok(())
    }

    async fn ensure_group(&self, topic: &str, group: &str) -> Result<(), BrokerError> {
        within_deadline(self.engine.label(), async {
            self.ensure_tables().await?;
            let statements = Arc::clone(&self.statements);
            let (topic, group) = (topic.to_owned(), group.to_owned());
            self.write(move |connection| {
                Box::pin(async move {
                    let insert = sqlx::query(&statements.insert_group).bind(topic).bind(group).bind(now_ms());
                    insert.execute(connection).await.map(drop)
                })
            })
            .await
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
        within_deadline(self.engine.label(), self.ensure_tables()).await?;
        let waker = self.waker(topic);
        within_wait(wait, self.engine.label(), async {
            loop {
                // Listening before the claim: a publish between the claim and the wait still wakes it.
                let woken = waker.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                let claimed = within_deadline(self.engine.label(), self.claim(topic, group, max, hold)).await?;
                let waited = started.elapsed();
                if !claimed.is_empty() || max == 0 || waited >= wait {
                    return Ok(claimed);
                }
                tokio::select! {
                    () = tokio::time::sleep(POLL_INTERVAL.min(wait - waited)) => {}
                    () = woken => {}
                }
            }
        })
        .await
    }

    async fn ack(&self, topic: &str, group: &str, id: &str) -> Result<(), BrokerError> {
        let seq = sequence(id)?;
        within_deadline(self.engine.label(), async {
            self.ensure_tables().await?;
            let statements = Arc::clone(&self.statements);
            let (topic, group) = (topic.to_owned(), group.to_owned());
            self.write(move |connection| {
                Box::pin(async move {
                    sqlx::query(&statements.ack).bind(topic).bind(group).bind(seq).execute(connection).await.map(drop)
                })
            })
            .await
        })
        .await?;
        self.sweep_if_due();
        Ok(())
    }

    async fn retry(&self, topic: &str, group: &str, id: &str, delay: Duration) -> Result<(), BrokerError> {
        let seq = sequence(id)?;
        within_deadline(self.engine.label(), async {
            self.ensure_tables().await?;
            let statements = Arc::clone(&self.statements);
            let (topic, group) = (topic.to_owned(), group.to_owned());
            self.write(move |connection| {
                Box::pin(async move {
                    sqlx::query(&statements.retry)
                        .bind(topic)
                        .bind(group)
                        .bind(seq)
                        .bind(now_ms().saturating_add(millis(delay)))
                        .execute(connection)
                        .await
                        .map(drop)
                })
            })
            .await
        })
        .await?;
        if delay.is_zero() {
            self.wake(topic);
        }
        Ok(())
    }

    async fn pending(&self, topic: &str, group: &str, cap: u64) -> Result<Option<u64>, BrokerError> {
        let error = backend_error(self.engine);
        within_deadline(self.engine.label(), async {
            self.ensure_tables().await?;
            let mut connection = connection(&self.pool).await.map_err(&error)?;
            let found = sqlx::query(&self.statements.group_id).bind(topic).bind(group).fetch_optional(&mut *connection);
            let Some(row) = found.await.map_err(&error)? else { return Ok(None) };
            let group_id: i64 = row.try_get("id").map_err(&error)?;
            let count = sqlx::query(&self.statements.count_pending).bind(group_id).bind(count_limit(cap));
            let counted: i64 =
                count.fetch_one(&mut *connection).await.map_err(&error)?.try_get("counted").map_err(&error)?;
            Ok(Some(u64::try_from(counted).unwrap_or_default()))
        })
        .await
    }

    async fn kept_messages(&self, topic: &str, cap: u64) -> Result<u64, BrokerError> {
        let error = backend_error(self.engine);
        within_deadline(self.engine.label(), async {
            self.ensure_tables().await?;
            let count = sqlx::query(&self.statements.count_kept).bind(topic).bind(count_limit(cap));
            let mut connection = connection(&self.pool).await.map_err(&error)?;
            let counted: i64 =
                count.fetch_one(&mut *connection).await.map_err(&error)?.try_get("counted").map_err(&error)?;
            Ok(u64::try_from(counted).unwrap_or_default())
        })
        .await
    }

    async fn groups(&self, topic_prefix: &str, max: usize) -> Result<Option<Vec<(String, String)>>, BrokerError> {
        let error = backend_error(self.engine);
        within_deadline(self.engine.label(), async {
            self.ensure_tables().await?;
            let upper = prefix_end(topic_prefix);
            let statement =
                if upper.is_some() { &self.statements.groups_bounded } else { &self.statements.groups_unbounded };
            let mut query =
                sqlx::query(statement).bind(topic_prefix.to_owned()).bind(i64::try_from(max).unwrap_or(i64::MAX));
            if let Some(upper) = upper {
                query = query.bind(upper);
            }
            let rows = query.fetch_all(&mut *connection(&self.pool).await.map_err(&error)?).await.map_err(&error)?;
            let mut groups = Vec::with_capacity(rows.len());
            for row in rows {
                let topic: String = row.try_get("topic").map_err(&error)?;
                // The range is the prefix's; this only restates it.
                if topic.starts_with(topic_prefix) {
                    groups.push((topic, row.try_get("name").map_err(&error)?));
                }
            }
            Ok(Some(groups))
        })
        .await
    }

    async fn delete_group(&self, topic: &str, group: &str) -> Result<(), BrokerError> {
        within_deadline(self.engine.label(), async {
            self.ensure_tables().await?;
            let statements = Arc::clone(&self.statements);
            let (topic, group) = (topic.to_owned(), group.to_owned());
            self.write(move |connection| {
                Box::pin(async move {
                    let mut transaction = connection.begin().await?;
                    for statement in [&statements.delete_group_deliveries, &statements.delete_group] {
                        sqlx::query(statement).bind(&topic).bind(&group).execute(&mut *transaction).await?;
                    }
                    transaction.commit().await
                })
            })
            .await
        })
        .await
    }
}
