//! The state query API as a worker serves it: one bounded page per call ([`state::Query::run_on`]), at most a
//! few queries of one App ID at a time, and each within the component's timeout.
//!
//! A query is the heaviest state call (it may read many items to answer few), so an App ID that sends many at
//! once queues behind its own [`QueryLimits::per_app_id`] rather than taking the worker's cores and the
//! store's connections from every other tenant. The queue is a semaphore per App ID that exists only while
//! one of its queries runs or waits: an App ID at rest costs nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outrigger_bus::{DataError, QueryItem, QueryPage, QueryState, StateOperation, Tenant};
use outrigger_store::ProjectId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::handler::Scope;
use crate::state;
use crate::state::api::{bad_request, target};

/// What a query call may do: its page ([`state::PageLimits`]), its time, and how many run at once.
#[derive(Clone, Copy, Debug)]
pub struct QueryLimits {
    /// Pages, and what one page may look at.
    pub page: state::PageLimits,
    /// Queries of one App ID running at once on one worker; others wait for their turn within their timeout.
    pub per_app_id: usize,
    /// Longest a query call may take, waiting for its turn included, whatever timeout the component's
    /// Resiliency policy sets (a tenant's policy cannot lift it).
    pub max_duration: Duration,
}

impl Default for QueryLimits {
    fn default() -> QueryLimits {
        QueryLimits { page: state::PageLimits::default(), per_app_id: 2, max_duration: Duration::from_secs(10) }
    }
}

/// The App ID a semaphore belongs to: (project id, App ID).
type AppKey = (ProjectId, Arc<str>);

/// One semaphore per App ID with queries running or waiting.
#[derive(Default)]
pub(crate) struct QueryGate {
    turns: Mutex<HashMap<AppKey, Turns>>,
}

struct Turns {
    semaphore: Arc<Semaphore>,
    /// Queries holding or waiting for a permit; the entry goes when the last one leaves.
    users: usize,
}

/// A query's place at the gate: dropped, it gives back its permit and, when it was the App ID's last, the
/// App ID's entry.
pub(crate) struct Place<'g> {
    gate: &'g QueryGate,
    app: AppKey,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut turns = self.gate.turns.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.permit = None;
        if let Some(entry) = turns.get_mut(&self.app) {
            entry.users -= 1;
            if entry.users == 0 {
                turns.remove(&self.app);
            }
        }
    }
}

impl QueryGate {
    /// Waits up to `wait` for one of `per_app_id` turns of the caller's App ID.
    pub(crate) async fn enter(
        &self,
        tenant: &Tenant,
        per_app_id: usize,
        wait: Duration,
    ) -> Result<Place<'_>, DataError> {
        let app = (tenant.project_id.clone(), tenant.app_id.clone());
        let semaphore = {
            let mut turns = self.turns.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let entry = turns
                .entry(app.clone())
                .or_insert_with(|| Turns { semaphore: Arc::new(Semaphore::new(per_app_id.max(1))), users: 0 });
            entry.users += 1;
            Arc::clone(&entry.semaphore)
        };
        // Registered before waiting, so that a wait that times out also leaves.
        let mut place = Place { gate: self, app, permit: None };
        match tokio::time::timeout(wait, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => {
                place.permit = Some(permit);
                Ok(place)
            }
            _ => Err(DataError::Busy {
                message: format!(
                    "App ID {} already runs {per_app_id} state queries at once and this one waited {wait:?} for \
                     its turn; send fewer queries at a time",
                    tenant.app_id
                ),
            }),
        }
    }

    /// App IDs with queries running or waiting (for tests of the gate's footprint).
    #[cfg(test)]
    fn apps(&self) -> usize {
        self.turns.lock().unwrap().len()
    }
}

/// `QueryState`: one page of the query over the caller's keys of the store.
pub(crate) async fn query(scope: &Scope<'_>, QueryState { store, query }: QueryState) -> Result<QueryPage, DataError> {
    let operation = StateOperation::Query;
    let target = target(scope, &store, operation)?;
    if !target.store.features().query {
        return Err(DataError::NotSupported { message: format!("state store {store} doesn't support query") });
    }
    let parsed = state::Query::parse(&query)
        .map_err(|err| bad_request(operation, format!("failed query in state store {store}: {err}")))?;
    let limits = &scope.worker.query_limits;
    // The wait for a turn and the query share one deadline.
    let limit = target.timeout().min(limits.max_duration);
    let started = Instant::now();
    let _place = scope.worker.queries.enter(target.tenant, limits.per_app_id, limit).await?;
    let prefix = target.prefix();
    let running = target.run(
        operation,
        |store| format!("failed query in state store {store}"),
        || parsed.run_on(target.store.as_ref(), &prefix, &limits.page),
    );
    let page = tokio::time::timeout(limit.saturating_sub(started.elapsed()), running).await.map_err(|_| {
        DataError::StoreFailure {
            operation,
            message: format!(
                "failed query in state store {store}: no answer within {limit:?}; narrow the filter or ask for a \
                 smaller page"
            ),
        }
    })??;
    let results = page
        .results
        .into_iter()
        .map(|result| QueryItem { key: result.key, data: result.data, etag: result.etag })
        .collect();
    Ok(QueryPage { results, token: page.token })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(app: &str) -> Tenant {
        Tenant::new(outrigger_store::ProjectId::received("prj".into()), "p".into(), app.into(), "default".into())
    }

    #[tokio::test]
    async fn the_gate_queues_an_app_id_beyond_its_turns_and_forgets_it_at_rest() {
        let gate = QueryGate::default();
        let first = gate.enter(&tenant("a"), 2, Duration::from_secs(5)).await.expect("first turn");
        let second = gate.enter(&tenant("a"), 2, Duration::from_secs(5)).await.expect("second turn");
        // Another App ID is not held up by the first one's queries.
        let other = gate.enter(&tenant("b"), 2, Duration::from_secs(5)).await.expect("another App ID");
        assert_eq!(gate.apps(), 2);
        let third = gate.enter(&tenant("a"), 2, Duration::ZERO).await;
        assert!(matches!(third, Err(DataError::Busy { .. })), "a third query of the same App ID waits");
        drop(first);
        let third = gate.enter(&tenant("a"), 2, Duration::from_secs(5)).await.expect("a turn freed");
        drop((second, third, other));
        assert_eq!(gate.apps(), 0, "App IDs at rest leave nothing behind");
    }
}
