//! Lock stores (`lock.*`): what the distributed lock API takes and releases locks in. Each backend is a file
//! of its own ([`redis`] for `lock.redis`); [`kvstore`] serves the project's managed `kvstore` as a lock store
//! too, so that a project needs no component of its own to use locks.

pub(crate) mod api;
pub(crate) mod kvstore;
pub(crate) mod redis;

pub use kvstore::StateLockStore;
pub use redis::RedisLockStore;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use outrigger_bus::UnlockStatus;

use crate::boundary::Boundary;
use crate::components::{self, Opener};
use crate::secrets::HostSecrets;
use crate::state::open::OpenError;

/// Why a lock store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The backend failed (down, timed out, answered something unexpected).
    #[error("{0}")]
    Backend(String),
}

/// A lock store of one component. Keys are whole (prefixes applied); owners are compared exactly. Calls have no
/// deadline of their own: the lock API runs them under the component's Resiliency policy.
#[async_trait]
pub trait LockStore: Send + Sync {
    /// Takes the lock `key` for `owner` for `expiry` unless anyone (the same owner included) holds it;
    /// whether it was taken.
    async fn try_lock(&self, key: &str, owner: &str, expiry: Duration) -> Result<bool, LockError>;

    /// Releases the lock `key` if `owner` holds it.
    async fn unlock(&self, key: &str, owner: &str) -> Result<UnlockStatus, LockError>;
}

/// Opens the lock store a Dapr component describes, reaching only what `boundary` allows.
pub async fn open_within(
    component_type: &str,
    metadata: &BTreeMap<String, String>,
    boundary: &Boundary,
) -> Result<Arc<dyn LockStore>, OpenError> {
    components::open(Opener::lock, component_type, metadata, boundary, HostSecrets::Refused).await
}

/// daprd's separator in lock keys; resource IDs may not contain it.
const SEPARATOR: &str = "||";

/// How a lock store turns a resource ID into a key (daprd's `keyPrefix` metadata of lock stores).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockKeyPrefix {
    /// `lock||<appid>||<resource>` (the default).
    AppId,
    /// `lock||<component name>||<resource>`: shared by the apps of the project.
    ComponentName,
    /// `lock||<resource>`.
    None,
    /// `lock||<custom>||<resource>`.
    Custom(String),
}

impl LockKeyPrefix {
    /// The strategy `keyPrefix` names; daprd reads it case-insensitively.
    pub fn from_metadata(value: Option<&str>) -> LockKeyPrefix {
        let value = value.map(|value| value.trim().to_ascii_lowercase());
        match value.as_deref() {
            None | Some("") | Some("appid") => LockKeyPrefix::AppId,
            Some("name") => LockKeyPrefix::ComponentName,
            Some("none") => LockKeyPrefix::None,
            Some(custom) => LockKeyPrefix::Custom(custom.to_owned()),
        }
    }

    /// daprd's key for `resource` (`GetModifiedLockKey`), or why there is none.
    pub fn key(&self, resource: &str, component: &str, app_id: &str) -> Result<String, String> {
        for part in [resource, self.custom().unwrap_or_default()] {
            if part.contains(SEPARATOR) {
                return Err(format!("input key/keyPrefix '{part}' can't contain '{SEPARATOR}'"));
            }
        }
        Ok(match self {
            LockKeyPrefix::AppId => format!("lock{SEPARATOR}{app_id}{SEPARATOR}{resource}"),
            LockKeyPrefix::ComponentName => format!("lock{SEPARATOR}{component}{SEPARATOR}{resource}"),
            LockKeyPrefix::None => format!("lock{SEPARATOR}{resource}"),
            LockKeyPrefix::Custom(custom) => format!("lock{SEPARATOR}{custom}{SEPARATOR}{resource}"),
        })
    }

    fn custom(&self) -> Option<&str> {
        match self {
            LockKeyPrefix::Custom(custom) => Some(custom),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_daprd_strategies() {
        let key = |prefix: Option<&str>| LockKeyPrefix::from_metadata(prefix).key("order-1", "locks", "checkout");
        assert_eq!(key(None).unwrap(), "lock||checkout||order-1");
        assert_eq!(key(Some("AppID")).unwrap(), "lock||checkout||order-1");
        assert_eq!(key(Some("name")).unwrap(), "lock||locks||order-1");
        assert_eq!(key(Some("none")).unwrap(), "lock||order-1");
        assert_eq!(key(Some("shared")).unwrap(), "lock||shared||order-1");
        let err = LockKeyPrefix::AppId.key("a||b", "locks", "checkout").unwrap_err();
        assert_eq!(err, "input key/keyPrefix 'a||b' can't contain '||'");
        assert!(LockKeyPrefix::from_metadata(Some("x||y")).key("a", "locks", "app").is_err());
    }
}
