//! The input side of one binding component for one App ID, run by the deliverer ([`crate::delivery`]) on every
//! worker of the project's pool: daprd's `OPTIONS` probe of the route (unless `direction` names `input`), then the
//! component's events, each `POST`ed to the route and settled by the component as daprd's does. A component that
//! cannot be read (not loaded yet, broker down, app not listening) is tried again, backing off to a minute.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use outrigger_outbound::{AppChannel, AppClient};
use outrigger_store::ProjectId;
use tokio_util::sync::CancellationToken;

use super::{EventSink, InputEvent, Reader};
use crate::app_calls::ToApp;
use crate::delivery::{deliver_binding_event, takes_binding_events};
use crate::Worker;

/// The first pause after a failed read; doubled after each failure in a row, up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(60);
/// A read that lasted this long was not a failure in a row: the next pause starts again from [`FIRST_PAUSE`].
const HEALTHY_READ: Duration = Duration::from_secs(60);

/// One component read for one App ID.
#[derive(Clone, Debug)]
pub struct InputTarget {
    /// The project, the component and the App ID.
    pub reader: Reader,
    /// The App ID's app.
    pub channel: AppChannel,
    /// Where the app takes the events: `/` and the component's `route`, else its name.
    pub path: String,
    /// Whether to ask the app with `OPTIONS` first.
    pub probe: bool,
}

/// The app, as the place a binding's events go.
struct AppSink {
    channel: AppChannel,
    client: AppClient,
    path: String,
    reader: Reader,
    /// The reader's project, as each event's log entry names it: made once per reader, not per event.
    project_id: ProjectId,
    api_log: outrigger_telemetry::ApiLog,
    /// The App ID's trace sampling rate.
    sampling_rate: f64,
}

#[async_trait]
impl EventSink for AppSink {
    async fn deliver(&self, event: InputEvent) -> Result<(), String> {
        let to = ToApp {
            log: &self.api_log,
            project_id: &self.project_id,
            app_id: &self.reader.app_id,
            api: "bindings",
            component: Some(&self.reader.component),
            target: None,
        };
        let event = (event.data, &event.metadata);
        deliver_binding_event((&self.channel, &to), &self.client, &self.path, event, self.sampling_rate).await
    }
}

/// The path an input binding's events go to: its `route` metadata, else its name.
pub(crate) fn route_path(document: &outrigger_resources::Document) -> String {
    let route = document.inline_metadata("route").filter(|route| !route.trim().is_empty());
    let route = route.unwrap_or_else(|| document.metadata.name.clone());
    format!("/{}", route.trim_start_matches('/'))
}

/// Whether the component's `direction` names `input` explicitly, which makes daprd skip the `OPTIONS` probe.
pub(crate) fn input_is_explicit(document: &outrigger_resources::Document) -> bool {
    let direction = document.inline_metadata("direction").unwrap_or_default();
    direction.split(',').any(|direction| direction.trim().eq_ignore_ascii_case("input"))
}

/// Reads `target` until `stop`.
pub async fn run(worker: Arc<Worker>, client: AppClient, target: InputTarget, stop: CancellationToken) {
    let mut pause = FIRST_PAUSE;
    while !stop.is_cancelled() {
        let started = tokio::time::Instant::now();
        match read(&worker, &client, &target, stop.clone()).await {
            Ok(()) => return,
            Err(reason) => {
                tracing::info!(project_id = %target.reader.project_id, app_id = %target.reader.app_id,
                    component = %target.reader.component, %reason, "input binding not read; trying again");
            }
        }
        if started.elapsed() >= HEALTHY_READ {
            pause = FIRST_PAUSE;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// One read: the component as the project's runtime opened it, the app's consent, then events until `stop` or
/// a failure.
async fn read(
    worker: &Worker,
    client: &AppClient,
    target: &InputTarget,
    stop: CancellationToken,
) -> Result<(), String> {
    let project_id = ProjectId::received(target.reader.project_id.clone());
    let project = worker.runtime().project(&project_id).await?.ok_or("the project is gone")?;
    let reader = &target.reader;
    let component = project.input_bindings.get(&reader.component).filter(|component| component.allows(&reader.app_id));
    let binding =
        component.ok_or_else(|| format!("input binding {} is not found", reader.component))?.backend.clone()?;
    if target.probe && !takes_binding_events(&target.channel, client, &target.path).await? {
        return Err(format!("app has not subscribed to binding {}", reader.component));
    }
    let sink = Arc::new(AppSink {
        channel: target.channel.clone(),
        client: client.clone(),
        path: target.path.clone(),
        reader: reader.clone(),
        project_id: ProjectId::received(reader.project_id.clone()),
        api_log: worker.api_log.clone(),
        sampling_rate: project.sampling_rate(&reader.app_id),
    });
    binding.read(reader, sink, stop).await.map_err(|err| err.to_string())
}
