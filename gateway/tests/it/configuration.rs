//! The configuration API over HTTP and gRPC on the managed `configstore` and on `configuration.redis`: reads,
//! gRPC subscription streams, HTTP subscriptions POSTing to the app, unsubscribing, daprd's errors, and
//! projects kept apart.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use dapr::dapr::proto::runtime::v1 as pb;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use crate::harness::{identity, serve, with_token, TestGateway};

/// Long enough for a change to arrive on a loaded machine; a subscription that never delivers fails by then.
const ARRIVES_WITHIN: Duration = Duration::from_secs(15);

/// Sets `key` of the project's managed configuration store, as the control API does, and announces it.
async fn set_item(gateway: &TestGateway, project: &str, key: &str, value: &str) {
    let mut tx = gateway.store.begin().await.unwrap();
    let found = tx.project(&outrigger_store::OrgId::default_org(), project).await.unwrap();
    tx.set_configuration_item(&found.id, key, value, &BTreeMap::new()).await.unwrap();
    tx.touch_project(&found.id).await.unwrap();
    tx.commit().await.unwrap();
    gateway.changed(project).await;
}

async fn delete_item(gateway: &TestGateway, project: &str, key: &str) {
    let mut tx = gateway.store.begin().await.unwrap();
    let found = tx.project(&outrigger_store::OrgId::default_org(), project).await.unwrap();
    tx.delete_configuration_item(&found.id, key).await.unwrap();
    tx.commit().await.unwrap();
    gateway.changed(project).await;
}

#[tokio::test]
async fn the_managed_configstore_is_read_over_http() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    set_item(&gateway, "shop", "color", "blue").await;
    set_item(&gateway, "shop", "color", "green").await;
    set_item(&gateway, "shop", "size", "large").await;

    let answer = gateway.http("GET", "/v1.0/configuration/configstore?key=color&key=absent", Some(&token), None).await;
    assert_eq!((answer.status, answer.json()), (StatusCode::OK, json!({"color": {"value": "green", "version": "2"}})));
    let all = gateway.http("GET", "/v1.0-alpha1/configuration/configstore", Some(&token), None).await;
    assert_eq!(
        all.json(),
        json!({"color": {"value": "green", "version": "2"}, "size": {"value": "large", "version": "1"}})
    );
    let none = gateway.http("GET", "/v1.0/configuration/configstore?key=absent", Some(&token), None).await;
    assert_eq!((none.status, none.body.len()), (StatusCode::NO_CONTENT, 0));
    let unknown = gateway.http("GET", "/v1.0/configuration/nostore?key=color", Some(&token), None).await;
    let message = unknown.dapr_error(StatusCode::BAD_REQUEST, "ERR_CONFIGURATION_STORE_NOT_FOUND");
    assert_eq!(message, "configuration store nostore not found");

    // Another project's store is its own: it has none of these items.
    let stranger = gateway.app("rival", "orders").await;
    let answer = gateway.http("GET", "/v1.0/configuration/configstore?key=color", Some(&stranger), None).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let metadata = gateway.http("GET", "/v1.0/metadata", Some(&token), None).await.json();
    let listed = metadata["components"].as_array().unwrap().iter().any(|c| c["name"] == "configstore");
    assert!(listed, "{metadata}");
}

#[tokio::test]
async fn a_grpc_subscription_streams_changes_until_unsubscribed() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    let stranger = gateway.app("rival", "orders").await;
    set_item(&gateway, "shop", "color", "blue").await;
    let mut client = gateway.grpc_client().await;

    let read = pb::GetConfigurationRequest {
        store_name: "configstore".into(),
        keys: vec!["color".into()],
        ..Default::default()
    };
    let items = client.get_configuration(with_token(read.clone(), &token)).await.unwrap().into_inner().items;
    assert_eq!((items["color"].value.as_str(), items["color"].version.as_str()), ("blue", "1"));
    let items = client.get_configuration_alpha1(with_token(read, &token)).await.unwrap().into_inner().items;
    assert_eq!(items.len(), 1);

    let subscribe = pb::SubscribeConfigurationRequest {
        store_name: "configstore".into(),
        keys: vec!["color".into()],
        ..Default::default()
    };
    let mut stream = client.subscribe_configuration(with_token(subscribe, &token)).await.unwrap().into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.id.is_empty() && first.items.is_empty(), "the first message carries the id only: {first:?}");

    set_item(&gateway, "shop", "size", "large").await;
    set_item(&gateway, "shop", "color", "green").await;
    let update =
        tokio::time::timeout(ARRIVES_WITHIN, stream.next()).await.expect("the change arrives").unwrap().unwrap();
    assert_eq!(update.id, first.id);
    assert_eq!(update.items.keys().collect::<Vec<_>>(), ["color"], "only the key subscribed to");
    assert_eq!((update.items["color"].value.as_str(), update.items["color"].version.as_str()), ("green", "2"));
    delete_item(&gateway, "shop", "color").await;
    let removed =
        tokio::time::timeout(ARRIVES_WITHIN, stream.next()).await.expect("the removal arrives").unwrap().unwrap();
    assert_eq!(removed.items["color"].value, "", "a removed key arrives as an empty item");

    let foreign = pb::UnsubscribeConfigurationRequest { store_name: "configstore".into(), id: first.id.clone() };
    let answer = client.unsubscribe_configuration(with_token(foreign.clone(), &stranger)).await.unwrap().into_inner();
    assert!(!answer.ok && answer.message.contains("subscription does not exist"), "{answer:?}");
    let answer = client.unsubscribe_configuration(with_token(foreign, &token)).await.unwrap().into_inner();
    assert!(answer.ok, "{answer:?}");
    let ended = tokio::time::timeout(ARRIVES_WITHIN, stream.next()).await.expect("the stream ends");
    assert!(ended.is_none(), "{ended:?}");

    let unknown = pb::SubscribeConfigurationRequest { store_name: "nostore".into(), ..Default::default() };
    let err = client.subscribe_configuration(with_token(unknown, &token)).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (tonic::Code::InvalidArgument, "configuration store nostore not found"));
}

/// What an app receives at `/configuration/{store}/{key}`.
async fn app_receiving_updates() -> (String, mpsc::UnboundedReceiver<(String, String, Value)>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/configuration/{store}/{key}",
            post(
                |State(sender): State<mpsc::UnboundedSender<(String, String, Value)>>,
                 Path((store, key)): Path<(String, String)>,
                 Json(body): Json<Value>| async move {
                    sender.send((store, key, body)).unwrap();
                    StatusCode::OK
                },
            ),
        )
        .with_state(sender);
    (serve(app).await, receiver)
}

#[tokio::test]
async fn an_http_subscription_posts_changes_to_the_app() {
    let gateway = TestGateway::start().await;
    let (endpoint, mut received) = app_receiving_updates().await;
    // The app refuses every invocation: its access control governs apps calling it, not the platform's updates.
    let no_endpoint = gateway.app("shop", "cli").await;
    let locked = "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: locked\nspec:\n  accessControl:\n    defaultAction: deny\n    trustDomain: public\n";
    gateway.component("shop", locked).await;
    let mut orders = identity("orders", Some(endpoint));
    orders.config = Some("locked".into());
    let token = gateway.register("shop", &orders).await;
    set_item(&gateway, "shop", "color", "blue").await;

    let refused =
        gateway.http("GET", "/v1.0/configuration/configstore/subscribe?key=color", Some(&no_endpoint), None).await;
    assert!(refused.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_APP_CHANNEL_NIL").contains("app channel"));

    let answer = gateway.http("GET", "/v1.0/configuration/configstore/subscribe?key=color", Some(&token), None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let id = answer.json()["id"].as_str().unwrap().to_owned();
    set_item(&gateway, "shop", "color", "green").await;
    let (store, key, body) =
        tokio::time::timeout(ARRIVES_WITHIN, received.recv()).await.expect("the app is told").unwrap();
    assert_eq!((store.as_str(), key.as_str()), ("configstore", "color"));
    assert_eq!(body, json!({"id": id, "items": {"color": {"value": "green", "version": "2"}}}));

    let stranger = gateway.app("rival", "orders").await;
    let path = format!("/v1.0/configuration/configstore/{id}/unsubscribe");
    let foreign = gateway.http("GET", &path, Some(&stranger), None).await;
    assert_eq!(foreign.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(foreign.json()["message"].as_str().unwrap().contains("subscription does not exist"));
    let answer = gateway.http("GET", &path, Some(&token), None).await;
    assert_eq!((answer.status, answer.json()), (StatusCode::OK, json!({"ok": true})));
    let again = gateway.http("GET", &path, Some(&token), None).await;
    assert_eq!(again.status, StatusCode::INTERNAL_SERVER_ERROR, "an ended subscription is gone");
}

#[tokio::test]
async fn configuration_redis_reads_daprds_items() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    let component = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: redisconfig\nspec:\n  type: configuration.redis\n  version: v1\n  metadata:\n  - name: redisHost\n    value: 127.0.0.1:6379\n";
    gateway.component("shop", component).await;
    let key = format!("orderId-{}", uuid::Uuid::new_v4().simple());
    let redis = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SET").arg(&key).arg("101||1").query_async::<()>(&mut connection).await.unwrap();
    let answer = gateway.http("GET", &format!("/v1.0/configuration/redisconfig?key={key}"), Some(&token), None).await;
    assert_eq!(answer.json(), json!({ key.clone(): {"value": "101", "version": "1"} }));
    redis::cmd("DEL").arg(&key).query_async::<()>(&mut connection).await.unwrap();
}
