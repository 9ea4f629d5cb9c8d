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
///   `tracestate` (or `""`), `time`, `subject` if given, and the data: parsed JSON in `data`
///   for `application/json`, base64 in `data_base64` for binary content types and bytes that
///   are not UTF-8, otherwise a string in `data`. Metadata `cloudevent.id`, `.source`, `.type`,
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
    let mut event = if is_content_type(content_type, CLOUDEVENT_CONTENT_TYPE) {
        from_cloudevent(publication, now)?
    } else {
        new_cloudevent(publication, content_type, now)
    };
    if let Some(expiration) = expiration {
        event.insert("expiration".to_owned(), Value::String(rfc3339(expiration)));
    }
    let expiration = expiration_of(&event);
    Ok(Message {
        payload: Value::Object(event).to_string().into_bytes(),
        content_type: Some(CLOUDEVENT_CONTENT_TYPE),
        expiration,
    })
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

/// Whether the event's `expiration` is before `now`. An event without one, or with one that is
/// not an RFC 3339 time, never expires, as in daprd.
pub fn is_expired(event: &Map<String, Value>, now: DateTime<Utc>) -> bool {
    expiration_of(event).is_some_and(|expiration| expiration < now)
}

/// The variables a subscription's `routes.rules[].match` expressions see: the event as `event`.
pub fn match_variables(event: &Map<String, Value>) -> outrigger_cel::Variables {
    outrigger_cel::Variables::default().with_json("event", &Value::Object(event.clone()))
}

fn new_cloudevent(publication: &Publication<'_>, content_type: &str, now: DateTime<Utc>) -> Map<String, Value> {
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
    insert_data(&mut event, content_type, publication.data);
    event
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

fn insert_data(event: &mut Map<String, Value>, content_type: &str, data: &[u8]) {
    // JSON that does not parse is kept as a string, as daprd does.
    if is_content_type(content_type, JSON_CONTENT_TYPE) {
        if let Some(value) = first_json_value(data) {
            event.insert("data".to_owned(), value);
            return;
        }
    }
    let binary = BINARY_CONTENT_TYPES.iter().any(|binary| is_content_type(content_type, binary));
    match std::str::from_utf8(data) {
        Ok(text) if !binary => event.insert("data".to_owned(), Value::from(text)),
        _ => event.insert("data_base64".to_owned(), Value::String(STANDARD.encode(data))),
    };
}

/// daprd decodes with a streaming decoder: the first JSON value counts and anything after it is
/// ignored.
fn first_json_value(data: &[u8]) -> Option<Value> {
    serde_json::Deserializer::from_slice(data).into_iter::<Value>().next()?.ok()
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
mod tests {
    use serde_json::json;

    use super::*;

    const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const TRACESTATE: &str = "congo=t61rcWkgMzE";

    /// A publish time with a fraction of a second, which `time` and `expiration` drop.
    fn now() -> DateTime<Utc> {
        "2024-05-06T07:08:09.750Z".parse().unwrap()
    }

    fn metadata(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
    }

    fn publication<'a>(
        data: &'a [u8],
        content_type: Option<&'a str>,
        metadata: &'a BTreeMap<String, String>,
    ) -> Publication<'a> {
        Publication {
            pubsub: "orderpubsub",
            topic: "orders",
            publisher_app_id: "checkout",
            data,
            content_type,
            metadata,
            traceparent: Some(TRACEPARENT),
            tracestate: Some(TRACESTATE),
        }
    }

    /// The envelope and the message it travels in.
    fn build(publication: &Publication<'_>) -> (Map<String, Value>, Message) {
        let message = envelope(publication, now()).unwrap();
        assert_eq!(message.content_type, Some(CLOUDEVENT_CONTENT_TYPE));
        (parse_event(&message.payload).unwrap(), message)
    }

    fn assert_uuid_v4(value: &Value) {
        let id = uuid::Uuid::parse_str(value.as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 4, "{id}");
    }

    #[test]
    fn a_new_envelope_has_every_daprd_field() {
        let none = BTreeMap::new();
        let (mut event, message) =
            build(&publication(br#"{"orderId": 1}"#, Some("application/json; charset=utf-8"), &none));
        assert_uuid_v4(&event.remove("id").unwrap());
        assert_eq!(
            Value::Object(event),
            json!({
                "specversion": "1.0",
                "datacontenttype": "application/json; charset=utf-8",
                "source": "checkout",
                "type": "com.dapr.event.sent",
                "topic": "orders",
                "pubsubname": "orderpubsub",
                "traceid": TRACEPARENT,
                "traceparent": TRACEPARENT,
                "tracestate": TRACESTATE,
                "time": "2024-05-06T07:08:09Z",
                "data": {"orderId": 1}
            })
        );
        assert_eq!(message.expiration, None);
    }

    #[test]
    fn each_publication_gets_its_own_id() {
        let none = BTreeMap::new();
        let (first, _) = build(&publication(b"a", None, &none));
        let (second, _) = build(&publication(b"a", None, &none));
        assert_ne!(first["id"], second["id"]);
    }

    #[test]
    fn trace_fields_are_present_even_without_a_trace() {
        let none = BTreeMap::new();
        let untraced = Publication { traceparent: None, tracestate: None, ..publication(b"x", None, &none) };
        let (event, _) = build(&untraced);
        assert_eq!(
            (&event["traceid"], &event["traceparent"], &event["tracestate"]),
            (&json!(""), &json!(""), &json!(""))
        );
    }

    /// daprd does not sniff the body: without a content type, even JSON is text.
    #[test]
    fn data_follows_the_content_type() {
        /// Content type, body, then the expected `datacontenttype`, data field and its value.
        type Case = (Option<&'static str>, &'static [u8], &'static str, &'static str, Value);
        let cases: [Case; 20] = [
            (None, br#"{"a": 1}"#, "text/plain", "data", json!(r#"{"a": 1}"#)),
            (Some(""), b"hello", "text/plain", "data", json!("hello")),
            (Some("application/json"), br#"{"price": 150}"#, "application/json", "data", json!({"price": 150})),
            (
                Some("Application/JSON;charset=utf-8"),
                b"[1, 2.5]",
                "Application/JSON;charset=utf-8",
                "data",
                json!([1, 2.5]),
            ),
            (Some("application/json"), br#""text""#, "application/json", "data", json!("text")),
            (Some("application/json"), br#"{"a": 1} {"b": 2}"#, "application/json", "data", json!({"a": 1})),
            (Some("application/json"), b"not json", "application/json", "data", json!("not json")),
            (Some("application/json"), b"", "application/json", "data", json!("")),
            (Some("application/json ;charset=utf-8"), b"{}", "application/json ;charset=utf-8", "data", json!("{}")),
            (Some("application/merge-patch+json"), b"{}", "application/merge-patch+json", "data", json!("{}")),
            (Some("text/plain"), "héllo ✓".as_bytes(), "text/plain", "data", json!("héllo ✓")),
            (Some("application/xml"), b"<a/>", "application/xml", "data", json!("<a/>")),
            (Some("application/octet-stream"), b"\x00\x01", "application/octet-stream", "data_base64", json!("AAE=")),
            (Some("application/octet-stream"), b"text", "application/octet-stream", "data_base64", json!("dGV4dA==")),
            (
                Some("APPLICATION/OCTET-STREAM; x=y"),
                b"t",
                "APPLICATION/OCTET-STREAM; x=y",
                "data_base64",
                json!("dA=="),
            ),
            (Some("application/x-protobuf"), b"\x08\x01", "application/x-protobuf", "data_base64", json!("CAE=")),
            (
                Some("application/cloudevents+protobuf"),
                b"ab",
                "application/cloudevents+protobuf",
                "data_base64",
                json!("YWI="),
            ),
            (Some("text/plain"), b"\xff\xfe", "text/plain", "data_base64", json!("//4=")),
            (None, b"ok\xc3", "text/plain", "data_base64", json!("b2vD")),
            (Some("application/json"), b"\"\xff\"", "application/json", "data_base64", json!("Iv8i")),
        ];
        let none = BTreeMap::new();
        for (content_type, body, datacontenttype, field, expected) in cases {
            let (event, _) = build(&publication(body, content_type, &none));
            let context = format!("{content_type:?} {}", String::from_utf8_lossy(body));
            assert_eq!(event["datacontenttype"], json!(datacontenttype), "{context}");
            assert_eq!(event[field], expected, "{context}");
            let other = if field == "data" { "data_base64" } else { "data" };
            assert!(!event.contains_key(other), "{context}");
        }
    }

    #[test]
    fn cloudevent_metadata_overrides_fields() {
        let cases = [
            (
                vec![
                    ("cloudevent.id", "override-id"),
                    ("cloudevent.source", "payments"),
                    ("cloudevent.type", "order.paid"),
                    ("cloudevent.subject", "order-7"),
                    ("cloudevent.traceid", "legacy-trace"),
                    ("cloudevent.traceparent", "00-override-01"),
                    ("cloudevent.tracestate", "x=1"),
                ],
                json!({"id": "override-id", "source": "payments", "type": "order.paid", "subject": "order-7",
                    "traceid": "00-override-01", "traceparent": "00-override-01", "tracestate": "x=1"}),
            ),
            // traceid alone sets both trace fields; an empty traceparent does not override it.
            (
                vec![("cloudevent.traceid", "legacy-trace"), ("cloudevent.traceparent", "")],
                json!({"traceid": "legacy-trace", "traceparent": "legacy-trace", "tracestate": TRACESTATE}),
            ),
            // Keys match in any case.
            (
                vec![("CloudEvent.Type", "order.shipped"), ("CLOUDEVENT.SOURCE", "shipping")],
                json!({"type": "order.shipped", "source": "shipping"}),
            ),
            // Present but empty: daprd's defaults apply, and trace fields become empty.
            (
                vec![
                    ("cloudevent.source", ""),
                    ("cloudevent.type", ""),
                    ("cloudevent.traceid", ""),
                    ("cloudevent.tracestate", ""),
                ],
                json!({"source": "Dapr", "type": "com.dapr.event.sent",
                    "traceid": "", "traceparent": "", "tracestate": ""}),
            ),
            // The rest of the envelope cannot be overridden.
            (
                vec![
                    ("cloudevent.topic", "other"),
                    ("cloudevent.pubsubname", "other"),
                    ("cloudevent.datacontenttype", "application/json"),
                    ("cloudevent.data", "other"),
                    ("cloudevent.time", "2000-01-01T00:00:00Z"),
                    ("cloudevent.specversion", "0.3"),
                ],
                json!({"topic": "orders", "pubsubname": "orderpubsub", "datacontenttype": "text/plain", "data": "body",
                    "time": "2024-05-06T07:08:09Z", "specversion": "1.0"}),
            ),
        ];
        for (pairs, expected) in cases {
            let metadata = metadata(&pairs);
            let (event, _) = build(&publication(b"body", None, &metadata));
            for (key, value) in expected.as_object().unwrap() {
                assert_eq!(&event[key], value, "{pairs:?}: {key}");
            }
        }
    }

    #[test]
    fn empty_overrides_fall_back_to_defaults() {
        let metadata = metadata(&[("cloudevent.id", ""), ("cloudevent.subject", "")]);
        let (event, _) = build(&publication(b"body", None, &metadata));
        assert_uuid_v4(&event["id"]);
        assert!(!event.contains_key("subject"));
        let none = BTreeMap::new();
        let anonymous = Publication { publisher_app_id: "", ..publication(b"body", None, &none) };
        assert_eq!(build(&anonymous).0["source"], json!("Dapr"));
    }

    #[test]
    fn a_published_cloudevent_is_kept_and_completed() {
        let body = json!({
            "id": "event-1", "source": "legacy", "type": "order.created", "specversion": "1.0",
            "time": "2023-01-01T00:00:00Z", "subject": "s", "datacontenttype": "text/plain", "data": "world",
            "traceid": "publisher-trace", "myextension": {"nested": true},
            "topic": "wrong", "pubsubname": "wrong"
        });
        let ignored = metadata(&[("cloudevent.type", "ignored"), ("cloudevent.id", "ignored")]);
        let body = body.to_string();
        let (event, _) = build(&publication(body.as_bytes(), Some("application/cloudevents+json"), &ignored));
        assert_eq!(
            Value::Object(event),
            json!({
                "id": "event-1", "source": "legacy", "type": "order.created", "specversion": "1.0",
                "time": "2023-01-01T00:00:00Z", "subject": "s", "datacontenttype": "text/plain", "data": "world",
                "traceid": "publisher-trace", "traceparent": TRACEPARENT, "tracestate": TRACESTATE,
                "myextension": {"nested": true}, "topic": "orders", "pubsubname": "orderpubsub"
            })
        );
    }

    #[test]
    fn a_bare_published_cloudevent_gets_daprd_defaults() {
        let none = BTreeMap::new();
        let body = br#"{"data": {"a": 1}, "source": null, "traceparent": "publisher-parent"}"#;
        let (mut event, _) = build(&publication(body, Some("Application/CloudEvents+JSON; charset=utf-8"), &none));
        assert_uuid_v4(&event.remove("id").unwrap());
        assert_eq!(
            Value::Object(event),
            json!({
                "data": {"a": 1}, "source": "Dapr", "type": "com.dapr.event.sent", "specversion": "1.0",
                "datacontenttype": "application/json", "time": "2024-05-06T07:08:09Z",
                // Without a traceid daprd sets both trace fields, replacing the publisher's traceparent.
                "traceid": TRACEPARENT, "traceparent": TRACEPARENT, "tracestate": TRACESTATE,
                "topic": "orders", "pubsubname": "orderpubsub"
            })
        );
        let binary = br#"{"data_base64": "AAE="}"#;
        let (event, _) = build(&publication(binary, Some(CLOUDEVENT_CONTENT_TYPE), &none));
        assert_eq!(event["datacontenttype"], json!("application/octet-stream"));
    }

    #[test]
    fn a_published_cloudevent_must_be_a_json_object() {
        let none = BTreeMap::new();
        let cases: [(&[u8], &str); 4] =
            [(b"[1]", "an array"), (b"null", "null"), (b"\"event\"", "a string"), (b"{not json", "invalid JSON")];
        for (body, found) in cases {
            let error = envelope(&publication(body, Some(CLOUDEVENT_CONTENT_TYPE), &none), now()).unwrap_err();
            assert_eq!(error, EnvelopeError::NotACloudEvent(found));
            assert_eq!(error.to_string(), format!("not a CloudEvent: expected a JSON object, found {found}"));
        }
    }

    #[test]
    fn raw_payload_skips_the_envelope() {
        let cases = [
            ("true", true),
            ("True", true),
            ("TRUE", true),
            ("t", true),
            ("1", true),
            ("false", false),
            ("F", false),
            ("0", false),
            ("", false),
        ];
        for (value, raw) in cases {
            let metadata = metadata(&[("rawPayload", value)]);
            let message = envelope(&publication(b"\x00raw", Some("application/json"), &metadata), now()).unwrap();
            assert_eq!(message.payload == b"\x00raw", raw, "{value}");
            assert_eq!(message.content_type.is_none(), raw, "{value}");
        }
        // The key is exact in daprd, unlike the cloudevent.* and ttl keys.
        let metadata = metadata(&[("rawpayload", "true")]);
        assert!(envelope(&publication(b"x", None, &metadata), now()).unwrap().content_type.is_some());
    }

    #[test]
    fn invalid_raw_payload_is_an_error() {
        for value in ["yes", "TRUE ", "on"] {
            let metadata = metadata(&[("rawPayload", value)]);
            let error = envelope(&publication(b"x", None, &metadata), now()).unwrap_err();
            assert_eq!(error, EnvelopeError::InvalidRawPayload(value.to_owned()));
        }
    }

    #[test]
    fn ttl_sets_the_expiration() {
        let cases = [
            (vec![("ttlInSeconds", "60")], Some("2024-05-06T07:09:09Z")),
            (vec![("TTLINSECONDS", "60")], Some("2024-05-06T07:09:09Z")),
            (vec![("ttlInSeconds", "+5")], Some("2024-05-06T07:08:14Z")),
            (vec![("ttl", "1m30s")], Some("2024-05-06T07:09:39Z")),
            // 09.75 + 1.5 seconds, to the second.
            (vec![("ttl", "1500ms")], Some("2024-05-06T07:08:11Z")),
            // A Go zero duration: the message expires at once, as in daprd.
            (vec![("ttlInSeconds", "0")], Some("2024-05-06T07:08:09Z")),
            // ttl is read before ttlInSeconds.
            (vec![("ttl", "10s"), ("ttlInSeconds", "99")], Some("2024-05-06T07:08:19Z")),
            (vec![("ttlInSeconds", "")], None),
            (vec![], None),
        ];
        for (pairs, expected) in cases {
            let metadata = metadata(&pairs);
            let (event, message) = build(&publication(b"x", None, &metadata));
            let expected_time = expected.map(|text| text.parse::<DateTime<Utc>>().unwrap());
            assert_eq!(event.get("expiration"), expected.map(Value::from).as_ref(), "{pairs:?}");
            assert_eq!(message.expiration, expected_time, "{pairs:?}");
        }
    }

    #[test]
    fn ttl_is_capped_at_gos_longest_duration() {
        let in_seconds = metadata(&[("ttlInSeconds", "99999999999999")]);
        let longest = metadata(&[("ttl", "2562047h47m16.854775807s")]);
        let capped = envelope(&publication(b"x", None, &in_seconds), now()).unwrap().expiration.unwrap();
        assert_eq!(Some(capped), envelope(&publication(b"x", None, &longest), now()).unwrap().expiration);
        assert_eq!(rfc3339(capped), "2316-08-16T06:55:26Z");
    }

    #[test]
    fn a_raw_payload_keeps_its_ttl_on_the_message() {
        let metadata = metadata(&[("rawPayload", "true"), ("ttlInSeconds", "60")]);
        let message = envelope(&publication(b"x", None, &metadata), now()).unwrap();
        assert_eq!(message.expiration, Some("2024-05-06T07:09:09Z".parse().unwrap()));
    }

    #[test]
    fn invalid_ttl_is_an_error() {
        for (key, value) in [
            ("ttlInSeconds", "abc"),
            ("ttlInSeconds", "-5"),
            ("ttlInSeconds", "00"),
            ("ttl", "1.5"),
            ("ttl", "-5s"),
            ("TTL", "1d"),
        ] {
            let metadata = metadata(&[(key, value)]);
            let error = envelope(&publication(b"x", None, &metadata), now()).unwrap_err();
            assert_eq!(error, EnvelopeError::InvalidTtl { key: key.to_owned(), value: value.to_owned() });
            assert!(error.to_string().starts_with(&format!("metadata {key}='{value}' is not a time to live")));
        }
    }

    #[test]
    fn a_published_expiration_is_kept_unless_a_ttl_replaces_it() {
        let body = br#"{"expiration": "2030-01-01T00:00:00Z"}"#;
        let none = BTreeMap::new();
        let (event, message) = build(&publication(body, Some(CLOUDEVENT_CONTENT_TYPE), &none));
        assert_eq!(event["expiration"], json!("2030-01-01T00:00:00Z"));
        assert_eq!(message.expiration, Some("2030-01-01T00:00:00Z".parse().unwrap()));
        let ttl = metadata(&[("ttlInSeconds", "60")]);
        let (event, message) = build(&publication(body, Some(CLOUDEVENT_CONTENT_TYPE), &ttl));
        assert_eq!(event["expiration"], json!("2024-05-06T07:09:09Z"));
        assert_eq!(message.expiration, Some("2024-05-06T07:09:09Z".parse().unwrap()));
    }

    #[test]
    fn raw_payload_events_are_daprds_synthetic_envelope() {
        let mut event = raw_payload_event(b"\x00\xffraw", "orderpubsub", "orders");
        assert_uuid_v4(&event.remove("id").unwrap());
        assert_eq!(
            Value::Object(event),
            json!({
                "specversion": "1.0", "datacontenttype": "application/octet-stream", "source": "Dapr",
                "type": "com.dapr.event.sent", "topic": "orders", "pubsubname": "orderpubsub", "data_base64": "AP9yYXc="
            })
        );
    }

    #[test]
    fn stored_messages_parse_back_or_say_why_not() {
        let none = BTreeMap::new();
        let message = envelope(&publication(br#"{"a": 1}"#, Some("application/json"), &none), now()).unwrap();
        assert_eq!(parse_event(&message.payload).unwrap()["data"], json!({"a": 1}));
        let cases: [(&[u8], &str); 4] = [
            (b"[]", "an array"),
            (b"42", "a number"),
            (b"\x00raw", "invalid JSON"),
            (br#"{"a": 1} x"#, "invalid JSON"),
        ];
        for (payload, found) in cases {
            assert_eq!(parse_event(payload), Err(EnvelopeError::NotACloudEvent(found)));
        }
    }

    #[test]
    fn expiry_compares_the_expiration_with_now() {
        let cases = [
            (json!("2024-05-06T07:08:09.750Z"), false),
            (json!("2024-05-06T07:08:09.749Z"), true),
            (json!("2024-05-06T07:08:09Z"), true),
            (json!("2024-05-06T07:08:10Z"), false),
            (json!("2024-05-06T09:08:09+02:00"), true),
            (json!("2024-05-06T09:08:10+02:00"), false),
            (json!("2000-01-01T00:00:00Z"), true),
            (json!(""), false),
            (json!("yesterday"), false),
            (json!(1), false),
            (Value::Null, false),
        ];
        for (expiration, expired) in cases {
            let event = Map::from_iter([("expiration".to_owned(), expiration.clone())]);
            assert_eq!(is_expired(&event, now()), expired, "{expiration}");
        }
        assert!(!is_expired(&Map::new(), now()));
    }

    #[test]
    fn match_variables_bind_the_event() {
        let event = Map::from_iter([("type".to_owned(), json!("widget"))]);
        let bound = outrigger_cel::Program::parse("event.type == 'widget'").unwrap();
        assert_eq!(bound.evaluate(&match_variables(&event)), Ok(true));
    }
}
