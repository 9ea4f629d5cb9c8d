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

/// The header that names the organization a request works in.
const ORG_HEADER: &str = "Outrigger-Organization";

pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    /// None only for the routes that sign in (login, refresh).
    credential: Option<(String, CredentialKind)>,
    /// Sent as `Outrigger-Organization`; without it the server uses the credential's own organization.
    org: Option<String>,
}

/// Where the bearer credential came from, so that a refusal can say what to do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    /// `--token`/`OUTRIGGER_TOKEN`, or the all-in-one server's admin-token file.
    OperatorToken,
    /// The API key `outrigger login --api-key` stored.
    ApiKey,
    /// The access token of the session `outrigger login --email` started.
    Session,
}

/// The control API's error body.
#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

impl ApiClient {
    /// A client that sends no credential; add one with [`ApiClient::with_credential`].
    pub fn new(base: Url) -> anyhow::Result<Self> {
        if !matches!(base.scheme(), "http" | "https") {
            bail!("--url {base} is not an http:// or https:// URL");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Generous: an apply with many documents is one request, but a hung server must not hang scripts.
            .timeout(Duration::from_secs(120))
            .build()
            .context("setting up the HTTP client")?;
        Ok(Self { http, base, credential: None, org: None })
    }

    pub fn with_credential(mut self, token: String, kind: CredentialKind) -> Self {
        self.credential = Some((token, kind));
        self
    }

    /// Works in `org` (when given) rather than the credential's own organization.
    pub fn in_org(mut self, org: Option<String>) -> Self {
        self.org = org;
        self
    }

    /// The organization requests name, if any.
    pub fn org(&self) -> Option<&str> {
        self.org.as_deref()
    }

    pub fn base(&self) -> &Url {
        &self.base
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
        let mut request = self.http.request(method, url);
        if let Some((token, _)) = &self.credential {
            request = request.bearer_auth(token);
        }
        if let Some(org) = &self.org {
            request = request.header(ORG_HEADER, org);
        }
        request
    }

    /// Sends a request and fails unless the answer is a success status.
    pub async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let response = request.send().await.map_err(|error| self.transport_error(error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(api_error(status, &body, self.credential.as_ref().map(|(_, kind)| *kind)))
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

fn api_error(status: StatusCode, body: &str, credential: Option<CredentialKind>) -> anyhow::Error {
    let hint = match (status, credential) {
        (StatusCode::UNAUTHORIZED, Some(CredentialKind::OperatorToken)) => "; check --token/OUTRIGGER_TOKEN",
        (StatusCode::UNAUTHORIZED, Some(CredentialKind::ApiKey)) => {
            "; the stored API key was revoked or has expired: sign in again with `outrigger login`"
        }
        (StatusCode::UNAUTHORIZED, Some(CredentialKind::Session)) => {
            "; the session has ended: sign in again with `outrigger login`"
        }
        _ => "",
    };
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(ErrorBody { code, message }) => anyhow!("{message} ({status}, {code}){hint}"),
        Err(_) if body.trim().is_empty() => anyhow!("the control API answered {status}{hint}"),
        Err(_) => anyhow!("the control API answered {status}: {}{hint}", body.trim()),
    }
}
