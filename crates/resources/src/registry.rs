//! The component types Outrigger supports, with the metadata fields each one reads.
//!
//! Field names are the ones Dapr's own components use (components-contrib `metadata.yaml`
//! and the Go metadata structs), so an exported component runs unchanged on daprd. Fields
//! not listed here are still accepted, as daprd accepts them; the table decides which
//! fields are required and which hold secrets.

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
}

impl BuildingBlock {
    /// The prefix of this building block's type names, also used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildingBlock::State => "state",
            BuildingBlock::PubSub => "pubsub",
            BuildingBlock::SecretStores => "secretstores",
        }
    }

    /// Fields daprd itself reads from every component of this building block.
    fn common_fields(self) -> &'static [MetadataField] {
        match self {
            BuildingBlock::State => STATE_COMMON,
            BuildingBlock::PubSub => PUBSUB_COMMON,
            BuildingBlock::SecretStores => &[],
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
    field_groups: &'static [&'static [MetadataField]],
}

impl ComponentType {
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

const fn optional(name: &'static str) -> MetadataField {
    MetadataField { name, required: false, sensitive: false, file: false }
}

const fn required(name: &'static str) -> MetadataField {
    MetadataField { name, required: true, sensitive: false, file: false }
}

const fn secret(name: &'static str) -> MetadataField {
    MetadataField { name, required: false, sensitive: true, file: false }
}

const fn required_secret(name: &'static str) -> MetadataField {
    MetadataField { name, required: true, sensitive: true, file: false }
}

const fn required_file(name: &'static str) -> MetadataField {
    MetadataField { name, required: true, sensitive: false, file: true }
}

const STATE_COMMON: &[MetadataField] = &[
    optional("actorStateStore"),
    optional("keyPrefix"),
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

/// The Redis client settings Dapr shares between its Redis state store and pub/sub.
/// `maxRetries` and `maxRetryBackoff` are the older spellings daprd still reads.
/// `clientKey` is a TLS private key, so it is treated as a secret although Dapr's
/// metadata.yaml does not flag it.
const REDIS_CLIENT: &[MetadataField] = &[
    required("redisHost"),
    optional("redisPort"),
    optional("redisUsername"),
    secret("redisPassword"),
    optional("redisType"),
    optional("redisDB"),
    optional("failover"),
    optional("sentinelMasterName"),
    optional("sentinelUsername"),
    secret("sentinelPassword"),
    optional("enableTLS"),
    optional("insecureSkipTLSVerify"),
    optional("clientCert"),
    secret("clientKey"),
    optional("useEntraID"),
    optional("useOIDC"),
    optional("oidcTokenEndpoint"),
    optional("oidcClientID"),
    optional("oidcClientAssertionCert"),
    secret("oidcClientAssertionKey"),
    optional("oidcResource"),
    optional("oidcAudience"),
    optional("oidcScopes"),
    optional("oidcKid"),
    optional("oidcCACert"),
    optional("redisMaxRetries"),
    optional("maxRetries"),
    optional("redisMinRetryInterval"),
    optional("redisMaxRetryInterval"),
    optional("maxRetryBackoff"),
    optional("dialTimeout"),
    optional("readTimeout"),
    optional("writeTimeout"),
    optional("poolSize"),
    optional("poolTimeout"),
    optional("maxConnAge"),
    optional("minIdleConns"),
    optional("idleCheckFrequency"),
    optional("idleTimeout"),
];

const REDIS_STATE: &[MetadataField] = &[optional("ttlInSeconds"), optional("queryIndexes")];

const REDIS_PUBSUB: &[MetadataField] = &[
    optional("redeliverInterval"),
    optional("processingTimeout"),
    optional("queueDepth"),
    optional("concurrency"),
    optional("maxLenApprox"),
    optional("streamTTL"),
];

/// Table settings shared by Dapr's SQL state stores.
const SQL_STATE_TABLES: &[MetadataField] =
    &[optional("tableName"), optional("metadataTableName"), optional("timeout"), optional("cleanupInterval")];

const POSTGRESQL_STATE: &[MetadataField] = &[
    required_secret("connectionString"),
    optional("maxConns"),
    optional("connectionMaxIdleTime"),
    optional("queryExecMode"),
    optional("host"),
    optional("hostaddr"),
    optional("port"),
    optional("database"),
    optional("user"),
    secret("password"),
    optional("sslRootCert"),
    optional("useAzureAD"),
    optional("useAWSIAM"),
    optional("awsAccessKey"),
    secret("awsSecretKey"),
];

const SQLITE_STATE: &[MetadataField] =
    &[required_file("connectionString"), optional("busyTimeout"), optional("disableWAL")];

const JETSTREAM_PUBSUB: &[MetadataField] = &[
    required("natsURL"),
    secret("jwt"),
    secret("seedKey"),
    secret("token"),
    optional("tls_client_cert"),
    secret("tls_client_key"),
    optional("name"),
    optional("streamName"),
    optional("durableName"),
    optional("queueGroupName"),
    optional("startSequence"),
    optional("startTime"),
    optional("flowControl"),
    optional("ackWait"),
    optional("maxDeliver"),
    optional("backOff"),
    optional("maxAckPending"),
    optional("replicas"),
    optional("memoryStorage"),
    optional("rateLimit"),
    optional("heartbeat"),
    optional("deliverPolicy"),
    optional("ackPolicy"),
    optional("domain"),
    optional("apiPrefix"),
    optional("concurrency"),
];

const LOCAL_FILE_SECRETS: &[MetadataField] =
    &[required_file("secretsFile"), optional("nestedSeparator"), optional("multiValued")];

const LOCAL_ENV_SECRETS: &[MetadataField] = &[optional("prefix")];

const V1: &[&str] = &["v1"];

/// Every known component type, sorted by name.
static COMPONENT_TYPES: &[ComponentType] = &[
    ComponentType {
        name: "pubsub.in-memory",
        building_block: BuildingBlock::PubSub,
        versions: V1,
        managed_component: None,
        field_groups: &[],
    },
    ComponentType {
        name: "pubsub.jetstream",
        building_block: BuildingBlock::PubSub,
        versions: V1,
        managed_component: None,
        field_groups: &[JETSTREAM_PUBSUB],
    },
    ComponentType {
        name: "pubsub.outrigger",
        building_block: BuildingBlock::PubSub,
        versions: V1,
        managed_component: Some("pubsub"),
        field_groups: &[],
    },
    ComponentType {
        name: "pubsub.redis",
        building_block: BuildingBlock::PubSub,
        versions: V1,
        managed_component: None,
        field_groups: &[REDIS_CLIENT, REDIS_PUBSUB],
    },
    ComponentType {
        name: "secretstores.local.env",
        building_block: BuildingBlock::SecretStores,
        versions: V1,
        managed_component: None,
        field_groups: &[LOCAL_ENV_SECRETS],
    },
    ComponentType {
        name: "secretstores.local.file",
        building_block: BuildingBlock::SecretStores,
        versions: V1,
        managed_component: None,
        field_groups: &[LOCAL_FILE_SECRETS],
    },
    ComponentType {
        name: "state.in-memory",
        building_block: BuildingBlock::State,
        versions: V1,
        managed_component: None,
        field_groups: &[],
    },
    ComponentType {
        name: "state.outrigger",
        building_block: BuildingBlock::State,
        versions: V1,
        managed_component: Some("kvstore"),
        field_groups: &[],
    },
    ComponentType {
        name: "state.postgresql",
        building_block: BuildingBlock::State,
        versions: V1,
        managed_component: None,
        field_groups: &[POSTGRESQL_STATE, SQL_STATE_TABLES],
    },
    ComponentType {
        name: "state.redis",
        building_block: BuildingBlock::State,
        versions: V1,
        managed_component: None,
        field_groups: &[REDIS_CLIENT, REDIS_STATE],
    },
    ComponentType {
        name: "state.sqlite",
        building_block: BuildingBlock::State,
        versions: V1,
        managed_component: None,
        field_groups: &[SQLITE_STATE, SQL_STATE_TABLES],
    },
];

/// The component type called `type_name`, including the managed ones.
pub fn lookup(type_name: &str) -> Option<&'static ComponentType> {
    COMPONENT_TYPES.iter().find(|known| known.name == type_name)
}

/// Names of the types users may create, sorted.
pub fn supported_types() -> impl Iterator<Item = &'static str> {
    COMPONENT_TYPES.iter().filter(|known| known.user_creatable()).map(|known| known.name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn table_is_sorted_and_names_match_their_building_block() {
        let names: Vec<_> = COMPONENT_TYPES.iter().map(|known| known.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for known in COMPONENT_TYPES {
            let prefix = format!("{}.", known.building_block.as_str());
            assert!(known.name.starts_with(&prefix), "{}", known.name);
            assert!(!known.versions.is_empty(), "{}", known.name);
        }
    }

    #[test]
    fn no_type_lists_a_field_twice() {
        for known in COMPONENT_TYPES {
            let mut seen = BTreeSet::new();
            for field in known.fields() {
                assert!(seen.insert(field.name), "{} lists {} twice", known.name, field.name);
            }
        }
    }

    #[test]
    fn supported_types_leave_out_the_managed_ones() {
        let supported: Vec<_> = supported_types().collect();
        assert_eq!(
            supported,
            [
                "pubsub.in-memory",
                "pubsub.jetstream",
                "pubsub.redis",
                "secretstores.local.env",
                "secretstores.local.file",
                "state.in-memory",
                "state.postgresql",
                "state.redis",
                "state.sqlite",
            ]
        );
        let kvstore = lookup("state.outrigger").unwrap();
        assert_eq!(kvstore.managed_component, Some("kvstore"));
        assert!(!kvstore.user_creatable());
        assert_eq!(lookup("pubsub.outrigger").unwrap().building_block, BuildingBlock::PubSub);
        assert!(lookup("state.mongodb").is_none());
    }

    #[test]
    fn required_and_sensitive_fields_follow_dapr() {
        let cases = [
            ("state.redis", "redisHost", true, false),
            ("state.redis", "redisPassword", false, true),
            ("state.redis", "keyPrefix", false, false),
            ("state.redis", "actorStateStore", false, false),
            ("state.postgresql", "connectionString", true, true),
            ("state.postgresql", "cleanupInterval", false, false),
            ("state.sqlite", "connectionString", true, false),
            ("state.sqlite", "busyTimeout", false, false),
            ("pubsub.redis", "redisHost", true, false),
            ("pubsub.redis", "consumerID", false, false),
            ("pubsub.redis", "allowedTopics", false, false),
            ("pubsub.jetstream", "natsURL", true, false),
            ("pubsub.jetstream", "seedKey", false, true),
            ("pubsub.jetstream", "tls_client_key", false, true),
            ("secretstores.local.file", "secretsFile", true, false),
            ("secretstores.local.file", "multiValued", false, false),
            ("secretstores.local.env", "prefix", false, false),
        ];
        for (type_name, field_name, required, sensitive) in cases {
            let field = lookup(type_name).unwrap().field(field_name);
            let field = field.unwrap_or_else(|| panic!("{type_name} lacks {field_name}"));
            assert_eq!((field.required, field.sensitive), (required, sensitive), "{type_name} {field_name}");
        }
        assert!(lookup("state.redis").unwrap().field("consumerID").is_none());
        assert!(lookup("pubsub.redis").unwrap().field("keyPrefix").is_none());
    }

    #[test]
    fn in_memory_types_require_nothing() {
        for name in ["state.in-memory", "pubsub.in-memory"] {
            assert!(lookup(name).unwrap().fields().all(|field| !field.required), "{name}");
        }
    }
}
