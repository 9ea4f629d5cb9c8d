//! What the state GET benchmark's load generator asks for: a Dapr state GET over HTTP, or a direct
//! Redis GET as the baseline.

use crate::common::load::{self, Request, REQUEST_TIMEOUT};

/// What every request asks for.
#[derive(Clone, Debug)]
pub enum Target {
    /// `GET url` with the `dapr-api-token` header; 2xx with a body of `body_len` bytes is a success.
    Http { url: String, token: String, body_len: usize },
    /// Redis `GET key`; a value of `value_len` bytes is a success.
    Redis { key: String, value_len: usize },
}

/// One keep-alive connection.
pub enum Connection {
    Http(reqwest::Client),
    Redis(redis::aio::MultiplexedConnection),
}

impl Connection {
    /// An HTTP/1.1 client holding at most one connection, ignoring any proxy settings.
    pub fn http() -> anyhow::Result<Connection> {
        Ok(Connection::Http(crate::common::setup::keep_alive_client()?))
    }

    /// A dedicated Redis connection (not shared with other connections).
    pub async fn redis(addr: &str) -> anyhow::Result<Connection> {
        let client = redis::Client::open(format!("redis://{addr}/"))?;
        Ok(Connection::Redis(client.get_multiplexed_async_connection().await?))
    }
}

impl load::Connection for Connection {
    type Target = Target;

    async fn call(&mut self, target: &Target, _request: Request) -> Result<(), String> {
        match (self, target) {
            (Connection::Http(client), Target::Http { url, token, body_len }) => {
                let response =
                    client.get(url).header("dapr-api-token", token).send().await.map_err(|err| format!("{err}"))?;
                let status = response.status();
                let body = response.bytes().await.map_err(|err| format!("reading the body: {err}"))?;
                if !status.is_success() {
                    return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])));
                }
                if body.len() != *body_len {
                    return Err(format!("HTTP {status} with a {}-byte body, expected {body_len}", body.len()));
                }
                Ok(())
            }
            (Connection::Redis(connection), Target::Redis { key, value_len }) => {
                let mut command = redis::cmd("GET");
                command.arg(key);
                match tokio::time::timeout(REQUEST_TIMEOUT, command.query_async::<Option<Vec<u8>>>(connection)).await {
                    Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
                    Ok(Err(err)) => Err(format!("{err}")),
                    Ok(Ok(None)) => Err(format!("key {key} is missing")),
                    Ok(Ok(Some(value))) if value.len() != *value_len => {
                        Err(format!("a {}-byte value, expected {value_len}", value.len()))
                    }
                    Ok(Ok(Some(_))) => Ok(()),
                }
            }
            _ => Err("connection and target are of different kinds".to_owned()),
        }
    }
}
