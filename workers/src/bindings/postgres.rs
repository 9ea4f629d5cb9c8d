//! `bindings.postgresql` (daprd's `bindings.postgres`, under both names): runs the request's `sql` metadata with
//! its `params` (a JSON array for `$1`, `$2`, ...) on a PostgreSQL database the egress rule lets the project
//! reach. `exec` answers the affected row count in the `rows-affected` metadata, `query` the rows as a JSON array
//! of arrays; both add daprd's `operation`, `sql`, `start-time`, `end-time` and `duration` metadata. `close`
//! closes the component's connections in this worker, after which it answers "component is closed" as daprd's
//! does, until the component is loaded again.

mod values;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use futures_util::future::BoxFuture;
use outrigger_bus::BindingResponse;
use outrigger_resources::{BuildingBlock, ComponentType};
use sqlx::postgres::PgPool;
use sqlx::Executor;

use super::{BindingError, BindingRequest, OutputBinding};
use crate::components::{Backend, Opener, Opening};
use crate::state::connection::connection;
use crate::state::open::OpenError;
use crate::state::postgres::{native_pool, statement_timeout, POSTGRESQL_FIELDS, TIMEOUT_FIELDS};
use crate::state::time::within;

/// How long a statement may run when the component names no `timeout` (daprd's default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Connections per component and worker.
const POOL_SIZE: u32 = 4;

/// Dapr's PostgreSQL binding.
pub struct PostgresBinding {
    pool: PgPool,
    timeout: Duration,
    closed: AtomicBool,
}

impl PostgresBinding {
    /// The Dapr component type this binding serves (daprd registers `bindings.postgres` as an alias).
    pub const COMPONENT_TYPE: &'static str = "bindings.postgresql";
    /// daprd's other name for it.
    pub const ALIAS: &'static str = "bindings.postgres";

    async fn run(&self, operation: &str, sql: &str, params: &[serde_json::Value]) -> Result<Ran, BindingError> {
        let failed = |err: sqlx::Error| BindingError::Failed(format!("error executing query: {err}"));
        let mut connection = connection(&self.pool).await.map_err(failed)?;
        let described = connection.describe(sql).await.map_err(failed)?;
        let parameter_types = match described.parameters() {
            Some(sqlx::Either::Left(types)) => types.to_vec(),
            _ => Vec::new(),
        };
        let arguments = values::arguments(&parameter_types, params).map_err(BindingError::Failed)?;
        let statement = sqlx::query_with(sql, arguments);
        if operation == "exec" {
            let done = statement.execute(&mut *connection).await.map_err(failed)?;
            return Ok(Ran::Affected(done.rows_affected()));
        }
        let rows = statement.fetch_all(&mut *connection).await.map_err(failed)?;
        let rows = rows.iter().map(values::row_values).collect::<Result<Vec<_>, _>>().map_err(BindingError::Failed)?;
        Ok(Ran::Rows(serde_json::Value::Array(rows)))
    }
}

/// What a statement gave.
enum Ran {
    Affected(u64),
    Rows(serde_json::Value),
}

#[async_trait]
impl OutputBinding for PostgresBinding {
    fn operations(&self) -> &'static [&'static str] {
        &["exec", "query", "close"]
    }

    async fn invoke(&self, request: BindingRequest<'_>) -> Result<BindingResponse, BindingError> {
        if request.operation == "close" {
            if !self.closed.swap(true, Ordering::SeqCst) {
                self.pool.close().await;
            }
            return Ok(BindingResponse::default());
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err(BindingError::Failed("component is closed".into()));
        }
        let sql = request.metadata.get("sql").filter(|sql| !sql.is_empty());
        let sql = sql.ok_or_else(|| BindingError::Failed("required metadata not set: sql".into()))?;
        let params = match request.metadata.get("params").filter(|params| !params.is_empty()) {
            Some(text) => serde_json::from_str::<Vec<serde_json::Value>>(text).map_err(|err| {
                BindingError::Failed(format!(
                    "invalid metadata property params: failed to unserialize into an array: {err}"
                ))
            })?,
            None => Vec::new(),
        };
        let started = Utc::now();
        let clock = Instant::now();
        let ran =
            within(self.timeout, Self::COMPONENT_TYPE, self.run(request.operation, sql, &params), BindingError::Failed)
                .await?;
        let elapsed = clock.elapsed();
        let mut metadata = HashMap::from([
            ("operation".to_owned(), request.operation.to_owned()),
            ("sql".to_owned(), sql.clone()),
            ("start-time".to_owned(), started.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            ("end-time".to_owned(), (started + elapsed).to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            ("duration".to_owned(), go_duration(elapsed)),
        ]);
        let data = match ran {
            Ran::Affected(count) => {
                metadata.insert("rows-affected".to_owned(), count.to_string());
                Vec::new()
            }
            Ran::Rows(rows) => serde_json::to_vec(&rows).expect("JSON values serialize"),
        };
        Ok(BindingResponse { data, metadata: metadata.into_iter().collect() })
    }
}

/// A duration as Go's `time.Duration.String` writes it (`1.5ms`, `2m3.004s`), as daprd reports `duration`.
fn go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    let trimmed = |whole: u128, fraction: u128, digits: usize, unit: &str| {
        let fraction = format!("{fraction:0digits$}");
        let fraction = fraction.trim_end_matches('0');
        if fraction.is_empty() {
            format!("{whole}{unit}")
        } else {
            format!("{whole}.{fraction}{unit}")
        }
    };
    match nanos {
        0 => "0s".to_owned(),
        1..1_000 => format!("{nanos}ns"),
        1_000..1_000_000 => trimmed(nanos / 1_000, nanos % 1_000, 3, "µs"),
        1_000_000..1_000_000_000 => trimmed(nanos / 1_000_000, nanos % 1_000_000, 6, "ms"),
        _ => {
            let seconds = nanos / 1_000_000_000;
            let (hours, minutes) = (seconds / 3600, seconds / 60 % 60);
            let rest = trimmed(seconds % 60, nanos % 1_000_000_000, 9, "s");
            match (hours, minutes) {
                (0, 0) => rest,
                (0, _) => format!("{minutes}m{rest}"),
                _ => format!("{hours}h{minutes}m{rest}"),
            }
        }
    }
}

/// `bindings.postgresql`: a PostgreSQL database the egress rule lets the project reach.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(
        PostgresBinding::COMPONENT_TYPE,
        BuildingBlock::Bindings,
        &[POSTGRESQL_FIELDS, TIMEOUT_FIELDS],
    ),
    opener: Opener::Binding { output: Some(open), input: None },
};

/// `bindings.postgres`: the same binding under daprd's other name.
pub(crate) static ALIAS_BACKEND: Backend = Backend {
    declared: ComponentType::v1(PostgresBinding::ALIAS, BuildingBlock::Bindings, &[POSTGRESQL_FIELDS, TIMEOUT_FIELDS]),
    opener: Opener::Binding { output: Some(open), input: None },
};

fn open(opening: Opening<'_>) -> BoxFuture<'_, Result<Arc<dyn OutputBinding>, OpenError>> {
    Box::pin(async move {
        let Opening { fields, boundary, .. } = opening;
        let pool = native_pool(PostgresBinding::COMPONENT_TYPE, &fields, boundary, POOL_SIZE).await?;
        let timeout = statement_timeout(&fields)?.unwrap_or(DEFAULT_TIMEOUT);
        Ok(Arc::new(PostgresBinding { pool, timeout, closed: AtomicBool::new(false) }) as _)
    })
}

#[cfg(test)]
mod tests {
    use super::go_duration;
    use std::time::Duration;

    #[test]
    fn durations_read_as_go_writes_them() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_nanos(999)), "999ns");
        assert_eq!(go_duration(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(go_duration(Duration::from_micros(2_340)), "2.34ms");
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_millis(123_004)), "2m3.004s");
        assert_eq!(go_duration(Duration::from_secs(3_600)), "1h0m0s");
    }
}
