//! Service invocation through the real binary: a 50 MiB body streams to the callee and back without the
//! server's memory growing with it.

use axum::extract::Request;
use axum::Router;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::start;

/// The peak resident set of a process so far, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc/<pid>/status");
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).expect("VmHWM in /proc/<pid>/status");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmHWM in KiB")
}

const CHUNK: usize = 64 * 1024;
const BODY_BYTES: usize = 50 * 1024 * 1024;

/// Byte `index` of the test body: a pattern that a lost, repeated or reordered chunk would break.
fn pattern(index: usize) -> u8 {
    ((index / 7) % 251) as u8
}

#[test]
fn a_fifty_mib_body_streams_through_both_ways_in_bounded_memory() {
    let (_dir, server) = start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    assert_eq!(server.api(Method::POST, "/projects", Some(json!({"name": "big"}))).0, StatusCode::CREATED);
    let (status, caller) = server.api(Method::POST, "/projects/big/appids", Some(json!({"name": "uploader"})));
    assert_eq!(status, StatusCode::CREATED, "{caller}");
    let echo_app = json!({"name": "echo", "appEndpoint": endpoint});
    assert_eq!(server.api(Method::POST, "/projects/big/appids", Some(echo_app)).0, StatusCode::CREATED);
    let token = caller["apiToken"].as_str().unwrap().to_owned();

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        // The callee streams the request body straight back.
        let echo = Router::new().fallback(|request: Request| async move { axum::body::Body::new(request.into_body()) });
        listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        tokio::spawn(async move { axum::serve(listener, echo).await.unwrap() });

        let url = format!("http://{}/v1.0/invoke/echo/method/upload", server.addresses.dapr_http.unwrap());
        let client = reqwest::Client::new();

        let warm_up = client.post(&url).header("dapr-api-token", &token).body("hello").send().await.unwrap();
        assert_eq!(warm_up.text().await.unwrap(), "hello");
        let before = peak_rss_kib(server.pid());

        let chunks = futures_util::stream::iter((0..BODY_BYTES / CHUNK).map(|chunk| {
            let bytes: Vec<u8> = (chunk * CHUNK..(chunk + 1) * CHUNK).map(pattern).collect();
            Ok::<_, std::io::Error>(bytes)
        }));
        let response = client
            .post(&url)
            .header("dapr-api-token", &token)
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut received = 0usize;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            for (offset, byte) in chunk.iter().enumerate() {
                assert_eq!(*byte, pattern(received + offset), "byte {} differs", received + offset);
            }
            received += chunk.len();
        }
        assert_eq!(received, BODY_BYTES, "the whole body came back");

        let growth_mib = peak_rss_kib(server.pid()).saturating_sub(before) / 1024;
        assert!(growth_mib < 16, "the server's peak memory grew by {growth_mib} MiB for a 50 MiB body");
    });
}
