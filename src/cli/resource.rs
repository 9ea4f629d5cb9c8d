//! `outrigger component|subscription|resiliency|configuration|httpendpoint ...`: the five Dapr
//! resource kinds share routes and commands and differ only in the columns worth listing.

use clap::{Args, Subcommand};
use serde_json::Value;

use super::api::ApiClient;
use super::output::{cell, emit, OutputArgs, OutputFormat, Table};
use super::ProjectArg;

/// A Dapr resource kind as the control API serves it.
pub struct ResourceKind {
    /// Route segment: `/projects/{p}/{route}/{name}`.
    route: &'static str,
    /// What one of them is called in messages.
    noun: &'static str,
    /// Columns shown between NAME and SCOPES: a title and a JSON pointer into the document.
    columns: &'static [(&'static str, &'static str)],
}

pub const COMPONENTS: ResourceKind = ResourceKind {
    route: "components",
    noun: "component",
    columns: &[("TYPE", "/spec/type"), ("VERSION", "/spec/version")],
};
pub const SUBSCRIPTIONS: ResourceKind = ResourceKind {
    route: "subscriptions",
    noun: "subscription",
    columns: &[("PUBSUB", "/spec/pubsubname"), ("TOPIC", "/spec/topic"), ("API VERSION", "/apiVersion")],
};
pub const RESILIENCIES: ResourceKind = ResourceKind { route: "resiliencies", noun: "resiliency", columns: &[] };
pub const CONFIGURATIONS: ResourceKind = ResourceKind { route: "configurations", noun: "configuration", columns: &[] };
pub const HTTP_ENDPOINTS: ResourceKind =
    ResourceKind { route: "httpendpoints", noun: "HTTP endpoint", columns: &[("BASE URL", "/spec/baseUrl")] };

#[derive(Args, Debug)]
pub struct ResourceArgs {
    #[command(flatten)]
    project: ProjectArg,
    #[command(subcommand)]
    command: ResourceCommand,
}

#[derive(Subcommand, Debug)]
enum ResourceCommand {
    /// List them
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show one as its Dapr document (YAML unless -o says otherwise)
    Get {
        /// Name (metadata.name)
        name: String,
        /// Output format: the Dapr document as YAML or JSON, or a one-row table
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Yaml)]
        output: OutputFormat,
    },
    /// Delete one
    Delete {
        /// Name (metadata.name)
        name: String,
    },
}

pub async fn run(api: &ApiClient, kind: &ResourceKind, args: ResourceArgs) -> anyhow::Result<()> {
    let project = args.project.name()?;
    match args.command {
        ResourceCommand::List { output } => {
            let documents = api.get_all_items(&["projects", project, kind.route]).await?;
            emit(output.output, &documents, |answer| {
                Table::from_items(&kind.header(), answer, |document| kind.row(document))
            })
        }
        // The stored YAML comes from the server as is, rather than re-serialised from JSON.
        ResourceCommand::Get { name, output: OutputFormat::Yaml } => {
            let document = api.get_yaml(&["projects", project, kind.route, &name]).await?;
            print!("{document}");
            if !document.ends_with('\n') {
                println!();
            }
            Ok(())
        }
        ResourceCommand::Get { name, output } => {
            let document = api.get_json(&["projects", project, kind.route, &name]).await?;
            emit(output, &document, |document| Table::single(&kind.header(), document, |document| kind.row(document)))
        }
        ResourceCommand::Delete { name } => {
            api.delete(&["projects", project, kind.route, &name]).await?;
            println!("{} {name} deleted from project {project}", kind.noun);
            Ok(())
        }
    }
}

impl ResourceKind {
    fn header(&self) -> Vec<&'static str> {
        let titles = self.columns.iter().map(|&(title, _)| title);
        std::iter::once("NAME").chain(titles).chain(["SCOPES"]).collect()
    }

    fn row(&self, document: &Value) -> Vec<String> {
        let cells = self.columns.iter().map(|&(_, pointer)| cell(document, pointer));
        std::iter::once(cell(document, "/metadata/name")).chain(cells).chain([cell(document, "/scopes")]).collect()
    }
}
