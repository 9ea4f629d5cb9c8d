//! The data-plane edge: the Dapr HTTP API (port 3500 by default) and the Dapr gRPC API (50001).
//!
//! Every call is authenticated by its `dapr-api-token` (which names the project and App ID), limited, and
//! sent over the bus to the worker pool serving the project — except service invocation, which the gateway
//! carries to the callee itself ([`invoke`]). Health probes answer without a token, from
//! the first moment, because the SDKs block on them before anything else. Routes of building blocks not
//! served yet answer daprd's `ERR_API_UNIMPLEMENTED` (HTTP 501 / gRPC `Unimplemented`).

mod api;
mod auth;
mod dapr_error;
pub mod extended_metadata;
mod grpc_codec;
mod invoke;
mod observe;
mod path;
mod rate_limit;
mod stream_guard;
mod stream_listing;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use outrigger_bus::{Bus, DataCall, GetMetadata, MetadataInfo, Tenant};
use outrigger_outbound::health::HealthProbe;
use outrigger_outbound::Egress;
use outrigger_store::{ProjectId, Store};

pub use api::grpc::grpc_router;
pub use api::http::http_router;
pub use dapr_error::DaprError;
use dapr_error::Refusal;
pub use path::clean_path;

/// What `/v1.0/metadata` reports as the runtime version.
pub const RUNTIME_VERSION: &str = concat!("outrigger-", env!("CARGO_PKG_VERSION"));

/// How the gateway is set up.
#[derive(Clone, Debug)]
pub struct Options {
    /// Largest request body (HTTP) or message (gRPC), in bytes.
    pub max_body_bytes: usize,
    /// Requests per second each App ID may make, unless its project has its own quota; 0 = unlimited.
    pub rate_limit_per_second: u32,
    /// How long a token lookup is trusted; revocations take effect within this time.
    pub token_cache_ttl: Duration,
    /// Whether invocations may reach private, loopback and link-local addresses.
    pub egress: Egress,
    /// How invoked apps with a health-check path are probed.
    pub health_probe: HealthProbe,
    /// How long the App IDs, access control and Resiliency documents read for invocations are used before
    /// they are read again (change events make it sooner).
    pub directory_refresh: Duration,
    /// Where every call let in is recorded for the project's API log.
    pub api_log: outrigger_telemetry::ApiLog,
    /// The share of new traces whose spans are exported (0 to 1) for App IDs whose Configuration sets no
    /// `tracing.samplingRate`.
    pub trace_sampling_rate: f64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_body_bytes: 4 * 1024 * 1024,
            rate_limit_per_second: 0,
            token_cache_ttl: Duration::from_secs(2),
            egress: Egress::default(),
            health_probe: HealthProbe::default(),
            directory_refresh: Duration::from_secs(30),
            api_log: outrigger_telemetry::ApiLog::disabled(),
            trace_sampling_rate: 1.0,
        }
    }
}

struct Inner {
    bus: Arc<dyn Bus>,
    invoker: invoke::Invoker,
    workflows: outrigger_workflow::Engine,
    tokens: auth::TokenResolver,
    limiter: rate_limit::RateLimiter,
    options: Options,
    /// Streaming subscriptions of every gateway, for `/v1.0/metadata`.
    streams: Arc<stream_listing::StreamListing>,
    /// The guards of this gateway's open streams, which end them with their credentials.
    stream_guards: stream_guard::Guards,
    /// Configuration subscriptions this gateway follows.
    configuration_subscriptions: api::ConfigurationSubscriptions,
    /// The control plane, where apps' extended metadata is kept.
    control_plane: Store,
    /// Cancelled when the process shuts down: calls that would wait without end (workflow waits and work-item
    /// streams) end then, so the graceful shutdown is not held up by clients that never hang up.
    closing: tokio_util::sync::CancellationToken,
}

/// What `/v1.0/metadata` and `GetMetadata` answer.
struct AppMetadata {
    /// Components and subscriptions, from a worker and the stream listing.
    info: MetadataInfo,
    /// Attributes the app set on itself.
    extended: BTreeMap<String, String>,
    /// Names of the HTTP endpoints the app may call.
    http_endpoints: Vec<String>,
}

/// The gateway's shared state: cheap to clone.
#[derive(Clone)]
pub struct Gateway(Arc<Inner>);

impl Gateway {
    /// A gateway sending calls over `bus`, resolving tokens in `control_plane`.
    pub fn new(bus: Arc<dyn Bus>, control_plane: Store, options: Options) -> Gateway {
        let invoke_options = invoke::InvokeOptions {
            egress: options.egress.clone(),
            health_probe: options.health_probe,
            directory_refresh: options.directory_refresh,
            replay_limit: options.max_body_bytes,
        };
        let closing = tokio_util::sync::CancellationToken::new();
        outrigger_telemetry::metrics().set_token_cache_ttl(options.token_cache_ttl);
        Gateway(Arc::new(Inner {
            invoker: invoke::Invoker::new(control_plane.clone(), Arc::clone(&bus), invoke_options),
            bus,
            workflows: outrigger_workflow::Engine::new(control_plane.workflow_tables()),
            streams: stream_listing::StreamListing::start(control_plane.clone(), closing.clone()),
            stream_guards: stream_guard::Guards::default(),
            configuration_subscriptions: api::ConfigurationSubscriptions::default(),
            tokens: auth::TokenResolver::new(control_plane.clone(), options.token_cache_ttl),
            control_plane,
            limiter: rate_limit::RateLimiter::default(),
            options,
            closing,
        }))
    }

    /// The process is shutting down: long waits and work-item streams end now.
    pub fn close(&self) {
        self.0.closing.cancel();
    }

    /// A project changed: what the gateway keeps of it is read again on its next use, and its open streams
    /// check at once that their App ID and token still exist.
    pub async fn invalidate(&self, project_id: &str) {
        self.0.invoker.invalidate(project_id).await;
        self.0.stream_guards.project_changed(project_id);
        if self.0.invoker.probes_project(project_id) {
            let (gateway, project_id) = (self.clone(), ProjectId::received(project_id.to_owned()));
            tokio::spawn(async move { gateway.0.invoker.prune_probes(&project_id).await });
        }
    }

    /// What `/v1.0/metadata` tells the caller: components and subscriptions (its streams on any gateway
    /// included), HTTP endpoints and extended metadata. What the control plane fails to give is left out.
    async fn metadata(&self, tenant: &Tenant) -> Result<AppMetadata, DaprError> {
        let mut metadata = self.call(tenant.clone(), GetMetadata).await?;
        match self.0.streams.of(tenant).await {
            Ok(streams) => metadata.subscriptions.extend(streams),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the app's streaming subscriptions; metadata leaves them out")
            }
        }
        let extended = extended_metadata::of(&self.0.control_plane, tenant).await.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "cannot read the app's extended metadata; metadata leaves it out");
            BTreeMap::new()
        });
        let http_endpoints = self.0.invoker.http_endpoints(tenant).await.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "cannot read the project's HTTP endpoints; metadata leaves them out");
            Vec::new()
        });
        Ok(AppMetadata { info: metadata, extended, http_endpoints })
    }

    /// Sets an attribute of the caller's extended metadata.
    async fn set_metadata(&self, tenant: &Tenant, key: &str, value: &str) -> Result<(), DaprError> {
        Ok(extended_metadata::set(&self.0.control_plane, tenant, key, value).await?)
    }

    /// Calls an App ID or HTTP endpoint of the caller's project.
    async fn invoke(
        &self,
        tenant: &Tenant,
        target: &str,
        invocation: invoke::Invocation,
    ) -> Result<axum::response::Response, invoke::InvokeError> {
        self.0.invoker.invoke(tenant, target, invocation).await
    }

    /// The share of new traces started by `tenant`'s calls that are recorded: its Configuration's
    /// `tracing.samplingRate`, or the installation's default.
    async fn sampling_rate(&self, tenant: &Tenant) -> f64 {
        self.0.invoker.sampling_rate(tenant).await.unwrap_or(self.0.options.trace_sampling_rate)
    }

    fn options(&self) -> &Options {
        &self.0.options
    }

    /// The caller a token identifies, if it may make a call now. A caller refused for its rate is named with
    /// the refusal, so that the refused call is still counted and logged for its project.
    async fn admit(&self, token: Option<&str>) -> Result<Tenant, (Refusal, Option<Tenant>)> {
        let token = token.map(str::trim).filter(|token| !token.is_empty()).ok_or((Refusal::MissingToken, None))?;
        let (tenant, rate_quota) = match self.0.tokens.resolve(token).await {
            Ok(Some(owner)) => owner,
            Ok(None) => return Err((Refusal::WrongToken, None)),
            Err(err) => {
                tracing::error!(error = %err, "token lookup failed");
                return Err((Refusal::Unavailable, None));
            }
        };
        let rate = rate_quota.per_second(self.0.options.rate_limit_per_second);
        if !self.0.limiter.admit(&tenant, rate) {
            return Err((Refusal::RateLimited(rate), Some(tenant)));
        }
        Ok(tenant)
    }

    /// Sends a call to the project's workers and takes its answer.
    async fn call<C: DataCall>(&self, tenant: Tenant, call: C) -> Result<C::Reply, DaprError> {
        let started = std::time::Instant::now();
        let answer = outrigger_bus::send(self.0.bus.as_ref(), tenant, observe::bus_trace(), call).await;
        outrigger_telemetry::metrics().bus_round_trip(C::NAME, answer.is_ok(), started.elapsed());
        Ok(answer??)
    }
}
