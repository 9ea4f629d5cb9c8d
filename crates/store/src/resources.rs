//! Each project's Dapr documents (components, subscriptions, Resiliency, Configuration, HTTP endpoints), kept as
//! their YAML's parsed form, one row per (project, kind, name).

use outrigger_resources::{Document, Kind};

use crate::{now_millis, records, Error, ProjectId, Result, StoredResource, Tx};

impl Tx {
    /// The project's documents of one kind, by name.
    pub async fn list_resources(&mut self, project: &ProjectId, kind: Kind) -> Result<Vec<StoredResource>> {
        let rows = sqlx::query(
            "SELECT kind, name, document, created_at, updated_at FROM resources WHERE project_id = $1 AND kind = $2 ORDER BY name",
        )
        .bind(project.as_str())
        .bind(kind.as_str())
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(records::resource_from_row).collect()
    }

    /// One document, or `None` when absent.
    pub async fn find_resource(
        &mut self,
        project: &ProjectId,
        kind: Kind,
        name: &str,
    ) -> Result<Option<StoredResource>> {
        let row = sqlx::query(
            "SELECT kind, name, document, created_at, updated_at FROM resources WHERE project_id = $1 AND kind = $2 AND name = $3",
        )
        .bind(project.as_str())
        .bind(kind.as_str())
        .bind(name)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(records::resource_from_row).transpose()
    }

    /// Creates or replaces a document; answers whether it was created.
    pub async fn put_resource(&mut self, project: &ProjectId, document: &Document) -> Result<bool> {
        let now = now_millis();
        let json = serde_json::to_string(document).expect("documents serialise to JSON");
        // Both statements take the same values: project, kind, name, document, time.
        let (name, json) = (document.metadata.name.as_str(), json.as_str());
        let bound = move |sql| {
            sqlx::query(sql).bind(project.as_str()).bind(document.kind.as_str()).bind(name).bind(json).bind(now)
        };
        let updated = bound(
            "UPDATE resources SET document = $4, updated_at = $5 WHERE project_id = $1 AND kind = $2 AND name = $3",
        )
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if updated > 0 {
            return Ok(false);
        }
        bound(
            "INSERT INTO resources (project_id, kind, name, document, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .execute(&mut *self.tx)
        .await?;
        Ok(true)
    }

    /// Deletes a document.
    pub async fn delete_resource(&mut self, project: &ProjectId, kind: Kind, name: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM resources WHERE project_id = $1 AND kind = $2 AND name = $3")
            .bind(project.as_str())
            .bind(kind.as_str())
            .bind(name)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::NotFound { what: kind.as_str(), name: name.to_owned() });
        }
        Ok(())
    }

    /// Every Dapr document of the project, in kind order then by name.
    pub async fn all_resources(&mut self, project: &ProjectId) -> Result<Vec<StoredResource>> {
        let mut all = Vec::new();
        for kind in Kind::DAPR {
            all.extend(self.list_resources(project, kind).await?);
        }
        Ok(all)
    }
}
