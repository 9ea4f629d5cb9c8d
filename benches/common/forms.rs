//! The two forms a bench runs Outrigger in, started the same way for every bench: the embedded default (one
//! all-in-one process on SQLite) and the distributed form (`migrate`, then worker, gateway and control API on
//! a fresh PostgreSQL schema and NATS), with the options that choose them and the main function's runtime.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{bail, Context};

use super::cli;
use super::procs::Process;
use super::setup::{self, progress, random, server_env};

/// One of the two ways to run Outrigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `outrigger` with no subcommand: everything in one process, SQLite.
    Embedded,
    /// `outrigger gateway`, `worker` and `control-api` on PostgreSQL and NATS.
    Distributed,
}

impl Form {
    pub fn name(self) -> &'static str {
        match self {
            Form::Embedded => "embedded",
            Form::Distributed => "distributed",
        }
    }

    /// Its control-plane database, as the reports name it.
    pub fn database(self) -> &'static str {
        match self {
            Form::Embedded => "SQLite",
            Form::Distributed => "PostgreSQL",
        }
    }
}

/// The forms of a comma-separated list (`embedded,distributed` when not given), in that order.
pub fn parse_forms(list: Option<&str>) -> anyhow::Result<Vec<Form>> {
    let mut forms = Vec::new();
    for name in list.unwrap_or("embedded,distributed").split(',').map(str::trim).filter(|name| !name.is_empty()) {
        let form = match name {
            "embedded" => Form::Embedded,
            "distributed" => Form::Distributed,
            other => bail!("forms: unknown form '{other}' (embedded, distributed)"),
        };
        if !forms.contains(&form) {
            forms.push(form);
        }
    }
    forms.sort_by_key(|form| *form == Form::Distributed);
    if forms.is_empty() {
        bail!("forms: name at least one of embedded, distributed");
    }
    Ok(forms)
}

/// Where the distributed form's services are: BENCH_POSTGRES_URL and BENCH_NATS_URL, or the local ones
/// `scripts/services` starts.
#[derive(Clone, Debug)]
pub struct Services {
    pub postgres_url: String,
    pub nats_url: String,
}

impl Services {
    pub fn from_env() -> Services {
        Services {
            postgres_url: cli::env("BENCH_POSTGRES_URL")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
            nats_url: cli::env("BENCH_NATS_URL").unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned()),
        }
    }
}

/// A started form: its processes, its addresses and its operator token. Dropping it stops the processes,
/// then removes the data directory.
pub struct Running {
    pub form: Form,
    /// The all-in-one process; or the worker, the gateway and the control API, in that order.
    pub processes: Vec<Process>,
    pub control_api: String,
    pub dapr_http: String,
    pub dapr_grpc: String,
    pub admin_token: String,
    /// The distributed form's PostgreSQL schema and the `application_name` its connections carry.
    pub schema: Option<String>,
    pub application_name: Option<String>,
    // Declared last, so it is removed after the processes have stopped.
    _data_dir: tempfile::TempDir,
}

impl Running {
    /// Starts `form` from `binary` with `extra_env` added to every process. The distributed form's fresh
    /// schema is added to `schemas` before it is created, so that it is dropped whatever happens next.
    pub async fn start(
        form: Form,
        binary: &Path,
        services: &Services,
        schemas: &Mutex<Vec<String>>,
        extra_env: &[(&'static str, String)],
    ) -> anyhow::Result<Running> {
        let data_dir = tempfile::tempdir()?;
        let admin_token = random(32);
        let mut env = server_env(data_dir.path(), &admin_token);
        env.extend(extra_env.iter().cloned());
        match form {
            Form::Embedded => {
                progress("embedded: starting outrigger (all-in-one)");
                let (process, ready) = Process::start("outrigger (all-in-one)", binary, &[], &env)?;
                Ok(Running {
                    form,
                    processes: vec![process],
                    control_api: ready.control_api.context("the ready line has no control_api")?,
                    dapr_http: ready.dapr_http.context("the ready line has no dapr_http")?,
                    dapr_grpc: ready.dapr_grpc.context("the ready line has no dapr_grpc")?,
                    admin_token,
                    schema: None,
                    application_name: None,
                    _data_dir: data_dir,
                })
            }
            Form::Distributed => {
                let schema = format!("bench_{}", random(12).to_lowercase());
                if let Ok(mut schemas) = schemas.lock() {
                    schemas.push(schema.clone());
                }
                setup::postgres(&services.postgres_url, &format!("CREATE SCHEMA {schema}")).await?;
                // Names this form's database sessions in pg_stat_activity, so a bench can find their backends.
                let application_name = format!("outrigger-{schema}");
                let url = format!(
                    "{}&application_name={application_name}",
                    setup::in_schema(&services.postgres_url, &schema)
                );
                env.push(("OUTRIGGER_DATABASE_URL", url));
                env.push(("OUTRIGGER_NATS_URL", services.nats_url.clone()));
                env.push(("OUTRIGGER_BUS_SUBJECT_PREFIX", format!("bench{}", random(12).to_lowercase())));
                progress(format!("distributed: outrigger migrate (schema {schema})"));
                let (processes, ready) = setup::start_distributed(binary, &env)?;
                Ok(Running {
                    form,
                    processes,
                    dapr_http: ready[1].dapr_http.clone().context("the gateway's ready line has no dapr_http")?,
                    dapr_grpc: ready[1].dapr_grpc.clone().context("the gateway's ready line has no dapr_grpc")?,
                    control_api: ready[2]
                        .control_api
                        .clone()
                        .context("the control API's ready line has no control_api")?,
                    admin_token,
                    schema: Some(schema),
                    application_name: Some(application_name),
                    _data_dir: data_dir,
                })
            }
        }
    }

    /// An error naming the first process that is no longer running, with its last output.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for process in &mut self.processes {
            if !process.alive() {
                bail!("{} died: {}", process.name, process.output());
            }
        }
        Ok(())
    }

    /// Stops the processes: the gateway, the control API, then the worker (no call is in flight when the
    /// worker goes); answers a note for each that did not exit cleanly.
    pub fn stop(&mut self) -> Vec<String> {
        if self.processes.len() > 1 {
            self.processes.rotate_left(1);
        }
        let notes = setup::stop_all(&mut self.processes);
        if self.processes.len() > 1 {
            self.processes.rotate_right(1);
        }
        notes
    }
}

/// Drops `schemas` (the benches' fresh ones); answers what happened, each also as a progress line.
pub async fn drop_schemas(services: &Services, schemas: &Mutex<Vec<String>>) -> Vec<String> {
    let schemas = schemas.lock().map(|mut schemas| std::mem::take(&mut *schemas)).unwrap_or_default();
    let mut done = Vec::new();
    for schema in schemas {
        let line = setup::drop_schema(&services.postgres_url, &schema).await;
        progress(format!("cleanup: {line}"));
        done.push(line);
    }
    done
}

/// A bench's `main`: `run` on one scheduler thread ([`block_on`]), its error printed with its causes.
pub fn main_of(run: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    block_on(async {
        match run.await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Runs a bench's main future on one scheduler thread: the machine running benches is small, and the
/// processes under test need the cores more.
pub fn block_on(run: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(run),
        Err(err) => {
            eprintln!("error: building the runtime: {err}");
            ExitCode::FAILURE
        }
    }
}
