//! `outrigger org ...`: organizations (the operator token creates, deletes and caps them), and `org use`, which
//! chooses the one later commands work in.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::api::ApiClient;
use super::output::{cell, emit, OutputArgs, Table};
use super::project::changed_quotas;
use super::session;

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// Create an organization (operator token only); add its first admin with `outrigger member add --org NAME`
    Create {
        /// Organization name: a DNS label, unique in the installation
        name: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List the organizations you hold a role in (every one, for the operator token); `*` marks the one
    /// commands work in
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show an organization and its quotas
    Get {
        /// Organization name
        name: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Delete an organization that has no projects left, with its members' roles, API keys and sessions there
    /// (operator token only)
    Delete {
        /// Organization name
        name: String,
    },
    /// Work in this organization from now on (until `org use` again or `logout`; --org/OUTRIGGER_ORG overrides it
    /// for one command)
    Use {
        /// Organization name
        name: String,
    },
    /// Show an organization's quotas, or set them (operator token only): a value given replaces the one set,
    /// `default` removes it, 0 is no limit as well; values not given stay as they are
    Quotas {
        /// Organization name
        name: String,
        /// Projects the organization may have
        #[arg(long, value_name = "N|default")]
        projects: Option<String>,
        /// App IDs its projects may have together
        #[arg(long, value_name = "N|default")]
        app_ids: Option<String>,
        /// Requests per second each of its App IDs may make, at most (a lower project quota still applies)
        #[arg(long, value_name = "N|default")]
        requests_per_second: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// The organization a command about "this organization" (members, API keys, audit) works in: `--org` or the one
/// `org use` chose, else the credential's own as the control API sees it.
pub async fn current(api: &ApiClient) -> anyhow::Result<String> {
    if let Some(org) = api.org() {
        return Ok(org.to_owned());
    }
    let me = api.get_json(&["auth", "whoami"]).await?;
    me["organization"].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("whoami named no organization"))
}

pub async fn run(api: &ApiClient, command: OrgCommand) -> anyhow::Result<()> {
    match command {
        OrgCommand::Create { name, output } => {
            let org = api.send_json(Method::POST, &["orgs"], &json!({ "name": name })).await?;
            emit(output.output, &org, |org| Table::single(ORG_COLUMNS, org, org_row))
        }
        OrgCommand::List { output } => {
            let orgs = api.get_all_items(&["orgs"]).await?;
            let current = current(api).await?;
            emit(output.output, &orgs, |orgs| {
                let mut columns = vec!["CURRENT"];
                columns.extend(ORG_COLUMNS);
                Table::from_items(&columns, orgs, |org| {
                    let marker = if org["name"].as_str() == Some(current.as_str()) { "*" } else { "" };
                    std::iter::once(marker.to_owned()).chain(org_row(org)).collect()
                })
            })
        }
        OrgCommand::Get { name, output } => {
            let org = api.get_json(&["orgs", &name]).await?;
            emit(output.output, &org, |org| Table::single(ORG_COLUMNS, org, org_row))
        }
        OrgCommand::Delete { name } => {
            api.delete(&["orgs", &name]).await?;
            println!("organization {name} deleted, with its members' roles, API keys and sessions there");
            Ok(())
        }
        OrgCommand::Use { name } => {
            // Asked first, so that only an organization the credential can work in is stored.
            api.get_json(&["orgs", &name]).await?;
            let path = session::remember_org(api.base(), &name)?;
            println!("Working in organization {name} from now on (stored in {}).", path.display());
            Ok(())
        }
        OrgCommand::Quotas { name, projects, app_ids, requests_per_second, output } => {
            let path = ["orgs", name.as_str(), "quotas"];
            let mut quotas = api.get_json(&path).await?;
            let changes = [("projects", projects), ("appIds", app_ids), ("requestsPerSecond", requests_per_second)];
            if changes.iter().any(|(_, change)| change.is_some()) {
                // The PUT replaces every quota: the body is what is set now with the flags' changes.
                let body = changed_quotas(quotas, changes)?;
                quotas = api.send_json(Method::PUT, &path, &body).await?;
            }
            emit(output.output, &quotas, |quotas| {
                let mut table = Table::new(&["QUOTA", "LIMIT"]);
                for field in QUOTAS {
                    table.push(vec![field.to_owned(), limit(quotas, field)]);
                }
                table
            })
        }
    }
}

const QUOTAS: [&str; 3] = ["projects", "appIds", "requestsPerSecond"];

const ORG_COLUMNS: &[&str] = &["NAME", "CREATED", "PROJECTS", "APP IDS", "REQUESTS PER SECOND"];

fn org_row(org: &Value) -> Vec<String> {
    let mut row = vec![cell(org, "/name"), cell(org, "/createdAt")];
    row.extend(QUOTAS.map(|field| limit(&org["quotas"], field)));
    row
}

/// A quota as a cell: absent, null and 0 are no limit.
fn limit(quotas: &Value, field: &str) -> String {
    match quotas[field].as_u64() {
        None | Some(0) => "no limit".to_owned(),
        Some(limit) => limit.to_string(),
    }
}
