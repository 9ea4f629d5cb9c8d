//! The REST control plane: organizations, their members, API keys and audit trail; projects, App IDs and their
//! tokens, Dapr resources, apply and export, and the workflow instances of each project.
//!
//! Handlers are thin: they parse, call the resource model (`outrigger-resources`) and the project-state
//! transition in [`state`], and answer. Every failure becomes an answer in exactly one place,
//! [`error::ApiError`].

mod access;
mod audit_trail;
mod auth;
mod console;

use auth::SecurityScheme as CredentialSchemes;
mod error;
mod extract;
mod managed;
mod names;
mod openapi;
mod paging;
mod routes;
mod state;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use outrigger_resources::Registry;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use access::ORG_HEADER;
pub use auth::oidc::OidcOptions;
pub use auth::session::SessionOptions;
pub use auth::throttle::LoginThrottle;
pub use error::{ApiError, ErrorBody};
pub use managed::{ExplorerFailure, KvKey, KvPage, KvValue, ManagedKv, ManagedTopics, TopicGroup};

/// Told about every committed change to a project's configuration, so that whoever caches it (workers)
/// can forget their copy at once instead of waiting for their next periodic re-read.
#[async_trait::async_trait]
pub trait ProjectChanges: Send + Sync {
    /// The project with internal id `project_id` changed (or was deleted). Returns once the processes in
    /// this one have forgotten what they kept of it.
    async fn changed(&self, project_id: &str);
}

/// Measures what a project keeps in its managed kvstore, for its usage.
#[async_trait::async_trait]
pub trait StoredBytes: Send + Sync {
    /// Bytes of the keys and values of the live items of the project with internal id `project`, or why they
    /// could not be measured.
    async fn stored_bytes(&self, project: &outrigger_store::ProjectId) -> Result<u64, String>;
}

/// How the control API is set up.
#[derive(Clone)]
pub struct Options {
    /// What apps set `DAPR_HTTP_ENDPOINT` to (reported on every project).
    pub http_endpoint: String,
    /// What apps set `DAPR_GRPC_ENDPOINT` to.
    pub grpc_endpoint: String,
    /// The operator token every request must carry.
    pub admin_token: String,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Where change events go.
    pub changes: Arc<dyn ProjectChanges>,
    /// The component types the workers run (`outrigger_workers::component_types`): components are validated
    /// against them and exports withhold the fields they mark sensitive.
    pub component_types: &'static Registry,
    /// How long the API log keeps a call: older ones are not shown, removed or not.
    pub api_log_retention: std::time::Duration,
    /// Whether `GET /metrics` (the process's Prometheus metrics, with the operator token) is served here.
    pub serve_metrics: bool,
    /// The quotas of projects that set none.
    pub default_quotas: outrigger_store::Quotas,
    /// Measures the managed kvstore for usage; without it usage reports no stored bytes.
    pub stored_bytes: Option<Arc<dyn StoredBytes>>,
    /// Lists, reads and deletes the keys of the managed kvstore (the KV explorer); without it the explorer's
    /// routes answer 404.
    pub managed_kv: Option<Arc<dyn ManagedKv>>,
    /// Counts what the managed pubsub holds (the topic explorer); without it its route answers 404.
    pub managed_topics: Option<Arc<dyn ManagedTopics>>,
    /// How long sessions and their access tokens last, and how often the signing key changes.
    pub sessions: SessionOptions,
    /// When sign-in attempts are refused.
    pub login_throttle: LoginThrottle,
    /// How long the audit trail keeps an event.
    pub audit_retention: std::time::Duration,
    /// The single-sign-on provider, if the operator configured one.
    pub oidc: Option<OidcOptions>,
    /// The rule every outbound connection keeps to (here: to the identity provider).
    pub egress: outrigger_outbound::Egress,
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    store: outrigger_store::Store,
    workflows: Arc<outrigger_workflow::Engine>,
    options: Arc<Options>,
    admin_token_hash: Arc<[u8; 32]>,
    sessions: Arc<auth::session::Signer>,
    login_attempts: Arc<auth::throttle::Attempts>,
    /// The single-sign-on provider.
    oidc: Option<Arc<auth::oidc::Oidc>>,
    /// When this process last removed expired audit events.
    audit_expired_at: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Outrigger control API",
        description = "Manage projects, App IDs and their API tokens, the Dapr resources (components, subscriptions, resiliencies, configurations, HTTP endpoints) of each project, the items of its managed configuration store, and its workflow instances.",
        license(name = "Apache-2.0")
    ),
    modifiers(&CredentialSchemes),
    security(("operatorToken" = []), ("apiKey" = []), ("accessToken" = [])),
    tags(
        (name = "auth", description = "Signing in: sessions with short-lived access tokens, refreshed and ended"),
        (name = "orgs", description = "Organizations own projects; their members, API keys, quotas and audit trail"),
        (name = "projects", description = "Tenants: each has its own App IDs, components and data"),
        (name = "appids", description = "App identities, their API tokens and app connections"),
        (name = "resources", description = "Dapr documents of a project"),
        (name = "apply", description = "Dapr YAML in and out"),
        (name = "workflows", description = "Workflow instances of a project: list, inspect, control"),
        (name = "configuration", description = "Items of a project's managed configuration store (configstore)"),
        (name = "jobs", description = "Jobs App IDs scheduled through Dapr's jobs API, and what became of them"),
        (name = "activity", description = "What a project's App IDs did: the API log, call metrics over a window, usage"),
        (name = "explorers", description = "What a project keeps in its managed kvstore and pubsub: keys and values, topics and their backlog"),
    )
)]
struct ApiDoc;

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(routes::router())
}

impl AppState {
    /// The component types documents are checked against.
    pub(crate) fn types(&self) -> &'static Registry {
        self.options.component_types
    }
}

/// The OpenAPI document of the control API (OpenAPI 3.1, as JSON).
pub fn openapi() -> serde_json::Value {
    openapi::complete(api_router().split_for_parts().1)
}

/// The control API as an axum router (mount at `/`).
pub fn router(store: outrigger_store::Store, options: Options) -> Router {
    let state = AppState {
        workflows: Arc::new(outrigger_workflow::Engine::new(store.workflow_tables())),
        store,
        admin_token_hash: Arc::new(auth::digest(&options.admin_token)),
        sessions: Arc::new(auth::session::Signer::new(options.sessions)),
        login_attempts: Arc::new(auth::throttle::Attempts::new(options.login_throttle)),
        audit_expired_at: Arc::default(),
        oidc: options.oidc.clone().map(|oidc| Arc::new(auth::oidc::Oidc::new(oidc, &options.egress))),
        options: Arc::new(options),
    };
    let (serve_metrics, metrics_state) = (state.options.serve_metrics, state.clone());
    let (api, document) = api_router().split_for_parts();
    let document = Arc::new(openapi::complete(document));
    let api = api
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), access::authorize))
        .fallback(|| async { ApiError::not_found("no such route: see GET /api/v1/openapi.json for the routes") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
        .layer(
            // One structured line per request: method, path, status and latency.
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state);
    let router = Router::new()
        .route("/api/v1/openapi.json", get(move || async move { axum::Json(document.as_ref().clone()) }))
        .merge(console::router())
        .merge(api);
    match serve_metrics {
        true => router.merge(
            Router::new()
                .route("/metrics", get(prometheus_metrics))
                .route_layer(axum::middleware::from_fn_with_state(metrics_state.clone(), access::authorize))
                .with_state(metrics_state),
        ),
        false => router,
    }
}

/// The process's metrics in Prometheus's text format.
pub async fn prometheus_metrics() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], outrigger_telemetry::metrics().render())
}
