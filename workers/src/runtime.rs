//! The component runtime: what each project's components are, opened and cached.
//!
//! A project's components come from the control-plane database. The cache is dropped on a change event and
//! re-read at most every `refresh_after` in any case; a backend whose document did not change keeps its open
//! connections across re-reads.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outrigger_resources::{lookup, BuildingBlock, Document, Kind};
use outrigger_store::Store;
use tokio::sync::Mutex;

use crate::pubsub::{self, Broker, TopicScopes};
use crate::state::{self, StateStore};

/// Name and type of the managed state store every project gets unless it opted out.
pub const MANAGED_KVSTORE: (&str, &str) = ("kvstore", "state.outrigger");
/// Name and type of the managed broker every project gets unless it opted out.
pub const MANAGED_PUBSUB: (&str, &str) = ("pubsub", "pubsub.outrigger");

/// How long opening one backend may take before the component is reported as failed.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// How a state component turns an app's key into a stored key (Dapr's `keyPrefix` metadata).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPrefix {
    /// `<appid>||<key>` (the default).
    AppId,
    /// `<component name>||<key>`: shared by the apps of the project.
    ComponentName,
    /// `<namespace>.<appid>||<key>`; the project is the namespace.
    Namespace,
    /// `<key>` as given.
    None,
    /// `<custom>||<key>`.
    Custom(String),
}

impl KeyPrefix {
    fn from_metadata(value: Option<&str>) -> KeyPrefix {
        match value.map(str::trim) {
            None | Some("") | Some("appid") => KeyPrefix::AppId,
            Some("name") => KeyPrefix::ComponentName,
            Some("namespace") => KeyPrefix::Namespace,
            Some("none") => KeyPrefix::None,
            Some(custom) => KeyPrefix::Custom(custom.to_owned()),
        }
    }
}

/// A component of a project, ready to use (or with the reason its backend could not be opened).
pub struct Component<B: ?Sized, C> {
    /// Component name.
    pub name: String,
    /// `spec.type`.
    pub component_type: String,
    /// `spec.version`.
    pub version: String,
    /// App IDs allowed to use it; empty = all of the project's.
    pub scopes: Vec<String>,
    /// The open backend, or why it failed to open.
    pub backend: Result<Arc<B>, String>,
    /// What the building block needs besides the backend.
    pub config: C,
}

impl<B: ?Sized, C> Component<B, C> {
    /// Whether `app_id` may use the component.
    pub fn allows(&self, app_id: &str) -> bool {
        self.scopes.is_empty() || self.scopes.iter().any(|scope| scope == app_id)
    }
}

/// What a state store needs besides its backend.
pub struct StateConfig {
    /// Key scheme.
    pub key_prefix: KeyPrefix,
    /// Prepended to every key: keeps projects apart inside the shared managed store.
    pub namespace: String,
}

/// What a broker needs besides its backend.
pub struct PubsubConfig {
    /// Which apps may use which topics.
    pub topics: TopicScopes,
    /// Prepended to every topic and group: keeps projects apart in every broker.
    pub namespace: String,
}

/// A state component.
pub type StateComponent = Component<dyn StateStore, StateConfig>;
/// A pub/sub component.
pub type PubsubComponent = Component<dyn Broker, PubsubConfig>;

/// A project's components at one moment.
pub struct ProjectComponents {
    /// State components by name.
    pub state: BTreeMap<String, Arc<StateComponent>>,
    /// Pub/sub components by name.
    pub pubsub: BTreeMap<String, Arc<PubsubComponent>>,
    /// `Subscription` documents.
    pub subscriptions: Vec<Document>,
    /// `Resiliency` documents.
    pub resiliencies: Vec<Document>,
    loaded_at: Instant,
}

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

/// Backends the platform provides to every project.
#[derive(Clone)]
pub struct ManagedStores {
    /// Backs each project's `kvstore`; keys carry the project's namespace.
    pub kvstore: Arc<dyn StateStore>,
    /// Backs each project's `pubsub`; topics carry the project's namespace.
    pub pubsub: Arc<dyn Broker>,
}

/// A backend remembered with the document spec it was opened from, by (project id, component name).
type OpenedBackends<B> = HashMap<(String, String), (serde_json::Value, Arc<B>)>;

/// Opened backends of one building block.
struct Opened<B: ?Sized>(Mutex<OpenedBackends<B>>);

impl<B: ?Sized> Opened<B> {
    fn new() -> Opened<B> {
        Opened(Mutex::new(HashMap::new()))
    }

    /// The backend opened from the same spec, or a newly opened one.
    async fn get_or_open<E: std::fmt::Display>(
        &self,
        project_id: &str,
        document: &Document,
        open: impl Future<Output = Result<Arc<B>, E>>,
    ) -> Result<Arc<B>, String> {
        let key = (project_id.to_owned(), document.metadata.name.clone());
        if let Some((spec, backend)) = self.0.lock().await.get(&key) {
            if *spec == document.spec {
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
        self.0.lock().await.insert(key, (document.spec.clone(), Arc::clone(&backend)));
        Ok(backend)
    }

    /// Forgets backends of `project_id` not named in `keep`; they close once the last call using them ends.
    async fn retain<V>(&self, project_id: &str, keep: &BTreeMap<String, V>) {
        self.0.lock().await.retain(|(project, name), _| project != project_id || keep.contains_key(name));
    }
}

/// Components of every project a worker has served recently.
pub struct Runtime {
    control_plane: Store,
    managed: ManagedStores,
    refresh_after: Duration,
    // A plain mutex: it is held only to read or swap an entry, never across an await.
    projects: std::sync::Mutex<HashMap<String, Arc<ProjectComponents>>>,
    opened_stores: Opened<dyn StateStore>,
    opened_brokers: Opened<dyn Broker>,
    // Written by the deliverer, read for `/v1.0/metadata`; never held across an await.
    programmatic: std::sync::Mutex<HashMap<(String, String), ProgrammaticSubscriptions>>,
}

/// Component metadata as name -> text, the form backends are opened with.
fn metadata_strings(document: &Document) -> Result<BTreeMap<String, String>, String> {
    let mut metadata = BTreeMap::new();
    let entries = document.spec.get("metadata").and_then(|m| m.as_array()).cloned().unwrap_or_default();
    for entry in entries {
        let name = entry.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_owned();
        let value = match entry.get("value") {
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(serde_json::Value::Null) | None if entry.get("secretKeyRef").is_some() => {
                return Err(format!(
                    "metadata field '{name}' uses a secretKeyRef, and secret stores are not served yet; give the value inline"
                ))
            }
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        metadata.insert(name, value);
    }
    Ok(metadata)
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

impl Runtime {
    /// A runtime reading components from `control_plane`, re-reading a project at most every `refresh_after`.
    pub fn new(control_plane: Store, managed: ManagedStores, refresh_after: Duration) -> Runtime {
        Runtime {
            control_plane,
            managed,
            refresh_after,
            projects: std::sync::Mutex::new(HashMap::new()),
            opened_stores: Opened::new(),
            opened_brokers: Opened::new(),
            programmatic: std::sync::Mutex::new(HashMap::new()),
        }
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
    pub fn invalidate(&self, project_id: &str) {
        self.projects.lock().expect("project cache lock").remove(project_id);
    }

    /// The project's components, from the cache when fresh enough. `None` when the project is gone.
    pub async fn project(&self, project_id: &str) -> Result<Option<Arc<ProjectComponents>>, String> {
        if let Some(cached) = self.projects.lock().expect("project cache lock").get(project_id) {
            if cached.loaded_at.elapsed() < self.refresh_after {
                return Ok(Some(Arc::clone(cached)));
            }
        }
        let loaded = self.load(project_id).await?;
        let empty = BTreeMap::<String, ()>::new();
        let (keep_stores, keep_brokers) = match &loaded {
            Some(components) => (
                components.state.keys().map(|name| (name.clone(), ())).collect(),
                components.pubsub.keys().map(|name| (name.clone(), ())).collect(),
            ),
            None => (empty.clone(), empty),
        };
        self.opened_stores.retain(project_id, &keep_stores).await;
        self.opened_brokers.retain(project_id, &keep_brokers).await;
        let mut projects = self.projects.lock().expect("project cache lock");
        match loaded {
            Some(components) => {
                let components = Arc::new(components);
                projects.insert(project_id.to_owned(), Arc::clone(&components));
                Ok(Some(components))
            }
            None => {
                projects.remove(project_id);
                Ok(None)
            }
        }
    }

    async fn load(&self, project_id: &str) -> Result<Option<ProjectComponents>, String> {
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
            Ok(Some((project, documents, subscriptions, resiliencies)))
        };
        let Some((project, documents, subscriptions, resiliencies)) =
            read.await.map_err(|err: outrigger_store::Error| format!("reading the project's components: {err}"))?
        else {
            return Ok(None);
        };

        let mut components = ProjectComponents {
            state: BTreeMap::new(),
            pubsub: BTreeMap::new(),
            subscriptions: subscriptions.into_iter().map(|stored| stored.document).collect(),
            resiliencies: resiliencies.into_iter().map(|stored| stored.document).collect(),
            loaded_at: Instant::now(),
        };
        let managed = |(name, component_type): (&str, &str)| (name.to_owned(), component_type.to_owned());
        if project.managed_kvstore {
            let (name, component_type) = managed(MANAGED_KVSTORE);
            let config = StateConfig { key_prefix: KeyPrefix::AppId, namespace: format!("{project_id}/") };
            let backend = Ok(Arc::clone(&self.managed.kvstore));
            let component = Component {
                name: name.clone(),
                component_type,
                version: "v1".into(),
                scopes: Vec::new(),
                backend,
                config,
            };
            components.state.insert(name, Arc::new(component));
        }
        if project.managed_pubsub {
            let (name, component_type) = managed(MANAGED_PUBSUB);
            let config = PubsubConfig { topics: TopicScopes::default(), namespace: format!("{project_id}.") };
            let backend = Ok(Arc::clone(&self.managed.pubsub));
            let component = Component {
                name: name.clone(),
                component_type,
                version: "v1".into(),
                scopes: Vec::new(),
                backend,
                config,
            };
            components.pubsub.insert(name, Arc::new(component));
        }
        for stored in documents {
            let document = stored.document;
            let component_type = text(&document, "type");
            let Some(building_block) = lookup(&component_type).map(|t| t.building_block) else { continue };
            let metadata = metadata_strings(&document);
            let field = |name: &str| metadata.as_ref().ok().and_then(|m| m.get(name)).map(String::as_str);
            let version = Some(text(&document, "version")).filter(|v| !v.is_empty()).unwrap_or_else(|| "v1".into());
            let name = document.metadata.name.clone();
            match building_block {
                BuildingBlock::State => {
                    let backend = match &metadata {
                        Ok(metadata) => {
                            let open = state::open(&component_type, metadata);
                            self.opened_stores.get_or_open(project_id, &document, open).await
                        }
                        Err(reason) => Err(reason.clone()),
                    };
                    let config = StateConfig {
                        key_prefix: KeyPrefix::from_metadata(field("keyPrefix")),
                        namespace: String::new(),
                    };
                    components
                        .state
                        .insert(name, Arc::new(assemble(&document, component_type, version, backend, config)));
                }
                BuildingBlock::PubSub => {
                    let backend = match &metadata {
                        Ok(metadata) => {
                            let open = pubsub::open(&component_type, metadata);
                            self.opened_brokers.get_or_open(project_id, &document, open).await
                        }
                        Err(reason) => Err(reason.clone()),
                    };
                    let topics = metadata.as_ref().map(TopicScopes::from_metadata).unwrap_or_default();
                    let config = PubsubConfig { topics, namespace: format!("{project_id}.") };
                    components
                        .pubsub
                        .insert(name, Arc::new(assemble(&document, component_type, version, backend, config)));
                }
            }
        }
        Ok(Some(components))
    }
}
