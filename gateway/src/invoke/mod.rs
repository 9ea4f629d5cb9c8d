//! Service invocation: a call to an App ID (or an HTTPEndpoint) of the caller's project goes from the gateway
//! straight to the callee's registered endpoint, streamed both ways. Before anything reaches the callee the
//! gateway checks the callee's access control, its health and the outbound address rule; the caller's
//! Resiliency policy for the callee (timeout, retries, circuit breaker) governs the call. The callee gets its
//! own app token, never the caller's, and learns who called from `dapr-caller-app-id`.
//!
//! The gateway calls the app itself rather than through a worker: a body then streams through one process
//! without being buffered, and the call costs no bus hop.

pub(crate) mod acl;
mod directory;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use outrigger_bus::{Bus, ResolveSecretRef, Tenant};
use outrigger_outbound::health::{self, AppHealth, HealthProbe};
use outrigger_outbound::resiliency::{self, Breakers, Failure, Outcome, Policy, Target};
use outrigger_outbound::{error_chain, refusal_in, AppChannel, AppClient, DirectClient, Egress, Refused};
use outrigger_resources::Document;
use outrigger_store::ProjectId;
use serde_json::Value;

pub use directory::Directory;

/// Why an invocation did not reach the callee, or did not come back.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// No App ID or HTTPEndpoint of that name in the caller's project (other projects' are not looked at).
    #[error("failed to invoke, id: {id}, err: couldn't find service: {id} (no App ID or HTTPEndpoint of that name in this project; check the name or create it with `outrigger appid create`)")]
    UnknownTarget { id: String },
    /// The App ID has no `appEndpoint`.
    #[error("failed to invoke, id: {id}, err: the app has no endpoint registered; set its appEndpoint with `outrigger appid update`")]
    NoEndpoint { id: String },
    /// The App ID's app speaks gRPC (`appProtocol: grpc`), whose app channel is not served.
    #[error("failed to invoke, id: {id}, err: the app is registered with appProtocol grpc, and Outrigger calls apps over HTTP only; serve HTTP and set appProtocol http with `outrigger appid update`")]
    GrpcApp { id: String },
    /// The callee's access control refuses the caller.
    #[error("access control policy has denied access to id: spiffe://public/ns/{project}/{caller} operation: {method} verb: {verb}")]
    Denied { project: String, caller: String, method: String, verb: String },
    /// The callee's health checks fail.
    #[error("failed to invoke, id: {id}, err: the app is not healthy (its health check {path} fails)")]
    Unhealthy { id: String, path: String },
    /// The callee's address is one the platform does not call.
    #[error("failed to invoke, id: {id}, err: {refused}")]
    Refused { id: String, refused: Refused },
    /// The HTTPEndpoint cannot be called as written.
    #[error("failed to invoke, id: {id}, err: {reason}")]
    BadEndpoint { id: String, reason: String },
    /// Connecting or talking to the callee failed.
    #[error("failed to invoke, id: {id}, err: {reason}")]
    Unreachable { id: String, reason: String },
    /// The callee did not answer within the Resiliency timeout.
    #[error("failed to invoke, id: {id}, err: timed out after {after:?}")]
    TimedOut { id: String, after: Duration },
    /// The circuit breaker for the callee is open.
    #[error("failed to invoke, id: {id}, err: circuit breaker is open")]
    CircuitOpen { id: String },
    /// The callee answered with an error status (reported as an error where the protocol has no status of its
    /// own, gRPC; over HTTP the caller gets the callee's answer as it is).
    #[error("failed to invoke, id: {id}, err: the app answered HTTP {status}: {body}")]
    AppFailed { id: String, status: u16, body: String },
    /// The caller's request body broke off.
    #[error("failed reading the request body: {0}")]
    Body(String),
    /// The project's directory could not be read.
    #[error(
        "failed to invoke, id: {id}, err: the project's App IDs cannot be read right now ({source}); retry shortly"
    )]
    Directory { id: String, source: Arc<outrigger_store::Error> },
}

/// A request on its way to the callee.
pub struct Invocation {
    pub method: Method,
    /// The callee's path (from `/`), with its query string.
    pub path_and_query: String,
    /// The caller's headers, the caller's token already removed.
    pub headers: HeaderMap,
    pub body: axum::body::Body,
}

/// Whether a header belongs to one connection, not to the message. Told by the name's text, which a `match`
/// finds by its length and a comparison or two: comparing it with each listed `HeaderName` in turn cost ~1,300
/// instructions an invocation.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Whether a header is about the caller's access to the platform: `Host`, `dapr-api-token`, `dapr-app-id`.
fn platform_only(name: &HeaderName) -> bool {
    matches!(name.as_str(), "host" | "dapr-api-token" | "dapr-app-id")
}

/// The header naming the App ID an invocation goes to (daprd's fallback route).
pub(crate) const DAPR_APP_ID: HeaderName = HeaderName::from_static("dapr-app-id");
/// The headers telling an invoked app who called it, and as whom.
/// How long the callback to a caller's own app may take.
const OWN_APP_TIMEOUT: Duration = Duration::from_secs(60);

const CALLER_APP_ID: HeaderName = HeaderName::from_static("dapr-caller-app-id");
const CALLEE_APP_ID: HeaderName = HeaderName::from_static("dapr-callee-app-id");

/// How the gateway calls apps.
pub struct Invoker {
    directory: Directory,
    /// Reads the `secretKeyRef` values of HTTPEndpoint headers, through the project's workers.
    bus: Arc<dyn Bus>,
    /// Calls the callee: hyper's client, as reqwest's cost a quarter of an invocation ([`DirectClient`]).
    calls: DirectClient<axum::body::Body>,
    /// Calls the caller's own app back and probes apps' health, as the platform calls apps of its own accord.
    app_calls: AppClient,
    egress: Egress,
    breakers: Breakers,
    health_probe: HealthProbe,
    probes: Mutex<HashMap<(String, String), Probe>>,
    /// A body up to this size is kept so that a retry can send it again; a larger one streams, unretried.
    replay_limit: usize,
}

/// A running health probe of one App ID.
struct Probe {
    /// What the probe was started for: a changed endpoint, token or path starts a new one.
    source: String,
    health: Arc<AppHealth>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Settings of an [`Invoker`].
#[derive(Clone, Debug)]
pub struct InvokeOptions {
    pub egress: Egress,
    pub health_probe: HealthProbe,
    pub directory_refresh: Duration,
    pub replay_limit: usize,
}

/// The request body as the attempts send it.
enum Payload {
    /// Kept whole: every attempt sends it.
    Replayable(Bytes),
    /// Streamed: the one attempt takes it.
    Streaming(Option<axum::body::Body>),
}

impl Invoker {
    pub fn new(store: outrigger_store::Store, bus: Arc<dyn Bus>, options: InvokeOptions) -> Invoker {
        Invoker {
            directory: Directory::new(store, options.directory_refresh),
            bus,
            calls: options.egress.direct_client(),
            app_calls: options.egress.app_client(),
            egress: options.egress,
            breakers: Breakers::new(),
            health_probe: options.health_probe,
            probes: Mutex::new(HashMap::new()),
            replay_limit: options.replay_limit,
        }
    }

    /// Forgets what the gateway knows of a project (it changed).
    pub async fn invalidate(&self, project_id: &str) {
        self.directory.invalidate(project_id).await;
    }

    /// Whether App IDs of the project are being probed.
    pub fn probes_project(&self, project_id: &str) -> bool {
        self.probes.lock().expect("probes lock").keys().any(|(project, _)| project == project_id)
    }

    /// Stops probing the project's App IDs that are gone or no longer have a health-check path (all of them when
    /// the project is gone). A probe whose endpoint changed is replaced on its next use instead.
    pub async fn prune_probes(&self, project_id: &ProjectId) {
        let still_probed: Vec<String> = match self.directory.project(project_id).await {
            Ok(directory) => directory
                .apps
                .iter()
                .filter(|(_, callee)| callee.identity.app_health_check_path.is_some())
                .map(|(name, _)| name.clone())
                .collect(),
            Err(err) if matches!(*err, outrigger_store::Error::NotFound { .. }) => Vec::new(),
            Err(err) => {
                tracing::warn!(%project_id, error = %err, "cannot read the project to stop stale health probes; they stop on a later change");
                return;
            }
        };
        self.probes
            .lock()
            .expect("probes lock")
            .retain(|(project, app), _| project != project_id.as_str() || still_probed.contains(app));
    }

    /// The names of the project's HTTP endpoints `tenant` may call, sorted.
    pub async fn http_endpoints(&self, tenant: &Tenant) -> Result<Vec<String>, Arc<outrigger_store::Error>> {
        let directory = self.directory.project(&tenant.project_id).await?;
        let mut names: Vec<String> = directory
            .http_endpoints
            .values()
            .filter(|endpoint| endpoint.applies_to(&tenant.app_id))
            .map(|endpoint| endpoint.metadata.name.clone())
            .collect();
        names.sort();
        Ok(names)
    }

    /// `tracing.samplingRate` of the caller's App ID's Configuration, if it sets one (and the project can be
    /// read).
    pub async fn sampling_rate(&self, tenant: &Tenant) -> Option<f64> {
        let directory = self.directory.project(&tenant.project_id).await.ok()?;
        directory.apps.get(&*tenant.app_id)?.sampling_rate
    }

    /// Whether the caller's App ID has an app endpoint the platform can call back (daprd's "app channel").
    pub async fn has_app_endpoint(&self, tenant: &Tenant) -> bool {
        let directory = self.directory.project(&tenant.project_id).await;
        directory.is_ok_and(|directory| {
            directory.apps.get(&*tenant.app_id).is_some_and(|app| app.identity.app_endpoint.is_some())
        })
    }

    /// POSTs the JSON `body` to `path` on the caller's own app, as the platform calls an app back (configuration
    /// updates). The caller's access-control policy governs apps calling it, not the platform, so it is not
    /// consulted; the egress rule is. The app's status, or why the call was not made.
    pub async fn post_to_own_app(
        &self,
        tenant: &Tenant,
        path: &str,
        body: String,
    ) -> Result<axum::http::StatusCode, String> {
        let directory = self.directory.project(&tenant.project_id).await.map_err(|err| err.to_string())?;
        let app = directory.apps.get(&*tenant.app_id).ok_or_else(|| format!("App ID {} is gone", tenant.app_id))?;
        let base = match &app.endpoint_url {
            Some(Ok(url)) => url,
            Some(Err(err)) => return Err(format!("the app endpoint is not a valid URL: {err}")),
            None => return Err(format!("App ID {} has no app endpoint", tenant.app_id)),
        };
        self.egress.check_url(base).map_err(|refused| refused.to_string())?;
        let channel = AppChannel { endpoint: base.to_string(), app_token: app.identity.app_token.clone() };
        let call = channel.call(Method::POST, path, OWN_APP_TIMEOUT).body("application/json", body);
        let answer = self.app_calls.send(call).await;
        answer.map(|answer| answer.status).map_err(|err| format!("the app could not be reached: {err}"))
    }

    /// Calls `target` for `tenant` and returns the callee's answer, whatever its status.
    pub async fn invoke(
        &self,
        tenant: &Tenant,
        target: &str,
        invocation: Invocation,
    ) -> Result<axum::response::Response, InvokeError> {
        let id = || target.to_owned();
        let directory = self
            .directory
            .project(&tenant.project_id)
            .await
            .map_err(|source| InvokeError::Directory { id: id(), source })?;
        let path = invocation.path_and_query.split('?').next().unwrap_or_default().to_owned();
        let mut headers = forwarded_headers(&invocation.headers);
        let (channel, base) = if let Some(callee) = directory.apps.get(target) {
            let verb = invocation.method.as_str();
            if let Some(access_control) = &callee.access_control {
                if !access_control.allows(&tenant.project, &tenant.app_id, verb, &path) {
                    return Err(InvokeError::Denied {
                        project: tenant.project.to_string(),
                        caller: tenant.app_id.to_string(),
                        method: path,
                        verb: verb.to_owned(),
                    });
                }
            }
            let identity = &callee.identity;
            let endpoint = identity.app_endpoint.clone().ok_or_else(|| InvokeError::NoEndpoint { id: id() })?;
            if identity.app_protocol == "grpc" {
                return Err(InvokeError::GrpcApp { id: id() });
            }
            let channel = AppChannel { endpoint, app_token: identity.app_token.clone() };
            // The egress rule first: an endpoint it refuses is never probed, so its health tells nothing.
            let base = match &callee.endpoint_url {
                Some(Ok(url)) => url.clone(),
                Some(Err(err)) => return Err(bad_url(id(), err)),
                None => return Err(InvokeError::NoEndpoint { id: id() }),
            };
            self.egress.check_url(&base).map_err(|refused| InvokeError::Refused { id: id(), refused })?;
            if let Some(health_path) = &identity.app_health_check_path {
                if !self.health(tenant, target, &channel, health_path).is_healthy() {
                    return Err(InvokeError::Unhealthy { id: id(), path: health_path.clone() });
                }
            }
            headers.insert(CALLER_APP_ID, header_value(&tenant.app_id));
            headers.insert(CALLEE_APP_ID, header_value(target));
            (channel, base)
        } else if let Some(endpoint) =
            // An endpoint scoped to other App IDs does not exist for this caller, as in daprd.
            directory.http_endpoints.get(target).filter(|endpoint| endpoint.applies_to(&tenant.app_id))
        {
            let bad_endpoint = |reason| InvokeError::BadEndpoint { id: id(), reason };
            let channel = endpoint_channel(&endpoint.spec).map_err(bad_endpoint)?;
            // The egress rule first: an endpoint it refuses never has its header secrets read.
            let base = reqwest::Url::parse(&channel.endpoint).map_err(|err| bad_url(id(), err))?;
            self.egress.check_url(&base).map_err(|refused| InvokeError::Refused { id: id(), refused })?;
            let endpoint_headers = match directory.endpoint_headers(target) {
                Some(known) => known,
                None => {
                    let read = self.endpoint_headers(tenant, endpoint).await.map_err(bad_endpoint)?;
                    directory.remember_endpoint_headers(target, &read);
                    read
                }
            };
            headers.extend(endpoint_headers);
            (channel, base)
        } else {
            return Err(InvokeError::UnknownTarget { id: id() });
        };
        // The base's host was checked: the path joined to it leaves it as it is.
        let uri = AppChannel::uri(&base, &invocation.path_and_query).map_err(|err| bad_url(id(), err))?;
        if let Some(token) = &channel.app_token {
            // The control API takes only tokens a header can carry; one stored before it checked is refused here.
            let token = HeaderValue::from_str(token).map_err(|_| InvokeError::BadEndpoint {
                id: id(),
                reason: "its app token cannot be sent as a header; set another with `outrigger appid update`".into(),
            })?;
            headers.insert(crate::api::API_TOKEN, token);
        }

        let mut policy = Policy::resolve(&directory.resiliencies, &tenant.app_id, Target::App(target));
        let mut payload = if policy.retry.is_some() {
            match read_up_to(invocation.body, self.replay_limit).await.map_err(InvokeError::Body)? {
                Ok(whole) => Payload::Replayable(whole),
                Err(streaming) => {
                    // Too large to keep for a retry: sent once.
                    policy.retry = None;
                    Payload::Streaming(Some(streaming))
                }
            }
        } else {
            Payload::Streaming(Some(invocation.body))
        };
        if matches!(payload, Payload::Replayable(_)) {
            headers.remove(axum::http::header::CONTENT_LENGTH);
        }
        let breaker = self.breakers.get(tenant.project_id.as_str(), &policy);
        let attempt = || {
            let body = match &mut payload {
                Payload::Replayable(bytes) => axum::body::Body::from(bytes.clone()),
                Payload::Streaming(body) => body.take().unwrap_or_default(),
            };
            let mut request = axum::http::Request::new(body);
            *request.method_mut() = invocation.method.clone();
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = headers.clone();
            self.calls.request(request)
        };
        let judge = |result: &Result<axum::http::Response<_>, _>| match result {
            Ok(response) if response.status().as_u16() >= 400 => Some(Failure::HttpStatus(response.status().as_u16())),
            Ok(_) => None,
            Err(_) => Some(Failure::Error),
        };
        let caller = resiliency::Caller::app(tenant.metric_labels());
        match resiliency::execute(&policy, breaker.as_deref(), caller, attempt, judge).await {
            Outcome::Finished(Ok(response)) => Ok(response.map(axum::body::Body::new)),
            Outcome::Finished(Err(err)) => Err(match refusal_in(&err) {
                Some(refused) => InvokeError::Refused { id: id(), refused: refused.clone() },
                None => InvokeError::Unreachable { id: id(), reason: error_chain(&err) },
            }),
            Outcome::TimedOut(after) => Err(InvokeError::TimedOut { id: id(), after }),
            Outcome::CircuitOpen => Err(InvokeError::CircuitOpen { id: id() }),
        }
    }

    /// The headers an HTTPEndpoint adds to every call, `secretKeyRef` values read from the secret store the
    /// endpoint names (by a worker of the project, which holds the project's secret stores).
    async fn endpoint_headers(&self, tenant: &Tenant, endpoint: &Document) -> Result<HeaderMap, String> {
        let mut headers = HeaderMap::new();
        for header in endpoint.spec.get("headers").and_then(Value::as_array).into_iter().flatten() {
            let name = header.get("name").and_then(Value::as_str).unwrap_or_default();
            let value = match (header.get("value").and_then(Value::as_str), header.get("secretKeyRef")) {
                (Some(value), _) => value.to_owned(),
                (None, Some(reference)) => {
                    let text = |field: &str| reference.get(field).and_then(Value::as_str).map(str::to_owned);
                    let call = ResolveSecretRef {
                        what: format!("header '{name}' of HTTPEndpoint {}", endpoint.metadata.name),
                        store: endpoint.secret_store().map(str::to_owned),
                        name: text("name").unwrap_or_default(),
                        key: text("key"),
                    };
                    match outrigger_bus::send(self.bus.as_ref(), tenant.clone(), crate::observe::bus_trace(), call)
                        .await
                    {
                        Ok(Ok(value)) => value,
                        Ok(Err(err)) => return Err(err.to_string()),
                        Err(err) => return Err(format!("{err}; retry shortly")),
                    }
                }
                (None, None) => String::new(),
            };
            let name = HeaderName::try_from(name).map_err(|_| format!("'{name}' is not a valid header name"))?;
            let value =
                HeaderValue::from_str(&value).map_err(|_| format!("the value of header '{name}' is not valid"))?;
            headers.insert(name, value);
        }
        Ok(headers)
    }

    /// The health of an App ID with a health-check path, probed while the gateway runs.
    fn health(&self, tenant: &Tenant, app: &str, channel: &AppChannel, path: &str) -> Arc<AppHealth> {
        let key = (tenant.project_id.as_str().to_owned(), app.to_owned());
        let source = format!("{}|{:?}|{path}", channel.endpoint, channel.app_token);
        let mut probes = self.probes.lock().expect("probes lock");
        if let Some(probe) = probes.get(&key).filter(|probe| probe.source == source) {
            return Arc::clone(&probe.health);
        }
        let health = Arc::new(AppHealth::default());
        let task = tokio::spawn(health::probe(
            self.app_calls.clone(),
            channel.clone(),
            path.to_owned(),
            self.health_probe,
            Arc::clone(&health),
            || {},
        ));
        probes.insert(key, Probe { source, health: Arc::clone(&health), task });
        health
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Removes the headers `listed` names from `headers`. Each header is looked at once, and only one found is
/// removed: a removal hashes its name (~230 instructions), and the names looked for are mostly absent.
fn strip(headers: &mut HeaderMap, listed: impl Fn(&HeaderName) -> bool) {
    let found: Vec<HeaderName> = headers.keys().filter(|name| listed(name)).cloned().collect();
    for name in found {
        headers.remove(name);
    }
}

/// The caller's headers that go on to the callee.
fn forwarded_headers(incoming: &HeaderMap) -> HeaderMap {
    let mut headers = incoming.clone();
    strip(&mut headers, |name| hop_by_hop(name) || platform_only(name));
    // `Authorization: Basic base64("dapr-app-id:<id>")` selected the callee; it is not the callee's business.
    if incoming.get(axum::http::header::AUTHORIZATION).is_some_and(|value| basic_app_id(value).is_some()) {
        headers.remove(axum::http::header::AUTHORIZATION);
    }
    headers
}

/// The callee named by `Authorization: Basic base64("dapr-app-id:<id>")`, the form Dapr accepts where a custom
/// header cannot be set.
pub fn basic_app_id(value: &HeaderValue) -> Option<String> {
    use base64::Engine;
    let encoded = value.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let (user, app_id) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    (user == "dapr-app-id" && !app_id.is_empty()).then(|| app_id.to_owned())
}

/// The headers an answer carries back to the caller.
pub fn returned_headers(response: &axum::response::Response) -> HeaderMap {
    let mut headers = response.headers().clone();
    strip(&mut headers, hop_by_hop);
    headers
}

/// An app's or HTTP endpoint's base URL that does not parse.
fn bad_url(id: String, err: impl std::fmt::Display) -> InvokeError {
    InvokeError::BadEndpoint { id, reason: format!("the endpoint URL is not valid: {err}") }
}

/// Where an HTTPEndpoint is called.
fn endpoint_channel(spec: &Value) -> Result<AppChannel, String> {
    let base_url = spec.get("baseUrl").and_then(Value::as_str).ok_or("the HTTPEndpoint has no baseUrl")?;
    Ok(AppChannel { endpoint: base_url.to_owned(), app_token: None })
}

/// Reads a body whole if it is at most `limit` bytes; otherwise the part read and the rest, as one stream.
async fn read_up_to(body: axum::body::Body, limit: usize) -> Result<Result<Bytes, axum::body::Body>, String> {
    let mut body = body;
    let mut read = Vec::new();
    let mut size = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| err.to_string())?;
        if let Ok(data) = frame.into_data() {
            size += data.len();
            read.push(data);
            if size > limit {
                let head = futures_util::stream::iter(read.into_iter().map(Ok::<_, axum::Error>));
                return Ok(Err(axum::body::Body::from_stream(head.chain(body.into_data_stream()))));
            }
        }
    }
    Ok(Ok(read.concat().into()))
}

#[cfg(test)]
mod tests {
    use axum::http::header;

    use super::*;

    #[test]
    fn hop_by_hop_and_platform_headers_stay_behind() {
        let mut incoming = HeaderMap::new();
        for (name, value) in [
            ("host", "gateway:3500"),
            ("dapr-api-token", "caller-secret"),
            ("dapr-app-id", "callee"),
            ("proxy-authorization", "Basic eDp5"),
            ("te", "trailers"),
            ("keep-alive", "timeout=5"),
            ("connection", "keep-alive"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authenticate", "Basic"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("x-custom", "one"),
            ("x-custom", "two"),
            ("authorization", "Bearer kept"),
        ] {
            incoming.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let forwarded = forwarded_headers(&incoming);
        let mut names: Vec<&str> = forwarded.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["authorization", "x-custom"]);
        assert_eq!(forwarded.get_all("x-custom").iter().collect::<Vec<_>>(), ["one", "two"]);
        // The platform's names, as the gateway reads them, are the ones left behind.
        assert!([header::HOST, crate::api::API_TOKEN, DAPR_APP_ID].iter().all(platform_only));
        assert!(!platform_only(&header::AUTHORIZATION) && !hop_by_hop(&header::CONTENT_TYPE));

        let mut selecting = incoming.clone();
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode("dapr-app-id:callee");
        selecting.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {basic}")).unwrap());
        assert!(forwarded_headers(&selecting).get(header::AUTHORIZATION).is_none(), "it chose the callee");
    }
}
