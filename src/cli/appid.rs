//! `outrigger appid ...`: App IDs and their API tokens.

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::api::ApiClient;
use super::output::{cell, emit, OutputArgs, OutputFormat, Table};
use super::ProjectArg;

#[derive(Args, Debug)]
pub struct AppIdArgs {
    #[command(flatten)]
    project: ProjectArg,
    #[command(subcommand)]
    command: AppIdCommand,
}

#[derive(Subcommand, Debug)]
enum AppIdCommand {
    /// Create an App ID and print its API token (shown only this once) and the environment your app sets
    Create {
        /// App ID: a DNS label (1-63 of a-z, 0-9 and '-', starting and ending with a letter or digit)
        name: String,
        #[command(flatten)]
        settings: AppSettings,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List the project's App IDs
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show one App ID (never its tokens)
    Get {
        /// App ID
        name: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Change an App ID's settings; only the options given change, and an empty value clears a
    /// setting (for example --app-endpoint "")
    Update {
        /// App ID
        name: String,
        #[command(flatten)]
        settings: AppSettings,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Delete an App ID and its tokens (refused while a resource's scopes name it)
    Delete {
        /// App ID
        name: String,
    },
    /// Issue a new API token and print it (shown only this once); older tokens expire after the grace period
    RotateToken {
        /// App ID
        name: String,
        /// How long the older tokens keep working, so running apps can switch over [server default: 86400]
        #[arg(long)]
        grace_seconds: Option<u64>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List an App ID's API tokens: their ids, creation and expiry, never the secrets
    Tokens {
        /// App ID
        name: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Revoke one API token at once, for example a leaked one
    RevokeToken {
        /// App ID
        name: String,
        /// Token id, as `appid tokens` lists it
        token_id: String,
    },
}

/// An App ID's settings, as options of `create` and `update`.
#[derive(Args, Debug)]
struct AppSettings {
    /// Base URL where Outrigger reaches your app (service invocation, pub/sub delivery, input bindings), e.g. https://orders.example.com
    #[arg(long)]
    app_endpoint: Option<String>,
    /// Token Outrigger sends to your app with every call (Dapr's APP_API_TOKEN), so the app can tell the calls are from Outrigger
    #[arg(long)]
    app_token: Option<String>,
    /// Protocol your app speaks at --app-endpoint [server default: http]
    #[arg(long, value_enum)]
    app_protocol: Option<AppProtocol>,
    /// Path on your app that answers health checks, e.g. /healthz
    #[arg(long)]
    app_health_check_path: Option<String>,
    /// Name of the Dapr Configuration resource that applies to this App ID
    #[arg(long, value_name = "NAME")]
    app_config: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum AppProtocol {
    Http,
    Grpc,
}

impl AppSettings {
    /// The request body fields for the options given: an empty value becomes `null`, which clears
    /// the setting on update and leaves it unset on create.
    fn to_body(&self) -> Map<String, Value> {
        let text_settings = [
            ("appEndpoint", &self.app_endpoint),
            ("appToken", &self.app_token),
            ("appHealthCheckPath", &self.app_health_check_path),
            ("config", &self.app_config),
        ];
        let mut body = Map::new();
        for (field, value) in text_settings {
            if let Some(value) = value {
                let value = if value.is_empty() { Value::Null } else { Value::String(value.clone()) };
                body.insert(field.to_owned(), value);
            }
        }
        if let Some(protocol) = self.app_protocol {
            let protocol = match protocol {
                AppProtocol::Http => "http",
                AppProtocol::Grpc => "grpc",
            };
            body.insert("appProtocol".to_owned(), protocol.into());
        }
        body
    }
}

pub async fn run(api: &ApiClient, args: AppIdArgs) -> anyhow::Result<()> {
    let project = args.project.name()?;
    match args.command {
        AppIdCommand::Create { name, settings, output } => {
            let environment = environment_project(api, output.output, project).await?;
            let mut body = settings.to_body();
            body.insert("name".to_owned(), name.clone().into());
            let created = api.send_json(Method::POST, &["projects", project, "appids"], &body.into()).await?;
            emit(output.output, &created, app_id_table)?;
            if let Some(project) = environment {
                print_app_environment(&project, &name, issued_token(&created)?);
            }
            Ok(())
        }
        AppIdCommand::List { output } => {
            let app_ids = api.get_all_items(&["projects", project, "appids"]).await?;
            emit(output.output, &app_ids, |answer| Table::from_items(APP_ID_COLUMNS, answer, app_id_row))
        }
        AppIdCommand::Get { name, output } => {
            let app_id = api.get_json(&["projects", project, "appids", &name]).await?;
            emit(output.output, &app_id, app_id_table)
        }
        AppIdCommand::Update { name, settings, output } => {
            let body = settings.to_body();
            if body.is_empty() {
                anyhow::bail!(
                    "nothing to update: give at least one of --app-endpoint, --app-token, --app-protocol, \
                     --app-health-check-path, --app-config"
                );
            }
            let path = ["projects", project, "appids", &name];
            let updated = api.send_json(Method::PATCH, &path, &body.into()).await?;
            emit(output.output, &updated, app_id_table)
        }
        AppIdCommand::Delete { name } => {
            api.delete(&["projects", project, "appids", &name]).await?;
            println!("App ID {name} deleted from project {project}");
            Ok(())
        }
        AppIdCommand::RotateToken { name, grace_seconds, output } => {
            let environment = environment_project(api, output.output, project).await?;
            let body = grace_seconds.map_or_else(|| json!({}), |seconds| json!({ "graceSeconds": seconds }));
            let path = ["projects", project, "appids", &name, "tokens"];
            let issued = api.send_json(Method::POST, &path, &body).await?;
            emit(output.output, &issued, |token| Table::single(TOKEN_COLUMNS, token, token_row))?;
            if let Some(project) = environment {
                print_app_environment(&project, &name, issued_token(&issued)?);
            }
            Ok(())
        }
        AppIdCommand::Tokens { name, output } => {
            let tokens = api.get_all_items(&["projects", project, "appids", &name, "tokens"]).await?;
            emit(output.output, &tokens, |answer| Table::from_items(TOKEN_COLUMNS, answer, token_row))
        }
        AppIdCommand::RevokeToken { name, token_id } => {
            api.delete(&["projects", project, "appids", &name, "tokens", &token_id]).await?;
            println!("token {token_id} of App ID {name} revoked");
            Ok(())
        }
    }
}

/// For output to people, the project whose endpoints go with tokens about to be issued. It is
/// fetched before they are issued, so that failing to fetch it cannot lose a token that is shown
/// only once.
pub async fn environment_project(
    api: &ApiClient,
    format: OutputFormat,
    project: &str,
) -> anyhow::Result<Option<Value>> {
    if format != OutputFormat::Table {
        return Ok(None);
    }
    api.get_json(&["projects", project]).await.map(Some)
}

/// The secret of a token the control API just issued.
fn issued_token(answer: &Value) -> anyhow::Result<&str> {
    answer["apiToken"].as_str().context("the control API's answer lacks the issued apiToken")
}

/// Prints a freshly issued API token with the environment an app sets to use Outrigger as its
/// Dapr sidecar: the project's endpoints and the token.
pub fn print_app_environment(project: &Value, app_id: &str, api_token: &str) {
    println!();
    println!("API token of App ID {app_id}, shown only this once (store it now):");
    println!("  {api_token}");
    println!();
    println!("Set in the environment of the app that runs as {app_id}:");
    println!("DAPR_HTTP_ENDPOINT={}", cell(project, "/httpEndpoint"));
    println!("DAPR_GRPC_ENDPOINT={}", cell(project, "/grpcEndpoint"));
    println!("DAPR_API_TOKEN={api_token}");
}

const APP_ID_COLUMNS: &[&str] =
    &["NAME", "PROTOCOL", "APP ENDPOINT", "HEALTH CHECK PATH", "CONFIG", "APP TOKEN", "UPDATED"];

fn app_id_table(app_id: &Value) -> Table {
    Table::single(APP_ID_COLUMNS, app_id, app_id_row)
}

fn app_id_row(app_id: &Value) -> Vec<String> {
    let app_token = if app_id["hasAppToken"] == Value::Bool(true) { "set" } else { "-" };
    vec![
        cell(app_id, "/name"),
        cell(app_id, "/appProtocol"),
        cell(app_id, "/appEndpoint"),
        cell(app_id, "/appHealthCheckPath"),
        cell(app_id, "/config"),
        app_token.to_owned(),
        cell(app_id, "/updatedAt"),
    ]
}

const TOKEN_COLUMNS: &[&str] = &["TOKEN ID", "CREATED", "EXPIRES"];

fn token_row(token: &Value) -> Vec<String> {
    let expires = if token["expiresAt"].is_string() { cell(token, "/expiresAt") } else { "never".to_owned() };
    vec![cell(token, "/id"), cell(token, "/createdAt"), expires]
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Settings {
        #[command(flatten)]
        settings: AppSettings,
    }

    #[derive(Parser)]
    struct AppId {
        #[command(flatten)]
        args: AppIdArgs,
    }

    #[test]
    fn project_option_works_before_and_after_the_subcommand() {
        for args in [["-p", "shop", "list"], ["list", "-p", "shop"]] {
            let parsed = AppId::try_parse_from(std::iter::once("appid").chain(args)).expect("parsing");
            assert_eq!(parsed.args.project.name().expect("a project"), "shop");
        }
    }

    fn body(args: &[&str]) -> Value {
        let parsed =
            Settings::try_parse_from(std::iter::once("settings").chain(args.iter().copied())).expect("parsing");
        Value::Object(parsed.settings.to_body())
    }

    #[test]
    fn only_given_settings_are_sent_and_empty_ones_are_null() {
        assert_eq!(body(&[]), json!({}));
        assert_eq!(
            body(&["--app-endpoint", "", "--app-config", "appconfig", "--app-protocol", "grpc"]),
            json!({"appEndpoint": null, "config": "appconfig", "appProtocol": "grpc"})
        );
        assert_eq!(
            body(&["--app-token", "t", "--app-health-check-path", "/healthz"]),
            json!({"appToken": "t", "appHealthCheckPath": "/healthz"})
        );
    }
}
