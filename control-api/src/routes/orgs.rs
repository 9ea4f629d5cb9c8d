//! `/api/v1/orgs`: organizations (the operator makes and removes them and sets their quotas) and what their
//! members see of them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use outrigger_store::{OrgQuotas, Organization};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::quotas::whole_quota;
use super::timestamp;
use crate::access::{AuditNote, Caller};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Path, Query};
use crate::paging::{Page, PageQuery};
use crate::AppState;

/// A new organization.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "acme"}))]
pub(crate) struct CreateOrg {
    /// DNS label, unique across the installation.
    name: String,
}

/// An organization's quotas: `null`, absent or `0` is no limit.
#[derive(Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct OrgQuotaValues {
    /// Projects the organization may have.
    #[serde(default, deserialize_with = "whole_quota")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    projects: Option<u32>,
    /// App IDs its projects may have together.
    #[serde(default, deserialize_with = "whole_quota")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    app_ids: Option<u32>,
    /// Requests per second each of its App IDs may make, at most (a lower project quota still applies).
    #[serde(default, deserialize_with = "whole_quota")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    requests_per_second: Option<u32>,
}

impl From<OrgQuotas> for OrgQuotaValues {
    fn from(quotas: OrgQuotas) -> OrgQuotaValues {
        OrgQuotaValues {
            projects: quotas.projects,
            app_ids: quotas.app_ids,
            requests_per_second: quotas.requests_per_second,
        }
    }
}

/// An organization.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrgOut {
    name: String,
    created_at: DateTime<Utc>,
    quotas: OrgQuotaValues,
}

impl From<Organization> for OrgOut {
    fn from(org: Organization) -> OrgOut {
        OrgOut { name: org.name, created_at: timestamp(org.created_at), quotas: org.quotas.into() }
    }
}

/// Create an organization (operator token only).
#[utoipa::path(post, path = "/api/v1/orgs", tag = "orgs", request_body = CreateOrg, responses(
    (status = 201, body = OrgOut),
    (status = 400, description = "Invalid name", body = ErrorBody),
    (status = 409, description = "Name taken", body = ErrorBody),
))]
pub(crate) async fn create_org(
    State(state): State<AppState>,
    audit: AuditNote,
    JsonBody(body): JsonBody<CreateOrg>,
) -> ApiResult<(StatusCode, Json<OrgOut>)> {
    outrigger_resources::validate_dns_label(&body.name)
        .map_err(|invalid| ApiError::bad_request("invalid_name", format!("organization name: {invalid}")))?;
    let mut tx = state.store.begin().await?;
    let org = tx.create_org(&body.name).await?;
    audit.in_org(org.id.clone());
    let org_id = org.id.clone();
    let out = OrgOut::from(org);
    audit.changed(None, serde_json::to_value(&out).ok());
    audit.commit(tx, StatusCode::CREATED).await?;
    tracing::info!(org = %out.name, org_id = org_id.as_str(), "organization created");
    Ok((StatusCode::CREATED, Json(out)))
}

/// List organizations, by name: every one for the operator token, else those the caller holds a role in.
#[utoipa::path(get, path = "/api/v1/orgs", tag = "orgs", params(PageQuery), responses((status = 200, body = Page<OrgOut>)))]
pub(crate) async fn list_orgs(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Page<OrgOut>>> {
    let request = page.request()?;
    let mut tx = state.store.begin().await?;
    let orgs = match caller.principal() {
        None => tx.page_orgs(&request).await?,
        // An API key works in its own organization only, so that is the only one it lists.
        Some(_) if caller.api_key_org().is_some() => {
            let org = tx.org_by_id(caller.api_key_org().expect("checked")).await?;
            outrigger_store::Page { items: vec![org], continuation: None }
        }
        Some(principal) => tx.page_orgs_of(&principal.id, &request).await?,
    };
    Ok(Json(Page::of(orgs, OrgOut::from)))
}

/// Get an organization.
#[utoipa::path(get, path = "/api/v1/orgs/{org}", tag = "orgs", params(("org" = String, Path)), responses((status = 200, body = OrgOut)))]
pub(crate) async fn get_org(Path(_org): Path<String>, caller: Caller) -> ApiResult<Json<OrgOut>> {
    Ok(Json(caller.org.into()))
}

/// Delete an organization that has no projects left (operator token only), with its members' roles, service
/// accounts, API keys and sessions.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}", tag = "orgs", params(("org" = String, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 409, description = "It still has projects, or it is the installation's `default`", body = ErrorBody),
))]
pub(crate) async fn delete_org(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    audit: AuditNote,
) -> ApiResult<StatusCode> {
    if caller.org.id == outrigger_store::OrgId::default_org() {
        return Err(ApiError::conflict(
            "default_organization",
            "the organization 'default' is where the operator token works when none is named: it cannot be deleted",
        ));
    }
    let mut tx = state.store.begin().await?;
    let (projects, _) = tx.org_holdings(&caller.org.id).await?;
    if projects > 0 {
        return Err(ApiError::conflict(
            "organization_not_empty",
            format!("organization '{name}' still has {projects} projects: delete them first"),
        ));
    }
    tx.delete_org(&caller.org.id).await?;
    audit.changed(serde_json::to_value(OrgOut::from(caller.org)).ok(), None);
    audit.commit(tx, StatusCode::NO_CONTENT).await?;
    tracing::info!(org = %name, "organization deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Get an organization's quotas.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/quotas", tag = "orgs", params(("org" = String, Path)), responses((status = 200, body = OrgQuotaValues)))]
pub(crate) async fn get_org_quotas(Path(_org): Path<String>, caller: Caller) -> ApiResult<Json<OrgQuotaValues>> {
    Ok(Json(caller.org.quotas.into()))
}

/// Set an organization's quotas (operator token only): those given replace what was set, absent ones are no limit.
/// Lowering one below what the organization holds removes nothing; it only refuses more.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/quotas", tag = "orgs", params(("org" = String, Path)),
    request_body = OrgQuotaValues, responses((status = 200, body = OrgQuotaValues)))]
pub(crate) async fn set_org_quotas(
    State(state): State<AppState>,
    Path(_org): Path<String>,
    caller: Caller,
    audit: AuditNote,
    JsonBody(body): JsonBody<OrgQuotaValues>,
) -> ApiResult<Json<OrgQuotaValues>> {
    let quotas =
        OrgQuotas { projects: body.projects, app_ids: body.app_ids, requests_per_second: body.requests_per_second };
    let mut tx = state.store.begin().await?;
    tx.set_org_quotas(&caller.org.id, &quotas).await?;
    audit.changed(serde_json::to_value(OrgQuotaValues::from(caller.org.quotas)).ok(), serde_json::to_value(body).ok());
    audit.commit(tx, StatusCode::OK).await?;
    // Gateways read the requests-per-second cap with each App ID's token: every project of the organization changed.
    let mut tx = state.store.begin().await?;
    let mut request = outrigger_store::PageRequest { limit: outrigger_store::MAX_PAGE_SIZE, continuation: None };
    loop {
        let page = tx.page_projects(&caller.org.id, None, &request).await?;
        for project in &page.items {
            state.options.changes.changed(project.id.as_str()).await;
        }
        match page.continuation {
            Some(next) => request.continuation = Some(next),
            None => break,
        }
    }
    tracing::info!(org = %caller.org.name, ?quotas, "organization quotas set");
    Ok(Json(body))
}
