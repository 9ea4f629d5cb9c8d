//! `outrigger member ...`: who holds which role in an organization (users, by email, and the organization's
//! service accounts), on the whole organization or on one of its projects. The control API lets admins only.

use clap::{ArgGroup, Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use super::api::ApiClient;
use super::output::{cell, emit, OutputArgs, Table};
use super::{org, session};

#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Grant a role to a user (made if new) or to a service account of the organization (made if new); it
    /// replaces the member's role at the same place (the organization, or the project)
    Add(AddArgs),
    /// List the organization's members and their roles
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Remove a member's roles in the organization, with its API keys and sessions there (a service account goes
    /// entirely), or only its role on one project
    Remove {
        /// The member's id, as `outrigger member list` shows it
        id: String,
        /// Remove only the role on this project
        #[arg(long)]
        project: Option<String>,
    },
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("member").required(true).args(["email", "service_account"])))]
pub struct AddArgs {
    /// The user's email
    #[arg(long)]
    email: Option<String>,
    /// For a user who does not exist yet: read the password to give them from standard input (at least 12
    /// characters). Without it a new user can sign in only by single sign-on; an existing user keeps theirs
    #[arg(long, requires = "email")]
    password_stdin: bool,
    /// A service account of the organization, by name (a DNS label)
    #[arg(long, value_name = "NAME")]
    service_account: Option<String>,
    /// admin, operator, developer or viewer
    #[arg(long)]
    role: String,
    /// Grant the role on this project only (default: on the whole organization)
    #[arg(long)]
    project: Option<String>,
    #[command(flatten)]
    output: OutputArgs,
}

pub async fn run(api: &ApiClient, command: MemberCommand) -> anyhow::Result<()> {
    let org = org::current(api).await?;
    match command {
        MemberCommand::Add(args) => {
            let mut body = json!({ "role": args.role });
            let fields = [("email", args.email), ("serviceAccount", args.service_account), ("project", args.project)];
            for (field, value) in fields {
                if let Some(value) = value {
                    body[field] = value.into();
                }
            }
            if args.password_stdin {
                body["password"] = session::read_password(true)?.into();
            }
            let member = api.send_json(Method::POST, &["orgs", &org, "members"], &body).await?;
            emit(args.output.output, &member, |member| Table::single(MEMBER_COLUMNS, member, member_row))
        }
        MemberCommand::List { output } => {
            let members = api.get_all_items(&["orgs", &org, "members"]).await?;
            emit(output.output, &members, |members| Table::from_items(MEMBER_COLUMNS, members, member_row))
        }
        MemberCommand::Remove { id, project } => {
            let mut url = api.url(&["orgs", &org, "members", &id]);
            if let Some(project) = &project {
                url.query_pairs_mut().append_pair("project", project);
            }
            api.send(api.request(Method::DELETE, url)).await?;
            match project {
                Some(project) => println!("member {id}'s role on project {project} removed"),
                None => println!("member {id} removed from organization {org}, with its API keys and sessions there"),
            }
            Ok(())
        }
    }
}

const MEMBER_COLUMNS: &[&str] = &["ID", "KIND", "NAME", "ROLES"];

fn member_row(member: &Value) -> Vec<String> {
    let roles: Vec<String> = member["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|grant| match grant["project"].as_str() {
            Some(project) => format!("{} on {project}", cell(grant, "/role")),
            None => cell(grant, "/role"),
        })
        .collect();
    let name = member["email"].as_str().or(member["name"].as_str()).unwrap_or("-");
    let roles = if roles.is_empty() { "-".to_owned() } else { roles.join(", ") };
    vec![cell(member, "/id"), cell(member, "/kind"), name.to_owned(), roles]
}
