//! Fresh databases for each scenario (a SQLite file in a temporary directory, opened as the binary opens its
//! `outrigger.db`; or a PostgreSQL schema, dropped at the end), the store on them, raw connections for what the
//! store has no call for (bulk fill, counts, baselines, EXPLAIN), and the CPU a timed phase used.

use std::str::FromStr;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::Context;
use outrigger_store::Store;
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::common::procs;
use crate::common::setup::{self, progress, random};

/// A control-plane database made for one scenario.
pub struct Database {
    pub url: String,
    pub schema: Option<String>,
    // Removed (with the SQLite files) when the database is dropped.
    _dir: Option<tempfile::TempDir>,
}

impl Database {
    /// A fresh SQLite file, or (`postgres_url` given) a fresh schema, remembered in `schemas` for the cleanup
    /// before it is created.
    pub async fn fresh(postgres_url: Option<&str>, schemas: &Mutex<Vec<String>>) -> anyhow::Result<Database> {
        match postgres_url {
            None => {
                let dir = tempfile::tempdir()?;
                // As `Config::database_url` names the embedded form's database.
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("outrigger.db").display());
                Ok(Database { url, schema: None, _dir: Some(dir) })
            }
            Some(postgres_url) => {
                let schema = format!("bench_{}", random(12).to_lowercase());
                if let Ok(mut schemas) = schemas.lock() {
                    schemas.push(schema.clone());
                }
                setup::postgres(postgres_url, &format!("CREATE SCHEMA {schema}")).await?;
                Ok(Database { url: setup::in_schema(postgres_url, &schema), schema: Some(schema), _dir: None })
            }
        }
    }

    pub fn postgres(&self) -> bool {
        self.schema.is_some()
    }

    /// The store on this database, migrated, as the binary opens it.
    pub async fn store(&self) -> anyhow::Result<Store> {
        let store = Store::connect(&self.url).await.with_context(|| format!("connecting the store to {}", self.url))?;
        store.migrate().await.context("migrating the store")?;
        Ok(store)
    }

    /// A connection pool of its own on the API log's database (its own file on SQLite), through the store's `Any`
    /// driver, as the store reads it.
    pub async fn api_log_pool(&self, connections: u32) -> anyhow::Result<sqlx::AnyPool> {
        sqlx::any::install_default_drivers();
        let url = outrigger_store::api_log_url(&self.url);
        Ok(sqlx::any::AnyPoolOptions::new().max_connections(connections).connect(&url).await?)
    }

    /// The calls the API log holds.
    pub async fn logged_calls(&self) -> anyhow::Result<u64> {
        let pool = self.api_log_pool(1).await?;
        let count: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) FROM api_call_blocks")
            .fetch_one(&pool)
            .await?;
        pool.close().await;
        Ok(u64::try_from(count).unwrap_or_default())
    }
}

/// A SQLite pool of one connection to `url`, set up as the store sets up its own (WAL, `synchronous = NORMAL`).
pub async fn sqlite_pool(url: &str) -> anyhow::Result<sqlx::SqlitePool> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true);
    Ok(SqlitePoolOptions::new().max_connections(1).connect_with(options).await?)
}

/// Drops the schemas made so far; answers what happened.
pub async fn drop_schemas(postgres_url: &str, schemas: &Mutex<Vec<String>>) -> Vec<String> {
    let schemas = schemas.lock().map(|mut schemas| std::mem::take(&mut *schemas)).unwrap_or_default();
    let mut done = Vec::new();
    for schema in schemas {
        let line = setup::drop_schema(postgres_url, &schema).await;
        progress(format!("cleanup: {line}"));
        done.push(line);
    }
    done
}

fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(procs::clock_ticks)
}

/// CPU over a timed phase: this process, and the rest of the machine (the PostgreSQL server, other work).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUse {
    pub bench_cores: f64,
    pub other_cores: f64,
}

impl CpuUse {
    pub fn to_json(self) -> Value {
        json!({"bench_process_cores": self.bench_cores, "rest_of_machine_cores": self.other_cores})
    }
}

pub struct CpuMeter {
    own: Option<u64>,
    machine: Option<(u64, u64)>,
    started: Instant,
}

impl CpuMeter {
    pub fn start() -> CpuMeter {
        CpuMeter { own: procs::cpu_ticks("self"), machine: procs::machine_ticks(), started: Instant::now() }
    }

    pub fn stop(self) -> CpuUse {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        let ticks = ticks_per_second();
        let own = match (self.own, procs::cpu_ticks("self")) {
            (Some(before), Some(after)) => after.saturating_sub(before) as f64 / ticks,
            _ => f64::NAN,
        };
        let machine = match (self.machine, procs::machine_ticks()) {
            (Some((before, _)), Some((after, _))) => after.saturating_sub(before) as f64 / ticks,
            _ => f64::NAN,
        };
        CpuUse { bench_cores: own / seconds, other_cores: ((machine - own) / seconds).max(0.0) }
    }
}
