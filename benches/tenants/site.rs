//! One form's installation, kept across restarts: its data directory, operator token and (distributed) its
//! PostgreSQL schema, so that the bench can stop the processes, seed projects straight into the control-plane
//! database, and start them again on the same data. The processes are started the way every bench starts
//! them (`common::setup`): the all-in-one alone, or `migrate` then worker, gateway and control API.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;

use crate::common::forms::{Form, Services};
use crate::common::procs::{Process, Watched};
use crate::common::setup::{self, progress, random, server_env};

/// A form's data, and its processes while they run.
pub struct Site {
    pub form: Form,
    pub admin_token: String,
    /// The distributed form's schema and the `application_name` its sessions carry.
    pub schema: Option<String>,
    pub application_name: Option<String>,
    env: Vec<(&'static str, String)>,
    services: Services,
    /// The all-in-one, or worker, gateway and control API; empty while stopped.
    pub processes: Vec<Process>,
    pub control_api: String,
    pub dapr_http: String,
    // Declared last, so it is removed after the processes have stopped.
    data_dir: tempfile::TempDir,
}

impl Site {
    /// A fresh installation of `form` (a new data directory; a new schema, recorded in `schemas` first so
    /// that it is dropped whatever happens next). Nothing runs yet.
    pub async fn create(
        form: Form,
        services: &Services,
        schemas: &Mutex<Vec<String>>,
        extra_env: &[(&'static str, String)],
    ) -> anyhow::Result<Site> {
        let data_dir = tempfile::tempdir()?;
        let admin_token = random(32);
        let mut env = server_env(data_dir.path(), &admin_token);
        env.extend(extra_env.iter().cloned());
        let (mut schema, mut application_name) = (None, None);
        if form == Form::Distributed {
            let name = format!("bench_{}", random(12).to_lowercase());
            if let Ok(mut schemas) = schemas.lock() {
                schemas.push(name.clone());
            }
            setup::postgres(&services.postgres_url, &format!("CREATE SCHEMA {name}")).await?;
            let application = format!("outrigger-{name}");
            let url = format!("{}&application_name={application}", setup::in_schema(&services.postgres_url, &name));
            env.push(("OUTRIGGER_DATABASE_URL", url));
            env.push(("OUTRIGGER_NATS_URL", services.nats_url.clone()));
            env.push(("OUTRIGGER_BUS_SUBJECT_PREFIX", format!("bench{}", random(12).to_lowercase())));
            schema = Some(name);
            application_name = Some(application);
        }
        Ok(Site {
            form,
            admin_token,
            schema,
            application_name,
            env,
            services: services.clone(),
            processes: Vec::new(),
            control_api: String::new(),
            dapr_http: String::new(),
            data_dir,
        })
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The control-plane database, as the processes reach it (the bench seeds through it).
    pub fn database_url(&self) -> String {
        match &self.schema {
            None => format!("sqlite://{}", self.data_dir().join("outrigger.db").display()),
            Some(schema) => setup::in_schema(&self.services.postgres_url, schema),
        }
    }

    /// The managed kvstore's database file (embedded form).
    pub fn kvstore_file(&self) -> PathBuf {
        self.data_dir().join("kvstore.db")
    }

    /// Starts the processes on the site's data.
    pub fn start(&mut self, binary: &Path) -> anyhow::Result<()> {
        anyhow::ensure!(self.processes.is_empty(), "{} is already running", self.form.name());
        match self.form {
            Form::Embedded => {
                progress("embedded: starting outrigger (all-in-one)");
                let (process, ready) = Process::start("outrigger (all-in-one)", binary, &[], &self.env)?;
                self.control_api = ready.control_api.context("the ready line has no control_api")?;
                self.dapr_http = ready.dapr_http.context("the ready line has no dapr_http")?;
                self.processes = vec![process];
            }
            Form::Distributed => {
                progress(format!("distributed: outrigger migrate (schema {})", self.schema.as_deref().unwrap_or("?")));
                let (processes, ready) = setup::start_distributed(binary, &self.env)?;
                self.dapr_http = ready[1].dapr_http.clone().context("the gateway's ready line has no dapr_http")?;
                self.control_api =
                    ready[2].control_api.clone().context("the control API's ready line has no control_api")?;
                self.processes = processes;
            }
        }
        Ok(())
    }

    pub fn running(&self) -> bool {
        !self.processes.is_empty()
    }

    /// Stops the processes (gateway, control API, then worker); answers a note for each that did not exit
    /// cleanly.
    pub fn stop(&mut self) -> Vec<String> {
        if self.processes.len() > 1 {
            self.processes.rotate_left(1);
        }
        let notes = setup::stop_all(&mut self.processes);
        self.processes.clear();
        notes
    }

    /// An error naming the first process that is no longer running, with its last output.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for process in &mut self.processes {
            if !process.alive() {
                anyhow::bail!("{} died: {}", process.name, process.output());
            }
        }
        Ok(())
    }

    /// The processes, for CPU and memory readings.
    pub fn watched(&self) -> Vec<Watched> {
        self.processes.iter().map(Watched::of).collect()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop();
    }
}
