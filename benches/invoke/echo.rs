//! The callee: a small HTTP app answering `POST /echo` with the body it got. It runs on a thread and
//! runtime of its own, so that it neither waits for the load generator's scheduler nor hides in its CPU.

use std::net::SocketAddr;

use anyhow::{anyhow, Context};
use axum::body::Bytes;
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;
use tokio::sync::oneshot;

use crate::common::procs;

/// The path the app answers, directly and as the invoked method.
pub const METHOD: &str = "echo";

async fn echo(body: Bytes) -> Bytes {
    body
}

/// The running app; stopped when dropped.
pub struct EchoApp {
    pub addr: SocketAddr,
    /// Its thread, as "self/task/<tid>", for its CPU.
    pub thread: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    joined: Option<std::thread::JoinHandle<()>>,
}

impl EchoApp {
    pub fn start() -> anyhow::Result<EchoApp> {
        let router = Router::new().route(&format!("/{METHOD}"), post(echo));
        let (ready, started) = std::sync::mpsc::channel();
        let joined = std::thread::Builder::new().name("bench-echo".to_owned()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = ready.send(Err(anyhow!("building the echo app's runtime: {err}")));
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(listener) => listener,
                    Err(err) => {
                        let _ = ready.send(Err(anyhow!("binding the echo app: {err}")));
                        return;
                    }
                };
                let addr = listener.local_addr().map_err(anyhow::Error::from);
                // As an app tuned for request/response would: no answer waits for Nagle's algorithm.
                let listener = listener.tap_io(|stream| {
                    let _ = stream.set_nodelay(true);
                });
                let (stop, stopped) = oneshot::channel::<()>();
                let _ = ready.send(addr.map(|addr| (addr, stop, procs::current_thread())));
                tokio::select! {
                    _ = axum::serve(listener, router) => {}
                    _ = stopped => {}
                }
            });
        })?;
        let (addr, stop, thread) = started.recv().context("the echo app's thread ended before it was ready")??;
        Ok(EchoApp { addr, thread, stop: Some(stop), joined: Some(joined) })
    }
}

impl Drop for EchoApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(joined) = self.joined.take() {
            let _ = joined.join();
        }
    }
}
