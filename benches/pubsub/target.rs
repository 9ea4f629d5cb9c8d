//! What the pub/sub benchmark's load generator sends: a JSON payload of a fixed size carrying its
//! sequence number and scheduled time, POSTed over HTTP (a Dapr publish, or the baseline handler) or
//! published straight to JetStream with an ack (the distributed form's baseline).

use axum::body::Bytes;

use crate::common::load::{self, since_base, Request, REQUEST_TIMEOUT};

/// `{"seq":<seq>,"t":<ns since the time base>,"pad":"x..."}`, `size` bytes long (or just longer when
/// `size` is too small to hold the fields).
pub fn payload(seq: u64, scheduled_ns: u64, size: usize) -> String {
    let head = format!("{{\"seq\":{seq},\"t\":{scheduled_ns},\"pad\":\"");
    let pad = size.saturating_sub(head.len() + 2);
    let mut body = String::with_capacity(head.len() + pad + 2);
    body.push_str(&head);
    body.extend(std::iter::repeat_n('x', pad));
    body.push_str("\"}");
    body
}

/// What every request does.
#[derive(Clone, Debug)]
pub enum Target {
    /// `POST url` with `Content-Type: application/json` (and `dapr-api-token` when given); 2xx is a success.
    Http { url: String, token: Option<String>, size: usize },
    /// A JetStream publish to `subject`, successful once the server acks it.
    JetStream { subject: String, size: usize },
}

/// One keep-alive connection.
pub enum Connection {
    Http(reqwest::Client),
    JetStream(Box<async_nats::jetstream::Context>),
}

impl Connection {
    pub fn http() -> anyhow::Result<Connection> {
        Ok(Connection::Http(crate::common::setup::keep_alive_client()?))
    }

    /// A NATS connection of its own.
    pub async fn jetstream(url: &str) -> anyhow::Result<Connection> {
        let client = async_nats::ConnectOptions::new()
            .name("outrigger pubsub bench")
            .connect(url)
            .await
            .map_err(|err| anyhow::anyhow!("connecting to NATS at {url} (scripts/services starts it): {err}"))?;
        Ok(Connection::JetStream(Box::new(async_nats::jetstream::new(client))))
    }
}

impl load::Connection for Connection {
    type Target = Target;

    async fn call(&mut self, target: &Target, request: Request) -> Result<(), String> {
        match (self, target) {
            (Connection::Http(client), Target::Http { url, token, size }) => {
                let body = payload(request.seq, since_base(request.scheduled), *size);
                let mut post = client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
                if let Some(token) = token {
                    post = post.header("dapr-api-token", token);
                }
                let response = post.send().await.map_err(|err| format!("{err}"))?;
                let status = response.status();
                let body = response.bytes().await.map_err(|err| format!("reading the body: {err}"))?;
                if !status.is_success() {
                    return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])));
                }
                Ok(())
            }
            (Connection::JetStream(context), Target::JetStream { subject, size }) => {
                let body = Bytes::from(payload(request.seq, since_base(request.scheduled), *size));
                let published = async {
                    let acknowledgement =
                        context.publish(subject.clone(), body).await.map_err(|err| format!("{err}"))?;
                    acknowledgement.await.map_err(|err| format!("no ack: {err}"))
                };
                match tokio::time::timeout(REQUEST_TIMEOUT, published).await {
                    Err(_) => Err(format!("no ack within {REQUEST_TIMEOUT:?}")),
                    Ok(outcome) => outcome.map(drop),
                }
            }
            _ => Err("connection and target are of different kinds".to_owned()),
        }
    }
}
