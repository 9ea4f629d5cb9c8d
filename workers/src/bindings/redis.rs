//! `bindings.redis`: daprd's Redis output binding: `create` sets the request's `key` to the data (with
//! `ttlInSeconds` when given), `get` reads it, `delete` removes it, `increment` adds one to it.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use outrigger_bus::BindingResponse;
use outrigger_resources::{BuildingBlock, ComponentType};
use redis::aio::ConnectionManager;

use super::{BindingError, BindingRequest, OutputBinding};
use crate::components::{Backend, Opener, Opening};
use crate::state::open::OpenError;
use crate::state::redis::{connect, REDIS_CLIENT_FIELDS};

/// Dapr's Redis binding.
pub struct RedisBinding {
    connection: ConnectionManager,
}

impl RedisBinding {
    /// The Dapr component type this binding serves.
    pub const COMPONENT_TYPE: &'static str = "bindings.redis";
}

fn failed(err: redis::RedisError) -> BindingError {
    BindingError::Failed(format!("{}: {err}", RedisBinding::COMPONENT_TYPE))
}

#[async_trait]
impl OutputBinding for RedisBinding {
    fn operations(&self) -> &'static [&'static str] {
        &["create", "get", "delete", "increment"]
    }

    async fn invoke(&self, request: BindingRequest<'_>) -> Result<BindingResponse, BindingError> {
        let key = request.metadata.get("key").filter(|key| !key.is_empty());
        let key = key.ok_or_else(|| BindingError::Failed("metadata 'key' is required: the Redis key to use".into()))?;
        let command = match request.operation {
            "create" => {
                let mut set = redis::cmd("SET");
                set.arg(key).arg(request.data);
                if let Some(ttl) = request.metadata.get("ttlInSeconds") {
                    let seconds: u64 = ttl.trim().parse().map_err(|_| {
                        BindingError::Failed(format!(
                            "metadata 'ttlInSeconds' is '{ttl}', not a whole number of seconds"
                        ))
                    })?;
                    set.arg("EX").arg(seconds.max(1));
                }
                set
            }
            "get" => redis::cmd("GET").arg(key).clone(),
            "delete" => redis::cmd("DEL").arg(key).clone(),
            _ => redis::cmd("INCR").arg(key).clone(),
        };
        let mut connection = self.connection.clone();
        let answer: redis::Value = command.query_async(&mut connection).await.map_err(failed)?;
        let data = match (request.operation, answer) {
            ("get", redis::Value::BulkString(bytes)) => bytes,
            _ => Vec::new(),
        };
        Ok(BindingResponse { data, metadata: Default::default() })
    }
}

/// `bindings.redis`: a Redis server the egress rule lets the project reach.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(RedisBinding::COMPONENT_TYPE, BuildingBlock::Bindings, &[REDIS_CLIENT_FIELDS]),
    opener: Opener::Binding { output: Some(open), input: None },
};

fn open(opening: Opening<'_>) -> BoxFuture<'_, Result<Arc<dyn OutputBinding>, OpenError>> {
    Box::pin(async move {
        let options = opening.fields.redis_options(RedisBinding::COMPONENT_TYPE, opening.boundary).await?;
        let (_, connection) = connect(RedisBinding::COMPONENT_TYPE, &options)?;
        Ok(Arc::new(RedisBinding { connection }) as _)
    })
}
