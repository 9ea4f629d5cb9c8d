//! `/api/v1/projects/{project}/apply` and `/export`: Dapr YAML in and out.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use outrigger_resources::{parse_documents, render_yaml, Document, Kind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::ProjectScope;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Path, Query, TextBody};
use crate::state::{app_document, app_from_document, change_project, Change, ProjectState, ResourceKey, ResourceRef};
use crate::AppState;

/// How an apply treats the project.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct ApplyParams {
    /// Report what would change without changing anything.
    #[serde(default)]
    dry_run: bool,
    /// Also delete resources of the applied kinds that the input does not name.
    #[serde(default)]
    prune: bool,
}

/// What an apply did (or would do, in a dry run).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApplyOut {
    dry_run: bool,
    created: Vec<ResourceRef>,
    updated: Vec<ResourceRef>,
    unchanged: Vec<ResourceRef>,
    deleted: Vec<ResourceRef>,
}

/// Rejects document `index` of the input, naming it.
fn rejected(index: usize, kind: &str, name: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(
        "invalid_document",
        format!("document {index} ({kind} '{name}'): {reason}; nothing was applied"),
    )
    .with_details(serde_json::json!({ "index": index, "kind": kind, "name": name }))
}

/// Puts one input document into the next state.
fn place(next: &mut ProjectState, mut document: Document) -> Result<(), String> {
    let name = document.metadata.name.clone();
    if document.kind == Kind::AppIdentity {
        let current = next.apps.get(&name).map(app_document);
        document.restore_withheld(current.as_ref()).map_err(|invalid| invalid.to_string())?;
        let app = app_from_document(&document).map_err(|invalid| invalid.to_string())?;
        let created_at = next.apps.get(&name).map_or(0, |current| current.created_at);
        next.apps.insert(name, outrigger_store::AppIdentity { created_at, ..app });
        return Ok(());
    }
    if document.kind == Kind::Component && next.is_managed_component(&name) {
        return Err(format!("component '{name}' is managed by the platform; choose another name"));
    }
    let key = (document.kind, name);
    document.restore_withheld(next.documents.get(&key)).map_err(|invalid| invalid.to_string())?;
    next.documents.insert(key, document);
    Ok(())
}

/// Removes what the input does not name, among the kinds it applies.
fn prune(next: &mut ProjectState, named: &[ResourceKey]) {
    let kinds: BTreeSet<&str> = named.iter().map(|(kind, _)| kind.as_str()).collect();
    let keep = |key: &ResourceKey| !kinds.contains(key.0.as_str()) || named.contains(key);
    next.apps.retain(|name, _| keep(&(Kind::AppIdentity, name.clone())));
    next.documents.retain(|key, _| keep(key));
}

/// Apply multi-document Dapr YAML: all documents or none.
///
/// Kinds: Component, Subscription, Resiliency, Configuration, HTTPEndpoint and AppIdentity. Additive by
/// default; `prune=true` also deletes resources of the applied kinds that the input does not name.
#[utoipa::path(post, path = "/api/v1/projects/{project}/apply", tag = "apply",
    params(("project" = String, Path), ApplyParams),
    // Optional: an empty body (or one of comments only) holds no documents, and applies nothing.
    request_body(content = Option<String>, content_type = "application/yaml",
        description = "A YAML stream of Dapr documents and AppIdentity documents, separated by `---`"),
    responses(
        (status = 200, body = ApplyOut),
        (status = 400, description = "A document is invalid; its index, kind and name are in details", body = ErrorBody),
        (status = 409, description = "Pruning would leave a reference dangling", body = ErrorBody)))]
pub(crate) async fn apply(
    State(state): State<AppState>,
    Path(project): Path<String>,
    scope: ProjectScope,
    Query(params): Query<ApplyParams>,
    TextBody(yaml): TextBody,
) -> ApiResult<Json<ApplyOut>> {
    let documents = parse_documents(&yaml).map_err(|err| {
        ApiError::bad_request("invalid_document", format!("{err}; nothing was applied"))
            .with_details(serde_json::json!({ "index": err.index }))
    })?;
    let mut normalized = Vec::with_capacity(documents.len());
    let mut named: Vec<ResourceKey> = Vec::with_capacity(documents.len());
    for (index, document) in documents.into_iter().enumerate() {
        let (kind, name) = (document.kind, document.metadata.name.clone());
        let document =
            document.normalize(state.types()).map_err(|invalid| rejected(index, kind.as_str(), &name, invalid))?;
        let key = (kind, name);
        if named.contains(&key) {
            return Err(rejected(index, kind.as_str(), &key.1, "the input names this resource twice"));
        }
        named.push(key);
        normalized.push(document);
    }
    let position = |key: &ResourceKey| named.iter().position(|named| named == key);
    let (_, written) = change_project(&state, &scope, params.dry_run, |next| {
        for (index, document) in normalized.into_iter().enumerate() {
            let (kind, name) = (document.kind, document.metadata.name.clone());
            place(next, document).map_err(|reason| rejected(index, kind.as_str(), &name, reason))?;
        }
        if params.prune {
            prune(next, &named);
        }
        if let Some(broken) = next.broken_reference() {
            if let Some(index) = position(&broken.key) {
                return Err(rejected(index, broken.key.0.as_str(), &broken.key.1, broken.invalid));
            }
        }
        Ok(Change { output: (), touched: named.clone(), status: StatusCode::OK })
    })
    .await?;
    let changed: BTreeSet<(String, String)> =
        written.created.iter().chain(&written.updated).map(|r| (r.kind.clone(), r.name.clone())).collect();
    let unchanged = named
        .iter()
        .filter(|(kind, name)| !changed.contains(&(kind.as_str().to_owned(), name.clone())))
        .map(|(kind, name)| ResourceRef { kind: kind.as_str().to_owned(), name: name.clone(), api_token: None })
        .collect();
    tracing::info!(
        project = %project, dry_run = params.dry_run, prune = params.prune,
        created = written.created.len(), updated = written.updated.len(), deleted = written.deleted.len(),
        "apply"
    );
    Ok(Json(ApplyOut {
        dry_run: params.dry_run,
        created: written.created,
        updated: written.updated,
        unchanged,
        deleted: written.deleted,
    }))
}

/// Export the project as multi-document YAML that OSS daprd loads unchanged.
///
/// App IDs come out as `AppIdentity` documents (daprd ignores kinds it does not know). Secret values are
/// withheld: a `secretKeyRef` stays a reference, an inline secret value is left out and a comment says so.
#[utoipa::path(get, path = "/api/v1/projects/{project}/export", tag = "apply", params(("project" = String, Path)),
    responses(
        // No schema: OpenAPI describes one document per body, and this is a stream of them.
        (status = 200, description = "A YAML stream: one document per App ID and resource, separated by `---`", content_type = "application/yaml")))]
pub(crate) async fn export(
    State(state): State<AppState>,
    Path(_project): Path<String>,
    scope: ProjectScope,
) -> ApiResult<impl IntoResponse> {
    let mut tx = state.store.begin().await?;
    let project_state = ProjectState::load(&mut tx, state.types(), &scope.project.id).await?;
    let apps = project_state.apps.values().map(app_document);
    let ordered = Kind::DAPR.into_iter().flat_map(|kind| {
        project_state.documents.iter().filter(move |((k, _), _)| *k == kind).map(|(_, document)| document.clone())
    });
    let documents: Vec<Document> = apps.chain(ordered).map(|document| document.for_export(state.types())).collect();
    Ok(([(CONTENT_TYPE, "application/yaml")], render_yaml(&documents)))
}
