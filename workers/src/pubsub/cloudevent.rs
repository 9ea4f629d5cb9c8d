//! The CloudEvent envelope daprd wraps around every published message, built the way daprd
//! builds it (`NewCloudEvent` in dapr `pkg/runtime/pubsub/cloudevents.go`, with
//! `NewCloudEventsEnvelope`, `FromCloudEvent`, `FromRawPayload`, `HasExpired` and
//! `ApplyMetadata` in components-contrib `pubsub/envelope.go`), so that the SDKs' subscribers
//! read Outrigger's events exactly as they read daprd's.
//!
//! Publishing: [`envelope`] turns a [`Publication`] into the [`Message`] to put on the topic.
//! Delivering: [`parse_event`] reads a stored envelope back, [`raw_payload_event`] wraps a raw
//! message for a subscription that asks for raw payloads, [`is_expired`] says whether to drop
//! it, and [`match_variables`] binds it for the subscription's CEL routing rules.
//!
//! Where this differs from daprd, on purpose:
//! - bytes that are not UTF-8 go to `data_base64` under any content type (daprd would put them
//!   in `data` as a string, replacing the invalid bytes), and `application/x-protobuf` always
//!   counts as binary (daprd checks that it decodes as a CloudEvent protobuf first);
//! - an invalid `ttl`/`ttlInSeconds` is an error (daprd silently publishes without one), and so
//!   is a negative duration (daprd expires the message at once);
//! - a CloudEvent the publisher wrote itself gets a missing `id`, `traceparent` and
//!   `datacontenttype` filled in (daprd leaves them out);
//! - JSON numbers are re-serialised, so one beyond `i64`/`u64`/`f64` precision loses digits
//!   (daprd keeps the literal text).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, SubsecRound, TimeDelta, Utc};
use outrigger_resources::parse_go_duration;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The content type of a JSON CloudEvent. A publication with this content type is an envelope
/// already; every [`Message`] that is not a raw payload has it.
pub const CLOUDEVENT_CONTENT_TYPE: &str = "application/cloudevents+json";

const SPEC_VERSION: &str = "1.0";
const DEFAULT_TYPE: &str = "com.dapr.event.sent";
const DEFAULT_SOURCE: &str = "Dapr";
/// daprd's `datacontenttype` when the publisher gives none; it does not sniff JSON bodies.
const DEFAULT_DATA_CONTENT_TYPE: &str = "text/plain";
const JSON_CONTENT_TYPE: &str = "application/json";
const BINARY_CONTENT_TYPES: [&str; 3] =
    ["application/octet-stream", "application/x-protobuf", "application/cloudevents+protobuf"];

const RAW_PAYLOAD_KEY: &str = "rawPayload";
/// daprd reads the time to live from the first of these present, ignoring case.
const TTL_KEYS: [&str; 2] = ["ttl", "ttlInSeconds"];
/// Go durations are signed 64-bit nanoseconds; daprd caps a longer TTL in seconds there.
const MAX_TTL: Duration = Duration::from_nanos(i64::MAX as u64);

/// A publish request, as the HTTP and gRPC publish APIs receive it.
#[derive(Debug, Clone, Copy)]
pub struct Publication<'a> {
    /// The pub/sub component's name.
    pub pubsub: &'a str,
    /// The topic published to.
    pub topic: &'a str,
    /// The publishing app's id, the envelope's default `source`.
    pub publisher_app_id: &'a str,
    /// The request body (HTTP) or `data` (gRPC).
    pub data: &'a [u8],
    /// The `Content-Type` header (HTTP) or `data_content_type` (gRPC); empty counts as absent.
    pub content_type: Option<&'a str>,
    /// Publish metadata: `metadata.*` query parameters (HTTP) or the request's metadata (gRPC).
    pub metadata: &'a BTreeMap<String, String>,
    /// The W3C `traceparent` of the publish call, if it was traced.
    pub traceparent: Option<&'a str>,
    /// The W3C `tracestate` of the publish call.
    pub tracestate: Option<&'a str>,
}

/// What to put on the topic for one publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The bytes to store and deliver: the JSON envelope, or the publisher's own bytes when the
    /// publication asked for a raw payload.
    pub payload: Vec<u8>,
    /// [`CLOUDEVENT_CONTENT_TYPE`] for an envelope; `None` for a raw payload, which daprd hands
    /// to the broker without a content type.
    pub content_type: Option<&'static str>,
    /// When the message expires, to the second: from `ttl`/`ttlInSeconds` metadata, or the
    /// `expiration` a publisher-written CloudEvent carries. A raw payload has no envelope to
    /// carry it, so only the store can enforce it there.
    pub expiration: Option<DateTime<Utc>>,
}

/// Why a publication cannot be turned into a message, or a stored message into an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The `ttl`/`ttlInSeconds` metadata is neither a Go duration nor whole seconds above zero.
    #[error(
        "metadata {key}='{value}' is not a time to live: write whole seconds above zero (ttlInSeconds=60) \
         or a duration (ttl=1m30s)"
    )]
    InvalidTtl {
        /// The metadata key as the publisher wrote it.
        key: String,
        /// Its value.
        value: String,
    },
    /// The `rawPayload` metadata is not one of Go's boolean spellings.
    #[error("metadata rawPayload='{0}' is not a boolean: write true or false")]
    InvalidRawPayload(String),
    /// A body published as `application/cloudevents+json`, or a stored envelope, is not a JSON
    /// object; the value names what was found instead.
    #[error("not a CloudEvent: expected a JSON object, found {0}")]
    NotACloudEvent(&'static str),
}

/// Builds the message for `publication`, stamping `now` as the event's `time` and the start of
/// its time to live.
///
/// - `rawPayload=true` metadata: the message is the publisher's bytes, unwrapped.
/// - Content type `application/cloudevents+json`: the body is the envelope. Its fields are kept;
///   missing `id`, `source`, `type`, `specversion`, `time`, `traceid`, `traceparent`,
///   `tracestate` and `datacontenttype` are filled in; `topic` and `pubsubname` are overwritten;
///   `cloudevent.*` metadata is ignored, as in daprd.
/// - Otherwise a new envelope: `id` (a UUID v4), `specversion` `1.0`, `datacontenttype` (the
///   content type, `text/plain` if none), `source` (the app id), `type` `com.dapr.event.sent`,
///   `topic`, `pubsubname`, `traceid` and `traceparent` (both the trace parent, or `""`),
///   `tracestate` (or `""`), `time`, `subject` if given, and the data: for `application/json`,
///   its first JSON value in `data`, its bytes as sent; base64 in `data_base64` for binary
///   content types and bytes that are not UTF-8; otherwise a string in `data`. Metadata `cloudevent.id`, `.source`, `.type`,
///   `.subject`, `.traceid`, `.traceparent` and `.tracestate` (any case) override those fields.
///
/// Either envelope gets `expiration` = `now` + `ttl`/`ttlInSeconds` metadata when given.
pub fn envelope(publication: &Publication<'_>, now: DateTime<Utc>) -> Result<Message, EnvelopeError> {
    let raw = raw_payload(publication.metadata)?;
    let expiration = time_to_live(publication.metadata)?.map(|ttl| expires_at(now, ttl));
    if raw {
        return Ok(Message { payload: publication.data.to_vec(), content_type: None, expiration });
    }
    let content_type = publication.content_type.unwrap_or_default();
    let (mut event, json_data) = if is_content_type(content_type, CLOUDEVENT_CONTENT_TYPE) {
        (from_cloudevent(publication, now)?, None)
    } else {
        new_cloudevent(publication, content_type, now)
    };
    if let Some(expiration) = expiration {
        event.insert("expiration".to_owned(), Value::String(rfc3339(expiration)));
    }
    let expiration = expiration_of(&event);
    // Into bytes directly: `to_string` goes through `fmt::Write`, which checks each piece is UTF-8 again.
    let payload = match json_data {
        Some(data) => serde_json::to_vec(&WithJsonData { event: &event, data }),
        None => serde_json::to_vec(&event),
    };
    Ok(Message {
        payload: payload.expect("a JSON object serializes"),
        content_type: Some(CLOUDEVENT_CONTENT_TYPE),
        expiration,
    })
}

/// A new envelope with JSON data as the publisher sent it: its attributes, then `data`.
#[derive(serde::Serialize)]
struct WithJsonData<'a> {
    #[serde(flatten)]
    event: &'a Map<String, Value>,
    data: &'a RawValue,
}

/// The event daprd makes up for a message delivered to a subscription with `rawPayload=true`:
/// a fresh `id`, source `Dapr`, the bytes in `data_base64` as `application/octet-stream`.
pub fn raw_payload_event(data: &[u8], pubsub: &str, topic: &str) -> Map<String, Value> {
    let mut event = Map::new();
    let mut put = |key: &str, value: String| event.insert(key.to_owned(), Value::String(value));
    put("id", uuid::Uuid::new_v4().to_string());
    put("specversion", SPEC_VERSION.to_owned());
    put("datacontenttype", BINARY_CONTENT_TYPES[0].to_owned());
    put("source", DEFAULT_SOURCE.to_owned());
    put("type", DEFAULT_TYPE.to_owned());
    put("topic", topic.to_owned());
    put("pubsubname", pubsub.to_owned());
    put("data_base64", STANDARD.encode(data));
    event
}

/// Reads a stored envelope back as the event it is, for routing and delivery.
pub fn parse_event(payload: &[u8]) -> Result<Map<String, Value>, EnvelopeError> {
    match serde_json::from_slice(payload) {
        Ok(Value::Object(event)) => Ok(event),
        Ok(other) => Err(EnvelopeError::NotACloudEvent(describe(&other))),
        Err(_) => Err(EnvelopeError::NotACloudEvent("invalid JSON")),
    }
}

/// The attributes of a stored envelope that a delivery reads when its route needs nothing else (a subscription
/// without rules, one event per request): an event with only those, read without building the rest. Building
/// the event's `data` cost ~20 instructions a byte of it (~20k for 1 KiB); skipping it, a fraction. An envelope
/// the platform wrote is always an object; anything else is an error, as for [`parse_event`].
pub fn parse_delivery_attributes(payload: &[u8]) -> Result<Map<String, Value>, EnvelopeError> {
    #[derive(serde::Deserialize)]
    struct Attributes {
        expiration: Option<Value>,
        traceparent: Option<Value>,
        tracestate: Option<Value>,
        pubsubname: Option<Value>,
        topic: Option<Value>,
    }
    // A struct would also be read from an array, field by position: only an object is an envelope.
    if payload.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(EnvelopeError::NotACloudEvent("not a JSON object"));
    }
    let attributes: Attributes =
        serde_json::from_slice(payload).map_err(|_| EnvelopeError::NotACloudEvent("invalid JSON"))?;
    let Attributes { expiration, traceparent, tracestate, pubsubname, topic } = attributes;
    let fields = [
        ("expiration", expiration),
        ("traceparent", traceparent),
        ("tracestate", tracestate),
        ("pubsubname", pubsubname),
        ("topic", topic),
    ];
    Ok(fields.into_iter().filter_map(|(name, value)| Some((name.to_owned(), value?))).collect())
}

/// Whether the event's `expiration` is before `now`. An event without one, or with one that is
/// not an RFC 3339 time, never expires, as in daprd.
pub fn is_expired(event: &Map<String, Value>, now: DateTime<Utc>) -> bool {
    expiration_of(event).is_some_and(|expiration| expiration < now)
}

/// The variables a subscription's `routes.rules[].match` expressions see: the event as `event`.
pub fn match_variables(event: &Map<String, Value>) -> outrigger_cel::Variables {
    outrigger_cel::Variables::default().with_json("event", &Value::Object(event.clone()))
}

/// A new envelope for `publication`, and its data when that is JSON (kept out of the event's fields: see
/// [`insert_data`]).
fn new_cloudevent<'a>(
    publication: &Publication<'a>,
    content_type: &str,
    now: DateTime<Utc>,
) -> (Map<String, Value>, Option<&'a RawValue>) {
    let metadata = publication.metadata;
    let given = |key: &str| lookup(metadata, key).map(|(_, value)| value);
    // An override that is present replaces the request's value even when empty; the defaults
    // below then apply to what is empty, as in daprd.
    let non_empty = |value: &str, default: &str| if value.is_empty() { default.to_owned() } else { value.to_owned() };
    let id = given("cloudevent.id")
        .filter(|id| !id.is_empty())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let source = non_empty(given("cloudevent.source").unwrap_or(publication.publisher_app_id), DEFAULT_SOURCE);
    let kind = non_empty(given("cloudevent.type").unwrap_or_default(), DEFAULT_TYPE);
    // daprd keeps one trace value in both fields; a `traceparent` override beats a `traceid` one.
    let trace = match given("cloudevent.traceparent").filter(|parent| !parent.is_empty()) {
        Some(parent) => parent,
        None => given("cloudevent.traceid").or(publication.traceparent).unwrap_or_default(),
    };
    let tracestate = given("cloudevent.tracestate").or(publication.tracestate).unwrap_or_default();

    let mut event = Map::new();
    let mut put = |key: &str, value: &str| event.insert(key.to_owned(), Value::String(value.to_owned()));
    put("id", &id);
    put("specversion", SPEC_VERSION);
    put("datacontenttype", &non_empty(content_type, DEFAULT_DATA_CONTENT_TYPE));
    put("source", &source);
    put("type", &kind);
    put("topic", publication.topic);
    put("pubsubname", publication.pubsub);
    put("traceid", trace);
    put("traceparent", trace);
    put("tracestate", tracestate);
    put("time", &rfc3339(now));
    if let Some(subject) = given("cloudevent.subject").filter(|subject| !subject.is_empty()) {
        put("subject", subject);
    }
    let json_data = insert_data(&mut event, content_type, publication.data);
    (event, json_data)
}

fn from_cloudevent(publication: &Publication<'_>, now: DateTime<Utc>) -> Result<Map<String, Value>, EnvelopeError> {
    let mut event = match first_json_value(publication.data) {
        Some(Value::Object(event)) => event,
        Some(other) => return Err(EnvelopeError::NotACloudEvent(describe(&other))),
        None => return Err(EnvelopeError::NotACloudEvent("invalid JSON")),
    };
    let trace = publication.traceparent.unwrap_or_default();
    // daprd sets both trace fields when `traceid` is missing, whatever `traceparent` held.
    if !event.contains_key("traceid") {
        event.insert("traceid".to_owned(), Value::from(trace));
        event.insert("traceparent".to_owned(), Value::from(trace));
    }
    let datacontenttype = if event.contains_key("data_base64") { BINARY_CONTENT_TYPES[0] } else { JSON_CONTENT_TYPE };
    let id = uuid::Uuid::new_v4().to_string();
    let time = rfc3339(now);
    let missing =
        [("traceparent", trace), ("tracestate", publication.tracestate.unwrap_or_default()), ("time", time.as_str())];
    for (key, value) in missing {
        event.entry(key).or_insert_with(|| Value::from(value));
    }
    // daprd treats a null attribute like a missing one for these.
    let absent_or_null = [
        ("id", id.as_str()),
        ("source", DEFAULT_SOURCE),
        ("type", DEFAULT_TYPE),
        ("specversion", SPEC_VERSION),
        // A CloudEvent without one has JSON `data`, by the CloudEvents JSON format.
        ("datacontenttype", datacontenttype),
    ];
    for (key, value) in absent_or_null {
        let slot = event.entry(key).or_insert(Value::Null);
        if slot.is_null() {
            *slot = Value::from(value);
        }
    }
    event.insert("topic".to_owned(), Value::from(publication.topic));
    event.insert("pubsubname".to_owned(), Value::from(publication.pubsub));
    Ok(event)
}

/// Puts the publisher's data into the event as text (`data`) or base64 (`data_base64`); JSON data is answered
/// instead, as the publisher sent it: the envelope holds its bytes, checked as JSON but not built into a tree
/// and written again (~15 instructions a byte).
fn insert_data<'a>(event: &mut Map<String, Value>, content_type: &str, data: &'a [u8]) -> Option<&'a RawValue> {
    // JSON that does not parse is kept as a string, as daprd does.
    if is_content_type(content_type, JSON_CONTENT_TYPE) {
        if let Some(json) = first_json_value(data) {
            return Some(json);
        }
    }
    let binary = BINARY_CONTENT_TYPES.iter().any(|binary| is_content_type(content_type, binary));
    match std::str::from_utf8(data) {
        Ok(text) if !binary => event.insert("data".to_owned(), Value::from(text)),
        _ => event.insert("data_base64".to_owned(), Value::String(STANDARD.encode(data))),
    };
    None
}

/// daprd decodes with a streaming decoder: the first JSON value counts and anything after it is
/// ignored.
fn first_json_value<'a, T: serde::Deserialize<'a>>(data: &'a [u8]) -> Option<T> {
    serde_json::Deserializer::from_slice(data).into_iter::<T>().next()?.ok()
}

/// daprd's content-type test: case-insensitive, parameters after `;` ignored, nothing trimmed.
fn is_content_type(content_type: &str, expected: &str) -> bool {
    content_type.to_ascii_lowercase().split(';').next() == Some(expected)
}

/// A metadata entry by key, ignoring case as daprd does for these keys; an exact match wins.
fn lookup<'m>(metadata: &'m BTreeMap<String, String>, key: &str) -> Option<(&'m str, &'m str)> {
    metadata
        .get_key_value(key)
        .or_else(|| metadata.iter().find(|(candidate, _)| candidate.eq_ignore_ascii_case(key)))
        .map(|(key, value)| (key.as_str(), value.as_str()))
}

/// daprd reads `rawPayload` by its exact key, with Go's `strconv.ParseBool`.
fn raw_payload(metadata: &BTreeMap<String, String>) -> Result<bool, EnvelopeError> {
    match metadata.get(RAW_PAYLOAD_KEY).map(String::as_str) {
        None | Some("") => Ok(false),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(other) => Err(EnvelopeError::InvalidRawPayload(other.to_owned())),
    }
}

/// daprd's `TryGetTTL`: a Go duration (`90s`, `1m30s`, and a bare `0`), else whole seconds
/// above zero.
fn time_to_live(metadata: &BTreeMap<String, String>) -> Result<Option<Duration>, EnvelopeError> {
    let Some((key, value)) = TTL_KEYS.iter().find_map(|key| lookup(metadata, key)) else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    if let Ok(duration) = parse_go_duration(value) {
        return Ok(Some(duration));
    }
    match value.parse::<u64>() {
        Ok(seconds) if seconds > 0 => Ok(Some(Duration::from_secs(seconds).min(MAX_TTL))),
        _ => Err(EnvelopeError::InvalidTtl { key: key.to_owned(), value: value.to_owned() }),
    }
}

/// `now` + `ttl` to the second, which is all the RFC 3339 `expiration` keeps.
fn expires_at(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    // Saturates rather than fails: a TTL near Go's limit of 292 years is "never", in effect.
    let expiration = TimeDelta::from_std(ttl).ok().and_then(|ttl| now.checked_add_signed(ttl));
    expiration.unwrap_or(DateTime::<Utc>::MAX_UTC).trunc_subsecs(0)
}

fn expiration_of(event: &Map<String, Value>) -> Option<DateTime<Utc>> {
    let text = event.get("expiration")?.as_str()?;
    DateTime::parse_from_rfc3339(text).ok().map(|expiration| expiration.with_timezone(&Utc))
}

/// Go's `time.RFC3339` layout, which daprd writes `time` and `expiration` in.
fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
