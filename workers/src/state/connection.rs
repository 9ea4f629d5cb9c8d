//! Taking a connection from a SQL component's pool without the pool's own time limit cutting a caller's longer
//! one short.
//!
//! sqlx bounds both ways of getting a connection with one limit, its `acquire_timeout`: waiting for a busy
//! connection to come back, and opening a new one (it retries a refused connection until that limit). The
//! PostgreSQL pools keep the limit at the connect timeout, so that a database that is down fails a call within
//! it. Waiting for a connection that other calls hold is different: it is part of the call that waits, which
//! its caller bounds (the component's Resiliency timeout, or the fixed deadline outside a policy), and a
//! tenant's timeout may be longer than the connect timeout. So a wait that ran out while every connection was
//! in use waits again.

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};

/// A connection from `pool`: waiting as long as every connection is in use (the caller bounds that wait),
/// failing with the pool's own limit when the wait was for opening a connection.
pub(crate) async fn connection<DB: Database>(pool: &Pool<DB>) -> Result<PoolConnection<DB>, sqlx::Error> {
    loop {
        match pool.acquire().await {
            Err(sqlx::Error::PoolTimedOut) if every_connection_in_use(pool) => continue,
            answer => return answer,
        }
    }
}

/// Whether the pool holds as many connections as it may and none is idle. (sqlx counts a connection being
/// opened as held too: while a database is down, calls that find the pool full of connection attempts keep
/// waiting, bounded by their callers, and fail once it is not full.)
fn every_connection_in_use<DB: Database>(pool: &Pool<DB>) -> bool {
    pool.num_idle() == 0 && pool.size() >= pool.options().get_max_connections()
}
