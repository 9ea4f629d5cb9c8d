//! What the control API asks of the installation's managed stores for the console's explorers: the keys of a
//! project's managed `kvstore` ([`ManagedKv`]) and the backlog of its managed `pubsub` topics ([`ManagedTopics`]).
//! The binary implements both over the stores the workers serve (`outrigger_workers::explorer`); every call names
//! the project by its internal id and reaches only that project's keys and topics.

use outrigger_store::ProjectId;

/// Why an explorer call failed.
#[derive(Debug, thiserror::Error)]
pub enum ExplorerFailure {
    /// The request cannot be answered as given: a malformed continuation token, a prefix without an App ID.
    #[error("{0}")]
    Invalid(String),
    /// The store failed or could not be reached.
    #[error("{0}")]
    Unavailable(String),
}

/// A key of a project's App ID in the managed kvstore, without its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvKey {
    /// The App ID whose key it is.
    pub app_id: String,
    /// The key as the App ID wrote it (without Dapr's `<appId>||` prefix).
    pub key: String,
    /// Bytes of the value.
    pub size: u64,
    /// The current ETag.
    pub etag: Option<String>,
    /// When the item expires (Unix milliseconds), if it has a TTL.
    pub expires_at: Option<i64>,
}

/// A page of keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvPage {
    /// The keys, in key order (on a Redis kvstore, in key order within the page).
    pub keys: Vec<KvKey>,
    /// Where the next page starts; `None` on the last.
    pub continuation: Option<String>,
}

/// One item with its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvValue {
    /// The bytes as the App ID wrote them.
    pub value: Vec<u8>,
    /// The current ETag.
    pub etag: Option<String>,
    /// When the item expires (Unix milliseconds), if it has a TTL.
    pub expires_at: Option<i64>,
}

/// Reads and deletes the keys of projects in the managed kvstore.
#[async_trait::async_trait]
pub trait ManagedKv: Send + Sync {
    /// A page of the project's keys: of `app_id` (starting with `prefix`), or of every App ID (`prefix` empty), from
    /// `continuation`, at most `limit` (a Redis kvstore may give a few more, or fewer and a continuation).
    async fn list(
        &self,
        project: &ProjectId,
        app_id: Option<&str>,
        prefix: &str,
        continuation: Option<&str>,
        limit: usize,
    ) -> Result<KvPage, ExplorerFailure>;

    /// One item of the project's App ID; `None` when absent or expired.
    async fn get(&self, project: &ProjectId, app_id: &str, key: &str) -> Result<Option<KvValue>, ExplorerFailure>;

    /// Deletes one item of the project's App ID; `false` when there was none.
    async fn delete(&self, project: &ProjectId, app_id: &str, key: &str) -> Result<bool, ExplorerFailure>;
}

/// A consumer group the managed pubsub holds for one of a project's topics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicGroup {
    /// The topic, as apps name it.
    pub topic: String,
    /// The App ID it delivers to.
    pub app_id: String,
    /// The group of the App ID's streaming subscriptions (else its push deliveries).
    pub streaming: bool,
}

/// Counts what the managed pubsub holds for a project's topics. Counts stop at `cap`.
#[async_trait::async_trait]
pub trait ManagedTopics: Send + Sync {
    /// The consumer groups of the project's topics, at most `max`; `None` when the broker cannot list them per
    /// project (JetStream, Redis).
    async fn groups(&self, project: &ProjectId, max: usize) -> Result<Option<Vec<TopicGroup>>, ExplorerFailure>;

    /// Messages of the project's `topic` the App ID's group has not acknowledged (waiting, held by a delivery, or
    /// waiting for a retry), up to `cap`; `None` when the group does not exist yet.
    async fn pending(
        &self,
        project: &ProjectId,
        topic: &str,
        app_id: &str,
        streaming: bool,
        cap: u64,
    ) -> Result<Option<u64>, ExplorerFailure>;

    /// Messages the project's `topic` keeps (published, not yet removed by retention), up to `cap`.
    async fn kept_messages(&self, project: &ProjectId, topic: &str, cap: u64) -> Result<u64, ExplorerFailure>;

    /// What the App ID last answered to `GET /dapr/subscribe` (its programmatic subscriptions), as this process
    /// read it: `None` where no delivery runs in this process, or it has not asked the app yet.
    fn programmatic(&self, _project: &ProjectId, _app_id: &str) -> Option<Vec<serde_json::Value>> {
        None
    }
}
