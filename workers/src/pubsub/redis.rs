//! `pubsub.redis`: Redis Streams with consumer groups, as daprd's Redis pub/sub uses them.
//!
//! - A topic is the stream `pubsub:<topic>`, a message an entry whose field `data` holds the payload.
//!   Publishing is `XADD`, trimming the stream to about `maxLenApprox` entries when that is set.
//! - A group is a consumer group of the stream, created at `0` (with `MKSTREAM`), as daprd creates it. Every
//!   fetcher reads as the same Redis consumer: who holds a message is told by the due set below, not by Redis's
//!   consumers.
//! - Holds and retry delays: each group has a sorted set `pubsub-due:<topic length>:<topic>:<group>` that
//!   scores every message the group has out with the Unix milliseconds at which it may be handed out again.
//!   A fetch is one script: messages whose time has come are claimed again (`XCLAIM`, which counts the
//!   delivery), new ones read (`XREADGROUP ... >`), and each gets the end of its hold as its new score.
//!   `retry` moves the score to the end of the delay; `ack` is `XACK` and removes the score. Daprd instead
//!   reclaims entries idle longer than `processingTimeout` (`XAUTOCLAIM`), which would bring a retried
//!   message back when the hold ends rather than when its delay does.
//! - When there is nothing to hand out, the fetch blocks (`XREAD BLOCK`) until an entry is added after the
//!   stream's last one, or until the group's next score comes due. Blocking reads run on connections of their
//!   own: a blocked connection answers nothing else meanwhile.
//! - A delivery id is the stream entry id.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Script};
use tokio::time::Instant;

use super::backend::{millis, missing_group, within_deadline, within_wait};
use super::{Broker, BrokerError, Delivery, Features};
use crate::state::open::OpenError;
use crate::state::redis::connect;
use crate::state::time::{now_ms, CONNECT_TIMEOUT};
use crate::state::RedisOptions;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use outrigger_resources::{optional, BuildingBlock, ComponentType, MetadataField};

use super::open::shortest_hold;
use crate::components::{Backend, Opener, Opening};
use crate::state::redis::REDIS_CLIENT_FIELDS;

/// Hands out what a group may have now. KEYS: the stream, the group's due set. ARGV: the group, the consumer,
/// now and the end of the hold (Unix ms), the most messages to hand out. Answers `{deliveries, next due time
/// or nil, last entry id}` (the last two only when there are no deliveries); a delivery is `{id, data,
/// delivery count}`.
const FETCH_SCRIPT: &str = r#"
local stream, due = KEYS[1], KEYS[2]
local group, consumer, now, held_until, max = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local function data(fields)
  for i = 1, #fields, 2 do
    if fields[i] == "data" then return fields[i + 1] end
  end
  return ""
end
local deliveries = {}
for _, id in ipairs(redis.call("ZRANGEBYSCORE", due, "-inf", now, "LIMIT", 0, max)) do
  local entry = redis.call("XCLAIM", stream, group, consumer, 0, id)[1]
  if entry and entry[2] then
    redis.call("ZADD", due, held_until, id)
    local count = redis.call("XPENDING", stream, group, id, id, 1)[1][4]
    deliveries[#deliveries + 1] = {id, data(entry[2]), count}
  else
    -- Trimmed away, or acked meanwhile: nothing is left to hand out.
    redis.call("ZREM", due, id)
    redis.call("XACK", stream, group, id)
  end
end
if #deliveries < max then
  local read = redis.call("XREADGROUP", "GROUP", group, consumer, "COUNT", max - #deliveries, "STREAMS", stream, ">")
  if read then
    for _, entry in ipairs(read[1][2]) do
      redis.call("ZADD", due, held_until, entry[1])
      deliveries[#deliveries + 1] = {entry[1], data(entry[2]), 1}
    end
  end
end
local next_due, last_id = false, "0-0"
if #deliveries == 0 then
  local first = redis.call("ZRANGE", due, 0, 0, "WITHSCORES")
  if first[2] then next_due = tonumber(first[2]) end
  local last = redis.call("XREVRANGE", stream, "+", "-", "COUNT", 1)[1]
  if last then last_id = last[1] end
end
return {deliveries, next_due, last_id}
"#;

/// Removes a group and its due set. KEYS: the stream, the due set. ARGV: the group.
const DELETE_GROUP_SCRIPT: &str = r#"
if redis.call("EXISTS", KEYS[1]) == 1 then
  redis.call("XGROUP", "DESTROY", KEYS[1], ARGV[1])
end
redis.call("DEL", KEYS[2])
return 0
"#;

/// The one Redis consumer name every fetcher of every group reads as.
const CONSUMER: &str = "outrigger";

/// Which Redis a [`RedisBroker`] uses and how (Dapr metadata `redisHost`, `redisUsername`, `redisPassword`,
/// `redisDB`, `maxLenApprox`, `processingTimeout`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisBrokerOptions {
    /// The server and database.
    pub connection: RedisOptions,
    /// Streams are trimmed to about this many entries, acked or not; `None`: never.
    pub max_len_approx: Option<u64>,
    /// The shortest hold: a fetch asking for less holds messages this long; `None`: as asked.
    pub processing_timeout: Option<Duration>,
}

impl RedisBrokerOptions {
    /// Options for `connection` without trimming or shortest hold.
    pub fn new(connection: RedisOptions) -> RedisBrokerOptions {
        RedisBrokerOptions { connection, max_len_approx: None, processing_timeout: None }
    }
}

/// A broker on Redis Streams; see the module documentation.
pub struct RedisBroker {
    client: redis::Client,
    connection: ConnectionManager,
    fetch_script: Script,
    delete_group_script: Script,
    max_len_approx: Option<u64>,
    processing_timeout: Option<Duration>,
    /// Connections for blocking reads that are not in use, kept for the next waiting fetch.
    idle_blocking: Mutex<Vec<MultiplexedConnection>>,
}

/// What the fetch script answers.
type Fetched = (Vec<(String, Vec<u8>, u32)>, Option<i64>, String);

fn stream_key(topic: &str) -> String {
    format!("pubsub:{topic}")
}

/// The due set of `group`; the topic's length keeps the key apart from every other topic's and group's.
fn due_key(topic: &str, group: &str) -> String {
    format!("pubsub-due:{}:{topic}:{group}", topic.len())
}

/// Checks that `id` is a stream entry id (`<milliseconds>-<sequence>`).
fn entry_id(id: &str) -> Result<&str, BrokerError> {
    let is_number = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    match id.split_once('-') {
        Some((time, sequence)) if is_number(time) && is_number(sequence) => Ok(id),
        _ => Err(BrokerError::InvalidId(id.to_owned())),
    }
}

fn backend_error(err: redis::RedisError) -> BrokerError {
    BrokerError::Backend(format!("{}: {err}", RedisBroker::COMPONENT_TYPE))
}

impl RedisBroker {
    /// The Dapr component type this broker serves.
    pub const COMPONENT_TYPE: &'static str = "pubsub.redis";

    /// A broker that connects on first use and reconnects by itself after the connection is lost: a Redis
    /// that is down makes calls fail (within the deadline) until it is back, not the component.
    pub fn open(options: RedisBrokerOptions) -> Result<RedisBroker, OpenError> {
        let (client, connection) = connect(Self::COMPONENT_TYPE, &options.connection)?;
        Ok(RedisBroker {
            client,
            connection,
            fetch_script: Script::new(FETCH_SCRIPT),
            delete_group_script: Script::new(DELETE_GROUP_SCRIPT),
            max_len_approx: options.max_len_approx,
            processing_timeout: options.processing_timeout,
            idle_blocking: Mutex::default(),
        })
    }

    fn idle_blocking(&self) -> MutexGuard<'_, Vec<MultiplexedConnection>> {
        // The list stays usable whatever panicked while holding it.
        self.idle_blocking.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns once an entry is added to `stream` after `last_id`, or after `block`.
    async fn wait_for_entry(&self, stream: &str, last_id: &str, block: Duration) -> Result<(), BrokerError> {
        let idle = self.idle_blocking().pop();
        let mut connection = match idle {
            Some(connection) => connection,
            None => {
                // No response timeout: a blocked read answers only when it is done.
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(None);
                within_deadline(Self::COMPONENT_TYPE, async {
                    self.client.get_multiplexed_async_connection_with_config(&config).await.map_err(backend_error)
                })
                .await?
            }
        };
        within_wait(block, Self::COMPONENT_TYPE, async {
            redis::cmd("XREAD")
                .arg("BLOCK")
                .arg(millis(block).max(1))
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS")
                .arg(stream)
                .arg(last_id)
                .query_async::<redis::Value>(&mut connection)
                .await
                .map_err(backend_error)
        })
        .await?;
        // Only a read that finished leaves the connection ready for another.
        self.idle_blocking().push(connection);
        Ok(())
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn features(&self) -> Features {
        Features { ordered: false, durable: true }
    }

    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), BrokerError> {
        let mut command = redis::cmd("XADD");
        command.arg(stream_key(topic));
        if let Some(max_len) = self.max_len_approx {
            command.arg("MAXLEN").arg("~").arg(max_len);
        }
        command.arg("*").arg("data").arg(payload);
        let mut connection = self.connection.clone();
        command.query_async::<String>(&mut connection).await.map_err(backend_error)?;
        Ok(())
    }

    async fn ensure_group(&self, topic: &str, group: &str) -> Result<(), BrokerError> {
        let mut connection = self.connection.clone();
        within_deadline(Self::COMPONENT_TYPE, async {
            let created = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream_key(topic))
                .arg(group)
                // From the stream's start, as daprd creates it: what was published before the subscriber's first
                // fetch reaches it.
                .arg("0")
                .arg("MKSTREAM")
                .query_async::<()>(&mut connection)
                .await;
            match created {
                Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
                other => other.map_err(backend_error),
            }
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
        let hold = self.processing_timeout.map_or(hold, |shortest| hold.max(shortest));
        let (stream, due) = (stream_key(topic), due_key(topic, group));
        let deadline = Instant::now().checked_add(wait);
        loop {
            let now = now_ms();
            let mut invocation = self.fetch_script.key(&stream);
            invocation.key(&due).arg(group).arg(CONSUMER).arg(now).arg(now.saturating_add(millis(hold))).arg(max);
            let mut connection = self.connection.clone();
            let (deliveries, next_due, last_id): Fetched = within_deadline(Self::COMPONENT_TYPE, async {
                invocation.invoke_async(&mut connection).await.map_err(|err| match err.code() {
                    Some("NOGROUP") => missing_group(Self::COMPONENT_TYPE, topic, group),
                    _ => backend_error(err),
                })
            })
            .await?;
            let remaining =
                deadline.map_or(Duration::MAX, |deadline| deadline.saturating_duration_since(Instant::now()));
            if !deliveries.is_empty() || max == 0 || remaining.is_zero() {
                return Ok(deliveries
                    .into_iter()
                    .map(|(id, payload, attempt)| {
                        // A stream entry's id starts with the millisecond XADD took it.
                        let published_at = id.split('-').next().and_then(|millis| millis.parse().ok());
                        Delivery { id, payload, attempt, published_at }
                    })
                    .collect());
            }
            let until_due = next_due.map_or(Duration::MAX, |due| {
                Duration::from_millis(u64::try_from(due.saturating_sub(now_ms())).unwrap_or(0))
            });
            self.wait_for_entry(&stream, &last_id, remaining.min(until_due)).await?;
        }
    }

    async fn ack(&self, topic: &str, group: &str, id: &str) -> Result<(), BrokerError> {
        let id = entry_id(id)?;
        let mut connection = self.connection.clone();
        within_deadline(Self::COMPONENT_TYPE, async {
            redis::pipe()
                .atomic()
                .cmd("XACK")
                .arg(stream_key(topic))
                .arg(group)
                .arg(id)
                .cmd("ZREM")
                .arg(due_key(topic, group))
                .arg(id)
                .query_async::<()>(&mut connection)
                .await
                .map_err(backend_error)
        })
        .await
    }

    async fn retry(&self, topic: &str, group: &str, id: &str, delay: Duration) -> Result<(), BrokerError> {
        let id = entry_id(id)?;
        let mut connection = self.connection.clone();
        within_deadline(Self::COMPONENT_TYPE, async {
            // XX: only a message the group still has out gets a new time.
            redis::cmd("ZADD")
                .arg(due_key(topic, group))
                .arg("XX")
                .arg(now_ms().saturating_add(millis(delay)))
                .arg(id)
                .query_async::<()>(&mut connection)
                .await
                .map_err(backend_error)
        })
        .await
    }

    async fn pending(&self, topic: &str, group: &str, cap: u64) -> Result<Option<u64>, BrokerError> {
        let mut connection = self.connection.clone();
        within_deadline(Self::COMPONENT_TYPE, async {
            let mut asked = redis::cmd("XINFO");
            asked.arg("GROUPS").arg(stream_key(topic));
            let groups = match asked.query_async::<redis::Value>(&mut connection).await {
                Ok(groups) => groups,
                // No stream, so no group.
                Err(err) if err.code() == Some("ERR") && err.to_string().contains("no such key") => return Ok(None),
                Err(err) => return Err(backend_error(err)),
            };
            let groups: Vec<std::collections::HashMap<String, redis::Value>> = redis::from_redis_value(groups)
                .map_err(|err| BrokerError::Backend(format!("{}: {err}", Self::COMPONENT_TYPE)))?;
            let Some(found) = groups.into_iter().find(|fields| {
                fields.get("name").and_then(|name| redis::from_redis_value::<String>(name.clone()).ok()).as_deref()
                    == Some(group)
            }) else {
                return Ok(None);
            };
            let number = |field: &str| {
                found.get(field).and_then(|value| redis::from_redis_value::<u64>(value.clone()).ok()).unwrap_or(0)
            };
            // Handed out and not acknowledged, and not yet read (`lag`, Redis 7; unknown after trimming: 0).
            Ok(Some((number("pending") + number("lag")).min(cap)))
        })
        .await
    }

    async fn kept_messages(&self, topic: &str, cap: u64) -> Result<u64, BrokerError> {
        let mut connection = self.connection.clone();
        within_deadline(Self::COMPONENT_TYPE, async {
            let kept: u64 =
                redis::cmd("XLEN").arg(stream_key(topic)).query_async(&mut connection).await.map_err(backend_error)?;
            Ok(kept.min(cap))
        })
        .await
    }

    async fn delete_group(&self, topic: &str, group: &str) -> Result<(), BrokerError> {
        let mut invocation = self.delete_group_script.key(stream_key(topic));
        invocation.key(due_key(topic, group)).arg(group);
        let mut connection = self.connection.clone();
        within_deadline(Self::COMPONENT_TYPE, async {
            invocation.invoke_async::<()>(&mut connection).await.map_err(backend_error)
        })
        .await
    }
}

/// No defaults: daprd's (`processingTimeout` 60 s, `redeliverInterval` 15 s, `queueDepth` 100, `concurrency` 10)
/// do not hold here, where a message is held as long as its delivery asks (`processingTimeout` only lengthens
/// shorter holds) and the delivery loop, not the component, sets redelivery and concurrency.
const REDIS_PUBSUB_FIELDS: &[MetadataField] = &[
    optional("redeliverInterval"),
    optional("processingTimeout"),
    optional("queueDepth"),
    optional("concurrency"),
    optional("maxLenApprox"),
    optional("streamTTL"),
];

/// `pubsub.redis`: Redis streams on a server the egress rule lets the project reach.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(
        RedisBroker::COMPONENT_TYPE,
        BuildingBlock::PubSub,
        &[REDIS_CLIENT_FIELDS, REDIS_PUBSUB_FIELDS],
    ),
    opener: Opener::PubSub(open),
};

fn open(opening: Opening<'_>) -> BoxFuture<'_, Result<Arc<dyn Broker>, OpenError>> {
    Box::pin(async move {
        let Opening { fields, boundary, .. } = opening;
        let mut options = RedisBrokerOptions::new(fields.redis_options(RedisBroker::COMPONENT_TYPE, boundary).await?);
        options.max_len_approx =
            match fields.get("maxLenApprox") {
                None => None,
                Some(text) => Some(text.parse::<u64>().map_err(|_| {
                    fields.invalid("maxLenApprox", format!("'{text}' is not a number of stream entries"))
                })?),
            };
        // Dapr reads a plain number here as milliseconds.
        options.processing_timeout = shortest_hold(&fields, "processingTimeout", Duration::from_millis(1))?;
        Ok(Arc::new(RedisBroker::open(options)?) as _)
    })
}
