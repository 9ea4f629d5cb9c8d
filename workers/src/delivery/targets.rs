//! Which delivery loops a worker runs: the subscription targets and input bindings of one project at a time,
//! re-derived only for the projects that changed — named by change events ([`DeliveryWaker`]) or, as a safety net
//! for a lost event, by the control plane's change stamps — so that idle projects cost nothing, however many
//! there are.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use outrigger_resources::Kind;
use outrigger_store::ProjectId;
use tokio::sync::Notify;

use super::routes::{Origin, SubscriptionSpec};
use super::{app, Deliverer, InputLoop, Target, TargetKey};
use crate::bindings::input::{input_is_explicit, route_path, InputTarget};
use crate::bindings::Reader;
use crate::ProgrammaticSubscriptions;

/// Wakes the deliverer for the projects that changed.
#[derive(Debug, Default)]
pub struct DeliveryWaker {
    changed: Mutex<HashSet<String>>,
    notify: Notify,
}

impl DeliveryWaker {
    /// The project changed (its App IDs or resources, or it was deleted): its loops are re-derived.
    pub fn project_changed(&self, project_id: &str) {
        self.changed.lock().expect("waker lock").insert(project_id.to_owned());
        self.notify.notify_one();
    }

    /// The projects named since the last call.
    pub(super) fn take(&self) -> HashSet<String> {
        std::mem::take(&mut *self.changed.lock().expect("waker lock"))
    }

    pub(super) async fn notified(&self) {
        self.notify.notified().await;
    }
}

impl Deliverer {
    /// The projects whose change stamp is `since` or later; with no `since` (the first look), every project
    /// with an app endpoint, the only ones that can have deliveries.
    pub(super) async fn changed_projects(&self, since: Option<i64>) -> Result<Vec<ProjectId>, outrigger_store::Error> {
        let mut tx = self.control_plane.begin().await?;
        match since {
            Some(since) => tx.projects_changed_since(since).await,
            None => tx.projects_with_app_endpoints().await,
        }
    }

    /// Every subscription target of one project; none when it is gone or in another pool.
    pub(super) async fn project_targets(&self, project_id: &ProjectId) -> Result<Derived, outrigger_store::Error> {
        let mut tx = self.control_plane.begin().await?;
        let project = match tx.project_by_id(project_id).await {
            Ok(project) => project,
            Err(outrigger_store::Error::NotFound { .. }) => return Ok(Derived::default()),
            Err(err) => return Err(err),
        };
        if self.pool.as_ref().is_some_and(|pool| *pool != project.pool) {
            return Ok(Derived::default());
        }
        let apps = tx.list_app_ids(&project.id).await?;
        let declarations = tx.list_resources(&project.id, Kind::Subscription).await?;
        let mut input_bindings = tx.list_resources(&project.id, Kind::Component).await?;
        drop(tx);
        input_bindings
            .retain(|stored| stored.document.component_type().is_some_and(crate::components::is_read_input_binding));
        let mut found: Vec<Target> = Vec::new();
        let mut inputs: Vec<InputLoop> = Vec::new();
        let mut unanswered = false;
        for app in apps {
            let Some(endpoint) = app.app_endpoint.clone() else { continue };
            if app.app_protocol == "grpc" {
                // Its gRPC app channel (AppCallback) is not served: HTTP deliveries would fail on every try.
                tracing::debug!(app_id = %app.name, "not delivering to an app registered with appProtocol grpc");
                continue;
            }
            let refused = reqwest::Url::parse(&endpoint)
                .map_err(|err| err.to_string())
                .and_then(|url| self.egress.check_url(&url).map_err(|refused| refused.to_string()));
            if let Err(reason) = refused {
                tracing::warn!(app_id = %app.name, %reason, "not delivering to the app's endpoint");
                continue;
            }
            let channel =
                outrigger_outbound::AppChannel { endpoint: endpoint.clone(), app_token: app.app_token.clone() };
            for document in input_bindings.iter().map(|stored| &stored.document) {
                if !document.applies_to(&app.name) {
                    continue;
                }
                let reader = Reader {
                    project_id: project.id.as_str().to_owned(),
                    component: document.metadata.name.clone(),
                    app_id: app.name.clone(),
                };
                let target = InputTarget {
                    reader,
                    channel: channel.clone(),
                    path: route_path(document),
                    probe: !input_is_explicit(document),
                };
                let source = format!("{endpoint}|{:?}|{}|{:?}", app.app_token, document.spec, document.scopes);
                inputs.push(InputLoop { target, source });
            }
            let declarative = declarations
                .iter()
                .filter(|stored| stored.document.applies_to(&app.name))
                .map(|stored| (Origin::Declarative, stored.document.spec.clone()));
            let asked = self.programmatic(project.id.as_str(), &project.name, &app.name, &channel).await;
            unanswered |= !asked.answered;
            let declared = declarative.chain(asked.entries.into_iter().map(|entry| (Origin::Programmatic, entry)));
            for (origin, declaration) in declared {
                let spec = match SubscriptionSpec::from_json(&declaration, origin) {
                    Ok(spec) => spec,
                    Err(err) => {
                        tracing::warn!(project = %project.name, app_id = %app.name, error = %err, "subscription ignored");
                        continue;
                    }
                };
                let key = TargetKey {
                    project_id: project.id.as_str().to_owned(),
                    app_id: app.name.clone(),
                    pubsub: spec.pubsub.clone(),
                    topic: spec.topic.clone(),
                };
                // One loop per app and topic: the first declaration wins (documents before `/dapr/subscribe`).
                if found.iter().any(|target| target.key == key) {
                    continue;
                }
                let source = format!("{endpoint}|{:?}|{:?}|{declaration}", app.app_token, app.app_health_check_path);
                let health_path = app.app_health_check_path.clone();
                let project_name = project.name.clone();
                let spec = Arc::new(spec);
                found.push(Target { key, project_name, channel: channel.clone(), health_path, spec, source });
            }
        }
        Ok(Derived { targets: found, inputs, unanswered })
    }

    /// What the app answers to `GET /dapr/subscribe`: asked again when the last answer is older than
    /// [`super::PROGRAMMATIC_REFRESH`] or came from another endpoint. A failed read keeps the last answer, so
    /// that a busy app does not lose its subscriptions, and is not remembered: the next derivation asks again.
    async fn programmatic(
        &self,
        project_id: &str,
        project_name: &str,
        app_id: &str,
        channel: &outrigger_outbound::AppChannel,
    ) -> Programmatic {
        let runtime = self.worker.runtime();
        let previous = match runtime.programmatic(project_id, app_id) {
            Some(answer) if answer.endpoint == channel.endpoint => {
                if answer.fetched.elapsed() <= super::PROGRAMMATIC_REFRESH {
                    return Programmatic { entries: answer.entries, answered: true };
                }
                answer.entries
            }
            _ => Vec::new(),
        };
        match app::subscriptions(channel, &self.client).await {
            Ok(entries) => {
                let answer = ProgrammaticSubscriptions {
                    fetched: Instant::now(),
                    endpoint: channel.endpoint.clone(),
                    entries: entries.clone(),
                };
                runtime.set_programmatic(project_id, app_id, answer);
                Programmatic { entries, answered: true }
            }
            Err(err) => {
                tracing::debug!(project = %project_name, %app_id, error = %err, "/dapr/subscribe not read; keeping the last answer");
                Programmatic { entries: previous, answered: false }
            }
        }
    }
}

/// The subscription targets of one project.
#[derive(Default)]
pub(super) struct Derived {
    pub(super) targets: Vec<Target>,
    /// The input bindings read for its apps.
    pub(super) inputs: Vec<InputLoop>,
    /// An app of the project did not answer `GET /dapr/subscribe` (not listening yet, or failing).
    pub(super) unanswered: bool,
}

/// An app's programmatic subscriptions, and whether the app answered for them.
struct Programmatic {
    entries: Vec<serde_json::Value>,
    answered: bool,
}
