//! `/api/v1/projects/{project}/quotas`: the limits an operator sets on a project (requests per second per App
//! ID, App IDs, components, bytes stored in the managed kvstore), each falling back to the installation's
//! default when unset. Rates are enforced by the gateways (429 `ERR_TOO_MANY_REQUESTS` with `Retry-After`,
//! within the token cache's lifetime of a change), stored bytes by the workers on every write to the managed
//! kvstore (the same 429), counts by every change of the project's resources (409 `quota_exceeded`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use outrigger_store::Quotas;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::access::{AuditNote, Caller, ProjectScope};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path};
use crate::state::ProjectState;
use crate::AppState;

/// The largest count or rate quota that can be set.
const MAX_QUOTA: u32 = 1_000_000_000;

/// The largest stored-bytes quota that can be set: 1 PiB, well inside what a JSON number holds exactly.
const MAX_STORED_BYTES: u64 = 1 << 50;

/// Limits on a project; `0` is no limit.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct QuotaValues {
    /// Requests per second each App ID may make.
    #[serde(default, deserialize_with = "whole_quota", skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    requests_per_second: Option<u32>,
    /// App IDs the project may have.
    #[serde(default, deserialize_with = "whole_quota", skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    app_ids: Option<u32>,
    /// Components the project may declare (the managed ones not counted).
    #[serde(default, deserialize_with = "whole_quota", skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    components: Option<u32>,
    /// Bytes (keys and values of live items) the project may keep in its managed kvstore; a write that would
    /// go over gets 429 `ERR_TOO_MANY_REQUESTS`.
    #[serde(default, deserialize_with = "whole_stored_bytes", skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1_125_899_906_842_624_u64)]
    stored_bytes: Option<u64>,
}

/// A quota as JSON writes it: a whole number (`5`, or `5.0` as JSON allows) from 0 to `max`, or null.
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D, max: u64) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<f64>::deserialize(deserializer)? else { return Ok(None) };
    if number.fract() != 0.0 || !(0.0..=max as f64).contains(&number) {
        return Err(serde::de::Error::custom(format!("a quota is a whole number from 0 to {max}, not {number}")));
    }
    Ok(Some(number as u64))
}

/// A count or rate quota: up to [`MAX_QUOTA`].
pub(crate) fn whole_quota<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    Ok(whole_number(deserializer, u64::from(MAX_QUOTA))?.map(|number| number as u32))
}

/// A stored-bytes quota: up to [`MAX_STORED_BYTES`].
fn whole_stored_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    whole_number(deserializer, MAX_STORED_BYTES)
}

impl From<Quotas> for QuotaValues {
    fn from(quotas: Quotas) -> QuotaValues {
        QuotaValues {
            requests_per_second: quotas.requests_per_second,
            app_ids: quotas.app_ids,
            components: quotas.components,
            stored_bytes: quotas.stored_bytes,
        }
    }
}

/// A project's quotas: those set on it, and those in force (set, or the installation's default).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QuotasOut {
    /// Set on this project; an absent one is the installation's default.
    set: QuotaValues,
    /// In force.
    effective: QuotaValues,
}

fn quotas_out(state: &AppState, quotas: Quotas) -> QuotasOut {
    QuotasOut { set: quotas.into(), effective: quotas.or(state.options.default_quotas).into() }
}

/// Get a project's quotas.
#[utoipa::path(get, path = "/api/v1/projects/{project}/quotas", tag = "projects", params(("project" = String, Path)),
    responses((status = 200, body = QuotasOut)))]
pub(crate) async fn get_quotas(
    State(state): State<AppState>,
    Path(_project): Path<String>,
    scope: ProjectScope,
) -> ApiResult<Json<QuotasOut>> {
    let project = state.store.begin().await?.project_by_id(&scope.project.id).await?;
    Ok(Json(quotas_out(&state, project.quotas)))
}

/// Set a project's quotas: those given replace what was set, absent ones go back to the installation's default.
/// Lowering a count below what the project holds removes nothing; it only refuses more.
#[utoipa::path(put, path = "/api/v1/projects/{project}/quotas", tag = "projects", params(("project" = String, Path)),
    request_body = QuotaValues, responses((status = 200, body = QuotasOut)))]
pub(crate) async fn set_quotas(
    State(state): State<AppState>,
    Path(project): Path<String>,
    caller: Caller,
    audit: AuditNote,
    JsonBody(body): JsonBody<QuotaValues>,
) -> ApiResult<Json<QuotasOut>> {
    let quotas = Quotas {
        requests_per_second: body.requests_per_second,
        app_ids: body.app_ids,
        components: body.components,
        stored_bytes: body.stored_bytes,
    };
    let mut tx = state.store.begin().await?;
    // Only the operator token sets quotas, in the organization the request names.
    let found = tx.project(&caller.org.id, &project).await?;
    tx.set_quotas(&found.id, &quotas).await?;
    audit.commit(tx, StatusCode::OK).await?;
    state.options.changes.changed(found.id.as_str()).await;
    tracing::info!(project = %project, ?quotas, "project quotas set");
    Ok(Json(quotas_out(&state, quotas)))
}

/// Refuses a change that grows the project's App IDs or components past its quota.
pub(crate) fn check_counts(state: &AppState, current: &ProjectState, next: &ProjectState) -> ApiResult<()> {
    let quotas = current.project.quotas.or(state.options.default_quotas);
    let counts = [
        ("App IDs", quotas.app_ids, current.apps.len(), next.apps.len()),
        ("components", quotas.components, current.component_count(), next.component_count()),
    ];
    for (what, quota, before, after) in counts {
        let Some(limit) = quota.filter(|limit| *limit > 0).map(|limit| limit as usize) else { continue };
        if after > before && after > limit {
            return Err(ApiError::conflict(
                "quota_exceeded",
                format!(
                    "the project may have {limit} {what} and this change would make {after}: delete some, or ask the \
                     operator to raise the quota (PUT /api/v1/projects/{}/quotas)",
                    current.project.name
                ),
            ));
        }
    }
    Ok(())
}
