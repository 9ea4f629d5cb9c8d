//! The component registry: every component type this worker runs, each declared in its backend's own file
//! (its Dapr `type`, versions, metadata fields and how it opens) and listed here once.
//!
//! Everything else derives from this list: the control API validates components and withholds secrets on
//! export with [`component_types`]; the runtime opens components through [`open`], the one opening path,
//! which hands every backend the tenant's [`Boundary`] (the egress rule and the project's directory). The
//! managed components the platform provides to each project are declared here too.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use futures_util::future::BoxFuture;
use outrigger_resources::{BuildingBlock, ComponentType, Registry, V1};

use crate::bindings::{self, InputBinding, OutputBinding};
use crate::boundary::Boundary;
use crate::configuration::{self, ConfigurationStore};
use crate::lock::{self, LockStore};
use crate::pubsub::{self, Broker};
use crate::secrets::{self, HostSecrets, SecretStore};
use crate::state::open::{Fields, OpenError};
use crate::state::{self, StateStore};

/// A component's metadata as name -> text, secrets already resolved.
pub type Metadata = BTreeMap<String, String>;

/// What a backend is opened with.
pub(crate) struct Opening<'a> {
    /// The component's metadata, read as daprd reads it, named after the type in errors.
    pub(crate) fields: Fields<'a>,
    /// What the component may reach.
    pub(crate) boundary: &'a Boundary,
    /// Whether stores that read the worker's own host may open.
    pub(crate) host_secrets: HostSecrets,
}

/// Opens one backend of a building block whose backends implement `B`.
pub(crate) type OpenFn<B> = for<'a> fn(Opening<'a>) -> BoxFuture<'a, Result<Arc<B>, OpenError>>;

/// How a declared type is opened, by building block.
pub(crate) enum Opener {
    State(OpenFn<dyn StateStore>),
    PubSub(OpenFn<dyn Broker>),
    SecretStore(OpenFn<dyn SecretStore>),
    Lock(OpenFn<dyn LockStore>),
    Configuration(OpenFn<dyn ConfigurationStore>),
    /// A binding, with its output side and its input side where it has them (`bindings.cron` has neither here:
    /// the scheduler fires it).
    Binding {
        output: Option<OpenFn<dyn OutputBinding>>,
        input: Option<OpenFn<dyn InputBinding>>,
    },
    /// The platform's own store, shared by every project and never opened from a component.
    Managed,
}

/// One component type: what it declares and how it opens.
pub struct Backend {
    pub(crate) declared: ComponentType,
    pub(crate) opener: Opener,
}

/// The managed key-value store (`kvstore`), backed by the operator's managed state store.
pub static MANAGED_KVSTORE: Backend = managed("state.outrigger", BuildingBlock::State, "kvstore");

/// The managed broker (`pubsub`), backed by the operator's managed pub/sub.
pub static MANAGED_PUBSUB: Backend = managed("pubsub.outrigger", BuildingBlock::PubSub, "pubsub");

/// The managed configuration store (`configstore`), whose items operators set through the control API.
pub static MANAGED_CONFIGSTORE: Backend =
    managed("configuration.outrigger", BuildingBlock::Configuration, "configstore");

const fn managed(name: &'static str, building_block: BuildingBlock, component: &'static str) -> Backend {
    let declared =
        ComponentType { name, building_block, versions: V1, managed_component: Some(component), field_groups: &[] };
    Backend { declared, opener: Opener::Managed }
}

/// Every backend, once.
static BACKENDS: [&Backend; 23] = [
    &state::memory::BACKEND,
    &state::sqlite::BACKEND,
    &state::postgres::BACKEND,
    &state::redis::BACKEND,
    &pubsub::memory::BACKEND,
    &pubsub::jetstream::BACKEND,
    &pubsub::redis::BACKEND,
    &secrets::env::BACKEND,
    &secrets::file::BACKEND,
    &lock::redis::BACKEND,
    &configuration::redis::BACKEND,
    &configuration::postgres::BACKEND,
    &configuration::postgres::ALIAS_BACKEND,
    &bindings::cron::BACKEND,
    &bindings::http::BACKEND,
    &bindings::mqtt::BACKEND,
    &bindings::postgres::BACKEND,
    &bindings::postgres::ALIAS_BACKEND,
    &bindings::rabbitmq::BACKEND,
    &bindings::redis::BACKEND,
    &MANAGED_KVSTORE,
    &MANAGED_PUBSUB,
    &MANAGED_CONFIGSTORE,
];

/// Whether components of `component_type` can be called as output bindings.
pub(crate) fn is_output_binding(component_type: &str) -> bool {
    BACKENDS.iter().any(|backend| backend.declared.name == component_type && backend.opener.binding().is_some())
}

/// Whether components of `component_type` have events that workers read and deliver to apps.
pub(crate) fn is_read_input_binding(component_type: &str) -> bool {
    BACKENDS.iter().any(|backend| backend.declared.name == component_type && backend.opener.input_binding().is_some())
}

/// The declared component types, for the control API's validation and exports.
pub fn component_types() -> &'static Registry {
    static TYPES: LazyLock<Registry> =
        LazyLock::new(|| Registry::new(BACKENDS.iter().map(|backend| &backend.declared)));
    &TYPES
}

impl Backend {
    /// The `(component name, type)` of a managed backend.
    pub fn managed_component(&self) -> (&'static str, &'static str) {
        let name = self.declared.managed_component.expect("declared as a managed component");
        (name, self.declared.name)
    }
}

impl Opener {
    pub(crate) fn state(&self) -> Option<OpenFn<dyn StateStore>> {
        if let Opener::State(open) = self {
            Some(*open)
        } else {
            None
        }
    }

    pub(crate) fn pubsub(&self) -> Option<OpenFn<dyn Broker>> {
        if let Opener::PubSub(open) = self {
            Some(*open)
        } else {
            None
        }
    }

    pub(crate) fn secret_store(&self) -> Option<OpenFn<dyn SecretStore>> {
        if let Opener::SecretStore(open) = self {
            Some(*open)
        } else {
            None
        }
    }

    pub(crate) fn lock(&self) -> Option<OpenFn<dyn LockStore>> {
        if let Opener::Lock(open) = self {
            Some(*open)
        } else {
            None
        }
    }

    pub(crate) fn configuration(&self) -> Option<OpenFn<dyn ConfigurationStore>> {
        if let Opener::Configuration(open) = self {
            Some(*open)
        } else {
            None
        }
    }

    pub(crate) fn binding(&self) -> Option<OpenFn<dyn OutputBinding>> {
        if let Opener::Binding { output, .. } = self {
            *output
        } else {
            None
        }
    }

    pub(crate) fn input_binding(&self) -> Option<OpenFn<dyn InputBinding>> {
        if let Opener::Binding { input, .. } = self {
            *input
        } else {
            None
        }
    }
}

/// The one opening path: finds the backend declared for `component_type` among those `pick` selects the
/// openers of ([`Opener::state`], [`Opener::pubsub`], [`Opener::secret_store`], [`Opener::lock`],
/// [`Opener::configuration`], [`Opener::binding`], [`Opener::input_binding`]) and opens it within `boundary`.
pub(crate) async fn open<B: ?Sized>(
    pick: fn(&Opener) -> Option<OpenFn<B>>,
    component_type: &str,
    metadata: &Metadata,
    boundary: &Boundary,
    host_secrets: HostSecrets,
) -> Result<Arc<B>, OpenError> {
    let found = BACKENDS.iter().find(|backend| backend.declared.name == component_type);
    let Some((declared, open)) = found.and_then(|backend| Some((&backend.declared, pick(&backend.opener)?))) else {
        let known: Vec<_> = BACKENDS.iter().filter(|backend| pick(&backend.opener).is_some()).collect();
        return Err(OpenError::UnknownType {
            building_block: known[0].declared.building_block,
            component_type: component_type.to_owned(),
            known: known.iter().map(|backend| backend.declared.name).collect(),
        });
    };
    open(Opening { fields: Fields::new(declared.name, metadata), boundary, host_secrets }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_opener_serves_the_building_block_its_type_declares() {
        assert_eq!(component_types().types().count(), BACKENDS.len());
        for backend in BACKENDS {
            let serves = match backend.opener {
                Opener::State(_) => Some(BuildingBlock::State),
                Opener::PubSub(_) => Some(BuildingBlock::PubSub),
                Opener::SecretStore(_) => Some(BuildingBlock::SecretStores),
                Opener::Lock(_) => Some(BuildingBlock::Lock),
                Opener::Configuration(_) => Some(BuildingBlock::Configuration),
                Opener::Binding { .. } => Some(BuildingBlock::Bindings),
                Opener::Managed => None,
            };
            let declared = &backend.declared;
            match serves {
                Some(building_block) => assert_eq!(building_block, declared.building_block, "{}", declared.name),
                None => assert!(!declared.user_creatable(), "{} opens nowhere but may be created", declared.name),
            }
        }
    }
}
