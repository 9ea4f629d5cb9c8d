//! `pubsub.jetstream`, and the distributed form's managed `pubsub`: NATS JetStream.
//!
//! - One stream per broker (`streamName`, default [`DEFAULT_STREAM_NAME`]) captures `<subjectPrefix>.>` in
//!   file storage. Its retention is by limits: a message stays [`DEFAULT_MAX_AGE`], acked or not, so that a
//!   group created after it was published still gets it (as Redis streams and the SQL queue keep what was
//!   published before a group existed). The stream is created when missing, on first use.
//! - A topic is the subject `<subjectPrefix>.<token>`, the token spelling the topic in characters subjects
//!   allow (see [`subject_token`]).
//! - A group is a durable pull consumer filtered on its topic's subject, delivering by daprd's `deliverPolicy`
//!   (`all` unless the component says otherwise: every message the stream holds), with explicit acks. Its name is a hash of topic and group, because consumer names are short and restricted;
//!   its description names both.
//! - A delivery id is the message's ack subject, so any client of the server can ack (`+ACK`) or retry it
//!   (`-NAK` with a delay), without state in the process that fetched it.
//!
//! The hold of fetched messages is the consumer's ack wait. A group is created with `ackWait` (default
//! [`DEFAULT_ACK_WAIT`]); a fetch asking for another hold first sets the consumer's ack wait to it, which
//! applies to every message the group has out. Fetchers of one group are therefore expected to pass one hold.
//! When `ackWait` is configured, holds are never shorter than it.
//!
//! A fetch sends the server no more requests than it needs, as each costs the server CPU: the broker remembers
//! the consumers it has looked up (looking one up again when a pull from it fails, which tells a group deleted
//! elsewhere from a failing server, and while the connection is down), and a fetch that may wait starts with the
//! waiting pull.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, ErrorCode};
use async_nats::{Client, ConnectOptions};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::OnceCell;

use super::backend::{missing_group, within_deadline, within_wait, DEFAULT_MAX_AGE};
use super::{Broker, BrokerError, Delivery, Features};
use crate::state::open::{Fields, OpenError};
use crate::state::time::{CONNECT_TIMEOUT, OPERATION_DEADLINE};

use std::sync::Arc;

use futures_util::future::BoxFuture;
use outrigger_resources::{optional, required, secret, BuildingBlock, ComponentType, MetadataField};

use super::open::shortest_hold;
use crate::boundary::Boundary;
use crate::components::{Backend, Opener, Opening};

mod names;

use names::{ack_subject_owner, consumer_name, is_valid_stream_name, is_valid_subject_prefix, subject_token};

/// The stream's name when the component's metadata names none (`streamName`).
pub const DEFAULT_STREAM_NAME: &str = "OUTRIGGER";

/// The connection's name on the server when the component's metadata gives none (`name`).
pub const DEFAULT_CONNECTION_NAME: &str = "outrigger pubsub";

/// The JetStream context's own deadline on a call, a backstop only: every call is bounded by its caller (a publish
/// by the component's Resiliency policy, the rest by `within_deadline`), and a shorter backstop would cut a
/// tenant's longer timeout short.
const CONTEXT_BACKSTOP: Duration = Duration::from_secs(24 * 3600);

/// The ack wait of new groups when the component's metadata gives none (`ackWait`); NATS's own default.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// Which server and stream a [`JetStreamBroker`] uses (Dapr metadata `natsURL`, `token`, `name`,
/// `streamName`, `ackWait`; `subjectPrefix` is Outrigger's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JetStreamOptions {
    /// The server: `nats://host:4222`, with `user:password@` when it wants them; several separated by commas.
    pub url: String,
    /// An authentication token, if the server wants one.
    pub token: Option<String>,
    /// The connection's name in the server's monitoring.
    pub connection_name: String,
    /// The stream; created when missing.
    pub stream_name: String,
    /// The stream captures `<subject_prefix>.>`; topics are subjects under it.
    pub subject_prefix: String,
    /// The ack wait of new groups, and the shortest hold; `None`: [`DEFAULT_ACK_WAIT`] and no shortest hold.
    pub ack_wait: Option<Duration>,
    /// Whether servers the server points to (cluster discovery) are ignored: a tenant's connection keeps to
    /// the servers the egress rule judged.
    pub ignore_discovered_servers: bool,
    /// Where a new group starts reading its topic: daprd's default, every message the stream still holds, so
    /// that what was published before a subscriber's group existed reaches it.
    pub deliver_policy: DeliverPolicy,
}

impl JetStreamOptions {
    /// Options for the server at `url`: stream [`DEFAULT_STREAM_NAME`] capturing subjects under its name.
    pub fn new(url: impl Into<String>) -> JetStreamOptions {
        JetStreamOptions {
            url: url.into(),
            token: None,
            connection_name: DEFAULT_CONNECTION_NAME.to_owned(),
            stream_name: DEFAULT_STREAM_NAME.to_owned(),
            subject_prefix: DEFAULT_STREAM_NAME.to_owned(),
            ack_wait: None,
            ignore_discovered_servers: false,
            deliver_policy: DeliverPolicy::All,
        }
    }
}

/// A broker on NATS JetStream; see the module documentation.
pub struct JetStreamBroker {
    client: Client,
    context: jetstream::Context,
    stream_name: String,
    subject_prefix: String,
    ack_wait: Option<Duration>,
    deliver_policy: DeliverPolicy,
    stream_created: OnceCell<()>,
    /// Consumers looked up before, by name, with the ack wait they were found or set with.
    consumers: Mutex<HashMap<String, PullConsumer>>,
}

fn backend_error(err: impl std::fmt::Display) -> BrokerError {
    BrokerError::Backend(format!("{}: {err}", JetStreamBroker::COMPONENT_TYPE))
}

fn is_consumer_not_found(err: &jetstream::stream::ConsumerError) -> bool {
    matches!(err.kind(), jetstream::stream::ConsumerErrorKind::JetStream(error)
        if error.error_code() == ErrorCode::CONSUMER_NOT_FOUND)
}

/// Hands out up to `batch` messages: at once what is there (`wait` = `None`), or waiting up to `wait` for them.
/// Messages received before the pull fails are handed out all the same: they are held for this fetcher, and
/// dropping them would leave them unseen until their hold ran out.
/// How long a waiting pull request stays open on the server for a fetch that waits `wait`.
///
/// NATS Server 2.9 drops a message redelivered (after a NAK delay) at the instant a waiting pull request
/// expires: the request gets neither the message nor its 408, and the message waits out the whole ack wait
/// (90 s here). The deliverer pulls again as soon as a pull ends, so with pulls of exactly 1 s a retry delay of
/// 1 s, 2 s, … lands on that instant about one time in five. Pulls ending 7 % early put whole-second delays
/// between expiries.
fn pull_expiry(wait: Duration) -> Duration {
    wait.mul_f64(0.93)
}

async fn pull(consumer: &PullConsumer, batch: usize, wait: Option<Duration>) -> Result<Vec<Delivery>, BrokerError> {
    let mut messages = match wait {
        None => consumer.fetch().max_messages(batch).messages().await,
        Some(wait) => consumer.batch().max_messages(batch).expires(wait).messages().await,
    }
    .map_err(backend_error)?;
    let mut deliveries = Vec::new();
    while let Some(message) = messages.next().await {
        let message = match message {
            Ok(message) => message,
            Err(err) if !deliveries.is_empty() => {
                tracing::debug!(error = %err, received = deliveries.len(), "a pull ended early; handing out what came");
                break;
            }
            Err(err) => return Err(backend_error(err)),
        };
        let info = message.info().map_err(backend_error)?;
        let (attempt, published) = (info.delivered, info.published);
        let id = message.reply.as_ref().ok_or_else(|| backend_error("a message came without its ack subject"))?;
        deliveries.push(Delivery {
            id: id.to_string(),
            payload: message.payload.to_vec(),
            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
            published_at: i64::try_from(published.unix_timestamp_nanos() / 1_000_000).ok(),
        });
    }
    Ok(deliveries)
}

impl JetStreamBroker {
    /// The Dapr component type this broker serves.
    pub const COMPONENT_TYPE: &'static str = "pubsub.jetstream";

    /// A broker whose connection is made in the background and remade whenever it is lost: a server that is
    /// down makes calls fail (within the deadline) until it is back, not the component.
    pub async fn connect(options: JetStreamOptions) -> Result<JetStreamBroker, OpenError> {
        let invalid =
            |field, reason: String| OpenError::InvalidField { component_type: Self::COMPONENT_TYPE, field, reason };
        if !is_valid_stream_name(&options.stream_name) {
            return Err(invalid(
                "streamName",
                format!("'{}' is not a stream name: no '.', '*', '>', '/', '\\' or spaces", options.stream_name),
            ));
        }
        if !is_valid_subject_prefix(&options.subject_prefix) {
            return Err(invalid(
                "subjectPrefix",
                format!(
                    "'{}' is not a subject such as outrigger.pubsub (no wildcards, spaces or empty tokens)",
                    options.subject_prefix
                ),
            ));
        }
        let mut connect_options = ConnectOptions::new()
            .name(&options.connection_name)
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(Some(OPERATION_DEADLINE))
            .retry_on_initial_connect();
        if let Some(token) = &options.token {
            connect_options = connect_options.token(token.clone());
        }
        if options.ignore_discovered_servers {
            connect_options = connect_options.ignore_discovered_servers();
        }
        let client =
            connect_options.connect(options.url.as_str()).await.map_err(|err| invalid("natsURL", err.to_string()))?;
        let context = jetstream::ContextBuilder::new().timeout(CONTEXT_BACKSTOP).build(client.clone());
        Ok(JetStreamBroker {
            client,
            context,
            stream_name: options.stream_name,
            subject_prefix: options.subject_prefix,
            ack_wait: options.ack_wait,
            deliver_policy: options.deliver_policy,
            stream_created: OnceCell::new(),
            consumers: Mutex::new(HashMap::new()),
        })
    }

    fn subject(&self, topic: &str) -> String {
        format!("{}.{}", self.subject_prefix, subject_token(topic))
    }

    fn consumer_config(&self, topic: &str, group: &str, ack_wait: Duration) -> pull::Config {
        pull::Config {
            durable_name: Some(consumer_name(topic, group)),
            description: Some(format!("group '{group}' of topic '{topic}'")),
            filter_subject: self.subject(topic),
            deliver_policy: self.deliver_policy,
            ack_policy: AckPolicy::Explicit,
            ack_wait,
            ..pull::Config::default()
        }
    }

    /// Creates the stream unless a previous call did; a failed attempt is retried by the next call.
    async fn ensure_stream(&self) -> Result<(), BrokerError> {
        self.stream_created
            .get_or_try_init(|| async {
                let config = stream::Config {
                    name: self.stream_name.clone(),
                    subjects: vec![format!("{}.>", self.subject_prefix)],
                    storage: StorageType::File,
                    retention: RetentionPolicy::Limits,
                    max_age: DEFAULT_MAX_AGE,
                    ..stream::Config::default()
                };
                let stream = self.context.get_or_create_stream(config).await.map_err(backend_error)?;
                if stream.cached_info().config.retention == RetentionPolicy::Interest {
                    // Made by an earlier version; a stream's retention cannot be changed in place.
                    tracing::warn!(stream = %self.stream_name, "this JetStream stream keeps messages by interest: \
                        what is published before a subscriber's group exists is dropped; recreate the stream (when \
                        drained) to keep them for late groups");
                }
                Ok(())
            })
            .await
            .map(drop)
    }

    fn remembered_consumer(&self, name: &str) -> Option<PullConsumer> {
        self.consumers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(name).cloned()
    }

    fn remember_consumer(&self, name: String, consumer: Option<PullConsumer>) {
        let mut consumers = self.consumers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match consumer {
            Some(consumer) => consumers.insert(name, consumer),
            None => consumers.remove(&name),
        };
    }

    /// The group's consumer, its ack wait set to `hold` first when it has another: the one remembered unless
    /// `look_up`, else asked of the server (and remembered).
    async fn consumer(
        &self,
        topic: &str,
        group: &str,
        hold: Duration,
        look_up: bool,
    ) -> Result<PullConsumer, BrokerError> {
        let name = consumer_name(topic, group);
        if let Some(consumer) = self
            .remembered_consumer(&name)
            .filter(|consumer| !look_up && consumer.cached_info().config.ack_wait == hold)
        {
            return Ok(consumer);
        }
        self.ensure_stream().await?;
        let mut consumer: PullConsumer = match self.context.get_consumer_from_stream(&name, &self.stream_name).await {
            Ok(consumer) => consumer,
            Err(err) if is_consumer_not_found(&err) => {
                self.remember_consumer(name, None);
                return Err(missing_group(Self::COMPONENT_TYPE, topic, group));
            }
            Err(err) => return Err(backend_error(err)),
        };
        if consumer.cached_info().config.ack_wait != hold {
            // Creating an existing consumer with a changed (editable) setting updates it.
            consumer = self
                .context
                .create_consumer_on_stream(self.consumer_config(topic, group, hold), &self.stream_name)
                .await
                .map_err(backend_error)?;
        }
        self.remember_consumer(name, Some(consumer.clone()));
        Ok(consumer)
    }

    /// Up to `max` messages of the consumer: waiting up to `wait` for the first unless `wait` is zero.
    async fn pull_deliveries(
        &self,
        consumer: &PullConsumer,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        if wait.is_zero() {
            return within_deadline(Self::COMPONENT_TYPE, pull(consumer, max, None)).await;
        }
        // A pull request for one message ends as soon as one arrives (at once when one is there); one for more
        // would stay open on the server after this fetch returned, and what it received then would wait out its
        // hold. The rest of the batch is what is there already.
        let expires = pull_expiry(wait);
        let mut deliveries = within_wait(wait, Self::COMPONENT_TYPE, pull(consumer, 1, Some(expires))).await?;
        if !deliveries.is_empty() && max > 1 {
            // The first message is held for this fetch already: a failure to get more does not take it back.
            match within_deadline(Self::COMPONENT_TYPE, pull(consumer, max - 1, None)).await {
                Ok(more) => deliveries.extend(more),
                Err(err) => tracing::debug!(error = %err, "pulling the rest of a batch failed; handing out the first"),
            }
        }
        Ok(deliveries)
    }

    /// Sends `body` to a message's ack subject and waits for the server to confirm it.
    async fn answer(&self, topic: &str, group: &str, id: &str, body: Bytes) -> Result<(), BrokerError> {
        let consumer = consumer_name(topic, group);
        if ack_subject_owner(id) != Some((self.stream_name.as_str(), consumer.as_str())) {
            return Err(BrokerError::InvalidId(id.to_owned()));
        }
        within_deadline(Self::COMPONENT_TYPE, async {
            match self.client.request(id.to_owned(), body).await {
                Ok(_) => Ok(()),
                // Nobody serves the ack subject: the group is gone, and with it whatever it held.
                Err(err) if err.kind() == async_nats::RequestErrorKind::NoResponders => Ok(()),
                Err(err) => Err(backend_error(err)),
            }
        })
        .await
    }
}

#[async_trait]
impl Broker for JetStreamBroker {
    fn features(&self) -> Features {
        // Redeliveries come after later messages.
        Features { ordered: false, durable: true }
    }

    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), BrokerError> {
        self.ensure_stream().await?;
        let acknowledgement =
            self.context.publish(self.subject(topic), Bytes::copy_from_slice(payload)).await.map_err(backend_error)?;
        acknowledgement.await.map_err(backend_error)?;
        Ok(())
    }

    async fn ensure_group(&self, topic: &str, group: &str) -> Result<(), BrokerError> {
        within_deadline(Self::COMPONENT_TYPE, async {
            self.ensure_stream().await?;
            let name = consumer_name(topic, group);
            match self.context.get_consumer_from_stream::<pull::Config, _, _>(&name, &self.stream_name).await {
                Ok(_) => return Ok(()),
                Err(err) if is_consumer_not_found(&err) => {}
                Err(err) => return Err(backend_error(err)),
            }
            let ack_wait = self.ack_wait.unwrap_or(DEFAULT_ACK_WAIT);
            self.context
                .create_consumer_on_stream(self.consumer_config(topic, group, ack_wait), &self.stream_name)
                .await
                .map_err(backend_error)?;
            Ok(())
        })
        .await
    }

    async fn fetch(
        &self,
        topic: &str,
        group: &str,
        max: usize,
        wait: Duration,
        hold: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let hold = self.ack_wait.map_or(hold, |shortest| hold.max(shortest));
        // Without a connection a pull would wait out its wait in the client's buffer and end empty; asking the
        // server for the consumer fails instead, as every other call does then.
        let connected = self.client.connection_state() == async_nats::connection::State::Connected;
        let consumer = within_deadline(Self::COMPONENT_TYPE, self.consumer(topic, group, hold, !connected)).await?;
        if max == 0 {
            return Ok(Vec::new());
        }
        match self.pull_deliveries(&consumer, max, wait).await {
            Ok(deliveries) => Ok(deliveries),
            Err(_) => {
                // The remembered consumer may be gone (its group deleted elsewhere): asking the server says so, or
                // gives the one to pull from now.
                let consumer = within_deadline(Self::COMPONENT_TYPE, self.consumer(topic, group, hold, true)).await?;
                self.pull_deliveries(&consumer, max, wait).await
            }
        }
    }

    async fn ack(&self, topic: &str, group: &str, id: &str) -> Result<(), BrokerError> {
        self.answer(topic, group, id, Bytes::from_static(b"+ACK")).await
    }

    async fn retry(&self, topic: &str, group: &str, id: &str, delay: Duration) -> Result<(), BrokerError> {
        let body = if delay.is_zero() {
            Bytes::from_static(b"-NAK")
        } else {
            let nanoseconds = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
            Bytes::from(format!("-NAK {{\"delay\": {nanoseconds}}}"))
        };
        self.answer(topic, group, id, body).await
    }

    async fn pending(&self, topic: &str, group: &str, cap: u64) -> Result<Option<u64>, BrokerError> {
        within_deadline(Self::COMPONENT_TYPE, async {
            self.ensure_stream().await?;
            let stream = self.context.get_stream_no_info(&self.stream_name).await.map_err(backend_error)?;
            match stream.consumer_info(consumer_name(topic, group)).await {
                // Not delivered yet, and delivered but not acknowledged (held or waiting for a retry).
                Ok(info) => Ok(Some((info.num_pending + info.num_ack_pending as u64).min(cap))),
                Err(err) if err.kind() == jetstream::context::ConsumerInfoErrorKind::NotFound => Ok(None),
                Err(err) => Err(backend_error(err)),
            }
        })
        .await
    }

    async fn kept_messages(&self, topic: &str, cap: u64) -> Result<u64, BrokerError> {
        within_deadline(Self::COMPONENT_TYPE, async {
            self.ensure_stream().await?;
            let stream = self.context.get_stream_no_info(&self.stream_name).await.map_err(backend_error)?;
            // The stream's state for this one subject: the server counts it, nothing is read.
            let mut subjects = stream.info_with_subjects(self.subject(topic)).await.map_err(backend_error)?;
            let mut kept = 0u64;
            while let Some(subject) = subjects.next().await {
                kept += subject.map_err(backend_error)?.1 as u64;
            }
            Ok(kept.min(cap))
        })
        .await
    }

    async fn delete_group(&self, topic: &str, group: &str) -> Result<(), BrokerError> {
        within_deadline(Self::COMPONENT_TYPE, async {
            self.ensure_stream().await?;
            let name = consumer_name(topic, group);
            self.remember_consumer(name.clone(), None);
            match self.context.delete_consumer_from_stream(name, &self.stream_name).await {
                Ok(_) => Ok(()),
                Err(err) if is_consumer_not_found(&err) => Ok(()),
                Err(err) => Err(backend_error(err)),
            }
        })
        .await
    }
}

const JETSTREAM_FIELDS: &[MetadataField] = &[
    required("natsURL"),
    secret("jwt"),
    secret("seedKey"),
    secret("token"),
    optional("tls_client_cert"),
    secret("tls_client_key"),
    // daprd names its connection "dapr.io - pubsub.jetstream"; this worker's own name lets an operator tell
    // its connections apart on the server, and the name changes nothing else.
    optional("name").defaults_to(DEFAULT_CONNECTION_NAME),
    optional("streamName"),
    optional("durableName"),
    optional("queueGroupName"),
    optional("startSequence"),
    optional("startTime").defaults_to("0"),
    optional("flowControl").defaults_to("false"),
    optional("ackWait"),
    optional("maxDeliver"),
    optional("backOff"),
    optional("maxAckPending"),
    optional("replicas"),
    optional("memoryStorage").defaults_to("false"),
    optional("rateLimit"),
    optional("heartbeat"),
    optional("deliverPolicy").defaults_to("all"),
    optional("ackPolicy").defaults_to("explicit"),
    optional("domain"),
    optional("apiPrefix"),
    // daprd's default is `single`; this worker's delivery loop sets concurrency, not the component.
    optional("concurrency"),
];

/// `pubsub.jetstream`: a NATS JetStream server the egress rule lets the project reach.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(JetStreamBroker::COMPONENT_TYPE, BuildingBlock::PubSub, &[JETSTREAM_FIELDS]),
    opener: Opener::PubSub(open),
};

fn open(opening: Opening<'_>) -> BoxFuture<'_, Result<Arc<dyn Broker>, OpenError>> {
    Box::pin(async move {
        let Opening { fields, boundary, .. } = opening;
        let url = fields.required("natsURL", "the NATS server URL, e.g. nats://nats:4222")?;
        let mut options = JetStreamOptions::new(pinned_nats_servers(url, boundary).await?);
        options.ignore_discovered_servers = boundary.is_confined();
        options.token = fields.get("token").map(str::to_owned);
        if let Some(name) = fields.get("name") {
            options.connection_name = name.to_owned();
        }
        if let Some(stream_name) = fields.get("streamName") {
            options.stream_name = stream_name.to_owned();
        }
        // Topics live under the stream's name unless told otherwise, so that streams never overlap.
        options.subject_prefix = fields.get("subjectPrefix").unwrap_or(&options.stream_name).to_owned();
        options.ack_wait = shortest_hold(&fields, "ackWait", Duration::from_secs(1))?;
        options.deliver_policy = deliver_policy(&fields)?;
        Ok(Arc::new(JetStreamBroker::connect(options).await?) as _)
    })
}

/// daprd's `deliverPolicy` (`all` when absent), with `startSequence` or `startTime` (Unix seconds) for the policies
/// that start there; `startTime` left out is 0, the start of every stream, as in daprd.
fn deliver_policy(fields: &Fields<'_>) -> Result<DeliverPolicy, OpenError> {
    let number = |field: &'static str| -> Result<u64, OpenError> {
        let text = fields.get(field).unwrap_or_default().trim();
        text.parse().map_err(|_| fields.invalid(field, format!("'{text}' is not a whole number")))
    };
    Ok(match fields.get("deliverPolicy").unwrap_or_default() {
        "all" | "" => DeliverPolicy::All,
        "last" => DeliverPolicy::Last,
        "new" => DeliverPolicy::New,
        "sequence" => DeliverPolicy::ByStartSequence { start_sequence: number("startSequence")? },
        "time" => {
            let seconds = match fields.get("startTime") {
                None => 0,
                Some(_) => i64::try_from(number("startTime")?).unwrap_or(i64::MAX),
            };
            let start_time = time::OffsetDateTime::from_unix_timestamp(seconds)
                .map_err(|err| fields.invalid("startTime", err.to_string()))?;
            DeliverPolicy::ByStartTime { start_time }
        }
        other => {
            return Err(fields.invalid(
                "deliverPolicy",
                format!("deliver policy {other} is not one of: all, last, new, sequence, time"),
            ))
        }
    })
}

/// `natsURL` (one server or several, comma-separated) with every server's host judged by `boundary`; plain
/// `nats://` servers are pinned to the address judged (TLS and WebSocket ones keep their names, which their
/// certificates carry).
async fn pinned_nats_servers(servers: &str, boundary: &Boundary) -> Result<String, OpenError> {
    if !boundary.is_confined() {
        return Ok(servers.to_owned());
    }
    let invalid = |reason: String| OpenError::InvalidField {
        component_type: JetStreamBroker::COMPONENT_TYPE,
        field: "natsURL",
        reason,
    };
    let mut pinned = Vec::new();
    for server in servers.split(',').map(str::trim) {
        let with_scheme = if server.contains("://") { server.to_owned() } else { format!("nats://{server}") };
        let mut url =
            url::Url::parse(&with_scheme).map_err(|err| invalid(format!("'{server}' is not a URL: {err}")))?;
        let host = url.host_str().ok_or_else(|| invalid(format!("'{server}' names no host")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let address =
            boundary.host(JetStreamBroker::COMPONENT_TYPE, "natsURL", &host, url.port().unwrap_or(4222)).await?;
        let address = address.expect("a confined boundary pins every host");
        if url.scheme() == "nats" {
            url.set_ip_host(address.ip()).map_err(|()| invalid(format!("'{server}' cannot carry an address")))?;
            url.set_port(Some(address.port())).map_err(|()| invalid(format!("'{server}' cannot carry a port")))?;
        }
        pinned.push(url.to_string().trim_end_matches('/').to_owned());
    }
    Ok(pinned.join(","))
}
