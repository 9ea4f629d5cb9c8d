//! `lock.redis`: daprd's Redis lock, key for key, so an app can move between daprd and Outrigger while holding
//! locks: a lock is the key set to its owner with `SET NX EX`, released by a script that deletes it only
//! for its owner.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use outrigger_bus::UnlockStatus;
use outrigger_resources::{BuildingBlock, ComponentType};
use redis::aio::ConnectionManager;
use redis::Script;

use super::{LockError, LockStore};
use crate::components::{Backend, Opener, Opening};
use crate::state::open::OpenError;
use crate::state::redis::{connect, REDIS_CLIENT_FIELDS};
use crate::state::RedisOptions;

/// Deletes the lock only for its owner: -1 when there is none, -2 when another owner holds it, else what
/// `DEL` answered (components-contrib's script, so the answers mean the same).
const UNLOCK_SCRIPT: &str = r#"
local holder = redis.call("GET", KEYS[1])
if holder == false then return -1 end
if holder ~= ARGV[1] then return -2 end
return redis.call("DEL", KEYS[1])
"#;

static UNLOCK: LazyLock<Script> = LazyLock::new(|| Script::new(UNLOCK_SCRIPT));

/// Dapr's Redis lock store.
pub struct RedisLockStore {
    connection: ConnectionManager,
}

impl RedisLockStore {
    /// The Dapr component type this store serves.
    pub const COMPONENT_TYPE: &'static str = "lock.redis";

    /// A store that connects on first use and reconnects by itself.
    pub fn open(options: &RedisOptions) -> Result<RedisLockStore, OpenError> {
        let (_, connection) = connect(Self::COMPONENT_TYPE, options)?;
        Ok(RedisLockStore { connection })
    }
}

fn backend(err: redis::RedisError) -> LockError {
    LockError::Backend(format!("{}: {err}", RedisLockStore::COMPONENT_TYPE))
}

#[async_trait]
impl LockStore for RedisLockStore {
    async fn try_lock(&self, key: &str, owner: &str, expiry: Duration) -> Result<bool, LockError> {
        let mut connection = self.connection.clone();
        let mut command = redis::cmd("SET");
        command.arg(key).arg(owner).arg("NX").arg("EX").arg(expiry.as_secs().max(1));
        let answer: Option<String> = command.query_async(&mut connection).await.map_err(backend)?;
        Ok(answer.is_some())
    }

    async fn unlock(&self, key: &str, owner: &str) -> Result<UnlockStatus, LockError> {
        let mut connection = self.connection.clone();
        let answer: i64 = UNLOCK.key(key).arg(owner).invoke_async(&mut connection).await.map_err(backend)?;
        Ok(match answer {
            0.. => UnlockStatus::Success,
            -1 => UnlockStatus::LockDoesNotExist,
            -2 => UnlockStatus::LockBelongsToOthers,
            _ => UnlockStatus::InternalError,
        })
    }
}

/// `lock.redis`: a Redis server the egress rule lets the project reach.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(RedisLockStore::COMPONENT_TYPE, BuildingBlock::Lock, &[REDIS_CLIENT_FIELDS]),
    opener: Opener::Lock(open),
};

fn open(opening: Opening<'_>) -> BoxFuture<'_, Result<Arc<dyn LockStore>, OpenError>> {
    Box::pin(async move {
        let options = opening.fields.redis_options(RedisLockStore::COMPONENT_TYPE, opening.boundary).await?;
        Ok(Arc::new(RedisLockStore::open(&options)?) as _)
    })
}
