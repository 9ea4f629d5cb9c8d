//! Streaming subscriptions listed in the control plane, so that `/v1.0/metadata` shows an app's streams
//! whichever gateway answers it: the gateway holding a stream writes a row while the stream is open and renews
//! its rows; rows of a gateway that died run out.

use std::sync::Arc;
use std::time::Duration;

use outrigger_bus::{SubscriptionInfo, SubscriptionKind, Tenant};
use outrigger_store::{Store, StreamSubscription};
use tokio_util::sync::CancellationToken;

/// How often a gateway renews its rows.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How long a row stays listed without renewal.
const LISTED_FOR: Duration = Duration::from_secs(30);

/// This gateway's streams in the control plane.
pub(crate) struct StreamListing {
    store: Store,
    /// This process, as the holder of its rows.
    holder: String,
}

fn expiry() -> i64 {
    chrono::Utc::now().timestamp_millis() + LISTED_FOR.as_millis() as i64
}

impl StreamListing {
    /// Starts renewing this gateway's rows until `closing`, when they are removed.
    pub(crate) fn start(store: Store, closing: CancellationToken) -> Arc<StreamListing> {
        let listing = Arc::new(StreamListing { store, holder: format!("gw_{}", uuid::Uuid::new_v4().simple()) });
        let renewing = Arc::clone(&listing);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(RENEW_EVERY);
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = closing.cancelled() => break,
                    _ = ticks.tick() => {}
                }
                let renewed = async {
                    let mut tx = renewing.store.begin().await?;
                    tx.renew_stream_subscriptions(&renewing.holder, expiry()).await?;
                    tx.commit().await
                };
                if let Err(err) = renewed.await {
                    tracing::warn!(error = %err, "cannot renew this gateway's streaming subscriptions in the control plane; /v1.0/metadata may stop listing them");
                }
            }
            let removed = async {
                let mut tx = renewing.store.begin().await?;
                tx.delete_stream_subscriptions_of(&renewing.holder).await?;
                tx.commit().await
            };
            if let Err(err) = removed.await {
                tracing::warn!(error = %err, "cannot remove this gateway's streaming subscriptions; they run out by themselves");
            }
        });
        listing
    }

    /// Lists a stream of `tenant` to (pub/sub, topic, dead-letter topic) until the returned registration is
    /// dropped.
    pub(crate) async fn register(
        self: &Arc<Self>,
        tenant: &Tenant,
        (pubsub, topic, dead_letter_topic): (&str, &str, Option<&str>),
    ) -> Listed {
        let stream = StreamSubscription {
            id: format!("sub_{}", uuid::Uuid::new_v4().simple()),
            project_id: tenant.project_id.clone(),
            app_id: tenant.app_id.to_string(),
            pubsub: pubsub.to_owned(),
            topic: topic.to_owned(),
            dead_letter_topic: dead_letter_topic.map(str::to_owned),
            holder: self.holder.clone(),
        };
        let listed = async {
            let mut tx = self.store.begin().await?;
            tx.put_stream_subscription(&stream, expiry()).await?;
            tx.commit().await
        };
        if let Err(err) = listed.await {
            // The stream works without its listing; only /v1.0/metadata misses it.
            tracing::warn!(error = %err, pubsub = %stream.pubsub, topic = %stream.topic, "cannot list a streaming subscription in the control plane");
        }
        Listed { listing: Arc::clone(self), id: stream.id }
    }

    /// The App ID's open streams, on any gateway, as metadata shows them.
    pub(crate) async fn of(&self, tenant: &Tenant) -> Result<Vec<SubscriptionInfo>, outrigger_store::Error> {
        let mut tx = self.store.begin().await?;
        let streams = tx.list_stream_subscriptions(&tenant.project_id, &tenant.app_id).await?;
        Ok(streams.into_iter().map(subscription_info).collect())
    }
}

/// A streaming subscription as `/v1.0/metadata` lists it: every event goes to the stream.
fn subscription_info(stream: StreamSubscription) -> SubscriptionInfo {
    SubscriptionInfo {
        pubsub: stream.pubsub,
        topic: stream.topic,
        rules: vec![(String::new(), "/".to_owned())],
        dead_letter_topic: stream.dead_letter_topic,
        kind: SubscriptionKind::Streaming,
    }
}

/// Keeps a stream listed while it is alive.
pub(crate) struct Listed {
    listing: Arc<StreamListing>,
    id: String,
}

impl Drop for Listed {
    fn drop(&mut self) {
        let (listing, id) = (Arc::clone(&self.listing), std::mem::take(&mut self.id));
        tokio::spawn(async move {
            let removed = async {
                let mut tx = listing.store.begin().await?;
                tx.delete_stream_subscription(&id).await?;
                tx.commit().await
            };
            if let Err(err) = removed.await {
                tracing::warn!(error = %err, "cannot remove a closed streaming subscription from the listing; it runs out by itself");
            }
        });
    }
}
