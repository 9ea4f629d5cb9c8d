//! `/api/v1/projects/{project}/{kind}`: the Dapr documents of a project, one route set for all five kinds.

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use outrigger_resources::{parse_document, render_yaml, Document, Kind};

use crate::access::ProjectScope;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{DocumentBody, Path, Query};
use crate::paging::{Page, PageQuery};
use crate::state::{change_project, Change, ProjectState};
use crate::AppState;

/// The Dapr kind a collection segment names (`components`, …); App IDs have their own routes.
fn dapr_kind(collection: &str) -> ApiResult<Kind> {
    Kind::DAPR.into_iter().find(|kind| kind.collection() == collection).ok_or_else(|| {
        let known: Vec<&str> = Kind::DAPR.iter().map(|kind| kind.collection()).collect();
        ApiError::not_found(format!("unknown resource collection '{collection}': use one of {}", known.join(", ")))
    })
}

fn invalid_resource(kind: Kind, name: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_resource", format!("{} '{name}': {reason}", kind.as_str()))
}

/// Answers a document as YAML when the client asks for it, JSON otherwise.
fn document_response(headers: &HeaderMap, status: StatusCode, document: &Document) -> Response {
    let wants_yaml =
        headers.get(ACCEPT).and_then(|value| value.to_str().ok()).is_some_and(|value| value.contains("yaml"));
    if wants_yaml {
        (status, [(CONTENT_TYPE, "application/yaml")], render_yaml(std::slice::from_ref(document))).into_response()
    } else {
        (status, Json(document)).into_response()
    }
}

/// List a project's documents of one kind, by name, a page at a time. Secret values are withheld.
#[utoipa::path(get, path = "/api/v1/projects/{project}/{kind}", tag = "resources",
    params(("project" = String, Path), ("kind" = String, Path, description = "components, subscriptions, resiliencies, configurations or httpendpoints"), PageQuery),
    responses((status = 200, body = Page<Document>)))]
pub(crate) async fn list_resources(
    State(state): State<AppState>,
    Path((_project, collection)): Path<(String, String)>,
    scope: ProjectScope,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Page<Document>>> {
    let kind = dapr_kind(&collection)?;
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    let stored = tx.page_resources(&project.id, kind, &page.request()?).await?;
    Ok(Json(Page::of(stored, |resource| resource.document.for_export(state.types()))))
}

/// Get one document (YAML with `Accept: application/yaml`). Secret values are withheld.
#[utoipa::path(get, path = "/api/v1/projects/{project}/{kind}/{name}", tag = "resources",
    params(("project" = String, Path), ("kind" = String, Path), ("name" = String, Path)),
    responses(
        (status = 200, content((Document = "application/json"), (Document = "application/yaml")))))]
pub(crate) async fn get_resource(
    State(state): State<AppState>,
    Path((_project, collection, name)): Path<(String, String, String)>,
    scope: ProjectScope,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let kind = dapr_kind(&collection)?;
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    let stored = tx
        .find_resource(&project.id, kind, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{} '{name}' not found", kind.as_str())))?;
    Ok(document_response(&headers, StatusCode::OK, &stored.document.for_export(state.types())))
}

/// Create or replace a document. The body is the Dapr document, JSON or YAML (`Content-Type: application/yaml`).
#[utoipa::path(put, path = "/api/v1/projects/{project}/{kind}/{name}", tag = "resources",
    params(("project" = String, Path), ("kind" = String, Path), ("name" = String, Path)),
    request_body(content(
        (Document = "application/json", example = json!({
            "apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": "statestore"},
            "spec": {"type": "state.in-memory", "version": "v1"}})),
        (Document = "application/yaml"))),
    responses(
        (status = 200, description = "Replaced", body = Document),
        (status = 201, description = "Created", body = Document),
        (status = 400, description = "Invalid document, or a name no resource can have", body = ErrorBody),
        (status = 409, description = "Reserved name, or the change would leave a reference dangling", body = ErrorBody)))]
pub(crate) async fn put_resource(
    State(state): State<AppState>,
    Path((project, collection, name)): Path<(String, String, String)>,
    scope: ProjectScope,
    headers: HeaderMap,
    body: DocumentBody,
) -> ApiResult<Response> {
    let kind = dapr_kind(&collection)?;
    let document = parse_document(&body.bytes, body.yaml).map_err(|err| invalid_resource(kind, &name, err))?;
    if document.kind != kind {
        return Err(invalid_resource(
            kind,
            &name,
            format!("the body is a {}, not a {}", document.kind.as_str(), kind.as_str()),
        ));
    }
    if document.metadata.name != name {
        return Err(invalid_resource(
            kind,
            &name,
            format!("metadata.name is '{}' but the path says '{name}'", document.metadata.name),
        ));
    }
    let mut document = document.normalize(state.types()).map_err(|invalid| invalid_resource(kind, &name, invalid))?;
    let key = (kind, name.clone());
    let (status, _) = change_project(&state, &scope, false, |next: &mut ProjectState| {
        if kind == Kind::Component && next.is_managed_component(&name) {
            return Err(ApiError::conflict(
                "reserved_name",
                format!("component '{name}' is managed by the platform; choose another name"),
            ));
        }
        document
            .restore_withheld(next.documents.get(&key))
            .map_err(|invalid| invalid_resource(kind, &name, invalid))?;
        let created = next.documents.insert(key.clone(), document.clone()).is_none();
        let status = if created { StatusCode::CREATED } else { StatusCode::OK };
        Ok(Change { output: status, touched: vec![key.clone()], status })
    })
    .await?;
    let created = status == StatusCode::CREATED;
    tracing::info!(project = %project, kind = kind.as_str(), name = %name, created, "resource written");
    Ok(document_response(&headers, status, &document.for_export(state.types())))
}

/// Delete a document.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/{kind}/{name}", tag = "resources",
    params(("project" = String, Path), ("kind" = String, Path), ("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "Still referenced", body = ErrorBody)))]
pub(crate) async fn delete_resource(
    State(state): State<AppState>,
    Path((project, collection, name)): Path<(String, String, String)>,
    scope: ProjectScope,
) -> ApiResult<StatusCode> {
    let kind = dapr_kind(&collection)?;
    change_project(&state, &scope, false, |next| {
        next.documents
            .remove(&(kind, name.clone()))
            .ok_or_else(|| ApiError::not_found(format!("{} '{name}' not found", kind.as_str())))?;
        Ok(Change { output: (), touched: Vec::new(), status: StatusCode::NO_CONTENT })
    })
    .await?;
    tracing::info!(project = %project, kind = kind.as_str(), name = %name, "resource deleted");
    Ok(StatusCode::NO_CONTENT)
}
