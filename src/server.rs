//! The server processes: all-in-one (the embedded default), `control-api`, `gateway`, and `migrate`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::extract::Request;
use outrigger_bus::{Bus, Handler, InProcessBus, NatsBus};
use outrigger_control_api::ProjectChanges;
use outrigger_gateway::Gateway;
use outrigger_outbound::health::HealthProbe;
use outrigger_store::Store;
use outrigger_telemetry::{ApiLog, ApiLogOptions};
use outrigger_workers::delivery::Deliverer;
use outrigger_workers::explorer::{KvExplorer, TopicExplorer};
use outrigger_workers::jobs::Scheduler;
use outrigger_workers::pubsub::{Broker, JetStreamBroker, JetStreamOptions, SqlBroker, SqlBrokerOptions};
use outrigger_workers::secrets::HostSecrets;
use outrigger_workers::state::StateStore;
use outrigger_workers::{Limits, ManagedStores, Runtime, Worker};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

use crate::admin_token::admin_token;
use crate::config::Config;
use crate::explorers::{ManagedKvExplorer, ManagedKvstoreUsage, ManagedTopicsExplorer};
use crate::listener::serve;

async fn migrated_store(config: &Config) -> anyhow::Result<Store> {
    let store = connect(config).await?;
    store.migrate().await.context("applying control-plane migrations")?;
    Ok(store)
}

async fn connect(config: &Config) -> anyhow::Result<Store> {
    let url = config.database_url();
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    }
    Store::connect(&url).await.with_context(|| format!("connecting to the control-plane database ({})", redact(&url)))
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// `outrigger migrate`.
pub async fn migrate(config: Config) -> anyhow::Result<()> {
    let store = migrated_store(&config).await?;
    store.close().await;
    tracing::info!(database = %redact(&config.database_url()), "control-plane migrations applied");
    Ok(())
}

/// Resolves when Ctrl-C or SIGTERM arrives, and cancels `shutdown`.
async fn watch_signals(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
        () = shutdown.cancelled() => {}
    }
    shutdown.cancel();
}

async fn bind(addr: SocketAddr, what: &str, variable: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("binding the {what} to {addr} (is another process using it? set {variable} to change it)")
    })
}

/// The TLS setup of every listener, from PEM files; `None` when TLS is not configured.
fn tls_acceptor(config: &Config) -> anyhow::Result<Option<TlsAcceptor>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert_file), Some(key_file)) = (&config.tls_cert_file, &config.tls_key_file) else {
        return Ok(None);
    };
    let certificates = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading certificates from {} (OUTRIGGER_TLS_CERT_FILE)", cert_file.display()))?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("reading the private key from {} (OUTRIGGER_TLS_KEY_FILE)", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .context("the TLS certificate and key do not form a usable pair")?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

fn local_endpoint(tls: bool, addr: SocketAddr) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://127.0.0.1:{}", addr.port())
}

/// What one process runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The embedded default: control API, gateway and worker in one process, joined by an in-process bus.
    AllInOne,
    /// `outrigger control-api`.
    ControlApi,
    /// `outrigger gateway`: the Dapr APIs, sending calls to workers over NATS.
    Gateway,
    /// `outrigger worker --pool P`: answers the calls of pool P from NATS.
    Worker {
        /// The pool served.
        pool: String,
    },
}

impl Role {
    fn serves_control_api(&self) -> bool {
        matches!(self, Role::AllInOne | Role::ControlApi)
    }

    fn serves_dapr_apis(&self) -> bool {
        matches!(self, Role::AllInOne | Role::Gateway)
    }

    fn runs_worker(&self) -> bool {
        matches!(self, Role::AllInOne | Role::Worker { .. })
    }

    fn requires_nats(&self) -> bool {
        matches!(self, Role::Gateway | Role::Worker { .. })
    }

    /// The service name this process's spans carry.
    fn service_name(&self) -> &'static str {
        match self {
            Role::AllInOne => "outrigger",
            Role::ControlApi => "outrigger-control-api",
            Role::Gateway => "outrigger-gateway",
            Role::Worker { .. } => "outrigger-worker",
        }
    }
}

/// Change events go straight to the worker, its deliverer and the gateway in the same process.
struct InvalidateLocally {
    worker: Arc<Worker>,
    deliveries: Arc<outrigger_workers::delivery::DeliveryWaker>,
    gateway: Option<Gateway>,
}

#[async_trait::async_trait]
impl ProjectChanges for InvalidateLocally {
    async fn changed(&self, project_id: &str) {
        self.worker.runtime().invalidate(project_id).await;
        self.deliveries.project_changed(project_id);
        if let Some(gateway) = &self.gateway {
            gateway.invalidate(project_id).await;
        }
    }
}

/// Change events go to every worker over NATS.
struct PublishOverNats {
    client: async_nats::Client,
    prefix: String,
}

#[async_trait::async_trait]
impl ProjectChanges for PublishOverNats {
    async fn changed(&self, project_id: &str) {
        let (client, prefix, project_id) = (self.client.clone(), self.prefix.clone(), project_id.to_owned());
        tokio::spawn(async move { outrigger_bus::publish_change(&client, &prefix, &project_id).await });
    }
}

/// No NATS configured for a lone control API: workers see changes on their periodic re-read.
struct PeriodicReadsOnly;

#[async_trait::async_trait]
impl ProjectChanges for PeriodicReadsOnly {
    async fn changed(&self, _project_id: &str) {}
}

/// Opens the store behind every project's managed `kvstore`.
async fn managed_kvstore(config: &Config) -> anyhow::Result<Arc<dyn StateStore>> {
    let url = config.managed_kvstore_url();
    let (component_type, metadata): (&str, Vec<(&str, String)>) = if let Some(path) = url.strip_prefix("sqlite://") {
        ("state.sqlite", vec![("connectionString", path.to_owned()), ("tableName", "kvstore".to_owned())])
    } else if let Some(host) = url.strip_prefix("redis://") {
        ("state.redis", vec![("redisHost", host.trim_end_matches('/').to_owned())])
    } else {
        ("state.postgresql", vec![("connectionString", url.clone()), ("tableName", "outrigger_kvstore".to_owned())])
    };
    let metadata = metadata.into_iter().map(|(name, value)| (name.to_owned(), value)).collect();
    outrigger_workers::state::open(component_type, &metadata)
        .await
        .with_context(|| format!("opening the managed kvstore at {} (OUTRIGGER_MANAGED_KVSTORE_URL)", redact(&url)))
}

/// Opens the broker behind every project's managed `pubsub`.
async fn managed_pubsub(config: &Config) -> anyhow::Result<Arc<dyn Broker>> {
    let url = config.managed_pubsub_url();
    let context = || format!("opening the managed pubsub at {} (OUTRIGGER_MANAGED_PUBSUB_URL)", redact(&url));
    let broker: Arc<dyn Broker> = if let Some(path) = url.strip_prefix("sqlite://") {
        Arc::new(SqlBroker::open(SqlBrokerOptions::new(path, "pubsub")).await.with_context(context)?)
    } else if url.starts_with("postgres") {
        Arc::new(SqlBroker::open(SqlBrokerOptions::new(url.clone(), "outrigger_pubsub")).await.with_context(context)?)
    } else if url.starts_with("nats://") {
        // One stream per installation, named after the bus prefix so installations sharing a NATS stay apart.
        let prefix = &config.bus_subject_prefix;
        let options = JetStreamOptions {
            stream_name: format!("{}_PUBSUB", prefix.to_uppercase()),
            subject_prefix: format!("{prefix}.pubsub"),
            ..JetStreamOptions::new(url.clone())
        };
        Arc::new(JetStreamBroker::connect(options).await.with_context(context)?)
    } else {
        let host = url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
        let metadata = [("redisHost".to_owned(), host)].into_iter().collect();
        outrigger_workers::pubsub::open("pubsub.redis", &metadata).await.with_context(context)?
    };
    Ok(broker)
}

async fn connect_nats(config: &Config) -> anyhow::Result<async_nats::Client> {
    let url = config
        .nats_url
        .as_deref()
        .context("OUTRIGGER_NATS_URL is not set: the distributed form's gateways and workers talk over NATS")?;
    // The bus applies its own deadline to calls; NATS's default 10 s request timeout must not cut it shorter.
    let options = async_nats::ConnectOptions::new().request_timeout(Some(Duration::from_millis(config.bus_timeout_ms)));
    options.connect(url).await.with_context(|| format!("connecting to NATS at {url} (OUTRIGGER_NATS_URL)"))
}

/// Runs `role` until Ctrl-C or SIGTERM.
pub async fn run(config: Config, role: Role, migrate_first: bool) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let tls = tls_acceptor(&config)?;
    let limits = crate::listener::Limits::from_config(&config);
    let mut ready = Vec::new();

    if let Some(endpoint) = &config.otlp_endpoint {
        let flush_every = Duration::from_millis(config.otlp_flush_ms);
        let protocol = config.otlp_protocol.exporter_protocol();
        outrigger_telemetry::trace::export_to(
            endpoint,
            protocol,
            role.service_name(),
            flush_every,
            config.trace_sampling_rate,
        )
        .context("check OUTRIGGER_OTLP_ENDPOINT and OUTRIGGER_OTLP_PROTOCOL")?;
        tracing::info!(%endpoint, protocol = ?config.otlp_protocol, "exporting spans over OTLP");
    }
    let store = if migrate_first { migrated_store(&config).await? } else { connect(&config).await? };
    let admin_token =
        if role.serves_control_api() { Some(admin_token(&config, role == Role::AllInOne)?) } else { None };
    let pending = store.pending_migrations().await?;
    if pending > 0 {
        bail!("the control-plane database lacks {pending} migration(s): run `outrigger migrate` first");
    }
    let nats = if role.requires_nats() || (role == Role::ControlApi && config.nats_url.is_some()) {
        Some(connect_nats(&config).await?)
    } else {
        None
    };

    // Bound before the egress rule is made, so that the rule refuses the addresses actually bound (port 0 too).
    let dapr_listeners = match role.serves_dapr_apis() {
        true => Some((
            bind(config.http_addr, "Dapr HTTP API", "OUTRIGGER_HTTP_ADDR").await?,
            bind(config.grpc_addr, "Dapr gRPC API", "OUTRIGGER_GRPC_ADDR").await?,
        )),
        false => None,
    };
    let control_listener = match admin_token {
        Some(_) => Some(bind(config.control_api_addr, "control API", "OUTRIGGER_CONTROL_API_ADDR").await?),
        None => None,
    };
    // The metrics name every project and App ID the process saw: no tenant may point anything at them.
    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(bind(addr, "metrics", "OUTRIGGER_METRICS_ADDR").await?),
        None => None,
    };
    let mut own_listeners = Vec::new();
    let listeners = dapr_listeners.iter().flat_map(|(http, grpc)| [http, grpc]).chain(&control_listener);
    for listener in listeners.chain(&metrics_listener) {
        own_listeners.push(listener.local_addr()?);
    }
    let egress = crate::boundary::egress(&config, role == Role::AllInOne, &own_listeners).await?;
    outrigger_telemetry::metrics().set_tenant_limit(config.metrics_tenant_limit);
    if !config.metrics {
        outrigger_telemetry::metrics().turn_off();
    }
    if !config.trace_context {
        outrigger_telemetry::trace::turn_off_context();
    }
    let api_log_options = ApiLogOptions {
        retention: Duration::from_secs(config.api_log_retention_hours * 3600),
        max_calls_per_project: config.api_log_max_calls_per_project,
        ..ApiLogOptions::default()
    };
    // One API log writer per process: the gateway records the calls App IDs make, the worker those it makes to
    // apps.
    let api_log = if config.api_log && (role.serves_dapr_apis() || role.runs_worker()) {
        let (log, writer) = ApiLog::start(store.clone(), api_log_options.clone(), shutdown.clone());
        tasks.spawn(async move { writer.await.context("the API log writer panicked") });
        log
    } else {
        ApiLog::disabled()
    };
    // Opened once per process: the worker serves them, the control API measures and explores them. A control API
    // without a worker beside it explores the managed pubsub only where workers could share it: never a SQLite
    // file defaulted into its own data directory, which no worker reads.
    let kvstore = match role.runs_worker() || control_listener.is_some() {
        true => Some(managed_kvstore(&config).await?),
        false => None,
    };
    let shared_pubsub = config.managed_pubsub_url.is_some() || !config.managed_pubsub_url().starts_with("sqlite://");
    let pubsub = match role.runs_worker() || (control_listener.is_some() && shared_pubsub) {
        true => Some(managed_pubsub(&config).await?),
        false => None,
    };
    let worker = if let (true, Some(kvstore), Some(pubsub)) = (role.runs_worker(), &kvstore, &pubsub) {
        let host_secrets = if config.allow_host_secret_stores.unwrap_or(role == Role::AllInOne) {
            HostSecrets::Allowed
        } else {
            HostSecrets::Refused
        };
        let runtime = Runtime::new(
            store.clone(),
            ManagedStores::new(kvstore.clone(), pubsub.clone())
                .with_default_stored_bytes_quota(config.quota_stored_bytes),
            Duration::from_millis(config.component_refresh_ms),
            config.data_dir.join("projects"),
        )
        .with_host_secrets(host_secrets)
        .with_egress(egress.clone());
        let limits = Limits { store_timeout: Duration::from_millis(config.store_timeout_ms), ..Limits::default() };
        Some(Arc::new(Worker::new(runtime, limits).with_api_log(api_log.clone())))
    } else {
        None
    };
    // Push deliveries and job triggers run in every worker: of every project in the embedded default, of the
    // pool's projects in the distributed form.
    let deliveries = worker.as_ref().map(|worker| {
        let pool = match &role {
            Role::Worker { pool } => Some(pool.clone()),
            _ => None,
        };
        // The job scheduler runs beside the deliveries, over the same pool's projects.
        let scheduler = Scheduler::new(store.clone(), pool.clone(), &egress).with_api_log(api_log.clone());
        let stop = shutdown.clone();
        tasks.spawn(async move {
            scheduler.run(stop).await;
            Ok(())
        });
        let deliverer = Deliverer::new(store.clone(), worker.clone(), pool, egress.clone());
        let waker = deliverer.waker();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            deliverer.run(stop).await;
            Ok(())
        });
        waker
    });
    if let (Role::Worker { .. }, Some(client), Some(worker), Some(deliveries)) = (&role, &nats, &worker, &deliveries) {
        let changes = outrigger_bus::subscribe_changes(client, &config.bus_subject_prefix)
            .await
            .map_err(|err| anyhow::anyhow!("subscribing to change events on NATS: {err}"))?;
        let (worker, stop, deliveries) = (worker.clone(), shutdown.clone(), deliveries.clone());
        tasks.spawn(async move {
            let invalidate = move |project_id: String| {
                let (worker, deliveries) = (worker.clone(), deliveries.clone());
                async move {
                    worker.runtime().invalidate(&project_id).await;
                    deliveries.project_changed(&project_id);
                }
            };
            outrigger_bus::watch_changes(changes, invalidate, stop).await.map_err(|err| anyhow::anyhow!(err))
        });
    }
    if let (Role::Worker { pool }, Some(client), Some(worker)) = (&role, &nats, &worker) {
        let calls = outrigger_bus::subscribe_pool(client, &config.bus_subject_prefix, pool)
            .await
            .map_err(|err| anyhow::anyhow!("joining pool '{pool}' on NATS: {err}"))?;
        let (client, prefix) = (client.clone(), config.bus_subject_prefix.clone());
        let (handler, stop): (Arc<dyn Handler>, _) = (worker.clone(), shutdown.clone());
        tracing::info!(pool = %pool, "worker serving its pool over NATS");
        tasks.spawn(async move {
            outrigger_bus::serve_nats(client, &prefix, calls, handler, stop).await.map_err(|err| anyhow::anyhow!(err))
        });
    }

    if let Some(listener) = metrics_listener {
        ready.push(("metrics", listener.local_addr()?));
        let router =
            axum::Router::new().route("/metrics", axum::routing::get(outrigger_control_api::prometheus_metrics));
        tasks.spawn(serve(listener, router, tls.clone(), limits, shutdown.clone()));
    }

    let mut dapr_addrs = None;
    let mut local_gateway = None;
    if let Some((http, grpc)) = dapr_listeners {
        let bus: Arc<dyn Bus> = match (&nats, &worker) {
            (Some(client), _) => Arc::new(NatsBus::new(
                client.clone(),
                &config.bus_subject_prefix,
                Duration::from_millis(config.bus_timeout_ms),
            )),
            (None, Some(worker)) => Arc::new(InProcessBus::new(worker.clone())),
            (None, None) => unreachable!("a gateway has either NATS or an in-process worker"),
        };
        let options = outrigger_gateway::Options {
            max_body_bytes: config.gateway_max_body_bytes,
            rate_limit_per_second: config.rate_limit_per_second,
            token_cache_ttl: Duration::from_secs(config.token_cache_seconds),
            egress: egress.clone(),
            health_probe: HealthProbe::default(),
            directory_refresh: Duration::from_millis(config.component_refresh_ms),
            api_log: api_log.clone(),
            trace_sampling_rate: config.trace_sampling_rate,
        };
        let gateway = Gateway::new(bus, store.clone(), options);
        if let (Role::Gateway, Some(client)) = (&role, &nats) {
            let changes = outrigger_bus::subscribe_changes(client, &config.bus_subject_prefix)
                .await
                .map_err(|err| anyhow::anyhow!("subscribing to change events on NATS: {err}"))?;
            let (gateway, stop) = (gateway.clone(), shutdown.clone());
            tasks.spawn(async move {
                let invalidate = move |project_id: String| {
                    let gateway = gateway.clone();
                    async move { gateway.invalidate(&project_id).await }
                };
                outrigger_bus::watch_changes(changes, invalidate, stop).await.map_err(|err| anyhow::anyhow!(err))
            });
        }
        let (closing, stop) = (gateway.clone(), shutdown.clone());
        tasks.spawn(async move {
            stop.cancelled().await;
            closing.close();
            Ok(())
        });
        local_gateway = Some(gateway.clone());
        let (http_addr, grpc_addr) = (http.local_addr()?, grpc.local_addr()?);
        dapr_addrs = Some((http_addr, grpc_addr));
        ready.push(("dapr_http", http_addr));
        ready.push(("dapr_grpc", grpc_addr));
        let http_service = ServiceBuilder::new()
            .map_request(|req: Request| outrigger_gateway::clean_path(req))
            .service(outrigger_gateway::http_router(gateway.clone()));
        tasks.spawn(serve(http, http_service, tls.clone(), limits, shutdown.clone()));
        tasks.spawn(serve(grpc, outrigger_gateway::grpc_router(gateway), tls.clone(), limits, shutdown.clone()));
    }

    if let (Some(admin_token), Some(listener)) = (admin_token, control_listener) {
        let addr = listener.local_addr()?;
        ready.push(("control_api", addr));
        let (default_http, default_grpc) = match dapr_addrs {
            Some((http, grpc)) => (local_endpoint(tls.is_some(), http), local_endpoint(tls.is_some(), grpc)),
            None => (local_endpoint(tls.is_some(), config.http_addr), local_endpoint(tls.is_some(), config.grpc_addr)),
        };
        let changes: Arc<dyn ProjectChanges> = match (&worker, &deliveries, &nats) {
            (Some(worker), Some(deliveries), _) => Arc::new(InvalidateLocally {
                worker: worker.clone(),
                deliveries: deliveries.clone(),
                gateway: local_gateway.clone(),
            }),
            (_, _, Some(client)) => {
                Arc::new(PublishOverNats { client: client.clone(), prefix: config.bus_subject_prefix.clone() })
            }
            _ => {
                tracing::info!("OUTRIGGER_NATS_URL is not set: workers will see changes on their periodic re-read");
                Arc::new(PeriodicReadsOnly)
            }
        };
        let options = outrigger_control_api::Options {
            http_endpoint: config.public_http_endpoint.clone().unwrap_or(default_http),
            grpc_endpoint: config.public_grpc_endpoint.clone().unwrap_or(default_grpc),
            admin_token,
            max_body_bytes: config.control_api_max_body_bytes,
            changes,
            component_types: outrigger_workers::component_types(),
            api_log_retention: api_log_options.retention,
            serve_metrics: config.metrics && config.metrics_addr.is_none(),
            default_quotas: outrigger_store::Quotas {
                requests_per_second: Some(config.rate_limit_per_second),
                app_ids: Some(config.quota_app_ids),
                components: Some(config.quota_components),
                stored_bytes: Some(config.quota_stored_bytes),
            },
            stored_bytes: kvstore.clone().map(|kvstore| Arc::new(ManagedKvstoreUsage(kvstore)) as _),
            managed_kv: kvstore.map(|kvstore| Arc::new(ManagedKvExplorer(KvExplorer::new(kvstore))) as _),
            managed_topics: pubsub.map(|pubsub| {
                Arc::new(ManagedTopicsExplorer { explorer: TopicExplorer::new(pubsub), worker: worker.clone() }) as _
            }),
            sessions: outrigger_control_api::SessionOptions {
                access_ttl: Duration::from_secs(config.access_token_ttl_secs),
                refresh_ttl: Duration::from_secs(config.refresh_token_ttl_hours * 3600),
                key_rotation: Duration::from_secs(config.signing_key_rotation_hours * 3600),
                ..Default::default()
            },
            login_throttle: outrigger_control_api::LoginThrottle {
                per_email: config.login_max_failures,
                ..Default::default()
            },
            audit_retention: Duration::from_secs(config.audit_retention_days * 24 * 3600),
            oidc: config.oidc(),
            egress: egress.clone(),
        };
        let router = outrigger_control_api::router(store.clone(), options);
        tasks.spawn(serve(listener, router, tls.clone(), limits, shutdown.clone()));
    }

    let field = |name: &str| ready.iter().find(|(role, _)| *role == name).map(|(_, addr)| addr.to_string());
    tracing::info!(
        control_api = field("control_api").as_deref(),
        dapr_http = field("dapr_http").as_deref(),
        dapr_grpc = field("dapr_grpc").as_deref(),
        metrics = field("metrics").as_deref(),
        data_dir = %config.data_dir.display(),
        tls = tls.is_some(),
        "outrigger ready"
    );

    let signals = tokio::spawn(watch_signals(shutdown.clone()));
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.context("a server task panicked").and_then(|served| served.context("a server stopped"));
        if let Err(err) = outcome {
            tracing::error!(error = %format!("{err:#}"), "server failed; shutting the rest down");
            failure.get_or_insert(err);
        }
        // Whatever ended first, the others follow.
        shutdown.cancel();
    }
    signals.abort();
    outrigger_telemetry::trace::flush();
    store.close().await;
    match failure {
        Some(err) => Err(err),
        None => {
            tracing::info!("outrigger stopped");
            Ok(())
        }
    }
}
