//! The data that calls and replies carry, and the errors a worker answers with. Encoded with MessagePack on
//! the NATS carrier.

use std::collections::BTreeMap;
use std::sync::Arc;

use outrigger_store::ProjectId;
use outrigger_telemetry::metrics::{TenantHash, TenantLabels};
use serde::{Deserialize, Serialize};

/// Who is calling: resolved by the gateway from the API token, never from anything in the request. Its text
/// is shared, not copied: the gateway clones a cached tenant for every call, and the call's bus message, log
/// record and metrics clone it again. Made by [`Tenant::new`], which hashes its metric labels once, or read
/// from the bus; its fields are read, never reassigned.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(from = "TenantFields")]
pub struct Tenant {
    /// Internal project identifier (the tenant boundary).
    pub project_id: ProjectId,
    /// Project name (Dapr's "namespace" for key prefixes).
    #[serde(with = "shared_text")]
    pub project: Arc<str>,
    /// The caller's App ID.
    #[serde(with = "shared_text")]
    pub app_id: Arc<str>,
    /// The worker pool that serves the project.
    #[serde(with = "shared_text")]
    pub pool: Arc<str>,
    /// The hash of the metric labels, kept by a tenant made for many calls (a gateway's, cached per token); a
    /// tenant read off the bus serves one call and hashes them when it is counted, if it is.
    #[serde(skip_serializing)]
    metric_hash: Option<TenantHash>,
}

/// A [`Tenant`] as the bus carries it.
#[derive(Deserialize)]
struct TenantFields {
    project_id: ProjectId,
    #[serde(with = "shared_text")]
    project: Arc<str>,
    #[serde(with = "shared_text")]
    app_id: Arc<str>,
    #[serde(with = "shared_text")]
    pool: Arc<str>,
}

impl From<TenantFields> for Tenant {
    fn from(TenantFields { project_id, project, app_id, pool }: TenantFields) -> Tenant {
        Tenant { project_id, project, app_id, pool, metric_hash: None }
    }
}

/// Tenants are alike when their fields are, whether or not one kept its labels' hash.
impl PartialEq for Tenant {
    fn eq(&self, other: &Tenant) -> bool {
        self.fields() == other.fields()
    }
}

impl Eq for Tenant {}

impl std::hash::Hash for Tenant {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.fields().hash(state);
    }
}

impl Tenant {
    fn fields(&self) -> (&ProjectId, &Arc<str>, &Arc<str>, &Arc<str>) {
        (&self.project_id, &self.project, &self.app_id, &self.pool)
    }

    pub fn new(project_id: ProjectId, project: Arc<str>, app_id: Arc<str>, pool: Arc<str>) -> Tenant {
        let metric_hash = TenantLabels::new(&project, project_id.as_str(), &app_id).hash();
        Tenant { project_id, project, app_id, pool, metric_hash }
    }

    /// The labels of the tenant's metric series.
    pub fn metric_labels(&self) -> TenantLabels<'_> {
        let (project, project_id, app_id) = (&*self.project, self.project_id.as_str(), &*self.app_id);
        match self.metric_hash {
            Some(hash) => TenantLabels::hashed(project, project_id, app_id, hash),
            None => TenantLabels::new(project, project_id, app_id),
        }
    }
}

/// A tenant's shared text, on the wire as a string.
mod shared_text {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(text: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<str>, D::Error> {
        String::deserialize(deserializer).map(Arc::from)
    }
}

/// Component metadata from a request (`metadata.*` query parameters, gRPC `metadata` maps).
pub type Metadata = BTreeMap<String, String>;

/// Dapr's `options.concurrency`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Concurrency {
    /// Last write wins unless an ETag is given.
    #[default]
    LastWrite,
    /// The first write wins; later writes must carry the current ETag.
    FirstWrite,
}

/// One item of a save (HTTP `POST /v1.0/state/{store}`, gRPC `SaveState`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveItem {
    /// The app's key (without prefix).
    pub key: String,
    /// The value's bytes as they will be read back.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// ETag the app read, if any.
    pub etag: Option<String>,
    /// Per-item metadata (`ttlInSeconds`, ...).
    pub metadata: Metadata,
    /// Concurrency mode.
    pub concurrency: Concurrency,
}

/// One item of a delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteItem {
    /// The app's key.
    pub key: String,
    /// ETag (`If-Match`), if any.
    pub etag: Option<String>,
    /// Per-item metadata.
    pub metadata: Metadata,
    /// Concurrency mode.
    pub concurrency: Concurrency,
}

/// One operation of a state transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransactionOperation {
    /// `upsert`.
    Upsert(SaveItem),
    /// `delete`.
    Delete(DeleteItem),
}

/// W3C trace context of the calling request, carried into CloudEvents and calls to apps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// `traceparent` header.
    pub traceparent: Option<String>,
    /// `tracestate` header.
    pub tracestate: Option<String>,
}

/// One message to publish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishEntry {
    /// Bulk entry id (empty for a single publish).
    pub entry_id: String,
    /// The bytes as the app sent them.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Their content type, when the app gave one.
    pub content_type: Option<String>,
    /// Per-message metadata (`rawPayload`, `ttlInSeconds`, `cloudevent.*`).
    pub metadata: Metadata,
}

/// A bulk entry that was not published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedEntry {
    /// The entry's id.
    pub entry_id: String,
    /// Why.
    pub error: String,
}

/// What the app did with one streamed event; a dropped one goes to `dead_letter` when given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    /// The event's [`StreamEvent::id`].
    pub id: String,
    /// The app's verdict.
    pub verdict: Verdict,
    /// Where a dropped event goes.
    pub dead_letter: Option<DeadLetter>,
}

/// Where a dropped streamed event goes, with its bytes (the gateway has them; the broker keeps none by id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The dead-letter topic.
    pub topic: String,
    /// The event as it was stored.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// An app's verdict on an event (Dapr's `TopicEventResponse` status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Processed.
    Success,
    /// Deliver again (to this or another consumer) without delay.
    Retry,
    /// Never deliver again; dead-letter it when the subscription has a dead-letter topic.
    Drop,
}

/// One event of a streaming subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEvent {
    /// Handle for a [`crate::StreamSettle`].
    pub id: String,
    /// The stored message: a CloudEvent in JSON, or raw bytes.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// A component as `/v1.0/metadata` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentInfo {
    /// Component name.
    pub name: String,
    /// `spec.type`.
    pub component_type: String,
    /// `spec.version`.
    pub version: String,
    /// Dapr capability names (`ETAG`, `TRANSACTIONAL`, ...).
    pub capabilities: Vec<String>,
}

/// How a subscription was declared (daprd's metadata `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubscriptionKind {
    /// A `Subscription` document.
    Declarative,
    /// The app's `GET /dapr/subscribe`.
    Programmatic,
    /// A gRPC stream the app holds open.
    Streaming,
}

/// A subscription as `/v1.0/metadata` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    /// Pub/sub component.
    pub pubsub: String,
    /// Topic.
    pub topic: String,
    /// Routing rules as (CEL match, path); the default route last, with an empty match.
    pub rules: Vec<(String, String)>,
    /// Dead-letter topic, if any.
    pub dead_letter_topic: Option<String>,
    /// How it was declared.
    pub kind: SubscriptionKind,
}

/// What `/v1.0/metadata` shows of the caller's project.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataInfo {
    /// Components the caller may use.
    pub components: Vec<ComponentInfo>,
    /// The caller's subscriptions.
    pub subscriptions: Vec<SubscriptionInfo>,
}

/// A stored value as a read returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateValue {
    /// The bytes as written.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Current ETag.
    pub etag: String,
    /// Response metadata (`ttlExpireTime`).
    pub metadata: Metadata,
}

/// One key of a bulk read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkStateItem {
    /// The app's key.
    pub key: String,
    /// The value, or `None` when missing or failed.
    pub value: Option<StateValue>,
    /// Why this key failed, if it did.
    pub error: Option<String>,
}

/// One query hit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryItem {
    /// The app's key.
    pub key: String,
    /// The value's bytes (JSON).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Current ETag.
    pub etag: String,
}

/// A configuration item as a configuration store answers it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigurationItem {
    /// The value.
    pub value: String,
    /// The store's version of it.
    pub version: String,
    /// Its attributes.
    pub metadata: Metadata,
}

/// What an output binding answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingResponse {
    /// The answer's data.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// The answer's metadata (HTTP: `statusCode`, `status` and the response headers).
    pub metadata: Metadata,
}

/// What an unlock found (daprd's `UnlockResponse.Status`, with its numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnlockStatus {
    /// The owner held the lock; it is released.
    Success = 0,
    /// Nobody holds the lock (never taken, released, or expired).
    LockDoesNotExist = 1,
    /// Another owner holds the lock; it stays held.
    LockBelongsToOthers = 2,
    /// The store failed.
    InternalError = 3,
}

/// The state operation an error happened in; it decides daprd's error code (`ERR_STATE_SAVE`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateOperation {
    /// Get one key.
    Get,
    /// Get many keys.
    BulkGet,
    /// Save.
    Save,
    /// Delete.
    Delete,
    /// Bulk delete.
    BulkDelete,
    /// Transaction.
    Transaction,
    /// Query.
    Query,
}

/// Why a worker refused or failed a call. The gateway turns each into daprd's HTTP and gRPC answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DataError {
    /// No state store of that name the caller may use (unknown and out-of-scope look the same).
    #[error("state store {store} is not found")]
    StoreNotFound { store: String },
    /// The caller may use no state store at all.
    #[error("state store is not configured")]
    StoresNotConfigured,
    /// An ETag did not match, or first-write found the key.
    #[error("{message}")]
    EtagMismatch { operation: StateOperation, message: String },
    /// An ETag the store could not have produced.
    #[error("{message}")]
    EtagInvalid { operation: StateOperation, message: String },
    /// The request is malformed (missing key, bad metadata, key with `||`...).
    #[error("{message}")]
    BadRequest { operation: StateOperation, message: String },
    /// More operations in one transaction than allowed.
    #[error("the transaction contains {count} operations, more than the limit of {limit}")]
    TooManyOperations { count: usize, limit: usize },
    /// The store cannot do what was asked (query, transactions).
    #[error("{message}")]
    NotSupported { message: String },
    /// The caller already runs as many heavy operations (state queries) at once as it may.
    #[error("{message}")]
    Busy { message: String },
    /// The write would take the project past the bytes it may keep in its managed state store.
    #[error("{message}")]
    StorageQuotaExceeded { message: String },
    /// The store failed (down, timed out, or its component could not start).
    #[error("{message}")]
    StoreFailure { operation: StateOperation, message: String },
    /// No pub/sub component of that name the caller may use.
    #[error("pubsub {pubsub} is not found")]
    PubsubNotFound { pubsub: String },
    /// The caller may use no pub/sub component at all.
    #[error("no pubsub is configured")]
    PubsubNotConfigured,
    /// A publish without a topic.
    #[error("topic is empty in pubsub {pubsub}")]
    TopicEmpty { pubsub: String },
    /// Topic scoping metadata (`publishingScopes`, `allowedTopics`, `protectedTopics`) refuses the call.
    #[error("{message}")]
    TopicForbidden { message: String },
    /// Publish metadata that cannot be used (a bad `ttlInSeconds`).
    #[error("{message}")]
    BadPublishMetadata { message: String },
    /// A body sent as `application/cloudevents+json` that is not a CloudEvent.
    #[error("{message}")]
    BadCloudEvent { message: String },
    /// The broker did not take the message.
    #[error("{message}")]
    PublishFailed { message: String },
    /// The caller may use no secret store at all.
    #[error("secret store is not configured")]
    SecretStoresNotConfigured,
    /// No secret store of that name the caller may use.
    #[error("failed finding secret store with key {store}")]
    SecretStoreNotFound { store: String },
    /// The caller's Configuration does not let it read that secret.
    #[error("access denied by policy to get \"{key}\" from \"{store}\"")]
    SecretDenied { store: String, key: String },
    /// The caller's project (its components and policies) cannot be read right now.
    #[error("{message}")]
    ProjectUnavailable { message: String },
    /// The store could not give the secret.
    #[error("{message}")]
    SecretGet { message: String },
    /// The caller may use no lock store at all.
    #[error("lock store is not configured")]
    LockStoresNotConfigured,
    /// No lock store of that name the caller may use.
    #[error("lock store {store} not found")]
    LockStoreNotFound { store: String },
    /// A lock request with an empty or invalid field.
    #[error("{message}")]
    LockBadRequest { message: String },
    /// The lock store failed to take the lock.
    #[error("failed to try acquiring lock: {message}")]
    TryLockFailed { message: String },
    /// The lock store failed to release the lock.
    #[error("failed to release lock: {message}")]
    UnlockFailed { message: String },
    /// The caller may use no configuration store at all.
    #[error("configuration stores not configured")]
    ConfigurationStoresNotConfigured,
    /// No configuration store of that name the caller may use.
    #[error("configuration store {store} not found")]
    ConfigurationStoreNotFound { store: String },
    /// The store could not read the items (daprd's "failed to get [keys] from Configuration store ...").
    #[error("{message}")]
    ConfigurationGet { message: String },
    /// The store could not watch the items.
    #[error("{message}")]
    ConfigurationSubscribe { message: String },
    /// An output binding that is unknown, refuses the operation, or failed (daprd's one error for all three).
    #[error("error invoking output binding {name}: {message}")]
    InvokeBinding { name: String, message: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_read_off_the_bus_is_the_one_sent_and_counted_alike() {
        let sent = Tenant::new(ProjectId::received("prj_1".into()), "shop".into(), "orders".into(), "default".into());
        let read: Tenant = rmp_serde::from_slice(&rmp_serde::to_vec(&sent).unwrap()).unwrap();
        assert_eq!(read, sent);
        assert_eq!(read.metric_hash, None, "not sent: made again where it is counted");
        assert_eq!(read.metric_labels(), sent.metric_labels());
        assert_eq!(sent.metric_labels(), TenantLabels::new("shop", "prj_1", "orders"));
    }
}
