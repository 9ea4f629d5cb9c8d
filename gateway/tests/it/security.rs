//! Security group (issue 14): input the gateway used to read as something else. A non-ASCII `If-Match` was taken
//! for "no etag" (an unconditional delete), a gRPC `StateOptions` outside its enums for last-write, and a message
//! that is not protobuf for a server fault (INTERNAL, which SDKs retry) rather than the caller's error.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use dapr::dapr::proto::common::v1::{Etag, StateItem, StateOptions};
use dapr::dapr::proto::runtime::v1 as pb;
use http_body_util::BodyExt;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::harness::{with_token, Answer, TestGateway};

/// A header value that is not visible ASCII (`é` in UTF-8), which `HeaderValue::to_str` refuses.
const NON_ASCII: &[u8] = b"\xc3\xa9tag";

/// Sends `method path` with `body` and one extra header given as raw bytes, through the HTTP router.
async fn http_raw_header(
    gateway: &TestGateway,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
    header: (&'static str, &[u8]),
) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("dapr-api-token", token)
        .body(Body::from(body.to_owned()))
        .unwrap();
    request.headers_mut().insert(header.0, HeaderValue::from_bytes(header.1).unwrap());
    let mut service = ServiceBuilder::new().map_request(outrigger_gateway::clean_path).service(gateway.http.clone());
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Answer { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes().to_vec() }
}

#[tokio::test]
async fn security_non_ascii_if_match_is_refused_and_deletes_nothing() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    let saved = gateway.http("POST", "/v1.0/state/kvstore", Some(&token), Some(r#"[{"key":"k","value":"v"}]"#)).await;
    assert_eq!(saved.status, StatusCode::NO_CONTENT);

    let delete =
        http_raw_header(&gateway, "DELETE", "/v1.0/state/kvstore/k", &token, "", ("if-match", NON_ASCII)).await;
    let message = delete.dapr_error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
    assert!(message.contains("If-Match"), "{message}");
    let kept = gateway.http("GET", "/v1.0/state/kvstore/k", Some(&token), None).await;
    assert_eq!((kept.status, kept.body.as_slice()), (StatusCode::OK, br#""v""#.as_slice()), "nothing was deleted");

    // The other header a write reads: a publish's content type is not guessed either.
    let publish =
        http_raw_header(&gateway, "POST", "/v1.0/publish/pubsub/orders", &token, "{}", ("content-type", NON_ASCII))
            .await;
    let message = publish.dapr_error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
    assert!(message.contains("Content-Type"), "{message}");
}

fn item(key: &str, options: Option<StateOptions>) -> StateItem {
    StateItem { key: key.into(), value: b"new".to_vec(), options, ..Default::default() }
}

#[tokio::test]
async fn security_grpc_state_options_out_of_range_are_invalid_argument() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    let mut client = gateway.grpc_client().await;
    let original = pb::SaveStateRequest { store_name: "kvstore".into(), states: vec![item("k", None)] };
    client.save_state(with_token(original, &token)).await.unwrap();
    let stored = || pb::GetStateRequest { store_name: "kvstore".into(), key: "k".into(), ..Default::default() };
    let etag = client.get_state(with_token(stored(), &token)).await.unwrap().into_inner().etag;

    let bad_options = [
        StateOptions { concurrency: 99, consistency: 0 },
        StateOptions { concurrency: 0, consistency: 99 },
        StateOptions { concurrency: -1, consistency: 1 },
    ];
    for options in bad_options {
        let bad = || item("k", Some(options));
        let save = pb::SaveStateRequest { store_name: "kvstore".into(), states: vec![bad()] };
        let delete = pb::DeleteStateRequest {
            store_name: "kvstore".into(),
            key: "k".into(),
            options: Some(options),
            ..Default::default()
        };
        let bulk = pb::DeleteBulkStateRequest { store_name: "kvstore".into(), states: vec![bad()] };
        let upsert = pb::TransactionalStateOperation { operation_type: "upsert".into(), request: Some(bad()) };
        let remove = pb::TransactionalStateOperation { operation_type: "delete".into(), request: Some(bad()) };
        let transactions = [upsert, remove].map(|operation| pb::ExecuteStateTransactionRequest {
            store_name: "kvstore".into(),
            operations: vec![operation],
            metadata: Default::default(),
        });
        let mut outcomes = vec![
            ("SaveState", client.save_state(with_token(save, &token)).await),
            ("DeleteState", client.delete_state(with_token(delete, &token)).await),
            ("DeleteBulkState", client.delete_bulk_state(with_token(bulk, &token)).await),
        ];
        for transaction in transactions {
            outcomes.push((
                "ExecuteStateTransaction",
                client.execute_state_transaction(with_token(transaction, &token)).await,
            ));
        }
        for (rpc, outcome) in outcomes {
            let err = outcome.expect_err(&format!("{rpc} with {options:?} must be refused"));
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{rpc} with {options:?}: {err:?}");
        }
        let get = pb::GetStateRequest { consistency: options.consistency, ..stored() };
        if options.consistency == 99 {
            let err = client.get_state(with_token(get, &token)).await.unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "GetState with {options:?}: {err:?}");
        }
    }
    let kept = client.get_state(with_token(stored(), &token)).await.unwrap().into_inner();
    assert_eq!((kept.data.as_slice(), kept.etag), (b"new".as_slice(), etag), "nothing was written or deleted");

    // The values in range still work.
    let first_write = StateOptions { concurrency: 1, consistency: 2 };
    let stale = StateItem { etag: Some(Etag { value: "999999".into() }), ..item("k", Some(first_write)) };
    let err = client
        .save_state(with_token(pb::SaveStateRequest { store_name: "kvstore".into(), states: vec![stale] }, &token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Aborted, "{err:?}");
}

/// Calls the gRPC router in process with `message` as the one length-prefixed message of the request body;
/// answers the `grpc-status` and `grpc-message` (from the headers of a trailers-only answer, or the trailers).
async fn raw_grpc(gateway: &TestGateway, path: &str, token: &str, message: &[u8]) -> (String, String) {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(message);
    let request = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("dapr-api-token", token)
        .body(Body::from(frame))
        .unwrap();
    let response = outrigger_gateway::grpc_router(gateway.gateway.clone()).oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let trailers = body.collect().await.unwrap().trailers().cloned().unwrap_or_default();
    let field = |name: &str| {
        let value = parts.headers.get(name).or_else(|| trailers.get(name));
        value.map(|value| value.to_str().unwrap().to_owned()).unwrap_or_default()
    };
    (field("grpc-status"), field("grpc-message"))
}

#[tokio::test]
async fn security_malformed_protobuf_is_invalid_argument_on_every_kind_of_rpc() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    // Field 1 announced as a 16-byte string, with 2 bytes following: no protobuf decoder accepts it.
    let garbage = [0x0a, 0x10, 0x41, 0x41];
    for path in [
        "/dapr.proto.runtime.v1.Dapr/GetState",
        "/dapr.proto.runtime.v1.Dapr/SaveState",
        "/dapr.proto.runtime.v1.Dapr/PublishEvent",
        "/dapr.proto.runtime.v1.Dapr/SubscribeTopicEventsAlpha1",
        "/TaskHubSidecarService/StartInstance",
        "/TaskHubSidecarService/GetWorkItems",
    ] {
        let (status, message) = raw_grpc(&gateway, path, &token, &garbage).await;
        assert_eq!(status, (tonic::Code::InvalidArgument as i32).to_string(), "{path}: {message}");
    }
    // A well-formed empty message still goes through.
    let (status, message) = raw_grpc(&gateway, "/dapr.proto.runtime.v1.Dapr/GetMetadata", &token, &[]).await;
    assert_eq!(status, "0", "{message}");
}
