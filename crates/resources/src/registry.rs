//! What a component type declares about itself, and the registry of the declared types.
//!
//! Each backend declares its [`ComponentType`] in its own file, beside the code that opens it (the
//! worker's backends); the worker gathers them into one [`Registry`], and everything that needs to know
//! the types (validation at the control API, withholding on export, opening in the worker) reads that one
//! value. Field names are the ones Dapr's own components use (components-contrib `metadata.yaml` and the Go
//! metadata structs), so an exported component runs unchanged on daprd. Fields not declared are still
//! accepted, as daprd accepts them; the declaration decides which fields are required and which hold
//! secrets.

use serde::Serialize;
use utoipa::ToSchema;

/// The Dapr building block a component type implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildingBlock {
    /// State store (`state.*`).
    State,
    /// Pub/sub broker (`pubsub.*`).
    PubSub,
    /// Secret store (`secretstores.*`).
    SecretStores,
    /// Distributed lock store (`lock.*`).
    Lock,
    /// Configuration store (`configuration.*`).
    Configuration,
    /// Binding to an outside system (`bindings.*`).
    Bindings,
}

impl BuildingBlock {
    /// The prefix of this building block's type names, also used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildingBlock::State => "state",
            BuildingBlock::PubSub => "pubsub",
            BuildingBlock::SecretStores => "secretstores",
            BuildingBlock::Lock => "lock",
            BuildingBlock::Configuration => "configuration",
            BuildingBlock::Bindings => "bindings",
        }
    }

    /// What one component of this building block is called in messages.
    pub fn noun(self) -> &'static str {
        match self {
            BuildingBlock::State => "state store",
            BuildingBlock::PubSub => "pub/sub",
            BuildingBlock::SecretStores => "secret store",
            BuildingBlock::Lock => "lock store",
            BuildingBlock::Configuration => "configuration store",
            BuildingBlock::Bindings => "binding",
        }
    }

    /// Fields daprd itself reads from every component of this building block.
    fn common_fields(self) -> &'static [MetadataField] {
        match self {
            BuildingBlock::State => STATE_COMMON,
            BuildingBlock::PubSub => PUBSUB_COMMON,
            BuildingBlock::SecretStores | BuildingBlock::Configuration => &[],
            BuildingBlock::Lock => LOCK_COMMON,
            BuildingBlock::Bindings => BINDINGS_COMMON,
        }
    }
}

/// One metadata field a component type reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataField {
    /// The name in `spec.metadata[].name`.
    pub name: &'static str,
    /// The component cannot start without it.
    pub required: bool,
    /// It holds a secret: withheld from exports unless given as a `secretKeyRef`.
    pub sensitive: bool,
    /// It names a file, which must stay inside the project's directory ([`crate::check_project_file`]).
    pub file: bool,
    /// The value daprd's component uses when the field is left out, as Dapr's docs and the component's
    /// `metadata.yaml` state it, and the value Outrigger's backend applies then too, so that leaving the field
    /// out means the same on both. Where the two differ, the declaring backend says why beside the field and
    /// this is what Outrigger applies. `None`: no such constant (required, secret or free-form fields, or a
    /// default the backend does not apply).
    pub default: Option<&'static str>,
}

impl MetadataField {
    /// This field, applying `default` when it is left out (see [`MetadataField::default`]).
    pub const fn defaults_to(self, default: &'static str) -> MetadataField {
        MetadataField { default: Some(default), ..self }
    }
}

/// A supported component `type`.
#[derive(Debug, PartialEq, Eq)]
pub struct ComponentType {
    /// The `spec.type` value, such as `state.redis`.
    pub name: &'static str,
    /// What it implements.
    pub building_block: BuildingBlock,
    /// Accepted `spec.version` values.
    pub versions: &'static [&'static str],
    /// For a type Outrigger manages itself, the name of the per-project component it backs;
    /// users cannot create components of such a type.
    pub managed_component: Option<&'static str>,
    /// The type's own fields, in groups so that types sharing a client share a list.
    pub field_groups: &'static [&'static [MetadataField]],
}

impl ComponentType {
    /// A type users may create, with the one version `v1`: what most of Dapr's component types are.
    pub const fn v1(
        name: &'static str,
        building_block: BuildingBlock,
        field_groups: &'static [&'static [MetadataField]],
    ) -> ComponentType {
        ComponentType { name, building_block, versions: V1, managed_component: None, field_groups }
    }

    /// Whether users may create components of this type.
    pub fn user_creatable(&self) -> bool {
        self.managed_component.is_none()
    }

    /// Every field the type reads: its own, then those common to its building block.
    pub fn fields(&self) -> impl Iterator<Item = &'static MetadataField> {
        let groups = self.field_groups;
        groups.iter().flat_map(|group| group.iter()).chain(self.building_block.common_fields())
    }

    /// The field called `name`, if the type reads one.
    pub fn field(&self, name: &str) -> Option<&'static MetadataField> {
        self.fields().find(|field| field.name == name)
    }
}

/// A field that may be left out.
pub const fn optional(name: &'static str) -> MetadataField {
    MetadataField { name, required: false, sensitive: false, file: false, default: None }
}

/// A field the component cannot start without.
pub const fn required(name: &'static str) -> MetadataField {
    MetadataField { name, required: true, sensitive: false, file: false, default: None }
}

/// A field holding a secret, withheld from exports.
pub const fn secret(name: &'static str) -> MetadataField {
    MetadataField { name, required: false, sensitive: true, file: false, default: None }
}

/// A required field holding a secret.
pub const fn required_secret(name: &'static str) -> MetadataField {
    MetadataField { name, required: true, sensitive: true, file: false, default: None }
}

/// A required field naming a file inside the project's directory.
pub const fn required_file(name: &'static str) -> MetadataField {
    MetadataField { name, required: true, sensitive: false, file: true, default: None }
}

const STATE_COMMON: &[MetadataField] = &[
    optional("actorStateStore"),
    optional("keyPrefix").defaults_to("appid"),
    optional("outboxPublishPubsub"),
    optional("outboxPublishTopic"),
    optional("outboxPubsub"),
    optional("outboxDiscardWhenMissingState"),
];

const PUBSUB_COMMON: &[MetadataField] = &[
    optional("consumerID"),
    optional("publishingScopes"),
    optional("subscriptionScopes"),
    optional("allowedTopics"),
    optional("protectedTopics"),
];

/// daprd reads `keyPrefix` of every lock store (`pkg/components/lock/lock_config.go`).
const LOCK_COMMON: &[MetadataField] = &[optional("keyPrefix").defaults_to("appid")];

/// daprd reads `direction` and `route` of every binding.
const BINDINGS_COMMON: &[MetadataField] = &[optional("direction"), optional("route")];

/// The `spec.version` list of a type that has only `v1`.
pub const V1: &[&str] = &["v1"];

/// The declared component types, sorted by name; built once by whoever gathers the declarations.
#[derive(Debug)]
pub struct Registry {
    types: Vec<&'static ComponentType>,
}

impl Registry {
    /// The registry of `types`.
    ///
    /// # Panics
    /// If two declarations share a name, or a name does not start with its building block's prefix: both are
    /// mistakes in the declarations, found by the first test that builds the registry.
    pub fn new(types: impl IntoIterator<Item = &'static ComponentType>) -> Registry {
        let mut types: Vec<_> = types.into_iter().collect();
        types.sort_unstable_by_key(|declared| declared.name);
        for pair in types.windows(2) {
            assert_ne!(pair[0].name, pair[1].name, "component type {} is declared twice", pair[0].name);
        }
        for declared in &types {
            let prefix = format!("{}.", declared.building_block.as_str());
            assert!(declared.name.starts_with(&prefix), "{} is not a {prefix}* name", declared.name);
            assert!(!declared.versions.is_empty(), "{} declares no version", declared.name);
            // A default on a required field could never apply, and one on a secret would publish a secret.
            for field in declared.fields() {
                let contradicts = field.default.is_some() && (field.required || field.sensitive);
                assert!(!contradicts, "{} gives its required or secret field {} a default", declared.name, field.name);
            }
        }
        Registry { types }
    }

    /// Every declared type, sorted by name, including the managed ones.
    pub fn types(&self) -> impl Iterator<Item = &'static ComponentType> + '_ {
        self.types.iter().copied()
    }

    /// The component type called `type_name`, including the managed ones.
    pub fn lookup(&self, type_name: &str) -> Option<&'static ComponentType> {
        self.types().find(|declared| declared.name == type_name)
    }

    /// Names of the types users may create, sorted.
    pub fn supported_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.types().filter(|declared| declared.user_creatable()).map(|declared| declared.name)
    }

    /// The types the platform provides to projects itself (`managed_component` set).
    pub fn managed(&self) -> impl Iterator<Item = &'static ComponentType> + '_ {
        self.types().filter(|declared| !declared.user_creatable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static STORE: ComponentType = ComponentType {
        name: "state.example",
        building_block: BuildingBlock::State,
        versions: V1,
        managed_component: None,
        field_groups: &[&[required("host"), optional("port").defaults_to("5432")]],
    };
    static MANAGED: ComponentType = ComponentType {
        name: "state.managed",
        building_block: BuildingBlock::State,
        versions: V1,
        managed_component: Some("kvstore"),
        field_groups: &[],
    };

    #[test]
    fn the_registry_sorts_and_separates_managed_types() {
        let registry = Registry::new([&MANAGED, &STORE]);
        assert_eq!(registry.types().map(|t| t.name).collect::<Vec<_>>(), ["state.example", "state.managed"]);
        assert_eq!(registry.supported_types().collect::<Vec<_>>(), ["state.example"]);
        assert_eq!(registry.managed().map(|t| t.managed_component).collect::<Vec<_>>(), [Some("kvstore")]);
        assert!(registry.lookup("state.other").is_none());
    }

    #[test]
    fn fields_are_the_types_own_then_the_building_blocks() {
        let names: Vec<_> = STORE.fields().map(|field| field.name).collect();
        assert_eq!(names[0], "host");
        assert!(names.contains(&"keyPrefix"));
        assert!(STORE.field("host").unwrap().required);
        assert!(STORE.field("consumerID").is_none());
    }

    #[test]
    fn a_declared_default_is_carried_by_the_field() {
        assert_eq!(STORE.field("port").unwrap().default, Some("5432"));
        assert_eq!(STORE.field("keyPrefix").unwrap().default, Some("appid"));
        assert_eq!(STORE.field("host").unwrap().default, None);
        assert_eq!(optional("port").default, None);
        let field = required_secret("password");
        assert_eq!((field.required, field.sensitive, field.file), (true, true, false));
    }

    #[test]
    #[should_panic(expected = "gives its required or secret field host a default")]
    fn a_default_on_a_required_field_is_refused() {
        static WRONG: ComponentType = ComponentType {
            name: "state.defaulted",
            building_block: BuildingBlock::State,
            versions: V1,
            managed_component: None,
            field_groups: &[&[required("host").defaults_to("localhost")]],
        };
        Registry::new([&WRONG]);
    }

    #[test]
    #[should_panic(expected = "declared twice")]
    fn a_type_declared_twice_is_refused() {
        Registry::new([&STORE, &STORE]);
    }

    #[test]
    #[should_panic(expected = "is not a pubsub.* name")]
    fn a_name_outside_its_building_block_is_refused() {
        static WRONG: ComponentType = ComponentType {
            name: "state.misfiled",
            building_block: BuildingBlock::PubSub,
            versions: V1,
            managed_component: None,
            field_groups: &[],
        };
        Registry::new([&WRONG]);
    }
}
