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
    /// Show a project's quotas, or set them: a value given replaces the project's own, `default` returns that
    /// one to the installation's default, 0 is no limit; values not given stay as they are
    Quotas {
        /// Project name
        name: String,
        /// Requests per second each App ID may make
        #[arg(long, value_name = "N|default")]
        requests_per_second: Option<String>,
        /// App IDs the project may have
        #[arg(long, value_name = "N|default")]
        app_ids: Option<String>,
        /// Components the project may declare
        #[arg(long, value_name = "N|default")]
        components: Option<String>,
        /// Bytes (keys and values) the project may keep in its managed kvstore
        #[arg(long, value_name = "BYTES|default")]
        stored_bytes: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// The quotas as `PUT .../quotas` takes them: those set now, changed where a flag says (`default` removes one).
pub(super) fn changed_quotas<const N: usize>(
    mut set: Value,
    changes: [(&str, Option<String>); N],
) -> anyhow::Result<Value> {
    for (field, change) in changes {
        match change.as_deref() {
            None => {}
            Some("default") => {
                set.as_object_mut().map(|set| set.remove(field));
            }
            Some(number) => {
                let number: u64 = number
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--{field}: '{number}' is neither a whole number nor `default`"))?;
                set[field] = number.into();
            }
        }
    }
    Ok(set)
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
        ProjectCommand::Quotas { name, requests_per_second, app_ids, components, stored_bytes, output } => {
            let path = ["projects", name.as_str(), "quotas"];
            let mut quotas = api.get_json(&path).await?;
            let changes = [
                ("requestsPerSecond", requests_per_second),
                ("appIds", app_ids),
                ("components", components),
                ("storedBytes", stored_bytes),
            ];
            if changes.iter().any(|(_, change)| change.is_some()) {
                let body = changed_quotas(quotas["set"].take(), changes)?;
                quotas = api.send_json(Method::PUT, &path, &body).await?;
            }
            emit(output.output, &quotas, |quotas| {
                let mut table = Table::new(&["QUOTA", "SET", "IN FORCE"]);
                for field in ["requestsPerSecond", "appIds", "components", "storedBytes"] {
                    let effective = match quotas["effective"][field].as_u64() {
                        None | Some(0) => "no limit".to_owned(),
                        Some(limit) => limit.to_string(),
                    };
                    let set = quotas["set"][field].as_u64().map_or_else(|| "default".to_owned(), |set| set.to_string());
                    table.push(vec![field.to_owned(), set, effective]);
                }
                table
            })
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
