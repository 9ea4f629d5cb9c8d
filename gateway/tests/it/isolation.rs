//! Two projects with two App IDs each, all using the same store and key names.

use axum::http::StatusCode;
use dapr::dapr::proto::common::v1::StateItem;
use dapr::dapr::proto::runtime::v1 as pb;

use crate::harness::{with_token, TestGateway};

#[tokio::test]
async fn every_tenant_sees_only_its_own_state() {
    let gateway = TestGateway::start().await;
    let callers = [("alpha", "orders"), ("alpha", "billing"), ("beta", "orders"), ("beta", "billing")];
    let mut tokens = Vec::new();
    for (project, app) in callers {
        tokens.push(gateway.app(project, app).await);
    }
    let mut client = gateway.grpc_client().await;

    for (index, token) in tokens.iter().enumerate() {
        let value = format!("value-of-{index}");
        let body = serde_json::json!([{ "key": "shared", "value": value }, { "key": format!("only-{index}"), "value": index }]).to_string();
        assert_eq!(
            gateway.http("POST", "/v1.0/state/kvstore", Some(token), Some(&body)).await.status,
            StatusCode::NO_CONTENT
        );
        let grpc_item =
            StateItem { key: "grpc-shared".into(), value: value.clone().into_bytes(), ..Default::default() };
        client
            .save_state(with_token(
                pb::SaveStateRequest { store_name: "kvstore".into(), states: vec![grpc_item] },
                token,
            ))
            .await
            .unwrap();
    }

    for (index, token) in tokens.iter().enumerate() {
        let expected = format!("\"value-of-{index}\"");
        let got = gateway.http("GET", "/v1.0/state/kvstore/shared", Some(token), None).await;
        assert_eq!(String::from_utf8_lossy(&got.body), expected, "caller {index}");
        let got = client
            .get_state(with_token(
                pb::GetStateRequest { store_name: "kvstore".into(), key: "grpc-shared".into(), ..Default::default() },
                token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.data, format!("value-of-{index}").into_bytes());

        // Every other caller's private key is invisible: single, bulk, and through a transaction.
        let others: Vec<String> =
            (0..tokens.len()).filter(|other| *other != index).map(|other| format!("only-{other}")).collect();
        for key in &others {
            let path = format!("/v1.0/state/kvstore/{key}");
            assert_eq!(
                gateway.http("GET", &path, Some(token), None).await.status,
                StatusCode::NO_CONTENT,
                "{index} reads {key}"
            );
        }
        let bulk = serde_json::json!({ "keys": others }).to_string();
        let items = gateway.http("POST", "/v1.0/state/kvstore/bulk", Some(token), Some(&bulk)).await.json();
        assert!(items.as_array().unwrap().iter().all(|item| item.get("data").is_none()), "{items}");
        let delete_others = serde_json::json!({ "operations": others.iter().map(|key| serde_json::json!({ "operation": "delete", "request": { "key": key } })).collect::<Vec<_>>() }).to_string();
        assert_eq!(
            gateway.http("POST", "/v1.0/state/kvstore/transaction", Some(token), Some(&delete_others)).await.status,
            StatusCode::NO_CONTENT
        );
    }

    // Those deletes touched only the deleting caller's own (absent) keys: everyone's keys are intact.
    for (index, token) in tokens.iter().enumerate() {
        let path = format!("/v1.0/state/kvstore/only-{index}");
        assert_eq!(gateway.http("GET", &path, Some(token), None).await.body, index.to_string().into_bytes());
    }
}

/// A component scoped to other App IDs answers exactly like a component that does not exist.
#[tokio::test]
async fn a_store_out_of_scope_looks_absent() {
    let gateway = TestGateway::start().await;
    let orders = gateway.app("shop", "orders").await;
    let billing = gateway.app("shop", "billing").await;
    let scoped = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: ledger\nspec:\n  type: state.in-memory\n  version: v1\nscopes:\n- orders\n";
    gateway.component("shop", scoped).await;
    let save = r#"[{"key":"k","value":1}]"#;
    assert_eq!(
        gateway.http("POST", "/v1.0/state/ledger", Some(&orders), Some(save)).await.status,
        StatusCode::NO_CONTENT
    );
    let out_of_scope = gateway.http("POST", "/v1.0/state/ledger", Some(&billing), Some(save)).await;
    let absent = gateway.http("POST", "/v1.0/state/nowhere", Some(&billing), Some(save)).await;
    assert_eq!(out_of_scope.status, absent.status);
    assert_eq!(
        String::from_utf8_lossy(&out_of_scope.body).replace("ledger", "X"),
        String::from_utf8_lossy(&absent.body).replace("nowhere", "X")
    );
    let listed = gateway.http("GET", "/v1.0/metadata", Some(&billing), None).await.json();
    assert!(listed["components"].as_array().unwrap().iter().all(|c| c["name"] != "ledger"), "{listed}");
    let mut client = gateway.grpc_client().await;
    let get = |store: &str| pb::GetStateRequest { store_name: store.into(), key: "k".into(), ..Default::default() };
    let hidden = client.get_state(with_token(get("ledger"), &billing)).await.unwrap_err();
    let missing = client.get_state(with_token(get("nowhere"), &billing)).await.unwrap_err();
    assert_eq!(
        (hidden.code(), hidden.message().replace("ledger", "X")),
        (missing.code(), missing.message().replace("nowhere", "X"))
    );
}
