//! Streams end with their credentials. A request is authenticated once, but a stream (streaming subscription,
//! `GetWorkItems`, any later one) lives on after its token is revoked or its App ID or project deleted; its
//! [`StreamGuard`] looks the token up again through the same cache as requests ([`crate::auth`]) at the very
//! moment the cached answer runs out, so a stream stops on the same bound as requests. Every message passes
//! [`StreamGuard::hand_over`], which asks the guard first: once requests with the token are refused, nothing
//! more is handed over. The stream's owner watches [`StreamGuard::ended`] and gives back what it held (events
//! to the broker, work items to the next worker) as on any stream end.
//!
//! A change event for a project (a token revoked, an App ID or the project deleted) makes its streams look again
//! at once, past the cache; a change event that is lost leaves the bound. The cost is one cached lookup per open
//! stream and cache period: nothing for tenants without streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use outrigger_bus::Tenant;
use outrigger_store::Error as StoreError;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::Lookup;
use crate::{DaprError, Gateway};

/// The shortest time between two lookups of one stream's own accord: a cache period of 0 (every request
/// looks up) must not make a guard spin on the database.
const MIN_RECHECK: Duration = Duration::from_millis(100);

/// The open streams' guards by project, so that a project's change event reaches its streams.
#[derive(Default)]
pub(crate) struct Guards {
    by_project: Mutex<HashMap<String, Vec<Weak<Shared>>>>,
}

impl Guards {
    /// A project changed: its streams look their tokens up again now.
    pub(crate) fn project_changed(&self, project_id: &str) {
        let guards: Vec<Arc<Shared>> = match self.by_project.lock().expect("stream guards lock").get(project_id) {
            Some(guards) => guards.iter().filter_map(Weak::upgrade).collect(),
            None => return,
        };
        for guard in guards {
            guard.recheck.notify_one();
        }
    }

    fn add(&self, guard: &Arc<Shared>) {
        let mut by_project = self.by_project.lock().expect("stream guards lock");
        let guards = by_project.entry(guard.tenant.project_id.as_str().to_owned()).or_default();
        guards.retain(|guard| guard.strong_count() > 0);
        guards.push(Arc::downgrade(guard));
    }

    /// Drops the project's entries of streams that have ended.
    fn prune(&self, project_id: &str) {
        let mut by_project = self.by_project.lock().expect("stream guards lock");
        if let Some(guards) = by_project.get_mut(project_id) {
            guards.retain(|guard| guard.strong_count() > 0);
            if guards.is_empty() {
                by_project.remove(project_id);
            }
        }
    }
}

/// What one stream's guard knows; shared by the stream's tasks, weakly by its watcher.
struct Shared {
    gateway: Gateway,
    token: String,
    tenant: Tenant,
    /// When the last answer confirming the token was read from the database (`None`: not looked yet); it is
    /// trusted for the cache period from then, as the cache trusts it.
    fetched: Mutex<Option<Instant>>,
    /// Why the stream ended, once it has.
    ending: OnceLock<DaprError>,
    /// Cancelled when the credential ended (or the stream is gone, to stop the watcher).
    ended: CancellationToken,
    /// A change event asks for a look past the cache.
    recheck: Arc<Notify>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.ended.cancel();
        self.gateway.0.stream_guards.prune(self.tenant.project_id.as_str());
    }
}

/// Ends a stream when its credential ends. Cheap to clone; the stream's tasks each hold one.
#[derive(Clone)]
pub(crate) struct StreamGuard(Arc<Shared>);

impl Gateway {
    /// The guard of a stream just admitted with `token` as `tenant`.
    pub(crate) fn guard_stream(&self, token: &str, tenant: &Tenant) -> StreamGuard {
        let shared = Arc::new(Shared {
            gateway: self.clone(),
            token: token.to_owned(),
            tenant: tenant.clone(),
            // The admission's answer is not known here: the first look (a cache hit) tells its age.
            fetched: Mutex::new(None),
            ending: OnceLock::new(),
            ended: CancellationToken::new(),
            recheck: Arc::new(Notify::new()),
        });
        self.0.stream_guards.add(&shared);
        tokio::spawn(watch(Arc::downgrade(&shared), shared.ended.clone(), Arc::clone(&shared.recheck)));
        StreamGuard(shared)
    }
}

impl StreamGuard {
    /// Completes when the stream's credential has ended.
    pub(crate) async fn ended(&self) {
        self.0.ended.cancelled().await;
    }

    /// Why the stream ended, as its final status.
    fn status(&self) -> tonic::Status {
        self.0.ending.get().cloned().unwrap_or_else(DaprError::credential_ended).to_status()
    }

    /// Whether a message may be handed over now: the token's last answer is still trusted, or a look now
    /// (through the cache, as a request would) confirms it.
    async fn check(&self) -> Result<(), tonic::Status> {
        if self.0.ended.is_cancelled() {
            return Err(self.status());
        }
        if self.0.fetched().is_some_and(|fetched| fetched.elapsed() < self.0.gateway.0.tokens.ttl()) {
            return Ok(());
        }
        self.0.confirm(false).await.map_err(|err| err.to_status())
    }

    /// `messages` as the client receives them: each is handed over only while the credential holds; when it
    /// ends the stream answers why and stops. What was not handed over is the owner's to give back.
    pub(crate) fn hand_over<S, T>(self, messages: S) -> impl Stream<Item = Result<T, tonic::Status>> + Send + 'static
    where
        S: Stream<Item = Result<T, tonic::Status>> + Unpin + Send + 'static,
        T: Send + 'static,
    {
        futures_util::stream::unfold(Some((self, messages)), |state| async move {
            let (guard, mut messages) = state?;
            let next = tokio::select! {
                biased;
                () = guard.ended() => return Some((Err(guard.status()), None)),
                next = messages.next() => next?,
            };
            match guard.check().await {
                Ok(()) => Some((next, Some((guard, messages)))),
                Err(status) => Some((Err(status), None)),
            }
        })
    }
}

impl Shared {
    fn fetched(&self) -> Option<Instant> {
        *self.fetched.lock().expect("fetched lock")
    }

    /// Looks the token up (`fresh`: past the cache); ends the stream when it no longer names the stream's
    /// App ID, or cannot be checked (a request would be refused then too).
    async fn confirm(&self, fresh: bool) -> Result<(), DaprError> {
        if let Some(ending) = self.ending.get() {
            return Err(ending.clone());
        }
        let tokens = &self.gateway.0.tokens;
        let reason = match tokens.lookup(&self.token, fresh).await {
            Ok(Lookup { owner: Some(owner), fetched, .. })
                if owner.project_id == self.tenant.project_id && owner.app_id == self.tenant.app_id =>
            {
                let mut last = self.fetched.lock().expect("fetched lock");
                *last = Some(last.map_or(fetched, |last| last.max(fetched)));
                return Ok(());
            }
            Ok(_) => self.why_refused().await,
            Err(err) => {
                tracing::warn!(error = %err, app_id = %self.tenant.app_id, "cannot check a stream's token; ending it");
                DaprError::auth_unavailable()
            }
        };
        Err(self.end(reason))
    }

    /// The token is gone: NOT_FOUND when its App ID or project went with it, else UNAUTHENTICATED.
    async fn why_refused(&self) -> DaprError {
        match self.deleted().await {
            Ok(Some(deleted)) => deleted,
            Ok(None) => DaprError::credential_ended(),
            Err(err) => {
                tracing::warn!(error = %err, "cannot tell whether a stream's App ID still exists");
                DaprError::credential_ended()
            }
        }
    }

    /// What of the stream's project and App ID was deleted, if anything.
    async fn deleted(&self) -> Result<Option<DaprError>, StoreError> {
        let mut tx = self.gateway.0.control_plane.begin().await?;
        let project = match tx.project_by_id(&self.tenant.project_id).await {
            Err(StoreError::NotFound { .. }) => return Ok(Some(DaprError::project_deleted(&self.tenant.project))),
            found => found?,
        };
        match tx.app_id(&project.id, &self.tenant.app_id).await {
            Err(StoreError::NotFound { .. }) => Ok(Some(DaprError::app_id_deleted(&self.tenant.app_id))),
            found => found.map(|_| None),
        }
    }

    /// Ends the stream (the first reason stands); answers the reason.
    fn end(&self, reason: DaprError) -> DaprError {
        if self.ending.set(reason.clone()).is_ok() {
            let (app_id, reason) = (&self.tenant.app_id, reason.to_status());
            tracing::info!(%app_id, reason = %reason.message(), "stream ended with its credential");
        }
        self.ended.cancel();
        self.ending.get().cloned().unwrap_or(reason)
    }
}

/// A stream's timer: looks again when the token's answer runs out (or a change event asks), until the stream
/// is gone or its credential ended. Holds the guard only while looking, so a finished stream frees it.
async fn watch(guard: Weak<Shared>, ended: CancellationToken, recheck: Arc<Notify>) {
    loop {
        let Some(shared) = guard.upgrade() else { return };
        let period = shared.gateway.0.tokens.ttl().max(MIN_RECHECK);
        let due = shared.fetched().map_or_else(Instant::now, |fetched| fetched + period);
        drop(shared);
        let fresh = tokio::select! {
            () = ended.cancelled() => return,
            () = tokio::time::sleep_until(due.into()) => false,
            () = recheck.notified() => true,
        };
        let Some(shared) = guard.upgrade() else { return };
        // An error has ended the stream; the loop sees `ended` next.
        let _ = shared.confirm(fresh).await;
    }
}
