//! The typed data-plane interface: one request type per call, each with its own reply type.
//!
//! [`data_plane!`] declares every call once and derives from that one list the wire enums ([`Call`],
//! [`Reply`]), the [`DataCall`] link from a request to its reply (what a gateway sends), and the
//! [`DataPlane`] trait with one method per call (what a worker implements). A reply of the wrong type cannot
//! be written on either side; only peers of different versions can still disagree, and [`DataCall::reply_of`]
//! reports that in one place.
//!
//! Request metadata (`metadata.*`) is carried where a worker reads it: inside items ([`SaveItem::metadata`],
//! [`PublishEntry::metadata`]). Reads carry none, because no backend of this version reads any.

use std::collections::BTreeMap;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::messages::{
    BindingResponse, BulkStateItem, ConfigurationItem, DataError, DeleteItem, FailedEntry, Metadata, MetadataInfo,
    PublishEntry, QueryItem, SaveItem, Settlement, StateValue, StreamEvent, Tenant, TraceContext, TransactionOperation,
    UnlockStatus,
};

/// A call a gateway can send, and the reply it gets.
pub trait DataCall: Into<Call> {
    /// What a worker answers.
    type Reply;

    /// The call's name (`GetState`, …), as [`Call::name`] gives it.
    const NAME: &'static str;

    /// The typed answer in `reply`, or `reply` itself when it belongs to another call (a peer of another
    /// version).
    fn reply_of(reply: Reply) -> Result<Self::Reply, Reply>;
}

/// A call with its caller, as the bus carries it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The authenticated caller.
    pub tenant: Tenant,
    /// What it asks.
    pub call: Call,
    /// The `traceparent` of the span this call serves, when that span is recorded: the worker's span joins
    /// its trace.
    #[serde(default)]
    pub trace: Option<String>,
}

macro_rules! data_plane {
    ($( $(#[$doc:meta])* $call:ident => $method:ident -> $reply:ty; )*) => {
        /// Every call, as the bus carries it.
        #[derive(Clone, Debug, Serialize, Deserialize)]
        pub enum Call {
            $( $(#[$doc])* $call($call), )*
        }

        /// Every reply, as the bus carries it: the variant names the call it answers.
        #[derive(Clone, Debug, Serialize, Deserialize)]
        pub enum Reply {
            $( #[doc = concat!("Answers [`", stringify!($call), "`].")] $call($reply), )*
        }

        impl Call {
            /// The call's name (`GetState`, …).
            pub fn name(&self) -> &'static str {
                match self {
                    $( Call::$call(_) => stringify!($call), )*
                }
            }
        }

        impl Reply {
            /// The name of the call this reply answers (for messages: a reply's content may be secret).
            pub fn answers(&self) -> &'static str {
                match self {
                    $( Reply::$call(_) => stringify!($call), )*
                }
            }
        }

        $(
            impl From<$call> for Call {
                fn from(call: $call) -> Call {
                    Call::$call(call)
                }
            }

            impl DataCall for $call {
                type Reply = $reply;

                const NAME: &'static str = stringify!($call);

                fn reply_of(reply: Reply) -> Result<$reply, Reply> {
                    match reply {
                        Reply::$call(reply) => Ok(reply),
                        other => Err(other),
                    }
                }
            }
        )*

        /// What a worker does with each call, for one caller: one method per call, answering that call's reply.
        pub trait DataPlane: Sync {
            $(
                $(#[$doc])*
                fn $method(&self, call: $call) -> impl Future<Output = Result<$reply, DataError>> + Send;
            )*
        }

        /// Runs `call` on `plane` and wraps the answer as the reply to the same call.
        ///
        /// Each call's future is boxed on its own. Unboxed, this future would be as large as the largest of
        /// them (a state query's, tens of KiB), and moving that into the caller's box cost more instructions
        /// than the rest of a state GET.
        pub async fn dispatch(plane: &impl DataPlane, call: Call) -> Result<Reply, DataError> {
            match call {
                $( Call::$call(call) => Box::pin(plane.$method(call)).await.map(Reply::$call), )*
            }
        }
    };
}

data_plane! {
    /// The caller's components and subscriptions (for `/v1.0/metadata`).
    GetMetadata => get_metadata -> MetadataInfo;
    /// Read one key; `None` when it is missing.
    GetState => get_state -> Option<StateValue>;
    /// Read many keys.
    GetBulkState => get_bulk_state -> Vec<BulkStateItem>;
    /// Write items.
    SaveState => save_state -> ();
    /// Delete items.
    DeleteState => delete_state -> ();
    /// Apply operations atomically, in order.
    ExecuteTransaction => execute_transaction -> ();
    /// Run a query; one page of hits.
    QueryState => query_state -> QueryPage;
    /// Publish messages on a topic; answered once the broker holds them, with the entries that failed.
    Publish => publish -> Vec<FailedEntry>;
    /// Start (or resume) the caller's streaming subscription to a topic.
    StreamSubscribe => stream_subscribe -> ();
    /// Events of the caller's streaming subscription.
    StreamFetch => stream_fetch -> Vec<StreamEvent>;
    /// What the app did with streamed events.
    StreamSettle => stream_settle -> ();
    /// Read one secret (its keys and values), within the caller's secret scopes.
    GetSecret => get_secret -> BTreeMap<String, String>;
    /// Read every secret of a store the caller's secret scopes allow, by secret name.
    GetBulkSecret => get_bulk_secret -> BTreeMap<String, BTreeMap<String, String>>;
    /// The value a `secretKeyRef` of one of the project's documents points at.
    ResolveSecretRef => resolve_secret_ref -> String;
    /// Take a lock unless another owner holds it; whether it was taken.
    TryLock => try_lock -> bool;
    /// Release a lock the caller's owner holds.
    Unlock => unlock -> UnlockStatus;
    /// Read configuration items, by key.
    GetConfiguration => get_configuration -> BTreeMap<String, ConfigurationItem>;
    /// Wait for configuration items to differ from what the caller saw; the items that differ, by key.
    WatchConfiguration => watch_configuration -> BTreeMap<String, ConfigurationItem>;
    /// Invoke an output binding.
    InvokeBinding => invoke_binding -> BindingResponse;
}

/// `/v1.0/metadata`'s view of the caller's project.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GetMetadata;

/// `GET /v1.0/state/{store}/{key}`, gRPC `GetState`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetState {
    /// Component name.
    pub store: String,
    /// The app's key.
    pub key: String,
}

/// `POST /v1.0/state/{store}/bulk`, gRPC `GetBulkState`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetBulkState {
    /// Component name.
    pub store: String,
    /// The app's keys.
    pub keys: Vec<String>,
}

/// `POST /v1.0/state/{store}`, gRPC `SaveState`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SaveState {
    /// Component name.
    pub store: String,
    /// Items, written one by one.
    pub items: Vec<SaveItem>,
}

/// `DELETE /v1.0/state/{store}/{key}`, gRPC `DeleteState` and `DeleteBulkState`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeleteState {
    /// Component name.
    pub store: String,
    /// Items, deleted one by one.
    pub items: Vec<DeleteItem>,
}

/// `POST /v1.0/state/{store}/transaction`, gRPC `ExecuteStateTransaction`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecuteTransaction {
    /// Component name.
    pub store: String,
    /// Operations, applied atomically in order.
    pub operations: Vec<TransactionOperation>,
}

/// `POST /v1.0-alpha1/state/{store}/query`, gRPC `QueryStateAlpha1`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryState {
    /// Component name.
    pub store: String,
    /// The query, JSON text of Dapr's query language.
    pub query: String,
}

/// One page of query hits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryPage {
    /// Hits of this page.
    pub results: Vec<QueryItem>,
    /// Token of the next page, if there is one.
    pub token: Option<String>,
}

/// `POST /v1.0/publish/...` and bulk publish, gRPC `PublishEvent` and `BulkPublishEvent`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Publish {
    /// Pub/sub component.
    pub pubsub: String,
    /// Topic.
    pub topic: String,
    /// Messages; one for a single publish.
    pub entries: Vec<PublishEntry>,
    /// The calling request's trace context, put into the CloudEvents.
    pub trace: TraceContext,
}

/// The topic of a streaming subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamTopic {
    /// Pub/sub component.
    pub pubsub: String,
    /// Topic.
    pub topic: String,
}

/// Opens a `SubscribeTopicEventsAlpha1` stream's subscription.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamSubscribe {
    /// What it subscribes to.
    pub topic: StreamTopic,
}

/// Takes events of a streaming subscription.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamFetch {
    /// The subscription.
    pub topic: StreamTopic,
    /// Most events to take.
    pub max: usize,
    /// How long to wait for the first, in milliseconds.
    pub wait_ms: u64,
}

/// Settles streamed events, several at once: settling them together lets the broker write them together.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamSettle {
    /// The subscription.
    pub topic: StreamTopic,
    /// The app's verdicts.
    pub settlements: Vec<Settlement>,
}

/// `GET /v1.0/secrets/{store}/{key}`, gRPC `GetSecret`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetSecret {
    /// Secret store.
    pub store: String,
    /// Secret name.
    pub key: String,
}

/// `GET /v1.0/secrets/{store}/bulk`, gRPC `GetBulkSecret`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetBulkSecret {
    /// Secret store.
    pub store: String,
}

/// The value a `secretKeyRef` of one of the project's documents points at (an HTTPEndpoint's header): the
/// platform reads it on the project's behalf, so the caller's secret scopes do not apply, and the value goes
/// to the endpoint, never back to the app.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResolveSecretRef {
    /// The entry holding the reference, for messages ("header 'x-key' of HTTPEndpoint billing").
    pub what: String,
    /// The document's `auth.secretStore`.
    pub store: Option<String>,
    /// The secret's name.
    pub name: String,
    /// The key in the secret; the name when not given.
    pub key: Option<String>,
}

/// `POST /v1.0-alpha1/lock/{store}`, gRPC `TryLockAlpha1`. Fields as the app sent them: the worker checks them
/// in daprd's order, which interleaves with looking the store up.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TryLock {
    /// Lock store.
    pub store: String,
    /// What the lock protects, as the app names it.
    pub resource_id: String,
    /// Who takes it.
    pub owner: String,
    /// How long it is held unless released first.
    pub expiry_seconds: i32,
}

/// `POST /v1.0-alpha1/unlock/{store}`, gRPC `UnlockAlpha1`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Unlock {
    /// Lock store.
    pub store: String,
    /// What the lock protects.
    pub resource_id: String,
    /// Who releases it: only the owner that took it can.
    pub owner: String,
}

/// `GET /v1.0/configuration/{store}`, gRPC `GetConfiguration` (and their alpha names).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetConfiguration {
    /// Configuration store.
    pub store: String,
    /// Keys to read; every key of the store when empty.
    pub keys: Vec<String>,
    /// Request metadata.
    pub metadata: Metadata,
}

/// One wait of a configuration subscription (gRPC `SubscribeConfiguration`, HTTP `.../subscribe`): answered as
/// soon as an item of `keys` differs from `seen`, or empty once `wait_ms` passed. A removed item is answered
/// as an empty one, as daprd sends it. Nothing is lost between two waits: each compares with what the caller
/// saw, not with the moment it began.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WatchConfiguration {
    /// Configuration store.
    pub store: String,
    /// Keys watched; every key of the store when empty.
    pub keys: Vec<String>,
    /// The items the caller last saw, by key.
    pub seen: BTreeMap<String, ConfigurationItem>,
    /// How long to wait for a difference, in milliseconds.
    pub wait_ms: u64,
    /// The subscription's request metadata (`configuration.postgresql` reads its notification channel there).
    pub metadata: Metadata,
}

/// `POST /v1.0/bindings/{name}`, gRPC `InvokeBinding`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InvokeBinding {
    /// The binding component.
    pub name: String,
    /// What to do (`create`, `get`, `delete`, ...; the binding's own list).
    pub operation: String,
    /// The request's data.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// The request's metadata (the binding reads its own keys, such as `path` or `key`).
    pub metadata: Metadata,
}
