//! The state GET's floor (`common/floor.rs`): one `HGET` of the Redis hash field Outrigger's `state.redis` reads,
//! with redis-rs as Outrigger has it, its bytes answered as `application/json`.

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::{APP_ID, REDIS_STORE_KEY};

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

/// The floor's routes, reading from the Redis at `redis_addr`.
pub(crate) async fn router(redis_addr: String) -> anyhow::Result<axum::Router> {
    let client = redis::Client::open(format!("redis://{redis_addr}/"))?;
    let connection = client.get_multiplexed_async_connection().await.context("connecting to Redis")?;
    Ok(axum::Router::new().route("/v1.0/state/{store}/{key}", get(read)).with_state(connection))
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
