//! Calls the platform makes to an app: pushing an event (daprd's HTTP delivery semantics) and asking for its
//! programmatic subscriptions.

use std::time::Duration;

use outrigger_outbound::AppChannel;
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

/// POSTs a CloudEvent to `path` and reads the app's verdict: 2xx with `{"status"}` (empty or unreadable
/// body = SUCCESS, unknown status = retry), 404 = drop, anything else = retry.
pub async fn deliver(
    channel: &AppChannel,
    client: &reqwest::Client,
    path: &str,
    event: &Map<String, Value>,
    timeout: Option<Duration>,
) -> Outcome {
    let mut request = channel
        .request(client, reqwest::Method::POST, channel.url(path))
        .header("content-type", "application/cloudevents+json")
        .timeout(timeout.unwrap_or(DELIVERY_TIMEOUT))
        .json(event);
    for header in ["traceparent", "tracestate"] {
        if let Some(value) = event.get(header).and_then(Value::as_str).filter(|value| !value.is_empty()) {
            request = request.header(header, value);
        }
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(err) => return Outcome::Retry(format!("the app did not answer: {err}")),
    };
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Outcome::Drop(format!("the app answered 404 for {path}"));
    }
    if !status.is_success() {
        return Outcome::Retry(format!("the app answered {status}"));
    }
    let body = response.bytes().await.unwrap_or_default();
    let verdict = serde_json::from_slice::<Value>(&body)
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
pub async fn deliver_bulk(
    channel: &AppChannel,
    client: &reqwest::Client,
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
    let whole = |outcome: Outcome| vec![outcome; events.len()];
    let request = channel
        .request(client, reqwest::Method::POST, channel.url(path))
        .timeout(timeout.unwrap_or(DELIVERY_TIMEOUT))
        .json(&body);
    let response = match request.send().await {
        Ok(response) => response,
        Err(err) => return whole(Outcome::Retry(format!("the app did not answer: {err}"))),
    };
    match response.status() {
        reqwest::StatusCode::NOT_FOUND => return whole(Outcome::Drop(format!("the app answered 404 for {path}"))),
        status if !status.is_success() => return whole(Outcome::Retry(format!("the app answered {status}"))),
        _ => {}
    }
    let answer: Value = response.json().await.unwrap_or(Value::Null);
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
    (0..events.len())
        .map(|index| match statuses.get(&index.to_string()).map(String::as_str) {
            Some("SUCCESS") => Outcome::Success,
            Some("DROP") => Outcome::Drop("the app answered DROP".to_owned()),
            Some(other) => Outcome::Retry(format!("the app answered status {other}")),
            None => Outcome::Retry("the app gave this entry no status".to_owned()),
        })
        .collect()
}

/// The app's programmatic subscriptions (`GET /dapr/subscribe`); an app without the route has none.
pub async fn subscriptions(channel: &AppChannel, client: &reqwest::Client) -> Result<Vec<Value>, String> {
    let response = channel
        .request(client, reqwest::Method::GET, channel.url("/dapr/subscribe"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|err| format!("GET /dapr/subscribe failed: {err}"))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(Vec::new());
    }
    if !response.status().is_success() {
        return Err(format!("GET /dapr/subscribe answered {}", response.status()));
    }
    match response.json::<Value>().await {
        Ok(Value::Array(entries)) => Ok(entries),
        Ok(Value::Null) => Ok(Vec::new()),
        Ok(_) => Err("GET /dapr/subscribe did not answer a JSON array".to_owned()),
        Err(err) => Err(format!("GET /dapr/subscribe answered something unreadable: {err}")),
    }
}
