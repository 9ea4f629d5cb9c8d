//! Which projects changed: every write to a project's App IDs or resources stamps the project, so a worker can
//! ask for the projects changed since it last looked (an index range, however many projects are idle) instead
//! of re-reading them all.

use sqlx::Row;

use crate::{now_millis, ProjectId, Result, Tx};

impl Tx {
    // === change stamps ===

    /// Stamps the project as changed now; call it in the transaction that changes it.
    pub async fn touch_project(&mut self, project: &ProjectId) -> Result<()> {
        sqlx::query("UPDATE projects SET changed_at = $1 WHERE id = $2")
            .bind(now_millis())
            .bind(project.as_str())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// The projects stamped at `since` (Unix milliseconds) or later.
    pub async fn projects_changed_since(&mut self, since: i64) -> Result<Vec<ProjectId>> {
        let rows =
            sqlx::query("SELECT id FROM projects WHERE changed_at >= $1").bind(since).fetch_all(&mut *self.tx).await?;
        rows.iter().map(|row| Ok(ProjectId::of(row.try_get("id")?))).collect()
    }

    /// The projects with at least one App ID that has an app endpoint: the only ones the platform calls back.
    pub async fn projects_with_app_endpoints(&mut self) -> Result<Vec<ProjectId>> {
        let rows = sqlx::query("SELECT DISTINCT project_id FROM app_ids WHERE app_endpoint IS NOT NULL")
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter().map(|row| Ok(ProjectId::of(row.try_get("project_id")?))).collect()
    }
}
