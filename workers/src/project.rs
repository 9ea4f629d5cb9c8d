//! What a project's components are once read: each building block's components with what it needs besides
//! the backend (key schemes, namespaces, topic scopes), and the managed components the platform provides to
//! every project from the operator's own stores.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use outrigger_resources::Document;
use outrigger_store::{Project, ProjectId};

use crate::bindings::{InputBinding, OutputBinding};
use crate::components::{Backend, MANAGED_CONFIGSTORE, MANAGED_KVSTORE, MANAGED_PUBSUB};
use crate::configuration::{ConfigurationStore, ManagedConfigurationStore};
use crate::lock::{LockKeyPrefix, LockStore, StateLockStore};
use crate::pubsub::{Broker, TopicScopes};
use crate::secrets::{SecretScope, SecretStore};
use crate::state::{StateStore, StoredBytesQuota};

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
    pub(crate) fn from_metadata(value: Option<&str>) -> KeyPrefix {
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

impl ProjectComponents {
    /// The rate a trace the platform starts for `app_id` (a binding event) is sampled at: its Configuration's,
    /// else the installation's.
    pub fn sampling_rate(&self, app_id: &str) -> f64 {
        self.sampling_rates.get(app_id).copied().unwrap_or_else(outrigger_telemetry::trace::default_sampling_rate)
    }
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
    /// The project's stored-bytes quota, on the managed store when the project has one.
    pub quota: Option<Arc<StoredBytesQuota>>,
}

/// What a broker needs besides its backend.
pub struct PubsubConfig {
    /// Which apps may use which topics.
    pub topics: TopicScopes,
    /// Prepended to every topic and group: keeps projects apart in every broker.
    pub namespace: String,
}

/// What a lock store needs besides its backend.
pub struct LockConfig {
    /// Key scheme.
    pub key_prefix: LockKeyPrefix,
    /// Prepended to every key: keeps projects apart inside the shared managed store.
    pub namespace: String,
}

/// A state component.
pub type StateComponent = Component<dyn StateStore, StateConfig>;
/// A pub/sub component.
pub type PubsubComponent = Component<dyn Broker, PubsubConfig>;
/// A secret store component.
pub type SecretComponent = Component<dyn SecretStore, ()>;
/// A lock store component.
pub type LockComponent = Component<dyn LockStore, LockConfig>;
/// An output binding component.
pub type BindingComponent = Component<dyn OutputBinding, ()>;
/// The input side of a binding component.
pub type InputBindingComponent = Component<dyn InputBinding, ()>;
/// A configuration store component.
pub type ConfigurationComponent = Component<dyn ConfigurationStore, ()>;

/// A project's components at one moment.
pub struct ProjectComponents {
    /// State components by name.
    pub state: BTreeMap<String, Arc<StateComponent>>,
    /// Pub/sub components by name.
    pub pubsub: BTreeMap<String, Arc<PubsubComponent>>,
    /// Secret store components by name.
    pub secrets: BTreeMap<String, Arc<SecretComponent>>,
    /// Lock stores by name (the managed `kvstore` among them when the project has it).
    pub locks: BTreeMap<String, Arc<LockComponent>>,
    /// Output bindings by name.
    pub bindings: BTreeMap<String, Arc<BindingComponent>>,
    /// Bindings whose events workers read for apps, by name.
    pub input_bindings: BTreeMap<String, Arc<InputBindingComponent>>,
    /// Configuration stores by name (the managed `configstore` among them).
    pub configuration: BTreeMap<String, Arc<ConfigurationComponent>>,
    /// The secret scopes of each App ID's Configuration, by App ID and then store name.
    pub secret_scopes: HashMap<String, BTreeMap<String, SecretScope>>,
    /// The `tracing.samplingRate` of each App ID whose Configuration sets one.
    pub sampling_rates: HashMap<String, f64>,
    /// `Subscription` documents.
    pub subscriptions: Vec<Document>,
    /// `Resiliency` documents.
    pub resiliencies: Vec<Document>,
}

/// Backends the platform provides to every project.
#[derive(Clone)]
pub struct ManagedStores {
    /// Backs each project's `kvstore`; keys carry the project's namespace.
    pub kvstore: Arc<dyn StateStore>,
    /// The locks of each project's `kvstore`, in the same store under keys of their own.
    kvstore_locks: Arc<dyn LockStore>,
    /// Backs each project's `pubsub`; topics carry the project's namespace.
    pub pubsub: Arc<dyn Broker>,
    /// Bytes a project without a quota of its own may keep in `kvstore`; 0 = no limit.
    default_stored_bytes_quota: u64,
}

impl ManagedStores {
    /// The managed stores over `kvstore` and `pubsub`.
    pub fn new(kvstore: Arc<dyn StateStore>, pubsub: Arc<dyn Broker>) -> ManagedStores {
        let kvstore_locks = Arc::new(StateLockStore::new(Arc::clone(&kvstore)));
        ManagedStores { kvstore, pubsub, kvstore_locks, default_stored_bytes_quota: 0 }
    }

    /// These stores with `bytes` as the stored-bytes quota of projects without one of their own (0: no limit).
    pub fn with_default_stored_bytes_quota(self, bytes: u64) -> ManagedStores {
        ManagedStores { default_stored_bytes_quota: bytes, ..self }
    }

    /// Adds the managed components `project` has to `components`: `kvstore` (a state and a lock store) and
    /// `pubsub` as the project chose, and `configstore` (over `configuration_store`) always.
    pub(crate) fn provide(
        &self,
        project: &Project,
        configuration_store: ManagedConfigurationStore,
        components: &mut ProjectComponents,
    ) {
        let project_id = project.id.as_str();
        if project.managed_kvstore {
            let namespace = managed_kvstore_namespace(&project.id);
            let limit = project.quotas.stored_bytes.unwrap_or(self.default_stored_bytes_quota);
            let quota = (limit > 0).then(|| Arc::new(StoredBytesQuota::new(limit, namespace.clone())));
            let config = StateConfig { key_prefix: KeyPrefix::AppId, namespace, quota };
            let (name, state) = managed(&MANAGED_KVSTORE, Arc::clone(&self.kvstore), config);
            components.state.insert(name, state);
            // Locks live under `<project>/locks/`: App IDs hold no `/`, so no App ID's state keys
            // (`<project>/<appid>||<key>`) or query scans reach them.
            let config = LockConfig { key_prefix: LockKeyPrefix::AppId, namespace: format!("{project_id}/locks/") };
            let (name, locks) = managed(&MANAGED_KVSTORE, Arc::clone(&self.kvstore_locks), config);
            components.locks.insert(name, locks);
        }
        if project.managed_pubsub {
            let config =
                PubsubConfig { topics: TopicScopes::default(), namespace: managed_pubsub_namespace(&project.id) };
            let (name, pubsub) = managed(&MANAGED_PUBSUB, Arc::clone(&self.pubsub), config);
            components.pubsub.insert(name, pubsub);
        }
        let store: Arc<dyn ConfigurationStore> = Arc::new(configuration_store);
        let (name, configuration) = managed(&MANAGED_CONFIGSTORE, store, ());
        components.configuration.insert(name, configuration);
    }
}

/// Where a project's keys start in the managed kvstore: every key of its state and of its locks.
pub fn managed_kvstore_namespace(project: &ProjectId) -> String {
    format!("{}/", project.as_str())
}

/// Where a project's topics and consumer groups start in the managed pubsub.
pub fn managed_pubsub_namespace(project: &ProjectId) -> String {
    format!("{}.", project.as_str())
}

/// The component a managed backend declares, around `backend`: its name, and the component.
fn managed<B: ?Sized, C>(declared: &Backend, backend: Arc<B>, config: C) -> (String, Arc<Component<B, C>>) {
    let (name, component_type) = declared.managed_component();
    let component = Component {
        name: name.to_owned(),
        component_type: component_type.to_owned(),
        version: "v1".into(),
        scopes: Vec::new(),
        backend: Ok(backend),
        config,
    };
    (name.to_owned(), Arc::new(component))
}
