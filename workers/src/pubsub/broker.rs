//! Message brokers: one trait, one backend per Dapr pub/sub component type.
//!
//! Topics and group names reaching a broker are complete (the handler has already put the project's
//! namespace in front); brokers encode them however their backend needs. Delivery state lives in the
//! backend, never only in one process: `Delivery::id` is an opaque handle any process may ack or retry, so a
//! worker can die at any moment and another one carries on.

use std::time::Duration;

use async_trait::async_trait;

/// A message handed to a consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Opaque handle for [`Broker::ack`] / [`Broker::retry`]; valid in any process.
    pub id: String,
    /// The bytes as published.
    pub payload: Vec<u8>,
    /// How many times this message has been handed to the group, this time included (1 = first delivery).
    pub attempt: u32,
    /// When the message was published (Unix milliseconds), if the broker keeps it.
    pub published_at: Option<i64>,
}

/// What a broker promises beyond at-least-once delivery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// Messages of a topic reach a group in publish order while none is retried.
    pub ordered: bool,
    /// Messages survive a restart of the broker and of every worker.
    pub durable: bool,
}

/// Why a broker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The backend failed (connection lost, timeout, server error).
    #[error("{0}")]
    Backend(String),
    /// A handle that this broker did not produce, or that belongs to another topic or group.
    #[error("invalid delivery id: {0}")]
    InvalidId(String),
}

/// A message broker backend.
#[async_trait]
pub trait Broker: Send + Sync {
    /// What the broker promises.
    fn features(&self) -> Features;

    /// Stores a message on `topic`; returns only once the backend acknowledged it (durably, when the
    /// broker is durable). Without a deadline of its own: the publish API runs it under the component's
    /// Resiliency policy, whose timeout is the only one, and other callers bound it themselves. (The broker's
    /// other calls serve deliveries, outside any policy, and bound themselves.)
    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), BrokerError>;

    /// Makes sure consumer group `group` of `topic` exists; a new group receives the messages published
    /// after this call returns. Idempotent: an existing group keeps its position and pending messages.
    async fn ensure_group(&self, topic: &str, group: &str) -> Result<(), BrokerError>;

    /// Up to `max` messages of the group that no member currently holds (new ones, retries whose delay has
    /// passed, and holds that expired), waiting up to `wait` for the first. Each returned message is held for
    /// `hold`: if it is neither acked nor retried by then, it is handed out again.
    async fn fetch(
        &self,
        topic: &str,
        group: &str,
        max: usize,
        wait: Duration,
        hold: Duration,
    ) -> Result<Vec<Delivery>, BrokerError>;

    /// The group is done with a message: it is never handed to the group again.
    async fn ack(&self, topic: &str, group: &str, id: &str) -> Result<(), BrokerError>;

    /// The message goes back to the group, to be handed out again after `delay`.
    async fn retry(&self, topic: &str, group: &str, id: &str, delay: Duration) -> Result<(), BrokerError>;

    /// Removes a consumer group and whatever it still held (its subscription was deleted).
    async fn delete_group(&self, topic: &str, group: &str) -> Result<(), BrokerError>;

    // What the console's topic explorer asks ([`crate::explorer`]). Counts stop at `cap` (an answer of `cap`
    // means "at least"), so that a count costs at most that much whatever the backlog.

    /// Messages of `topic` that group `group` has not acknowledged yet (not handed out, held by a fetcher, or
    /// waiting for a retry), counted up to `cap`; `None` when the group does not exist.
    async fn pending(&self, _topic: &str, _group: &str, _cap: u64) -> Result<Option<u64>, BrokerError> {
        Err(BrokerError::Backend("this broker cannot count pending messages".to_owned()))
    }

    /// Messages `topic` keeps (published and not yet removed by retention), counted up to `cap`.
    async fn kept_messages(&self, _topic: &str, _cap: u64) -> Result<u64, BrokerError> {
        Err(BrokerError::Backend("this broker cannot count the messages of a topic".to_owned()))
    }

    /// The consumer groups of the topics starting with `topic_prefix`, as (topic, group) in that order, at most
    /// `max`; `None` when the broker cannot list them without looking at every topic or group it holds.
    async fn groups(&self, _topic_prefix: &str, _max: usize) -> Result<Option<Vec<(String, String)>>, BrokerError> {
        Ok(None)
    }
}
