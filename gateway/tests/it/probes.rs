use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::Router;
use dapr::dapr::proto::runtime::v1 as pb;
use outrigger_gateway::extended_metadata::{MAX_KEYS, MAX_KEY_BYTES, MAX_VALUE_BYTES};
use serde_json::json;

use crate::harness::{request, with_token, TestGateway};

#[tokio::test]
async fn health_probes_answer_204_without_a_token() {
    let gateway = TestGateway::start().await;
    for path in
        ["/v1.0/healthz", "/v1.0/healthz/outbound", "//v1.0/healthz", "/v1.0/healthz/", "//v1.0//healthz/outbound/"]
    {
        assert_eq!(gateway.http("GET", path, None, None).await.status, StatusCode::NO_CONTENT, "{path}");
    }
}

#[tokio::test]
async fn unserved_api_answers_dapr_unimplemented() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    let answer = gateway.http("GET", "/v1.0/actors/cart/1/state/total", Some(&token), None).await;
    let message = answer.dapr_error(StatusCode::NOT_IMPLEMENTED, "ERR_API_UNIMPLEMENTED");
    assert!(message.contains("/v1.0/actors/cart/1/state/total"), "{message}");
}

/// daprd checks the token before its routes: an unserved path or rpc is refused, not described, to a caller
/// without a valid token.
#[tokio::test]
async fn unserved_api_refuses_a_caller_without_a_token_first() {
    let gateway = TestGateway::start().await;
    gateway.app("demo", "orders").await;
    for token in [None, Some("ort_wrong")] {
        for path in ["/v1.0/actors/cart/1/state/total", "/no/such/api"] {
            let answer = gateway.http("GET", path, token, None).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path} with {token:?}");
        }
    }
    let mut grpc = gateway.grpc_client().await;
    let lock = pb::TryLockRequest { store_name: "lockstore".into(), resource_id: "r".into(), ..Default::default() };
    let err = grpc.try_lock_alpha1(tonic::Request::new(lock.clone())).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    let err = grpc.try_lock_alpha1(with_token(lock, "ort_wrong")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
}

#[tokio::test]
async fn metadata_names_the_caller_and_its_components() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    for path in ["/v1.0/metadata", "//v1.0/metadata/"] {
        let answer = gateway.http("GET", path, Some(&token), None).await;
        assert_eq!(answer.status, StatusCode::OK);
        let body = answer.json();
        assert_eq!(body["id"], "orders");
        let kvstore =
            body["components"].as_array().unwrap().iter().find(|c| c["name"] == "kvstore").expect("kvstore listed");
        assert_eq!(kvstore["type"], "state.outrigger");
        assert!(kvstore["capabilities"].as_array().unwrap().iter().any(|c| c == "ETAG"), "{body}");
    }
}

#[tokio::test]
async fn shutdown_is_acknowledged_and_the_gateway_keeps_serving() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    assert_eq!(gateway.http("POST", "/v1.0/shutdown", None, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(gateway.http("POST", "/v1.0/shutdown", Some(&token), None).await.status, StatusCode::NO_CONTENT);
    let mut grpc = gateway.grpc_client().await;
    grpc.shutdown(with_token(pb::ShutdownRequest {}, &token)).await.expect("Shutdown");
    assert_eq!(gateway.http("GET", "/v1.0/metadata", Some(&token), None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn extended_metadata_is_the_callers_own_and_every_gateway_shows_it() {
    let gateway = TestGateway::start().await;
    let orders = gateway.app("demo", "orders").await;
    let billing = gateway.app("demo", "billing").await;
    let namesake = gateway.app("other", "orders").await;
    let extended = |router: &Router, token: &str| {
        let (router, token) = (router.clone(), token.to_owned());
        async move { request(&router, "GET", "/v1.0/metadata", Some(&token), None, &[]).await.json()["extended"].clone() }
    };

    let set = gateway.http("PUT", "/v1.0/metadata/team", Some(&orders), Some("payments")).await;
    assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&set.body));
    let mut grpc = gateway.grpc_client().await;
    let request_tier = pb::SetMetadataRequest { key: "tier".into(), value: "gold".into() };
    grpc.set_metadata(with_token(request_tier, &orders)).await.expect("SetMetadata");
    let replaced = gateway.http("PUT", "/v1.0/metadata/team", Some(&orders), Some("ledger")).await;
    assert_eq!(replaced.status, StatusCode::NO_CONTENT);

    let expected = json!({ "team": "ledger", "tier": "gold" });
    assert_eq!(extended(&gateway.http, &orders).await, expected);
    assert_eq!(extended(&gateway.another_gateway(), &orders).await, expected, "another gateway");
    let over_grpc = grpc.get_metadata(with_token(pb::GetMetadataRequest {}, &orders)).await.unwrap().into_inner();
    let over_grpc: BTreeMap<_, _> = over_grpc.extended_metadata.into_iter().collect();
    assert_eq!(over_grpc, BTreeMap::from([("team".into(), "ledger".into()), ("tier".into(), "gold".into())]));
    // Another App ID of the project, and the App ID of the same name in another project, have none of it.
    assert_eq!(extended(&gateway.http, &billing).await, json!({}));
    assert_eq!(extended(&gateway.http, &namesake).await, json!({}));

    // Refused, and nothing changes: an oversized key or value, a key past the limit of keys.
    let long_key = format!("/v1.0/metadata/{}", "k".repeat(MAX_KEY_BYTES + 1));
    gateway
        .http("PUT", &long_key, Some(&orders), Some("v"))
        .await
        .dapr_error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
    let long_value = "v".repeat(MAX_VALUE_BYTES + 1);
    let answer = gateway.http("PUT", "/v1.0/metadata/team", Some(&orders), Some(&long_value)).await;
    answer.dapr_error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
    let bad_grpc =
        grpc.set_metadata(with_token(pb::SetMetadataRequest { key: String::new(), value: "v".into() }, &orders)).await;
    assert_eq!(bad_grpc.expect_err("an empty key").code(), tonic::Code::InvalidArgument);
    assert_eq!(extended(&gateway.http, &orders).await, expected, "a refused write changed the metadata");
    for n in 2..MAX_KEYS {
        let path = format!("/v1.0/metadata/key{n}");
        assert_eq!(gateway.http("PUT", &path, Some(&orders), Some("v")).await.status, StatusCode::NO_CONTENT, "{path}");
    }
    let past = gateway.http("PUT", "/v1.0/metadata/one-too-many", Some(&orders), Some("v")).await;
    let message = past.dapr_error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
    assert!(message.contains(&MAX_KEYS.to_string()), "{message}");
    let existing = gateway.http("PUT", "/v1.0/metadata/tier", Some(&orders), Some("silver")).await;
    assert_eq!(existing.status, StatusCode::NO_CONTENT, "a key the App ID has can still be set at the limit");

    // It goes with the App ID: one created again under the same name starts without it.
    let mut tx = gateway.store.begin().await.unwrap();
    let project = tx.project(&outrigger_store::OrgId::default_org(), "demo").await.unwrap();
    tx.delete_app_id(&project.id, "orders").await.unwrap();
    tx.commit().await.unwrap();
    let again = gateway.app("demo", "orders").await;
    assert_eq!(extended(&gateway.http, &again).await, json!({}));
}
