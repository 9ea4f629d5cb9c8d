//! `outrigger audit`: an organization's audit trail (who changed what in the control plane, when, from where),
//! newest first, filtered.

use chrono::{DateTime, Utc};
use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::api::ApiClient;
use super::org;
use super::output::{cell, emit, OutputArgs, Table};

/// The control API's largest page.
const MAX_PAGE: u32 = 1000;

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Only changes made by this member (its id, as `outrigger member list` shows it) or by `operator`
    #[arg(long, value_name = "MEMBER_ID")]
    actor: Option<String>,
    /// Only this action (project.create, resource.put, member.add, apikey.create, ...)
    #[arg(long)]
    action: Option<String>,
    /// Only changes in this project
    #[arg(long)]
    project: Option<String>,
    /// Only changes at or after this time (RFC 3339)
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Only changes before this time (RFC 3339)
    #[arg(long)]
    until: Option<DateTime<Utc>>,
    /// How many of the newest changes to show
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
    #[command(flatten)]
    output: OutputArgs,
}

pub async fn run(api: &ApiClient, args: AuditArgs) -> anyhow::Result<()> {
    let org = org::current(api).await?;
    let mut base = api.url(&["orgs", &org, "audit"]);
    {
        let mut query = base.query_pairs_mut();
        for (name, value) in [("actor", &args.actor), ("action", &args.action), ("project", &args.project)] {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        for (name, time) in [("since", args.since), ("until", args.until)] {
            if let Some(time) = time {
                query.append_pair(name, &time.to_rfc3339());
            }
        }
    }
    let limit = args.limit as usize;
    let (mut events, mut continuation) = (Vec::new(), None::<String>);
    loop {
        let mut url = base.clone();
        let wanted = u32::try_from(limit - events.len()).unwrap_or(MAX_PAGE).min(MAX_PAGE);
        url.query_pairs_mut().append_pair("limit", &wanted.to_string());
        if let Some(token) = &continuation {
            url.query_pairs_mut().append_pair("continuationToken", token);
        }
        let mut page: Value = api.send(api.request(Method::GET, url)).await?.json().await?;
        match page["items"].take() {
            Value::Array(items) => events.extend(items),
            _ => anyhow::bail!("the control API answered the audit trail without items"),
        }
        continuation = page["continuationToken"].as_str().map(str::to_owned);
        if events.len() >= limit || continuation.is_none() {
            break;
        }
    }
    events.truncate(limit);
    emit(args.output.output, &serde_json::json!({ "items": events }), |answer| {
        Table::from_items(&["AT", "ACTOR", "ACTION", "PROJECT", "TARGET", "STATUS", "FROM"], answer, |event| {
            ["/at", "/actor/display", "/action", "/project", "/target", "/status", "/sourceAddr"]
                .iter()
                .map(|pointer| cell(event, pointer))
                .collect()
        })
    })
}
