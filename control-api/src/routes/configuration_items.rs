//! `/api/v1/projects/{project}/configuration-items`: the items of a project's managed configuration store
//! (`configstore`), which its apps read and watch through Dapr's configuration API. Every write is announced
//! like any change to the project, which is how subscribed apps hear of it.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use outrigger_store::ConfigurationItem;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::timestamp;
use crate::access::ProjectScope;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path, Query};
use crate::paging::{Page, PageQuery};
use crate::AppState;

/// The longest key an item may have.
const MAX_KEY_BYTES: usize = 512;

/// The value (and attributes) to give an item.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"value": "blue", "metadata": {"owner": "team-a"}}))]
pub(crate) struct SetConfigurationItem {
    /// The value apps read; not empty (Dapr's configuration stores answer no empty values).
    #[schema(min_length = 1)]
    value: String,
    /// Attributes apps read with the value.
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// A configuration item.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConfigurationItemOut {
    key: String,
    value: String,
    /// Counts the writes of the key, from 1; apps read it as the item's version.
    version: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, String>,
    updated_at: DateTime<Utc>,
}

impl From<ConfigurationItem> for ConfigurationItemOut {
    fn from(item: ConfigurationItem) -> ConfigurationItemOut {
        ConfigurationItemOut {
            key: item.key,
            value: item.value,
            version: item.version.to_string(),
            metadata: item.metadata,
            updated_at: timestamp(item.updated_at),
        }
    }
}

fn check_key(key: &str) -> ApiResult<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_key",
            format!("configuration key '{key}' must be 1 to {MAX_KEY_BYTES} bytes without control characters"),
        ));
    }
    Ok(())
}

/// List the items of the project's managed configuration store, by key, a page at a time.
#[utoipa::path(get, path = "/api/v1/projects/{project}/configuration-items", tag = "configuration",
    params(("project" = String, Path), PageQuery), responses((status = 200, body = Page<ConfigurationItemOut>)))]
pub(crate) async fn list_configuration_items(
    State(state): State<AppState>,
    Path(_project): Path<String>,
    scope: ProjectScope,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Page<ConfigurationItemOut>>> {
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    let items = tx.page_configuration_items(&project.id, &page.request()?).await?;
    Ok(Json(Page::of(items, ConfigurationItemOut::from)))
}

/// Get one item.
#[utoipa::path(get, path = "/api/v1/projects/{project}/configuration-items/{key}", tag = "configuration",
    params(("project" = String, Path), ("key" = String, Path)), responses((status = 200, body = ConfigurationItemOut)))]
pub(crate) async fn get_configuration_item(
    State(state): State<AppState>,
    Path((_project, key)): Path<(String, String)>,
    scope: ProjectScope,
) -> ApiResult<Json<ConfigurationItemOut>> {
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    let found = tx.configuration_items(&project.id, std::slice::from_ref(&key)).await?.into_iter().next();
    let item = found.ok_or_else(|| ApiError::not_found(format!("configuration item '{key}' not found")))?;
    Ok(Json(ConfigurationItemOut::from(item)))
}

/// Create or replace an item; subscribed apps receive the new value.
#[utoipa::path(put, path = "/api/v1/projects/{project}/configuration-items/{key}", tag = "configuration",
    params(("project" = String, Path), ("key" = String, Path)), request_body = SetConfigurationItem, responses(
        (status = 200, description = "Replaced", body = ConfigurationItemOut),
        (status = 201, description = "Created", body = ConfigurationItemOut)))]
pub(crate) async fn set_configuration_item(
    State(state): State<AppState>,
    Path((_project, key)): Path<(String, String)>,
    scope: ProjectScope,
    JsonBody(body): JsonBody<SetConfigurationItem>,
) -> ApiResult<(StatusCode, Json<ConfigurationItemOut>)> {
    check_key(&key)?;
    if body.value.is_empty() {
        return Err(ApiError::bad_request("invalid_value", "a configuration item's value must not be empty"));
    }
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    let item = tx.set_configuration_item(&project.id, &key, &body.value, &body.metadata).await?;
    tx.touch_project(&project.id).await?;
    let status = if item.version == 1 { StatusCode::CREATED } else { StatusCode::OK };
    scope.audit.commit(tx, status).await?;
    state.options.changes.changed(project.id.as_str()).await;
    tracing::info!(project = %project.name, %key, version = item.version, "configuration item written");
    Ok((status, Json(ConfigurationItemOut::from(item))))
}

/// Delete an item; subscribed apps receive it as removed.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/configuration-items/{key}", tag = "configuration",
    params(("project" = String, Path), ("key" = String, Path)), responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete_configuration_item(
    State(state): State<AppState>,
    Path((_project, key)): Path<(String, String)>,
    scope: ProjectScope,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    tx.delete_configuration_item(&project.id, &key).await?;
    tx.touch_project(&project.id).await?;
    scope.audit.commit(tx, StatusCode::NO_CONTENT).await?;
    state.options.changes.changed(project.id.as_str()).await;
    tracing::info!(project = %project.name, %key, "configuration item deleted");
    Ok(StatusCode::NO_CONTENT)
}
