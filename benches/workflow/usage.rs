//! Where the CPU went during a run: each Outrigger process, the form's PostgreSQL backends (found by the
//! `application_name` its connections carry) and NATS server, the bench process (the Rust app), the Python
//! driver, and everything else on the machine (other load; the machine is shared). Also the PostgreSQL
//! schema's table statistics, which show how much each workflow made the database read.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{json, Value};
use sqlx::Row;

use crate::common::procs;
use crate::common::report::finite;

/// A process group measured during runs.
#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    pub pids: Vec<u32>,
    /// Outrigger processes, as opposed to the app, the driver and the backing services.
    pub outrigger: bool,
}

/// The PostgreSQL side of a distributed form: a connection to look at its sessions and tables.
pub struct Postgres {
    pub pool: sqlx::PgPool,
    pub application_name: String,
    pub schema: String,
}

impl Postgres {
    /// The backends serving the form's connections.
    async fn backends(&self) -> Vec<u32> {
        sqlx::query_scalar::<_, i32>("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
            .bind(&self.application_name)
            .fetch_all(&self.pool)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|pid| u32::try_from(pid).ok())
            .collect()
    }

    /// The schema's `wf_*` tables' counters now.
    async fn tables(&self) -> HashMap<String, Table> {
        let rows = sqlx::query(
            "SELECT relname::text AS name, COALESCE(seq_scan, 0) AS seq_scan, COALESCE(seq_tup_read, 0) AS seq_read, \
             COALESCE(idx_scan, 0) AS idx_scan, COALESCE(idx_tup_fetch, 0) AS idx_fetch, \
             n_tup_ins + n_tup_upd + n_tup_del AS written, n_live_tup AS live, n_dead_tup AS dead \
             FROM pg_stat_user_tables WHERE schemaname = $1 AND relname LIKE 'wf\\_%'",
        )
        .bind(&self.schema)
        .fetch_all(&self.pool)
        .await
        .unwrap_or_default();
        rows.iter()
            .filter_map(|row| {
                let number = |column: &str| row.try_get::<i64, _>(column).ok();
                let table = Table {
                    seq_scans: number("seq_scan")?,
                    seq_rows: number("seq_read")?,
                    index_scans: number("idx_scan")?,
                    index_rows: number("idx_fetch")?,
                    written: number("written")?,
                    live: number("live")?,
                    dead: number("dead")?,
                };
                Some((row.try_get::<String, _>("name").ok()?, table))
            })
            .collect()
    }

    /// The server's `autovacuum` setting.
    pub async fn autovacuum(&self) -> Option<String> {
        sqlx::query_scalar("SELECT current_setting('autovacuum')").fetch_one(&self.pool).await.ok()
    }
}

/// A table's statistics counters (or their change over a span, but for the row counts, which are the
/// end's): sequential scans and the rows they read, index scans and the rows they fetched, rows written
/// (inserted, updated, deleted), live and dead rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Table {
    pub seq_scans: i64,
    pub seq_rows: i64,
    pub index_scans: i64,
    pub index_rows: i64,
    pub written: i64,
    pub live: i64,
    pub dead: i64,
}

impl Table {
    fn since(self, then: Table) -> Table {
        Table {
            seq_scans: self.seq_scans - then.seq_scans,
            seq_rows: self.seq_rows - then.seq_rows,
            index_scans: self.index_scans - then.index_scans,
            index_rows: self.index_rows - then.index_rows,
            written: self.written - then.written,
            live: self.live,
            dead: self.dead,
        }
    }
}

/// CPU ticks of every pid of the groups (and the PostgreSQL backends), the machine's, at one instant.
pub struct Mark {
    at: Instant,
    ticks: HashMap<u32, u64>,
    backends: Vec<u32>,
    machine: Option<(u64, u64)>,
    tables: HashMap<String, Table>,
}

pub async fn mark(groups: &[Group], postgres: Option<&Postgres>) -> Mark {
    let (backends, tables) = match postgres {
        // The statistics collector publishes with a delay; a snapshot taken now is what it has.
        Some(postgres) => (postgres.backends().await, postgres.tables().await),
        None => (Vec::new(), HashMap::new()),
    };
    let mut ticks = HashMap::new();
    for pid in groups.iter().flat_map(|group| group.pids.iter()).chain(&backends) {
        if let Some(value) = procs::cpu_ticks(&pid.to_string()) {
            ticks.insert(*pid, value);
        }
    }
    Mark { at: Instant::now(), ticks, backends, machine: procs::machine_ticks(), tables }
}

/// Cores per group between two marks, and what the rest of the machine used.
#[derive(Clone, Debug, Default)]
pub struct Usage {
    pub groups: Vec<(String, f64, bool)>,
    pub postgres: Option<f64>,
    pub background: Option<f64>,
    /// Per `wf_*` table: what the span did to it.
    pub tables: Vec<(String, Table)>,
}

impl Usage {
    pub fn between(groups: &[Group], before: &Mark, after: &Mark) -> Usage {
        let ticks_per_second = procs::clock_ticks();
        let elapsed = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
        // A process that started meanwhile used all its ticks within the interval.
        let spent = |pid: &u32| {
            after
                .ticks
                .get(pid)
                .map_or(0, |after_ticks| after_ticks.saturating_sub(*before.ticks.get(pid).unwrap_or(&0)))
        };
        let cores = |ticks: u64| ticks as f64 / ticks_per_second / elapsed;
        let mut measured = 0;
        let mut usage = Usage::default();
        for group in groups {
            let ticks: u64 = group.pids.iter().map(spent).sum();
            measured += ticks;
            usage.groups.push((group.name.clone(), cores(ticks), group.outrigger));
        }
        if !after.backends.is_empty() {
            let ticks: u64 = after.backends.iter().map(spent).sum();
            measured += ticks;
            usage.postgres = Some(cores(ticks));
        }
        if let (Some((busy_before, _)), Some((busy_after, _))) = (before.machine, after.machine) {
            usage.background = Some(cores(busy_after.saturating_sub(busy_before).saturating_sub(measured)).max(0.0));
        }
        let mut tables: Vec<_> = after
            .tables
            .iter()
            .map(|(name, now)| (name.clone(), now.since(before.tables.get(name).copied().unwrap_or_default())))
            .collect();
        tables.sort();
        usage.tables = tables;
        usage
    }

    /// Cores of the Outrigger processes together.
    pub fn outrigger(&self) -> f64 {
        self.groups.iter().filter(|(_, _, outrigger)| *outrigger).map(|(_, cores, _)| cores).sum()
    }

    /// Cores of the group called `name`.
    pub fn of(&self, name: &str) -> Option<f64> {
        self.groups.iter().find(|(group, _, _)| group == name).map(|(_, cores, _)| *cores)
    }

    pub fn to_json(&self) -> Value {
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|(name, cores, outrigger)| json!({"process": name, "cores": finite(*cores), "outrigger": outrigger}))
            .collect();
        let tables: Vec<Value> = self
            .tables
            .iter()
            .map(|(name, table)| {
                json!({
                    "table": name, "seq_scan": table.seq_scans, "seq_tup_read": table.seq_rows,
                    "idx_scan": table.index_scans, "idx_tup_fetch": table.index_rows, "rows_written": table.written,
                    "live_rows": table.live, "dead_rows": table.dead,
                })
            })
            .collect();
        json!({
            "processes": groups,
            "postgres_backends_cores": self.postgres.and_then(finite),
            "background_cores": self.background.and_then(finite),
            "postgres_tables": tables,
        })
    }
}
