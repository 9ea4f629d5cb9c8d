//! Server configuration: built-in defaults, then an optional TOML file (`--config` / `OUTRIGGER_CONFIG`),
//! then `OUTRIGGER_*` environment variables; validated once, then passed down as plain values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Environment variables with the `OUTRIGGER_` prefix that belong to the CLI client, not the server.
const CLIENT_VARIABLES: [&str; 6] = ["url", "token", "project", "config", "org", "config_dir"];

/// How log lines are written.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// How spans travel to the OpenTelemetry collector.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (a collector's port 4317).
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP over HTTP with protobuf bodies, posted to `<endpoint>/v1/traces` (a collector's port 4318).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The exporter's name for it.
    pub fn exporter_protocol(self) -> outrigger_telemetry::trace::OtlpProtocol {
        match self {
            OtlpProtocol::Grpc => outrigger_telemetry::trace::OtlpProtocol::Grpc,
            OtlpProtocol::HttpProtobuf => outrigger_telemetry::trace::OtlpProtocol::HttpBinary,
        }
    }
}

/// Everything the server processes read at start. Each field is also an environment variable:
/// `OUTRIGGER_` + the field name in upper case (e.g. `data_dir` = `OUTRIGGER_DATA_DIR`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the embedded default keeps its data: the SQLite control-plane database (and its API log) and the
    /// generated operator token. Default `./.outrigger`.
    pub data_dir: PathBuf,
    /// Control-plane database: `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`. Default: a SQLite file
    /// `outrigger.db` in `data_dir`. On SQLite the API log is kept in a file beside it (`outrigger-api-log.db`).
    pub database_url: Option<String>,
    /// Operator token for the control API. When unset, the embedded default generates one on first start
    /// and stores it in `data_dir/admin-token`; `control-api` requires it.
    pub admin_token: Option<String>,
    /// Control API (and console) listen address. Default `0.0.0.0:8080`.
    pub control_api_addr: SocketAddr,
    /// Dapr HTTP API listen address. Default `0.0.0.0:3500` (the Dapr default, so SDKs find it unset).
    pub http_addr: SocketAddr,
    /// Dapr gRPC API listen address. Default `0.0.0.0:50001`.
    pub grpc_addr: SocketAddr,
    /// What projects report as their `httpEndpoint` (apps' `DAPR_HTTP_ENDPOINT`). Default
    /// `http://127.0.0.1:<http port>`; set it to the address apps reach behind a load balancer.
    pub public_http_endpoint: Option<String>,
    /// What projects report as their `grpcEndpoint` (apps' `DAPR_GRPC_ENDPOINT`). Default
    /// `http://127.0.0.1:<grpc port>`.
    pub public_grpc_endpoint: Option<String>,
    /// Largest control-API request body in bytes; larger ones get 413. Default 4 MiB.
    pub control_api_max_body_bytes: usize,
    /// Largest Dapr API request body (HTTP) or message (gRPC) in bytes; larger ones get 413 /
    /// `RESOURCE_EXHAUSTED`. Default 4 MiB, daprd's default.
    pub gateway_max_body_bytes: usize,
    /// App IDs a project may have unless the operator set its own quota; 0 = no limit. Default 0.
    pub quota_app_ids: u32,
    /// Components a project may declare unless the operator set its own quota; 0 = no limit. Default 0.
    pub quota_components: u32,
    /// Bytes (keys and values) a project may keep in its managed kvstore unless the operator set its own quota;
    /// writes that would go over get 429. 0 = no limit. Default 0.
    pub quota_stored_bytes: u64,
    /// Requests per second each App ID may make through a gateway (excess gets 429 with `Retry-After`), unless
    /// its project has its own quota; 0 = unlimited. Default 0.
    pub rate_limit_per_second: u32,
    /// How long a gateway trusts a token lookup; a revoked token stops working within this time. Default 2.
    pub token_cache_seconds: u64,
    /// How long a client has to send a request's head (request line and headers), on every listener, in
    /// milliseconds; then its connection is closed. It runs from the connection's opening until the client shows
    /// its protocol (TLS handshake and HTTP/2's preface included), then for an HTTP/1.1 head from its first byte,
    /// and from the end of each answer for the next one, so idle keep-alive connections close after it too.
    /// HTTP/2 connections are watched by keepalive pings instead. An HTTP/1.1 head's deadline may fire up to a
    /// sixteenth late (`outrigger_outbound::deadline`). Default 10000.
    pub header_read_timeout_ms: u64,
    /// How long a request body may send nothing while the server reads it, in milliseconds; then the request
    /// gets a 400 and its connection is closed. gRPC requests are exempt (their request streams pause by design:
    /// a streaming subscriber waits for events); HTTP/2 connections are checked with keepalive pings. Default
    /// 30000.
    pub body_idle_timeout_ms: u64,
    /// Open connections one client address may hold on each listener; further ones are closed at once. 0 = no
    /// cap. Behind a load balancer that does not pass client addresses on, every client has the balancer's
    /// address: raise it or set 0 there. Default 256.
    pub max_connections_per_client: u32,
    /// Largest request header section in bytes, HTTP/1.1 and HTTP/2 alike (at least 8192); larger ones get 431.
    /// HTTP/2 refuses such a stream before any handler runs, so gRPC clients report it as UNKNOWN "mapped from
    /// HTTP status 431"; tokens far shorter than this get UNAUTHENTICATED. Default 65536.
    pub max_header_bytes: u32,
    /// NATS server of the distributed form's bus, e.g. `nats://127.0.0.1:4222`; required by `gateway` and
    /// `worker`. The all-in-one process uses an in-process bus and ignores it.
    pub nats_url: Option<String>,
    /// First token of every bus subject, so several installations can share one NATS. Default `outrigger`.
    pub bus_subject_prefix: String,
    /// How long a gateway waits for a worker's answer, in milliseconds. Default 15000.
    pub bus_timeout_ms: u64,
    /// Backing store of every project's managed `kvstore`: `sqlite://PATH`, `postgres://...` or
    /// `redis://HOST:PORT`. Default: `kvstore.db` in `data_dir` with SQLite; the control-plane database when
    /// that is PostgreSQL.
    pub managed_kvstore_url: Option<String>,
    /// Broker behind every project's managed `pubsub`: `sqlite://PATH` (a durable queue in a file),
    /// `postgres://...` (a durable queue in PostgreSQL), `nats://HOST:PORT` (JetStream, file storage) or
    /// `redis://HOST:PORT` (streams). Default: `pubsub.db` in `data_dir` with SQLite; JetStream on
    /// `nats_url` when the control plane is PostgreSQL and `nats_url` is set.
    pub managed_pubsub_url: Option<String>,
    /// How often a worker re-reads a project's components from the control-plane database, in
    /// milliseconds. Change events from the control API reach workers at once; this re-read is the safety
    /// net for a lost event. Default 5000.
    pub component_refresh_ms: u64,
    /// How long one call to a component (a state operation, a publish, a lock, a configuration read, an output
    /// binding) may take before it fails with a 500-class error, in milliseconds, unless a Resiliency policy gives
    /// the component a timeout of its own; the deadline may fire up to a sixteenth late
    /// (`outrigger_outbound::deadline`). Default 5000.
    pub store_timeout_ms: u64,
    /// Whether the platform calls app endpoints and HTTP endpoints (invocation, pub/sub push, health probes)
    /// and lets components dial hosts at private, loopback and link-local addresses. Addresses are judged
    /// after DNS resolution, on the peer actually connected and on every redirect; the platform's own
    /// services (its databases, brokers, NATS and listeners) are refused whatever this says. Default: `true` for the all-in-one embedded default (apps run beside it), `false`
    /// for `gateway` and `worker` processes (their private network holds the platform's own services).
    pub allow_private_endpoints: Option<bool>,
    /// Address ranges tenants' endpoints and components never reach, comma-separated CIDRs (e.g.
    /// `10.20.0.0/16,192.0.2.10/32`), on top of the platform's own services. Default none.
    pub egress_deny: Option<String>,
    /// Address ranges tenants' endpoints and components may reach even when private addresses are refused,
    /// comma-separated CIDRs (e.g. a VPC range holding tenants' databases). The platform's own services and
    /// `egress_deny` still win. Default none.
    pub egress_allow: Option<String>,
    /// Whether projects may use secret stores that read the host the worker runs on
    /// (`secretstores.local.file`, `secretstores.local.env`; the platform's own `OUTRIGGER_*` variables are never
    /// served). Default: `true` for the all-in-one embedded default (the host is the user's machine), `false`
    /// for `worker` processes (the host is the platform's).
    pub allow_host_secret_stores: Option<bool>,
    /// PEM certificate chain: when set (with `tls_key_file`), every listener (Dapr HTTP, Dapr gRPC, control
    /// API) serves TLS, HTTP/2 negotiated by ALPN. Default unset: plain HTTP and h2c.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Whether every Dapr call an App ID makes is kept in its project's API log (read with `outrigger logs`
    /// and `GET /api/v1/projects/{p}/logs`, and counted for charts and usage). Default `true`.
    pub api_log: bool,
    /// How long the API log keeps a call, in hours. Default 72.
    pub api_log_retention_hours: u64,
    /// How long an access token from `POST /api/v1/auth/login` or `/refresh` works, in seconds. Default 300.
    /// A session that ends (logout, removal from the organization) refuses its tokens at once regardless.
    pub access_token_ttl_secs: u64,
    /// How long a session may be refreshed without signing in again, in hours. Default 336 (14 days).
    pub refresh_token_ttl_hours: u64,
    /// How often a new key starts signing access tokens, in hours; the one before keeps verifying the tokens
    /// it signed. Default 24.
    pub signing_key_rotation_hours: u64,
    /// The OpenID Connect issuer users sign in with (its discovery document is at
    /// `<issuer>/.well-known/openid-configuration`). Unset: single sign-on is off. Needs the three below.
    pub oidc_issuer: Option<String>,
    /// This installation's client id at the issuer.
    pub oidc_client_id: Option<String>,
    /// Its client secret.
    pub oidc_client_secret: Option<String>,
    /// The control API's callback as users' browsers reach it: `https://<host>/api/v1/auth/oidc/callback`,
    /// registered at the issuer.
    pub oidc_redirect_url: Option<String>,
    /// How long the audit trail keeps a control-plane change, in days. Default 365.
    pub audit_retention_days: u64,
    /// Failed sign-ins for one email within 15 minutes after which sign-in is refused for it until those 15
    /// minutes end. Default 5.
    pub login_max_failures: u32,
    /// How many calls the API log keeps per project at most (the oldest go first). Default 100000.
    pub api_log_max_calls_per_project: u64,
    /// Whether the process counts calls in Prometheus series (daprd's `--enable-metrics`). `false`: nothing is
    /// counted and no `/metrics` is served (`metrics_addr` must be unset). Default `true`.
    pub metrics: bool,
    /// Address of a separate listener serving only `GET /metrics` (Prometheus text), without authentication.
    /// Unset: processes with a control API serve `/metrics` there (with the operator token); others serve none.
    pub metrics_addr: Option<SocketAddr>,
    /// How many (project, App ID) pairs get metric series of their own; later ones are counted under
    /// `project="other", project_id="other", app_id="other"`. Default 100.
    pub metrics_tenant_limit: usize,
    /// Address of an OpenTelemetry collector's OTLP receiver (plaintext), e.g. `http://otel-collector:4317` (gRPC) or
    /// `http://otel-collector:4318` (HTTP). When set, every process exports the spans of the calls it records (the
    /// gateway's per call, the worker's per bus call, each delivery to an app). Unset: nothing is exported; trace
    /// context is still taken from callers, started when absent, passed on and returned. Default unset.
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http/protobuf` (the names of OpenTelemetry's `OTEL_EXPORTER_OTLP_PROTOCOL`): how spans reach
    /// `otlp_endpoint`; over HTTP they are posted to `<otlp_endpoint>/v1/traces`. Default `grpc`.
    pub otlp_protocol: OtlpProtocol,
    /// How often recorded spans are sent to `otlp_endpoint`, in milliseconds. Default 5000.
    pub otlp_flush_ms: u64,
    /// Whether calls carry W3C trace context: the gateway continues a caller's `traceparent` (or starts a
    /// trace), passes it on to workers, apps and CloudEvents, and returns it. `false`: no trace context is
    /// made or returned (a caller's own `traceparent` is passed on as it came, like any other header), and no
    /// span is recorded (`otlp_endpoint` must be unset). Default `true`.
    pub trace_context: bool,
    /// The share of new traces recorded, from 0 to 1, for App IDs whose Configuration sets no
    /// `tracing.samplingRate` (which wins, as in daprd; a caller's sampled `traceparent` is followed). Default 1.
    pub trace_sampling_rate: f64,
    /// `text` or `json`. Default `text`.
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax, e.g. `info,outrigger_store=debug`. Default `info`. A release build logs down to
    /// `debug`: `trace` events are compiled out.
    pub log: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from(".outrigger"),
            database_url: None,
            admin_token: None,
            control_api_addr: ([0, 0, 0, 0], 8080).into(),
            http_addr: ([0, 0, 0, 0], 3500).into(),
            grpc_addr: ([0, 0, 0, 0], 50001).into(),
            public_http_endpoint: None,
            public_grpc_endpoint: None,
            control_api_max_body_bytes: 4 * 1024 * 1024,
            gateway_max_body_bytes: 4 * 1024 * 1024,
            quota_app_ids: 0,
            quota_components: 0,
            quota_stored_bytes: 0,
            rate_limit_per_second: 0,
            token_cache_seconds: 2,
            header_read_timeout_ms: 10_000,
            body_idle_timeout_ms: 30_000,
            max_connections_per_client: 256,
            max_header_bytes: 64 * 1024,
            nats_url: None,
            bus_subject_prefix: "outrigger".to_owned(),
            bus_timeout_ms: 15_000,
            managed_kvstore_url: None,
            managed_pubsub_url: None,
            component_refresh_ms: 5000,
            store_timeout_ms: 5000,
            allow_private_endpoints: None,
            egress_deny: None,
            egress_allow: None,
            allow_host_secret_stores: None,
            tls_cert_file: None,
            tls_key_file: None,
            api_log: true,
            api_log_retention_hours: 72,
            access_token_ttl_secs: 300,
            refresh_token_ttl_hours: 336,
            signing_key_rotation_hours: 24,
            login_max_failures: 5,
            audit_retention_days: 365,
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret: None,
            oidc_redirect_url: None,
            api_log_max_calls_per_project: 100_000,
            metrics: true,
            metrics_addr: None,
            metrics_tenant_limit: 100,
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::Grpc,
            otlp_flush_ms: 5000,
            trace_context: true,
            trace_sampling_rate: 1.0,
            log_format: LogFormat::Text,
            log: "info".to_owned(),
        }
    }
}

/// Shortest operator token accepted from configuration.
const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Smallest `max_header_bytes`: hyper's HTTP/1.1 read buffer cannot be smaller.
const MIN_HEADER_BYTES: u32 = 8192;

impl Config {
    /// The single-sign-on provider, when all four settings are given.
    pub fn oidc(&self) -> Option<outrigger_control_api::OidcOptions> {
        Some(outrigger_control_api::OidcOptions {
            issuer: self.oidc_issuer.clone()?,
            client_id: self.oidc_client_id.clone()?,
            client_secret: self.oidc_client_secret.clone()?,
            redirect_url: self.oidc_redirect_url.clone()?,
        })
    }

    /// Reads defaults, then `file` if given, then the environment, and validates the result.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                bail!("configuration file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let env = Env::prefixed("OUTRIGGER_").filter(|key| !CLIENT_VARIABLES.iter().any(|client| key == *client));
        let config: Config = figment.merge(env).extract().context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    /// `egress_deny` and `egress_allow` as address ranges.
    pub fn egress_ranges(&self) -> anyhow::Result<(Vec<outrigger_outbound::IpNet>, Vec<outrigger_outbound::IpNet>)> {
        let parse = |name: &str, list: &Option<String>| -> anyhow::Result<Vec<outrigger_outbound::IpNet>> {
            let entries =
                list.as_deref().unwrap_or_default().split(',').map(str::trim).filter(|entry| !entry.is_empty());
            entries
                .map(|entry| {
                    // A bare address is a range of one.
                    entry
                        .parse()
                        .or_else(|_| entry.parse::<std::net::IpAddr>().map(outrigger_outbound::IpNet::from))
                        .with_context(|| {
                            format!("{name}: '{entry}' is not a CIDR range such as 10.0.0.0/8 or an address")
                        })
                })
                .collect()
        };
        Ok((parse("OUTRIGGER_EGRESS_DENY", &self.egress_deny)?, parse("OUTRIGGER_EGRESS_ALLOW", &self.egress_allow)?))
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.database_url {
            if !["sqlite:", "postgres:", "postgresql:"].iter().any(|scheme| url.starts_with(scheme)) {
                bail!("OUTRIGGER_DATABASE_URL must start with sqlite:// or postgres://, got '{url}'");
            }
        }
        if let Some(token) = &self.admin_token {
            if token.trim().len() < MIN_ADMIN_TOKEN_LEN {
                bail!("OUTRIGGER_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_LEN} characters");
            }
        }
        for (name, endpoint) in [
            ("OUTRIGGER_PUBLIC_HTTP_ENDPOINT", &self.public_http_endpoint),
            ("OUTRIGGER_PUBLIC_GRPC_ENDPOINT", &self.public_grpc_endpoint),
        ] {
            if let Some(endpoint) = endpoint {
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    bail!("{name} must be an http:// or https:// URL, got '{endpoint}'");
                }
            }
        }
        for (name, value) in [
            ("OUTRIGGER_CONTROL_API_MAX_BODY_BYTES", self.control_api_max_body_bytes as u64),
            ("OUTRIGGER_GATEWAY_MAX_BODY_BYTES", self.gateway_max_body_bytes as u64),
            ("OUTRIGGER_BUS_TIMEOUT_MS", self.bus_timeout_ms),
            ("OUTRIGGER_COMPONENT_REFRESH_MS", self.component_refresh_ms),
            ("OUTRIGGER_STORE_TIMEOUT_MS", self.store_timeout_ms),
            ("OUTRIGGER_HEADER_READ_TIMEOUT_MS", self.header_read_timeout_ms),
            ("OUTRIGGER_BODY_IDLE_TIMEOUT_MS", self.body_idle_timeout_ms),
            ("OUTRIGGER_API_LOG_RETENTION_HOURS", self.api_log_retention_hours),
            ("OUTRIGGER_ACCESS_TOKEN_TTL_SECS", self.access_token_ttl_secs),
            ("OUTRIGGER_REFRESH_TOKEN_TTL_HOURS", self.refresh_token_ttl_hours),
            ("OUTRIGGER_SIGNING_KEY_ROTATION_HOURS", self.signing_key_rotation_hours),
            ("OUTRIGGER_LOGIN_MAX_FAILURES", u64::from(self.login_max_failures)),
            ("OUTRIGGER_AUDIT_RETENTION_DAYS", self.audit_retention_days),
            ("OUTRIGGER_API_LOG_MAX_CALLS_PER_PROJECT", self.api_log_max_calls_per_project),
            ("OUTRIGGER_OTLP_FLUSH_MS", self.otlp_flush_ms),
        ] {
            if value == 0 {
                bail!("{name} must be greater than 0");
            }
        }
        let oidc = [&self.oidc_issuer, &self.oidc_client_id, &self.oidc_client_secret, &self.oidc_redirect_url];
        if oidc.iter().any(|value| value.is_some()) && !oidc.iter().all(|value| value.is_some()) {
            bail!("single sign-on needs all of OUTRIGGER_OIDC_ISSUER, OUTRIGGER_OIDC_CLIENT_ID, OUTRIGGER_OIDC_CLIENT_SECRET and OUTRIGGER_OIDC_REDIRECT_URL");
        }
        for (name, url) in
            [("OUTRIGGER_OIDC_ISSUER", &self.oidc_issuer), ("OUTRIGGER_OIDC_REDIRECT_URL", &self.oidc_redirect_url)]
        {
            if url.as_ref().is_some_and(|url| !(url.starts_with("https://") || url.starts_with("http://"))) {
                bail!("{name} must be an http:// or https:// URL");
            }
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            // The exporter speaks plaintext gRPC or HTTP: a collector beside the platform, or a local agent.
            if !endpoint.starts_with("http://") {
                bail!(
                    "OUTRIGGER_OTLP_ENDPOINT must be an http:// URL of an OTLP receiver (plaintext), got '{endpoint}'"
                );
            }
        }
        if !self.trace_context && self.otlp_endpoint.is_some() {
            bail!("OUTRIGGER_OTLP_ENDPOINT exports spans, which OUTRIGGER_TRACE_CONTEXT=false turns off: unset one of them");
        }
        if !self.metrics && self.metrics_addr.is_some() {
            bail!("OUTRIGGER_METRICS_ADDR serves metrics, which OUTRIGGER_METRICS=false turns off: unset one of them");
        }
        if !(0.0..=1.0).contains(&self.trace_sampling_rate) {
            bail!("OUTRIGGER_TRACE_SAMPLING_RATE must be between 0 and 1, got {}", self.trace_sampling_rate);
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            bail!("OUTRIGGER_MAX_HEADER_BYTES must be at least {MIN_HEADER_BYTES}");
        }
        self.egress_ranges()?;
        if let Some(url) = &self.managed_kvstore_url {
            if !["sqlite:", "postgres:", "postgresql:", "redis:"].iter().any(|scheme| url.starts_with(scheme)) {
                bail!("OUTRIGGER_MANAGED_KVSTORE_URL must start with sqlite://, postgres:// or redis://, got '{url}'");
            }
        }
        if let Some(url) = &self.managed_pubsub_url {
            if !["sqlite:", "postgres:", "postgresql:", "nats:", "redis:"].iter().any(|scheme| url.starts_with(scheme))
            {
                bail!("OUTRIGGER_MANAGED_PUBSUB_URL must start with sqlite://, postgres://, nats:// or redis://, got '{url}'");
            }
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            bail!("set both OUTRIGGER_TLS_CERT_FILE and OUTRIGGER_TLS_KEY_FILE, or neither");
        }
        if self.bus_subject_prefix.is_empty() || self.bus_subject_prefix.contains(['.', ' ', '*', '>']) {
            bail!("OUTRIGGER_BUS_SUBJECT_PREFIX must be one NATS subject token (no '.', ' ', '*' or '>')");
        }
        Ok(())
    }

    /// The managed kvstore's backing store, defaulting as documented on the field.
    pub fn managed_kvstore_url(&self) -> String {
        if let Some(url) = &self.managed_kvstore_url {
            return url.clone();
        }
        let control_plane = self.database_url();
        if control_plane.starts_with("postgres") {
            control_plane
        } else {
            format!("sqlite://{}", self.data_dir.join("kvstore.db").display())
        }
    }

    /// The managed pubsub's broker, defaulting as documented on the field.
    pub fn managed_pubsub_url(&self) -> String {
        if let Some(url) = &self.managed_pubsub_url {
            return url.clone();
        }
        match &self.nats_url {
            Some(nats) if self.database_url().starts_with("postgres") => nats.clone(),
            _ => format!("sqlite://{}", self.data_dir.join("pubsub.db").display()),
        }
    }

    /// The control-plane database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.data_dir.join("outrigger.db").display()))
    }
}

#[cfg(test)]
// figment's Jail hands its closures a large error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_point_at_the_data_dir() {
        let config = Config::default();
        config.validate().unwrap();
        assert_eq!(config.database_url(), "sqlite://.outrigger/outrigger.db?mode=rwc");
        assert_eq!(config.http_addr.port(), 3500);
        assert_eq!(config.grpc_addr.port(), 50001);
        assert_eq!(config.control_api_addr.port(), 8080);
    }

    #[test]
    fn file_then_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("outrigger.toml", "data_dir = \"/srv/outrigger\"\nhttp_addr = \"127.0.0.1:3600\"\n")?;
            jail.set_env("OUTRIGGER_HTTP_ADDR", "127.0.0.1:3700");
            jail.set_env("OUTRIGGER_URL", "http://client-only:8080");
            jail.set_env("OUTRIGGER_ORG", "client-only");
            jail.set_env("OUTRIGGER_CONFIG_DIR", "/client/only");
            let config = Config::load(Some(Path::new("outrigger.toml"))).map_err(|err| format!("{err:#}"))?;
            assert_eq!(config.data_dir, PathBuf::from("/srv/outrigger"));
            assert_eq!(config.http_addr, "127.0.0.1:3700".parse().unwrap());
            Ok(())
        });
    }

    #[test]
    fn invalid_values_are_refused_with_the_variable_named() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("OUTRIGGER_DATABASE_URL", "mysql://db");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("OUTRIGGER_DATABASE_URL"), "{err}");
            jail.set_env("OUTRIGGER_DATABASE_URL", "sqlite://x.db");
            jail.set_env("OUTRIGGER_ADMIN_TOKEN", "short");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("OUTRIGGER_ADMIN_TOKEN"), "{err}");
            jail.set_env("OUTRIGGER_ADMIN_TOKEN", "a-long-enough-operator-token");
            jail.set_env("OUTRIGGER_HTTP_ADRR", "typo");
            let err = format!("{:#}", Config::load(None).unwrap_err());
            assert!(err.contains("http_adrr"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn listener_limits_are_validated() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("OUTRIGGER_MAX_CONNECTIONS_PER_CLIENT", "0");
            jail.set_env("OUTRIGGER_HEADER_READ_TIMEOUT_MS", "250");
            let config = Config::load(None).map_err(|err| format!("{err:#}"))?;
            assert_eq!((config.max_connections_per_client, config.header_read_timeout_ms), (0, 250));
            jail.set_env("OUTRIGGER_MAX_HEADER_BYTES", "4096");
            let err = format!("{:#}", Config::load(None).unwrap_err());
            assert!(err.contains("OUTRIGGER_MAX_HEADER_BYTES"), "{err}");
            jail.set_env("OUTRIGGER_MAX_HEADER_BYTES", "65536");
            jail.set_env("OUTRIGGER_BODY_IDLE_TIMEOUT_MS", "0");
            let err = format!("{:#}", Config::load(None).unwrap_err());
            assert!(err.contains("OUTRIGGER_BODY_IDLE_TIMEOUT_MS"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn telemetry_settings_are_validated() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("OUTRIGGER_OTLP_ENDPOINT", "http://collector:4317");
            jail.set_env("OUTRIGGER_TRACE_SAMPLING_RATE", "0.25");
            let config = Config::load(None).map_err(|err| format!("{err:#}"))?;
            assert_eq!(
                (config.otlp_endpoint.as_deref(), config.trace_sampling_rate),
                (Some("http://collector:4317"), 0.25)
            );
            jail.set_env("OUTRIGGER_TRACE_SAMPLING_RATE", "1.5");
            let err = format!("{:#}", Config::load(None).unwrap_err());
            assert!(err.contains("OUTRIGGER_TRACE_SAMPLING_RATE"), "{err}");
            jail.set_env("OUTRIGGER_TRACE_SAMPLING_RATE", "1");
            assert_eq!(Config::load(None).map_err(|err| format!("{err:#}"))?.otlp_protocol, OtlpProtocol::Grpc);
            jail.set_env("OUTRIGGER_OTLP_PROTOCOL", "http/protobuf");
            let config = Config::load(None).map_err(|err| format!("{err:#}"))?;
            assert_eq!(config.otlp_protocol, OtlpProtocol::HttpProtobuf);
            jail.set_env("OUTRIGGER_OTLP_PROTOCOL", "thrift");
            let err = format!("{:#}", Config::load(None).unwrap_err());
            assert!(err.contains("otlp_protocol") || err.contains("OTLP_PROTOCOL"), "{err}");
            jail.set_env("OUTRIGGER_OTLP_PROTOCOL", "grpc");
            jail.set_env("OUTRIGGER_OTLP_ENDPOINT", "collector:4317");
            let err = format!("{:#}", Config::load(None).unwrap_err());
            assert!(err.contains("OUTRIGGER_OTLP_ENDPOINT"), "{err}");
            // Spans cannot be exported from calls that carry no trace context.
            jail.set_env("OUTRIGGER_OTLP_ENDPOINT", "http://collector:4317");
            jail.set_env("OUTRIGGER_TRACE_CONTEXT", "false");
            let err = format!("{:#}", Config::load(None).unwrap_err());
            assert!(err.contains("OUTRIGGER_TRACE_CONTEXT=false"), "{err}");
            // Nor served from a process that counts nothing.
            jail.set_env("OUTRIGGER_TRACE_CONTEXT", "true");
            jail.set_env("OUTRIGGER_METRICS", "false");
            assert!(!Config::load(None).map_err(|err| format!("{err:#}"))?.metrics);
            jail.set_env("OUTRIGGER_METRICS_ADDR", "127.0.0.1:9090");
            let err = format!("{:#}", Config::load(None).unwrap_err());
            assert!(err.contains("OUTRIGGER_METRICS=false"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn egress_ranges_are_cidrs_or_addresses() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("OUTRIGGER_EGRESS_DENY", "10.20.0.0/16, 192.0.2.10");
            jail.set_env("OUTRIGGER_EGRESS_ALLOW", "fd00::/8");
            let (denied, allowed) = Config::load(None).unwrap().egress_ranges().unwrap();
            assert_eq!(denied, ["10.20.0.0/16".parse().unwrap(), "192.0.2.10/32".parse().unwrap()]);
            assert_eq!(allowed, ["fd00::/8".parse().unwrap()]);
            jail.set_env("OUTRIGGER_EGRESS_DENY", "10.0.0.0/33");
            let err = format!("{:#}", Config::load(None).unwrap_err());
            assert!(err.contains("OUTRIGGER_EGRESS_DENY") && err.contains("10.0.0.0/33"), "{err}");
            Ok(())
        });
    }
}
