//! The audit trail: one event per control-plane change, kept per organization, newest first.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::orgs::OrgId;
use crate::paging::{KeyColumn, Keyset, Value};
use crate::{Page, PageRequest, Result, Tx};

/// One recorded change.
#[derive(Clone, Debug, Default)]
pub struct AuditEvent {
    /// Position in the organization's trail (set when stored).
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// `operator`, `user` or `serviceAccount`.
    pub actor_kind: String,
    /// The principal's identifier (none for the operator token).
    pub actor_id: Option<String>,
    /// How the actor is shown: an email, a service account's name, `operator`.
    pub actor: String,
    /// What was done: `<resource>.<verb>` (`project.create`, `component.update`, `member.remove`, ...).
    pub action: String,
    /// The project it happened in, by name.
    pub project: Option<String>,
    /// What it was done to (the request path).
    pub target: String,
    /// The HTTP status the change was answered with.
    pub status: u16,
    /// The resource before, secrets withheld (JSON).
    pub before: Option<String>,
    /// The resource after, secrets withheld (JSON).
    pub after: Option<String>,
    /// The caller's address.
    pub source_addr: Option<String>,
}

/// Which events to list.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only this principal's (or `operator`).
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only events in this project.
    pub project: Option<String>,
    /// Only events at or after (Unix milliseconds).
    pub since: Option<i64>,
    /// Only events before (Unix milliseconds).
    pub until: Option<i64>,
}

const COLUMNS: &str =
    "id, at, actor_kind, actor_id, actor, action, project, target, status, before_doc, after_doc, source_addr";
const NEWEST_FIRST: &[KeyColumn] = &[KeyColumn::Number("at"), KeyColumn::Number("id")];

fn event_from_row(row: &AnyRow) -> Result<AuditEvent> {
    Ok(AuditEvent {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor_kind: row.try_get("actor_kind")?,
        actor_id: row.try_get("actor_id")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        project: row.try_get("project")?,
        target: row.try_get("target")?,
        status: u16::try_from(row.try_get::<i64, _>("status")?).unwrap_or_default(),
        before: row.try_get("before_doc")?,
        after: row.try_get("after_doc")?,
        source_addr: row.try_get("source_addr")?,
    })
}

impl Tx {
    /// Records an event in the organization's trail.
    pub async fn record_audit(&mut self, org: &OrgId, event: &AuditEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_events (org_id, at, actor_kind, actor_id, actor, action, project, target, status, \
             before_doc, after_doc, source_addr) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&org.0)
        .bind(event.at)
        .bind(&event.actor_kind)
        .bind(&event.actor_id)
        .bind(&event.actor)
        .bind(&event.action)
        .bind(&event.project)
        .bind(&event.target)
        .bind(i64::from(event.status))
        .bind(&event.before)
        .bind(&event.after)
        .bind(&event.source_addr)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Removes every organization's events older than `before` (Unix milliseconds).
    pub async fn expire_audit(&mut self, before: i64) -> Result<u64> {
        let removed = sqlx::query("DELETE FROM audit_events WHERE at < $1").bind(before).execute(&mut *self.tx).await?;
        Ok(removed.rows_affected())
    }

    /// A page of the organization's trail, newest first.
    pub async fn page_audit(
        &mut self,
        org: &OrgId,
        filter: &AuditFilter,
        request: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        let mut listing = Keyset::new("audit_events", COLUMNS, NEWEST_FIRST)
            .newest_first()
            .planned_per_run()
            .filter("org_id = ?", Value::Text(org.0.clone()));
        if let Some(actor) = &filter.actor {
            listing = listing.filter("COALESCE(actor_id, actor) = ?", Value::Text(actor.clone()));
        }
        if let Some(action) = &filter.action {
            listing = listing.filter("action = ?", Value::Text(action.clone()));
        }
        if let Some(project) = &filter.project {
            listing = listing.filter("project = ?", Value::Text(project.clone()));
        }
        if let Some(since) = filter.since {
            listing = listing.filter("at >= ?", Value::Number(since));
        }
        if let Some(until) = filter.until {
            listing = listing.filter("at < ?", Value::Number(until));
        }
        listing.page(self, request, event_from_row).await
    }
}
