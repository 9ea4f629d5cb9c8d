//! Extended metadata of App IDs: key/value attributes an app sets on itself and reads back in its metadata.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::{ProjectId, Result, Tx};

impl Tx {
    // === extended metadata ===

    /// The App ID's attributes, by key.
    pub async fn app_metadata(&mut self, project_id: &ProjectId, app_id: &str) -> Result<BTreeMap<String, String>> {
        let rows = sqlx::query("SELECT key, value FROM app_metadata WHERE project_id = $1 AND app_id = $2")
            .bind(project_id.as_str())
            .bind(app_id)
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter().map(|row| Ok((row.try_get("key")?, row.try_get("value")?))).collect()
    }

    /// Sets one attribute of the App ID, replacing its value if it has one.
    pub async fn set_app_metadata(
        &mut self,
        project_id: &ProjectId,
        app_id: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO app_metadata (project_id, app_id, key, value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (project_id, app_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(project_id.as_str())
        .bind(app_id)
        .bind(key)
        .bind(value)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}
