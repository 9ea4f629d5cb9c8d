//! What the invocation benchmark's load generator sends: a POST of a fixed body, straight to the echo app
//! (the baseline) or as a Dapr service invocation; a success is a 2xx carrying the same body back.

use axum::body::Bytes;

use crate::common::load::{self, Request};

/// What every request does.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: String,
    /// Sent as `dapr-api-token` when given.
    pub token: Option<String>,
    pub body: Bytes,
}

/// One keep-alive connection.
pub struct Connection(reqwest::Client);

impl Connection {
    pub fn http() -> anyhow::Result<Connection> {
        Ok(Connection(crate::common::setup::keep_alive_client()?))
    }
}

impl load::Connection for Connection {
    type Target = Target;

    async fn call(&mut self, target: &Target, _request: Request) -> Result<(), String> {
        let mut post = self
            .0
            .post(&target.url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(target.body.clone());
        if let Some(token) = &target.token {
            post = post.header("dapr-api-token", token);
        }
        let response = post.send().await.map_err(|err| format!("{err}"))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|err| format!("reading the body: {err}"))?;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])));
        }
        if body != target.body {
            return Err(format!("HTTP {status} with a {}-byte body that is not the one sent", body.len()));
        }
        Ok(())
    }
}
