//! Setting up what a bench measures: progress lines, the environment of the Outrigger processes, the
//! distributed form's processes, PostgreSQL schemas, and calls to the control API.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::Value;

use super::load::REQUEST_TIMEOUT;
use super::procs::{self, Process, Ready};

/// One progress line on stderr, prefixed with the bench's name and the time since the first line.
pub fn progress(message: impl AsRef<str>) {
    static START: OnceLock<Instant> = OnceLock::new();
    let elapsed = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[{} {elapsed:6.1}s] {}", env!("CARGO_CRATE_NAME"), message.as_ref());
}

/// `length` random letters and digits.
pub fn random(length: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(length).map(char::from).collect()
}

/// A client for setup calls that keeps no connection open (so only the load connections are counted).
pub fn setup_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).timeout(Duration::from_secs(30)).build()?)
}

/// An HTTP/1.1 client holding at most one keep-alive connection, ignoring any proxy settings: one
/// load connection.
pub fn keep_alive_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(None)
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

/// The body of a 2xx answer; an error naming `what` otherwise.
pub async fn expect_success(response: reqwest::Response, what: &str) -> anyhow::Result<String> {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{what}: HTTP {status}: {body}");
    }
    Ok(body)
}

/// The port of a `host:port` address.
pub fn port_of(addr: &str) -> anyhow::Result<u16> {
    addr.rsplit(':').next().and_then(|port| port.parse().ok()).with_context(|| format!("no port in '{addr}'"))
}

/// The environment of every Outrigger process: ephemeral ports, JSON logs (for the ready line).
pub fn server_env(data_dir: &Path, admin_token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OUTRIGGER_DATA_DIR", data_dir.display().to_string()),
        ("OUTRIGGER_CONTROL_API_ADDR", "127.0.0.1:0".to_owned()),
        ("OUTRIGGER_HTTP_ADDR", "127.0.0.1:0".to_owned()),
        ("OUTRIGGER_GRPC_ADDR", "127.0.0.1:0".to_owned()),
        ("OUTRIGGER_LOG_FORMAT", "json".to_owned()),
        ("OUTRIGGER_LOG", "warn,outrigger::server=info".to_owned()),
        ("OUTRIGGER_ADMIN_TOKEN", admin_token.to_owned()),
    ]
}

/// Runs one statement on the PostgreSQL at `url`.
pub async fn postgres(url: &str, statement: &str) -> anyhow::Result<()> {
    let pool = sqlx::PgPool::connect(url)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {url} (scripts/services starts it)"))?;
    let outcome = sqlx::query(statement).execute(&pool).await;
    pool.close().await;
    outcome.with_context(|| statement.to_owned())?;
    Ok(())
}

/// Drops `schema` (a bench's fresh one) with everything in it; answers what happened, for the report.
pub async fn drop_schema(postgres_url: &str, schema: &str) -> String {
    match postgres(postgres_url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await {
        Ok(()) => format!("dropped schema {schema}"),
        Err(err) => format!("could not drop schema {schema}: {err:#}"),
    }
}

/// `postgres_url` with every connection's search path set to `schema`.
pub fn in_schema(postgres_url: &str, schema: &str) -> String {
    let separator = if postgres_url.contains('?') { '&' } else { '?' };
    format!("{postgres_url}{separator}options=-c%20search_path%3D{schema}")
}

/// The distributed form: `outrigger migrate`, then `worker`, `gateway` and `control-api` with `env`, in
/// that order, each with its ready line.
pub fn start_distributed(binary: &Path, env: &[(&str, String)]) -> anyhow::Result<(Vec<Process>, Vec<Ready>)> {
    start_distributed_with(binary, env, |name, args, env| Process::start(name, binary, args, env))
}

/// [`start_distributed`], each process started by `start` (for instance under callgrind).
pub fn start_distributed_with(
    binary: &Path,
    env: &[(&str, String)],
    start: impl Fn(&str, &[&str], &[(&str, String)]) -> anyhow::Result<(Process, Ready)>,
) -> anyhow::Result<(Vec<Process>, Vec<Ready>)> {
    let migrated = procs::command(binary, &["migrate"], env).output().context("running outrigger migrate")?;
    if !migrated.status.success() {
        bail!(
            "outrigger migrate: {}: {}{}",
            migrated.status,
            String::from_utf8_lossy(&migrated.stdout),
            String::from_utf8_lossy(&migrated.stderr)
        );
    }
    // The benchmark's apps listen on loopback, which the distributed form refuses to call by default.
    let mut env = env.to_vec();
    env.push(("OUTRIGGER_ALLOW_PRIVATE_ENDPOINTS", "true".to_owned()));
    let mut processes = Vec::new();
    let mut addresses = Vec::new();
    for (name, role) in [("worker", "worker"), ("gateway", "gateway"), ("control-api", "control-api")] {
        progress(format!("distributed: starting outrigger {role}"));
        let (process, ready) = start(name, &[role], &env)?;
        processes.push(process);
        addresses.push(ready);
    }
    Ok((processes, addresses))
}

/// Stops `processes` in order; answers a note for each that did not exit cleanly.
pub fn stop_all(processes: &mut [Process]) -> Vec<String> {
    let mut notes = Vec::new();
    for process in processes {
        let ended = process.stop();
        progress(format!("stopped {} (pid {}): {ended}", process.name, process.pid));
        if !ended.contains("exit status: 0") {
            notes.push(format!("{} stopped badly: {ended}", process.name));
        }
    }
    notes
}

/// The control API at `addr`, called with the admin token.
pub struct ControlApi {
    client: reqwest::Client,
    api: String,
    admin_token: String,
}

impl ControlApi {
    pub fn new(addr: &str, admin_token: &str) -> anyhow::Result<ControlApi> {
        Ok(ControlApi {
            client: setup_client()?,
            api: format!("http://{addr}/api/v1"),
            admin_token: admin_token.to_owned(),
        })
    }

    pub async fn create_project(&self, project: &str) -> anyhow::Result<()> {
        let response = self
            .client
            .post(format!("{}/projects", self.api))
            .bearer_auth(&self.admin_token)
            .json(&serde_json::json!({"name": project}))
            .send()
            .await?;
        expect_success(response, "creating the project").await?;
        Ok(())
    }

    /// Creates an App ID from `body` (at least its `name`) and answers its API token.
    pub async fn create_app(&self, project: &str, body: Value) -> anyhow::Result<String> {
        let response = self
            .client
            .post(format!("{}/projects/{project}/appids", self.api))
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .await?;
        let created: Value = serde_json::from_str(&expect_success(response, "creating the App ID").await?)?;
        Ok(created["apiToken"].as_str().context("the created App ID has no apiToken")?.to_owned())
    }

    /// Creates or replaces the resource `kind/name` (e.g. `components/redis-store`) from its YAML.
    pub async fn put_resource(&self, project: &str, kind: &str, name: &str, yaml: String) -> anyhow::Result<()> {
        let response = self
            .client
            .put(format!("{}/projects/{project}/{kind}/{name}", self.api))
            .bearer_auth(&self.admin_token)
            .header(reqwest::header::CONTENT_TYPE, "application/yaml")
            .body(yaml)
            .send()
            .await?;
        expect_success(response, &format!("creating the {name} {}", kind.trim_end_matches('s'))).await?;
        Ok(())
    }

    /// Sets an item of the project's managed configuration store `configstore`.
    pub async fn put_configuration_item(&self, project: &str, key: &str, value: &str) -> anyhow::Result<()> {
        let response = self
            .client
            .put(format!("{}/projects/{project}/configuration-items/{key}", self.api))
            .bearer_auth(&self.admin_token)
            .json(&serde_json::json!({"value": value}))
            .send()
            .await?;
        expect_success(response, "setting the configuration item").await?;
        Ok(())
    }
}
