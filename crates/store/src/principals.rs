//! People and service accounts, the roles they hold in organizations and projects, and their API keys.
//!
//! A user exists once per installation and may hold roles in several organizations; a service account lives
//! in one. An API key acts as its owner inside one organization and is kept only as a SHA-256 (it is a
//! 256-bit random secret, like an App ID's token).

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::orgs::OrgId;
use crate::paging::{KeyColumn, Keyset, Value};
use crate::records::ProjectId;
use crate::{hash_token, now_millis, taken_or_failed, Error, Page, PageRequest, Result, Tx};

/// The internal identifier of a user or service account.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrincipalId(pub(crate) String);

impl PrincipalId {
    /// The identifier as text (members are named by it in the API).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An identifier given back by a caller or written into a token this installation signed: queries taking
    /// it find only what that principal holds.
    pub fn received(id: String) -> PrincipalId {
        PrincipalId(id)
    }
}

/// What a principal is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A person: signs in with an email and a password (or single sign-on).
    User,
    /// A machine identity of one organization: uses API keys only.
    ServiceAccount,
}

impl PrincipalKind {
    fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::ServiceAccount => "service_account",
        }
    }
}

/// A stored user or service account.
#[derive(Clone, Debug)]
pub struct Principal {
    /// Internal identifier.
    pub id: PrincipalId,
    /// User or service account.
    pub kind: PrincipalKind,
    /// A user's email (lower case).
    pub email: Option<String>,
    /// A service account's name; a user's email again.
    pub name: String,
    /// A user's argon2 password hash (PHC string); none for single sign-on users and service accounts.
    pub password_hash: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// What a role allows, from least to most: each allows everything the ones before it do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads everything but token values and withheld secrets.
    Viewer,
    /// Also manages App IDs, tokens, components and workflows.
    Developer,
    /// Also creates and deletes projects.
    Operator,
    /// Also manages members and API keys, and reads the audit trail.
    Admin,
}

impl Role {
    /// Every role, least first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Developer, Role::Operator, Role::Admin];

    /// The role's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The role a name stands for.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

/// The roles one principal holds in one organization.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// The role on the whole organization.
    pub org: Option<Role>,
    /// Roles on single projects.
    pub projects: BTreeMap<ProjectId, Role>,
}

impl Grants {
    /// The role the principal has on `project`: the higher of its organization role and its project role.
    pub fn on_project(&self, project: &ProjectId) -> Option<Role> {
        self.org.max(self.projects.get(project).copied())
    }

    /// Whether the principal holds any role in the organization.
    pub fn any(&self) -> bool {
        self.org.is_some() || !self.projects.is_empty()
    }
}

/// A member of an organization as listed: the principal and its roles there (project roles name the project).
#[derive(Clone, Debug)]
pub struct Member {
    /// Who.
    pub principal: Principal,
    /// The role on the organization, if any.
    pub org_role: Option<Role>,
    /// Roles on single projects, by project name.
    pub project_roles: Vec<(String, Role)>,
}

/// An API key as listed (never its secret).
#[derive(Clone, Debug)]
pub struct ApiKeyInfo {
    /// Identifier, for listing and revoking.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// Whose roles it carries.
    pub owner: PrincipalId,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds; none: it does not expire.
    pub expires_at: Option<i64>,
}

/// A newly made API key: the secret is in this value only.
#[derive(Clone, Debug)]
pub struct IssuedApiKey {
    /// How it is listed.
    pub info: ApiKeyInfo,
    /// The secret, shown once.
    pub key: String,
}

const PRINCIPAL_COLUMNS: &str = "id, kind, email, name, password_hash, created_at";

fn principal_from_row(row: &AnyRow) -> Result<Principal> {
    let kind: String = row.try_get("kind")?;
    Ok(Principal {
        id: PrincipalId(row.try_get("id")?),
        kind: if kind == PrincipalKind::ServiceAccount.as_str() {
            PrincipalKind::ServiceAccount
        } else {
            PrincipalKind::User
        },
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
    })
}

fn role_from_row(row: &AnyRow) -> Result<Role> {
    let name: String = row.try_get("role")?;
    Role::parse(&name).ok_or_else(|| Error::Corrupt {
        kind: "membership".to_owned(),
        name: name.clone(),
        reason: "unknown role".to_owned(),
    })
}

const API_KEY_COLUMNS: &str = "id, name, principal_id, created_at, expires_at";

fn api_key_from_row(row: &AnyRow) -> Result<ApiKeyInfo> {
    Ok(ApiKeyInfo {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        owner: PrincipalId(row.try_get("principal_id")?),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

const BY_ID: &[KeyColumn] = &[KeyColumn::Text("id")];

impl Tx {
    /// The user with this email (compared in lower case), if any.
    pub async fn user_by_email(&mut self, email: &str) -> Result<Option<Principal>> {
        let row = sqlx::query(&format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE email = $1"))
            .bind(email.to_lowercase())
            .fetch_optional(&mut *self.tx)
            .await?;
        row.as_ref().map(principal_from_row).transpose()
    }

    /// The principal with this identifier, if it still exists.
    pub async fn principal(&mut self, id: &PrincipalId) -> Result<Option<Principal>> {
        let row = sqlx::query(&format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE id = $1"))
            .bind(&id.0)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.as_ref().map(principal_from_row).transpose()
    }

    /// Creates a user; the email must be free.
    pub async fn create_user(&mut self, email: &str, password_hash: Option<&str>) -> Result<Principal> {
        let email = email.to_lowercase();
        let user = Principal {
            id: PrincipalId(crate::new_id("usr")),
            kind: PrincipalKind::User,
            email: Some(email.clone()),
            name: email.clone(),
            password_hash: password_hash.map(str::to_owned),
            created_at: now_millis(),
        };
        sqlx::query(
            "INSERT INTO principals (id, kind, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&user.id.0)
        .bind(user.kind.as_str())
        .bind(&email)
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(user.created_at)
        .execute(&mut *self.tx)
        .await
        .map_err(|err| taken_or_failed(err, "user", &email))?;
        Ok(user)
    }

    /// Creates a service account of `org`; its name must be free there.
    pub async fn create_service_account(&mut self, org: &OrgId, name: &str) -> Result<Principal> {
        let account = Principal {
            id: PrincipalId(crate::new_id("sva")),
            kind: PrincipalKind::ServiceAccount,
            email: None,
            name: name.to_owned(),
            password_hash: None,
            created_at: now_millis(),
        };
        sqlx::query("INSERT INTO principals (id, kind, name, org_id, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&account.id.0)
            .bind(account.kind.as_str())
            .bind(name)
            .bind(&org.0)
            .bind(account.created_at)
            .execute(&mut *self.tx)
            .await
            .map_err(|err| taken_or_failed(err, "service account", name))?;
        Ok(account)
    }

    /// Grants `role` on the organization (`project` none) or on one of its projects, replacing the role held there.
    pub async fn grant(
        &mut self,
        org: &OrgId,
        principal: &PrincipalId,
        project: Option<&ProjectId>,
        role: Role,
    ) -> Result<()> {
        let project = project.map_or("", ProjectId::as_str);
        sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND principal_id = $2 AND project_id = $3")
            .bind(&org.0)
            .bind(&principal.0)
            .bind(project)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(
            "INSERT INTO memberships (org_id, principal_id, project_id, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&org.0)
        .bind(&principal.0)
        .bind(project)
        .bind(role.as_str())
        .bind(now_millis())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Removes the principal's role on one project of `org`, or (`project` none) every role it holds there with
    /// its keys and sessions in the organization; a service account of the organization is removed entirely.
    /// Answers whether it held any of them.
    pub async fn revoke_membership(
        &mut self,
        org: &OrgId,
        principal: &PrincipalId,
        project: Option<&ProjectId>,
    ) -> Result<bool> {
        if let Some(project) = project {
            let removed =
                sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND principal_id = $2 AND project_id = $3")
                    .bind(&org.0)
                    .bind(&principal.0)
                    .bind(project.as_str())
                    .execute(&mut *self.tx)
                    .await?;
            return Ok(removed.rows_affected() > 0);
        }
        let removed = sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND principal_id = $2")
            .bind(&org.0)
            .bind(&principal.0)
            .execute(&mut *self.tx)
            .await?;
        for table in ["api_keys", "sessions"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE org_id = $1 AND principal_id = $2"))
                .bind(&org.0)
                .bind(&principal.0)
                .execute(&mut *self.tx)
                .await?;
        }
        sqlx::query("DELETE FROM principals WHERE org_id = $1 AND id = $2")
            .bind(&org.0)
            .bind(&principal.0)
            .execute(&mut *self.tx)
            .await?;
        Ok(removed.rows_affected() > 0)
    }

    /// The roles `principal` holds in `org`.
    pub async fn grants(&mut self, org: &OrgId, principal: &PrincipalId) -> Result<Grants> {
        let rows = sqlx::query("SELECT project_id, role FROM memberships WHERE org_id = $1 AND principal_id = $2")
            .bind(&org.0)
            .bind(&principal.0)
            .fetch_all(&mut *self.tx)
            .await?;
        let mut grants = Grants::default();
        for row in &rows {
            let project: String = row.try_get("project_id")?;
            let role = role_from_row(row)?;
            if project.is_empty() {
                grants.org = Some(role);
            } else {
                grants.projects.insert(ProjectId::of(project), role);
            }
        }
        Ok(grants)
    }

    /// A page of the organization's members, by principal identifier.
    pub async fn page_members(&mut self, org: &OrgId, request: &PageRequest) -> Result<Page<Member>> {
        let page = Keyset::new("principals", PRINCIPAL_COLUMNS, BY_ID)
            .filter("id IN (SELECT principal_id FROM memberships WHERE org_id = ?)", Value::Text(org.0.clone()))
            .page(self, request, principal_from_row)
            .await?;
        let mut members = Vec::with_capacity(page.items.len());
        for principal in page.items {
            members.push(self.member_roles(org, principal).await?);
        }
        Ok(Page { items: members, continuation: page.continuation })
    }

    /// The member with this identifier and its roles; `None` when it holds none in the organization.
    pub async fn member(&mut self, org: &OrgId, id: &PrincipalId) -> Result<Option<Member>> {
        let Some(principal) = self.principal(id).await? else { return Ok(None) };
        let member = self.member_roles(org, principal).await?;
        Ok((member.org_role.is_some() || !member.project_roles.is_empty()).then_some(member))
    }

    async fn member_roles(&mut self, org: &OrgId, principal: Principal) -> Result<Member> {
        let rows = sqlx::query(
            "SELECT m.role, p.name AS project FROM memberships m LEFT JOIN projects p ON p.id = m.project_id \
             WHERE m.org_id = $1 AND m.principal_id = $2 ORDER BY p.name",
        )
        .bind(&org.0)
        .bind(&principal.id.0)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut member = Member { principal, org_role: None, project_roles: Vec::new() };
        for row in &rows {
            let role = role_from_row(row)?;
            match row.try_get::<Option<String>, _>("project")? {
                Some(project) => member.project_roles.push((project, role)),
                None => member.org_role = Some(role),
            }
        }
        Ok(member)
    }

    /// The organization's service account with this name, if any.
    pub async fn service_account(&mut self, org: &OrgId, name: &str) -> Result<Option<Principal>> {
        let row = sqlx::query(&format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE org_id = $1 AND name = $2"))
            .bind(&org.0)
            .bind(name)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.as_ref().map(principal_from_row).transpose()
    }

    /// Makes an API key for `owner` in `org`, expiring at `expires_at` (Unix milliseconds) if given.
    pub async fn create_api_key(
        &mut self,
        org: &OrgId,
        owner: &PrincipalId,
        name: &str,
        expires_at: Option<i64>,
    ) -> Result<IssuedApiKey> {
        let key = crate::tokens::new_secret("ork_");
        let info = ApiKeyInfo {
            id: crate::new_id("key"),
            name: name.to_owned(),
            owner: owner.clone(),
            created_at: now_millis(),
            expires_at,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, principal_id, name, key_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&info.id)
        .bind(&org.0)
        .bind(&owner.0)
        .bind(name)
        .bind(hash_token(&key))
        .bind(info.created_at)
        .bind(expires_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(IssuedApiKey { info, key })
    }

    /// The owner and organization of a valid (unexpired, unrevoked) API key.
    pub async fn api_key_owner(&mut self, key: &str) -> Result<Option<(Principal, OrgId)>> {
        let row = sqlx::query(
            "SELECT p.id, p.kind, p.email, p.name, p.password_hash, p.created_at, k.org_id AS key_org \
             FROM api_keys k JOIN principals p ON p.id = k.principal_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $2)",
        )
        .bind(hash_token(key))
        .bind(now_millis())
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(|row| Ok((principal_from_row(&row)?, OrgId(row.try_get("key_org")?)))).transpose()
    }

    /// A page of the organization's API keys (of one owner, when given), by identifier.
    pub async fn page_api_keys(
        &mut self,
        org: &OrgId,
        owner: Option<&PrincipalId>,
        request: &PageRequest,
    ) -> Result<Page<ApiKeyInfo>> {
        let mut listing = Keyset::new("api_keys", API_KEY_COLUMNS, BY_ID)
            .filter("org_id = ?", Value::Text(org.0.clone()))
            .filter("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)", Value::Number(now_millis()));
        if let Some(owner) = owner {
            listing = listing.filter("principal_id = ?", Value::Text(owner.0.clone()));
        }
        listing.page(self, request, api_key_from_row).await
    }

    /// The organization's API key with this identifier (of one owner, when given).
    pub async fn api_key(&mut self, org: &OrgId, id: &str) -> Result<ApiKeyInfo> {
        let row = sqlx::query(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL"
        ))
        .bind(&org.0)
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?
        .ok_or_else(|| Error::NotFound { what: "API key", name: id.to_owned() })?;
        api_key_from_row(&row)
    }

    /// Revokes an API key of the organization at once.
    pub async fn revoke_api_key(&mut self, org: &OrgId, id: &str) -> Result<()> {
        sqlx::query("UPDATE api_keys SET revoked_at = $3 WHERE org_id = $1 AND id = $2")
            .bind(&org.0)
            .bind(id)
            .bind(now_millis())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}
