//! Where the API log is kept. On SQLite, in a database file of its own beside the control plane's
//! (`outrigger.db` keeps it in `outrigger-api-log.db`), on a connection of its own: the log writes a batch of
//! calls every second, or every thousand calls, and on the control plane's one connection each batch held up the
//! token lookups, changes and workflow steps queued behind it. On PostgreSQL its tables stay in the control-plane
//! database, whose pool has connections enough for both.
//!
//! A database made before the log had a file of its own has its log moved there once, when it is migrated.

use std::str::FromStr;

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, AnyPool};

use crate::{Result, Store};

static SQLITE_API_LOG_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite-api-log");

/// The API log's tables (which the control plane's SQLite database held before they moved).
const LOG_TABLES: [&str; 2] = ["api_call_blocks", "api_call_minutes"];

/// The URL of the API log's SQLite database beside the control plane's `url`: the same settings, `-api-log`
/// added to the file's name before its extension; in memory when the control plane's is. The file is made when
/// missing unless the settings say otherwise (an installation that names its control plane's file without
/// `mode=rwc` has no log file yet when it upgrades).
pub(crate) fn sqlite_url(url: &str) -> String {
    let (location, settings) =
        url.split_once('?').map_or((url, None), |(location, settings)| (location, Some(settings)));
    if location.ends_with(":memory:")
        || settings.is_some_and(|settings| settings.split('&').any(|s| s == "mode=memory"))
    {
        return "sqlite::memory:".to_owned();
    }
    // The file's name starts after the last `/`, or after the scheme's `:` (`sqlite:outrigger.db`).
    let name_start = location.rfind('/').or_else(|| location.find(':')).map_or(0, |at| at + 1);
    let (directory, name) = location.split_at(name_start);
    let renamed = match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{}-api-log{}", &name[..dot], &name[dot..]),
        _ => format!("{name}-api-log"),
    };
    match settings {
        Some(settings) if settings.split('&').any(|setting| setting.starts_with("mode=")) => {
            format!("{directory}{renamed}?{settings}")
        }
        Some(settings) => format!("{directory}{renamed}?{settings}&mode=rwc"),
        None => format!("{directory}{renamed}?mode=rwc"),
    }
}

/// The URL of the database the API log is kept in, for the control plane's `url`.
pub fn api_log_url(url: &str) -> String {
    if url.starts_with("sqlite:") {
        sqlite_url(url)
    } else {
        url.to_owned()
    }
}

/// The file a `sqlite:` URL names, for `ATTACH`.
fn sqlite_file(url: &str) -> &str {
    let location = url.split_once('?').map_or(url, |(location, _)| location);
    location.strip_prefix("sqlite://").or_else(|| location.strip_prefix("sqlite:")).unwrap_or(location)
}

/// The API log's database: its pool, and on SQLite its URL.
#[derive(Clone, Debug)]
pub(crate) struct ApiLogDb {
    pub(crate) pool: AnyPool,
    /// The SQLite database's URL; `None` where the log shares the control plane's (PostgreSQL).
    sqlite_url: Option<String>,
}

impl ApiLogDb {
    /// The log's own SQLite database beside the control plane's `url`.
    pub(crate) async fn sqlite_beside(url: &str) -> Result<ApiLogDb> {
        let url = sqlite_url(url);
        let pool = crate::sqlite_pool(AnyConnectOptions::from_str(&url)?).await?;
        Ok(ApiLogDb { pool, sqlite_url: Some(url) })
    }

    /// The control plane's own database (PostgreSQL).
    pub(crate) fn shared(pool: &AnyPool) -> ApiLogDb {
        ApiLogDb { pool: pool.clone(), sqlite_url: None }
    }

    /// Migrations of the log's own database, if it has one.
    fn migrator(&self) -> Option<&'static sqlx::migrate::Migrator> {
        self.sqlite_url.as_ref().map(|_| &SQLITE_API_LOG_MIGRATIONS)
    }
}

impl Store {
    /// Applies the log database's pending migrations, then moves a log the control plane's SQLite database still
    /// holds into it (`control` is the migration's connection to that database).
    pub(crate) async fn migrate_api_log(&self, control: &mut AnyConnection) -> Result<()> {
        let Some(migrator) = self.api_log.migrator() else { return Ok(()) };
        migrator.run(&self.api_log.pool).await?;
        let names = LOG_TABLES.map(|table| format!("'{table}'")).join(", ");
        let holds_log: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ({names})"
        ))
        .fetch_one(&mut *control)
        .await?;
        if holds_log == 0 {
            return Ok(());
        }
        let url = self.api_log.sqlite_url.as_deref().unwrap_or_default();
        // A log in memory is new with the process, as is the control plane's: there is nothing to move.
        let copy = !url.ends_with(":memory:");
        if copy {
            sqlx::query("ATTACH DATABASE $1 AS api_log").bind(sqlite_file(url)).execute(&mut *control).await?;
        }
        // A new database has the tables too (the control plane's migrations made them before the log moved),
        // empty: they go without a word.
        let moved = async {
            use sqlx::Connection;
            let mut tx = control.begin().await?;
            let mut rows = 0;
            if copy {
                // Keeping ids and keys makes a move that stopped half-way (each file commits on its own) safe to
                // run again.
                for table in LOG_TABLES {
                    let copied =
                        sqlx::query(&format!("INSERT OR IGNORE INTO api_log.{table} SELECT * FROM main.{table}"))
                            .execute(&mut *tx)
                            .await?;
                    rows += copied.rows_affected();
                }
            }
            for table in LOG_TABLES {
                sqlx::query(&format!("DROP TABLE IF EXISTS main.{table}")).execute(&mut *tx).await?;
            }
            tx.commit().await.map(|()| rows)
        }
        .await;
        if copy {
            sqlx::query("DETACH DATABASE api_log").execute(&mut *control).await?;
        }
        if moved? > 0 {
            tracing::info!(database = %url, "the API log moved to a database of its own");
        }
        Ok(())
    }

    /// How many of the log database's migrations it has not applied yet.
    pub(crate) async fn pending_api_log_migrations(&self) -> Result<usize> {
        match self.api_log.migrator() {
            Some(migrator) => crate::pending(migrator, &self.api_log.pool).await,
            None => Ok(0),
        }
    }

    /// A transaction on the API log's tables: listings and counts of calls, read apart from the control plane's.
    pub async fn begin_api_log(&self) -> Result<ApiLogTx> {
        Ok(ApiLogTx { tx: self.api_log.pool.begin().await? })
    }

    /// Forgets a deleted project's logged calls and counts (they are unreachable once it is gone, and would
    /// otherwise wait for their retention to end).
    pub async fn forget_api_log(&self, project: &crate::ProjectId) -> Result<()> {
        let mut tx = self.api_log.pool.begin().await?;
        for table in LOG_TABLES {
            sqlx::query(&format!("DELETE FROM {table} WHERE project_id = $1"))
                .bind(project.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A transaction over the API log's tables (listing calls, reading their counts). Dropped, it rolls back.
pub struct ApiLogTx {
    pub(crate) tx: sqlx::Transaction<'static, sqlx::Any>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_log_blocks::tests::call;
    use crate::{ApiCallFilter, CallBatch, Engine, PageRequest, ProjectId};

    /// An installation whose control-plane database holds the API log (as every one did before the log had a file
    /// of its own) finds its calls and counts in the log's file after migrating, and migrates again as a no-op.
    #[tokio::test]
    async fn a_log_kept_in_the_control_planes_database_moves_to_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("control.db").display());
        let project = ProjectId::received("prj_moved".to_owned());
        let now = crate::now_millis();
        sqlx::any::install_default_drivers();
        {
            let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
            // As `Store::migrate` runs them (a migration rebuilds tables others reference).
            sqlx::query("PRAGMA foreign_keys = OFF").execute(&pool).await.unwrap();
            crate::SQLITE_MIGRATIONS.run(&pool).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            let calls = [call("prj_moved", now - 2, "web", "state"), call("prj_moved", now - 1, "web", "state")];
            crate::api_log_blocks::insert(&mut tx, Engine::Sqlite, CallBatch::of(&calls).all()).await.unwrap();
            let counts = format!(
                "INSERT INTO api_call_minutes VALUES ('prj_moved', {}, 'web', 'state', 2, 0, 600{})",
                now - now % 60_000,
                ", 0".repeat(crate::BUCKET_COLUMNS.len())
            );
            sqlx::query(&counts).execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
            pool.close().await;
        }
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        assert_eq!(store.pending_migrations().await.unwrap(), 0);

        let mut log = store.begin_api_log().await.unwrap();
        let page = log.page_api_calls(&project, &ApiCallFilter::default(), &PageRequest::default()).await.unwrap();
        assert_eq!(page.items.iter().map(|call| call.at).collect::<Vec<_>>(), [now - 1, now - 2]);
        assert_eq!(log.api_call_total(&project, now - 120_000).await.unwrap(), 2);
        drop(log);
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'api_call%'")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(left, 0, "the control plane's database no longer holds the log");

        store.forget_api_log(&project).await.unwrap();
        let mut log = store.begin_api_log().await.unwrap();
        let page = log.page_api_calls(&project, &ApiCallFilter::default(), &PageRequest::default()).await.unwrap();
        assert!(page.items.is_empty());
        assert_eq!(log.api_call_total(&project, now - 120_000).await.unwrap(), 0);
        drop(log);
        store.close().await;
        assert!(dir.path().join("control-api-log.db").exists());
    }

    #[test]
    fn the_log_lies_beside_the_control_planes_file() {
        assert_eq!(sqlite_url("sqlite:///data/outrigger.db"), "sqlite:///data/outrigger-api-log.db?mode=rwc");
        assert_eq!(sqlite_url("sqlite:///tmp/x/control.db?mode=rwc"), "sqlite:///tmp/x/control-api-log.db?mode=rwc");
        assert_eq!(sqlite_url("sqlite:///d/c.db?cache=private"), "sqlite:///d/c-api-log.db?cache=private&mode=rwc");
        assert_eq!(sqlite_url("sqlite:///d/c.db?mode=ro"), "sqlite:///d/c-api-log.db?mode=ro");
        assert_eq!(sqlite_url("sqlite:outrigger.db"), "sqlite:outrigger-api-log.db?mode=rwc");
        assert_eq!(sqlite_url("sqlite://./state"), "sqlite://./state-api-log?mode=rwc");
        assert_eq!(sqlite_url("sqlite://./.hidden"), "sqlite://./.hidden-api-log?mode=rwc");
        assert_eq!(sqlite_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(sqlite_url("sqlite://data.db?mode=memory&cache=shared"), "sqlite::memory:");
        assert_eq!(sqlite_file("sqlite:///tmp/x/control-api-log.db?mode=rwc"), "/tmp/x/control-api-log.db");
        assert_eq!(sqlite_file("sqlite:outrigger-api-log.db"), "outrigger-api-log.db");
    }
}
