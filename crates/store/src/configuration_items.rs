//! Items of each project's managed configuration store: what operators set through the control API and apps
//! read and watch through Dapr's configuration API.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::paging::{KeyColumn, Keyset, Value};
use crate::{now_millis, Error, Page, PageRequest, ProjectId, Result, Tx};

/// One configuration item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigurationItem {
    /// Its key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// How many times the key was written, counting from 1.
    pub version: i64,
    /// Free-form attributes.
    pub metadata: BTreeMap<String, String>,
    /// When it was last written (Unix milliseconds).
    pub updated_at: i64,
}

const COLUMNS: &str = "key, value, version, metadata, updated_at";
const BY_KEY: &[KeyColumn] = &[KeyColumn::Text("key")];

fn item_from_row(row: &AnyRow) -> Result<ConfigurationItem> {
    let metadata: String = row.try_get("metadata")?;
    Ok(ConfigurationItem {
        key: row.try_get("key")?,
        value: row.try_get("value")?,
        version: row.try_get("version")?,
        metadata: serde_json::from_str(&metadata).unwrap_or_default(),
        updated_at: row.try_get("updated_at")?,
    })
}

impl Tx {
    // === configuration items ===

    /// The items of `keys` that exist, or every item of the project when `keys` is empty.
    pub async fn configuration_items(
        &mut self,
        project: &ProjectId,
        keys: &[String],
    ) -> Result<Vec<ConfigurationItem>> {
        let rows = if keys.is_empty() {
            sqlx::query(&format!("SELECT {COLUMNS} FROM configuration_items WHERE project_id = $1 ORDER BY key"))
                .bind(project.as_str())
                .fetch_all(&mut *self.tx)
                .await?
        } else {
            let placeholders: Vec<String> = (0..keys.len()).map(|index| format!("${}", index + 2)).collect();
            let sql = format!(
                "SELECT {COLUMNS} FROM configuration_items WHERE project_id = $1 AND key IN ({}) ORDER BY key",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(project.as_str());
            for key in keys {
                query = query.bind(key);
            }
            query.fetch_all(&mut *self.tx).await?
        };
        rows.iter().map(item_from_row).collect()
    }

    /// A page of the project's items, by key.
    pub async fn page_configuration_items(
        &mut self,
        project: &ProjectId,
        request: &PageRequest,
    ) -> Result<Page<ConfigurationItem>> {
        Keyset::new("configuration_items", COLUMNS, BY_KEY)
            .filter("project_id = ?", Value::Text(project.as_str().to_owned()))
            .page(self, request, item_from_row)
            .await
    }

    /// Sets an item, one version past the one it replaces; the item as stored.
    pub async fn set_configuration_item(
        &mut self,
        project: &ProjectId,
        key: &str,
        value: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<ConfigurationItem> {
        let metadata = serde_json::to_string(metadata).expect("string maps serialise to JSON");
        let row = sqlx::query(&format!(
            "INSERT INTO configuration_items (project_id, key, value, version, metadata, updated_at) \
             VALUES ($1, $2, $3, 1, $4, $5) \
             ON CONFLICT (project_id, key) DO UPDATE SET value = excluded.value, metadata = excluded.metadata, \
             updated_at = excluded.updated_at, version = configuration_items.version + 1 \
             RETURNING {COLUMNS}"
        ))
        .bind(project.as_str())
        .bind(key)
        .bind(value)
        .bind(&metadata)
        .bind(now_millis())
        .fetch_one(&mut *self.tx)
        .await?;
        item_from_row(&row)
    }

    /// Deletes an item.
    pub async fn delete_configuration_item(&mut self, project: &ProjectId, key: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM configuration_items WHERE project_id = $1 AND key = $2")
            .bind(project.as_str())
            .bind(key)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::NotFound { what: "configuration item", name: key.to_owned() });
        }
        Ok(())
    }
}
