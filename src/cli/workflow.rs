//! `outrigger workflow ...`: a project's workflow instances.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use super::api::ApiClient;
use super::output::{cell, emit, OutputArgs, OutputFormat, Table};
use super::ProjectArg;

#[derive(Args, Debug)]
pub struct WorkflowArgs {
    #[command(flatten)]
    project: ProjectArg,
    #[command(subcommand)]
    command: WorkflowCommand,
}

#[derive(Subcommand, Debug)]
enum WorkflowCommand {
    /// List the project's workflow instances, newest first
    List {
        /// Only instances run by this App ID
        #[arg(long)]
        app_id: Option<String>,
        /// Only instances of this workflow
        #[arg(long)]
        name: Option<String>,
        /// Only instances in these statuses, comma-separated (RUNNING, COMPLETED, FAILED, TERMINATED, PENDING,
        /// SUSPENDED, ...)
        #[arg(long)]
        status: Option<String>,
        /// Only instances created at or after this time (RFC 3339, e.g. 2026-11-21T09:00:00Z)
        #[arg(long)]
        created_from: Option<String>,
        /// Only instances created before this time (RFC 3339)
        #[arg(long)]
        created_to: Option<String>,
        /// Instances per page (1-1000) [server default: 100]
        #[arg(long)]
        limit: Option<u32>,
        /// Start after the previous page: the continuation token it printed
        #[arg(long)]
        continuation_token: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show one instance: status, input, output, failure and its history
    Get {
        /// Instance ID
        instance: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Terminate an instance and its child workflows; it ends at its next turn
    Terminate {
        /// Instance ID
        instance: String,
        /// Recorded as the instance's output (JSON; plain text is taken as a string)
        #[arg(long)]
        output: Option<String>,
        /// Leave its child workflows running
        #[arg(long)]
        non_recursive: bool,
    },
    /// Suspend a running instance: it receives nothing until resumed
    Suspend {
        /// Instance ID
        instance: String,
        /// Why, recorded in its history
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a suspended instance
    Resume {
        /// Instance ID
        instance: String,
        /// Why, recorded in its history
        #[arg(long)]
        reason: Option<String>,
    },
    /// Raise an external event on an instance (what `wait_for_external_event` waits for)
    RaiseEvent {
        /// Instance ID
        instance: String,
        /// Event name
        event: String,
        /// Event data (JSON; plain text is taken as a string)
        #[arg(long)]
        data: Option<String>,
    },
    /// Delete a finished instance, its history and its children
    Purge {
        /// Instance ID
        instance: String,
        /// Purge even if it has not finished (it stops wherever it is)
        #[arg(long)]
        force: bool,
    },
}

/// JSON given on the command line; anything that does not parse is a string.
fn json_or_text(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

pub async fn run(api: &ApiClient, args: WorkflowArgs) -> anyhow::Result<()> {
    let project = args.project.name()?;
    match args.command {
        WorkflowCommand::List { app_id, name, status, created_from, created_to, limit, continuation_token, output } => {
            let mut url = api.url(&["projects", project, "workflows"]);
            {
                let mut query = url.query_pairs_mut();
                let limit = limit.map(|limit| limit.to_string());
                let filters = [
                    ("appId", &app_id),
                    ("name", &name),
                    ("status", &status),
                    ("createdFrom", &created_from),
                    ("createdTo", &created_to),
                    ("limit", &limit),
                    ("continuationToken", &continuation_token),
                ];
                for (field, value) in filters {
                    if let Some(value) = value {
                        query.append_pair(field, value);
                    }
                }
            }
            let response = api.send(api.request(Method::GET, url)).await?;
            let page: Value = response.json().await.context("reading the control API's answer")?;
            emit(output.output, &page, |answer| Table::from_items(INSTANCE_COLUMNS, answer, instance_row))?;
            if output.output == OutputFormat::Table {
                if let Some(token) = page["continuationToken"].as_str() {
                    println!("\nmore instances: add --continuation-token {token}");
                }
            }
            Ok(())
        }
        WorkflowCommand::Get { instance, output } => {
            let detail = api.get_json(&["projects", project, "workflows", &instance]).await?;
            emit(output.output, &detail, detail_table)
        }
        WorkflowCommand::Terminate { instance, output, non_recursive } => {
            let body = json!({ "output": output.map(json_or_text), "recursive": !non_recursive });
            control(api, api.url(&["projects", project, "workflows", &instance, "terminate"]), &body).await?;
            println!("workflow instance {instance} terminated; it ends at its next turn");
            Ok(())
        }
        WorkflowCommand::Suspend { instance, reason } => {
            let url = api.url(&["projects", project, "workflows", &instance, "suspend"]);
            control(api, url, &json!({ "reason": reason })).await?;
            println!("workflow instance {instance} suspended");
            Ok(())
        }
        WorkflowCommand::Resume { instance, reason } => {
            let url = api.url(&["projects", project, "workflows", &instance, "resume"]);
            control(api, url, &json!({ "reason": reason })).await?;
            println!("workflow instance {instance} resumed");
            Ok(())
        }
        WorkflowCommand::RaiseEvent { instance, event, data } => {
            let body = json!({ "data": data.map(json_or_text) });
            let url = api.url(&["projects", project, "workflows", &instance, "events", &event]);
            control(api, url, &body).await?;
            println!("event {event} raised on workflow instance {instance}");
            Ok(())
        }
        WorkflowCommand::Purge { instance, force } => {
            let mut url = api.url(&["projects", project, "workflows", &instance]);
            if force {
                url.query_pairs_mut().append_pair("force", "true");
            }
            api.send(api.request(Method::DELETE, url)).await?;
            println!("workflow instance {instance} purged");
            Ok(())
        }
    }
}

/// POSTs an operator control; they answer 202 without a body.
async fn control(api: &ApiClient, url: reqwest::Url, body: &Value) -> anyhow::Result<()> {
    api.send(api.request(Method::POST, url).json(body)).await?;
    Ok(())
}

const INSTANCE_COLUMNS: &[&str] = &["INSTANCE ID", "NAME", "APP ID", "STATUS", "CREATED", "UPDATED"];

fn instance_row(instance: &Value) -> Vec<String> {
    vec![
        cell(instance, "/instanceId"),
        cell(instance, "/name"),
        cell(instance, "/appId"),
        cell(instance, "/status"),
        cell(instance, "/createdAt"),
        cell(instance, "/updatedAt"),
    ]
}

/// The instance's row, its payloads and its history, one event per row.
fn detail_table(detail: &Value) -> Table {
    let mut table = Table::new(&["", ""]);
    for (label, pointer) in [
        ("instance", "/instanceId"),
        ("workflow", "/name"),
        ("app ID", "/appId"),
        ("status", "/status"),
        ("created", "/createdAt"),
        ("updated", "/updatedAt"),
        ("completed", "/completedAt"),
        ("input", "/input"),
        ("output", "/output"),
        ("custom status", "/customStatus"),
        ("failure", "/failure/errorMessage"),
    ] {
        table.push(vec![label.to_owned(), cell(detail, pointer)]);
    }
    table.push(vec![String::new(), String::new()]);
    table.push(vec!["HISTORY".to_owned(), String::new()]);
    for event in detail["history"].as_array().into_iter().flatten() {
        let details = event["details"].as_object().map_or_else(String::new, |details| {
            details.iter().map(|(field, value)| format!("{field}={}", cell(value, ""))).collect::<Vec<_>>().join(" ")
        });
        table.push(vec![cell(event, "/kind"), format!("#{} {details}", cell(event, "/eventId"))]);
    }
    table
}
