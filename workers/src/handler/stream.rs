//! Streaming subscriptions: the gateway holds the app's gRPC stream and pulls from the subscription's consumer
//! group through these calls, so which process holds the stream does not matter to delivery state.

use std::time::Duration;

use outrigger_bus::{DataError, Reply, Settlement, StreamEvent, Tenant, Verdict};

use super::Worker;
use crate::pubsub::{Access, Broker};
use crate::runtime::ProjectComponents;

/// How long a streamed event is held for the app's verdict before another consumer may have it.
const STREAM_HOLD: Duration = Duration::from_secs(60);

/// The longest a gateway may wait in one fetch.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// The broker, topic and group of a caller's streaming subscription.
struct StreamTarget {
    broker: std::sync::Arc<dyn Broker>,
    namespace: String,
    topic: String,
    group: String,
}

impl Worker {
    fn stream_target(
        project: &ProjectComponents,
        tenant: &Tenant,
        pubsub: &str,
        topic: &str,
    ) -> Result<StreamTarget, DataError> {
        let component = Worker::broker(project, tenant, pubsub)?;
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
        let group = format!("{namespace}{}|streaming", tenant.app_id);
        Ok(StreamTarget { broker, topic: format!("{namespace}{topic}"), namespace, group })
    }

    pub(super) async fn stream_subscribe(
        &self,
        project: &ProjectComponents,
        tenant: &Tenant,
        pubsub: &str,
        topic: &str,
    ) -> Result<Reply, DataError> {
        let target = Worker::stream_target(project, tenant, pubsub, topic)?;
        self.settle_broker(target.broker.ensure_group(&target.topic, &target.group)).await?;
        Ok(Reply::Done)
    }

    pub(super) async fn stream_fetch(
        &self,
        project: &ProjectComponents,
        tenant: &Tenant,
        (pubsub, topic): (&str, &str),
        max: usize,
        wait: Duration,
    ) -> Result<Reply, DataError> {
        let target = Worker::stream_target(project, tenant, pubsub, topic)?;
        let wait = wait.min(MAX_WAIT);
        let fetch = target.broker.fetch(&target.topic, &target.group, max.clamp(1, 100), wait, STREAM_HOLD);
        let deliveries = match tokio::time::timeout(wait + self.limits.store_timeout, fetch).await {
            Ok(result) => {
                result.map_err(|err| DataError::PublishFailed { message: format!("reading topic {topic}: {err}") })?
            }
            Err(_) => Vec::new(),
        };
        let events =
            deliveries.into_iter().map(|delivery| StreamEvent { id: delivery.id, payload: delivery.payload }).collect();
        Ok(Reply::Events(events))
    }

    /// Settles events all at once: a broker that commits writes in batches writes them in one go.
    pub(super) async fn stream_settle(
        &self,
        project: &ProjectComponents,
        tenant: &Tenant,
        (pubsub, topic): (&str, &str),
        settlements: Vec<Settlement>,
    ) -> Result<Reply, DataError> {
        let target = Worker::stream_target(project, tenant, pubsub, topic)?;
        let settling = settlements.into_iter().map(|settlement| self.settle(&target, settlement));
        // Every settlement runs even when one fails; the first failure answers.
        futures_util::future::join_all(settling).await.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(Reply::Done)
    }

    async fn settle(&self, target: &StreamTarget, settlement: Settlement) -> Result<(), DataError> {
        let (broker, topic, group, id) = (&target.broker, &target.topic, &target.group, &settlement.id);
        match settlement.verdict {
            Verdict::Success => self.settle_broker(broker.ack(topic, group, id)).await,
            Verdict::Retry => self.settle_broker(broker.retry(topic, group, id, Duration::ZERO)).await,
            Verdict::Drop => {
                if let Some(dead_letter) = settlement.dead_letter.filter(|dead_letter| !dead_letter.topic.is_empty()) {
                    let dead_letter_topic = format!("{}{}", target.namespace, dead_letter.topic);
                    self.settle_broker(broker.publish(&dead_letter_topic, &dead_letter.payload)).await?;
                }
                self.settle_broker(broker.ack(topic, group, id)).await
            }
        }
    }

    async fn settle_broker<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, crate::pubsub::BrokerError>>,
    ) -> Result<T, DataError> {
        match tokio::time::timeout(self.limits.store_timeout, call).await {
            Ok(result) => result.map_err(|err| DataError::PublishFailed { message: err.to_string() }),
            Err(_) => Err(DataError::PublishFailed {
                message: format!("the broker did not answer within {:?}", self.limits.store_timeout),
            }),
        }
    }
}
