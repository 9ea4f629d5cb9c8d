//! How a change gets into its organization's audit trail. [`authorize`](crate::access::authorize) starts the
//! change's event (who, what, where from) before the handler runs and hands the handler an [`AuditNote`]; the
//! handler notes what changed and [commits](AuditNote::commit) its transaction through the note, which writes
//! the event in that transaction: the change and its record land together or not at all. A change made
//! elsewhere than the control-plane database (a workflow, a managed kvstore key) has no transaction to share;
//! its event is written once it was answered with success.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use outrigger_store::{AuditEvent, OrgId, Tx};

use crate::error::ApiError;
use crate::AppState;

/// How often, at most, a process removes expired audit events (after writing one; nothing runs while idle).
const EXPIRY_INTERVAL: Duration = Duration::from_secs(3600);

/// What a change handler tells the audit trail beyond the request itself, and the event it completes.
#[derive(Debug, Default)]
struct AuditDetail {
    /// The event as the request describes it (`None` on a route that changes nothing), and its organization.
    started: Option<(OrgId, AuditEvent)>,
    /// The resource before the change (secrets withheld).
    before: Option<serde_json::Value>,
    /// The resource after it.
    after: Option<serde_json::Value>,
    /// The organization the event belongs to, when the request did not work in one (a new organization).
    org: Option<OrgId>,
    /// The project the event belongs to, when the path names none (a new project).
    project: Option<String>,
    /// Whether the event was written with the change.
    written: bool,
}

impl AuditDetail {
    /// The finished event, answered with `status`, and its organization.
    fn finish(&mut self, status: StatusCode) -> Option<(OrgId, AuditEvent)> {
        let (org, mut event) = self.started.take()?;
        event.at = outrigger_store::now_millis();
        event.status = status.as_u16();
        event.before = self.before.take().map(|value| value.to_string());
        event.after = self.after.take().map(|value| value.to_string());
        event.project = self.project.take().or(event.project);
        Some((self.org.take().unwrap_or(org), event))
    }
}

/// Where a handler describes its change; shared with the middleware that started the event.
#[derive(Clone, Debug, Default)]
pub(crate) struct AuditNote(Arc<Mutex<AuditDetail>>);

impl AuditNote {
    /// The note of a change whose event `event` begins (in `org`).
    pub(crate) fn started(org: OrgId, event: AuditEvent) -> AuditNote {
        AuditNote(Arc::new(Mutex::new(AuditDetail { started: Some((org, event)), ..AuditDetail::default() })))
    }

    fn detail(&self) -> std::sync::MutexGuard<'_, AuditDetail> {
        self.0.lock().expect("audit note poisoned")
    }

    /// Notes the resource before and after the change.
    pub(crate) fn changed(&self, before: Option<serde_json::Value>, after: Option<serde_json::Value>) {
        let mut detail = self.detail();
        detail.before = before;
        detail.after = after;
    }

    /// Files the event under `project`.
    pub(crate) fn in_project(&self, project: &str) {
        self.detail().project = Some(project.to_owned());
    }

    /// Files the event under `org`.
    pub(crate) fn in_org(&self, org: OrgId) {
        self.detail().org = Some(org);
    }

    /// The request changed nothing (a dry run): it has no event.
    pub(crate) fn unchanged(&self) {
        self.detail().started = None;
    }

    /// Commits `tx`, the change, with its event (answered with `status`) written in it.
    pub(crate) async fn commit(&self, mut tx: Tx, status: StatusCode) -> Result<(), ApiError> {
        let event = {
            let mut detail = self.detail();
            detail.written = true;
            detail.finish(status)
        };
        if let Some((org, event)) = event {
            tx.record_audit(&org, &event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// After the change was answered with `status`: writes its event if the handler did not write it with
    /// the change, and removes expired events when that is due.
    pub(crate) async fn answered(&self, state: &AppState, status: StatusCode) {
        let (event, changed) = {
            let mut detail = self.detail();
            let event = if detail.written { None } else { detail.finish(status) };
            let changed = detail.written || event.is_some();
            (event, changed)
        };
        let expire = changed && expiry_due_now(state);
        if event.is_none() && !expire {
            return;
        }
        let written_after = async {
            let mut tx = state.store.begin().await?;
            if let Some((org, event)) = &event {
                tx.record_audit(org, event).await?;
            }
            if expire {
                let retention = i64::try_from(state.options.audit_retention.as_millis()).unwrap_or(i64::MAX);
                tx.expire_audit(outrigger_store::now_millis().saturating_sub(retention)).await?;
            }
            tx.commit().await
        };
        if let Err(err) = written_after.await {
            match &event {
                Some((_, event)) => tracing::error!(
                    error = %err, action = %event.action, target = %event.target, actor = %event.actor,
                    "cannot record an audit event"
                ),
                None => tracing::warn!(error = %err, "cannot remove expired audit events; a later change tries again"),
            }
        }
    }
}

/// Whether this process is due to remove expired audit events (and, if so, that it now is).
fn expiry_due_now(state: &AppState) -> bool {
    let mut last = state.audit_expired_at.lock().expect("audit expiry lock");
    let due = last.is_none_or(|last| last.elapsed() >= EXPIRY_INTERVAL);
    if due {
        *last = Some(Instant::now());
    }
    due
}
