//! State stores: one trait, one backend per Dapr component type.
//!
//! Keys reaching a store are already complete (`[<namespace>]<appid>||<key>` as the handler builds them);
//! stores never interpret them. Every write returns a new ETag; ETags are opaque to callers.

pub(crate) mod api;
pub(crate) mod connection;
mod keys;
pub(crate) mod memory;
// The message brokers (`crate::pubsub`) reuse the metadata reading, the connections and the deadlines.
pub(crate) mod open;
mod page;
pub(crate) mod postgres;
mod query;
pub(crate) mod query_api;
pub(crate) mod quota;
pub(crate) mod redis;
mod redis_scan;
mod scan;
pub(crate) mod sql;
mod sql_filter;
pub(crate) mod sqlite;
pub(crate) mod time;
mod write;

pub use self::redis::{RedisOptions, RedisStateStore};
pub use keys::{KeyPage, KeyPosition, ListedKey};
pub use memory::MemoryStateStore;
pub use open::{open, open_within, OpenError};
pub use page::PageLimits;
pub use postgres::{PostgresDialect, PostgresOptions, PostgresStateStore};
pub use query::{Query, QueryError, QueryPage, QueryResult};
pub use quota::StoredBytesQuota;
pub use scan::{key_digest, BatchOrder, Position, ScanBatch, ScanRequest, ScanRow};
pub use sql::{SqlDialect, SqlStateStore, DEFAULT_CLEANUP_INTERVAL, DEFAULT_TABLE_NAME};
pub use sqlite::{SqliteDialect, SqliteOptions, SqliteStateStore};

use async_trait::async_trait;

/// A stored value with its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredItem {
    /// The bytes as the app wrote them.
    pub value: Vec<u8>,
    /// The current ETag (non-empty).
    pub etag: String,
    /// When the item expires (Unix milliseconds), if a TTL was set.
    pub expires_at: Option<i64>,
}

/// Concurrency mode of a write (Dapr `options.concurrency`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Concurrency {
    /// Without an ETag the write wins; with one it must match.
    #[default]
    LastWrite,
    /// The write must name the current ETag; without one it succeeds only if the key does not exist.
    FirstWrite,
}

/// One write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetRequest {
    /// Full key.
    pub key: String,
    /// New value.
    pub value: Vec<u8>,
    /// ETag the caller read, if any (empty string counts as none).
    pub etag: Option<String>,
    /// Concurrency mode.
    pub concurrency: Concurrency,
    /// Seconds until the item expires; `None` = never (also what `ttlInSeconds=-1` becomes).
    pub ttl_seconds: Option<u64>,
}

/// One delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteRequest {
    /// Full key.
    pub key: String,
    /// ETag the caller read, if any (empty string counts as none).
    pub etag: Option<String>,
    /// Concurrency mode.
    pub concurrency: Concurrency,
}

/// One operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransactionOperation {
    /// Insert or update.
    Upsert(SetRequest),
    /// Delete (deleting a missing key without an ETag succeeds).
    Delete(DeleteRequest),
}

/// What a store can do beyond get/set/delete (reported in `/v1.0/metadata` as Dapr capabilities).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// Multi-operation atomic transactions (`TRANSACTIONAL`).
    pub transactional: bool,
    /// ETags (`ETAG`); every store here has them.
    pub etag: bool,
    /// `ttlInSeconds` (`TTL`).
    pub ttl: bool,
    /// The query API (`QUERY_API`).
    pub query: bool,
}

impl Features {
    /// The capability names daprd reports for these features.
    pub fn capabilities(self) -> Vec<&'static str> {
        [(self.etag, "ETAG"), (self.transactional, "TRANSACTIONAL"), (self.ttl, "TTL"), (self.query, "QUERY_API")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect()
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The ETag does not match the stored one, or first-write found an existing key (409 / Aborted).
    #[error("possible etag mismatch. error from state store: {0}")]
    EtagMismatch(String),
    /// The ETag is not one this store could have produced (400 / InvalidArgument).
    #[error("invalid etag value: {0}")]
    EtagInvalid(String),
    /// The store cannot do this (e.g. query on a store without it).
    #[error("{0} is not supported by this state store")]
    Unsupported(&'static str),
    /// The request is malformed for this store (e.g. a query it cannot parse).
    #[error("{0}")]
    InvalidRequest(String),
    /// The backend failed (connection lost, timeout, server error).
    #[error("{0}")]
    Backend(String),
}

/// A state store backend.
///
/// Calls on items (`get`, `bulk_get`, `set`, `delete`, `transact`) have no deadline of their own: each caller
/// bounds them. The state API runs them under the component's Resiliency policy, whose timeout (by default the
/// operator's store timeout) is the only one, so a tenant's longer timeout is not cut short by a second, fixed
/// one; other callers bound them with the store's fixed deadline (`within_deadline`). A ping, and every round
/// trip of a scan, bound themselves: a scan of a large project takes many, none of which may hang.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// What the store supports.
    fn features(&self) -> Features;

    /// Checks the backend is reachable.
    async fn ping(&self) -> Result<(), StateError>;

    /// Reads one key; `None` when absent or expired.
    async fn get(&self, key: &str) -> Result<Option<StoredItem>, StateError>;

    /// Reads many keys; one answer per key, in order.
    async fn bulk_get(&self, keys: &[String]) -> Vec<Result<Option<StoredItem>, StateError>> {
        let mut answers = Vec::with_capacity(keys.len());
        for key in keys {
            answers.push(self.get(key).await);
        }
        answers
    }

    /// Writes one key and returns its new ETag.
    async fn set(&self, request: &SetRequest) -> Result<String, StateError>;

    /// Deletes one key (absent without an ETag: success).
    async fn delete(&self, request: &DeleteRequest) -> Result<(), StateError>;

    /// Applies the operations in order, all or none.
    async fn transact(&self, operations: &[TransactionOperation]) -> Result<(), StateError>;

    /// One batch of the items whose keys start with `request.prefix`, for the query API ([`Query::run_on`]);
    /// stores without query answer [`StateError::Unsupported`].
    async fn scan(&self, _request: &ScanRequest<'_>) -> Result<ScanBatch, StateError> {
        Err(StateError::Unsupported("query"))
    }

    /// Bytes of the live items whose keys start with `prefix`: each key's UTF-8 bytes and its value's bytes.
    /// What a project keeps in the managed kvstore is measured with it (usage and the stored-bytes quota).
    async fn stored_bytes(&self, _prefix: &str) -> Result<u64, StateError> {
        Err(StateError::Unsupported("measuring stored bytes"))
    }

    /// A page of the live keys starting with `prefix`, from `from`, without their values: at most `limit` keys
    /// (Redis: whole `SCAN` steps, which may hold a few more). A page may hold fewer, even none, and still say
    /// where the next starts. The managed kvstore's explorer lists a project's keys with it.
    async fn list_keys(&self, _prefix: &str, _from: &KeyPosition, _limit: usize) -> Result<KeyPage, StateError> {
        Err(StateError::Unsupported("listing keys"))
    }
}
