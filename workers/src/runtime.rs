//! The component runtime: what each project's components are, opened and cached.
//!
//! A project's components come from the control-plane database. They are re-read at most every
//! `refresh_after` so that changes made through the control API reach every worker without a restart;
//! a store whose document did not change keeps its open connections across re-reads.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outrigger_resources::{lookup, BuildingBlock, Document, Kind};
use outrigger_store::Store;
use tokio::sync::Mutex;

use crate::state::{self, StateStore};

/// Name and type of the managed state store every project gets unless it opted out.
pub const MANAGED_KVSTORE: (&str, &str) = ("kvstore", "state.outrigger");

/// How long opening one store may take before the component is reported as failed.
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

/// A state component of a project, ready to use (or with the reason it could not be opened).
pub struct StateComponent {
    /// Component name.
    pub name: String,
    /// `spec.type`.
    pub component_type: String,
    /// `spec.version`.
    pub version: String,
    /// App IDs allowed to use it; empty = all of the project's.
    pub scopes: Vec<String>,
    /// Key scheme.
    pub key_prefix: KeyPrefix,
    /// Prepended to every key: keeps projects apart inside the shared managed store.
    pub namespace: String,
    /// The open store, or why it failed to open.
    pub store: Result<Arc<dyn StateStore>, String>,
}

impl StateComponent {
    /// Whether `app_id` may use the component.
    pub fn allows(&self, app_id: &str) -> bool {
        self.scopes.is_empty() || self.scopes.iter().any(|scope| scope == app_id)
    }
}

/// A project's components at one moment.
pub struct ProjectComponents {
    /// State components by name.
    pub state: BTreeMap<String, Arc<StateComponent>>,
    loaded_at: Instant,
}

/// Stores the platform provides to every project.
#[derive(Clone)]
pub struct ManagedStores {
    /// Backs each project's `kvstore`; keys carry the project's namespace.
    pub kvstore: Arc<dyn StateStore>,
}

/// An opened user store, remembered with the document it was opened from.
struct OpenedStore {
    spec: serde_json::Value,
    store: Arc<dyn StateStore>,
}

/// Components of every project a worker has served recently.
pub struct Runtime {
    control_plane: Store,
    managed: ManagedStores,
    refresh_after: Duration,
    // A plain mutex: it is held only to read or swap an entry, never across an await.
    projects: std::sync::Mutex<HashMap<String, Arc<ProjectComponents>>>,
    opened: Mutex<HashMap<(String, String), OpenedStore>>,
}

/// Component metadata as name -> text, the form stores are opened with.
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

impl Runtime {
    /// A runtime reading components from `control_plane`, re-reading a project at most every `refresh_after`.
    pub fn new(control_plane: Store, managed: ManagedStores, refresh_after: Duration) -> Runtime {
        Runtime {
            control_plane,
            managed,
            refresh_after,
            projects: std::sync::Mutex::new(HashMap::new()),
            opened: Mutex::new(HashMap::new()),
        }
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
        if loaded.is_none() {
            // The project is gone: so are its stores.
            self.opened.lock().await.retain(|(project, _), _| project != project_id);
        }
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
            Ok(Some((project, documents)))
        };
        let Some((project, documents)) =
            read.await.map_err(|err: outrigger_store::Error| format!("reading the project's components: {err}"))?
        else {
            return Ok(None);
        };

        let mut state = BTreeMap::new();
        if project.managed_kvstore {
            let (name, component_type) = MANAGED_KVSTORE;
            state.insert(
                name.to_owned(),
                Arc::new(StateComponent {
                    name: name.to_owned(),
                    component_type: component_type.to_owned(),
                    version: "v1".to_owned(),
                    scopes: Vec::new(),
                    key_prefix: KeyPrefix::AppId,
                    namespace: format!("{project_id}/"),
                    store: Ok(Arc::clone(&self.managed.kvstore)),
                }),
            );
        }
        for stored in documents {
            let document = stored.document;
            let component_type = document.spec.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
            if lookup(&component_type).map(|t| t.building_block) != Some(BuildingBlock::State) {
                continue;
            }
            let metadata = metadata_strings(&document);
            let key_prefix =
                KeyPrefix::from_metadata(metadata.as_ref().ok().and_then(|m| m.get("keyPrefix")).map(String::as_str));
            let store = match metadata {
                Ok(metadata) => self.open_store(project_id, &document, &component_type, &metadata).await,
                Err(reason) => Err(reason),
            };
            let name = document.metadata.name.clone();
            state.insert(
                name.clone(),
                Arc::new(StateComponent {
                    name,
                    component_type,
                    version: document.spec.get("version").and_then(|v| v.as_str()).unwrap_or("v1").to_owned(),
                    scopes: document.scopes.clone(),
                    key_prefix,
                    namespace: String::new(),
                    store,
                }),
            );
        }
        // Stores of components that no longer exist close once the last call using them ends.
        self.opened.lock().await.retain(|(project, name), _| project != project_id || state.contains_key(name));
        Ok(Some(ProjectComponents { state, loaded_at: Instant::now() }))
    }

    /// Opens a user store, or reuses the one opened from the same document.
    async fn open_store(
        &self,
        project_id: &str,
        document: &Document,
        component_type: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn StateStore>, String> {
        let key = (project_id.to_owned(), document.metadata.name.clone());
        if let Some(opened) = self.opened.lock().await.get(&key) {
            if opened.spec == document.spec {
                return Ok(Arc::clone(&opened.store));
            }
        }
        let opening = state::open(component_type, metadata);
        let store = match tokio::time::timeout(OPEN_TIMEOUT, opening).await {
            Ok(Ok(store)) => store,
            Ok(Err(err)) => return Err(format!("component {} could not start: {err}", document.metadata.name)),
            Err(_) => {
                return Err(format!(
                    "component {} could not start: its backend did not answer within {OPEN_TIMEOUT:?}",
                    document.metadata.name
                ))
            }
        };
        tracing::info!(project_id, component = %document.metadata.name, component_type, "state store opened");
        self.opened.lock().await.insert(key, OpenedStore { spec: document.spec.clone(), store: Arc::clone(&store) });
        Ok(store)
    }
}
