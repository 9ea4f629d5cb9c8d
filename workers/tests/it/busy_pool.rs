//! A SQL store whose connections are all in use: a call waits for one as long as its caller waits, not only for
//! the pool's connect timeout (a tenant's Resiliency timeout may be longer).

use std::time::{Duration, Instant};

use outrigger_workers::state;

use crate::backends::{drop_table, finally, fresh_table_name, metadata, postgres_url, put};

/// The connections a PostgreSQL state store keeps at most.
const POOL_SIZE: usize = 8;
/// The PostgreSQL pools' own limit on getting a connection (their connect timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

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

#[tokio::test]
async fn a_read_waits_for_a_busy_postgres_pool_past_the_connect_timeout() {
    let table = fresh_table_name();
    let entries = metadata(&[("connectionString", &postgres_url()), ("tableName", &table)]);
    let store = state::open("state.postgresql", &entries).await.expect("open");
    let test = {
        let table = table.clone();
        async move {
            store.set(&put("k", "v")).await.expect("a write creates the table");
            // Another session locks the table: each read the store starts holds one of its connections while it
            // waits for the lock.
            let locker = sqlx::PgPool::connect(&postgres_url()).await.expect("the test PostgreSQL is reachable");
            let mut lock = locker.begin().await.expect("begin");
            sqlx::query(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
                .execute(&mut *lock)
                .await
                .expect("lock the table");
            let reads: Vec<_> = (0..=POOL_SIZE)
                .map(|_| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        let started = Instant::now();
                        (store.get("k").await, started.elapsed())
                    })
                })
                .collect();
            let deadline = Instant::now() + Duration::from_secs(10);
            while waiting_on(&locker, &table).await < POOL_SIZE as i64 {
                assert!(Instant::now() < deadline, "the store's reads never filled its pool");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // The one read left waits for a connection past the connect timeout.
            tokio::time::sleep(CONNECT_TIMEOUT + Duration::from_secs(1)).await;
            lock.rollback().await.expect("release the lock");
            let mut longest = Duration::ZERO;
            for read in reads {
                let (answer, took) = read.await.expect("the read's task");
                let item = answer.expect("a read that waited for a connection succeeds");
                assert_eq!(item.map(|item| item.value), Some(b"v".to_vec()));
                longest = longest.max(took);
            }
            assert!(longest > CONNECT_TIMEOUT, "no read waited past the connect timeout ({longest:?})");
            locker.close().await;
        }
    };
    finally(test, drop_table(&postgres_url(), &table)).await;
}
