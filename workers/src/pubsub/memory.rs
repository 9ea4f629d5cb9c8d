//! `pubsub.in-memory`: topics and groups in this process, gone when it ends.
//!
//! Every group keeps its own copy of the messages it has not acked, keyed by a number that grows with each
//! publish, so scanning a group in key order hands messages out in publish order. A message is handed out
//! once its `available_at` has passed: at publish, then when its hold expires or its retry delay ends.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::backend::missing_group;
use super::{Broker, BrokerError, Delivery, Features};

use outrigger_resources::{BuildingBlock, ComponentType};

use crate::components::{Backend, Opener, Opening};

/// Dapr's in-memory pub/sub. Delivery ids are message numbers, meaningful to this broker only (there is
/// no other process to hand them to).
#[derive(Debug, Default)]
pub struct MemoryBroker {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_number: u64,
    /// Topic -> group name -> group. Topics without groups are not kept: nobody could receive their messages.
    topics: HashMap<String, HashMap<String, Group>>,
}

#[derive(Debug, Default)]
struct Group {
    unacked: BTreeMap<u64, Unacked>,
    /// Wakes the group's waiting fetchers when a message may have become available.
    wakeup: Arc<Notify>,
}

#[derive(Debug)]
struct Unacked {
    payload: Arc<[u8]>,
    /// Times handed out so far.
    attempts: u32,
    available_at: Instant,
    /// When it was published (Unix milliseconds).
    published_at: i64,
}

impl State {
    fn group(&mut self, topic: &str, group: &str) -> Option<&mut Group> {
        self.topics.get_mut(topic)?.get_mut(group)
    }
}

impl Group {
    /// Hands out up to `max` available messages, in publish order, each held until `now + hold`.
    fn take(&mut self, max: usize, now: Instant, hold: Duration) -> Vec<Delivery> {
        self.unacked
            .iter_mut()
            .filter(|(_, message)| message.available_at <= now)
            .take(max)
            .map(|(number, message)| {
                message.attempts = message.attempts.saturating_add(1);
                message.available_at = later(now, hold);
                Delivery {
                    id: number.to_string(),
                    payload: message.payload.to_vec(),
                    attempt: message.attempts,
                    published_at: Some(message.published_at),
                }
            })
            .collect()
    }

    fn next_available(&self) -> Option<Instant> {
        self.unacked.values().map(|message| message.available_at).min()
    }
}

/// `duration` after `now`, or a century when that overflows the clock.
fn later(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

fn message_number(id: &str) -> Result<u64, BrokerError> {
    id.parse().map_err(|_| BrokerError::InvalidId(id.to_owned()))
}

impl MemoryBroker {
    /// The Dapr component type this broker serves.
    pub const COMPONENT_TYPE: &'static str = "pubsub.in-memory";

    /// A broker without topics.
    pub fn new() -> MemoryBroker {
        MemoryBroker::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-changed in a way later calls trip over.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn features(&self) -> Features {
        Features { ordered: true, durable: false }
    }

    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), BrokerError> {
        let mut state = self.state();
        state.last_number += 1;
        let number = state.last_number;
        let Some(groups) = state.topics.get_mut(topic) else { return Ok(()) };
        let payload: Arc<[u8]> = payload.into();
        let (now, published_at) = (Instant::now(), chrono::Utc::now().timestamp_millis());
        for group in groups.values_mut() {
            group.unacked.insert(
                number,
                Unacked { payload: Arc::clone(&payload), attempts: 0, available_at: now, published_at },
            );
            group.wakeup.notify_waiters();
        }
        Ok(())
    }

    async fn ensure_group(&self, topic: &str, group: &str) -> Result<(), BrokerError> {
        self.state().topics.entry(topic.to_owned()).or_default().entry(group.to_owned()).or_default();
        Ok(())
    }

    async fn fetch(
        &self,
        topic: &str,
        group: &str,
        max: usize,
        wait: Duration,
        hold: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let deadline = later(Instant::now(), wait);
        loop {
            let wakeup;
            let woken;
            let until;
            {
                let mut state = self.state();
                let members =
                    state.group(topic, group).ok_or_else(|| missing_group(Self::COMPONENT_TYPE, topic, group))?;
                let now = Instant::now();
                let taken = members.take(max, now, hold);
                if !taken.is_empty() || max == 0 || now >= deadline {
                    return Ok(taken);
                }
                until = members.next_available().map_or(deadline, |available| available.min(deadline));
                wakeup = Arc::clone(&members.wakeup);
                // Registered before the lock is released, so a publish right after it still wakes this fetch.
                woken = wakeup.notified();
            }
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn ack(&self, topic: &str, group: &str, id: &str) -> Result<(), BrokerError> {
        let number = message_number(id)?;
        if let Some(members) = self.state().group(topic, group) {
            members.unacked.remove(&number);
        }
        Ok(())
    }

    async fn retry(&self, topic: &str, group: &str, id: &str, delay: Duration) -> Result<(), BrokerError> {
        let number = message_number(id)?;
        if let Some(members) = self.state().group(topic, group) {
            if let Some(message) = members.unacked.get_mut(&number) {
                message.available_at = later(Instant::now(), delay);
                // Waiting fetchers planned their sleep around the old hold; they must look again.
                members.wakeup.notify_waiters();
            }
        }
        Ok(())
    }

    async fn delete_group(&self, topic: &str, group: &str) -> Result<(), BrokerError> {
        let mut state = self.state();
        let Some(groups) = state.topics.get_mut(topic) else { return Ok(()) };
        if let Some(removed) = groups.remove(group) {
            // Its waiting fetchers find the group gone and say so.
            removed.wakeup.notify_waiters();
        }
        if groups.is_empty() {
            state.topics.remove(topic);
        }
        Ok(())
    }
}

/// `pubsub.in-memory`: nothing to configure.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(MemoryBroker::COMPONENT_TYPE, BuildingBlock::PubSub, &[]),
    opener: Opener::PubSub(|_: Opening<'_>| Box::pin(async { Ok(Arc::new(MemoryBroker::new()) as _) })),
};
