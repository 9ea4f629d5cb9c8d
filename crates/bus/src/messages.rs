//! What travels between gateways and workers. Encoded with MessagePack on the NATS carrier.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who is calling: resolved by the gateway from the API token, never from anything in the request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tenant {
    /// Internal project identifier (the tenant boundary).
    pub project_id: String,
    /// Project name (Dapr's "namespace" for key prefixes).
    pub project: String,
    /// The caller's App ID.
    pub app_id: String,
    /// The worker pool that serves the project.
    pub pool: String,
}

/// A call with its caller.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The authenticated caller.
    pub tenant: Tenant,
    /// What it asks.
    pub call: Call,
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

/// What a gateway asks a worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Call {
    /// The caller's components and subscriptions (for `/v1.0/metadata`).
    Metadata,
    /// Read one key.
    GetState { store: String, key: String, metadata: Metadata },
    /// Read many keys.
    GetBulkState { store: String, keys: Vec<String>, metadata: Metadata },
    /// Write items.
    SaveState { store: String, items: Vec<SaveItem> },
    /// Delete items.
    DeleteState { store: String, items: Vec<DeleteItem> },
    /// Apply operations atomically, in order.
    Transaction { store: String, operations: Vec<TransactionOperation>, metadata: Metadata },
    /// Run a query (JSON text of Dapr's query language).
    QueryState { store: String, query: String, metadata: Metadata },
    /// Publish messages on a topic; answered once the broker holds them. One entry for a single publish.
    Publish { pubsub: String, topic: String, entries: Vec<PublishEntry>, trace: TraceContext },
    /// Start (or resume) the caller's streaming subscription to a topic.
    StreamSubscribe { pubsub: String, topic: String },
    /// Events of the caller's streaming subscription, waiting up to `wait_ms` for the first.
    StreamFetch { pubsub: String, topic: String, max: usize, wait_ms: u64 },
    /// What the app did with streamed events, several at once: settling them together lets the broker write
    /// them together.
    StreamSettle { pubsub: String, topic: String, settlements: Vec<Settlement> },
    /// Read one secret, within the caller's secret scopes.
    GetSecret { store: String, key: String, metadata: Metadata },
    /// Read every secret of a store the caller's secret scopes allow.
    GetBulkSecret { store: String, metadata: Metadata },
    /// The value a `secretKeyRef` of one of the project's documents points at (an HTTPEndpoint's header): the
    /// platform reads it on the project's behalf, so the caller's secret scopes do not apply, and the value
    /// goes to the endpoint, never back to the app.
    ResolveSecretRef {
        /// The entry holding the reference, for messages ("header 'x-key' of HTTPEndpoint billing").
        what: String,
        /// The document's `auth.secretStore`.
        store: Option<String>,
        /// The secret's name.
        name: String,
        /// The key in the secret; the name when not given.
        key: Option<String>,
    },
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
    /// Handle for [`Call::StreamSettle`].
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

/// A worker's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Reply {
    /// For [`Call::Metadata`].
    Metadata(MetadataInfo),
    /// For [`Call::GetState`]: `None` when the key is missing.
    State(Option<StateValue>),
    /// For [`Call::GetBulkState`].
    BulkState(Vec<BulkStateItem>),
    /// For writes: done.
    Done,
    /// For [`Call::Publish`]: the entries that failed (none = all published).
    Published(Vec<FailedEntry>),
    /// For [`Call::StreamFetch`].
    Events(Vec<StreamEvent>),
    /// For [`Call::GetSecret`]: the secret's keys and values.
    Secret(BTreeMap<String, String>),
    /// For [`Call::GetBulkSecret`]: each secret's keys and values, by secret name.
    BulkSecret(BTreeMap<String, BTreeMap<String, String>>),
    /// For [`Call::ResolveSecretRef`].
    SecretValue(String),
    /// For [`Call::QueryState`].
    Query {
        /// Hits of this page.
        results: Vec<QueryItem>,
        /// Token of the next page, if there is one.
        token: Option<String>,
    },
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
    /// The store could not give the secret.
    #[error("{message}")]
    SecretGet { message: String },
}
