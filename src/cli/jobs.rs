//! `outrigger job list|get|delete --project P --app A`: the jobs an App ID scheduled through Dapr's jobs API,
//! with their next and last fires and failures.

use clap::{Args, Subcommand};
use serde_json::Value;

use super::api::ApiClient;
use super::output::{cell, emit, OutputArgs, Table};
use super::ProjectArg;

#[derive(Args, Debug)]
pub struct JobArgs {
    #[command(flatten)]
    project: ProjectArg,
    /// The App ID whose jobs these are
    #[arg(short, long, global = true)]
    app: Option<String>,
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(Subcommand, Debug)]
enum JobCommand {
    /// List the App ID's jobs (every page of the listing)
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show one job and what became of it
    Get {
        /// Job name
        name: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Delete a job: it fires no more
    Delete {
        /// Job name
        name: String,
    },
}

pub async fn run(api: &ApiClient, args: JobArgs) -> anyhow::Result<()> {
    let project = args.project.name()?;
    let app = args.app.as_deref().ok_or_else(|| {
        anyhow::anyhow!("no App ID given: pass --app/-a NAME (`outrigger appid list --project {project}` shows them)")
    })?;
    let base = ["projects", project, "appids", app, "jobs"];
    match args.command {
        JobCommand::List { output } => {
            let jobs = api.get_all_items(&base).await?;
            emit(output.output, &jobs, |answer| Table::from_items(COLUMNS, answer, row))
        }
        JobCommand::Get { name, output } => {
            let job = api.get_json(&[&base[..], &[name.as_str()]].concat()).await?;
            emit(output.output, &job, |job| Table::single(COLUMNS, job, row))
        }
        JobCommand::Delete { name } => {
            api.delete(&[&base[..], &[name.as_str()]].concat()).await?;
            println!("job {name} of App ID {app} deleted");
            Ok(())
        }
    }
}

const COLUMNS: &[&str] = &["NAME", "SCHEDULE", "NEXT FIRE", "FIRED", "FAILURES", "LAST FIRE", "LAST OUTCOME"];

fn row(job: &Value) -> Vec<String> {
    let schedule = job["schedule"].as_str().or(job["dueTime"].as_str()).unwrap_or("-").to_owned();
    vec![
        cell(job, "/name"),
        schedule,
        cell(job, "/nextFire"),
        cell(job, "/fired"),
        cell(job, "/failures"),
        cell(job, "/lastFire"),
        cell(job, "/lastOutcome"),
    ]
}
