//! `outrigger config set|get|list|delete`: the items of a project's managed configuration store
//! (`configstore`), which its apps read and subscribe to with Dapr's configuration API.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::api::ApiClient;
use super::output::{cell, emit, OutputArgs, Table};
use super::ProjectArg;

/// The control API's collection of items.
const ROUTE: &str = "configuration-items";

#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(flatten)]
    project: ProjectArg,
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Set an item (apps subscribed to it receive the new value)
    Set {
        /// Item key
        key: String,
        /// Item value (not empty)
        value: String,
        /// An attribute apps read with the value, as NAME=VALUE; repeat for more
        #[arg(long = "metadata", value_name = "NAME=VALUE")]
        metadata: Vec<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show one item
    Get {
        /// Item key
        key: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List every item (every page of the listing)
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Delete an item (subscribed apps receive it as removed)
    Delete {
        /// Item key
        key: String,
    },
}

pub async fn run(api: &ApiClient, args: ConfigArgs) -> anyhow::Result<()> {
    let project = args.project.name()?;
    match args.command {
        ConfigCommand::Set { key, value, metadata, output } => {
            let mut attributes = Map::new();
            for entry in metadata {
                let (name, text) =
                    entry.split_once('=').with_context(|| format!("--metadata '{entry}' is not NAME=VALUE"))?;
                attributes.insert(name.to_owned(), text.into());
            }
            let body = json!({ "value": value, "metadata": attributes });
            let item = api.send_json(Method::PUT, &["projects", project, ROUTE, &key], &body).await?;
            emit(output.output, &item, |item| Table::single(COLUMNS, item, row))
        }
        ConfigCommand::Get { key, output } => {
            let item = api.get_json(&["projects", project, ROUTE, &key]).await?;
            emit(output.output, &item, |item| Table::single(COLUMNS, item, row))
        }
        ConfigCommand::List { output } => {
            let items = api.get_all_items(&["projects", project, ROUTE]).await?;
            emit(output.output, &items, |answer| Table::from_items(COLUMNS, answer, row))
        }
        ConfigCommand::Delete { key } => {
            api.delete(&["projects", project, ROUTE, &key]).await?;
            println!("configuration item {key} deleted from project {project}");
            Ok(())
        }
    }
}

const COLUMNS: &[&str] = &["KEY", "VALUE", "VERSION", "METADATA", "UPDATED"];

fn row(item: &Value) -> Vec<String> {
    let metadata = item["metadata"].as_object().map(|metadata| {
        metadata
            .iter()
            .map(|(name, value)| format!("{name}={}", value.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
    });
    vec![
        cell(item, "/key"),
        cell(item, "/value"),
        cell(item, "/version"),
        metadata.map_or_else(|| "-".to_owned(), |entries| entries.join(",")),
        cell(item, "/updatedAt"),
    ]
}
