//! Opening a Dapr state store component (`spec.type` and `spec.metadata`) through the component registry
//! ([`crate::components`]), and reading component metadata the way daprd reads it, for every backend.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use outrigger_resources::BuildingBlock;

use crate::boundary::Boundary;
use crate::components::{self, Opener};
use crate::secrets::HostSecrets;

use super::sql::DEFAULT_CLEANUP_INTERVAL;
use super::{RedisOptions, StateStore};

/// Why a component (a state store or a message broker) cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `spec.type` is not a component type this worker runs.
    #[error("unknown {} type '{component_type}': use one of {}", .building_block.noun(), .known.join(", "))]
    UnknownType {
        /// What kind of component was asked for.
        building_block: BuildingBlock,
        /// The type asked for.
        component_type: String,
        /// The types of that kind this worker runs.
        known: Vec<&'static str>,
    },
    /// A metadata field the component needs is absent or empty.
    #[error("{component_type}: metadata field '{field}' is required: {hint}")]
    MissingField {
        /// The component type.
        component_type: &'static str,
        /// The Dapr metadata name.
        field: &'static str,
        /// What to put there.
        hint: &'static str,
    },
    /// A metadata field has a value the component cannot use.
    #[error("{component_type}: metadata field '{field}' is invalid: {reason}")]
    InvalidField {
        /// The component type.
        component_type: &'static str,
        /// The Dapr metadata name.
        field: &'static str,
        /// What is wrong and what would be right.
        reason: String,
    },
    /// The backend refused to start (e.g. the SQLite file cannot be created).
    #[error("{component_type}: {message}")]
    Backend {
        /// The component type.
        component_type: &'static str,
        /// The backend's error.
        message: String,
    },
}

/// Opens the store a Dapr component the operator configured describes (`spec.type` + `spec.metadata` as
/// name -> string value): its hosts and files are taken as given.
pub async fn open(component_type: &str, metadata: &BTreeMap<String, String>) -> Result<Arc<dyn StateStore>, OpenError> {
    open_within(component_type, metadata, &Boundary::operator()).await
}

/// Opens the store a Dapr component describes, reaching only what `boundary` allows.
///
/// Metadata names match case-insensitively, as in daprd; fields this worker does not use are ignored.
/// Network backends connect on first use (see [`PostgresStateStore::open`], [`RedisStateStore::open`]).
pub async fn open_within(
    component_type: &str,
    metadata: &BTreeMap<String, String>,
    boundary: &Boundary,
) -> Result<Arc<dyn StateStore>, OpenError> {
    components::open(Opener::state, component_type, metadata, boundary, HostSecrets::Refused).await
}

/// A component's metadata, read the way daprd reads it.
pub(crate) struct Fields<'a> {
    component_type: &'static str,
    metadata: &'a BTreeMap<String, String>,
}

impl<'a> Fields<'a> {
    /// The metadata of a component of type `component_type`, named in errors.
    pub(crate) fn new(component_type: &'static str, metadata: &'a BTreeMap<String, String>) -> Fields<'a> {
        Fields { component_type, metadata }
    }

    /// The non-empty value of `field`, whatever the case of its name.
    pub(crate) fn get(&self, field: &str) -> Option<&'a str> {
        self.metadata
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(field))
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
    }

    /// The non-empty value of `field`, or an error saying what to put there.
    pub(crate) fn required(&self, field: &'static str, hint: &'static str) -> Result<&'a str, OpenError> {
        self.get(field).ok_or(OpenError::MissingField { component_type: self.component_type, field, hint })
    }

    /// `field` has a value that cannot be used, for `reason`.
    pub(crate) fn invalid(&self, field: &'static str, reason: String) -> OpenError {
        OpenError::InvalidField { component_type: self.component_type, field, reason }
    }

    /// A boolean as Go's `strconv.ParseBool` reads it; absent = false.
    pub(crate) fn flag(&self, field: &'static str) -> Result<bool, OpenError> {
        match self.get(field) {
            None => Ok(false),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(other) => Err(self.invalid(field, format!("'{other}' is not true or false"))),
        }
    }

    /// `cleanupInterval`: a Go duration (`1h`, `30m`, `10s`, `1h30m`, `500ms`) or a number of seconds;
    /// zero or negative turns cleanup off.
    pub(crate) fn cleanup_interval(&self) -> Result<Option<Duration>, OpenError> {
        match self.duration("cleanupInterval", Duration::from_secs(1))? {
            None => Ok(Some(DEFAULT_CLEANUP_INTERVAL)),
            Some(interval) => Ok((!interval.is_zero()).then_some(interval)),
        }
    }

    /// A duration: a Go duration (`1h`, `30m`, `10s`, `1h30m`, `500ms`) or a whole number of `bare_unit`s
    /// (Dapr's components differ in the unit of plain numbers). Absent = `None`; zero or negative = zero.
    pub(crate) fn duration(&self, field: &'static str, bare_unit: Duration) -> Result<Option<Duration>, OpenError> {
        let Some(text) = self.get(field) else { return Ok(None) };
        outrigger_resources::parse_go_duration_or_count(text, bare_unit)
            .map(Some)
            .map_err(|_| self.invalid(field, format!("'{text}' is not a duration such as 1h, 30m or 10s")))
    }

    /// `redisHost`, `redisUsername`, `redisPassword`, `redisDB` and `enableTLS`, as daprd's Redis components
    /// (state and pub/sub alike) read them; the host pinned to the address `boundary` allows.
    pub(crate) async fn redis_options(
        &self,
        component_type: &'static str,
        boundary: &Boundary,
    ) -> Result<RedisOptions, OpenError> {
        if self.flag("enableTLS")? {
            return Err(self.invalid(
                "enableTLS",
                "TLS to Redis is not built into this worker; set enableTLS to false and reach Redis over a \
                 private network or a TLS-terminating proxy"
                    .to_owned(),
            ));
        }
        // daprd's client modes this worker's client does not have: refused rather than ignored, so that a component
        // never runs otherwise than it says (a cluster or sentinel address used as one node fails later, and worse).
        let refused = [
            (
                "redisType",
                self.get("redisType").is_some_and(|kind| !kind.eq_ignore_ascii_case("node")),
                "Redis Cluster is not built into this worker; point redisHost at a single node and set redisType to \
                 node (or leave it out)",
            ),
            (
                "failover",
                self.flag("failover")?,
                "Sentinel failover is not built into this worker; point redisHost at the primary and set failover \
                 to false",
            ),
            (
                "useOIDC",
                self.flag("useOIDC")?,
                "OIDC sign-in to Redis is not built into this worker; use redisUsername and redisPassword and set \
                 useOIDC to false",
            ),
            (
                "useEntraID",
                self.flag("useEntraID")?,
                "Entra ID sign-in to Redis is not built into this worker; use redisUsername and redisPassword and \
                 set useEntraID to false",
            ),
        ];
        if let Some((field, _, reason)) = refused.into_iter().find(|(_, asked, _)| *asked) {
            return Err(self.invalid(field, reason.to_owned()));
        }
        let db = match self.get("redisDB") {
            None => 0,
            Some(db) => db
                .parse::<i64>()
                .ok()
                .filter(|db| *db >= 0)
                .ok_or_else(|| self.invalid("redisDB", format!("'{db}' is not a database number (0, 1, ...)")))?,
        };
        let host = self.required("redisHost", "the Redis address as host:port, e.g. redis:6379")?;
        Ok(RedisOptions {
            host: super::redis::pinned(component_type, host, boundary).await?,
            username: self.get("redisUsername").map(str::to_owned),
            password: self.get("redisPassword").map(str::to_owned),
            db,
        })
    }
}
