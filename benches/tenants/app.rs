//! The tenants' app: one small HTTP app standing in for every seeded App ID's `appEndpoint`, so that the
//! worker's delivery machinery sees every project as one it may have to call back. It answers
//! `GET /dapr/subscribe` with no subscriptions and anything else with 200, and counts what it is asked: a
//! call during an idle window is work the platform did for idle tenants. It runs on a thread and runtime of
//! its own, so that it neither waits for the bench's scheduler nor hides in its CPU.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use axum::extract::State;
use axum::http::Uri;
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::oneshot;

/// What the app was asked, since it started.
#[derive(Debug, Default)]
pub struct Calls {
    subscribe: AtomicU64,
    other: AtomicU64,
}

/// A reading of [`Calls`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    /// `GET /dapr/subscribe`.
    pub subscribe: u64,
    /// Anything else (health probes, deliveries, invocations).
    pub other: u64,
}

impl Counted {
    pub fn since(self, before: Counted) -> Counted {
        Counted { subscribe: self.subscribe - before.subscribe, other: self.other - before.other }
    }

    pub fn total(self) -> u64 {
        self.subscribe + self.other
    }
}

async fn subscribe(State(calls): State<Arc<Calls>>) -> Json<Vec<serde_json::Value>> {
    calls.subscribe.fetch_add(1, Ordering::Relaxed);
    Json(Vec::new())
}

async fn other(State(calls): State<Arc<Calls>>, _uri: Uri) -> &'static str {
    calls.other.fetch_add(1, Ordering::Relaxed);
    ""
}

/// The running app; stopped when dropped.
pub struct TenantApp {
    pub addr: SocketAddr,
    calls: Arc<Calls>,
    stop: Option<oneshot::Sender<()>>,
    joined: Option<std::thread::JoinHandle<()>>,
}

impl TenantApp {
    pub fn start() -> anyhow::Result<TenantApp> {
        let calls = Arc::new(Calls::default());
        let router =
            Router::new().route("/dapr/subscribe", get(subscribe)).fallback(other).with_state(Arc::clone(&calls));
        let (ready, started) = std::sync::mpsc::channel();
        let joined = std::thread::Builder::new().name("bench-tenant-app".to_owned()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = ready.send(Err(anyhow!("building the app's runtime: {err}")));
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(listener) => listener,
                    Err(err) => {
                        let _ = ready.send(Err(anyhow!("binding the app: {err}")));
                        return;
                    }
                };
                let addr = listener.local_addr().map_err(anyhow::Error::from);
                let (stop, stopped) = oneshot::channel::<()>();
                let _ = ready.send(addr.map(|addr| (addr, stop)));
                tokio::select! {
                    _ = axum::serve(listener, router) => {}
                    _ = stopped => {}
                }
            });
        })?;
        let (addr, stop) = started.recv().context("the app's thread ended before it was ready")??;
        Ok(TenantApp { addr, calls, stop: Some(stop), joined: Some(joined) })
    }

    /// The `appEndpoint` every App ID is registered with.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn counted(&self) -> Counted {
        Counted {
            subscribe: self.calls.subscribe.load(Ordering::Relaxed),
            other: self.calls.other.load(Ordering::Relaxed),
        }
    }
}

impl Drop for TenantApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(joined) = self.joined.take() {
            let _ = joined.join();
        }
    }
}
