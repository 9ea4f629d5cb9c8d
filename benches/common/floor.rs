//! The floor a bench measures beside Outrigger: the least an HTTP front can do for the same call, so that what any
//! gateway adds on this machine (an HTTP hop, two more wake-ups of an idle process per call, the parsing on both
//! sides) is told apart from what Outrigger adds beyond it. Each bench gives the router (a Redis read, a forwarded
//! POST); this module runs it as Outrigger runs its servers, and nothing more: axum and hyper, a tokio runtime with as
//! many workers as Outrigger's, `TCP_NODELAY`, in a process of its own. No token, no tenant, no telemetry.
//!
//! The bench binary becomes the floor when started with [`FLOOR_UPSTREAM`] set to what it fronts: [`serve_if_asked`],
//! first thing in `main`, then prints the ready line the bench waits for from Outrigger and serves until SIGTERM.
//! A bench serving a floor also sets Outrigger's allocator (mimalloc) as its global allocator.

use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::Context;
use axum::serve::ListenerExt;

use crate::common::procs::{Process, Ready};

/// Set to an address, the bench binary serves the floor for it instead of benchmarking.
const FLOOR_UPSTREAM: &str = "BENCH_FLOOR_UPSTREAM";

/// Starts the floor in front of `upstream` (this binary, `start` runs it: directly or under callgrind); answers the
/// process and the address it serves.
pub fn start(
    upstream: &str,
    start: impl FnOnce(&str, &Path, &[(&str, String)]) -> anyhow::Result<(Process, Ready)>,
) -> anyhow::Result<(Process, String)> {
    let binary: PathBuf = std::env::current_exe().context("finding the bench binary, which serves the floor")?;
    let (process, ready) = start("floor", &binary, &[(FLOOR_UPSTREAM, upstream.to_owned())])?;
    let address = ready.dapr_http.context("the floor's ready line has no dapr_http")?;
    Ok((process, address))
}

/// When [`FLOOR_UPSTREAM`] is set, serves the router `router` makes for that address until SIGTERM, then exits,
/// never returning.
pub fn serve_if_asked<R>(router: impl FnOnce(String) -> R)
where
    R: Future<Output = anyhow::Result<axum::Router>>,
{
    let Some(upstream) = std::env::var(FLOOR_UPSTREAM).ok() else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("the floor's runtime");
    if let Err(err) = runtime.block_on(async move { serve(router(upstream).await?).await }) {
        eprintln!("floor: {err:#}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

async fn serve(router: axum::Router) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // The line `Process::start` waits for, in the shape of Outrigger's.
    println!("{}", serde_json::json!({"fields": {"message": "outrigger ready", "dapr_http": address.to_string()}}));
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            terminate.recv().await;
        })
        .await?;
    Ok(())
}
