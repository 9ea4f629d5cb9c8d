//! `outrigger apikey ...`: API keys, the credentials of scripts and CI. A key acts with its owner's roles in its
//! organization only; the control API shows its secret once, when it is made.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::api::ApiClient;
use super::org;
use super::output::{cell, emit, OutputArgs, OutputFormat, Table};

#[derive(Subcommand, Debug)]
pub enum ApiKeyCommand {
    /// Make an API key that acts with your roles in the organization (or, for an admin, a service account's);
    /// the key is printed once
    Create {
        /// What the key is for (1-100 characters)
        name: String,
        /// Days until the key stops working (1-3650; default: it does not expire)
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
        /// Make the key for this service account of the organization (its member id; admins only)
        #[arg(long, value_name = "MEMBER_ID")]
        service_account: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List the API keys that still work: your own, or all of the organization's for an admin
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Revoke an API key (your own; an admin any of the organization's): it stops working at once
    Revoke {
        /// The key's id, as `outrigger apikey list` shows it
        id: String,
    },
}

pub async fn run(api: &ApiClient, command: ApiKeyCommand) -> anyhow::Result<()> {
    let org = org::current(api).await?;
    match command {
        ApiKeyCommand::Create { name, expires_in_days, service_account, output } => {
            let mut body = json!({ "name": name });
            if let Some(days) = expires_in_days {
                body["expiresInDays"] = days.into();
            }
            if let Some(account) = service_account {
                body["serviceAccount"] = account.into();
            }
            let key = api.send_json(Method::POST, &["orgs", &org, "apikeys"], &body).await?;
            emit(output.output, &key, |key| Table::single(KEY_COLUMNS, key, key_row))?;
            if output.output == OutputFormat::Table {
                println!();
                println!("API key: {}", cell(&key, "/key"));
                println!("Copy it now: it cannot be shown again. Sign in with it: outrigger login --api-key KEY");
            }
            Ok(())
        }
        ApiKeyCommand::List { output } => {
            let keys = api.get_all_items(&["orgs", &org, "apikeys"]).await?;
            emit(output.output, &keys, |keys| Table::from_items(KEY_COLUMNS, keys, key_row))
        }
        ApiKeyCommand::Revoke { id } => {
            api.delete(&["orgs", &org, "apikeys", &id]).await?;
            println!("API key {id} revoked: it no longer works");
            Ok(())
        }
    }
}

const KEY_COLUMNS: &[&str] = &["ID", "NAME", "OWNER", "CREATED", "EXPIRES"];

fn key_row(key: &Value) -> Vec<String> {
    ["/id", "/name", "/owner", "/createdAt", "/expiresAt"].iter().map(|pointer| cell(key, pointer)).collect()
}
