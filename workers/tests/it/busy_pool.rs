//! A SQL component whose connections are all in use: a call waits for one as long as its caller waits, not only
//! for the pool's connect timeout (a tenant's Resiliency timeout may be longer).

use std::future::Future;
use std::time::{Duration, Instant};

use outrigger_workers::pubsub::{Broker, SqlBroker, SqlBrokerOptions};
use outrigger_workers::state;

use crate::backends::{drop_table, finally, fresh_table_name, metadata, postgres_url, put};
use crate::pubsub_backends::{drop_tables, unique_id};

/// The connections a PostgreSQL component keeps at most.
const POOL_SIZE: usize = 8;
/// The PostgreSQL pools' own limit on getting a connection (their connect timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the table stays locked once the pool is full: past the connect timeout, within the broker's fixed
/// 5 s deadline for a call.
const LOCKED_FOR: Duration = Duration::from_millis(3_500);

/// Statements of the test's table waiting for a lock on it.
async fn waiting_on(locker: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = $1 AND NOT l.granted",
    )
    .bind(table)
    .fetch_one(locker)
    .await
    .expect("read pg_locks")
}

/// Another session locks `table`; one more than [`POOL_SIZE`] calls start, each holding one of the component's
/// connections while it waits for the lock, but the last, which waits for a connection. The lock is held past the
/// connect timeout: every call succeeds, the last after more than that timeout.
async fn every_call_outwaits_a_full_pool<F, Fut>(table: &str, call: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let locker = sqlx::PgPool::connect(&postgres_url()).await.expect("the test PostgreSQL is reachable");
    let mut lock = locker.begin().await.expect("begin");
    sqlx::query(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")).execute(&mut *lock).await.expect("lock");
    let calls: Vec<_> = (0..=POOL_SIZE)
        .map(|_| {
            let call = call();
            tokio::spawn(async move {
                let started = Instant::now();
                (call.await, started.elapsed())
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while waiting_on(&locker, table).await < POOL_SIZE as i64 {
        assert!(Instant::now() < deadline, "the component's calls never filled its pool");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The one call left waits for a connection past the connect timeout.
    tokio::time::sleep(LOCKED_FOR).await;
    lock.rollback().await.expect("release the lock");
    let mut longest = Duration::ZERO;
    for call in calls {
        let (answer, took) = call.await.expect("the call's task");
        answer.expect("a call that waited for a connection succeeds");
        longest = longest.max(took);
    }
    assert!(longest > CONNECT_TIMEOUT, "no call waited past the connect timeout ({longest:?})");
    locker.close().await;
}

#[tokio::test]
async fn a_state_read_waits_for_a_busy_postgres_pool_past_the_connect_timeout() {
    let table = fresh_table_name();
    let entries = metadata(&[("connectionString", &postgres_url()), ("tableName", &table)]);
    let store = state::open("state.postgresql", &entries).await.expect("open");
    let test = {
        let table = table.clone();
        async move {
            store.set(&put("k", "v")).await.expect("a write creates the table");
            every_call_outwaits_a_full_pool(&table, || {
                let store = store.clone();
                async move {
                    let item = store.get("k").await.map_err(|err| err.to_string())?;
                    assert_eq!(item.map(|item| item.value), Some(b"v".to_vec()));
                    Ok(())
                }
            })
            .await;
        }
    };
    finally(test, drop_table(&postgres_url(), &table)).await;
}

#[tokio::test]
async fn a_publish_waits_for_a_busy_postgres_pool_past_the_connect_timeout() {
    let prefix = format!("ps_{}", unique_id());
    let broker = SqlBroker::open(SqlBrokerOptions::new(postgres_url(), &prefix)).await.expect("open the broker");
    let broker: std::sync::Arc<dyn Broker> = std::sync::Arc::new(broker);
    let test = {
        let messages = format!("{prefix}_messages");
        async move {
            broker.publish("orders", b"first").await.expect("a publish creates the tables");
            every_call_outwaits_a_full_pool(&messages, || {
                let broker = std::sync::Arc::clone(&broker);
                async move { broker.publish("orders", b"waited").await.map_err(|err| err.to_string()) }
            })
            .await;
        }
    };
    finally(test, drop_tables(&prefix)).await;
}
