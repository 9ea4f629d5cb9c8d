//! `outrigger project ...`

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::api::ApiClient;
use super::output::{cell, emit, OutputArgs, OutputFormat, Table};

#[derive(Subcommand, Debug)]
pub enum ProjectCommand {
    /// Create a project: a tenant with its own Dapr endpoints, App IDs and resources
    Create {
        /// Project name: a DNS label (1-63 of a-z, 0-9 and '-', starting and ending with a letter or digit)
        name: String,
        /// Do not give the project the managed state store component `kvstore`
        #[arg(long)]
        no_managed_kvstore: bool,
        /// Do not give the project the managed pub/sub component `pubsub`
        #[arg(long)]
        no_managed_pubsub: bool,
        /// Worker pool that serves the project (default: the server's `default` pool)
        #[arg(long, value_name = "POOL")]
        pool: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List all projects (every page of the listing)
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show one project and the Dapr endpoints its apps use
    Get {
        /// Project name
        name: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Delete a project and everything in it (App IDs, tokens, resources)
    Delete {
        /// Project name
        name: String,
    },
}

pub async fn run(api: &ApiClient, command: ProjectCommand) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create { name, no_managed_kvstore, no_managed_pubsub, pool, output } => {
            let mut body = json!({
                "name": name,
                "managedKvstore": !no_managed_kvstore,
                "managedPubsub": !no_managed_pubsub,
            });
            if let Some(pool) = pool {
                body["pool"] = pool.into();
            }
            let project = api.send_json(Method::POST, &["projects"], &body).await?;
            emit(output.output, &project, project_table)?;
            if output.output == OutputFormat::Table {
                println!();
                println!(
                    "Next: create an App ID for your app; it prints the API token and the Dapr environment to set:"
                );
                println!("  outrigger appid create APP_NAME --project {name}");
            }
            Ok(())
        }
        ProjectCommand::List { output } => {
            let projects = api.get_all_items(&["projects"]).await?;
            emit(output.output, &projects, |answer| Table::from_items(PROJECT_COLUMNS, answer, project_row))
        }
        ProjectCommand::Get { name, output } => {
            let project = api.get_json(&["projects", &name]).await?;
            emit(output.output, &project, project_table)
        }
        ProjectCommand::Delete { name } => {
            api.delete(&["projects", &name]).await?;
            println!("project {name} deleted, with everything in it");
            Ok(())
        }
    }
}

const PROJECT_COLUMNS: &[&str] = &["NAME", "DAPR HTTP ENDPOINT", "DAPR GRPC ENDPOINT", "MANAGED COMPONENTS", "CREATED"];

fn project_table(project: &Value) -> Table {
    Table::single(PROJECT_COLUMNS, project, project_row)
}

fn project_row(project: &Value) -> Vec<String> {
    let managed: Vec<String> = project["managedComponents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|component| format!("{} ({})", cell(component, "/name"), cell(component, "/type")))
        .collect();
    vec![
        cell(project, "/name"),
        cell(project, "/httpEndpoint"),
        cell(project, "/grpcEndpoint"),
        if managed.is_empty() { "-".to_owned() } else { managed.join(", ") },
        cell(project, "/createdAt"),
    ]
}
