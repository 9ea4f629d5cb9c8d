//! The pool against a small app on a real socket, which counts the connections it accepts and says when one ends.

use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::*;
use crate::{refusal_in, Egress, PrivateAddresses};

/// An app answering each request with `body`; it closes a connection after `answers_per_connection` answers.
struct App {
    address: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    ended: mpsc::UnboundedReceiver<()>,
}

impl App {
    async fn start(body: &'static [u8], answers_per_connection: usize) -> App {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let counted = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let ended = ended_tx.clone();
                tokio::spawn(async move {
                    serve(stream, body, answers_per_connection).await;
                    let _ = ended.send(());
                });
            }
        });
        App { address, accepted, ended }
    }

    fn url(&self) -> String {
        format!("http://{}/orders", self.address)
    }

    async fn connection_ended(&mut self) {
        tokio::time::timeout(Duration::from_secs(10), self.ended.recv()).await.expect("a connection ends").unwrap();
    }
}

/// Reads requests (head, then a `content-length` body) and answers each, until `answers` or the client's end.
async fn serve(mut stream: TcpStream, body: &[u8], answers: usize) {
    let mut buffer = Vec::new();
    for _ in 0..answers {
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |value| value.trim().parse().unwrap());
        while buffer.len() < head_end + length {
            let mut chunk = [0; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            }
        }
        buffer.drain(..head_end + length);
        let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
        if stream.write_all(answer.as_bytes()).await.is_err() || stream.write_all(body).await.is_err() {
            return;
        }
    }
}

fn client() -> crate::DirectClient<Full<Bytes>> {
    Egress::private(PrivateAddresses::Allowed).direct_client()
}

fn post(url: &str) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(Bytes::from_static(b"{\"id\":1}")));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = url.parse().unwrap();
    request.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("8"));
    request
}

async fn read_whole(client: &crate::DirectClient<Full<Bytes>>, url: &str) -> Bytes {
    let response = client.request(post(url)).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn calls_to_one_origin_reuse_its_connection() {
    let app = App::start(b"answered", usize::MAX).await;
    let client = client();
    for _ in 0..3 {
        assert_eq!(read_whole(&client, &app.url()).await, "answered");
    }
    assert_eq!(app.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_app_closed_is_not_reused() {
    let mut app = App::start(b"once", 1).await;
    let client = client();
    for calls in 1..=3 {
        assert_eq!(read_whole(&client, &app.url()).await, "once");
        app.connection_ended().await;
        // The app's end reaches the pooled connection's task on its own time: wait until the pool sees it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.plain.shared.idle.lock().unwrap().by_origin.values().flatten().any(|idle| !idle.sender.is_closed())
        {
            assert!(Instant::now() < deadline, "the pooled connection never saw the app close it");
            tokio::task::yield_now().await;
        }
        assert_eq!(app.accepted.load(Ordering::SeqCst), calls);
    }
}

#[tokio::test]
async fn a_body_dropped_before_its_end_takes_its_connection_with_it() {
    static LARGE: [u8; 1 << 20] = [b'x'; 1 << 20];
    let mut app = App::start(&LARGE, usize::MAX).await;
    let client = client();
    let unread = client.request(post(&app.url())).await.unwrap();
    drop(unread);
    app.connection_ended().await;
    assert_eq!(read_whole(&client, &app.url()).await.len(), LARGE.len());
    assert_eq!(app.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let mut app = App::start(b"answered", usize::MAX).await;
    let client = client();
    let pool = Pool::new(client.plain.connector.clone(), Duration::from_millis(50));
    let response = pool.send(post(&app.url())).await.unwrap();
    assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "answered");
    app.connection_ended().await;
    let idle = pool.shared.idle.lock().unwrap();
    assert!(idle.by_origin.is_empty() && !idle.sweeping, "the sweep emptied the pool and stopped");
}

#[tokio::test]
async fn the_egress_rule_judges_each_new_connection() {
    let app = App::start(b"answered", usize::MAX).await;
    let refusing: crate::DirectClient<Full<Bytes>> = Egress::private(PrivateAddresses::Refused).direct_client();
    let err = refusing.request(post(&app.url())).await.unwrap_err();
    assert!(matches!(err, SendError::Connect(_)), "{err:?}");
    assert!(refusal_in(&err).is_some(), "{}", crate::error_chain(&err));
}
