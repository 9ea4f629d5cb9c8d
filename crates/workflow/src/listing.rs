//! Reading instances across a project: filtered, paginated listings (control API, `ListInstanceIDs`), one
//! instance with its history as of one moment (control API), one instance's committed history
//! (`GetInstanceHistory`), and purging every finished instance a filter matches.

use base64::Engine as _;
use dapr_durabletask_proto as pb;
use outrigger_store::ProjectId;
use sqlx::Row;

use crate::{is_terminal, Engine, Status, WorkflowError};

/// The most instances one page holds.
pub const MAX_PAGE: u32 = 1000;

/// Which instances of a project a listing or a purge covers; empty fields match everything.
#[derive(Clone, Debug, Default)]
pub struct InstanceFilter {
    pub app_id: Option<String>,
    pub name: Option<String>,
    pub statuses: Vec<Status>,
    /// Created at or after (Unix ms).
    pub created_from: Option<i64>,
    /// Created before (Unix ms).
    pub created_to: Option<i64>,
}

/// An instance as a listing shows it (no payloads).
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceSummary {
    pub instance_id: String,
    pub app_id: String,
    pub name: String,
    pub status: Status,
    pub parent_instance_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
}

/// One instance as its page shows it: the summary, payloads and committed history, all of one moment.
#[derive(Clone, Debug)]
pub struct InstanceDetail {
    pub summary: InstanceSummary,
    pub input: Option<String>,
    pub output: Option<String>,
    pub custom_status: Option<String>,
    pub failure: Option<pb::TaskFailureDetails>,
    pub history: Vec<pb::HistoryEvent>,
}

/// One page of a listing and where the next one starts (`None` on the last page).
#[derive(Debug)]
pub struct Page {
    pub instances: Vec<InstanceSummary>,
    pub continuation: Option<String>,
}

const SUMMARY_COLUMNS: &str =
    "instance_id, app_id, name, status, parent_instance_id, created_at, updated_at, completed_at";

fn summary_from_row(row: &sqlx::any::AnyRow) -> Result<InstanceSummary, WorkflowError> {
    let status: i64 = row.try_get("status")?;
    Ok(InstanceSummary {
        instance_id: row.try_get("instance_id")?,
        app_id: row.try_get("app_id")?,
        name: row.try_get("name")?,
        status: Status::try_from(status as i32)
            .map_err(|_| WorkflowError::Corrupt(format!("unknown instance status {status}")))?,
        parent_instance_id: row.try_get("parent_instance_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

/// The position after the last instance of a page, newest first: its creation time and ID.
fn continuation_of(summary: &InstanceSummary) -> String {
    let position = format!("{}:{}", summary.created_at, summary.instance_id);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(position)
}

fn position_of(continuation: &str) -> Result<(i64, String), WorkflowError> {
    let invalid = || WorkflowError::Invalid("the continuation token is not one this server gave out".to_owned());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(continuation).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (created_at, instance_id) = text.split_once(':').ok_or_else(invalid)?;
    Ok((created_at.parse().map_err(|_| invalid())?, instance_id.to_owned()))
}

/// A value bound to a placeholder.
enum Value {
    Text(String),
    Number(i64),
}

/// A `WHERE` clause over `wf_instances` and the values of its placeholders, in order. The project comes first.
struct Conditions {
    clauses: Vec<String>,
    values: Vec<Value>,
}

impl Conditions {
    /// `after`: the position a continuation token names; the page holds what comes after it, newest first.
    fn new(project: &ProjectId, filter: &InstanceFilter, after: Option<(i64, String)>) -> Conditions {
        let mut conditions = Conditions { clauses: Vec::new(), values: Vec::new() };
        conditions.add("project_id = ?", Value::Text(project.as_str().to_owned()));
        if let Some(app_id) = &filter.app_id {
            conditions.add("app_id = ?", Value::Text(app_id.clone()));
        }
        if let Some(name) = &filter.name {
            conditions.add("name = ?", Value::Text(name.clone()));
        }
        if let Some(from) = filter.created_from {
            conditions.add("created_at >= ?", Value::Number(from));
        }
        if let Some(to) = filter.created_to {
            conditions.add("created_at < ?", Value::Number(to));
        }
        if !filter.statuses.is_empty() {
            let placeholders: Vec<String> =
                filter.statuses.iter().map(|status| conditions.bind(Value::Number(*status as i64))).collect();
            conditions.clauses.push(format!("status IN ({})", placeholders.join(", ")));
        }
        if let Some((created_at, instance_id)) = after {
            let (at, id) = (conditions.bind(Value::Number(created_at)), conditions.bind(Value::Text(instance_id)));
            conditions.clauses.push(format!("(created_at < {at} OR (created_at = {at} AND instance_id < {id}))"));
        }
        conditions
    }

    /// Adds a value; its placeholder.
    fn bind(&mut self, value: Value) -> String {
        self.values.push(value);
        format!("${}", self.values.len())
    }

    fn add(&mut self, clause: &str, value: Value) {
        let placeholder = self.bind(value);
        self.clauses.push(clause.replace('?', &placeholder));
    }

    fn query<'a>(&'a self, sql: &'a str) -> sqlx::query::Query<'a, sqlx::Any, sqlx::any::AnyArguments<'a>> {
        self.values.iter().fold(sqlx::query(sql), |query, value| match value {
            Value::Text(text) => query.bind(text),
            Value::Number(number) => query.bind(number),
        })
    }

    fn sql(&self) -> String {
        self.clauses.join(" AND ")
    }
}

impl Engine {
    /// The instances of `project` matching `filter`, newest first, at most `limit` per page.
    pub async fn list(
        &self,
        project: &ProjectId,
        filter: &InstanceFilter,
        limit: u32,
        continuation: Option<&str>,
    ) -> Result<Page, WorkflowError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let after = continuation.map(position_of).transpose()?;
        let conditions = Conditions::new(project, filter, after);
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM wf_instances WHERE {} ORDER BY created_at DESC, instance_id DESC LIMIT {}",
            conditions.sql(),
            limit + 1
        );
        let rows = conditions.query(&sql).fetch_all(&self.pool).await?;
        let mut instances = rows.iter().map(summary_from_row).collect::<Result<Vec<_>, _>>()?;
        let continuation = if instances.len() > limit as usize {
            instances.truncate(limit as usize);
            instances.last().map(continuation_of)
        } else {
            None
        };
        Ok(Page { instances, continuation })
    }

    /// One instance with its payloads and the history its status was decided on; `None` when it does not
    /// exist in this project. Read as one moment: a turn that commits between the reads would otherwise show
    /// the old status with the new history, and a page following the instance would stop on it.
    pub async fn detail(&self, project: &ProjectId, instance: &str) -> Result<Option<InstanceDetail>, WorkflowError> {
        loop {
            let row = sqlx::query(&format!(
                "SELECT {SUMMARY_COLUMNS}, input, output, custom_status, failure, execution_id, history_len \
                 FROM wf_instances WHERE project_id = $1 AND instance_id = $2"
            ))
            .bind(project.as_str())
            .bind(instance)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let execution_id: String = row.try_get("execution_id")?;
            // Within an execution the history only grows: the row's length marks the events its status saw.
            let events: Vec<String> = sqlx::query_scalar(
                "SELECT event FROM wf_history WHERE project_id = $1 AND instance_id = $2 AND seq < $3 ORDER BY seq",
            )
            .bind(project.as_str())
            .bind(instance)
            .bind(row.try_get::<i64, _>("history_len")?)
            .fetch_all(&self.pool)
            .await?;
            // A continue-as-new (or a purge and a new start) in between rewrote the history: read again.
            let now: Option<String> =
                sqlx::query_scalar("SELECT execution_id FROM wf_instances WHERE project_id = $1 AND instance_id = $2")
                    .bind(project.as_str())
                    .bind(instance)
                    .fetch_optional(&self.pool)
                    .await?;
            if now.as_deref() != Some(execution_id.as_str()) {
                continue;
            }
            let failure: Option<String> = row.try_get("failure")?;
            return Ok(Some(InstanceDetail {
                summary: summary_from_row(&row)?,
                input: row.try_get("input")?,
                output: row.try_get("output")?,
                custom_status: row.try_get("custom_status")?,
                failure: failure.map(|text| crate::decode(&text)).transpose()?,
                history: events.iter().map(|event| crate::decode(event)).collect::<Result<_, _>>()?,
            }));
        }
    }

    /// The committed history of an instance of the current execution, oldest first; `None` when the instance
    /// does not exist in this project.
    pub async fn history_of(
        &self,
        project: &ProjectId,
        instance: &str,
    ) -> Result<Option<Vec<pb::HistoryEvent>>, WorkflowError> {
        let mut tx = self.pool.begin().await?;
        if crate::find(&mut tx, project, instance).await?.is_none() {
            return Ok(None);
        }
        let events = crate::history(&mut tx, project, instance).await?;
        tx.commit().await?;
        Ok(Some(events))
    }

    /// `PurgeInstances` by filter: every finished instance of `project` matching it (and, with `recursive`,
    /// their children); how many were deleted. Instances still running are left alone.
    pub async fn purge_matching(
        &self,
        (project, project_name): (&ProjectId, &str),
        filter: &InstanceFilter,
        recursive: bool,
    ) -> Result<i32, WorkflowError> {
        let conditions = Conditions::new(project, filter, None);
        let sql = format!("SELECT instance_id, status FROM wf_instances WHERE {}", conditions.sql());
        let rows = conditions.query(&sql).fetch_all(&self.pool).await?;
        let mut deleted = 0;
        for row in rows {
            if is_terminal(row.try_get::<i64, _>("status")? as i32) {
                let instance: String = row.try_get("instance_id")?;
                deleted += self.purge((project, project_name), &instance, recursive, false).await?;
            }
        }
        Ok(deleted)
    }
}

impl From<pb::PurgeInstanceFilter> for InstanceFilter {
    fn from(filter: pb::PurgeInstanceFilter) -> InstanceFilter {
        InstanceFilter {
            statuses: filter.runtime_status.into_iter().filter_map(|status| Status::try_from(status).ok()).collect(),
            created_from: filter.created_time_from.as_ref().map(crate::millis),
            created_to: filter.created_time_to.as_ref().map(crate::millis),
            ..InstanceFilter::default()
        }
    }
}

/// A status as Dapr's APIs spell it: `RUNNING`, `COMPLETED`, ...
pub fn status_name(status: Status) -> &'static str {
    let name = status.as_str_name();
    name.strip_prefix("ORCHESTRATION_STATUS_").unwrap_or(name)
}

/// A status from Dapr's spelling, in any case.
pub fn parse_status(name: &str) -> Option<Status> {
    Status::from_str_name(&format!("ORCHESTRATION_STATUS_{}", name.to_ascii_uppercase()))
}
