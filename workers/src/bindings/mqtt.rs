//! `bindings.mqtt3`: daprd's MQTT 3.1.1 binding. Output `create` publishes the data at QoS 1 to the component's
//! `topic` (or the request's `topic`), with the component's `retain`, and answers once the broker acknowledged it.
//! Input subscribes at QoS 1 and acknowledges a message only once the app accepted it, retrying a refused one
//! `backOffMaxRetries` times 5 s apart, as daprd's binding does. Every worker may read: readers subscribe through a
//! shared subscription (`$share/<project>-<component>-<app>/<topic>`), so each message reaches one worker per App ID
//! of each project (another tenant reading the same topic never takes this one's messages). The
//! broker's address passes the egress rule; TLS to the broker is not served yet.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use outrigger_bus::BindingResponse;
use outrigger_resources::{optional, required, BuildingBlock, ComponentType, MetadataField};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{oneshot, Mutex};
use tokio_util::sync::CancellationToken;

use super::broker::{BrokerAddress, BrokerKind};
use super::{
    input_side, output_side, BindingError, BindingRequest, EventSink, InputBinding, InputEvent, OutputBinding, Reader,
    TwoWayBinding,
};
use crate::components::{Backend, Opener, Opening};
use crate::state::open::OpenError;

/// How long a publish may wait for the broker's acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause between two tries of an event the app refused (daprd's constant back-off).
const RETRY_PAUSE: Duration = Duration::from_secs(5);
/// Requests the client queues for its connection.
const CLIENT_QUEUE: usize = 64;

/// Where the broker is and what the component reads and writes.
#[derive(Clone, Debug)]
struct Settings {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    topic: String,
    consumer_id: Option<String>,
    retain: bool,
    retries: Option<u32>,
}

impl Settings {
    fn options(&self, role: &str) -> MqttOptions {
        let prefix = self.consumer_id.as_deref().unwrap_or("outrigger");
        let id = format!("{prefix}-{role}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut options = MqttOptions::new(id, &self.host, self.port);
        options.set_keep_alive(Duration::from_secs(30)).set_clean_session(true);
        if let Some((user, password)) = &self.credentials {
            options.set_credentials(user, password);
        }
        options
    }
}

/// Publishes waiting for the broker: those handed to the client, in order, then those sent, by packet id.
#[derive(Default)]
struct Waiting {
    queued: VecDeque<oneshot::Sender<Result<(), String>>>,
    sent: HashMap<u16, oneshot::Sender<Result<(), String>>>,
}

impl Waiting {
    fn fail_all(&mut self, reason: &str) {
        for waiter in self.queued.drain(..).chain(self.sent.drain().map(|(_, waiter)| waiter)) {
            let _ = waiter.send(Err(reason.to_owned()));
        }
    }
}

/// A publishing connection: the client, and the task that drives it and matches acknowledgements to publishes.
struct Publisher {
    client: AsyncClient,
    waiting: Arc<SyncMutex<Waiting>>,
    alive: CancellationToken,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.alive.cancel();
    }
}

impl Publisher {
    fn start(settings: &Settings) -> Publisher {
        let (client, events) = AsyncClient::new(settings.options("producer"), CLIENT_QUEUE);
        let waiting = Arc::new(SyncMutex::new(Waiting::default()));
        let alive = CancellationToken::new();
        tokio::spawn(drive_publisher(events, Arc::clone(&waiting), alive.clone()));
        Publisher { client, waiting, alive }
    }
}

/// Polls a publishing connection until it fails or its publisher goes: each publish sent takes the first queued
/// waiter, each acknowledgement answers the waiter of its packet; a failure fails every waiter and ends it (the
/// next publish starts a fresh connection, so no late event is matched to a new waiter).
async fn drive_publisher(mut events: EventLoop, waiting: Arc<SyncMutex<Waiting>>, alive: CancellationToken) {
    loop {
        let event = tokio::select! {
            () = alive.cancelled() => break,
            event = events.poll() => event,
        };
        let mut waiting = waiting.lock().expect("waiting lock");
        match event {
            Ok(Event::Outgoing(Outgoing::Publish(packet))) => {
                if let Some(waiter) = waiting.queued.pop_front() {
                    waiting.sent.insert(packet, waiter);
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if let Some(waiter) = waiting.sent.remove(&ack.pkid) {
                    let _ = waiter.send(Ok(()));
                }
            }
            Ok(_) => {}
            Err(err) => {
                waiting.fail_all(&format!("{}: {err}", MqttBinding::COMPONENT_TYPE));
                alive.cancel();
                break;
            }
        }
    }
    waiting.lock().expect("waiting lock").fail_all("the connection to the broker closed");
}

/// Dapr's MQTT binding.
pub struct MqttBinding {
    settings: Settings,
    publisher: Mutex<Option<Publisher>>,
}

impl MqttBinding {
    /// The Dapr component type this binding serves.
    pub const COMPONENT_TYPE: &'static str = "bindings.mqtt3";
}

#[async_trait]
impl OutputBinding for MqttBinding {
    fn operations(&self) -> &'static [&'static str] {
        &["create"]
    }

    async fn invoke(&self, request: BindingRequest<'_>) -> Result<BindingResponse, BindingError> {
        let topic = request.metadata.get("topic").filter(|topic| !topic.is_empty()).unwrap_or(&self.settings.topic);
        let (answer, answered) = oneshot::channel();
        {
            // Held while the publish is handed over, so that publishes reach the connection in queued order.
            let mut publisher = self.publisher.lock().await;
            if publisher.as_ref().is_none_or(|publisher| publisher.alive.is_cancelled()) {
                *publisher = Some(Publisher::start(&self.settings));
            }
            let publisher = publisher.as_ref().expect("started above");
            publisher.waiting.lock().expect("waiting lock").queued.push_back(answer);
            let publishing = publisher.client.publish(topic, QoS::AtLeastOnce, self.settings.retain, request.data);
            publishing.await.map_err(|err| BindingError::Failed(format!("{}: {err}", Self::COMPONENT_TYPE)))?;
        }
        match tokio::time::timeout(PUBLISH_TIMEOUT, answered).await {
            Ok(Ok(Ok(()))) => Ok(BindingResponse::default()),
            Ok(Ok(Err(reason))) => Err(BindingError::Failed(reason)),
            Ok(Err(_)) => Err(BindingError::Failed("the connection to the broker closed".into())),
            Err(_) => Err(BindingError::Failed(format!(
                "{}: the broker did not acknowledge within {} s",
                Self::COMPONENT_TYPE,
                PUBLISH_TIMEOUT.as_secs()
            ))),
        }
    }
}

/// Delivers one message, retrying as the component says, and acknowledges it once the app accepted it.
async fn handle(client: AsyncClient, sink: Arc<dyn EventSink>, retries: Option<u32>, publish: rumqttc::Publish) {
    let mut tries = 0;
    loop {
        let event = InputEvent {
            data: publish.payload.to_vec(),
            metadata: [("topic".to_owned(), publish.topic.clone())].into_iter().collect(),
        };
        match sink.deliver(event).await {
            Ok(()) => {
                if let Err(err) = client.ack(&publish).await {
                    tracing::warn!(error = %err, "could not acknowledge an MQTT message; the broker may send it again");
                }
                return;
            }
            Err(reason) if retries.is_none_or(|most| tries < most) => {
                tries += 1;
                tracing::debug!(%reason, tries, "MQTT binding event refused; trying again");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(reason) => {
                tracing::warn!(%reason, topic = %publish.topic, "MQTT binding event refused; left unacknowledged");
                return;
            }
        }
    }
}

#[async_trait]
impl InputBinding for MqttBinding {
    async fn read(
        &self,
        reader: &Reader,
        sink: Arc<dyn EventSink>,
        stop: CancellationToken,
    ) -> Result<(), BindingError> {
        let mut options = self.settings.options("consumer");
        options.set_manual_acks(true);
        let (client, mut events) = AsyncClient::new(options, CLIENT_QUEUE);
        let group = format!("{}-{}-{}", reader.project_id, reader.component, reader.app_id);
        // A share name cannot hold the topic-filter characters.
        let group: String = group.chars().map(|c| if matches!(c, '/' | '+' | '#') { '_' } else { c }).collect();
        let filter = format!("$share/{group}/{}", self.settings.topic);
        // Deliveries run beside the connection (which must keep being polled); they end with this read.
        let deliveries = tokio_util::task::TaskTracker::new();
        let outcome = loop {
            let event = tokio::select! {
                () = stop.cancelled() => break Ok(()),
                event = events.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    // A clean session starts with no subscription: subscribe on every connection.
                    if let Err(err) = client.try_subscribe(&filter, QoS::AtLeastOnce) {
                        break Err(BindingError::Failed(format!("{}: {err}", Self::COMPONENT_TYPE)));
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let delivered = handle(client.clone(), Arc::clone(&sink), self.settings.retries, publish);
                    deliveries.spawn(delivered);
                }
                Ok(_) => {}
                Err(err) => break Err(BindingError::Failed(format!("{}: {err}", Self::COMPONENT_TYPE))),
            }
        };
        deliveries.close();
        tokio::select! {
            () = deliveries.wait() => {}
            () = stop.cancelled() => {}
        }
        let _ = client.try_disconnect();
        outcome
    }
}

const MQTT_FIELDS: &[MetadataField] = &[
    required("url"),
    required("topic"),
    optional("consumerID"),
    optional("retain").defaults_to("false"),
    // daprd starts a persistent session unless told otherwise; this worker always starts a clean one (readers
    // share a subscription and subscribe again on every connection), so it declares no default here.
    optional("cleanSession"),
    // 0 as daprd's code and docs have it (the binding's metadata.yaml says 3).
    optional("backOffMaxRetries").defaults_to("0"),
    // Ignored by daprd and here alike: both publish and subscribe at QoS 1.
    optional("qos").defaults_to("1"),
    optional("caCert"),
    optional("clientCert"),
    optional("clientKey"),
];

const MQTT_BROKER: BrokerKind = BrokerKind {
    component_type: MqttBinding::COMPONENT_TYPE,
    field: "url",
    schemes: &["mqtt", "tcp"],
    default_port: 1883,
    example: "an mqtt://user:password@host:1883 URL",
    tls_fields: &["caCert", "clientCert", "clientKey"],
};

/// `bindings.mqtt3`: a topic on an MQTT broker the egress rule lets the project reach.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(MqttBinding::COMPONENT_TYPE, BuildingBlock::Bindings, &[MQTT_FIELDS]),
    opener: Opener::Binding { output: Some(output_side::<MqttBinding>), input: Some(input_side::<MqttBinding>) },
};

impl TwoWayBinding for MqttBinding {
    fn open(opening: Opening<'_>) -> BoxFuture<'_, Result<Self, OpenError>> {
        Box::pin(open(opening))
    }
}

async fn open(opening: Opening<'_>) -> Result<MqttBinding, OpenError> {
    let Opening { fields, boundary, .. } = opening;
    let BrokerAddress { host, port, credentials, .. } = MQTT_BROKER.address(&fields, boundary).await?;
    let retries = match fields.get("backOffMaxRetries").map(str::trim).filter(|text| !text.is_empty()) {
        None => Some(0),
        Some(text) => {
            let count: i64 = text
                .parse()
                .map_err(|_| fields.invalid("backOffMaxRetries", format!("'{text}' is not a whole number")))?;
            u32::try_from(count).ok()
        }
    };
    let settings = Settings {
        host,
        port,
        credentials,
        topic: fields.required("topic", "the topic to publish to and subscribe to")?.to_owned(),
        consumer_id: fields.get("consumerID").filter(|id| !id.is_empty()).map(str::to_owned),
        retain: fields.flag("retain")?,
        retries,
    };
    Ok(MqttBinding { settings, publisher: Mutex::new(None) })
}
