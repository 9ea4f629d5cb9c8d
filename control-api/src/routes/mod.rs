//! Route handlers, one file per resource family.

mod activity;
mod apikeys;
mod appids;
mod apply;
mod audit;
mod auth;
mod component_types;
mod configuration_items;
mod jobs;
mod kv;
mod members;
mod orgs;
mod projects;
mod quotas;
mod resources;
mod topics;
mod workflows;

use chrono::{DateTime, TimeZone, Utc};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) use quotas::check_counts;

use crate::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::whoami))
        .routes(routes!(auth::methods))
        .routes(routes!(auth::oidc_login))
        .routes(routes!(auth::oidc_callback))
        .routes(routes!(orgs::create_org, orgs::list_orgs))
        .routes(routes!(orgs::get_org, orgs::delete_org))
        .routes(routes!(orgs::get_org_quotas, orgs::set_org_quotas))
        .routes(routes!(members::list_members, members::add_member))
        .routes(routes!(members::remove_member))
        .routes(routes!(apikeys::create_api_key, apikeys::list_api_keys))
        .routes(routes!(apikeys::revoke_api_key))
        .routes(routes!(audit::list_audit))
        .routes(routes!(projects::create_project, projects::list_projects))
        .routes(routes!(projects::get_project, projects::delete_project))
        .routes(routes!(quotas::get_quotas, quotas::set_quotas))
        .routes(routes!(appids::create_app_id, appids::list_app_ids))
        .routes(routes!(appids::get_app_id, appids::update_app_id, appids::delete_app_id))
        .routes(routes!(appids::issue_token, appids::list_tokens))
        .routes(routes!(appids::revoke_token))
        .routes(routes!(apply::apply))
        .routes(routes!(apply::export))
        .routes(routes!(component_types::list_component_types))
        .routes(routes!(configuration_items::list_configuration_items))
        .routes(routes!(
            configuration_items::get_configuration_item,
            configuration_items::set_configuration_item,
            configuration_items::delete_configuration_item
        ))
        .routes(routes!(jobs::list_jobs))
        .routes(routes!(jobs::get_job, jobs::delete_job))
        .routes(routes!(resources::list_resources))
        .routes(routes!(resources::get_resource, resources::put_resource, resources::delete_resource))
        .routes(routes!(workflows::list_instances))
        .routes(routes!(workflows::get_instance, workflows::purge_instance))
        .routes(routes!(workflows::terminate_instance))
        .routes(routes!(workflows::suspend_instance))
        .routes(routes!(workflows::resume_instance))
        .routes(routes!(workflows::raise_event))
        .routes(routes!(activity::list_calls))
        .routes(routes!(activity::call_metrics))
        .routes(routes!(activity::usage))
        .routes(routes!(kv::list_keys))
        .routes(routes!(kv::get_key, kv::delete_key))
        .routes(routes!(topics::list_topics))
}

/// Stored Unix milliseconds as an RFC 3339 time.
pub(crate) fn timestamp(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis).single().unwrap_or_default()
}
