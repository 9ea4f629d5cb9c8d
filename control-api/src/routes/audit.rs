//! `GET /api/v1/orgs/{org}/audit`: the organization's audit trail, newest first.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use outrigger_store::{AuditEvent, AuditFilter, PageRequest};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::timestamp;
use crate::access::Caller;
use crate::error::ApiResult;
use crate::extract::{Path, Query};
use crate::paging::{page_limit, Page};
use crate::AppState;

/// Which events.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Only this actor's: a member id, or `operator`.
    actor: Option<String>,
    /// Only this action (`project.create`, `resource.put`, `member.add`, ...).
    action: Option<String>,
    /// Only events in this project.
    project: Option<String>,
    /// Only events at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Only events before this time (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// Events per page (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where the page starts: the `continuationToken` of the previous page.
    continuation_token: Option<String>,
}

/// Who made a change.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ActorOut {
    /// `operator`, `user` or `serviceAccount`.
    kind: String,
    /// The member id (not for the operator token).
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// An email, a service account's name, or `operator`.
    display: String,
}

/// One change.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditEventOut {
    id: i64,
    at: DateTime<Utc>,
    actor: ActorOut,
    action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<String>,
    /// The path the change was made at.
    target: String,
    /// The HTTP status it was answered with.
    status: u16,
    /// What changed, before (secrets withheld).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    before: Option<serde_json::Value>,
    /// What changed, after (secrets withheld).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    after: Option<serde_json::Value>,
    /// The address the change came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    source_addr: Option<String>,
}

fn event_out(event: AuditEvent) -> AuditEventOut {
    let parse = |text: Option<String>| text.and_then(|text| serde_json::from_str(&text).ok());
    AuditEventOut {
        id: event.id,
        at: timestamp(event.at),
        actor: ActorOut { kind: event.actor_kind, id: event.actor_id, display: event.actor },
        action: event.action,
        project: event.project,
        target: event.target,
        status: event.status,
        before: parse(event.before),
        after: parse(event.after),
        source_addr: event.source_addr,
    }
}

/// List the organization's changes, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/audit", tag = "orgs", params(("org" = String, Path), AuditQuery),
    responses((status = 200, body = Page<AuditEventOut>)))]
pub(crate) async fn list_audit(
    State(state): State<AppState>,
    Path(_org): Path<String>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Page<AuditEventOut>>> {
    let request = PageRequest { limit: page_limit(query.limit)?, continuation: query.continuation_token };
    let filter = AuditFilter {
        actor: query.actor,
        action: query.action,
        project: query.project,
        since: query.since.map(|since| since.timestamp_millis()),
        until: query.until.map(|until| until.timestamp_millis()),
    };
    let page = state.store.begin().await?.page_audit(&caller.org.id, &filter, &request).await?;
    Ok(Json(Page::of(page, event_out)))
}
