//! `bindings.rabbitmq`: daprd's RabbitMQ binding. Output `create` publishes the data to the component's queue
//! (through the default exchange, persistent, `text/plain` unless `contentType` says otherwise) with the request's
//! metadata as AMQP headers and its `ttlInSeconds`, `priority`, `messageID`, `correlationID` and `type`. Input reads
//! the queue with manual acknowledgements: a message the app accepted is acked, one it refused is requeued, as
//! daprd's binding does (after a pause, so a refusing app does not spin). Readers of one queue share its messages,
//! so every worker may read it. The broker's address passes the egress rule; TLS to the broker is not served yet.

use std::sync::Arc;
use std::time::Duration;

use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicNackArguments, BasicPublishArguments, BasicQosArguments, Channel,
    QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{BasicProperties, FieldTable, FieldValue, DELIVERY_MODE_PERSISTENT};
use async_trait::async_trait;
use futures_util::future::BoxFuture;
use outrigger_bus::BindingResponse;
use outrigger_resources::{optional, required, secret, BuildingBlock, ComponentType, MetadataField};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::broker::{BrokerAddress, BrokerKind};
use super::{
    input_side, output_side, BindingError, BindingRequest, EventSink, InputBinding, InputEvent, OutputBinding, Reader,
    TwoWayBinding,
};
use crate::components::{Backend, Opener, Opening};
use crate::state::open::OpenError;
use crate::state::time::CONNECT_TIMEOUT;

/// How long a refused message waits before it goes back to the queue.
const REQUEUE_PAUSE: Duration = Duration::from_secs(1);

/// Where the broker is and what to declare there.
#[derive(Clone, Debug)]
struct Settings {
    host: String,
    port: u16,
    user: String,
    password: String,
    virtual_host: String,
    queue: String,
    durable: bool,
    delete_when_unused: bool,
    exclusive: bool,
    prefetch_count: u16,
    max_priority: Option<u8>,
    ttl_ms: Option<u64>,
}

/// Dapr's RabbitMQ binding.
pub struct RabbitBinding {
    settings: Settings,
    /// The publishing connection, opened on first use and again after it failed.
    publisher: Mutex<Option<(Connection, Channel)>>,
}

impl RabbitBinding {
    /// The Dapr component type this binding serves.
    pub const COMPONENT_TYPE: &'static str = "bindings.rabbitmq";

    /// A connection and channel with the component's queue declared.
    async fn connect(&self) -> Result<(Connection, Channel), BindingError> {
        let settings = &self.settings;
        let failed = |err: amqprs::error::Error| BindingError::Failed(format!("{}: {err}", Self::COMPONENT_TYPE));
        let mut arguments =
            OpenConnectionArguments::new(&settings.host, settings.port, &settings.user, &settings.password);
        arguments.virtual_host(&settings.virtual_host);
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, Connection::open(&arguments))
            .await
            .map_err(|_| BindingError::Failed(format!("{}: the broker did not answer", Self::COMPONENT_TYPE)))?
            .map_err(failed)?;
        let channel = connection.open_channel(None).await.map_err(failed)?;
        let mut queue_arguments = FieldTable::new();
        if let Some(priority) = settings.max_priority {
            queue_arguments.insert("x-max-priority".try_into().expect("a short name"), FieldValue::B(priority));
        }
        if let Some(ttl) = settings.ttl_ms {
            let ttl = FieldValue::l(i64::try_from(ttl).unwrap_or(i64::MAX));
            queue_arguments.insert("x-message-ttl".try_into().expect("a short name"), ttl);
        }
        let declare = QueueDeclareArguments::new(&settings.queue)
            .durable(settings.durable)
            .auto_delete(settings.delete_when_unused)
            .exclusive(settings.exclusive)
            .arguments(queue_arguments)
            .finish();
        channel.queue_declare(declare).await.map_err(failed)?;
        Ok((connection, channel))
    }
}

/// The AMQP properties of a published message: persistent, with the request's metadata.
fn properties(metadata: &outrigger_bus::Metadata) -> Result<BasicProperties, BindingError> {
    let mut properties = BasicProperties::default();
    properties.with_delivery_mode(DELIVERY_MODE_PERSISTENT).with_content_type("text/plain");
    let mut headers = FieldTable::new();
    for (name, value) in metadata {
        if let Ok(key) = name.as_str().try_into() {
            headers.insert(key, FieldValue::from(value.as_str()));
        }
        match name.to_ascii_lowercase().as_str() {
            "ttlinseconds" | "ttl" => {
                let ttl = outrigger_resources::parse_go_duration_or_count(value, Duration::from_secs(1))
                    .map_err(|_| BindingError::Failed(format!("failed to get TTL: '{value}' is not a duration")))?;
                properties.with_expiration(&ttl.as_millis().to_string());
            }
            "priority" => {
                let priority: i64 = value
                    .trim()
                    .parse()
                    .map_err(|_| BindingError::Failed(format!("priority '{value}' is not a whole number")))?;
                properties.with_priority(u8::try_from(priority.clamp(0, 255)).unwrap_or(u8::MAX));
            }
            "contenttype" => drop(properties.with_content_type(value)),
            "messageid" => drop(properties.with_message_id(value)),
            "correlationid" => drop(properties.with_correlation_id(value)),
            "type" => drop(properties.with_message_type(value)),
            _ => {}
        }
    }
    properties.with_headers(headers);
    Ok(properties)
}

#[async_trait]
impl OutputBinding for RabbitBinding {
    fn operations(&self) -> &'static [&'static str] {
        &["create"]
    }

    async fn invoke(&self, request: BindingRequest<'_>) -> Result<BindingResponse, BindingError> {
        let properties = properties(request.metadata)?;
        let mut publisher = self.publisher.lock().await;
        if publisher.as_ref().is_none_or(|(connection, channel)| !connection.is_open() || !channel.is_open()) {
            *publisher = Some(self.connect().await?);
        }
        let (_, channel) = publisher.as_ref().expect("connected above");
        let target = BasicPublishArguments::new("", &self.settings.queue);
        if let Err(err) = channel.basic_publish(properties, request.data.to_vec(), target).await {
            *publisher = None;
            return Err(BindingError::Failed(format!("{}: {err}", Self::COMPONENT_TYPE)));
        }
        Ok(BindingResponse::default())
    }
}

/// The string headers of a delivered message, keys URL-escaped as daprd passes them on.
fn header_metadata(properties: Option<&BasicProperties>) -> std::collections::BTreeMap<String, String> {
    let Some(headers) = properties.and_then(BasicProperties::headers) else { return Default::default() };
    headers
        .as_ref()
        .iter()
        .filter_map(|(name, value)| {
            let FieldValue::S(text) = value else { return None };
            let name: String = url::form_urlencoded::byte_serialize(name.as_ref().as_bytes()).collect();
            Some((name, text.as_ref().clone()))
        })
        .collect()
}

#[async_trait]
impl InputBinding for RabbitBinding {
    async fn read(
        &self,
        reader: &Reader,
        sink: Arc<dyn EventSink>,
        stop: CancellationToken,
    ) -> Result<(), BindingError> {
        let (connection, channel) = self.connect().await?;
        let failed = |err: amqprs::error::Error| BindingError::Failed(format!("{}: {err}", Self::COMPONENT_TYPE));
        if self.settings.prefetch_count > 0 {
            let qos = BasicQosArguments::new(0, self.settings.prefetch_count, false);
            channel.basic_qos(qos).await.map_err(failed)?;
        }
        let tag = format!("outrigger-{}-{}", reader.app_id, uuid::Uuid::new_v4().simple());
        let consume = BasicConsumeArguments::new(&self.settings.queue, &tag).manual_ack(true).finish();
        let (_, mut messages) = channel.basic_consume_rx(consume).await.map_err(failed)?;
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => break,
                _ = connection.listen_network_io_failure() => None,
                message = messages.recv() => message,
            };
            let Some(message) = message else {
                return Err(BindingError::Failed(format!(
                    "{}: the connection to the broker closed",
                    Self::COMPONENT_TYPE
                )));
            };
            let Some(delivery_tag) = message.deliver.as_ref().map(amqprs::Deliver::delivery_tag) else { continue };
            let event = InputEvent {
                metadata: header_metadata(message.basic_properties.as_ref()),
                data: message.content.unwrap_or_default(),
            };
            match sink.deliver(event).await {
                Ok(()) => channel.basic_ack(BasicAckArguments::new(delivery_tag, false)).await.map_err(failed)?,
                Err(reason) => {
                    tracing::info!(component = %reader.component, app_id = %reader.app_id, %reason, "binding event refused; requeued");
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = tokio::time::sleep(REQUEUE_PAUSE) => {}
                    }
                    let requeue = BasicNackArguments::new(delivery_tag, false, true);
                    channel.basic_nack(requeue).await.map_err(failed)?;
                }
            }
        }
        // Unacked messages go back to the queue when the channel closes.
        let _ = channel.close().await;
        let _ = connection.close().await;
        Ok(())
    }
}

const RABBITMQ_FIELDS: &[MetadataField] = &[
    required("host"),
    required("queueName"),
    optional("durable").defaults_to("false"),
    optional("deleteWhenUnused").defaults_to("false"),
    optional("exclusive").defaults_to("false"),
    optional("prefetchCount").defaults_to("0"),
    // Without it the queue has no priorities, in daprd's code as here (its metadata.yaml says 1).
    optional("maxPriority"),
    optional("ttl"),
    optional("ttlInSeconds"),
    optional("contentType").defaults_to("text/plain"),
    // daprd waits 5 s before reconnecting; this worker backs off from 1 s to 60 s instead.
    optional("reconnectWaitInSeconds"),
    optional("caCert"),
    optional("clientCert"),
    secret("clientKey"),
    optional("externalSasl").defaults_to("false"),
    optional("saslExternal"),
];

const RABBITMQ_BROKER: BrokerKind = BrokerKind {
    component_type: RabbitBinding::COMPONENT_TYPE,
    field: "host",
    schemes: &["amqp"],
    default_port: 5672,
    example: "an amqp://user:password@host:5672/vhost URI",
    tls_fields: &["caCert", "clientCert", "clientKey", "externalSasl", "saslExternal"],
};

/// `bindings.rabbitmq`: a queue on a RabbitMQ broker the egress rule lets the project reach.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(RabbitBinding::COMPONENT_TYPE, BuildingBlock::Bindings, &[RABBITMQ_FIELDS]),
    opener: Opener::Binding { output: Some(output_side::<RabbitBinding>), input: Some(input_side::<RabbitBinding>) },
};

impl TwoWayBinding for RabbitBinding {
    fn open(opening: Opening<'_>) -> BoxFuture<'_, Result<Self, OpenError>> {
        Box::pin(open(opening))
    }
}

async fn open(opening: Opening<'_>) -> Result<RabbitBinding, OpenError> {
    let Opening { fields, boundary, .. } = opening;
    let BrokerAddress { host, port, credentials, path } = RABBITMQ_BROKER.address(&fields, boundary).await?;
    let virtual_host = if path.is_empty() { "/".to_owned() } else { path };
    let (user, password) = credentials.unwrap_or_else(|| ("guest".to_owned(), "guest".to_owned()));
    let number = |field: &'static str| -> Result<Option<u64>, OpenError> {
        fields
            .get(field)
            .filter(|text| !text.trim().is_empty())
            .map(|text| {
                text.trim().parse().map_err(|_| fields.invalid(field, format!("'{text}' is not a whole number")))
            })
            .transpose()
    };
    let ttl = match fields.get("ttl") {
        Some(_) => fields.duration("ttl", Duration::from_secs(1))?,
        None => fields.duration("ttlInSeconds", Duration::from_secs(1))?,
    };
    let settings = Settings {
        host,
        port,
        user,
        password,
        virtual_host,
        queue: fields.required("queueName", "the queue to publish to and read from")?.to_owned(),
        durable: fields.flag("durable")?,
        delete_when_unused: fields.flag("deleteWhenUnused")?,
        exclusive: fields.flag("exclusive")?,
        prefetch_count: u16::try_from(number("prefetchCount")?.unwrap_or(0)).unwrap_or(u16::MAX),
        max_priority: number("maxPriority")?.map(|priority| u8::try_from(priority.min(255)).unwrap_or(u8::MAX)),
        ttl_ms: ttl.map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
    };
    Ok(RabbitBinding { settings, publisher: Mutex::new(None) })
}
