//! The component runtime: what each project's components are, opened and cached.
//!
//! A project's components come from the control-plane database, read through [`ReadThrough`]: dropped on a
//! change event (a read that raced the event is not kept), shared by concurrent misses, and re-read at most
//! every `refresh_after` in any case; a backend whose document did not change keeps its open
//! connections across re-reads.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outrigger_cache::ReadThrough;
use outrigger_outbound::Egress;
use outrigger_resources::{BuildingBlock, Document, Kind};
use outrigger_store::{ProjectId, Store};
use outrigger_telemetry::metrics::CacheName;
use outrigger_telemetry::metrics::TenantLabels;
use tokio::sync::Mutex;

use crate::bindings::{self, InputBinding, OutputBinding};
use crate::boundary::Boundary;
use crate::components;
use crate::configuration::{self, ConfigurationStore, ManagedConfigurationStore};
use crate::lock::{self, LockKeyPrefix, LockStore};
pub use crate::project::ManagedStores;
pub(crate) use crate::project::{
    Component, KeyPrefix, LockComponent, LockConfig, ProjectComponents, PubsubComponent, PubsubConfig, SecretComponent,
    StateComponent, StateConfig,
};
use crate::pubsub::{self, Broker, TopicScopes};
use crate::secrets::{self, HostSecrets, SecretScope, SecretStore};
use crate::state::{self, StateStore};

/// Change events a slow watcher of a managed configuration store may fall behind by before it re-reads anyway.
const CHANGES_BACKLOG: usize = 1024;

/// How long opening one backend may take before the component is reported as failed.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Most projects whose components a worker keeps read; the least used go first (their open backends stay
/// until the project is read again).
const MAX_CACHED_PROJECTS: u64 = 100_000;

/// What an app answered to `GET /dapr/subscribe`, and when.
#[derive(Clone, Debug)]
pub struct ProgrammaticSubscriptions {
    /// When it was asked.
    pub fetched: Instant,
    /// The app endpoint asked.
    pub endpoint: String,
    /// The entries it answered.
    pub entries: Vec<serde_json::Value>,
}

/// A backend remembered with what it was opened from (its spec, and the secrets resolved into it), by
/// (project id, component name).
type OpenedBackends<B> = HashMap<(String, String), (serde_json::Value, Arc<B>)>;

/// Opened backends of one building block.
struct Opened<B: ?Sized>(Mutex<OpenedBackends<B>>);

impl<B: ?Sized> Opened<B> {
    fn new() -> Opened<B> {
        Opened(Mutex::new(HashMap::new()))
    }

    /// The backend opened from the same `source`, or a newly opened one.
    async fn get_or_open<E: std::fmt::Display>(
        &self,
        project_id: &str,
        document: &Document,
        source: serde_json::Value,
        open: impl Future<Output = Result<Arc<B>, E>>,
    ) -> Result<Arc<B>, String> {
        let key = (project_id.to_owned(), document.metadata.name.clone());
        if let Some((opened_from, backend)) = self.0.lock().await.get(&key) {
            if *opened_from == source {
                return Ok(Arc::clone(backend));
            }
        }
        let name = &document.metadata.name;
        let backend = match tokio::time::timeout(OPEN_TIMEOUT, open).await {
            Ok(Ok(backend)) => backend,
            Ok(Err(err)) => return Err(format!("component {name} could not start: {err}")),
            Err(_) => {
                return Err(format!(
                    "component {name} could not start: its backend did not answer within {OPEN_TIMEOUT:?}"
                ))
            }
        };
        tracing::info!(project_id, component = %name, "component opened");
        self.0.lock().await.insert(key, (source, Arc::clone(&backend)));
        Ok(backend)
    }

    /// [`Opened::get_or_open`] on the component's resolved `metadata`, or the reason it could not be resolved.
    async fn open_resolved<'m, E, Fut>(
        &self,
        project_id: &str,
        document: &Document,
        metadata: &'m Result<BTreeMap<String, String>, String>,
        open: impl FnOnce(&'m BTreeMap<String, String>) -> Fut,
    ) -> Result<Arc<B>, String>
    where
        E: std::fmt::Display,
        Fut: Future<Output = Result<Arc<B>, E>>,
    {
        let metadata = metadata.as_ref().map_err(String::clone)?;
        // Secrets resolved into the metadata count: a changed secret value reopens the backend.
        let source = serde_json::json!({"spec": document.spec, "metadata": metadata});
        self.get_or_open(project_id, document, source, open(metadata)).await
    }

    /// Forgets backends of `project_id` whose names `keep` refuses; they close once the last call using them
    /// ends.
    async fn retain(&self, project_id: &str, keep: impl Fn(&str) -> bool) {
        self.0.lock().await.retain(|(project, name), _| project != project_id || keep(name));
    }
}

/// Components of every project a worker has served recently.
pub struct Runtime {
    control_plane: Store,
    managed: ManagedStores,
    /// Each project's components (`None`: the project is gone), read through on a miss.
    projects: ReadThrough<ProjectId, Option<Arc<ProjectComponents>>>,
    opened_stores: Opened<dyn StateStore>,
    opened_brokers: Opened<dyn Broker>,
    opened_secret_stores: Opened<dyn SecretStore>,
    opened_locks: Opened<dyn LockStore>,
    opened_configuration_stores: Opened<dyn ConfigurationStore>,
    opened_bindings: Opened<dyn OutputBinding>,
    opened_input_bindings: Opened<dyn InputBinding>,
    /// Ids of projects that changed, for watchers of managed configuration stores.
    changes: tokio::sync::broadcast::Sender<Arc<str>>,
    host_secrets: HostSecrets,
    /// What projects' components may dial.
    egress: Egress,
    /// Each project's files live in a directory of its own under this one.
    project_files: PathBuf,
    // Written by the deliverer, read for `/v1.0/metadata`; never held across an await.
    programmatic: std::sync::Mutex<HashMap<(String, String), ProgrammaticSubscriptions>>,
}

/// Component metadata as name -> text, the form backends are opened with; `secretKeyRef` values are read from
/// the secret store the document names in `auth.secretStore`.
async fn resolve_metadata(
    document: &Document,
    secret_stores: &BTreeMap<String, Arc<SecretComponent>>,
) -> Result<BTreeMap<String, String>, String> {
    let mut metadata = BTreeMap::new();
    let entries = document.spec.get("metadata").and_then(|m| m.as_array()).cloned().unwrap_or_default();
    for entry in entries {
        let name = entry.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_owned();
        let value = match (entry.get("value"), entry.get("secretKeyRef")) {
            (Some(serde_json::Value::String(text)), _) => text.clone(),
            (Some(serde_json::Value::Null) | None, Some(reference)) => {
                let field = format!("metadata field '{name}'");
                let text = |part: &str| reference.get(part).and_then(|value| value.as_str());
                let (secret, key) = (text("name").unwrap_or_default(), text("key"));
                resolve_secret_ref(&field, document.secret_store(), secret, key, secret_stores).await?
            }
            (Some(serde_json::Value::Null) | None, None) => String::new(),
            (Some(other), _) => other.to_string(),
        };
        metadata.insert(name, value);
    }
    Ok(metadata)
}

/// The value a `secretKeyRef` points at: key `key` (the secret's name when not given) of secret `secret` in
/// `store`. `what` names the entry holding the reference, for messages.
pub async fn resolve_secret_ref(
    what: &str,
    store: Option<&str>,
    secret: &str,
    key: Option<&str>,
    secret_stores: &BTreeMap<String, Arc<SecretComponent>>,
) -> Result<String, String> {
    let Some(store) = store else {
        return Err(format!(
            "{what} uses a secretKeyRef, but the document names no secret store; add auth: {{secretStore: <name of a secretstores.* component>}}"
        ));
    };
    let key = key.filter(|key| !key.is_empty()).unwrap_or(secret);
    let component = secret_stores
        .get(store)
        .ok_or_else(|| format!("{what}: secret store {store} is not a component of this project"))?;
    let backend = component.backend.as_ref().map_err(|reason| format!("{what}: secret store {store}: {reason}"))?;
    let values = backend.get(secret).await.map_err(|err| format!("{what}: secret store {store}: {err}"))?;
    values.get(key).cloned().ok_or_else(|| format!("{what}: secret {secret} in secret store {store} has no key {key}"))
}

/// A component of `document` around its backend.
fn assemble<B: ?Sized, C>(
    document: &Document,
    component_type: String,
    version: String,
    backend: Result<Arc<B>, String>,
    config: C,
) -> Component<B, C> {
    Component {
        name: document.metadata.name.clone(),
        component_type,
        version,
        scopes: document.scopes.clone(),
        backend,
        config,
    }
}

fn text(document: &Document, field: &str) -> String {
    document.spec.get(field).and_then(|value| value.as_str()).unwrap_or_default().to_owned()
}

/// `spec.version`, `v1` when not given.
fn version(document: &Document) -> String {
    Some(text(document, "version")).filter(|version| !version.is_empty()).unwrap_or_else(|| "v1".into())
}

impl Runtime {
    /// A runtime reading components from `control_plane`, re-reading a project at most every `refresh_after`;
    /// each project's component files live in a directory named after the project under `project_files`.
    pub fn new(
        control_plane: Store,
        managed: ManagedStores,
        refresh_after: Duration,
        project_files: PathBuf,
    ) -> Runtime {
        Runtime {
            control_plane,
            managed,
            projects: ReadThrough::new(MAX_CACHED_PROJECTS, refresh_after),
            opened_stores: Opened::new(),
            opened_brokers: Opened::new(),
            opened_secret_stores: Opened::new(),
            opened_locks: Opened::new(),
            opened_configuration_stores: Opened::new(),
            opened_bindings: Opened::new(),
            opened_input_bindings: Opened::new(),
            changes: tokio::sync::broadcast::channel(CHANGES_BACKLOG).0,
            host_secrets: HostSecrets::Refused,
            egress: Egress::default(),
            project_files,
            programmatic: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Lets projects open secret stores that read this host ([`HostSecrets`]); refused unless set.
    pub fn with_host_secrets(mut self, host_secrets: HostSecrets) -> Runtime {
        self.host_secrets = host_secrets;
        self
    }

    /// Judges every host projects' components dial by `egress` (default: private addresses allowed, nothing
    /// else refused).
    pub fn with_egress(mut self, egress: Egress) -> Runtime {
        self.egress = egress;
        self
    }

    /// What the app answered to `GET /dapr/subscribe` last, if it was asked.
    pub fn programmatic(&self, project_id: &str, app_id: &str) -> Option<ProgrammaticSubscriptions> {
        let key = (project_id.to_owned(), app_id.to_owned());
        self.programmatic.lock().expect("programmatic lock").get(&key).cloned()
    }

    /// Forgets what the app answered to `GET /dapr/subscribe`, so that it is asked again.
    pub fn forget_programmatic(&self, project_id: &str, app_id: &str) {
        let key = (project_id.to_owned(), app_id.to_owned());
        self.programmatic.lock().expect("programmatic lock").remove(&key);
    }

    /// Remembers what the app answered to `GET /dapr/subscribe`.
    pub fn set_programmatic(&self, project_id: &str, app_id: &str, answer: ProgrammaticSubscriptions) {
        let key = (project_id.to_owned(), app_id.to_owned());
        self.programmatic.lock().expect("programmatic lock").insert(key, answer);
    }

    /// Forgets the cached components of a project (a change event arrived); the next call re-reads them.
    pub async fn invalidate(&self, project_id: &str) {
        self.projects.invalidate(&ProjectId::received(project_id.to_owned())).await;
        // Nobody listening is not an error: no managed configuration store is watched.
        let _ = self.changes.send(project_id.into());
    }

    /// The project's components, from the cache when fresh enough. `None` when the project is gone.
    pub async fn project(&self, project_id: &ProjectId) -> Result<Option<Arc<ProjectComponents>>, String> {
        let missed = std::sync::atomic::AtomicBool::new(false);
        let read = || {
            missed.store(true, std::sync::atomic::Ordering::Relaxed);
            self.read_project(project_id)
        };
        let found = self.projects.get_or_load(project_id, read).await;
        outrigger_telemetry::metrics().cache_lookup(CacheName::WorkerComponents, !missed.into_inner());
        found.map_err(|err| String::clone(&err))
    }

    /// Reads the project's components, opening backends whose documents changed and letting go of those whose
    /// documents are gone.
    async fn read_project(&self, project_id: &ProjectId) -> Result<Option<Arc<ProjectComponents>>, String> {
        // Boxed: loading awaits database reads whose futures are large, and this future is part of every call.
        let loaded = Box::pin(self.load(project_id)).await?;
        let project_id = project_id.as_str();
        let kept = |pick: fn(&ProjectComponents, &str) -> bool| {
            let loaded = &loaded;
            move |name: &str| loaded.as_ref().is_some_and(|components| pick(components, name))
        };
        self.opened_stores.retain(project_id, kept(|components, name| components.state.contains_key(name))).await;
        self.opened_brokers.retain(project_id, kept(|components, name| components.pubsub.contains_key(name))).await;
        let secret_store = kept(|components, name| components.secrets.contains_key(name));
        self.opened_secret_stores.retain(project_id, secret_store).await;
        self.opened_locks.retain(project_id, kept(|components, name| components.locks.contains_key(name))).await;
        let configuration_store = kept(|components, name| components.configuration.contains_key(name));
        self.opened_configuration_stores.retain(project_id, configuration_store).await;
        self.opened_bindings.retain(project_id, kept(|components, name| components.bindings.contains_key(name))).await;
        let input_kept = kept(|components, name| components.input_bindings.contains_key(name));
        self.opened_input_bindings.retain(project_id, input_kept).await;
        Ok(loaded.map(Arc::new))
    }

    async fn load(&self, project_id: &ProjectId) -> Result<Option<ProjectComponents>, String> {
        let read = async {
            let mut tx = self.control_plane.begin().await?;
            let project = match tx.project_by_id(project_id).await {
                Ok(project) => project,
                Err(outrigger_store::Error::NotFound { .. }) => return Ok(None),
                Err(err) => return Err(err),
            };
            let documents = tx.list_resources(&project.id, Kind::Component).await?;
            let subscriptions = tx.list_resources(&project.id, Kind::Subscription).await?;
            let resiliencies = tx.list_resources(&project.id, Kind::Resiliency).await?;
            let configurations = tx.list_resources(&project.id, Kind::Configuration).await?;
            let app_ids = tx.list_app_ids(&project.id).await?;
            Ok(Some((project, documents, subscriptions, resiliencies, configurations, app_ids)))
        };
        let Some((project, documents, subscriptions, resiliencies, configurations, app_ids)) =
            read.await.map_err(|err: outrigger_store::Error| format!("reading the project's components: {err}"))?
        else {
            return Ok(None);
        };
        let project_id = project_id.as_str();

        let metrics = outrigger_telemetry::metrics().runtime();
        for resiliency in &resiliencies {
            let document = &resiliency.document;
            for app in app_ids.iter().filter(|app| document.applies_to(&app.name)) {
                let tenant = TenantLabels::new(&project.name, project_id, &app.name);
                metrics.resiliency_loaded(tenant, &document.metadata.name);
            }
        }
        let configurations: HashMap<String, Document> =
            configurations.into_iter().map(|stored| (stored.document.metadata.name.clone(), stored.document)).collect();
        let (mut secret_scopes, mut sampling_rates) = (HashMap::new(), HashMap::new());
        for app in app_ids {
            let Some(configuration) = app.config.as_deref().and_then(|name| configurations.get(name)) else { continue };
            if let Some(rate) = outrigger_resources::sampling_rate(&configuration.spec) {
                sampling_rates.insert(app.name.clone(), rate);
            }
            secret_scopes.insert(app.name, SecretScope::from_configuration(&configuration.spec));
        }
        let mut components = ProjectComponents {
            state: BTreeMap::new(),
            pubsub: BTreeMap::new(),
            secrets: BTreeMap::new(),
            locks: BTreeMap::new(),
            configuration: BTreeMap::new(),
            bindings: BTreeMap::new(),
            input_bindings: BTreeMap::new(),
            secret_scopes,
            sampling_rates,
            subscriptions: subscriptions.into_iter().map(|stored| stored.document).collect(),
            resiliencies: resiliencies.into_iter().map(|stored| stored.document).collect(),
        };
        let configuration_store =
            ManagedConfigurationStore::new(self.control_plane.clone(), project.id.clone(), self.changes.clone());
        self.managed.provide(&project, configuration_store, &mut components);
        let typed: Vec<(Document, String, BuildingBlock)> = documents
            .into_iter()
            .filter_map(|stored| {
                let component_type = text(&stored.document, "type");
                let building_block = components::component_types().lookup(&component_type)?.building_block;
                Some((stored.document, component_type, building_block))
            })
            .collect();
        let boundary = Boundary::tenant(self.egress.clone(), self.project_files.join(project_id));
        // Secret stores first: the other components' secretKeyRefs are read from them.
        let (secret_stores, others): (Vec<_>, Vec<_>) =
            typed.into_iter().partition(|(_, _, building_block)| *building_block == BuildingBlock::SecretStores);
        for (document, component_type, _) in secret_stores {
            let backend = match resolve_metadata(&document, &BTreeMap::new()).await {
                Ok(metadata) => {
                    let open = secrets::open(&component_type, &metadata, self.host_secrets, &boundary);
                    self.opened_secret_stores.get_or_open(project_id, &document, document.spec.clone(), open).await
                }
                Err(_) => Err(format!(
                    "secret store {} takes secretKeyRefs, which a secret store cannot resolve; give its values inline",
                    document.metadata.name
                )),
            };
            let version = version(&document);
            let component = assemble(&document, component_type, version, backend, ());
            components.secrets.insert(document.metadata.name.clone(), Arc::new(component));
        }
        for (document, component_type, building_block) in others {
            let metadata = resolve_metadata(&document, &components.secrets).await;
            let field = |name: &str| metadata.as_ref().ok().and_then(|m| m.get(name)).map(String::as_str);
            let (name, version) = (document.metadata.name.clone(), version(&document));
            match building_block {
                BuildingBlock::State => {
                    let open = |metadata| state::open_within(&component_type, metadata, &boundary);
                    let backend = self.opened_stores.open_resolved(project_id, &document, &metadata, open).await;
                    let key_prefix = KeyPrefix::from_metadata(field("keyPrefix"));
                    let config = StateConfig { key_prefix, namespace: String::new(), quota: None };
                    let component = assemble(&document, component_type, version, backend, config);
                    components.state.insert(name, Arc::new(component));
                }
                BuildingBlock::PubSub => {
                    let open = |metadata| pubsub::open_within(&component_type, metadata, &boundary);
                    let backend = self.opened_brokers.open_resolved(project_id, &document, &metadata, open).await;
                    let topics = metadata.as_ref().map(TopicScopes::from_metadata).unwrap_or_default();
                    let config = PubsubConfig { topics, namespace: format!("{project_id}.") };
                    let component = assemble(&document, component_type, version, backend, config);
                    components.pubsub.insert(name, Arc::new(component));
                }
                BuildingBlock::Lock => {
                    let open = |metadata| lock::open_within(&component_type, metadata, &boundary);
                    let backend = self.opened_locks.open_resolved(project_id, &document, &metadata, open).await;
                    let key_prefix = LockKeyPrefix::from_metadata(field("keyPrefix"));
                    let config = LockConfig { key_prefix, namespace: String::new() };
                    let component = assemble(&document, component_type, version, backend, config);
                    components.locks.insert(name, Arc::new(component));
                }
                BuildingBlock::Configuration => {
                    let open = |metadata| configuration::open_within(&component_type, metadata, &boundary);
                    let stores = &self.opened_configuration_stores;
                    let backend = stores.open_resolved(project_id, &document, &metadata, open).await;
                    let component = assemble(&document, component_type, version, backend, ());
                    components.configuration.insert(name, Arc::new(component));
                }
                // Each side of a binding where its type has it: calling an input-only binding answers "couldn't
                // find output binding", as in daprd.
                BuildingBlock::Bindings => {
                    if components::is_read_input_binding(&component_type) {
                        let open = |metadata| bindings::open_input_within(&component_type, metadata, &boundary);
                        let opened = &self.opened_input_bindings;
                        let backend = opened.open_resolved(project_id, &document, &metadata, open).await;
                        let component = assemble(&document, component_type.clone(), version.clone(), backend, ());
                        components.input_bindings.insert(name.clone(), Arc::new(component));
                    }
                    if components::is_output_binding(&component_type) {
                        let open = |metadata| bindings::open_within(&component_type, metadata, &boundary);
                        let backend = self.opened_bindings.open_resolved(project_id, &document, &metadata, open).await;
                        let component = assemble(&document, component_type, version, backend, ());
                        components.bindings.insert(name, Arc::new(component));
                    }
                }
                // Opened above.
                BuildingBlock::SecretStores => {}
            }
        }
        Ok(Some(components))
    }
}
