//! HTTP access to the control API: URLs, authentication, and turning failures into messages that
//! say what went wrong and what to do.

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

/// Every control API route lives under this prefix of the base URL.
const API_PREFIX: [&str; 2] = ["api", "v1"];

/// Entries asked for per page when a command lists everything: the control API's largest page.
const LIST_PAGE_SIZE: u32 = 1000;

pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    token: String,
}

/// The control API's error body.
#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

impl ApiClient {
    pub fn new(base: Url, token: String) -> anyhow::Result<Self> {
        if !matches!(base.scheme(), "http" | "https") {
            bail!("--url {base} is not an http:// or https:// URL");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Generous: an apply with many documents is one request, but a hung server must not hang scripts.
            .timeout(Duration::from_secs(120))
            .build()
            .context("setting up the HTTP client")?;
        Ok(Self { http, base, token })
    }

    /// The URL of a route given as path segments (each one percent-encoded), below any path the base URL has.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("new() accepts only http(s) URLs, which can have a path")
            .pop_if_empty()
            .extend(API_PREFIX)
            .extend(segments);
        url
    }

    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.token)
    }

    /// Sends a request and fails unless the answer is a success status.
    pub async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let response = request.send().await.map_err(|error| self.transport_error(error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(api_error(status, &body))
    }

    pub async fn get_json(&self, segments: &[&str]) -> anyhow::Result<Value> {
        let response = self.send(self.request(Method::GET, self.url(segments))).await?;
        read_json(response).await
    }

    /// Every entry of a paginated listing, following continuation tokens to the last page, as one
    /// `{"items": [...]}` answer.
    pub async fn get_all_items(&self, segments: &[&str]) -> anyhow::Result<Value> {
        let mut items = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let mut url = self.url(segments);
            url.query_pairs_mut().append_pair("limit", &LIST_PAGE_SIZE.to_string());
            if let Some(token) = &continuation {
                url.query_pairs_mut().append_pair("continuationToken", token);
            }
            let mut page = read_json(self.send(self.request(Method::GET, url)).await?).await?;
            match page["items"].take() {
                Value::Array(entries) => items.extend(entries),
                _ => bail!("the control API answered a listing without items"),
            }
            continuation = page["continuationToken"].as_str().map(str::to_owned);
            if continuation.is_none() {
                return Ok(serde_json::json!({ "items": items }));
            }
        }
    }

    /// GETs a route that can answer YAML, as text.
    pub async fn get_yaml(&self, segments: &[&str]) -> anyhow::Result<String> {
        let request = self.request(Method::GET, self.url(segments)).header(ACCEPT, "application/yaml");
        let response = self.send(request).await?;
        response.text().await.context("reading the control API's answer")
    }

    pub async fn send_json(&self, method: Method, segments: &[&str], body: &Value) -> anyhow::Result<Value> {
        let response = self.send(self.request(method, self.url(segments)).json(body)).await?;
        read_json(response).await
    }

    /// POSTs YAML to `url` and reads the JSON answer.
    pub async fn post_yaml(&self, url: Url, yaml: String) -> anyhow::Result<Value> {
        let request = self.request(Method::POST, url).header(CONTENT_TYPE, "application/yaml").body(yaml);
        let response = self.send(request).await?;
        read_json(response).await
    }

    pub async fn delete(&self, segments: &[&str]) -> anyhow::Result<()> {
        self.send(self.request(Method::DELETE, self.url(segments))).await?;
        Ok(())
    }

    fn transport_error(&self, error: reqwest::Error) -> anyhow::Error {
        let base = &self.base;
        let explanation = if error.is_connect() {
            format!(
                "the control API is not reachable at {base}; start Outrigger with `outrigger` \
                 (or `cargo run --release` in its source tree), or point --url/OUTRIGGER_URL at a running control API"
            )
        } else if error.is_timeout() {
            format!("the control API at {base} did not answer in time")
        } else {
            format!("the request to the control API at {base} failed")
        };
        anyhow::Error::new(error).context(explanation)
    }
}

async fn read_json(response: Response) -> anyhow::Result<Value> {
    response.json().await.context("reading the control API's JSON answer")
}

fn api_error(status: StatusCode, body: &str) -> anyhow::Error {
    let hint = if status == StatusCode::UNAUTHORIZED { "; check --token/OUTRIGGER_TOKEN" } else { "" };
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(ErrorBody { code, message }) => anyhow!("{message} ({status}, {code}){hint}"),
        Err(_) if body.trim().is_empty() => anyhow!("the control API answered {status}{hint}"),
        Err(_) => anyhow!("the control API answered {status}: {}{hint}", body.trim()),
    }
}
