//! Pub/sub: the CloudEvent envelope daprd's publish API builds, and the brokers behind pub/sub components.

pub(crate) mod api;
mod backend;
mod broker;
pub mod cloudevent;
pub(crate) mod jetstream;
pub(crate) mod memory;
mod open;
pub(crate) mod redis;
mod scopes;
mod sql;
pub(crate) mod stream_api;

pub use self::redis::{RedisBroker, RedisBrokerOptions};
pub use crate::state::OpenError;
pub use backend::DEFAULT_MAX_AGE;
pub use broker::{Broker, BrokerError, Delivery, Features};
pub use jetstream::{JetStreamBroker, JetStreamOptions, DEFAULT_ACK_WAIT, DEFAULT_STREAM_NAME};
pub use memory::MemoryBroker;
pub use open::{open, open_within};
pub use scopes::{Access, TopicScopes};
pub use sql::{SqlBroker, SqlBrokerOptions, DEFAULT_SWEEP_INTERVAL};
