//! A project's whole configuration as one value.
//!
//! Every change to a project (one PUT, one DELETE, an App ID edit, a whole apply) follows the same path:
//! load the state, change a copy in memory, check that every reference in the copy still resolves, write
//! the difference. References can therefore never dangle, whichever route changed what.

use std::collections::BTreeMap;

use outrigger_resources::{BuildingBlock, Document, Invalid, Kind, ProjectCatalog, Registry};
use outrigger_store::{AppIdentity, AppIdentityChange, IssuedToken, Project, ProjectId, Tx};
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::ProjectScope;
use crate::error::{ApiError, ApiResult};

/// A component the platform provides to a project.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ManagedComponent {
    /// Component name apps use (`kvstore`, `pubsub`).
    pub name: &'static str,
    /// Component type.
    #[serde(rename = "type")]
    pub component_type: &'static str,
}

/// The managed components a project has, as the component registry declares them: a project opts in or
/// out of the managed store of each building block. Sorted by name.
pub fn managed_components(types: &Registry, project: &Project) -> Vec<ManagedComponent> {
    let mut managed: Vec<_> = types
        .managed()
        .filter(|declared| match declared.building_block {
            BuildingBlock::State => project.managed_kvstore,
            BuildingBlock::PubSub => project.managed_pubsub,
            BuildingBlock::Configuration => true,
            BuildingBlock::SecretStores | BuildingBlock::Lock | BuildingBlock::Bindings => false,
        })
        .filter_map(|declared| {
            Some(ManagedComponent { name: declared.managed_component?, component_type: declared.name })
        })
        .collect();
    managed.sort_by_key(|component| component.name);
    managed
}

/// Identifies one resource of a project: an App ID or a Dapr document.
pub type ResourceKey = (Kind, String);

/// A reference that does not resolve.
#[derive(Debug)]
pub struct Broken {
    /// The resource holding the reference.
    pub key: ResourceKey,
    /// What does not resolve.
    pub invalid: Invalid,
}

/// Everything configured in one project.
#[derive(Clone, Debug)]
pub struct ProjectState {
    /// The project itself.
    pub project: Project,
    /// App IDs by name.
    pub apps: BTreeMap<String, AppIdentity>,
    /// Dapr documents by kind and name.
    pub documents: BTreeMap<ResourceKey, Document>,
    /// The component types components are checked against.
    pub types: &'static Registry,
}

impl ProjectCatalog for ProjectState {
    fn app_id_exists(&self, name: &str) -> bool {
        self.apps.contains_key(name)
    }

    fn component_type(&self, name: &str) -> Option<String> {
        if let Some(managed) = managed_components(self.types, &self.project).into_iter().find(|m| m.name == name) {
            return Some(managed.component_type.to_owned());
        }
        let spec = &self.documents.get(&(Kind::Component, name.to_owned()))?.spec;
        spec.get("type").and_then(|t| t.as_str()).map(str::to_owned)
    }

    fn configuration_exists(&self, name: &str) -> bool {
        self.documents.contains_key(&(Kind::Configuration, name.to_owned()))
    }
}

impl ProjectState {
    /// Reads the project's state inside `tx`; a project deleted meanwhile is 404.
    pub async fn load(tx: &mut Tx, types: &'static Registry, project: &ProjectId) -> ApiResult<ProjectState> {
        let project = tx.project_by_id(project).await?;
        let apps = tx.list_app_ids(&project.id).await?.into_iter().map(|app| (app.name.clone(), app)).collect();
        let documents = tx
            .all_resources(&project.id)
            .await?
            .into_iter()
            .map(|stored| ((stored.document.kind, stored.document.metadata.name.clone()), stored.document))
            .collect();
        Ok(ProjectState { project, apps, documents, types })
    }

    /// The resources `keys` name as this state holds them, secrets withheld (App IDs without their app
    /// token), keyed `<Kind>/<name>`; `None` when it holds none of them.
    fn audited(&self, keys: &[ResourceKey]) -> Option<serde_json::Value> {
        let mut found = serde_json::Map::new();
        for key in keys {
            let document = match key.0 {
                Kind::AppIdentity => self.apps.get(&key.1).map(|app| {
                    let mut document = app_document(app);
                    if let Some(spec) = document.spec.as_object_mut() {
                        spec.remove("appToken");
                    }
                    document
                }),
                _ => self.documents.get(key).map(|document| document.for_export(self.types)),
            };
            if let Some(document) = document {
                let value = serde_json::to_value(&document).unwrap_or_default();
                found.insert(format!("{}/{}", key.0.as_str(), key.1), value);
            }
        }
        (!found.is_empty()).then_some(serde_json::Value::Object(found))
    }

    /// Components the project declares.
    pub fn component_count(&self) -> usize {
        self.documents.keys().filter(|(kind, _)| *kind == Kind::Component).count()
    }

    pub fn is_managed_component(&self, name: &str) -> bool {
        managed_components(self.types, &self.project).iter().any(|m| m.name == name)
    }

    /// The first reference in the state that does not resolve.
    pub fn broken_reference(&self) -> Option<Broken> {
        let app_documents = self.apps.values().map(app_document);
        let all = app_documents.chain(self.documents.values().cloned());
        all.into_iter().find_map(|document| {
            document
                .check_references(self.types, self)
                .err()
                .map(|invalid| Broken { key: (document.kind, document.metadata.name.clone()), invalid })
        })
    }

    /// Checks references after a change that wrote `touched`: a broken reference in a touched resource is
    /// bad input (400); one in an untouched resource means the change would leave it dangling (409).
    pub fn check_after_change(&self, touched: &[ResourceKey]) -> ApiResult<()> {
        let Some(broken) = self.broken_reference() else { return Ok(()) };
        let (kind, name) = &broken.key;
        if touched.contains(&broken.key) {
            Err(ApiError::bad_request("invalid_resource", format!("{} '{name}': {}", kind.as_str(), broken.invalid)))
        } else {
            Err(ApiError::conflict(
                "still_referenced",
                format!(
                    "this change would leave {} '{name}' pointing at something that no longer exists ({}); change or delete that {} first",
                    kind.as_str(),
                    broken.invalid,
                    kind.as_str()
                ),
            ))
        }
    }

    /// What must be written to turn `self` into `next`.
    pub fn diff(&self, next: &ProjectState) -> Diff {
        let mut diff = Diff::default();
        for (name, app) in &next.apps {
            match self.apps.get(name) {
                None => diff.apps_created.push(app.clone()),
                Some(current) => {
                    let change = AppIdentityChange::between(current, app);
                    if !change.is_empty() {
                        diff.apps_updated.push((name.clone(), change));
                    }
                }
            }
        }
        diff.apps_deleted = self.apps.keys().filter(|name| !next.apps.contains_key(*name)).cloned().collect();
        for (key, document) in &next.documents {
            match self.documents.get(key) {
                None => diff.documents_created.push(document.clone()),
                Some(current) if current != document => diff.documents_updated.push(document.clone()),
                Some(_) => {}
            }
        }
        diff.documents_deleted =
            self.documents.keys().filter(|key| !next.documents.contains_key(*key)).cloned().collect();
        diff
    }
}

/// The writes between two states.
#[derive(Debug, Default)]
pub struct Diff {
    apps_created: Vec<AppIdentity>,
    apps_updated: Vec<(String, AppIdentityChange)>,
    apps_deleted: Vec<String>,
    documents_created: Vec<Document>,
    documents_updated: Vec<Document>,
    documents_deleted: Vec<ResourceKey>,
}

/// One resource in an answer that lists changes.
#[derive(Clone, Debug, Serialize, ToSchema, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    /// `Component`, `Subscription`, `Resiliency`, `Configuration`, `HTTPEndpoint` or `AppIdentity`.
    pub kind: String,
    /// Resource name.
    pub name: String,
    /// For a created App ID: its first API token, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_token: Option<String>,
}

impl ResourceRef {
    fn new((kind, name): &ResourceKey) -> ResourceRef {
        ResourceRef { kind: kind.as_str().to_owned(), name: name.clone(), api_token: None }
    }
}

/// What a diff did (or, in a dry run, would do).
#[derive(Debug, Default)]
pub struct Written {
    /// Created resources (App IDs with their first token).
    pub created: Vec<ResourceRef>,
    /// Replaced resources.
    pub updated: Vec<ResourceRef>,
    /// Removed resources.
    pub deleted: Vec<ResourceRef>,
    /// Tokens issued for created App IDs, by App ID name.
    pub tokens: BTreeMap<String, IssuedToken>,
}

impl Diff {
    /// Which resources the diff touches, as keys.
    pub fn summary(&self) -> Written {
        let app_key = |name: &String| (Kind::AppIdentity, name.clone());
        let document_key = |document: &Document| (document.kind, document.metadata.name.clone());
        Written {
            created: (self.apps_created.iter().map(|app| app_key(&app.name)))
                .chain(self.documents_created.iter().map(document_key))
                .map(|key| ResourceRef::new(&key))
                .collect(),
            updated: (self.apps_updated.iter().map(|(name, _)| app_key(name)))
                .chain(self.documents_updated.iter().map(document_key))
                .map(|key| ResourceRef::new(&key))
                .collect(),
            deleted: (self.apps_deleted.iter().map(app_key))
                .chain(self.documents_deleted.iter().cloned())
                .map(|key| ResourceRef::new(&key))
                .collect(),
            tokens: BTreeMap::new(),
        }
    }

    /// Writes the diff inside `tx`.
    pub async fn write(&self, tx: &mut Tx, project: &Project) -> ApiResult<Written> {
        let mut written = self.summary();
        for app in &self.apps_created {
            let (_, token) = tx.create_app_id(&project.id, app).await?;
            written.tokens.insert(app.name.clone(), token);
        }
        for (name, change) in &self.apps_updated {
            tx.update_app_id(&project.id, name, change).await?;
        }
        for document in self.documents_created.iter().chain(&self.documents_updated) {
            tx.put_resource(&project.id, document).await?;
            schedule_cron_binding(tx, project, document).await?;
        }
        for (kind, name) in &self.documents_deleted {
            tx.delete_resource(&project.id, *kind, name).await?;
            if *kind == Kind::Component {
                tx.delete_cron_binding(&project.id, name).await?;
            }
        }
        // App IDs go last: documents that named them in scopes were changed or removed above.
        for name in &self.apps_deleted {
            tx.delete_app_id(&project.id, name).await?;
        }
        for created in &mut written.created {
            if let Some(token) =
                written.tokens.get(&created.name).filter(|_| created.kind == Kind::AppIdentity.as_str())
            {
                created.api_token = Some(token.token.clone());
            }
        }
        Ok(written)
    }
}

/// Refuses `added` App IDs more when the organization's quota would be passed.
async fn check_org_app_ids(tx: &mut Tx, project: &Project, added: usize) -> ApiResult<()> {
    let org = tx.org_by_id(&project.org_id).await?;
    let Some(limit) = org.quotas.app_ids.filter(|limit| *limit > 0) else { return Ok(()) };
    let (_, held) = tx.org_holdings(&org.id).await?;
    let after = held + added as u64;
    if after > u64::from(limit) {
        return Err(ApiError::conflict(
            "quota_exceeded",
            format!(
                "organization '{}' may have {limit} App IDs across its projects and this change would make {after}: \
                 delete some, or ask the operator to raise the organization's quota",
                org.name
            ),
        ));
    }
    Ok(())
}

/// The resources a write touched.
fn touched_keys(written: &Written) -> Vec<ResourceKey> {
    let all = written.created.iter().chain(&written.updated).chain(&written.deleted);
    all.filter_map(|resource| Some((Kind::from_kind_str(&resource.kind)?, resource.name.clone()))).collect()
}

/// Hands a `bindings.cron` component's schedule to the workers' scheduler (from now on, in place of any earlier
/// one); a component of any other type fires nothing, even when it was a cron binding before.
async fn schedule_cron_binding(tx: &mut Tx, project: &Project, document: &Document) -> ApiResult<()> {
    if document.kind != Kind::Component {
        return Ok(());
    }
    let name = &document.metadata.name;
    if document.component_type() != Some(outrigger_jobs::CRON_BINDING_TYPE) {
        return Ok(tx.delete_cron_binding(&project.id, name).await?);
    }
    let invalid = |reason: String| {
        ApiError::bad_request("invalid_resource", format!("Component '{name}': spec.metadata.schedule: {reason}"))
    };
    let schedule = document
        .inline_metadata("schedule")
        .ok_or_else(|| invalid("give the schedule inline (a cron expression or @every <duration>)".to_owned()))?;
    let now = chrono::Utc::now();
    let job = outrigger_jobs::cron_binding_job(&schedule, now).map_err(|err| invalid(err.to_string()))?;
    let first = job.first_due().map_err(|err| invalid(err.to_string()))?;
    let spec = serde_json::to_string(&job).expect("a job serializes");
    tx.put_cron_binding(&project.id, name, &spec, first.timestamp_millis()).await?;
    Ok(())
}

/// The `AppIdentity` document of an App ID (what apply takes and export gives).
pub fn app_document(app: &AppIdentity) -> Document {
    let mut spec = serde_json::Map::new();
    let fields = [
        ("appEndpoint", &app.app_endpoint),
        ("appHealthCheckPath", &app.app_health_check_path),
        ("appToken", &app.app_token),
        ("config", &app.config),
    ];
    for (field, value) in fields {
        if let Some(value) = value {
            spec.insert(field.to_owned(), value.clone().into());
        }
    }
    spec.insert("appProtocol".to_owned(), app.app_protocol.clone().into());
    Document::new(Kind::AppIdentity, &app.name, serde_json::Value::Object(spec))
}

/// The App ID an `AppIdentity` document describes (validated).
pub fn app_from_document(document: &Document) -> Result<AppIdentity, Invalid> {
    let spec = document.app_identity_spec()?;
    Ok(AppIdentity {
        name: document.metadata.name.clone(),
        app_endpoint: spec.app_endpoint,
        app_token: spec.app_token,
        app_protocol: spec.app_protocol.unwrap_or_else(|| "http".to_owned()),
        app_health_check_path: spec.app_health_check_path,
        config: spec.config,
        created_at: 0,
        updated_at: 0,
    })
}

/// What a change closure hands back: its own answer and the resources the request itself wrote.
pub struct Change<R> {
    /// The handler's answer.
    pub output: R,
    /// Resources the request named; broken references there are the request's fault (400).
    pub touched: Vec<ResourceKey>,
    /// The status the change is answered with (written into its audit event).
    pub status: axum::http::StatusCode,
}

/// Loads a project's state, lets `edit` change a copy, checks references, and writes the difference
/// in one transaction (nothing is written in a dry run); the audit trail gets what changed, secrets withheld.
pub async fn change_project<R>(
    app: &crate::AppState,
    scope: &ProjectScope,
    dry_run: bool,
    edit: impl FnOnce(&mut ProjectState) -> ApiResult<Change<R>>,
) -> ApiResult<(R, Written)> {
    let mut tx = app.store.begin().await?;
    let current = ProjectState::load(&mut tx, app.options.component_types, &scope.project.id).await?;
    let mut next = current.clone();
    let Change { output, touched, status } = edit(&mut next)?;
    next.check_after_change(&touched)?;
    crate::routes::check_counts(app, &current, &next)?;
    if next.apps.len() > current.apps.len() {
        check_org_app_ids(&mut tx, &current.project, next.apps.len() - current.apps.len()).await?;
    }
    let diff = current.diff(&next);
    if dry_run {
        scope.audit.unchanged();
        return Ok((output, diff.summary()));
    }
    let written = diff.write(&mut tx, &current.project).await?;
    tx.touch_project(&current.project.id).await?;
    scope.audit.changed(current.audited(&touched_keys(&written)), next.audited(&touched_keys(&written)));
    scope.audit.commit(tx, status).await?;
    app.options.changes.changed(current.project.id.as_str()).await;
    Ok((output, written))
}
