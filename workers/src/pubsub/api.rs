//! Publishing: the caller's broker, topic scoping, daprd's CloudEvent envelope, and the broker's ack.

use std::sync::Arc;

use outrigger_bus::{DataError, FailedEntry, Publish, Tenant};
use outrigger_outbound::resiliency::{self, Breaker, Policy};
use outrigger_telemetry::metrics::TenantLabels;

use crate::handler::Scope;
use crate::pubsub::cloudevent::{envelope, EnvelopeError, Publication};
use crate::pubsub::{Access, Broker};
use crate::runtime::{ProjectComponents, PubsubComponent};

fn envelope_error(err: EnvelopeError) -> DataError {
    match err {
        EnvelopeError::NotACloudEvent(_) => DataError::BadCloudEvent { message: err.to_string() },
        EnvelopeError::InvalidTtl { .. } | EnvelopeError::InvalidRawPayload(_) => {
            DataError::BadPublishMetadata { message: err.to_string() }
        }
    }
}

/// The pub/sub component `pubsub` of the caller's project, if the caller may use it.
pub(crate) fn broker(
    project: &ProjectComponents,
    tenant: &Tenant,
    pubsub: &str,
) -> Result<Arc<PubsubComponent>, DataError> {
    let visible = || project.pubsub.values().filter(|component| component.allows(&tenant.app_id));
    match visible().find(|component| component.name == pubsub) {
        Some(component) => Ok(Arc::clone(component)),
        None if visible().next().is_none() => Err(DataError::PubsubNotConfigured),
        None => Err(DataError::PubsubNotFound { pubsub: pubsub.to_owned() }),
    }
}

/// `PublishEvent` and `BulkPublishEvent`: each entry enveloped and handed to the broker under the component's
/// outbound policy; a single publish fails as a whole, a bulk one reports its failed entries.
pub(crate) async fn publish(scope: &Scope<'_>, call: Publish) -> Result<Vec<FailedEntry>, DataError> {
    let (project, tenant) = (scope.project, scope.tenant);
    let Publish { pubsub, topic, entries, trace } = call;
    let (pubsub, topic) = (pubsub.as_str(), topic.as_str());
    let component = broker(project, tenant, pubsub)?;
    if topic.is_empty() {
        return Err(DataError::TopicEmpty { pubsub: pubsub.to_owned() });
    }
    if !component.config.topics.permits(Access::Publish, &tenant.app_id, topic) {
        return Err(DataError::TopicForbidden {
            message: format!("topic {topic} is not allowed for app id {}", tenant.app_id),
        });
    }
    let broker = component.backend.clone().map_err(|reason| DataError::PublishFailed { message: reason })?;
    let broker_topic = format!("{}{topic}", component.config.namespace);
    let single = matches!(entries.as_slice(), [entry] if entry.entry_id.is_empty());
    let (policy, breaker) = scope.component_policy(pubsub);
    let now = chrono::Utc::now();
    let mut failed = Vec::new();
    for entry in entries {
        let publication = Publication {
            pubsub,
            topic,
            publisher_app_id: &tenant.app_id,
            data: &entry.data,
            content_type: entry.content_type.as_deref(),
            metadata: &entry.metadata,
            traceparent: trace.traceparent.as_deref(),
            tracestate: trace.tracestate.as_deref(),
        };
        let outcome = match envelope(&publication, now) {
            Ok(message) => {
                let started = std::time::Instant::now();
                let (rules, spec_type) = ((&policy, breaker.as_deref()), component.component_type.as_str());
                let entry = (broker_topic.as_str(), message.payload.as_slice());
                let published = publish_under(broker.as_ref(), spec_type, rules, tenant.metric_labels(), entry).await;
                let (labels, place) = (tenant.metric_labels(), (pubsub, topic));
                outrigger_telemetry::metrics().pubsub_publish(labels, place, published.is_ok(), started.elapsed());
                published.map_err(|reason| DataError::PublishFailed {
                    message: format!("error when publish to topic {topic} in pubsub {pubsub}: {reason}"),
                })
            }
            Err(err) => Err(envelope_error(err)),
        };
        match outcome {
            Ok(()) => {}
            Err(err) if single => return Err(err),
            Err(err) => failed.push(FailedEntry { entry_id: entry.entry_id, error: err.to_string() }),
        }
    }
    Ok(failed)
}

/// Publishes `payload` to `topic` (namespaced) on `broker`, of type `spec_type`, under the pub/sub component's
/// outbound Resiliency policy and its breaker (`rules`), as the App ID of `tenant` publishes: the publish API's
/// path, and, as daprd publishes there, a dead-letter topic's.
pub(crate) async fn publish_under(
    broker: &dyn Broker,
    spec_type: &str,
    (policy, breaker): (&Policy, Option<&Breaker>),
    tenant: TenantLabels<'_>,
    (topic, payload): (&str, &[u8]),
) -> Result<(), String> {
    let caller = resiliency::Caller::component(tenant, "Pubsub", spec_type);
    resiliency::execute_fallible(policy, breaker, caller, "the broker", || broker.publish(topic, payload)).await
}
