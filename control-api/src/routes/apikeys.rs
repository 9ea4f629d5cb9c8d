//! `/api/v1/orgs/{org}/apikeys`: API keys. A member makes keys for itself; an admin also for the organization's
//! service accounts, and sees and revokes everyone's. A key acts with its owner's roles in its organization only,
//! is shown once, kept as a hash, and stops working the moment it is revoked or expires.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use outrigger_store::{ApiKeyInfo, PrincipalId, PrincipalKind, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::timestamp;
use crate::access::{AuditNote, Caller};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Path, Query};
use crate::paging::{Page, PageQuery};
use crate::AppState;

/// The longest a key may live, in days.
const MAX_DAYS: u32 = 3650;

/// A new API key.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "ci", "expiresInDays": 90}))]
pub(crate) struct CreateApiKey {
    /// What it is for (1-100 characters).
    name: String,
    /// Days until it stops working (1-3650; default: it does not expire).
    expires_in_days: Option<u32>,
    /// For this service account of the organization (its member id; admins only), not the caller.
    service_account: Option<String>,
}

/// An API key as listed (its secret is shown once, when made).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiKeyOut {
    id: String,
    name: String,
    /// The member whose roles it carries.
    owner: String,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    /// The secret (`ork_...`), in the answer that made it only.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

impl From<ApiKeyInfo> for ApiKeyOut {
    fn from(info: ApiKeyInfo) -> ApiKeyOut {
        ApiKeyOut {
            id: info.id,
            name: info.name,
            owner: info.owner.as_str().to_owned(),
            created_at: timestamp(info.created_at),
            expires_at: info.expires_at.map(timestamp),
            key: None,
        }
    }
}

fn is_admin(caller: &Caller) -> bool {
    caller.org_role() >= Some(Role::Admin)
}

/// Make an API key.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/apikeys", tag = "orgs", params(("org" = String, Path)), request_body = CreateApiKey,
    responses(
        (status = 201, body = ApiKeyOut),
        (status = 400, description = "Invalid name or expiry, or the operator token (which has no member to own a key)", body = ErrorBody),
        (status = 403, description = "A key for a service account needs the admin role", body = ErrorBody)))]
pub(crate) async fn create_api_key(
    State(state): State<AppState>,
    Path(_org): Path<String>,
    caller: Caller,
    audit: AuditNote,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> ApiResult<(StatusCode, Json<ApiKeyOut>)> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request("invalid_name", "an API key's name is 1 to 100 characters"));
    }
    let expires_at = match body.expires_in_days {
        None => None,
        Some(days @ 1..=MAX_DAYS) => Some(outrigger_store::now_millis() + i64::from(days) * 24 * 3600 * 1000),
        Some(days) => {
            return Err(ApiError::bad_request("invalid_expiry", format!("expiresInDays {days}: use 1 to {MAX_DAYS}")))
        }
    };
    let mut tx = state.store.begin().await?;
    let owner = match &body.service_account {
        Some(id) => {
            if !is_admin(&caller) {
                return Err(ApiError::forbidden("a key for a service account needs the admin role on the organization"));
            }
            let member = tx.member(&caller.org.id, &PrincipalId::received(id.clone())).await?;
            match member {
                Some(member) if member.principal.kind == PrincipalKind::ServiceAccount => member.principal.id,
                _ => return Err(ApiError::not_found(format!("service account '{id}' not found"))),
            }
        }
        None => match caller.principal() {
            Some(principal) => principal.id.clone(),
            None => {
                return Err(ApiError::bad_request(
                    "no_owner",
                    "the operator token is no member: add a service account (POST .../members with serviceAccount) and make its key with serviceAccount",
                ))
            }
        },
    };
    let issued = tx.create_api_key(&caller.org.id, &owner, name, expires_at).await?;
    let mut out = ApiKeyOut::from(issued.info);
    audit.changed(None, serde_json::to_value(&out).ok());
    audit.commit(tx, StatusCode::CREATED).await?;
    tracing::info!(org = %caller.org.name, key = %out.id, owner = %owner.as_str(), "API key made");
    out.key = Some(issued.key);
    Ok((StatusCode::CREATED, Json(out)))
}

/// List API keys that still work: the caller's own, or every one of the organization for an admin.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/apikeys", tag = "orgs", params(("org" = String, Path), PageQuery),
    responses((status = 200, body = Page<ApiKeyOut>)))]
pub(crate) async fn list_api_keys(
    State(state): State<AppState>,
    Path(_org): Path<String>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Page<ApiKeyOut>>> {
    let owner = if is_admin(&caller) { None } else { caller.principal().map(|principal| &principal.id) };
    let keys = state.store.begin().await?.page_api_keys(&caller.org.id, owner, &page.request()?).await?;
    Ok(Json(Page::of(keys, ApiKeyOut::from)))
}

/// Revoke an API key (one's own; an admin any of the organization's): it stops working at once.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/apikeys/{key_id}", tag = "orgs", params(("org" = String, Path), ("key_id" = String, Path)),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such key (or not the caller's)", body = ErrorBody)))]
pub(crate) async fn revoke_api_key(
    State(state): State<AppState>,
    Path((_org, key_id)): Path<(String, String)>,
    caller: Caller,
    audit: AuditNote,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let key = tx.api_key(&caller.org.id, &key_id).await?;
    let own = caller.principal().is_some_and(|principal| principal.id == key.owner);
    if !own && !is_admin(&caller) {
        return Err(ApiError::not_found(format!("API key '{key_id}' not found")));
    }
    tx.revoke_api_key(&caller.org.id, &key_id).await?;
    audit.changed(serde_json::to_value(ApiKeyOut::from(key)).ok(), None);
    audit.commit(tx, StatusCode::NO_CONTENT).await?;
    tracing::info!(org = %caller.org.name, key = %key_id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
