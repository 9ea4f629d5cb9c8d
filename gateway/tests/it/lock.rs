//! The distributed lock API over HTTP and gRPC: daprd's answers and errors, the managed `kvstore` as a lock
//! store, `lock.redis` keeping daprd's keys in a real Redis, and locks kept apart between App IDs and projects.

use axum::http::StatusCode;
use dapr::dapr::proto::runtime::v1 as pb;
use outrigger_store::NewProject;
use serde_json::json;

use crate::harness::{identity, with_token, TestGateway};

/// `POST /v1.0-alpha1/lock/{store}` with `body`.
async fn lock(gateway: &TestGateway, token: &str, store: &str, body: serde_json::Value) -> crate::harness::Answer {
    let path = format!("/v1.0-alpha1/lock/{store}");
    gateway.http("POST", &path, Some(token), Some(&body.to_string())).await
}

/// `POST /v1.0-alpha1/unlock/{store}` with `body`.
async fn unlock(gateway: &TestGateway, token: &str, store: &str, body: serde_json::Value) -> crate::harness::Answer {
    let path = format!("/v1.0-alpha1/unlock/{store}");
    gateway.http("POST", &path, Some(token), Some(&body.to_string())).await
}

/// Whether `owner` took `resource` in `store` for a minute.
async fn took(gateway: &TestGateway, token: &str, store: &str, resource: &str, owner: &str) -> bool {
    let body = json!({"resourceId": resource, "lockOwner": owner, "expiryInSeconds": 60});
    let answer = lock(gateway, token, store, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer.body));
    answer.json()["success"].as_bool().expect("success is a boolean")
}

/// The unlock status `owner` gets for `resource` in `store`.
async fn released(gateway: &TestGateway, token: &str, store: &str, resource: &str, owner: &str) -> i64 {
    let answer = unlock(gateway, token, store, json!({"resourceId": resource, "lockOwner": owner})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer.body));
    answer.json()["status"].as_i64().expect("status is a number")
}

#[tokio::test]
async fn the_managed_kvstore_serves_locks_over_http() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    let answer = lock(
        &gateway,
        &token,
        "kvstore",
        json!({"resourceId": "order-1", "lockOwner": "alice", "expiryInSeconds": 60}),
    )
    .await;
    assert_eq!((answer.status, answer.json()), (StatusCode::OK, json!({"success": true})));
    // daprd writes `false` too, and reads an int32 given as a string, and proto field names.
    let answer = lock(
        &gateway,
        &token,
        "kvstore",
        json!({"resource_id": "order-1", "lock_owner": "bob", "expiryInSeconds": "60"}),
    )
    .await;
    assert_eq!((answer.status, answer.json()), (StatusCode::OK, json!({"success": false})));
    assert!(!took(&gateway, &token, "kvstore", "order-1", "alice").await, "a held lock is not taken again");

    assert_eq!(released(&gateway, &token, "kvstore", "order-1", "bob").await, 2, "LOCK_BELONGS_TO_OTHERS");
    assert_eq!(released(&gateway, &token, "kvstore", "order-1", "alice").await, 0, "SUCCESS");
    assert_eq!(released(&gateway, &token, "kvstore", "order-1", "alice").await, 1, "LOCK_DOES_NOT_EXIST");
    assert!(took(&gateway, &token, "kvstore", "order-1", "bob").await);
    // The managed kvstore is listed once, as the state store it is.
    let metadata = gateway.http("GET", "/v1.0/metadata", Some(&token), None).await.json();
    let names: Vec<_> = metadata["components"].as_array().unwrap().iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names.iter().filter(|name| **name == "kvstore").count(), 1, "{metadata}");
}

#[tokio::test]
async fn bad_lock_requests_get_daprds_errors_and_change_nothing() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    let full = |resource: &str, owner: &str, expiry: serde_json::Value| json!({"resourceId": resource, "lockOwner": owner, "expiryInSeconds": expiry});
    let cases = [
        (
            "kvstore",
            full("r", "alice", json!(0)),
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
            "ExpiryInSeconds is not positive in lock store kvstore",
        ),
        (
            "kvstore",
            full("r", "alice", json!(-5)),
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
            "ExpiryInSeconds is not positive in lock store kvstore",
        ),
        (
            "kvstore",
            full("", "alice", json!(10)),
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
            "ResourceId is empty in lock store kvstore",
        ),
        (
            "kvstore",
            full("r", "", json!(10)),
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
            "LockOwner is empty in lock store kvstore",
        ),
        (
            "nostore",
            full("r", "alice", json!(10)),
            StatusCode::BAD_REQUEST,
            "ERR_LOCK_STORE_NOT_FOUND",
            "lock store nostore not found",
        ),
        (
            "kvstore",
            full("a||r", "alice", json!(10)),
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_TRY_LOCK",
            "failed to try acquiring lock: input key/keyPrefix 'a||r' can't contain '||'",
        ),
    ];
    for (store, body, status, code, message) in cases {
        assert_eq!(lock(&gateway, &token, store, body.clone()).await.dapr_error(status, code), message, "{body}");
    }
    let answer = lock(&gateway, &token, "kvstore", full("r", "alice", json!("soon"))).await;
    assert!(answer.dapr_error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST").contains("expiryInSeconds"));
    let answer = gateway.http("POST", "/v1.0-alpha1/lock/kvstore", Some(&token), Some("{not json")).await;
    answer.dapr_error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
    let answer = unlock(&gateway, &token, "kvstore", json!({"resourceId": "a||r", "lockOwner": "alice"})).await;
    let message = answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_UNLOCK");
    assert_eq!(message, "failed to release lock: input key/keyPrefix 'a||r' can't contain '||'");
    let answer = unlock(&gateway, &token, "kvstore", json!({"resourceId": "r"})).await;
    assert_eq!(
        answer.dapr_error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST"),
        "LockOwner is empty in lock store kvstore"
    );
    // None of them took anything.
    assert!(took(&gateway, &token, "kvstore", "r", "bob").await);

    // A project with no lock store at all.
    let mut tx = gateway.store.begin().await.unwrap();
    let bare = NewProject {
        org_id: outrigger_store::OrgId::default_org(),
        name: "bare".into(),
        managed_kvstore: false,
        managed_pubsub: false,
        pool: outrigger_bus::DEFAULT_POOL.into(),
    };
    let project = tx.create_project(&bare).await.unwrap();
    let (_, bare_token) = tx.create_app_id(&project.id, &identity("orders", None)).await.unwrap();
    tx.commit().await.unwrap();
    let answer = lock(&gateway, &bare_token.token, "kvstore", full("r", "alice", json!(10))).await;
    assert_eq!(
        answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_LOCK_STORE_NOT_CONFIGURED"),
        "lock store is not configured"
    );
}

#[tokio::test]
async fn locks_over_grpc_answer_as_daprd() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    let mut client = gateway.grpc_client().await;
    let try_lock = |resource: &str, owner: &str, expiry: i32| pb::TryLockRequest {
        store_name: "kvstore".into(),
        resource_id: resource.into(),
        lock_owner: owner.into(),
        expiry_in_seconds: expiry,
    };
    let unlock = |resource: &str, owner: &str| pb::UnlockRequest {
        store_name: "kvstore".into(),
        resource_id: resource.into(),
        lock_owner: owner.into(),
    };
    let answer = client.try_lock_alpha1(with_token(try_lock("r", "alice", 30), &token)).await.unwrap();
    assert!(answer.into_inner().success);
    let answer = client.try_lock_alpha1(with_token(try_lock("r", "bob", 30), &token)).await.unwrap();
    assert!(!answer.into_inner().success);
    let status =
        |answer: Result<tonic::Response<pb::UnlockResponse>, tonic::Status>| answer.unwrap().into_inner().status();
    assert_eq!(
        status(client.unlock_alpha1(with_token(unlock("r", "bob"), &token)).await),
        pb::unlock_response::Status::LockBelongsToOthers
    );
    assert_eq!(
        status(client.unlock_alpha1(with_token(unlock("r", "alice"), &token)).await),
        pb::unlock_response::Status::Success
    );
    assert_eq!(
        status(client.unlock_alpha1(with_token(unlock("r", "alice"), &token)).await),
        pb::unlock_response::Status::LockDoesNotExist
    );

    let err = client.try_lock_alpha1(with_token(try_lock("r", "alice", 0), &token)).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (tonic::Code::InvalidArgument, "ExpiryInSeconds is not positive in lock store kvstore")
    );
    let err = client
        .try_lock_alpha1(with_token(
            pb::TryLockRequest { store_name: "nostore".into(), ..try_lock("r", "a", 5) },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.message()), (tonic::Code::InvalidArgument, "lock store nostore not found"));
    let err = client.unlock_alpha1(with_token(unlock("a||b", "alice"), &token)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Internal);
    let err = client.try_lock_alpha1(tonic::Request::new(try_lock("r", "alice", 5))).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
}

/// Locks are the caller's: another App ID of the project (daprd's default `appid` key prefix) and any App ID of
/// another project find nothing of them, whatever resource ID they try.
#[tokio::test]
async fn security_locks_are_invisible_across_app_ids_and_projects() {
    let gateway = TestGateway::start().await;
    let owner_token = gateway.app("shop", "orders").await;
    let neighbour = gateway.app("shop", "payments").await;
    let stranger = gateway.app("rival", "orders").await;
    assert!(took(&gateway, &owner_token, "kvstore", "order-1", "alice").await);
    for token in [&neighbour, &stranger] {
        for resource in ["order-1", "../order-1", "orders/order-1", "%2Forder-1", "order-1 ", "ORDER-1", "ördér-1"] {
            assert_eq!(released(&gateway, token, "kvstore", resource, "alice").await, 1, "{resource} was visible");
        }
        assert!(took(&gateway, token, "kvstore", "order-1", "mallory").await, "another tenant's lock blocked");
    }
    assert_eq!(released(&gateway, &owner_token, "kvstore", "order-1", "alice").await, 0);
}

#[tokio::test]
async fn lock_redis_keeps_daprds_keys_in_redis() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    let other = gateway.app("shop", "payments").await;
    let component = |name: &str, key_prefix: &str, scopes: &str| {
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: lock.redis\n  version: v1\n  metadata:\n  - name: redisHost\n    value: 127.0.0.1:6379\n  - name: keyPrefix\n    value: {key_prefix}\n{scopes}"
        )
    };
    gateway.component("shop", &component("redislock", "appid", "")).await;
    gateway.component("shop", &component("sharedlock", "name", "scopes: [orders]\n")).await;
    let resource = format!("order-{}", uuid::Uuid::new_v4().simple());
    let mut redis =
        redis::Client::open("redis://127.0.0.1:6379").unwrap().get_multiplexed_async_connection().await.unwrap();

    assert!(took(&gateway, &token, "redislock", &resource, "alice").await);
    let key = format!("lock||orders||{resource}");
    let (holder, ttl): (Option<String>, i64) = redis::pipe().get(&key).ttl(&key).query_async(&mut redis).await.unwrap();
    assert_eq!(holder.as_deref(), Some("alice"), "daprd's key {key}");
    assert!((1..=60).contains(&ttl), "ttl {ttl}");
    assert!(took(&gateway, &other, "redislock", &resource, "bob").await, "another App ID has keys of its own");
    assert_eq!(released(&gateway, &token, "redislock", &resource, "bob").await, 2);
    assert_eq!(released(&gateway, &token, "redislock", &resource, "alice").await, 0);
    let holder: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut redis).await.unwrap();
    assert_eq!(holder, None);

    assert!(took(&gateway, &token, "sharedlock", &resource, "alice").await);
    let holder: Option<String> =
        redis::cmd("GET").arg(format!("lock||sharedlock||{resource}")).query_async(&mut redis).await.unwrap();
    assert_eq!(holder.as_deref(), Some("alice"));
    let answer =
        lock(&gateway, &other, "sharedlock", json!({"resourceId": resource, "lockOwner": "bob", "expiryInSeconds": 5}))
            .await;
    answer.dapr_error(StatusCode::BAD_REQUEST, "ERR_LOCK_STORE_NOT_FOUND");
    assert_eq!(released(&gateway, &token, "sharedlock", &resource, "alice").await, 0);
    let _: i64 = redis::cmd("DEL").arg(format!("lock||payments||{resource}")).query_async(&mut redis).await.unwrap();

    let metadata = gateway.http("GET", "/v1.0/metadata", Some(&token), None).await.json();
    let listed = metadata["components"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "redislock" && c["type"] == "lock.redis");
    assert!(listed, "{metadata}");
}
