//! `state.postgresql`: the state table in a PostgreSQL database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;

use crate::boundary::Boundary;

use super::open::{Fields, OpenError};
use super::sql::{
    check_table_name, SqlDialect, SqlStateStore, DEFAULT_CLEANUP_INTERVAL, DEFAULT_TABLE_NAME, SQL_TABLE_FIELDS,
};
use super::sql_filter::JsonDialect;
use super::time::CONNECT_TIMEOUT;
use super::StateStore;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use outrigger_resources::{optional, required_secret, secret, BuildingBlock, ComponentType, MetadataField};

use crate::components::{Backend, Opener, Opening};

/// Connections one store keeps to its database at most.
const POOL_SIZE: u32 = 8;

/// PostgreSQL as a [`SqlDialect`].
#[derive(Debug)]
pub struct PostgresDialect;

impl SqlDialect for PostgresDialect {
    const COMPONENT_TYPE: &'static str = "state.postgresql";
    const JSON: JsonDialect = JsonDialect::Postgres;
    // The database's collation may not order by bytes; "C" does, and has an index of its own (below).
    const KEY_BYTEWISE: &'static str = "(key COLLATE \"C\")";

    fn create_table(table: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {table} \
             (key TEXT NOT NULL PRIMARY KEY, value BYTEA NOT NULL, etag TEXT NOT NULL, expires_at BIGINT)"
        )
    }

    /// An index in byte order, so that a query reads its prefix's range of keys and not the whole table.
    fn create_indexes(table: &str) -> Vec<String> {
        let name = table.rsplit('.').next().unwrap_or(table);
        vec![format!("CREATE INDEX IF NOT EXISTS {name}_key_bytewise ON {table} ((key COLLATE \"C\"))")]
    }

    fn scan_statement(inner: &str, candidate: Option<&str>) -> String {
        let Some(candidate) = candidate else {
            return format!(
                "SELECT key, etag, expires_at, size, CASE WHEN live THEN value END AS value FROM ({inner}) AS s \
                 ORDER BY (key COLLATE \"C\")"
            );
        };
        // The value is converted once per row (OFFSET 0 keeps the planner from copying the conversion into
        // every use of `j.d`).
        format!(
            "SELECT s.key, s.etag, s.expires_at, s.size, CASE WHEN s.live AND ({candidate}) THEN s.value END AS value \
             FROM ({inner}) AS s CROSS JOIN LATERAL \
             (SELECT CASE WHEN s.live THEN convert_from(s.value, 'UTF8')::jsonb END AS d OFFSET 0) AS j \
             ORDER BY (s.key COLLATE \"C\")"
        )
    }
}

/// Dapr's PostgreSQL state store.
pub type PostgresStateStore = SqlStateStore<PostgresDialect>;

/// Which database and table a [`PostgresStateStore`] uses (Dapr metadata `connectionString`, `tableName`,
/// `cleanupInterval`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresOptions {
    /// A `postgres://` URL or a libpq `key=value` string (`host=db user=dapr password=... dbname=state`).
    pub connection_string: String,
    /// The table, optionally `schema.table`; created when missing (the schema must exist).
    pub table_name: String,
    /// How often expired rows are deleted; `None` never.
    pub cleanup_interval: Option<Duration>,
}

impl PostgresOptions {
    /// Options with the default table name and cleanup interval.
    pub fn new(connection_string: impl Into<String>) -> PostgresOptions {
        PostgresOptions {
            connection_string: connection_string.into(),
            table_name: DEFAULT_TABLE_NAME.to_owned(),
            cleanup_interval: Some(DEFAULT_CLEANUP_INTERVAL),
        }
    }
}

/// The settings of a libpq `key=value` connection string; values may be single-quoted with `\` escapes.
fn key_value_settings(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut settings = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(settings);
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if name.is_empty() || chars.next() != Some('=') {
            return Err(format!("expected name=value, found '{name}'"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("the value of {name} lacks its closing quote")),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
        }
        settings.push((name, value));
    }
}

/// The sqlx URL of a Dapr PostgreSQL connection string: URLs pass through, `key=value` strings (the form
/// Dapr's docs show) become URL parameters.
pub(crate) fn database_url(component_type: &'static str, connection_string: &str) -> Result<String, OpenError> {
    if connection_string.starts_with("postgres://") || connection_string.starts_with("postgresql://") {
        return Ok(connection_string.to_owned());
    }
    let settings = key_value_settings(connection_string).map_err(|reason| OpenError::InvalidField {
        component_type,
        field: "connectionString",
        reason: format!("{reason}; give a postgres:// URL or key=value settings"),
    })?;
    let mut parameters = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in &settings {
        // pgx (daprd's driver) accepts `database` for libpq's `dbname`.
        let name = if name == "database" { "dbname" } else { name };
        parameters.append_pair(name, value);
    }
    Ok(format!("postgres://localhost/?{}", parameters.finish()))
}

/// The connection string to use: for a tenant's component a URL naming the address `boundary` checked (host
/// and port moved out of libpq parameters; Unix sockets refused, as they reach this host's own servers); the
/// operator's as given.
pub(crate) async fn pinned(
    component_type: &'static str,
    connection_string: &str,
    boundary: &Boundary,
) -> Result<String, OpenError> {
    if !boundary.is_confined() {
        return Ok(connection_string.to_owned());
    }
    let invalid = |reason: String| OpenError::InvalidField { component_type, field: "connectionString", reason };
    let mut url = url::Url::parse(&database_url(component_type, connection_string)?)
        .map_err(|err| invalid(format!("not a valid URL: {err}")))?;
    let (mut host, mut port) = (url.host_str().map(str::to_owned), url.port());
    let mut kept = Vec::new();
    for (name, value) in url.query_pairs() {
        match name.as_ref() {
            "host" | "hostaddr" => host = Some(value.into_owned()),
            "port" => port = Some(value.parse().map_err(|_| invalid(format!("'{value}' is not a port number")))?),
            _ => kept.push((name.into_owned(), value.into_owned())),
        }
    }
    let host = host.filter(|host| !host.is_empty()).ok_or_else(|| invalid("name the server's host".to_owned()))?;
    if host.starts_with('/') || host.contains(',') {
        return Err(invalid(
            "give one server by host name or address; Unix sockets and host lists are not reachable".to_owned(),
        ));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let address = boundary.host(component_type, "connectionString", host, port.unwrap_or(5432)).await?;
    let address = address.expect("a confined boundary pins every host");
    url.set_ip_host(address.ip()).map_err(|()| invalid("the URL cannot carry an address".to_owned()))?;
    url.set_port(Some(address.port())).map_err(|()| invalid("the URL cannot carry a port".to_owned()))?;
    url.query_pairs_mut().clear().extend_pairs(kept);
    if url.query() == Some("") {
        url.set_query(None);
    }
    Ok(url.to_string())
}

/// A pool, connecting on first use, on the PostgreSQL database a Dapr connection string names (a
/// `postgres://` URL or libpq `key=value` settings); `component_type` names the component in errors.
pub(crate) fn pool(component_type: &'static str, connection_string: &str) -> Result<AnyPool, OpenError> {
    let url = database_url(component_type, connection_string)?;
    sqlx::any::install_default_drivers();
    let connect_options = AnyConnectOptions::from_str(&url).map_err(|err| OpenError::InvalidField {
        component_type,
        field: "connectionString",
        reason: err.to_string(),
    })?;
    Ok(AnyPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_lazy_with(connect_options))
}

impl SqlStateStore<PostgresDialect> {
    /// A store that connects on first use and creates its table then: a database that is down when the
    /// component is loaded makes requests fail until it is back, not the component.
    pub async fn open(options: PostgresOptions) -> Result<PostgresStateStore, OpenError> {
        check_table_name(PostgresDialect::COMPONENT_TYPE, "tableName", &options.table_name, true)?;
        let pool = pool(PostgresDialect::COMPONENT_TYPE, &options.connection_string)?;
        Ok(PostgresStateStore::new(pool, &options.table_name, options.cleanup_interval))
    }
}

/// A pool, connecting on first use, on the database of a PostgreSQL component's `connectionString` (through the
/// egress rule of `boundary`): for the components that need PostgreSQL's own driver (the binding, the
/// configuration store).
pub(crate) async fn native_pool(
    component_type: &'static str,
    fields: &Fields<'_>,
    boundary: &Boundary,
    size: u32,
) -> Result<sqlx::PgPool, OpenError> {
    let given = fields.required(
        "connectionString",
        "a postgres://user:password@host:5432/database URL or 'host=... user=... dbname=...' settings",
    )?;
    let url = database_url(component_type, &pinned(component_type, given, boundary).await?)?;
    let options = sqlx::postgres::PgConnectOptions::from_str(&url)
        .map_err(|err| fields.invalid("connectionString", err.to_string()))?;
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_lazy_with(options))
}

/// The `timeout` (or `timeoutInSeconds`) of daprd's PostgreSQL binding and configuration store, if given.
pub(crate) fn statement_timeout(fields: &Fields<'_>) -> Result<Option<Duration>, OpenError> {
    match fields.get("timeout") {
        Some(_) => fields.duration("timeout", Duration::from_secs(1)),
        None => fields.duration("timeoutInSeconds", Duration::from_secs(1)),
    }
}

/// The statement timeout of daprd's PostgreSQL binding and configuration store.
pub(crate) const TIMEOUT_FIELDS: &[MetadataField] =
    &[optional("timeout").defaults_to("20s"), optional("timeoutInSeconds")];

/// The connection fields daprd's PostgreSQL components share (state store, binding, configuration store).
pub(crate) const POSTGRESQL_FIELDS: &[MetadataField] = &[
    required_secret("connectionString"),
    optional("maxConns"),
    optional("connectionMaxIdleTime"),
    optional("queryExecMode"),
    optional("host"),
    optional("hostaddr"),
    optional("port"),
    optional("database"),
    optional("user"),
    secret("password"),
    optional("sslRootCert"),
    optional("useAzureAD"),
    optional("useAWSIAM"),
    optional("awsAccessKey"),
    secret("awsSecretKey"),
];

/// `state.postgresql`: a table in a PostgreSQL database the egress rule lets the project reach.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(
        PostgresDialect::COMPONENT_TYPE,
        BuildingBlock::State,
        &[POSTGRESQL_FIELDS, SQL_TABLE_FIELDS],
    ),
    opener: Opener::State(open),
};

fn open(opening: Opening<'_>) -> BoxFuture<'_, Result<Arc<dyn StateStore>, OpenError>> {
    Box::pin(async move {
        let Opening { fields, boundary, .. } = opening;
        let given = fields.required(
            "connectionString",
            "a postgres://user:password@host:5432/database URL or 'host=... user=... dbname=...' settings",
        )?;
        let options = PostgresOptions {
            connection_string: pinned(PostgresDialect::COMPONENT_TYPE, given, boundary).await?,
            table_name: fields.get("tableName").unwrap_or(DEFAULT_TABLE_NAME).to_owned(),
            cleanup_interval: fields.cleanup_interval()?,
        };
        Ok(Arc::new(PostgresStateStore::open(options).await?) as _)
    })
}
