use dapr::dapr::proto::common::v1::{state_options::StateConcurrency, Etag, StateItem, StateOptions};
use dapr::dapr::proto::runtime::v1 as pb;
use prost::Message;

use crate::harness::{with_token, TestGateway};

fn item(key: &str, value: &[u8]) -> StateItem {
    StateItem { key: key.into(), value: value.to_vec(), ..Default::default() }
}

fn save(store: &str, items: Vec<StateItem>) -> pb::SaveStateRequest {
    pb::SaveStateRequest { store_name: store.into(), states: items }
}

fn get(store: &str, key: &str) -> pb::GetStateRequest {
    pb::GetStateRequest { store_name: store.into(), key: key.into(), ..Default::default() }
}

#[tokio::test]
async fn state_round_trip_over_grpc() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    let mut client = gateway.grpc_client().await;

    client.save_state(with_token(save("kvstore", vec![item("k", b"v1")]), &token)).await.unwrap();
    let got = client.get_state(with_token(get("kvstore", "k"), &token)).await.unwrap().into_inner();
    assert_eq!(got.data, b"v1");
    assert!(!got.etag.is_empty());
    // Over HTTP the bytes come back as stored, labelled JSON whatever they are, as daprd's respondWithData does.
    let over_http = gateway.http("GET", "/v1.0/state/kvstore/k", Some(&token), None).await;
    assert_eq!(over_http.body, b"v1");
    assert_eq!(over_http.headers["content-type"], "application/json");

    let missing = client.get_state(with_token(get("kvstore", "nope"), &token)).await.unwrap().into_inner();
    assert_eq!(missing, pb::GetStateResponse::default(), "a missing key is an empty answer");

    let stale = StateItem { etag: Some(Etag { value: "99999".into() }), ..item("k", b"v2") };
    let err = client.save_state(with_token(save("kvstore", vec![stale]), &token)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Aborted);

    let first_write = StateOptions { concurrency: StateConcurrency::ConcurrencyFirstWrite as i32, consistency: 0 };
    let again = StateItem { options: Some(first_write), ..item("k", b"v3") };
    let err = client.save_state(with_token(save("kvstore", vec![again]), &token)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Aborted);

    client.save_state(with_token(save("kvstore", vec![item("a", b"A"), item("b", b"B")]), &token)).await.unwrap();
    let bulk = pb::GetBulkStateRequest {
        store_name: "kvstore".into(),
        keys: vec!["a".into(), "b".into(), "zz".into()],
        ..Default::default()
    };
    let items = client.get_bulk_state(with_token(bulk, &token)).await.unwrap().into_inner().items;
    let data: Vec<(&str, &[u8])> = items.iter().map(|i| (i.key.as_str(), i.data.as_slice())).collect();
    assert_eq!(data, [("a", b"A".as_slice()), ("b", b"B".as_slice()), ("zz", b"".as_slice())]);

    let operations = vec![
        pb::TransactionalStateOperation { operation_type: "delete".into(), request: Some(item("a", b"")) },
        pb::TransactionalStateOperation { operation_type: "upsert".into(), request: Some(item("c", b"C")) },
    ];
    let transaction =
        pb::ExecuteStateTransactionRequest { store_name: "kvstore".into(), operations, metadata: Default::default() };
    client.execute_state_transaction(with_token(transaction, &token)).await.unwrap();
    assert!(client.get_state(with_token(get("kvstore", "a"), &token)).await.unwrap().into_inner().data.is_empty());
    assert_eq!(client.get_state(with_token(get("kvstore", "c"), &token)).await.unwrap().into_inner().data, b"C");

    let delete =
        pb::DeleteBulkStateRequest { store_name: "kvstore".into(), states: vec![item("b", b""), item("c", b"")] };
    client.delete_bulk_state(with_token(delete, &token)).await.unwrap();
    assert!(client.get_state(with_token(get("kvstore", "c"), &token)).await.unwrap().into_inner().data.is_empty());

    let metadata =
        client.get_metadata(with_token(pb::GetMetadataRequest::default(), &token)).await.unwrap().into_inner();
    assert_eq!(metadata.id, "orders");
    assert!(metadata.registered_components.iter().any(|c| c.name == "kvstore"));
}

/// `google.rpc.Status` and `ErrorInfo`, to read the details daprd's clients read.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ErrorInfo {
    #[prost(string, tag = "1")]
    reason: String,
    #[prost(string, tag = "2")]
    domain: String,
    #[prost(map = "string, string", tag = "3")]
    metadata: std::collections::HashMap<String, String>,
}

/// A gRPC answer returns the call's span as its `traceparent`: the caller's trace continued, or a new one. (daprd
/// returns `grpc-trace-bin` instead; see `docs/decisions.md`.)
#[tokio::test]
async fn answers_return_the_calls_span() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    let mut client = gateway.grpc_client().await;
    let caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut request = with_token(get("kvstore", "k"), &token);
    request.metadata_mut().insert("traceparent", caller.parse().unwrap());
    request.metadata_mut().insert("tracestate", "vendor=opaque".parse().unwrap());
    let answer = client.get_state(request).await.unwrap();
    let returned = answer.metadata().get("traceparent").expect("traceparent").to_str().unwrap().to_owned();
    let fields: Vec<&str> = returned.split('-').collect();
    assert_eq!((fields[0], fields[1], fields[3]), ("00", "0af7651916cd43dd8448eb211c80319c", "01"), "{returned}");
    assert!(fields[2].len() == 16 && fields[2] != "b7ad6b7169203331", "a span of the gateway's own: {returned}");
    assert_eq!(answer.metadata().get("tracestate").unwrap(), "vendor=opaque");

    let started = client.get_state(with_token(get("kvstore", "k"), &token)).await.unwrap();
    let started = started.metadata().get("traceparent").expect("traceparent").to_str().unwrap().to_owned();
    assert!(started.len() == 55 && !started.contains("0af7651916cd43dd8448eb211c80319c"), "a new trace: {started}");
}

#[tokio::test]
async fn errors_carry_daprds_codes_and_details() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    let mut client = gateway.grpc_client().await;

    let err = client.get_state(with_token(get("nostore", "k"), &token)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.message(), "state store nostore is not found");
    let status = RpcStatus::decode(err.details()).unwrap();
    assert_eq!(status.details[0].type_url, "type.googleapis.com/google.rpc.ErrorInfo");
    let info = ErrorInfo::decode(status.details[0].value.as_slice()).unwrap();
    assert_eq!((info.reason.as_str(), info.domain.as_str()), ("DAPR_STATE_NOT_FOUND", "dapr.io"));
    assert_eq!(info.metadata["errorCode"], "ERR_STATE_STORE_NOT_FOUND");

    let err = client.get_state(tonic::Request::new(get("kvstore", "k"))).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (tonic::Code::Unauthenticated, "missing api token in request metadata"));
    let err = client.get_state(with_token(get("kvstore", "k"), "ort_wrong")).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (tonic::Code::Unauthenticated, "authentication error: api token mismatch"));

    let err = client.save_state(with_token(save("kvstore", vec![item("", b"x")]), &token)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let actor = pb::GetActorStateRequest { actor_type: "cart".into(), actor_id: "1".into(), key: "k".into() };
    let err = client.get_actor_state(with_token(actor, &token)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
}
