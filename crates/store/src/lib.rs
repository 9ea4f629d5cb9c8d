//! Control-plane persistence.
//!
//! One set of queries runs on both engines through sqlx's `Any` driver: SQLite for the embedded default,
//! PostgreSQL for the distributed form. Every operation on a project's contents, here and in the workflow
//! engine's tables, takes the [`ProjectId`] first; a `ProjectId` comes from looking a project up (by name, by
//! a token, or carried from a process that did), never from a project's name, so no query can be handed a
//! name, an App ID or another string where the tenant's identifier belongs.

mod api_calls;
mod api_log_blocks;
mod api_log_db;
mod app_metadata;
mod audit;
mod changes;
mod configuration_items;
mod jobs;
mod oidc_logins;
mod orgs;
mod paging;
mod principals;
mod records;
mod resources;
mod sessions;
mod sign_in_failures;
mod streams;
mod tokens;

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};

use api_log_db::ApiLogDb;

pub use api_calls::{
    latency_bucket, ApiCall, ApiCallFilter, ApiCallMinute, CallDirection, CallSpan, Holdings, BUCKET_COLUMNS,
    LATENCY_BUCKETS_US,
};
pub use api_log_blocks::{CallBatch, Calls, LoggedCall, EXAMINED_PER_PAGE};
pub use api_log_db::{api_log_url, ApiLogTx};
pub use audit::{AuditEvent, AuditFilter};
pub use configuration_items::ConfigurationItem;
pub use jobs::{StoredJob, TryOutcome};
pub use oidc_logins::OidcLogin;
pub use orgs::{OrgId, OrgQuotas, Organization};
pub use paging::{Page, PageRequest, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
pub use principals::{ApiKeyInfo, Grants, IssuedApiKey, Member, Principal, PrincipalId, PrincipalKind, Role};
pub use records::{
    AppIdentity, AppIdentityChange, NewProject, Project, ProjectId, Quotas, RateQuota, StoredResource, TokenInfo,
    TokenOwner,
};
pub use sessions::{Refreshed, Session, SigningKey};
pub use sign_in_failures::SignInFailures;
pub use streams::StreamSubscription;
pub use tokens::{hash_token, new_secret, IssuedToken};

/// Failures of the control-plane store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named thing does not exist (or belongs to another project, which is answered the same way).
    #[error("{what} '{name}' not found")]
    NotFound { what: &'static str, name: String },
    /// A unique name is already taken.
    #[error("{what} '{name}' already exists")]
    AlreadyExists { what: &'static str, name: String },
    /// The database URL is not one this build understands.
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// A stored document no longer parses; the database was edited by hand or by a newer version.
    #[error("stored {kind} '{name}' is corrupt: {reason}")]
    Corrupt { kind: String, name: String, reason: String },
    /// A continuation token this listing did not give out (or from another listing).
    #[error("the continuation token is not one this listing gave out; start again without it")]
    InvalidContinuation,
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Result of store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which database engine backs the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The embedded default: one SQLite file.
    Sqlite,
    /// The distributed form.
    Postgres,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// The control-plane database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// Where the API log is kept (its own SQLite file, or this database).
    api_log: ApiLogDb,
    engine: Engine,
    connect_options: AnyConnectOptions,
}

/// The way into the workflow engine's tables, handed to `outrigger_workflow::Engine::new`: no other crate gets
/// a connection to the control-plane database.
pub struct WorkflowTables(AnyPool);

impl WorkflowTables {
    /// The connections, for the engine that owns these tables.
    pub fn into_pool(self) -> AnyPool {
        self.0
    }
}

/// A pool of one connection on a SQLite database. SQLite allows one writer; a single connection serialises
/// writes instead of failing deferred transactions with SQLITE_BUSY when two of them try to upgrade at once. It is
/// never closed for being idle or old, which keeps a database in memory alive.
pub(crate) async fn sqlite_pool(options: AnyConnectOptions) -> Result<AnyPool> {
    Ok(AnyPoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                // A commit is durable once it reached the OS: it survives a crash of the process (what the
                // embedded form guards against), not of the machine. Syncing every commit costs milliseconds on
                // common disks, and workflows commit several times per step (docs/decisions.md, "Embedded
                // durability").
                sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await?)
}

/// How many of `migrator`'s migrations the database behind `pool` has not applied yet.
pub(crate) async fn pending(migrator: &sqlx::migrate::Migrator, pool: &AnyPool) -> Result<usize> {
    // A database never migrated has no bookkeeping table; every migration is then pending.
    let applied: Vec<i64> =
        match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(pool).await {
            Ok(applied) => applied,
            Err(sqlx::Error::Database(db))
                if db.code().as_deref() == Some("42P01") || db.message().contains("no such table") =>
            {
                Vec::new()
            }
            Err(err) => return Err(err.into()),
        };
    Ok(migrator.iter().filter(|migration| !applied.contains(&migration.version)).count())
}

impl Store {
    /// Connects to `sqlite://…` or `postgres://…`. A SQLite file is created when missing.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Engine::Postgres
        } else {
            return Err(Error::UnsupportedUrl(url.to_owned()));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let (pool, api_log) = match engine {
            Engine::Sqlite => (sqlite_pool(options.clone()).await?, ApiLogDb::sqlite_beside(url).await?),
            Engine::Postgres => {
                let pool = AnyPoolOptions::new().max_connections(8).connect_with(options.clone()).await?;
                let api_log = ApiLogDb::shared(&pool);
                (pool, api_log)
            }
        };
        Ok(Store { pool, api_log, engine, connect_options: options })
    }

    /// The workflow engine's tables (`wf_*`), which migrate with the control plane's but are read and written
    /// by `outrigger-workflow` alone.
    pub fn workflow_tables(&self) -> WorkflowTables {
        WorkflowTables(self.pool.clone())
    }

    /// The engine behind this store.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.engine {
            Engine::Sqlite => &SQLITE_MIGRATIONS,
            Engine::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies pending migrations of this engine's set. SQLite's run on a connection of their own with foreign
    /// keys off (sqlx turns them on for every connection), so that a migration can rebuild a table that others
    /// reference, the only way SQLite changes a constraint, without dropping the table cascading into them; the
    /// keys are checked once the migrations are done.
    pub async fn migrate(&self) -> Result<()> {
        match self.engine {
            Engine::Sqlite => {
                use sqlx::Connection;
                let mut conn = sqlx::AnyConnection::connect_with(&self.connect_options).await?;
                // Outside any transaction: inside one SQLite ignores this pragma.
                sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut conn).await?;
                self.migrator().run(&mut conn).await?;
                let dangling = sqlx::query("PRAGMA foreign_key_check").fetch_all(&mut conn).await?;
                self.migrate_api_log(&mut conn).await?;
                conn.close().await?;
                if !dangling.is_empty() {
                    return Err(Error::Corrupt {
                        kind: "database".to_owned(),
                        name: "foreign keys".to_owned(),
                        reason: format!("{} rows reference rows that do not exist after migrating", dangling.len()),
                    });
                }
            }
            Engine::Postgres => self.migrator().run(&self.pool).await?,
        }
        Ok(())
    }

    /// How many of this engine's migrations the database (and the API log's, where it has its own) has not
    /// applied yet.
    pub async fn pending_migrations(&self) -> Result<usize> {
        Ok(pending(self.migrator(), &self.pool).await? + self.pending_api_log_migrations().await?)
    }

    /// Starts a transaction; every store operation runs inside one.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(Tx { tx: self.pool.begin().await? })
    }

    /// Closes the pools, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
        self.api_log.pool.close().await;
    }
}

/// A transaction over the control-plane tables. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
}

/// Now, in Unix milliseconds (the control plane's time stamps). Straight from the system clock: `chrono`'s
/// `Utc::now` works out the calendar date too (~230 instructions), and the API log asks at every call.
pub fn now_millis() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A unique-constraint violation (SQLite 2067/1555, PostgreSQL 23505) means the name is taken.
fn taken_or_failed(err: sqlx::Error, what: &'static str, name: &str) -> Error {
    match &err {
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("23505" | "2067" | "1555")) => {
            Error::AlreadyExists { what, name: name.to_owned() }
        }
        _ => err.into(),
    }
}

impl Tx {
    /// Makes the transaction's changes durable.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    // === projects ===

    /// Creates a project; its name must be free.
    pub async fn create_project(&mut self, new: &NewProject) -> Result<Project> {
        let project = Project {
            id: ProjectId::of(new_id("prj")),
            org_id: new.org_id.clone(),
            name: new.name.clone(),
            managed_kvstore: new.managed_kvstore,
            managed_pubsub: new.managed_pubsub,
            pool: new.pool.clone(),
            created_at: now_millis(),
            quotas: Quotas::default(),
        };
        sqlx::query(
            "INSERT INTO projects (id, org_id, name, managed_kvstore, managed_pubsub, pool, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(project.id.as_str())
        .bind(project.org_id.as_str())
        .bind(&project.name)
        .bind(i64::from(project.managed_kvstore))
        .bind(i64::from(project.managed_pubsub))
        .bind(&project.pool)
        .bind(project.created_at)
        .execute(&mut *self.tx)
        .await
        .map_err(|err| taken_or_failed(err, "project", &new.name))?;
        Ok(project)
    }

    /// Looks a project of the organization up by name, giving its [`ProjectId`].
    pub async fn project(&mut self, org: &OrgId, name: &str) -> Result<Project> {
        let row =
            sqlx::query(&format!("SELECT {} FROM projects WHERE org_id = $1 AND name = $2", records::PROJECT_COLUMNS))
                .bind(org.as_str())
                .bind(name)
                .fetch_optional(&mut *self.tx)
                .await?
                .ok_or_else(|| Error::NotFound { what: "project", name: name.to_owned() })?;
        records::project_from_row(&row)
    }

    /// Looks a project up by its identifier (for workers, which receive it from the gateway).
    pub async fn project_by_id(&mut self, id: &ProjectId) -> Result<Project> {
        let row = sqlx::query(&format!("SELECT {} FROM projects WHERE id = $1", records::PROJECT_COLUMNS))
            .bind(id.as_str())
            .fetch_optional(&mut *self.tx)
            .await?
            .ok_or_else(|| Error::NotFound { what: "project", name: id.as_str().to_owned() })?;
        records::project_from_row(&row)
    }

    /// Sets the project's quotas (`None`: the installation's default).
    pub async fn set_quotas(&mut self, project: &ProjectId, quotas: &Quotas) -> Result<()> {
        sqlx::query(
            "UPDATE projects SET quota_requests_per_second = $2, quota_app_ids = $3, quota_components = $4, \
             quota_stored_bytes = $5 WHERE id = $1",
        )
        .bind(project.as_str())
        .bind(quotas.requests_per_second.map(i64::from))
        .bind(quotas.app_ids.map(i64::from))
        .bind(quotas.components.map(i64::from))
        .bind(quotas.stored_bytes.map(|bytes| i64::try_from(bytes).unwrap_or(i64::MAX)))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Deletes a project and everything under it but its API log, which [`Store::forget_api_log`] removes once
    /// the deletion is committed.
    pub async fn delete_project(&mut self, project: &ProjectId) -> Result<()> {
        // Deleted child-first so the outcome does not depend on the engine enforcing cascades.
        for table in [
            "app_metadata",
            "configuration_items",
            "jobs",
            "stream_subscriptions",
            "wf_history",
            "wf_inbox",
            "wf_activities",
            "wf_instances",
            "api_tokens",
            "memberships",
            "resources",
            "app_ids",
            "projects",
        ] {
            let column = if table == "projects" { "id" } else { "project_id" };
            sqlx::query(&format!("DELETE FROM {table} WHERE {column} = $1"))
                .bind(project.as_str())
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    // === App IDs ===

    /// Registers an App ID in the project and issues its first API token.
    pub async fn create_app_id(
        &mut self,
        project: &ProjectId,
        app: &AppIdentity,
    ) -> Result<(AppIdentity, IssuedToken)> {
        let now = now_millis();
        sqlx::query(
            "INSERT INTO app_ids (project_id, name, app_endpoint, app_token, app_protocol, app_health_check_path, config, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(project.as_str())
        .bind(&app.name)
        .bind(&app.app_endpoint)
        .bind(&app.app_token)
        .bind(&app.app_protocol)
        .bind(&app.app_health_check_path)
        .bind(&app.config)
        .bind(now)
        .execute(&mut *self.tx)
        .await
        .map_err(|err| taken_or_failed(err, "App ID", &app.name))?;
        let token = self.insert_token(project, &app.name, now).await?;
        let stored = AppIdentity { created_at: now, updated_at: now, ..app.clone() };
        Ok((stored, token))
    }

    /// The project's App IDs, by name.
    pub async fn list_app_ids(&mut self, project: &ProjectId) -> Result<Vec<AppIdentity>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM app_ids WHERE project_id = $1 ORDER BY name",
            records::APP_ID_COLUMNS
        ))
        .bind(project.as_str())
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(records::app_identity_from_row).collect()
    }

    /// One App ID of the project.
    pub async fn app_id(&mut self, project: &ProjectId, name: &str) -> Result<AppIdentity> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM app_ids WHERE project_id = $1 AND name = $2",
            records::APP_ID_COLUMNS
        ))
        .bind(project.as_str())
        .bind(name)
        .fetch_optional(&mut *self.tx)
        .await?
        .ok_or_else(|| Error::NotFound { what: "App ID", name: name.to_owned() })?;
        records::app_identity_from_row(&row)
    }

    /// Applies a change to an App ID and returns the result.
    pub async fn update_app_id(
        &mut self,
        project: &ProjectId,
        name: &str,
        change: &AppIdentityChange,
    ) -> Result<AppIdentity> {
        let mut app = self.app_id(project, name).await?;
        change.apply_to(&mut app);
        app.updated_at = now_millis();
        sqlx::query(
            "UPDATE app_ids SET app_endpoint = $3, app_token = $4, app_protocol = $5, app_health_check_path = $6, config = $7, updated_at = $8 \
             WHERE project_id = $1 AND name = $2",
        )
        .bind(project.as_str())
        .bind(name)
        .bind(&app.app_endpoint)
        .bind(&app.app_token)
        .bind(&app.app_protocol)
        .bind(&app.app_health_check_path)
        .bind(&app.config)
        .bind(app.updated_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(app)
    }

    /// Deletes an App ID, its tokens and its extended metadata.
    pub async fn delete_app_id(&mut self, project: &ProjectId, name: &str) -> Result<()> {
        for statement in [
            "DELETE FROM api_tokens WHERE project_id = $1 AND app_name = $2",
            "DELETE FROM app_metadata WHERE project_id = $1 AND app_id = $2",
            // The App ID's jobs go with it: nothing is left to trigger.
            "DELETE FROM jobs WHERE project_id = $1 AND app_id = $2",
        ] {
            sqlx::query(statement).bind(project.as_str()).bind(name).execute(&mut *self.tx).await?;
        }
        let deleted = sqlx::query("DELETE FROM app_ids WHERE project_id = $1 AND name = $2")
            .bind(project.as_str())
            .bind(name)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::NotFound { what: "App ID", name: name.to_owned() });
        }
        Ok(())
    }

    // === API tokens ===

    async fn insert_token(&mut self, project: &ProjectId, app_name: &str, now: i64) -> Result<IssuedToken> {
        let issued = IssuedToken::generate(now);
        sqlx::query(
            "INSERT INTO api_tokens (id, project_id, app_name, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&issued.id)
        .bind(project.as_str())
        .bind(app_name)
        .bind(hash_token(&issued.token))
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(issued)
    }

    /// Issues a new token for an App ID; tokens that had no expiry now expire after `grace_seconds`.
    pub async fn rotate_token(
        &mut self,
        project: &ProjectId,
        app_name: &str,
        grace_seconds: u32,
    ) -> Result<IssuedToken> {
        self.app_id(project, app_name).await?;
        let now = now_millis();
        let expires_at = now + i64::from(grace_seconds) * 1000;
        sqlx::query(
            "UPDATE api_tokens SET expires_at = $3 WHERE project_id = $1 AND app_name = $2 AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(project.as_str())
        .bind(app_name)
        .bind(expires_at)
        .execute(&mut *self.tx)
        .await?;
        // Tokens past their expiry are dead weight: drop them so revocation and listing only see live ones.
        sqlx::query("DELETE FROM api_tokens WHERE project_id = $1 AND app_name = $2 AND expires_at <= $3")
            .bind(project.as_str())
            .bind(app_name)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        self.insert_token(project, app_name, now).await
    }

    /// The App ID's tokens that are still valid (never their secrets).
    pub async fn list_tokens(&mut self, project: &ProjectId, app_name: &str) -> Result<Vec<TokenInfo>> {
        self.app_id(project, app_name).await?;
        let rows = sqlx::query(
            "SELECT id, created_at, expires_at FROM api_tokens \
             WHERE project_id = $1 AND app_name = $2 AND (expires_at IS NULL OR expires_at > $3) ORDER BY created_at, id",
        )
        .bind(project.as_str())
        .bind(app_name)
        .bind(now_millis())
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(records::token_from_row).collect()
    }

    /// Revokes one token at once.
    pub async fn revoke_token(&mut self, project: &ProjectId, app_name: &str, token_id: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM api_tokens WHERE project_id = $1 AND app_name = $2 AND id = $3")
            .bind(project.as_str())
            .bind(app_name)
            .bind(token_id)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::NotFound { what: "token", name: token_id.to_owned() });
        }
        Ok(())
    }

    /// The owner of a live API token, from the token's hash: `None` when unknown, revoked or expired.
    pub async fn token_owner(&mut self, token_hash: &str) -> Result<Option<TokenOwner>> {
        let row = sqlx::query(
            "SELECT p.id, p.name, p.pool, p.quota_requests_per_second, o.quota_requests_per_second AS org_rate, \
             t.app_name FROM api_tokens t JOIN projects p ON p.id = t.project_id JOIN organizations o ON o.id = p.org_id \
             WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)",
        )
        .bind(token_hash)
        .bind(now_millis())
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(|row| {
            Ok(TokenOwner {
                project_id: ProjectId::of(row.try_get("id")?),
                project: row.try_get("name")?,
                pool: row.try_get("pool")?,
                app_id: row.try_get("app_name")?,
                rate: RateQuota {
                    project: records::quota(&row, "quota_requests_per_second")?,
                    org: records::quota(&row, "org_rate")?,
                },
            })
        })
        .transpose()
    }
}
