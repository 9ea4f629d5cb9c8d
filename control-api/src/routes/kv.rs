//! `/api/v1/projects/{project}/kv`: the KV explorer of a project's managed `kvstore`. Lists the keys of its App IDs
//! (stored as Dapr stores them, `<appId>||<key>`, inside the project's namespace) a page at a time, shows one value,
//! and deletes one item. The store is reached through [`crate::ManagedKv`], which reaches only the project's keys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::timestamp;
use crate::access::ProjectScope;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::managed::{ExplorerFailure, KvKey, ManagedKv};
use crate::names::check_path_param;
use crate::paging::{page_limit, Page};
use crate::AppState;

/// Which keys, and which page of them.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct KvQuery {
    /// Only the keys of this App ID.
    #[param(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length = 63)]
    app_id: Option<String>,
    /// Only keys starting with this text (as the App ID wrote them); needs `appId`.
    prefix: Option<String>,
    /// Keys per page (1-1000, default 100). On a Redis kvstore a page is whole `SCAN` steps: it may hold a few
    /// more, or fewer (even none) and a `continuationToken`.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where the page starts: the `continuationToken` of the previous page.
    continuation_token: Option<String>,
}

/// A key of an App ID, without its value.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KvKeyOut {
    app_id: String,
    /// The key as the App ID wrote it (without Dapr's `<appId>||` prefix).
    key: String,
    /// Bytes of the value.
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    /// When the item expires (it was written with `ttlInSeconds`).
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
}

impl From<KvKey> for KvKeyOut {
    fn from(key: KvKey) -> KvKeyOut {
        KvKeyOut {
            app_id: key.app_id,
            key: key.key,
            size: key.size,
            etag: key.etag,
            expires_at: key.expires_at.map(timestamp),
        }
    }
}

/// One item with its value: `value` when the bytes are UTF-8 text, else `valueBase64`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"appId": "orders", "key": "order-1", "value": "{\"total\":3}", "etag": "1"}))]
pub(crate) struct KvItemOut {
    app_id: String,
    key: String,
    /// The value as text, when it is valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    /// The value's bytes in base64, when they are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
}

/// The explorer, when the project has a managed kvstore this process can reach.
fn explorer(state: &AppState, scope: &ProjectScope) -> ApiResult<std::sync::Arc<dyn ManagedKv>> {
    let name = &scope.project.name;
    if !scope.project.managed_kvstore {
        return Err(ApiError::not_found(format!(
            "project '{name}' has no managed kvstore: it was created without it, so there are no keys to explore"
        )));
    }
    state.options.managed_kv.clone().ok_or_else(|| {
        ApiError::not_found("this control API does not reach the managed kvstore: use the console of an all-in-one or set OUTRIGGER_MANAGED_KVSTORE_URL")
    })
}

fn failed(failure: ExplorerFailure) -> ApiError {
    match failure {
        ExplorerFailure::Invalid(message) => ApiError::bad_request("invalid_query", message),
        ExplorerFailure::Unavailable(message) => {
            tracing::warn!(error = %message, "the managed kvstore failed");
            ApiError::store_unavailable(format!("the managed kvstore could not be read: {message}"))
        }
    }
}

/// List the keys of the project's App IDs in its managed kvstore, without values, by key.
#[utoipa::path(get, path = "/api/v1/projects/{project}/kv", tag = "explorers",
    params(("project" = String, Path), KvQuery), responses(
        (status = 200, body = Page<KvKeyOut>),
        (status = 503, description = "The managed kvstore failed", body = crate::ErrorBody)))]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    Path(_project): Path<String>,
    scope: ProjectScope,
    Query(query): Query<KvQuery>,
) -> ApiResult<Json<Page<KvKeyOut>>> {
    let limit = page_limit(query.limit)?;
    let explorer = explorer(&state, &scope)?;
    let app_id = query.app_id.filter(|app_id| !app_id.is_empty());
    if let Some(app_id) = &app_id {
        check_path_param("app", app_id).map_err(|problem| {
            ApiError::bad_request("invalid_query", problem.replace("path parameter 'app'", "appId"))
        })?;
    }
    let prefix = query.prefix.unwrap_or_default();
    let page = explorer
        .list(&scope.project.id, app_id.as_deref(), &prefix, query.continuation_token.as_deref(), limit as usize)
        .await
        .map_err(failed)?;
    Ok(Json(Page { items: page.keys.into_iter().map(KvKeyOut::from).collect(), continuation_token: page.continuation }))
}

/// Get one item of an App ID, with its value.
#[utoipa::path(get, path = "/api/v1/projects/{project}/kv/{app}/{key}", tag = "explorers",
    params(("project" = String, Path), ("app" = String, Path), ("key" = String, Path, description = "The key as the App ID wrote it; encode `/` as %2F")),
    responses(
        (status = 200, body = KvItemOut),
        (status = 503, description = "The managed kvstore failed", body = crate::ErrorBody)))]
pub(crate) async fn get_key(
    State(state): State<AppState>,
    Path((_project, app_id, key)): Path<(String, String, String)>,
    scope: ProjectScope,
) -> ApiResult<Json<KvItemOut>> {
    let explorer = explorer(&state, &scope)?;
    let found = explorer.get(&scope.project.id, &app_id, &key).await.map_err(failed)?;
    let item = found.ok_or_else(|| ApiError::not_found(format!("App ID '{app_id}' has no key '{key}'")))?;
    let (value, value_base64) = match String::from_utf8(item.value) {
        Ok(text) => (Some(text), None),
        Err(bytes) => (None, Some(STANDARD.encode(bytes.into_bytes()))),
    };
    Ok(Json(KvItemOut {
        app_id,
        key,
        value,
        value_base64,
        etag: item.etag,
        expires_at: item.expires_at.map(timestamp),
    }))
}

/// Delete one item of an App ID.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/kv/{app}/{key}", tag = "explorers",
    params(("project" = String, Path), ("app" = String, Path), ("key" = String, Path, description = "The key as the App ID wrote it; encode `/` as %2F")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 503, description = "The managed kvstore failed", body = crate::ErrorBody)))]
pub(crate) async fn delete_key(
    State(state): State<AppState>,
    Path((_project, app_id, key)): Path<(String, String, String)>,
    scope: ProjectScope,
) -> ApiResult<StatusCode> {
    let explorer = explorer(&state, &scope)?;
    if !explorer.delete(&scope.project.id, &app_id, &key).await.map_err(failed)? {
        return Err(ApiError::not_found(format!("App ID '{app_id}' has no key '{key}'")));
    }
    // The value may be anything the app keeps: the trail names the item, not what it held.
    scope.audit.changed(Some(json!({"appId": app_id, "key": key})), None);
    tracing::info!(project = %scope.project.name, %app_id, %key, "kvstore item deleted from the control API");
    Ok(StatusCode::NO_CONTENT)
}
