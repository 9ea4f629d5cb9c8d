//! Client subcommands: each one is a thin call to a control API route (docs/control-api.md) plus
//! output for people (tables) or scripts (`-o json|yaml`).

mod activity;
mod api;
mod apikey;
mod appid;
mod audit;
mod config_items;
mod credentials;
mod jobs;
mod manifests;
mod member;
mod org;
mod output;
mod project;
mod resource;
mod session;
mod sso;
mod workflow;

use anyhow::Context as _;
use clap::{Args, Subcommand};

/// Where the control API is, how to authenticate, and which organization to work in.
#[derive(Args, Debug, Clone)]
pub struct ConnectionArgs {
    /// Base URL of the control API [default: the one `outrigger login` signed in to, else http://127.0.0.1:8080]
    #[arg(long, env = "OUTRIGGER_URL", global = true)]
    pub url: Option<reqwest::Url>,

    /// Operator token for the control API. When absent the CLI uses the credential `outrigger login` stored,
    /// else reads <OUTRIGGER_DATA_DIR>/admin-token (default ./.outrigger/admin-token), the file the all-in-one
    /// server writes on its first start
    #[arg(long, env = "OUTRIGGER_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,

    /// Organization to work in [default: the one `outrigger org use` chose, else the credential's own: an API
    /// key's, the one signed in to, `default` for the operator token]
    #[arg(long, env = "OUTRIGGER_ORG", global = true)]
    pub org: Option<String>,
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
    /// Sign in with an email and password, or with an API key; later commands use the stored credential
    Login(session::LoginArgs),
    /// End the stored session and forget the stored credential and organization
    Logout,
    /// Show who the control API takes you for, in which organization, with which roles
    Whoami(session::WhoamiArgs),
    /// Create, list and delete organizations, set their quotas, and choose the one to work in (`org use`)
    #[command(subcommand)]
    Org(org::OrgCommand),
    /// Grant and remove roles in an organization, for users and service accounts
    #[command(subcommand)]
    Member(member::MemberCommand),
    /// Make, list and revoke API keys (credentials for scripts and CI, with their owner's roles)
    #[command(subcommand)]
    Apikey(apikey::ApiKeyCommand),
    /// Show an organization's audit trail: who changed what in the control plane, when and from where
    Audit(audit::AuditArgs),
}

/// Runs one client command against the control API.
pub async fn run(connection: ConnectionArgs, command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Login(args) => session::login(connection, args).await,
        ClientCommand::Logout => session::logout().await,
        command => run_connected(&session::connect(connection).await?, command).await,
    }
}

async fn run_connected(api: &api::ApiClient, command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Project(command) => project::run(api, command).await,
        ClientCommand::Appid(args) => appid::run(api, args).await,
        ClientCommand::Component(args) => resource::run(api, &resource::COMPONENTS, args).await,
        ClientCommand::Subscription(args) => resource::run(api, &resource::SUBSCRIPTIONS, args).await,
        ClientCommand::Resiliency(args) => resource::run(api, &resource::RESILIENCIES, args).await,
        ClientCommand::Configuration(args) => resource::run(api, &resource::CONFIGURATIONS, args).await,
        ClientCommand::Config(args) => config_items::run(api, args).await,
        ClientCommand::Job(args) => jobs::run(api, args).await,
        ClientCommand::Httpendpoint(args) => resource::run(api, &resource::HTTP_ENDPOINTS, args).await,
        ClientCommand::Apply(args) => manifests::apply(api, args).await,
        ClientCommand::Export(args) => manifests::export(api, args).await,
        ClientCommand::Workflow(args) => workflow::run(api, args).await,
        ClientCommand::Logs(args) => activity::logs(api, args).await,
        ClientCommand::Metrics(args) => activity::metrics(api, args).await,
        ClientCommand::Usage(args) => activity::usage(api, args).await,
        ClientCommand::Whoami(args) => session::whoami(api, args).await,
        ClientCommand::Org(command) => org::run(api, command).await,
        ClientCommand::Member(command) => member::run(api, command).await,
        ClientCommand::Apikey(command) => apikey::run(api, command).await,
        ClientCommand::Audit(args) => audit::run(api, args).await,
        ClientCommand::Login(_) | ClientCommand::Logout => unreachable!("run() signs in and out without connecting"),
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
