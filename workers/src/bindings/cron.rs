//! `bindings.cron`: daprd's cron input binding, fired by the scheduler ([`crate::jobs`]) rather than by a timer in
//! every worker. The control API keeps one scheduler row per component (its `schedule`); each occurrence is
//! delivered once, to every App ID the component is scoped to, as daprd's sidecars deliver it: the `OPTIONS`
//! probe of the route (skipped when `direction` says `input`), then `POST /{route}` with an empty body and the
//! `timeZone` and `readTimeUTC` metadata as headers. As in daprd, an app's failure is not retried: the next
//! occurrence comes at its time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use outrigger_outbound::{AppChannel, AppClient};
use outrigger_resources::{required, BuildingBlock, ComponentType, Kind, MetadataField};
use outrigger_store::{ProjectId, Store};

use super::input::{input_is_explicit, route_path};
use crate::components::{Backend, Opener};
use crate::delivery::{deliver_binding_event, takes_binding_events};

const CRON_FIELDS: &[MetadataField] = &[required("schedule")];

/// `bindings.cron`: input only, fired by the scheduler.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(outrigger_jobs::CRON_BINDING_TYPE, BuildingBlock::Bindings, &[CRON_FIELDS]),
    opener: Opener::Binding { output: None, input: None },
};

/// A time as Go's `time.Time.String` writes a UTC one (daprd's `readTimeUTC`).
fn go_utc_text(time: DateTime<Utc>) -> String {
    let fraction = format!("{:09}", time.timestamp_subsec_nanos());
    let fraction = fraction.trim_end_matches('0');
    let fraction = if fraction.is_empty() { String::new() } else { format!(".{fraction}") };
    format!("{}{fraction} +0000 UTC", time.format("%Y-%m-%d %H:%M:%S"))
}

/// One occurrence of the cron component `component`: delivered to each App ID it is scoped to whose app listens
/// on its route. `Err` names the apps that did not take it.
pub(crate) async fn fire(
    (store, api_log): (&Store, &outrigger_telemetry::ApiLog),
    client: &AppClient,
    project: &ProjectId,
    component: &str,
) -> Result<(), String> {
    let mut tx = store.begin().await.map_err(|err| err.to_string())?;
    let found = tx.find_resource(project, Kind::Component, component).await.map_err(|err| err.to_string())?;
    let document = found.ok_or_else(|| format!("component {component} is gone"))?.document;
    let apps = tx.list_app_ids(project).await.map_err(|err| err.to_string())?;
    let configurations = tx.list_resources(project, Kind::Configuration).await.map_err(|err| err.to_string())?;
    drop(tx);
    let sampling_rate = |app: &outrigger_store::AppIdentity| {
        let configuration =
            configurations.iter().find(|stored| Some(&stored.document.metadata.name) == app.config.as_ref());
        configuration
            .and_then(|stored| outrigger_resources::sampling_rate(&stored.document.spec))
            .unwrap_or_else(outrigger_telemetry::trace::default_sampling_rate)
    };
    let path = route_path(&document);
    let probe = !input_is_explicit(&document);
    let metadata = BTreeMap::from([
        ("timeZone".to_owned(), "UTC".to_owned()),
        ("readTimeUTC".to_owned(), go_utc_text(Utc::now())),
    ]);
    let deliveries = apps.into_iter().filter(|app| document.applies_to(&app.name)).filter_map(|app| {
        // Apps speaking gRPC get input bindings through OnBindingEvent, which this version does not call.
        let rate = sampling_rate(&app);
        let endpoint = app.app_endpoint.filter(|_| app.app_protocol != "grpc")?;
        let channel = AppChannel { endpoint, app_token: app.app_token };
        let (path, metadata) = (&path, &metadata);
        Some(async move {
            let delivered = async {
                if probe && !takes_binding_events(&channel, client, path).await? {
                    tracing::debug!(app_id = %app.name, %component, "app has not subscribed to binding");
                    return Ok(());
                }
                let to = crate::app_calls::ToApp {
                    log: api_log,
                    project_id: project,
                    app_id: &app.name,
                    api: "bindings",
                    component: Some(component),
                    target: None,
                };
                deliver_binding_event((&channel, &to), client, path, (Vec::new(), metadata), rate).await
            };
            delivered.await.map_err(|err| format!("App ID {}: {err}", app.name))
        })
    });
    let failures: Vec<String> =
        futures_util::future::join_all(deliveries).await.into_iter().filter_map(Result::err).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::go_utc_text;
    use chrono::DateTime;

    #[test]
    fn read_times_are_written_as_go_writes_them() {
        let time = DateTime::parse_from_rfc3339("2026-12-04T08:15:00.1205Z").unwrap().to_utc();
        assert_eq!(go_utc_text(time), "2026-12-04 08:15:00.1205 +0000 UTC");
        let whole = DateTime::parse_from_rfc3339("2026-12-04T08:15:00Z").unwrap().to_utc();
        assert_eq!(go_utc_text(whole), "2026-12-04 08:15:00 +0000 UTC");
    }
}
