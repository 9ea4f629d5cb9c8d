//! Organizations: they own projects, and people hold roles in them. Every lookup of a project by name goes
//! through its organization ([`crate::Tx::project`]), so two organizations may each have a project `shop`.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::paging::{KeyColumn, Keyset, Value};
use crate::records::quota;
use crate::{now_millis, taken_or_failed, Error, Page, PageRequest, Result, Tx};

/// The internal identifier of an organization; like [`crate::ProjectId`], obtained by looking one up.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrgId(pub(crate) String);

impl OrgId {
    /// The organization every installation has, where projects made before organizations live and where the
    /// operator token works when no organization is named.
    pub fn default_org() -> OrgId {
        OrgId("org_default".to_owned())
    }

    /// The identifier as text (for logs and tokens' claims).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An identifier this installation wrote into a token it signed (a session's claim).
    pub fn received(id: String) -> OrgId {
        OrgId(id)
    }
}

/// Limits on an organization, set by the operator; `None` or `0` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrgQuotas {
    /// Projects the organization may have.
    pub projects: Option<u32>,
    /// App IDs all its projects may have together.
    pub app_ids: Option<u32>,
    /// Requests per second each of its App IDs may make, at most (a project's own quota may be lower).
    pub requests_per_second: Option<u32>,
}

/// A stored organization.
#[derive(Clone, Debug)]
pub struct Organization {
    /// Internal identifier.
    pub id: OrgId,
    /// Unique name (a DNS label).
    pub name: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// What the operator allows it.
    pub quotas: OrgQuotas,
}

const ORG_COLUMNS: &str = "id, name, created_at, quota_projects, quota_app_ids, quota_requests_per_second";

fn org_from_row(row: &AnyRow) -> Result<Organization> {
    Ok(Organization {
        id: OrgId(row.try_get("id")?),
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        quotas: OrgQuotas {
            projects: quota(row, "quota_projects")?,
            app_ids: quota(row, "quota_app_ids")?,
            requests_per_second: quota(row, "quota_requests_per_second")?,
        },
    })
}

const BY_NAME: &[KeyColumn] = &[KeyColumn::Text("name")];

impl Tx {
    /// Creates an organization; its name must be free.
    pub async fn create_org(&mut self, name: &str) -> Result<Organization> {
        let org = Organization {
            id: OrgId(crate::new_id("org")),
            name: name.to_owned(),
            created_at: now_millis(),
            quotas: OrgQuotas::default(),
        };
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&org.id.0)
            .bind(&org.name)
            .bind(org.created_at)
            .execute(&mut *self.tx)
            .await
            .map_err(|err| taken_or_failed(err, "organization", name))?;
        Ok(org)
    }

    /// Looks an organization up by name.
    pub async fn org(&mut self, name: &str) -> Result<Organization> {
        let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE name = $1"))
            .bind(name)
            .fetch_optional(&mut *self.tx)
            .await?
            .ok_or_else(|| Error::NotFound { what: "organization", name: name.to_owned() })?;
        org_from_row(&row)
    }

    /// Looks an organization up by its identifier.
    pub async fn org_by_id(&mut self, id: &OrgId) -> Result<Organization> {
        let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"))
            .bind(&id.0)
            .fetch_optional(&mut *self.tx)
            .await?
            .ok_or_else(|| Error::NotFound { what: "organization", name: id.0.clone() })?;
        org_from_row(&row)
    }

    /// A page of every organization, by name (for the operator).
    pub async fn page_orgs(&mut self, request: &PageRequest) -> Result<Page<Organization>> {
        Keyset::new("organizations", ORG_COLUMNS, BY_NAME).page(self, request, org_from_row).await
    }

    /// A page of the organizations `principal` holds a role in, by name.
    pub async fn page_orgs_of(
        &mut self,
        principal: &crate::PrincipalId,
        request: &PageRequest,
    ) -> Result<Page<Organization>> {
        Keyset::new("organizations", ORG_COLUMNS, BY_NAME)
            .filter("id IN (SELECT org_id FROM memberships WHERE principal_id = ?)", Value::Text(principal.0.clone()))
            .page(self, request, org_from_row)
            .await
    }

    /// Sets the organization's quotas.
    pub async fn set_org_quotas(&mut self, org: &OrgId, quotas: &OrgQuotas) -> Result<()> {
        sqlx::query(
            "UPDATE organizations SET quota_projects = $2, quota_app_ids = $3, quota_requests_per_second = $4 WHERE id = $1",
        )
        .bind(&org.0)
        .bind(quotas.projects.map(i64::from))
        .bind(quotas.app_ids.map(i64::from))
        .bind(quotas.requests_per_second.map(i64::from))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// How many projects the organization has, and how many App IDs they have together.
    pub async fn org_holdings(&mut self, org: &OrgId) -> Result<(u64, u64)> {
        let projects: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM projects WHERE org_id = $1")
            .bind(&org.0)
            .fetch_one(&mut *self.tx)
            .await?;
        let app_ids: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM app_ids WHERE project_id IN (SELECT id FROM projects WHERE org_id = $1)",
        )
        .bind(&org.0)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok((projects.max(0) as u64, app_ids.max(0) as u64))
    }

    /// Deletes an organization that has no projects left, with its members' roles, service accounts, keys and
    /// sessions; its audit trail stays until it expires.
    pub async fn delete_org(&mut self, org: &OrgId) -> Result<()> {
        for table in ["sessions", "api_keys", "memberships"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE org_id = $1")).bind(&org.0).execute(&mut *self.tx).await?;
        }
        sqlx::query("DELETE FROM principals WHERE org_id = $1").bind(&org.0).execute(&mut *self.tx).await?;
        sqlx::query("DELETE FROM organizations WHERE id = $1").bind(&org.0).execute(&mut *self.tx).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use crate::{OrgId, Store};

    /// An installation made before organizations keeps every row when it upgrades: SQLite rebuilds `projects`,
    /// which App IDs, tokens and documents reference with `ON DELETE CASCADE`.
    #[tokio::test]
    async fn upgrading_to_organizations_keeps_every_project_and_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let before = dir.path().join("before");
        std::fs::create_dir(&before).unwrap();
        let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite");
        for entry in std::fs::read_dir(&all).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name().to_string_lossy().as_ref() < "20261208000001" {
                std::fs::copy(entry.path(), before.join(entry.file_name())).unwrap();
            }
        }
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("control.db").display());
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::migrate::Migrator::new(before.as_path()).await.unwrap().run(&mut conn).await.unwrap();
        for statement in [
            "INSERT INTO projects (id, name, managed_kvstore, managed_pubsub, created_at, pool) VALUES ('prj_1', 'shop', 1, 1, 5, 'big')",
            "INSERT INTO app_ids (project_id, name, app_protocol, created_at, updated_at) VALUES ('prj_1', 'web', 'http', 5, 5)",
            "INSERT INTO api_tokens (id, project_id, app_name, token_hash, created_at) VALUES ('tok_1', 'prj_1', 'web', 'h', 5)",
            "INSERT INTO resources (project_id, kind, name, document, created_at, updated_at) VALUES ('prj_1', 'Component', 'c', \
             '{\"apiVersion\":\"dapr.io/v1alpha1\",\"kind\":\"Component\",\"metadata\":{\"name\":\"c\"},\"spec\":{\"type\":\"state.in-memory\",\"version\":\"v1\"}}', 5, 5)",
        ] {
            sqlx::query(statement).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();

        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let project = tx.project(&OrgId::default_org(), "shop").await.unwrap();
        assert_eq!((project.id.as_str(), project.pool.as_str(), project.created_at), ("prj_1", "big", 5));
        assert_eq!(tx.list_app_ids(&project.id).await.unwrap().len(), 1, "App IDs survive the rebuild");
        assert_eq!(tx.all_resources(&project.id).await.unwrap().len(), 1, "documents survive the rebuild");
        assert!(tx.token_owner("h").await.unwrap().is_some(), "tokens survive the rebuild");
        // Names are unique per organization now.
        let acme = tx.create_org("acme").await.unwrap();
        let new = crate::NewProject {
            org_id: acme.id,
            name: "shop".into(),
            managed_kvstore: true,
            managed_pubsub: true,
            pool: "default".into(),
        };
        tx.create_project(&new).await.unwrap();
        // And the foreign keys still hold: deleting the project takes what it holds.
        tx.delete_project(&project.id).await.unwrap();
        assert!(tx.token_owner("h").await.unwrap().is_none());
        tx.commit().await.unwrap();
    }
}
