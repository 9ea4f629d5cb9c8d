//! Plain records read from and written to the control-plane tables.

use std::sync::Arc;

use sqlx::any::AnyRow;
use sqlx::Row;

use outrigger_resources::{Document, Kind};

use crate::{Error, Result};

/// The internal identifier of a project: the tenant every query is scoped by. Obtained by looking a project
/// up ([`crate::Tx::project`], [`crate::Tx::project_by_id`], a token's owner), or carried between processes
/// that did (serialized on the bus); never made from a project's name, which is a different string.
///
/// Shared, not copied: every call carries its project's id (its tenant, its API log record), so a clone is a
/// reference count, not an allocation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(Arc<str>);

impl ProjectId {
    /// An identifier received as text from another Outrigger process that looked the project up (a change
    /// event). Queries taking it match only that project's rows: an id that names no project finds nothing.
    pub fn received(id: String) -> ProjectId {
        ProjectId::of(id)
    }

    /// The identifier of a project row this store read or made.
    pub(crate) fn of(id: String) -> ProjectId {
        ProjectId(Arc::from(id))
    }

    /// The identifier as text (for logs, span fields and cache keys).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Written as its text, as a `String` would be.
impl serde::Serialize for ProjectId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ProjectId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<ProjectId, D::Error> {
        String::deserialize(deserializer).map(ProjectId::of)
    }
}

impl std::fmt::Display for ProjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a new project is created with.
#[derive(Clone, Debug)]
pub struct NewProject {
    /// The organization that owns it.
    pub org_id: crate::OrgId,
    /// DNS label, unique within the organization.
    pub name: String,
    /// Whether the project gets the managed `kvstore` state store.
    pub managed_kvstore: bool,
    /// Whether the project gets the managed `pubsub` broker.
    pub managed_pubsub: bool,
    /// The worker pool that serves the project.
    pub pool: String,
}

/// A stored project.
#[derive(Clone, Debug)]
pub struct Project {
    /// Tenant identifier.
    pub id: ProjectId,
    /// The organization that owns it.
    pub org_id: crate::OrgId,
    /// Name, unique within the organization.
    pub name: String,
    /// Has the managed `kvstore`.
    pub managed_kvstore: bool,
    /// Has the managed `pubsub`.
    pub managed_pubsub: bool,
    /// The worker pool that serves the project.
    pub pool: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The quotas the operator set on it.
    pub quotas: Quotas,
}

/// Limits on a project; `None` is the installation's default, `Some(0)` no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Requests per second each App ID may make.
    pub requests_per_second: Option<u32>,
    /// App IDs the project may have.
    pub app_ids: Option<u32>,
    /// Components the project may declare.
    pub components: Option<u32>,
    /// Bytes (keys and values) the project may keep in its managed kvstore.
    pub stored_bytes: Option<u64>,
}

impl Quotas {
    /// These quotas, each unset one taken from `defaults`.
    pub fn or(self, defaults: Quotas) -> Quotas {
        Quotas {
            requests_per_second: self.requests_per_second.or(defaults.requests_per_second),
            app_ids: self.app_ids.or(defaults.app_ids),
            components: self.components.or(defaults.components),
            stored_bytes: self.stored_bytes.or(defaults.stored_bytes),
        }
    }
}

pub(crate) const PROJECT_COLUMNS: &str = "id, org_id, name, managed_kvstore, managed_pubsub, pool, created_at, \
                                          quota_requests_per_second, quota_app_ids, quota_components, \
                                          quota_stored_bytes";

/// A stored quota column.
pub(crate) fn quota(row: &AnyRow, column: &str) -> Result<Option<u32>> {
    let value: Option<i64> = row.try_get(column)?;
    Ok(value.map(|value| u32::try_from(value).unwrap_or(u32::MAX)))
}

pub(crate) fn project_from_row(row: &AnyRow) -> Result<Project> {
    Ok(Project {
        id: ProjectId::of(row.try_get("id")?),
        org_id: crate::OrgId(row.try_get("org_id")?),
        name: row.try_get("name")?,
        managed_kvstore: row.try_get::<i64, _>("managed_kvstore")? != 0,
        managed_pubsub: row.try_get::<i64, _>("managed_pubsub")? != 0,
        pool: row.try_get("pool")?,
        created_at: row.try_get("created_at")?,
        quotas: Quotas {
            requests_per_second: quota(row, "quota_requests_per_second")?,
            app_ids: quota(row, "quota_app_ids")?,
            components: quota(row, "quota_components")?,
            stored_bytes: row.try_get::<Option<i64>, _>("quota_stored_bytes")?.map(|bytes| bytes.max(0) as u64),
        },
    })
}

/// An App ID: the identity an app's calls carry, and how the platform calls the app back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppIdentity {
    /// DNS label, unique in the project.
    pub name: String,
    /// Where the platform reaches the app (pub/sub push, invocation, health checks).
    pub app_endpoint: Option<String>,
    /// Sent to the app as `dapr-api-token` on callbacks.
    pub app_token: Option<String>,
    /// `http` or `grpc`.
    pub app_protocol: String,
    /// Path probed for app health.
    pub app_health_check_path: Option<String>,
    /// Name of the Dapr Configuration that applies to this app.
    pub config: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

pub(crate) const APP_ID_COLUMNS: &str =
    "name, app_endpoint, app_token, app_protocol, app_health_check_path, config, created_at, updated_at";

pub(crate) fn app_identity_from_row(row: &AnyRow) -> Result<AppIdentity> {
    Ok(AppIdentity {
        name: row.try_get("name")?,
        app_endpoint: row.try_get("app_endpoint")?,
        app_token: row.try_get("app_token")?,
        app_protocol: row.try_get("app_protocol")?,
        app_health_check_path: row.try_get("app_health_check_path")?,
        config: row.try_get("config")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A partial update of an App ID: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct AppIdentityChange {
    /// New app endpoint.
    pub app_endpoint: Option<Option<String>>,
    /// New app token.
    pub app_token: Option<Option<String>>,
    /// New protocol (cannot be cleared).
    pub app_protocol: Option<String>,
    /// New health-check path.
    pub app_health_check_path: Option<Option<String>>,
    /// New Configuration name.
    pub config: Option<Option<String>>,
}

impl AppIdentityChange {
    /// Writes the change onto `app`.
    pub fn apply_to(&self, app: &mut AppIdentity) {
        if let Some(value) = &self.app_endpoint {
            app.app_endpoint.clone_from(value);
        }
        if let Some(value) = &self.app_token {
            app.app_token.clone_from(value);
        }
        if let Some(value) = &self.app_protocol {
            app.app_protocol.clone_from(value);
        }
        if let Some(value) = &self.app_health_check_path {
            app.app_health_check_path.clone_from(value);
        }
        if let Some(value) = &self.config {
            app.config.clone_from(value);
        }
    }

    /// The change that turns `current` into `target` (fields compared one by one, timestamps ignored).
    pub fn between(current: &AppIdentity, target: &AppIdentity) -> AppIdentityChange {
        fn differs<T: PartialEq + Clone>(a: &T, b: &T) -> Option<T> {
            (a != b).then(|| b.clone())
        }
        AppIdentityChange {
            app_endpoint: differs(&current.app_endpoint, &target.app_endpoint),
            app_token: differs(&current.app_token, &target.app_token),
            app_protocol: differs(&current.app_protocol, &target.app_protocol),
            app_health_check_path: differs(&current.app_health_check_path, &target.app_health_check_path),
            config: differs(&current.config, &target.config),
        }
    }

    /// Whether the change changes nothing.
    pub fn is_empty(&self) -> bool {
        self.app_endpoint.is_none()
            && self.app_token.is_none()
            && self.app_protocol.is_none()
            && self.app_health_check_path.is_none()
            && self.config.is_none()
    }
}

/// A token's public facts.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    /// Token identifier (used to revoke it).
    pub id: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds after which the token is refused; `None` = until rotated or revoked.
    pub expires_at: Option<i64>,
}

pub(crate) fn token_from_row(row: &AnyRow) -> Result<TokenInfo> {
    Ok(TokenInfo {
        id: row.try_get("id")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// Whom an API token identifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenOwner {
    /// The project.
    pub project_id: ProjectId,
    /// The project's name.
    pub project: String,
    /// The worker pool serving the project.
    pub pool: String,
    /// The App ID.
    pub app_id: String,
    /// What the operator allows the App ID's calls per second.
    pub rate: RateQuota,
}

/// Requests per second an App ID may make, as set on its project and on its organization.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateQuota {
    /// The project's own quota (none: the installation's default; 0: no limit).
    pub project: Option<u32>,
    /// The organization's cap on each of its App IDs (none or 0: no cap).
    pub org: Option<u32>,
}

impl RateQuota {
    /// The rate an App ID is held to (0: no limit): the project's quota or `default`, capped by the organization's.
    pub fn per_second(self, default: u32) -> u32 {
        let project = self.project.unwrap_or(default);
        match self.org.filter(|cap| *cap > 0) {
            Some(cap) if project == 0 || project > cap => cap,
            _ => project,
        }
    }
}

/// A stored Dapr document.
#[derive(Clone, Debug)]
pub struct StoredResource {
    /// The normalised document.
    pub document: Document,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

pub(crate) fn resource_from_row(row: &AnyRow) -> Result<StoredResource> {
    let kind: String = row.try_get("kind")?;
    let name: String = row.try_get("name")?;
    let json: String = row.try_get("document")?;
    let document: Document = serde_json::from_str(&json).map_err(|err| Error::Corrupt {
        kind: kind.clone(),
        name: name.clone(),
        reason: err.to_string(),
    })?;
    if Kind::from_kind_str(&kind) != Some(document.kind) {
        return Err(Error::Corrupt { kind, name, reason: "kind column and document disagree".into() });
    }
    Ok(StoredResource { document, created_at: row.try_get("created_at")?, updated_at: row.try_get("updated_at")? })
}

#[cfg(test)]
mod tests {
    use super::RateQuota;

    #[test]
    fn an_organization_caps_its_app_ids_rate() {
        let quota = |project, org| RateQuota { project, org }.per_second(100);
        assert_eq!(quota(None, None), 100, "the installation's default");
        assert_eq!(quota(Some(7), None), 7, "the project's own");
        assert_eq!(quota(Some(0), None), 0, "the project set no limit");
        assert_eq!(quota(None, Some(20)), 20, "capped below the default");
        assert_eq!(quota(Some(7), Some(20)), 7, "a lower project quota still applies");
        assert_eq!(quota(Some(0), Some(20)), 20, "no project limit is still capped");
        assert_eq!(quota(Some(50), Some(0)), 50, "0 on the organization is no cap");
    }
}
