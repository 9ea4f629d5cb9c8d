//! The floor: the least an HTTP front for Redis can do for a state GET, run as its own process and measured
//! beside Outrigger. It reads the same Redis hash field Outrigger's `state.redis` reads and answers its bytes,
//! with axum, hyper and redis-rs as Outrigger has them, on a tokio runtime with as many workers as Outrigger's, the
//! same allocator and `TCP_NODELAY`, and nothing else: no token, no tenant, no telemetry. Whatever it adds to a direct
//! Redis GET (an HTTP hop, two more wake-ups of an idle process per call, the parsing on both sides) any gateway
//! adds on this machine; what Outrigger adds beyond it is Outrigger's own.
//!
//! The bench binary becomes the floor when started with [`FLOOR_REDIS`] set: [`serve_if_asked`], first thing in
//! `main`, then prints the ready line the bench waits for from Outrigger and serves until the bench stops it.

use std::path::PathBuf;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;

use crate::common::procs::{Process, Ready};
use crate::{APP_ID, REDIS_STORE_KEY};

/// Set to a Redis address, the bench binary serves the floor on it instead of benchmarking.
const FLOOR_REDIS: &str = "BENCH_FLOOR_REDIS";

/// Starts the floor (this binary, `start` runs it: directly or under callgrind) on the Redis at `redis_addr`.
pub(crate) fn start(
    redis_addr: &str,
    start: impl FnOnce(&str, &std::path::Path, &[(&str, String)]) -> anyhow::Result<(Process, Ready)>,
) -> anyhow::Result<(Process, String)> {
    let binary: PathBuf = std::env::current_exe().context("finding the bench binary, which serves the floor")?;
    let (process, ready) = start("floor", &binary, &[(FLOOR_REDIS, redis_addr.to_owned())])?;
    let address = ready.dapr_http.context("the floor's ready line has no dapr_http")?;
    Ok((process, address))
}

/// Stores `value` as `state.redis` stores KEY's (a hash under daprd's `<App ID>||<key>`, the value in its field
/// `data`), so that the floor has it to read.
pub(crate) async fn store_value(redis_addr: &str, value: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(format!("redis://{redis_addr}/"))?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    redis::cmd("HSET")
        .arg(REDIS_STORE_KEY)
        .arg("data")
        .arg(serde_json::to_string(value)?)
        .arg("version")
        .arg(1)
        .query_async::<()>(&mut connection)
        .await?;
    Ok(())
}

/// When [`FLOOR_REDIS`] is set, serves the floor until SIGTERM, then exits, never returning.
pub(crate) fn serve_if_asked() {
    let Some(redis_addr) = std::env::var(FLOOR_REDIS).ok() else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("the floor's runtime");
    if let Err(err) = runtime.block_on(serve(&redis_addr)) {
        eprintln!("floor: {err:#}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

async fn serve(redis_addr: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(format!("redis://{redis_addr}/"))?;
    let connection = client.get_multiplexed_async_connection().await.context("connecting to Redis")?;
    let router = axum::Router::new().route("/v1.0/state/{store}/{key}", get(read)).with_state(connection);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // The line `Process::start` waits for, in the shape of Outrigger's.
    println!("{}", serde_json::json!({"fields": {"message": "outrigger ready", "dapr_http": address.to_string()}}));
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            terminate.recv().await;
        })
        .await?;
    Ok(())
}

async fn read(
    State(mut connection): State<redis::aio::MultiplexedConnection>,
    Path((_store, key)): Path<(String, String)>,
) -> Response {
    let mut command = redis::cmd("HGET");
    command.arg(format!("{APP_ID}||{key}")).arg("data");
    match command.query_async::<Option<Vec<u8>>>(&mut connection).await {
        Ok(Some(value)) => ([(header::CONTENT_TYPE, "application/json")], value).into_response(),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}
