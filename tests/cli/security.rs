//! Security group (issue 14): what every listener (control API, Dapr HTTP, Dapr gRPC) does with clients that
//! hold connections without finishing requests, open too many, or send oversized credentials. Each test runs a
//! real all-in-one server with short, test-sized limits and talks to it over raw TCP or HTTP/2.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{random_token, RunExt, Server};

/// Longest a test waits for the server to act on a limit measured in hundreds of milliseconds: a failure
/// bound, not a pause.
const GUARD: Duration = Duration::from_secs(20);

/// A server with `env` on top of the harness's settings, its admin token, and its data directory.
fn start(env: &[(&str, &str)]) -> (tempfile::TempDir, Server, String) {
    let data_dir = tempfile::tempdir().expect("creating a data directory");
    let admin = random_token();
    let server = Server::start_role(&[], env, data_dir.path(), Some(&admin));
    (data_dir, server, admin)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("building a runtime")
}

/// The three listeners, named for messages.
fn listeners(server: &Server) -> [(&'static str, SocketAddr); 3] {
    let addresses = server.addresses;
    [
        ("control API", addresses.control_api.expect("the all-in-one serves the control API")),
        ("Dapr HTTP", addresses.dapr_http.expect("the all-in-one serves Dapr HTTP")),
        ("Dapr gRPC", addresses.dapr_grpc.expect("the all-in-one serves Dapr gRPC")),
    ]
}

/// Reads until the server closes the connection (end of stream or reset); answers what it sent first.
/// Panics if the connection is still open after [`GUARD`].
async fn until_closed(stream: &mut TcpStream, what: &str) -> String {
    let mut received = Vec::new();
    let reading = async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
    };
    if tokio::time::timeout(GUARD, reading).await.is_err() {
        panic!("{what}: the server still holds the connection after {GUARD:?}");
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// Sends `GET /` and answers whether an HTTP answer came back (the connection was served) or the server closed
/// the connection without one.
async fn served(stream: &mut TcpStream) -> bool {
    if stream.write_all(b"GET / HTTP/1.1\r\nHost: outrigger\r\n\r\n").await.is_err() {
        return false;
    }
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(GUARD, stream.read(&mut buffer)).await.expect("no answer and no close");
    matches!(read, Ok(read) if buffer[..read].starts_with(b"HTTP/1.1"))
}

fn token_of(server: &Server, project: &str, app: &str) -> String {
    server.outrigger(["project", "create", project]).succeeds();
    let created = server.outrigger(["appid", "create", app, "-p", project, "-o", "json"]).json();
    created["apiToken"].as_str().expect("an API token").to_owned()
}

#[test]
fn security_slow_clients_are_disconnected_on_every_listener() {
    let limits = [("OUTRIGGER_HEADER_READ_TIMEOUT_MS", "500"), ("OUTRIGGER_BODY_IDLE_TIMEOUT_MS", "500")];
    let (_data_dir, server, admin) = start(&limits);
    let token = token_of(&server, "demo", "orders");
    runtime().block_on(async {
        // Half a request head; nothing at all; half of HTTP/2's connection preface: on every listener at once.
        let stalls: [&[u8]; 3] = [b"GET / HTTP/1.1\r\nHost: outrigger\r\nX-Slow: ", b"", b"PRI * HTTP/2.0\r\n"];
        let mut stalled = Vec::new();
        for (name, address) in listeners(&server) {
            for stall in stalls {
                let what = format!("{name}, after {:?}", String::from_utf8_lossy(stall));
                stalled.push(async move {
                    let mut stream = TcpStream::connect(address).await.unwrap();
                    stream.write_all(stall).await.unwrap();
                    let answer = until_closed(&mut stream, &what).await;
                    assert!(answer.is_empty(), "{what}: closed without an answer, got {answer:?}");
                });
            }
        }
        futures_util::future::join_all(stalled).await;
        // A request body that stops arriving is answered and its connection closed.
        let dapr_http = server.addresses.dapr_http.unwrap();
        let control_api = server.addresses.control_api.unwrap();
        let bodies = [
            (
                "Dapr HTTP",
                dapr_http,
                format!("POST /v1.0/state/kvstore HTTP/1.1\r\nHost: o\r\ndapr-api-token: {token}\r\n"),
            ),
            (
                "control API",
                control_api,
                format!("POST /api/v1/projects HTTP/1.1\r\nHost: o\r\nAuthorization: Bearer {admin}\r\n"),
            ),
        ];
        for (name, address, head) in bodies {
            let mut stream = TcpStream::connect(address).await.unwrap();
            let request = format!("{head}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n[{{\"key\"");
            stream.write_all(request.as_bytes()).await.unwrap();
            let answer = until_closed(&mut stream, &format!("{name}, with a stalled body")).await;
            let answered = answer.starts_with("HTTP/1.1 400") && answer.contains("no request body data for 500 ms");
            assert!(answered, "{name}: a stalled body gets a 400 saying why, got {answer:?}");
        }
        // An ordinary request is served as before.
        let mut stream = TcpStream::connect(dapr_http).await.unwrap();
        stream.write_all(b"GET /v1.0/healthz HTTP/1.1\r\nHost: o\r\n\r\n").await.unwrap();
        let mut buffer = [0u8; 12];
        stream.read_exact(&mut buffer).await.unwrap();
        assert_eq!(&buffer, b"HTTP/1.1 204");
    });
}

/// `bytes` as one length-prefixed gRPC message.
fn grpc_frame(bytes: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(bytes);
    frame
}

#[test]
fn security_grpc_streams_outlive_the_idle_timeouts() {
    let limits = [("OUTRIGGER_HEADER_READ_TIMEOUT_MS", "300"), ("OUTRIGGER_BODY_IDLE_TIMEOUT_MS", "300")];
    let (_data_dir, server, _admin) = start(&limits);
    let token = token_of(&server, "demo", "orders");
    let (grpc, http) = (server.addresses.dapr_grpc.unwrap(), server.addresses.dapr_http.unwrap());
    runtime().block_on(async {
        // SubscribeTopicEventsAlpha1's initial request for pubsub/orders (hand-encoded: the root package has no
        // prost), then a request stream that stays open and silent, as a subscriber's does between events.
        let initial = [&[0x0a, 0x10, 0x0a, 0x06][..], b"pubsub", &[0x12, 0x06], b"orders"].concat();
        let requests = futures_util::stream::once(async move { Ok::<_, std::io::Error>(grpc_frame(&initial)) })
            .chain(futures_util::stream::pending());
        let client = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
        let mut stream = client
            .post(format!("http://{grpc}/dapr.proto.runtime.v1.Dapr/SubscribeTopicEventsAlpha1"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("dapr-api-token", &token)
            .body(reqwest::Body::wrap_stream(requests))
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        stream.chunk().await.unwrap().expect("the initial response");
        // Several body-idle and header-read timeouts pass with nothing sent either way.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let published = reqwest::Client::new()
            .post(format!("http://{http}/v1.0/publish/pubsub/orders"))
            .header("dapr-api-token", &token)
            .header("content-type", "application/json")
            .body(r#"{"marker":"still-subscribed"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(published.status(), StatusCode::NO_CONTENT);
        let event = async {
            let mut received = Vec::new();
            while let Some(chunk) = stream.chunk().await.expect("the stream stays open") {
                received.extend_from_slice(&chunk);
                if String::from_utf8_lossy(&received).contains("still-subscribed") {
                    return;
                }
            }
            panic!("the stream ended before the event arrived");
        };
        tokio::time::timeout(GUARD, event).await.expect("the event reaches the quiet stream");
    });
}

#[test]
fn security_connections_beyond_the_per_client_cap_are_closed() {
    let (_data_dir, server, _admin) = start(&[("OUTRIGGER_MAX_CONNECTIONS_PER_CLIENT", "3")]);
    runtime().block_on(async {
        for (name, address) in listeners(&server) {
            let mut held = Vec::new();
            for _ in 0..3 {
                let mut stream = TcpStream::connect(address).await.unwrap();
                assert!(served(&mut stream).await, "{name}: a connection within the cap is served");
                held.push(stream);
            }
            let mut over = TcpStream::connect(address).await.unwrap();
            assert!(!served(&mut over).await, "{name}: the 4th connection from one address is closed unserved");
            // A slot comes back when a connection ends; the server sees the close when it next reads, so the
            // client tries again until one is served.
            held.pop();
            let retry = async {
                loop {
                    let mut stream = TcpStream::connect(address).await.unwrap();
                    if served(&mut stream).await {
                        return;
                    }
                }
            };
            tokio::time::timeout(GUARD, retry).await.unwrap_or_else(|_| panic!("{name}: a freed slot is reused"));
        }
    });
}

/// Calls `GetMetadata` over h2c with `token`; answers the HTTP status, `grpc-status` and `grpc-message`.
async fn grpc_get_metadata(address: SocketAddr, token: &str) -> Result<(StatusCode, String, String), reqwest::Error> {
    let client = reqwest::Client::builder().http2_prior_knowledge().build()?;
    let response = client
        .post(format!("http://{address}/dapr.proto.runtime.v1.Dapr/GetMetadata"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("dapr-api-token", token)
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await?;
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    Ok((response.status(), header("grpc-status"), header("grpc-message")))
}

#[test]
fn security_a_long_token_is_unauthenticated_not_unknown() {
    let (_data_dir, server, _admin) = start(&[]);
    let long_token = "x".repeat(16_000);
    let grpc = server.addresses.dapr_grpc.unwrap();
    let http = server.addresses.dapr_http.unwrap();
    runtime().block_on(async {
        let (status, code, message) = grpc_get_metadata(grpc, &long_token).await.expect("the call is answered");
        assert_eq!((status, code.as_str()), (StatusCode::OK, "16"), "gRPC: UNAUTHENTICATED ({message})");
        assert!(message.contains("token"), "{message}");

        let answer = reqwest::Client::new()
            .get(format!("http://{http}/v1.0/metadata"))
            .header("dapr-api-token", &long_token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);

        // Beyond the header limit (64 KiB by default) HTTP/1.1 answers 431. HTTP/2 refuses the stream with 431
        // before any handler runs, so no grpc-status can be added: gRPC clients report UNKNOWN "mapped from HTTP
        // status 431". (Far larger header blocks end the connection: h2's guard against CONTINUATION floods.)
        let huge_token = "x".repeat(70_000);
        let answer = reqwest::Client::new()
            .get(format!("http://{http}/v1.0/metadata"))
            .header("dapr-api-token", &huge_token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let (status, code, _) = grpc_get_metadata(grpc, &huge_token).await.expect("the call is answered");
        assert_eq!((status, code.as_str()), (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, ""));
    });
}
