//! Making tenants: in bulk straight into the control-plane database through the `outrigger-store` crate (the
//! same `Store`/`Tx` calls the control API makes, in batches, while the processes are stopped), and through
//! the REST control API with concurrent writers, whose latencies are the control-plane write figures.
//!
//! Every tenant is a project (managed `kvstore` and `pubsub`, pool `default`), one App ID `app` (with the
//! tenants' app as its `appEndpoint` unless endpoints are off), and one component `cache` (`state.in-memory`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use outrigger_resources::{parse_document, Document};
use outrigger_store::{AppIdentity, NewProject, Store};
use serde_json::{json, Value};

use crate::common::load::Latencies;
use crate::common::setup::{self, progress};

/// The App ID every project has.
pub const APP: &str = "app";
/// The component every project has, beside the managed ones.
pub const COMPONENT: &str = "cache";

/// The component's YAML, as the REST writers PUT it and the seeder parses it.
pub fn component_yaml() -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {COMPONENT}\nspec:\n  type: state.in-memory\n  \
         version: v1\n  metadata: []\n"
    )
}

/// One tenant: its project's name and its App ID's API token.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub project: String,
    pub token: String,
}

/// The name of the `index`th project (from 0).
pub fn project_name(index: usize) -> String {
    format!("t{index:06}")
}

/// Projects per seeding transaction.
const SEED_BATCH: usize = 500;

/// Creates projects `from..to` in the database at `url` through the store, in transactions of
/// [`SEED_BATCH`] (several at once on PostgreSQL), printing progress; answers the tenants and how long
/// it took.
pub async fn seed(
    url: &str,
    from: usize,
    to: usize,
    endpoint: Option<&str>,
) -> anyhow::Result<(Vec<Tenant>, Duration)> {
    let store = Store::connect(url).await.with_context(|| format!("connecting to the control plane at {url}"))?;
    let component = parse_document(component_yaml().as_bytes(), true)
        .map_err(|err| anyhow::anyhow!("the component: {err}"))?
        .normalize(outrigger_workers::component_types())
        .map_err(|err| anyhow::anyhow!("the component: {err}"))?;
    let component = Arc::new(component);
    let parallel = match store.engine() {
        outrigger_store::Engine::Sqlite => 1,
        outrigger_store::Engine::Postgres => 4,
    };
    let started = Instant::now();
    let total = to.saturating_sub(from);
    progress(format!("seeding {total} projects ({}..{}) through the store", project_name(from), project_name(to - 1)));
    let batches: Vec<(usize, usize)> =
        (from..to).step_by(SEED_BATCH).map(|start| (start, (start + SEED_BATCH).min(to))).collect();
    let mut results = futures_util::stream::iter(batches)
        .map(|(start, end)| {
            let (store, component) = (store.clone(), Arc::clone(&component));
            let endpoint = endpoint.map(str::to_owned);
            async move { seed_batch(&store, start, end, endpoint, &component).await }
        })
        .buffer_unordered(parallel);
    let mut tenants = Vec::with_capacity(total);
    let mut last_report = Instant::now();
    while let Some(batch) = results.next().await {
        tenants.extend(batch?);
        if last_report.elapsed() >= Duration::from_secs(5) || tenants.len() == total {
            last_report = Instant::now();
            let elapsed = started.elapsed().as_secs_f64();
            let rate = tenants.len() as f64 / elapsed.max(1e-9);
            let left = (total - tenants.len()) as f64 / rate.max(1e-9);
            progress(format!(
                "seeding: {} of {total} projects ({:.0}%, {rate:.0}/s, {elapsed:.0} s, ~{left:.0} s left)",
                tenants.len(),
                100.0 * tenants.len() as f64 / total.max(1) as f64
            ));
        }
    }
    drop(results);
    store.close().await;
    Ok((tenants, started.elapsed()))
}

/// One transaction: projects `start..end`, each with its App ID, component and change stamp, as the control
/// API writes them.
async fn seed_batch(
    store: &Store,
    start: usize,
    end: usize,
    endpoint: Option<String>,
    component: &Document,
) -> anyhow::Result<Vec<Tenant>> {
    let mut tx = store.begin().await?;
    let mut tenants = Vec::with_capacity(end - start);
    for index in start..end {
        let name = project_name(index);
        let new = NewProject {
            org_id: outrigger_store::OrgId::default_org(),
            name: name.clone(),
            managed_kvstore: true,
            managed_pubsub: true,
            pool: "default".into(),
        };
        let project = tx.create_project(&new).await.with_context(|| format!("creating project {name}"))?;
        let app = AppIdentity {
            name: APP.to_owned(),
            app_endpoint: endpoint.clone(),
            app_token: None,
            app_protocol: "http".to_owned(),
            app_health_check_path: None,
            config: None,
            created_at: 0,
            updated_at: 0,
        };
        let (_, token) = tx.create_app_id(&project.id, &app).await?;
        tx.put_resource(&project.id, component).await?;
        tx.touch_project(&project.id).await?;
        tenants.push(Tenant { project: name, token: token.token });
    }
    tx.commit().await?;
    Ok(tenants)
}

/// Which control-API write a latency is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    Project,
    AppId,
    Component,
}

impl Write {
    pub const ALL: [Write; 3] = [Write::Project, Write::AppId, Write::Component];

    pub fn name(self) -> &'static str {
        match self {
            Write::Project => "POST /projects",
            Write::AppId => "POST /projects/{p}/appids",
            Write::Component => "PUT /projects/{p}/components/{c}",
        }
    }
}

/// The latency of every control-API write of a phase.
#[derive(Default, Debug)]
pub struct Writes {
    samples: Vec<(Write, u64)>,
    pub elapsed: Duration,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Writes {
    fn record(&mut self, write: Write, latency: Duration) {
        self.samples.push((write, u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX)));
    }

    fn merge(&mut self, other: Writes) {
        self.samples.extend(other.samples);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// The latencies of one kind of write, or of all with `None`.
    pub fn latencies(&self, write: Option<Write>) -> Latencies {
        let mut latencies = Latencies::default();
        for (kind, nanos) in &self.samples {
            if write.is_none_or(|write| write == *kind) {
                latencies.record_ns(*nanos);
            }
        }
        latencies
    }
}

/// Creates projects `from..to` through the REST control API at `control_api` with `writers` concurrent
/// writers, each creating a project, its App ID and its component in turn; answers the tenants and the
/// latency of every write.
pub async fn through_api(
    control_api: &str,
    admin_token: &str,
    from: usize,
    to: usize,
    writers: usize,
    endpoint: Option<&str>,
) -> anyhow::Result<(Vec<Tenant>, Writes)> {
    let total = to.saturating_sub(from);
    progress(format!(
        "creating {total} projects ({}..{}) through the control API, {writers} concurrent writers",
        project_name(from),
        project_name(to - 1)
    ));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(from));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let api = format!("http://{control_api}/api/v1");
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let (next, done, api, admin_token) =
            (Arc::clone(&next), Arc::clone(&done), api.clone(), admin_token.to_owned());
        let endpoint = endpoint.map(str::to_owned);
        tasks.spawn(async move {
            let client = setup::keep_alive_client()?;
            let mut writes = Writes::default();
            let mut tenants = Vec::new();
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if index >= to {
                    break;
                }
                match create_tenant(&client, &api, &admin_token, index, endpoint.as_deref(), &mut writes).await {
                    Ok(tenant) => tenants.push(tenant),
                    Err(err) => {
                        writes.errors += 1;
                        writes.first_error.get_or_insert(format!("{err:#}"));
                    }
                }
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            anyhow::Ok((tenants, writes))
        });
    }
    let reporter = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let count = done.load(std::sync::atomic::Ordering::Relaxed);
                let elapsed = started.elapsed().as_secs_f64();
                progress(format!(
                    "control API: {count} of {total} projects ({:.0}/s, {elapsed:.0} s)",
                    count as f64 / elapsed.max(1e-9)
                ));
            }
        })
    };
    let mut tenants = Vec::with_capacity(total);
    let mut writes = Writes::default();
    while let Some(joined) = tasks.join_next().await {
        let (some, theirs) = joined.context("a writer failed")??;
        tenants.extend(some);
        writes.merge(theirs);
    }
    reporter.abort();
    writes.elapsed = started.elapsed();
    if tenants.is_empty() && total > 0 {
        bail!("no project could be created: {}", writes.first_error.unwrap_or_default());
    }
    Ok((tenants, writes))
}

/// POST the project, POST its App ID, PUT its component; each write's latency recorded.
async fn create_tenant(
    client: &reqwest::Client,
    api: &str,
    admin_token: &str,
    index: usize,
    endpoint: Option<&str>,
    writes: &mut Writes,
) -> anyhow::Result<Tenant> {
    let project = project_name(index);
    let started = Instant::now();
    let response =
        client.post(format!("{api}/projects")).bearer_auth(admin_token).json(&json!({"name": project})).send().await?;
    setup::expect_success(response, &format!("creating project {project}")).await?;
    writes.record(Write::Project, started.elapsed());

    let mut app = json!({"name": APP});
    if let Some(endpoint) = endpoint {
        app["appEndpoint"] = Value::String(endpoint.to_owned());
    }
    let started = Instant::now();
    let response =
        client.post(format!("{api}/projects/{project}/appids")).bearer_auth(admin_token).json(&app).send().await?;
    let body = setup::expect_success(response, &format!("creating App ID {APP} of {project}")).await?;
    writes.record(Write::AppId, started.elapsed());
    let created: Value = serde_json::from_str(&body)?;
    let token = created["apiToken"].as_str().context("the created App ID has no apiToken")?.to_owned();

    let started = Instant::now();
    let response = client
        .put(format!("{api}/projects/{project}/components/{COMPONENT}"))
        .bearer_auth(admin_token)
        .header(reqwest::header::CONTENT_TYPE, "application/yaml")
        .body(component_yaml())
        .send()
        .await?;
    setup::expect_success(response, &format!("creating component {COMPONENT} of {project}")).await?;
    writes.record(Write::Component, started.elapsed());
    Ok(Tenant { project, token })
}
