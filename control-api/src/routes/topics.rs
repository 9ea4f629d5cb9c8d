//! `/api/v1/projects/{project}/topics`: the topic explorer of a project's managed `pubsub`. Its topics are those
//! its subscriptions name — `Subscription` documents, open streaming subscriptions, what App IDs answered to
//! `/dapr/subscribe` (where this process delivers), the consumer groups the broker holds for the project (where it
//! can list them per project), and their dead-letter topics — each with, per subscription, the messages its
//! consumer group has not acknowledged and, per dead-letter topic, the messages dead-lettered there. Counts come
//! from the broker ([`crate::ManagedTopics`]), bounded by [`COUNT_LIMIT`] each.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use outrigger_resources::{BuildingBlock, Kind};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::access::ProjectScope;
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::managed::{ExplorerFailure, ManagedTopics};
use crate::AppState;

/// Counts stop here: a count of this value means at least as many.
const COUNT_LIMIT: u64 = 10_000;

/// The most consumer groups read from the broker, and the most subscriptions answered.
const MAX_SUBSCRIPTIONS: usize = 1_000;

/// How a subscription is known.
#[derive(Serialize, ToSchema, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) enum SubscriptionKind {
    /// A `Subscription` document of the project.
    Declarative,
    /// The App ID's answer to `GET /dapr/subscribe`.
    Programmatic,
    /// A streaming subscription open now (`SubscribeTopicEventsAlpha1`).
    Streaming,
    /// A consumer group the broker holds that nothing above names now: a programmatic subscription this process
    /// has not read, or a subscription since removed.
    Group,
}

/// One App ID's subscription to a topic.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TopicSubscriptionOut {
    app_id: String,
    kind: SubscriptionKind,
    /// The `Subscription` document, for a declarative one.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// Where undeliverable messages go.
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_letter_topic: Option<String>,
    /// Messages its consumer group has not acknowledged: not delivered yet, being delivered, or waiting for a
    /// retry. Absent while the group does not exist (no delivery started yet, e.g. the App ID has no app endpoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pending: Option<u64>,
    /// Messages its dead-letter topic keeps (dead-lettered and not yet removed by retention or consumed there).
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_lettered: Option<u64>,
}

/// A topic of the project's managed pubsub.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TopicOut {
    topic: String,
    /// Messages the topic keeps: published and not yet removed (acknowledged by every group, or past retention).
    messages: u64,
    /// The topic is a subscription's dead-letter topic.
    dead_letter: bool,
    subscriptions: Vec<TopicSubscriptionOut>,
}

/// The project's topics.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TopicsOut {
    /// By topic name.
    items: Vec<TopicOut>,
    /// Counts stop at this: a count equal to it means at least as many.
    count_limit: u64,
    /// Whether the broker's own consumer groups were listed (the embedded SQL queue can; on JetStream and Redis
    /// only the subscriptions named above are shown).
    groups_listed: bool,
}

/// A subscription before it is counted.
struct Found {
    topic: String,
    app_id: String,
    kind: SubscriptionKind,
    name: Option<String>,
    dead_letter_topic: Option<String>,
}

impl Found {
    fn streaming(&self) -> bool {
        self.kind == SubscriptionKind::Streaming
    }
}

fn failed(failure: ExplorerFailure) -> ApiError {
    match failure {
        ExplorerFailure::Invalid(message) => ApiError::bad_request("invalid_query", message),
        ExplorerFailure::Unavailable(message) => {
            tracing::warn!(error = %message, "the managed pubsub failed");
            ApiError::store_unavailable(format!("the managed pubsub could not be read: {message}"))
        }
    }
}

/// The managed pubsub component's name (`pubsub`), as the registry declares it.
fn managed_pubsub_name(state: &AppState) -> &'static str {
    state
        .types()
        .managed()
        .find(|declared| declared.building_block == BuildingBlock::PubSub)
        .and_then(|declared| declared.managed_component)
        .unwrap_or("pubsub")
}

/// The topic and dead-letter topic of a declaration on the managed pubsub (a `Subscription` spec or an entry of
/// `/dapr/subscribe`).
fn declared_on(declaration: &Value, pubsub: &str) -> Option<(String, Option<String>)> {
    if declaration.get("pubsubname").and_then(Value::as_str) != Some(pubsub) {
        return None;
    }
    let topic = declaration.get("topic").and_then(Value::as_str).filter(|topic| !topic.is_empty())?;
    let dead_letter =
        declaration.get("deadLetterTopic").and_then(Value::as_str).filter(|topic| !topic.is_empty()).map(str::to_owned);
    Some((topic.to_owned(), dead_letter))
}

/// The entry of topic `name`, made empty when new.
fn topic_of<'t>(topics: &'t mut BTreeMap<String, TopicOut>, name: &str) -> &'t mut TopicOut {
    topics.entry(name.to_owned()).or_insert_with(|| TopicOut {
        topic: name.to_owned(),
        messages: 0,
        dead_letter: false,
        subscriptions: Vec::new(),
    })
}

/// The project's topics on its managed pubsub, their subscriptions, and what each has not acknowledged.
#[utoipa::path(get, path = "/api/v1/projects/{project}/topics", tag = "explorers",
    params(("project" = String, Path)), responses(
        (status = 200, body = TopicsOut),
        (status = 503, description = "The managed pubsub failed", body = crate::ErrorBody)))]
pub(crate) async fn list_topics(
    State(state): State<AppState>,
    Path(_project): Path<String>,
    scope: ProjectScope,
) -> ApiResult<Json<TopicsOut>> {
    let project = &scope.project;
    if !project.managed_pubsub {
        return Err(ApiError::not_found(format!(
            "project '{}' has no managed pubsub: it was created without it, so there are no topics to explore",
            project.name
        )));
    }
    let explorer: Arc<dyn ManagedTopics> = state.options.managed_topics.clone().ok_or_else(|| {
        ApiError::not_found("this control API does not reach the managed pubsub: use the console of an all-in-one or set OUTRIGGER_MANAGED_PUBSUB_URL")
    })?;
    let pubsub = managed_pubsub_name(&state);
    let mut tx = state.store.begin().await?;
    let apps = tx.list_app_ids(&project.id).await?;
    let documents = tx.list_resources(&project.id, Kind::Subscription).await?;
    let mut streams = Vec::new();
    for app in &apps {
        streams.extend(tx.list_stream_subscriptions(&project.id, &app.name).await?);
    }
    drop(tx);

    // Declarations first, as deliveries take them: one subscription per (topic, App ID, push or streaming).
    let mut found: Vec<Found> = Vec::new();
    let mut add = |subscription: Found| {
        let same = |known: &Found| {
            known.topic == subscription.topic
                && known.app_id == subscription.app_id
                && known.streaming() == subscription.streaming()
        };
        if found.len() < MAX_SUBSCRIPTIONS && !found.iter().any(same) {
            found.push(subscription);
        }
    };
    for stored in &documents {
        let Some((topic, dead_letter_topic)) = declared_on(&stored.document.spec, pubsub) else { continue };
        for app in apps.iter().filter(|app| stored.document.applies_to(&app.name)) {
            add(Found {
                topic: topic.clone(),
                app_id: app.name.clone(),
                kind: SubscriptionKind::Declarative,
                name: Some(stored.document.metadata.name.clone()),
                dead_letter_topic: dead_letter_topic.clone(),
            });
        }
    }
    for app in &apps {
        for entry in explorer.programmatic(&project.id, &app.name).unwrap_or_default() {
            let Some((topic, dead_letter_topic)) = declared_on(&entry, pubsub) else { continue };
            let kind = SubscriptionKind::Programmatic;
            add(Found { topic, app_id: app.name.clone(), kind, name: None, dead_letter_topic });
        }
    }
    for stream in streams.into_iter().filter(|stream| stream.pubsub == pubsub) {
        add(Found {
            topic: stream.topic,
            app_id: stream.app_id,
            kind: SubscriptionKind::Streaming,
            name: None,
            dead_letter_topic: stream.dead_letter_topic.filter(|topic| !topic.is_empty()),
        });
    }
    let groups = explorer.groups(&project.id, MAX_SUBSCRIPTIONS).await.map_err(failed)?;
    let groups_listed = groups.is_some();
    for group in groups.unwrap_or_default() {
        let kind = if group.streaming { SubscriptionKind::Streaming } else { SubscriptionKind::Group };
        add(Found { topic: group.topic, app_id: group.app_id, kind, name: None, dead_letter_topic: None });
    }

    // Every topic named, dead-letter topics included, counted once.
    let mut topics: BTreeMap<String, TopicOut> = BTreeMap::new();
    for subscription in &found {
        if let Some(dead_letter_topic) = &subscription.dead_letter_topic {
            topic_of(&mut topics, dead_letter_topic).dead_letter = true;
        }
        topic_of(&mut topics, &subscription.topic);
    }
    for topic in topics.values_mut() {
        topic.messages = explorer.kept_messages(&project.id, &topic.topic, COUNT_LIMIT).await.map_err(failed)?;
    }
    for subscription in found {
        let pending = explorer
            .pending(&project.id, &subscription.topic, &subscription.app_id, subscription.streaming(), COUNT_LIMIT)
            .await
            .map_err(failed)?;
        let dead_lettered =
            subscription.dead_letter_topic.as_ref().and_then(|topic| topics.get(topic)).map(|topic| topic.messages);
        let Some(topic) = topics.get_mut(&subscription.topic) else { continue };
        topic.subscriptions.push(TopicSubscriptionOut {
            app_id: subscription.app_id,
            kind: subscription.kind,
            name: subscription.name,
            dead_letter_topic: subscription.dead_letter_topic,
            pending,
            dead_lettered,
        });
    }
    for topic in topics.values_mut() {
        topic.subscriptions.sort_by(|a, b| (&a.app_id, a.kind).cmp(&(&b.app_id, b.kind)));
    }
    Ok(Json(TopicsOut { items: topics.into_values().collect(), count_limit: COUNT_LIMIT, groups_listed }))
}
