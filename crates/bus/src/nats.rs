//! The distributed form's carrier: NATS request/reply. Each pool is a subject; the workers of a pool
//! share one queue group, so each call reaches exactly one of them and adding a worker adds capacity.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{chunks, Bus, BusError, DataError, Envelope, Handler, Reply};

/// How long a worker keeps a large reply available for the gateway to pull.
const REPLY_PICKUP: Duration = Duration::from_secs(60);

/// Queue group shared by the workers of a pool.
const QUEUE_GROUP: &str = "workers";

fn subject(prefix: &str, pool: &str) -> String {
    format!("{prefix}.pool.{pool}")
}

/// Sends calls over NATS.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    prefix: String,
    timeout: Duration,
}

impl NatsBus {
    /// A bus over `client`; subjects start with `prefix` so several installations (or tests) can share
    /// one NATS server. A call not answered within `timeout` fails as unavailable.
    pub fn new(client: async_nats::Client, prefix: &str, timeout: Duration) -> NatsBus {
        NatsBus { client, prefix: prefix.to_owned(), timeout }
    }
}

#[async_trait]
impl Bus for NatsBus {
    async fn call(&self, pool: &str, envelope: Envelope) -> Result<Result<Reply, DataError>, BusError> {
        let encoded = rmp_serde::to_vec(&envelope).map_err(|err| BusError::Codec(format!("encoded: {err}")))?;
        let payload = chunks::outgoing(&self.client, &self.prefix, encoded, self.timeout).await?;
        let unavailable = |reason: String| BusError::Unavailable { pool: pool.to_owned(), reason };
        let request = self.client.request(subject(&self.prefix, pool), payload);
        let message = tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| unavailable(format!("no answer within {:?}", self.timeout)))?
            .map_err(|err| unavailable(err.to_string()))?;
        let reply = chunks::incoming(&self.client, &message.payload).await?;
        rmp_serde::from_slice(&reply).map_err(|err| BusError::Codec(format!("decoded: {err}")))
    }
}

/// How long joining a pool or the change events waits for the server to confirm it.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Joins the workers of `pool`: once this returns the server knows of the subscription, so calls sent as soon
/// as the process says it is ready find it (an unconfirmed subscription left the first calls without a
/// responder).
pub async fn subscribe_pool(
    client: &async_nats::Client,
    prefix: &str,
    pool: &str,
) -> Result<async_nats::Subscriber, async_nats::Error> {
    let subscription = client.queue_subscribe(subject(prefix, pool), QUEUE_GROUP.to_owned()).await?;
    server_caught_up(client).await?;
    Ok(subscription)
}

/// Returns once the server has handled everything `client` sent before: a message to a subject of the client's
/// own comes back only after the server has read what preceded it on the connection. (`flush` is not enough: it
/// returns once the bytes are written to the socket, and a call from another connection could still reach the
/// server before it has read them.)
async fn server_caught_up(client: &async_nats::Client) -> Result<(), async_nats::Error> {
    let probe = client.new_inbox();
    let mut echo = client.subscribe(probe.clone()).await?;
    client.publish(probe, bytes::Bytes::new()).await?;
    client.flush().await?;
    match tokio::time::timeout(CONFIRM_TIMEOUT, echo.next()).await {
        Ok(Some(_)) => Ok(echo.unsubscribe().await?),
        Ok(None) => Err("the NATS connection closed before the server confirmed the subscription".into()),
        Err(_) => {
            Err(format!("NATS did not confirm the subscription within {CONFIRM_TIMEOUT:?}; is the server up?").into())
        }
    }
}

/// Answers the calls `subscription` (from [`subscribe_pool`]) receives with `handler` until `shutdown`; calls
/// the server already sent this worker, and those in flight, then finish and answer.
pub async fn serve_nats(
    client: async_nats::Client,
    prefix: &str,
    mut subscription: async_nats::Subscriber,
    handler: Arc<dyn Handler>,
    shutdown: CancellationToken,
) -> Result<(), async_nats::Error> {
    let mut in_flight = tokio::task::JoinSet::new();
    let mut draining = false;
    loop {
        let message = if draining {
            subscription.next().await
        } else {
            tokio::select! {
                message = subscription.next() => message,
                () = shutdown.cancelled() => {
                    // Drained, not unsubscribed: unsubscribing drops the calls already on their way to this worker
                    // unanswered (each a gateway's 503 after its bus timeout); draining stops new ones and ends the
                    // subscription once those have arrived.
                    subscription.drain().await?;
                    draining = true;
                    continue;
                }
            }
        };
        let Some(message) = message else { break };
        let Some(reply_to) = message.reply.clone() else {
            tracing::warn!(subject = %message.subject, "bus message without a reply subject dropped");
            continue;
        };
        let (client, handler, prefix) = (client.clone(), Arc::clone(&handler), prefix.to_owned());
        // Boxed: a task's future is moved a few times as it is spawned and as it finishes, and this one is large
        // (the call's envelope, the answer, the publish); a box is moved as a pointer.
        in_flight.spawn(Box::pin(answer_message(client, prefix, handler, message.payload, reply_to)));
        // Finished calls are reaped as we go so the set does not grow with the process's lifetime.
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
    client.flush().await?;
    Ok(())
}

/// Answers one call received over NATS on `reply_to`.
async fn answer_message(
    client: async_nats::Client,
    prefix: String,
    handler: Arc<dyn Handler>,
    payload: bytes::Bytes,
    reply_to: async_nats::Subject,
) {
    let envelope = chunks::incoming(&client, &payload).await.and_then(|bytes| {
        rmp_serde::from_slice::<Envelope>(&bytes).map_err(|err| BusError::Codec(format!("decoded: {err}")))
    });
    let answer = match envelope {
        Ok(envelope) => handler.handle(envelope).await,
        Err(err) => {
            tracing::error!(error = %err, "unreadable bus message; is a gateway of another version running?");
            return;
        }
    };
    let sent = match rmp_serde::to_vec(&answer) {
        Ok(bytes) => match chunks::outgoing(&client, &prefix, bytes, REPLY_PICKUP).await {
            Ok(payload) => client.publish(reply_to, payload).await.map_err(|err| err.to_string()),
            Err(err) => Err(err.to_string()),
        },
        Err(err) => Err(err.to_string()),
    };
    if let Err(err) = sent {
        tracing::warn!(error = %err, "could not send a reply; the gateway will time out");
    }
}

fn changes_subject(prefix: &str) -> String {
    format!("{prefix}.changes")
}

/// Announces that a project's configuration changed. Best effort: workers also re-read periodically.
pub async fn publish_change(client: &async_nats::Client, prefix: &str, project_id: &str) {
    let subject = changes_subject(prefix);
    if let Err(err) = client.publish(subject, project_id.to_owned().into()).await {
        tracing::warn!(error = %err, project_id, "could not announce a project change; workers pick it up on their next re-read");
    }
}

/// Listens to change events; once this returns the server knows of the subscription, so no change made after
/// the process says it is ready goes unheard.
pub async fn subscribe_changes(
    client: &async_nats::Client,
    prefix: &str,
) -> Result<async_nats::Subscriber, async_nats::Error> {
    // Every worker and gateway must hear every change, so this is a plain subscription, not a queue group.
    let subscription = client.subscribe(changes_subject(prefix)).await?;
    server_caught_up(client).await?;
    Ok(subscription)
}

/// Calls `on_change` with the id of every project whose configuration changes (as `subscription`, from
/// [`subscribe_changes`], hears them), until `shutdown`.
pub async fn watch_changes<Handled: std::future::Future<Output = ()> + Send>(
    mut subscription: async_nats::Subscriber,
    on_change: impl Fn(String) -> Handled + Send,
    shutdown: CancellationToken,
) -> Result<(), async_nats::Error> {
    loop {
        let message = tokio::select! {
            message = subscription.next() => message,
            () = shutdown.cancelled() => break,
        };
        let Some(message) = message else { break };
        match std::str::from_utf8(&message.payload) {
            Ok(project_id) => on_change(project_id.to_owned()).await,
            Err(_) => tracing::warn!("change event with a non-UTF-8 project id ignored"),
        }
    }
    subscription.unsubscribe().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use outrigger_store::ProjectId;

    use crate::{GetState, Tenant};

    /// Answers every call that no store is configured.
    struct NoStores;

    #[async_trait]
    impl Handler for NoStores {
        async fn handle(&self, _envelope: Envelope) -> Result<Reply, DataError> {
            Err(DataError::StoresNotConfigured)
        }
    }

    #[tokio::test]
    async fn calls_already_sent_to_a_worker_that_stops_are_answered() {
        let url = std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
        let (worker, gateway) = (async_nats::connect(&url).await.unwrap(), async_nats::connect(&url).await.unwrap());
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let prefix = format!("test{}{nanos}", std::process::id());
        let subscription = subscribe_pool(&worker, &prefix, "default").await.unwrap();
        let tenant = Tenant::new(ProjectId::received("prj_1".into()), "shop".into(), "orders".into(), "default".into());
        let call = GetState { store: "cache".into(), key: "k".into() };
        let envelope = Envelope { tenant, call: call.into(), trace: None };
        let payload =
            chunks::outgoing(&gateway, &prefix, rmp_serde::to_vec(&envelope).unwrap(), REPLY_PICKUP).await.unwrap();
        let inbox = gateway.new_inbox();
        let mut replies = gateway.subscribe(inbox.clone()).await.unwrap();
        const CALLS: usize = 50;
        for _ in 0..CALLS {
            gateway.publish_with_reply(subject(&prefix, "default"), inbox.clone(), payload.clone()).await.unwrap();
        }
        // Once caught up, the server has routed every call to the worker's connection.
        server_caught_up(&gateway).await.unwrap();
        // The worker is told to stop before it reads any of them: each is on its way, none answered yet.
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        serve_nats(worker, &prefix, subscription, Arc::new(NoStores), shutdown).await.unwrap();
        for answered in 0..CALLS {
            let reply = tokio::time::timeout(Duration::from_secs(5), replies.next()).await;
            assert!(matches!(reply, Ok(Some(_))), "{answered} of {CALLS} calls answered");
        }
    }
}
