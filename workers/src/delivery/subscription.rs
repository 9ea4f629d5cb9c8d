//! One subscription's delivery loop: pulls what its consumer group hands this worker, delivers each message
//! (or a bulk batch) to the app under the subscription's Resiliency policy, and acknowledges, retries or
//! drops it as the app answers.

use std::sync::Arc;
use std::time::Duration;

use outrigger_outbound::health::AppHealth;
use outrigger_outbound::resiliency::{self, Breaker, Policy, Retry, DEFAULT_DELIVERY_RETRY};
use outrigger_outbound::AppClient;
use outrigger_store::ProjectId;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::app::{self, Outcome};
use super::{Target, TargetKey, BATCH, FETCH_WAIT, HOLD, RESCAN};
use crate::app_calls::ToApp;
use crate::pubsub::api::publish_under;
use crate::pubsub::cloudevent::{is_expired, parse_delivery_attributes, parse_event, raw_payload_event};
use crate::pubsub::{Access, Broker, Delivery};
use crate::Worker;

/// Pulls and delivers the messages of one subscription until aborted.
pub(super) async fn deliver_loop(
    worker: Arc<Worker>,
    client: AppClient,
    target: Target,
    limit: Arc<Semaphore>,
    health: Option<Arc<AppHealth>>,
    stop: CancellationToken,
) {
    let key = &target.key;
    // Each delivery's log entry names the project: made once, not per delivery.
    let project_id = ProjectId::received(key.project_id.clone());
    let mut ensured = None;
    loop {
        if let Some(health) = &health {
            tokio::select! {
                () = health.wait_healthy() => {}
                () = stop.cancelled() => return,
            }
        }
        if stop.is_cancelled() {
            return;
        }
        let (broker, namespace, policy) = match subscribed_broker(&worker, key).await {
            Ok(found) => found,
            Err(reason) => {
                tracing::debug!(project_id = %key.project_id, app_id = %key.app_id, topic = %key.topic, %reason, "subscription idle");
                tokio::time::sleep(RESCAN).await;
                continue;
            }
        };
        let (topic, group) = (format!("{namespace}{}", key.topic), format!("{namespace}{}", key.app_id));
        if ensured.as_ref() != Some(&(topic.clone(), group.clone())) {
            if let Err(err) = broker.ensure_group(&topic, &group).await {
                tracing::warn!(error = %err, topic = %key.topic, "cannot create the consumer group; retrying");
                tokio::time::sleep(RESCAN).await;
                continue;
            }
            ensured = Some((topic.clone(), group.clone()));
        }
        let (batch, wait) = match &target.spec.bulk {
            Some(bulk) => (bulk.max_messages, bulk.max_await),
            None => (BATCH, FETCH_WAIT),
        };
        let deliveries = match broker.fetch(&topic, &group, batch, wait, HOLD).await {
            Ok(deliveries) => deliveries,
            Err(err) => {
                tracing::warn!(error = %err, topic = %key.topic, "fetch failed; retrying");
                tokio::time::sleep(FETCH_WAIT).await;
                continue;
            }
        };
        // The loop was stopped, or the app turned unhealthy, while the fetch waited: hand the batch back.
        if stop.is_cancelled() || health.as_ref().is_some_and(|health| !health.is_healthy()) {
            for delivery in deliveries {
                if let Err(err) = broker.retry(&topic, &group, &delivery.id, Duration::ZERO).await {
                    tracing::debug!(error = %err, "could not hand a delivery back; it returns after its hold");
                }
            }
            continue;
        }
        let to = ToApp {
            log: &worker.api_log,
            project_id: &project_id,
            app_id: &key.app_id,
            api: "pubsub",
            component: Some(&key.pubsub),
            target: Some(&key.topic),
        };
        if target.spec.bulk.is_some() {
            let _permit = Arc::clone(&limit).acquire_owned().await;
            let place = (topic.as_str(), group.as_str(), namespace.as_str());
            handle_bulk(broker.as_ref(), (&client, &to), &target, place, &policy, deliveries).await;
            continue;
        }
        let handle = |delivery: Delivery| {
            let (broker, client, target, limit) = (Arc::clone(&broker), client.clone(), &target, Arc::clone(&limit));
            let (topic, group, namespace, policy) =
                (topic.clone(), group.clone(), namespace.clone(), Arc::clone(&policy));
            let to = &to;
            async move {
                let _permit = limit.acquire_owned().await;
                let place = (topic.as_str(), group.as_str(), namespace.as_str());
                handle_delivery(broker.as_ref(), (&client, to), target, place, &policy, delivery).await;
            }
        };
        if broker.features().ordered {
            for delivery in deliveries {
                handle(delivery).await;
            }
        } else {
            futures_util::future::join_all(deliveries.into_iter().map(handle)).await;
        }
    }
}

/// The broker of the subscription's component, the project's namespace in it and the component's
/// Resiliency policies, if the app may subscribe to the topic.
async fn subscribed_broker(
    worker: &Worker,
    key: &TargetKey,
) -> Result<(Arc<dyn Broker>, String, Arc<DeliveryPolicy>), String> {
    let project_id = ProjectId::received(key.project_id.clone());
    let project = worker.runtime().project(&project_id).await?.ok_or("the project is gone")?;
    let component = project
        .pubsub
        .get(&key.pubsub)
        .filter(|component| component.allows(&key.app_id))
        .ok_or_else(|| format!("pubsub {} is not found", key.pubsub))?;
    if !component.config.topics.permits(Access::Subscribe, &key.app_id, &key.topic) {
        return Err(format!("topic {} is not allowed for app id {}", key.topic, key.app_id));
    }
    let inbound =
        Policy::resolve(&project.resiliencies, &key.app_id, resiliency::Target::ComponentInbound(&key.pubsub));
    let (dead_letter, dead_letter_breaker) =
        worker.component_policy(&project, (&key.project_id, &key.app_id), &key.pubsub);
    let policy = DeliveryPolicy {
        retry: inbound.retry.unwrap_or(DEFAULT_DELIVERY_RETRY),
        timeout: inbound.timeout,
        dead_letter,
        dead_letter_breaker,
        component_type: component.component_type.clone(),
    };
    Ok((component.backend.clone()?, component.config.namespace.clone(), Arc::new(policy)))
}

/// How a subscription's deliveries are timed out and retried, and how its dead-letter publishes are made: the
/// component's inbound Resiliency policy (as daprd applies it when it delivers from that component to the app),
/// or Outrigger's default retries, and its outbound one (as daprd publishes to a dead-letter topic, through the
/// same path as the publish API).
#[derive(Debug)]
struct DeliveryPolicy {
    retry: Retry,
    timeout: Option<Duration>,
    dead_letter: Policy,
    dead_letter_breaker: Option<Arc<Breaker>>,
    /// The component's `spec.type`, which names it where a dead-letter publish is counted.
    component_type: String,
}

impl DeliveryPolicy {
    fn exhausted(&self, attempt: u32) -> bool {
        self.retry.exhausted(attempt)
    }

    fn delay(&self, attempt: u32) -> Duration {
        self.retry.delay(attempt)
    }
}

/// A CloudEvent as JSON fields.
type Event = serde_json::Map<String, serde_json::Value>;

/// Where one delivery stands before it reaches the app.
enum Prepared {
    /// Goes to `path` as `event`; `as_stored`: the stored bytes are that event (a CloudEvent the platform
    /// wrote), sent as they are rather than written again, and `event` may hold only the attributes a
    /// delivery reads.
    Deliver { path: String, event: Event, as_stored: bool },
    /// Goes to no app: expired, or no route wants it (`why`). daprd drops it, to the dead-letter topic when the
    /// subscription has one.
    Undeliverable { why: &'static str },
}

/// Reads a delivery as the subscription wants it and picks its route; `whole`: the event is needed whole (a
/// bulk delivery embeds it), else a subscription without rules reads only the attributes a delivery uses.
fn prepare(target: &Target, delivery: &Delivery, whole: bool) -> Prepared {
    let (spec, key) = (&target.spec, &target.key);
    let parsed = if spec.raw_payload {
        None
    } else if whole || !spec.rules.is_empty() {
        parse_event(&delivery.payload).ok()
    } else {
        parse_delivery_attributes(&delivery.payload).or_else(|_| parse_event(&delivery.payload)).ok()
    };
    let as_stored = parsed.is_some();
    let event = parsed.unwrap_or_else(|| raw_payload_event(&delivery.payload, &key.pubsub, &key.topic));
    if is_expired(&event, chrono::Utc::now()) {
        return Prepared::Undeliverable { why: "the event expired" };
    }
    match spec.route(&event) {
        Some(path) => Prepared::Deliver { path: path.to_owned(), event, as_stored },
        None => Prepared::Undeliverable { why: "no route matches the event" },
    }
}

/// Delivers one message and settles it with the broker.
async fn handle_delivery(
    broker: &dyn Broker,
    (client, to): (&AppClient, &ToApp<'_>),
    target: &Target,
    place: (&str, &str, &str),
    policy: &DeliveryPolicy,
    delivery: Delivery,
) {
    let outcome = match prepare(target, &delivery, false) {
        Prepared::Deliver { path, event, as_stored } => {
            note_lag(target, &delivery);
            let body = if as_stored {
                delivery.payload.clone()
            } else {
                serde_json::to_vec(&event).expect("a JSON object serializes")
            };
            let started = std::time::Instant::now();
            let outcome = app::deliver((&target.channel, to), client, &path, (&event, body), policy.timeout).await;
            count_delivery(target, &outcome, started.elapsed());
            outcome
        }
        Prepared::Undeliverable { why } => undeliverable(target, why),
    };
    settle(broker, target, place, policy, &delivery, outcome).await;
}

/// Delivers a batch in daprd's bulk envelope, one request per route, and settles each message.
async fn handle_bulk(
    broker: &dyn Broker,
    (client, to): (&AppClient, &ToApp<'_>),
    target: &Target,
    place: (&str, &str, &str),
    policy: &DeliveryPolicy,
    batch: Vec<Delivery>,
) {
    let mut by_path: std::collections::BTreeMap<String, Vec<(Delivery, Event)>> = std::collections::BTreeMap::new();
    for delivery in batch {
        match prepare(target, &delivery, true) {
            Prepared::Deliver { path, event, .. } => {
                note_lag(target, &delivery);
                by_path.entry(path).or_default().push((delivery, event));
            }
            Prepared::Undeliverable { why } => {
                settle(broker, target, place, policy, &delivery, undeliverable(target, why)).await
            }
        }
    }
    for (path, entries) in by_path {
        let events: Vec<_> = entries.iter().map(|(_, event)| event).collect();
        let place_of_events = (target.key.pubsub.as_str(), target.key.topic.as_str());
        let started = std::time::Instant::now();
        let outcomes =
            app::deliver_bulk((&target.channel, to), client, &path, place_of_events, &events, policy.timeout).await;
        for outcome in &outcomes {
            count_delivery(target, outcome, started.elapsed());
        }
        for ((delivery, _), outcome) in entries.iter().zip(outcomes) {
            settle(broker, target, place, policy, delivery, outcome).await;
        }
    }
}

/// The verdict on an event that goes to no app (`why`), counted as a drop, as daprd counts it.
fn undeliverable(target: &Target, why: &str) -> Outcome {
    let outcome = Outcome::Drop(why.to_owned());
    count_delivery(target, &outcome, Duration::ZERO);
    outcome
}

/// Counts a message delivered to an app, or dropped before it (daprd's `dapr_component_pubsub_ingress_*`).
fn count_delivery(target: &Target, outcome: &Outcome, elapsed: std::time::Duration) {
    let key = &target.key;
    let process_status = match outcome {
        Outcome::Success => "success",
        Outcome::Retry(_) => "retry",
        Outcome::Drop(_) => "drop",
    };
    let (tenant, place) = (target.metric_labels(), (key.pubsub.as_str(), key.topic.as_str()));
    outrigger_telemetry::metrics().pubsub_delivery(tenant, place, process_status, elapsed);
}

/// Records how long a message waited for its first delivery to this subscription, when its broker says when it
/// was published.
fn note_lag(target: &Target, delivery: &Delivery) {
    let Some(published_at) = delivery.published_at.filter(|_| delivery.attempt == 1) else { return };
    let waited = u64::try_from(chrono::Utc::now().timestamp_millis().saturating_sub(published_at)).unwrap_or(0);
    let key = &target.key;
    let (tenant, place) = (target.metric_labels(), (key.pubsub.as_str(), key.topic.as_str()));
    outrigger_telemetry::metrics().delivery_lag(tenant, place, std::time::Duration::from_millis(waited));
}

/// Acks, retries or dead-letters a delivery after the app's verdict.
async fn settle(
    broker: &dyn Broker,
    target: &Target,
    (topic, group, namespace): (&str, &str, &str),
    policy: &DeliveryPolicy,
    delivery: &Delivery,
    outcome: Outcome,
) {
    let (spec, key) = (&target.spec, &target.key);
    let retry_later = || broker.retry(topic, group, &delivery.id, policy.delay(delivery.attempt));
    let settled = match outcome {
        Outcome::Success => broker.ack(topic, group, &delivery.id).await,
        // Retries used up: to the dead-letter topic when there is one; without one, never dropped.
        Outcome::Retry(reason) if !(spec.dead_letter_topic.is_some() && policy.exhausted(delivery.attempt)) => {
            tracing::debug!(app_id = %key.app_id, topic = %key.topic, %reason, attempt = delivery.attempt, "event will be retried");
            retry_later().await
        }
        Outcome::Drop(reason) | Outcome::Retry(reason) => {
            match dead_letter(broker, target, namespace, policy, delivery).await {
                Ok(()) => {
                    // Debug, as daprd logs an event no route wants: a subscription whose rules skip most events
                    // would fill an info log. Drops are counted (`dapr_component_pubsub_ingress_count`).
                    tracing::debug!(app_id = %key.app_id, topic = %key.topic, %reason, attempts = delivery.attempt, dead_letter_topic = ?spec.dead_letter_topic, "event dropped (to the dead-letter topic, when the subscription has one)");
                    broker.ack(topic, group, &delivery.id).await
                }
                // The dead-letter topic did not take it: the message stays and comes again, as daprd leaves it
                // unacknowledged; acknowledging it would lose it.
                Err(err) => {
                    tracing::warn!(app_id = %key.app_id, topic = %key.topic, error = %err, "could not dead-letter an event; it will be delivered again");
                    retry_later().await
                }
            }
        }
    };
    if let Err(err) = settled {
        // The hold expires and the message is handed out again: at least once, never lost.
        tracing::warn!(error = %err, topic = %key.topic, "could not settle a delivery; it will be redelivered");
    }
}

/// Moves an undeliverable message to the subscription's dead-letter topic, if it has one, under the component's
/// outbound Resiliency policy (its timeout defaulting to the store timeout), as the publish API publishes.
async fn dead_letter(
    broker: &dyn Broker,
    target: &Target,
    namespace: &str,
    policy: &DeliveryPolicy,
    delivery: &Delivery,
) -> Result<(), String> {
    let Some(dead_letter_topic) = &target.spec.dead_letter_topic else { return Ok(()) };
    let topic = format!("{namespace}{dead_letter_topic}");
    let rules = (&policy.dead_letter, policy.dead_letter_breaker.as_deref());
    let message = (topic.as_str(), delivery.payload.as_slice());
    publish_under(broker, &policy.component_type, rules, target.metric_labels(), message).await
}
