//! Client subcommands: each one is a thin call to a control API route (docs/control-api.md) plus
//! output for people (tables) or scripts (`-o json|yaml`).

mod activity;
mod api;
mod appid;
mod config_items;
mod jobs;
mod manifests;
mod output;
mod project;
mod resource;
mod workflow;

use std::io::ErrorKind;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};

/// Where the control API is and how to authenticate.
#[derive(Args, Debug, Clone)]
pub struct ConnectionArgs {
    /// Base URL of the control API
    #[arg(long, env = "OUTRIGGER_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub url: reqwest::Url,

    /// Operator token for the control API. When absent it is read from
    /// <OUTRIGGER_DATA_DIR>/admin-token (default ./.outrigger/admin-token), the file the all-in-one
    /// server writes on its first start
    #[arg(long, env = "OUTRIGGER_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
}

/// Commands that manage projects, App IDs and Dapr resources through the control API.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Create, list, show and delete projects (tenants with their own Dapr endpoints)
    #[command(subcommand)]
    Project(project::ProjectCommand),
    /// Manage a project's App IDs (the identities apps use to call the Dapr APIs) and their API tokens
    Appid(appid::AppIdArgs),
    /// List, show and delete a project's Dapr components (state stores, pub/sub brokers, bindings, ...)
    Component(resource::ResourceArgs),
    /// List, show and delete a project's declarative pub/sub subscriptions
    Subscription(resource::ResourceArgs),
    /// List, show and delete a project's resiliency policies
    Resiliency(resource::ResourceArgs),
    /// List, show and delete a project's Dapr configurations
    Configuration(resource::ResourceArgs),
    /// Set, show, list and delete the items of a project's managed configuration store (`configstore`)
    Config(config_items::ConfigArgs),
    /// List, show and delete the jobs an App ID scheduled (Dapr's jobs API), with their next and last fires
    Job(jobs::JobArgs),
    /// List, show and delete a project's HTTP endpoints (external services reachable by service invocation)
    Httpendpoint(resource::ResourceArgs),
    /// Create or update a project's App IDs and Dapr resources from YAML files, like `kubectl apply`
    Apply(manifests::ApplyArgs),
    /// Print or save a project's App IDs and Dapr resources as YAML that `apply` accepts
    Export(manifests::ExportArgs),
    /// List, inspect and control a project's workflow instances (terminate, suspend, resume, raise events, purge)
    Workflow(workflow::WorkflowArgs),
    /// Show the Dapr calls a project's App IDs made (its API log), filtered, or follow them as they arrive
    Logs(activity::LogsArgs),
    /// Show requests, error rates and latency percentiles per App ID and per API over a window
    Metrics(activity::MetricsArgs),
    /// Show what a project holds and how many calls it made this month
    Usage(activity::UsageArgs),
}

/// Runs one client command against the control API at `connection.url`.
pub async fn run(connection: ConnectionArgs, command: ClientCommand) -> anyhow::Result<()> {
    let token = match connection.token {
        Some(token) => token,
        None => token_from_data_dir()?,
    };
    let api = api::ApiClient::new(connection.url, token)?;
    match command {
        ClientCommand::Project(command) => project::run(&api, command).await,
        ClientCommand::Appid(args) => appid::run(&api, args).await,
        ClientCommand::Component(args) => resource::run(&api, &resource::COMPONENTS, args).await,
        ClientCommand::Subscription(args) => resource::run(&api, &resource::SUBSCRIPTIONS, args).await,
        ClientCommand::Resiliency(args) => resource::run(&api, &resource::RESILIENCIES, args).await,
        ClientCommand::Configuration(args) => resource::run(&api, &resource::CONFIGURATIONS, args).await,
        ClientCommand::Config(args) => config_items::run(&api, args).await,
        ClientCommand::Job(args) => jobs::run(&api, args).await,
        ClientCommand::Httpendpoint(args) => resource::run(&api, &resource::HTTP_ENDPOINTS, args).await,
        ClientCommand::Apply(args) => manifests::apply(&api, args).await,
        ClientCommand::Export(args) => manifests::export(&api, args).await,
        ClientCommand::Workflow(args) => workflow::run(&api, args).await,
        ClientCommand::Logs(args) => activity::logs(&api, args).await,
        ClientCommand::Metrics(args) => activity::metrics(&api, args).await,
        ClientCommand::Usage(args) => activity::usage(&api, args).await,
    }
}

/// Reads the operator token the all-in-one server generated on first start, so that a local
/// `outrigger project create` works without copying the token around. The data directory is the
/// server's setting (`OUTRIGGER_DATA_DIR`), read here rather than declared as a flag so that the
/// client does not claim an option name the server's own configuration may use.
fn token_from_data_dir() -> anyhow::Result<String> {
    let data_dir = std::env::var_os("OUTRIGGER_DATA_DIR").map_or_else(|| PathBuf::from(".outrigger"), PathBuf::from);
    let path = data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(contents) if !contents.trim().is_empty() => Ok(contents.trim().to_owned()),
        Ok(_) => bail!("{} is empty: set OUTRIGGER_TOKEN (or pass --token) to the operator token", path.display()),
        Err(error) if error.kind() == ErrorKind::NotFound => bail!(
            "no operator token: set OUTRIGGER_TOKEN (or pass --token); without it the token is read from {}, \
             which does not exist (set OUTRIGGER_DATA_DIR to the server's data directory)",
            path.display()
        ),
        Err(error) => Err(error).with_context(|| format!("reading the operator token from {}", path.display())),
    }
}

/// The project a project-scoped command works in.
#[derive(Args, Debug)]
pub struct ProjectArg {
    /// Project to work in
    #[arg(short, long = "project", env = "OUTRIGGER_PROJECT", global = true)]
    project: Option<String>,
}

impl ProjectArg {
    fn name(&self) -> anyhow::Result<&str> {
        self.project.as_deref().context(
            "no project given: pass --project/-p NAME or set OUTRIGGER_PROJECT (`outrigger project list` shows them)",
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// The client's part of the command line, as main.rs embeds it.
    #[derive(Parser)]
    struct Client {
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(subcommand)]
        command: ClientCommand,
    }

    #[test]
    fn command_line_definition_is_consistent() {
        Client::command().debug_assert();
    }
}
