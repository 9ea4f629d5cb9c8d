//! What a gateway needs to route an invocation inside a project — its App IDs, the access control of their
//! Configurations, its HTTP endpoints and Resiliency documents — read from the control plane once and kept
//! until a change event for the project arrives or `refresh_after` passes ([`ReadThrough`]: concurrent
//! misses share one read, and a read that raced a change event is not kept).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use outrigger_cache::ReadThrough;
use outrigger_resources::{Document, Kind};
use outrigger_store::{AppIdentity, ProjectId, Store};
use outrigger_telemetry::metrics::CacheName;

use super::acl::AccessControl;

/// An App ID as a callee.
#[derive(Clone, Debug)]
pub struct Callee {
    pub identity: AppIdentity,
    /// From the App ID's Configuration; `None` allows every caller.
    pub access_control: Option<AccessControl>,
    /// `tracing.samplingRate` of the App ID's Configuration, when it sets one.
    pub sampling_rate: Option<f64>,
    /// The `appEndpoint`, parsed once per reading of the project: parsing it (IDNA included) on every call was
    /// 4 % of an invocation's instructions.
    pub endpoint_url: Option<Result<reqwest::Url, url::ParseError>>,
}

/// One project's invocation targets.
pub struct ProjectDirectory {
    pub apps: HashMap<String, Callee>,
    pub http_endpoints: HashMap<String, Document>,
    pub resiliencies: Vec<Document>,
    /// The headers each HTTPEndpoint adds, once read (their secret values cost a worker call): kept as long as
    /// this reading of the project.
    endpoint_headers: Mutex<HashMap<String, HeaderMap>>,
}

impl ProjectDirectory {
    /// The headers HTTPEndpoint `name` adds, if they were read already.
    pub fn endpoint_headers(&self, name: &str) -> Option<HeaderMap> {
        self.endpoint_headers.lock().expect("endpoint headers lock").get(name).cloned()
    }

    /// Keeps the headers HTTPEndpoint `name` adds.
    pub fn remember_endpoint_headers(&self, name: &str, headers: &HeaderMap) {
        self.endpoint_headers.lock().expect("endpoint headers lock").insert(name.to_owned(), headers.clone());
    }
}

/// Most projects whose directories a gateway keeps; the least used go first.
const MAX_CACHED_PROJECTS: u64 = 100_000;

/// Every project's directory this gateway has used recently.
pub struct Directory {
    store: Store,
    projects: ReadThrough<ProjectId, Arc<ProjectDirectory>>,
}

impl Directory {
    pub fn new(store: Store, refresh_after: Duration) -> Directory {
        Directory { store, projects: ReadThrough::new(MAX_CACHED_PROJECTS, refresh_after) }
    }

    /// Forgets a project's directory (it changed); the next invocation reads it again.
    pub async fn invalidate(&self, project_id: &str) {
        self.projects.invalidate(&ProjectId::received(project_id.to_owned())).await;
    }

    /// The project's directory, from the cache when fresh enough.
    pub async fn project(&self, project_id: &ProjectId) -> Result<Arc<ProjectDirectory>, Arc<outrigger_store::Error>> {
        let missed = std::sync::atomic::AtomicBool::new(false);
        let read = || async {
            missed.store(true, std::sync::atomic::Ordering::Relaxed);
            self.load(project_id).await.map(Arc::new)
        };
        let found = self.projects.get_or_load(project_id, read).await;
        outrigger_telemetry::metrics().cache_lookup(CacheName::GatewayDirectory, !missed.into_inner());
        found
    }

    async fn load(&self, project_id: &ProjectId) -> Result<ProjectDirectory, outrigger_store::Error> {
        let mut tx = self.store.begin().await?;
        let project = tx.project_by_id(project_id).await?;
        let identities = tx.list_app_ids(&project.id).await?;
        let documents = |stored: Vec<outrigger_store::StoredResource>| stored.into_iter().map(|stored| stored.document);
        let configurations: HashMap<String, Document> =
            documents(tx.list_resources(&project.id, Kind::Configuration).await?)
                .map(|document| (document.metadata.name.clone(), document))
                .collect();
        let http_endpoints = documents(tx.list_resources(&project.id, Kind::HttpEndpoint).await?)
            .map(|document| (document.metadata.name.clone(), document))
            .collect();
        let resiliencies = documents(tx.list_resources(&project.id, Kind::Resiliency).await?).collect();
        let apps = identities
            .into_iter()
            .map(|identity| {
                let configuration = identity.config.as_ref().and_then(|name| configurations.get(name));
                let access_control =
                    configuration.and_then(|configuration| AccessControl::from_configuration(&configuration.spec));
                let sampling_rate =
                    configuration.and_then(|configuration| outrigger_resources::sampling_rate(&configuration.spec));
                let endpoint_url = identity.app_endpoint.as_deref().map(reqwest::Url::parse);
                (identity.name.clone(), Callee { identity, access_control, sampling_rate, endpoint_url })
            })
            .collect();
        Ok(ProjectDirectory { apps, http_endpoints, resiliencies, endpoint_headers: Mutex::new(HashMap::new()) })
    }
}
