//! Streaming subscriptions: the gateway holds the app's gRPC stream and pulls from the subscription's consumer
//! group through these calls, so which process holds the stream does not matter to delivery state.

use std::time::Duration;

use outrigger_bus::{
    DataError, Settlement, StreamEvent, StreamFetch, StreamSettle, StreamSubscribe, StreamTopic, Tenant, Verdict,
};
use outrigger_outbound::resiliency::{Breaker, Policy};

use crate::handler::Scope;
use crate::pubsub::api::{broker, publish_under};
use crate::pubsub::{Access, Broker};

/// What an App ID's streaming subscriptions' consumer group adds to its name (the console's topic explorer
/// tells them from push subscriptions by it).
pub(crate) const STREAMING_GROUP_SUFFIX: &str = "|streaming";

/// How long a streamed event is held for the app's verdict before another consumer may have it.
const STREAM_HOLD: Duration = Duration::from_secs(60);

/// The longest a gateway may wait in one fetch.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// The broker, topic and group of a caller's streaming subscription.
struct StreamTarget {
    broker: std::sync::Arc<dyn Broker>,
    /// The component's `spec.type`.
    component_type: String,
    namespace: String,
    topic: String,
    group: String,
}

fn stream_target(scope: &Scope<'_>, StreamTopic { pubsub, topic }: &StreamTopic) -> Result<StreamTarget, DataError> {
    let tenant: &Tenant = scope.tenant;
    let component = broker(scope.project, tenant, pubsub)?;
    if topic.is_empty() {
        return Err(DataError::TopicEmpty { pubsub: pubsub.to_owned() });
    }
    if !component.config.topics.permits(Access::Subscribe, &tenant.app_id, topic) {
        return Err(DataError::TopicForbidden {
            message: format!("app id {} is not allowed to subscribe to topic {topic}", tenant.app_id),
        });
    }
    let broker = component.backend.clone().map_err(|reason| DataError::PublishFailed { message: reason })?;
    let namespace = component.config.namespace.clone();
    // Streaming consumers of an app share one group, apart from the app's push subscriptions.
    let group = format!("{namespace}{}{STREAMING_GROUP_SUFFIX}", tenant.app_id);
    let component_type = component.component_type.clone();
    Ok(StreamTarget { broker, component_type, topic: format!("{namespace}{topic}"), namespace, group })
}

/// Creates the subscription's consumer group if it does not exist yet.
pub(crate) async fn subscribe(scope: &Scope<'_>, call: StreamSubscribe) -> Result<(), DataError> {
    let target = stream_target(scope, &call.topic)?;
    settle_broker(scope, target.broker.ensure_group(&target.topic, &target.group)).await
}

/// Takes up to `max` events, waiting at most `wait_ms` (capped) for the first.
pub(crate) async fn fetch(scope: &Scope<'_>, call: StreamFetch) -> Result<Vec<StreamEvent>, DataError> {
    let target = stream_target(scope, &call.topic)?;
    let wait = Duration::from_millis(call.wait_ms).min(MAX_WAIT);
    let fetch = target.broker.fetch(&target.topic, &target.group, call.max.clamp(1, 100), wait, STREAM_HOLD);
    let deliveries = match tokio::time::timeout(wait + scope.worker.limits.store_timeout, fetch).await {
        Ok(result) => result.map_err(|err| DataError::PublishFailed {
            message: format!("reading topic {}: {err}", call.topic.topic),
        })?,
        Err(_) => Vec::new(),
    };
    Ok(deliveries.into_iter().map(|delivery| StreamEvent { id: delivery.id, payload: delivery.payload }).collect())
}

/// Applies the app's verdicts; every settlement runs even when one fails, and the first failure answers.
pub(crate) async fn settle(scope: &Scope<'_>, call: StreamSettle) -> Result<(), DataError> {
    let target = stream_target(scope, &call.topic)?;
    // A dropped event's dead-letter publish runs under the component's outbound policy, as the publish API's.
    let (policy, breaker) = scope.component_policy(&call.topic.pubsub);
    let rules = (&policy, breaker.as_deref());
    let settling = call.settlements.into_iter().map(|settlement| settle_one(scope, &target, rules, settlement));
    futures_util::future::join_all(settling).await.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

async fn settle_one(
    scope: &Scope<'_>,
    target: &StreamTarget,
    rules: (&Policy, Option<&Breaker>),
    settlement: Settlement,
) -> Result<(), DataError> {
    let (broker, topic, group, id) = (&target.broker, &target.topic, &target.group, &settlement.id);
    match settlement.verdict {
        Verdict::Success => settle_broker(scope, broker.ack(topic, group, id)).await,
        Verdict::Retry => settle_broker(scope, broker.retry(topic, group, id, Duration::ZERO)).await,
        Verdict::Drop => {
            if let Some(dead_letter) = settlement.dead_letter.filter(|dead_letter| !dead_letter.topic.is_empty()) {
                let dead_letter_topic = format!("{}{}", target.namespace, dead_letter.topic);
                let message = (dead_letter_topic.as_str(), dead_letter.payload.as_slice());
                let labels = scope.tenant.metric_labels();
                publish_under(broker.as_ref(), &target.component_type, rules, labels, message)
                    .await
                    .map_err(|message| DataError::PublishFailed { message })?;
            }
            settle_broker(scope, broker.ack(topic, group, id)).await
        }
    }
}

/// A broker call within the store timeout.
async fn settle_broker<T>(
    scope: &Scope<'_>,
    call: impl std::future::Future<Output = Result<T, crate::pubsub::BrokerError>>,
) -> Result<T, DataError> {
    let timeout = scope.worker.limits.store_timeout;
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(|err| DataError::PublishFailed { message: err.to_string() }),
        Err(_) => Err(DataError::PublishFailed { message: format!("the broker did not answer within {timeout:?}") }),
    }
}
