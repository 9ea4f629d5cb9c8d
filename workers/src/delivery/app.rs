//! Calls the platform makes to an app: pushing an event (daprd's HTTP delivery semantics) and asking for its
//! programmatic subscriptions.

use std::time::Duration;

use outrigger_outbound::{AppAnswer, AppCall, AppCallError, AppChannel, AppClient};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};

use crate::app_calls::ToApp;
use outrigger_telemetry::trace::{Hop, KeyValue, SpanKind, TRACEPARENT, TRACESTATE};
use serde_json::{Map, Value};

/// What the app said about an event (daprd `pkg/runtime/subscription/postman/http`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Processed: never again.
    Success,
    /// Try again later.
    Retry(String),
    /// Do not try again (dead-letter it if the subscription has a dead-letter topic).
    Drop(String),
}

/// How long one delivery may take, without a Resiliency timeout, before it counts as failed (and is retried).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// POSTs a CloudEvent (`event`, written as `body`) to `path` and reads the app's verdict: 2xx with
/// `{"status"}` (empty or unreadable body = SUCCESS, unknown status = retry), 404 = drop, anything else = retry.
pub(crate) async fn deliver(
    (channel, to): (&AppChannel, &ToApp<'_>),
    client: &AppClient,
    path: &str,
    (event, body): (&Map<String, Value>, Vec<u8>),
    timeout: Option<Duration>,
) -> Outcome {
    let mut request = channel
        .call(Method::POST, path, timeout.unwrap_or(DELIVERY_TIMEOUT))
        .body("application/cloudevents+json", body);
    let field = |name: &str| event.get(name).and_then(Value::as_str).filter(|value| !value.is_empty());
    // The delivery is a span of the publisher's trace; the app gets it as its parent. An event without a valid
    // trace context is passed on as it came.
    let hop = delivery_hop(event);
    match &hop {
        Some(hop) => request = traced(request, hop),
        None => {
            for (name, field_name) in [(TRACEPARENT, "traceparent"), (TRACESTATE, "tracestate")] {
                if let Some(value) = field(field_name).and_then(|value| HeaderValue::from_str(value).ok()) {
                    request = request.header(name, value);
                }
            }
        }
    }
    let outcome = verdict(to.send(client, request, hop.as_ref().map(Hop::ids)).await, path);
    if let Some(hop) = hop {
        let (pubsub, topic) = (field("pubsubname").unwrap_or_default(), field("topic").unwrap_or_default());
        finish_delivery_span(hop, (pubsub, topic), &outcome);
    }
    outcome
}

/// The delivery span of an event (daprd's `pubsub/<topic>`, a CLIENT span as its internal callbacks are), a
/// child of the event's `traceparent`; `None` when the event carries no valid one.
fn delivery_hop(event: &Map<String, Value>) -> Option<Hop> {
    let field = |name: &str| event.get(name).and_then(Value::as_str).filter(|value| !value.is_empty());
    Hop::continuing(field("traceparent")?, field("tracestate"))
}

/// `request` carrying `hop`'s trace context.
fn traced(request: AppCall, hop: &Hop) -> AppCall {
    let request = request.header(TRACEPARENT, hop.ids().traceparent_header());
    match hop.tracestate().and_then(|state| HeaderValue::from_str(state).ok()) {
        Some(state) => request.header(TRACESTATE, state),
        None => request,
    }
}

/// Ends a delivery span with the app's verdict on its event.
fn finish_delivery_span(hop: Hop, (pubsub, topic): (&str, &str), outcome: &Outcome) {
    if !hop.recorded() {
        return;
    }
    let attributes = vec![
        KeyValue::new("messaging.system", "pubsub"),
        KeyValue::new("messaging.destination.name", topic.to_owned()),
        KeyValue::new("db.name", pubsub.to_owned()),
    ];
    let error = match outcome {
        Outcome::Success => None,
        Outcome::Retry(reason) | Outcome::Drop(reason) => Some(reason.clone()),
    };
    hop.finish(format!("pubsub/{topic}"), SpanKind::Client, attributes, error);
}

/// The app's verdict on one delivered event, from its answer to the POST of `path`.
fn verdict(sent: Result<AppAnswer, AppCallError>, path: &str) -> Outcome {
    let answer = match sent {
        Ok(answer) => answer,
        Err(err) => return Outcome::Retry(format!("the app did not answer: {err}")),
    };
    let status = answer.status;
    if status == StatusCode::NOT_FOUND {
        return Outcome::Drop(format!("the app answered 404 for {path}"));
    }
    if !status.is_success() {
        return Outcome::Retry(format!("the app answered {status}"));
    }
    let verdict = serde_json::from_slice::<Value>(&answer.body)
        .ok()
        .and_then(|body| body.get("status").and_then(Value::as_str).map(str::to_ascii_uppercase));
    match verdict.as_deref() {
        None | Some("") | Some("SUCCESS") => Outcome::Success,
        Some("DROP") => Outcome::Drop("the app answered DROP".to_owned()),
        Some(other) => Outcome::Retry(format!("the app answered status {other}")),
    }
}

/// POSTs a batch in daprd's bulk envelope and reads one verdict per event: `{"statuses":[{"entryId",
/// "status"}]}`; an entry without a status is retried, a failed request is retried whole (404: dropped).
///
/// Each event with a trace context gets its delivery span, as daprd makes them; the request carries the last
/// one's context, as daprd's does.
pub(crate) async fn deliver_bulk(
    (channel, to): (&AppChannel, &ToApp<'_>),
    client: &AppClient,
    path: &str,
    (pubsub, topic): (&str, &str),
    events: &[&Map<String, Value>],
    timeout: Option<Duration>,
) -> Vec<Outcome> {
    let entries: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            serde_json::json!({
                "entryId": index.to_string(),
                "event": event,
                "contentType": "application/cloudevents+json",
                "metadata": {},
            })
        })
        .collect();
    let body = serde_json::json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "entries": entries,
        "metadata": {},
        "pubsubname": pubsub,
        "topic": topic,
        "type": "com.dapr.event.sent.bulk",
    });
    let hops: Vec<Option<Hop>> = events.iter().map(|event| delivery_hop(event)).collect();
    let mut request = channel.call(Method::POST, path, timeout.unwrap_or(DELIVERY_TIMEOUT)).json(&body);
    let last = hops.iter().rev().flatten().next();
    if let Some(last) = last {
        request = traced(request, last);
    }
    let outcomes = bulk_verdicts(to.send(client, request, last.map(Hop::ids)).await, path, events.len());
    for (hop, outcome) in hops.into_iter().zip(&outcomes) {
        if let Some(hop) = hop {
            finish_delivery_span(hop, (pubsub, topic), outcome);
        }
    }
    outcomes
}

/// The app's verdict on each of `count` events, from its answer to the bulk POST of `path`.
fn bulk_verdicts(sent: Result<AppAnswer, AppCallError>, path: &str, count: usize) -> Vec<Outcome> {
    let whole = |outcome: Outcome| vec![outcome; count];
    let answer = match sent {
        Ok(answer) => answer,
        Err(err) => return whole(Outcome::Retry(format!("the app did not answer: {err}"))),
    };
    match answer.status {
        StatusCode::NOT_FOUND => return whole(Outcome::Drop(format!("the app answered 404 for {path}"))),
        status if !status.is_success() => return whole(Outcome::Retry(format!("the app answered {status}"))),
        _ => {}
    }
    let answer: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let statuses: std::collections::HashMap<String, String> = answer["statuses"]
        .as_array()
        .map(|statuses| {
            statuses
                .iter()
                .filter_map(|status| {
                    Some((status["entryId"].as_str()?.to_owned(), status["status"].as_str()?.to_ascii_uppercase()))
                })
                .collect()
        })
        .unwrap_or_default();
    (0..count)
        .map(|index| match statuses.get(&index.to_string()).map(String::as_str) {
            Some("SUCCESS") => Outcome::Success,
            Some("DROP") => Outcome::Drop("the app answered DROP".to_owned()),
            Some(other) => Outcome::Retry(format!("the app answered status {other}")),
            None => Outcome::Retry("the app gave this entry no status".to_owned()),
        })
        .collect()
}

/// The app's programmatic subscriptions (`GET /dapr/subscribe`); an app without the route has none.
pub async fn subscriptions(channel: &AppChannel, client: &AppClient) -> Result<Vec<Value>, String> {
    let answer = client
        .send(channel.call(Method::GET, "/dapr/subscribe", Duration::from_secs(10)))
        .await
        .map_err(|err| format!("GET /dapr/subscribe failed: {err}"))?;
    if answer.status == StatusCode::NOT_FOUND {
        return Ok(Vec::new());
    }
    if !answer.status.is_success() {
        return Err(format!("GET /dapr/subscribe answered {}", answer.status));
    }
    match serde_json::from_slice::<Value>(&answer.body) {
        Ok(Value::Array(entries)) => Ok(entries),
        Ok(Value::Null) => Ok(Vec::new()),
        Ok(_) => Err("GET /dapr/subscribe did not answer a JSON array".to_owned()),
        Err(err) => Err(format!("GET /dapr/subscribe answered something unreadable: {err}")),
    }
}

/// How long the `OPTIONS` probe of an input binding's route may take (daprd's `app-binding-options-timeout`).
const BINDING_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether the app takes the events of the input binding served at `path`: daprd's start-up probe, an `OPTIONS`
/// request answered 2xx or 405 when the app listens. An app that does not answer at all is an error.
pub async fn takes_binding_events(channel: &AppChannel, client: &AppClient, path: &str) -> Result<bool, String> {
    let probe = channel.call(Method::OPTIONS, path, BINDING_PROBE_TIMEOUT).body("application/json", Vec::new());
    let answer = client.send(probe).await.map_err(|err| {
        format!("could not invoke OPTIONS method on input binding subscription endpoint {path}: {err}")
    })?;
    Ok(answer.status.is_success() || answer.status == StatusCode::METHOD_NOT_ALLOWED)
}

/// Headers daprd does not pass on from an input binding event's metadata (hop-by-hop, and the body's own).
const NOT_PASSED_ON: [&str; 9] = [
    "content-type",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "host",
];

/// POSTs one input binding event to `path` as daprd does: the data as the body (`application/json`), each
/// metadata entry as a lower-cased header. Accepted when the app answers 2xx.
///
/// The event is a span of its own (daprd's `bindings/<name>`): a child of the trace the event's metadata carries
/// (`traceparent`, `tracestate`), or the first span of a trace sampled at `sampling_rate` (the App ID's); the
/// app receives its context.
pub(crate) async fn deliver_binding_event(
    (channel, to): (&AppChannel, &ToApp<'_>),
    client: &AppClient,
    path: &str,
    (data, metadata): (Vec<u8>, &std::collections::BTreeMap<String, String>),
    sampling_rate: f64,
) -> Result<(), String> {
    let mut request = channel.call(Method::POST, path, DELIVERY_TIMEOUT).body("application/json", data);
    let field = |name: &str| metadata.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value);
    let (traceparent, tracestate) = (field("traceparent").map(String::as_str), field("tracestate").map(String::as_str));
    let hop = (sampling_rate > 0.0).then(|| Hop::arriving(traceparent, tracestate, sampling_rate)).flatten();
    for (name, value) in metadata {
        let name = name.to_ascii_lowercase();
        // The span's own context replaces the one the event carried.
        let replaced = hop.is_some() && name == "traceparent";
        if replaced || NOT_PASSED_ON.contains(&name.as_str()) || name.ends_with("-bin") {
            continue;
        }
        let name = match name.strip_prefix("grpc-") {
            Some(rest) => format!("dapr-grpc-{rest}"),
            None => name,
        };
        let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) else {
            continue;
        };
        request = request.header(name, value);
    }
    if let Some(hop) = &hop {
        request = request.header(TRACEPARENT, hop.ids().traceparent_header());
    }
    let outcome = match to.send(client, request, hop.as_ref().map(Hop::ids)).await {
        Err(err) => Err(format!("error invoking app: {err}")),
        Ok(answer) if answer.status.is_success() => Ok(()),
        Ok(answer) => Err(format!(
            "fails to send binding event to http app channel, status code: {} body: {}",
            answer.status.as_u16(),
            String::from_utf8_lossy(&answer.body)
        )),
    };
    if let Some(hop) = hop.filter(Hop::recorded) {
        let component = to.component.unwrap_or_default().to_owned();
        let attributes = vec![
            // The project's internal id: the worker knows no project names here.
            KeyValue::new("outrigger.project_id", to.project_id.as_str().to_owned()),
            KeyValue::new("outrigger.app_id", to.app_id.to_owned()),
            KeyValue::new("db.name", component.clone()),
        ];
        hop.finish(format!("bindings/{component}"), SpanKind::Client, attributes, outcome.clone().err());
    }
    outcome
}
