//! durabletask's `GetWorkItems`: a server stream of the turns and activities of the caller's App ID. Work made
//! in this process is handed to the stream at once; claims find the rest (starts made in another gateway,
//! timers, released leases). The stream ends when its credential does ([`crate::stream_guard`]); its work
//! goes back.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{post, MethodRouter};
use dapr_durabletask_proto as pb;
use outrigger_bus::Tenant;
use outrigger_telemetry::metrics::ExecutionStatus;
use outrigger_workflow::{Attachment, Handed, WorkItem};
use tokio::sync::{mpsc, Notify};
use tracing::Instrument;

use super::grpc::admit_stream;
use super::workflow::engine;
use crate::stream_guard::StreamGuard;
use crate::Gateway;

/// How often a work-item stream renews the leases of what it holds.
const RENEW_EVERY: Duration = Duration::from_secs(10);

/// How long a stream waits for news of work before it looks again (timers, expired leases and work made in
/// other processes are found by looking).
const POLL: Duration = Duration::from_millis(100);

/// Claims a stream runs at once. Work made here is handed over without a claim; claims serve the rest
/// (starts made in another gateway, timers, released leases), each a few round trips to the database.
const CLAIMERS: usize = 2;

/// `GetWorkItems`: a server stream of the turns and activities of the caller's App ID.
pub(super) fn get_work_items() -> MethodRouter<Gateway> {
    post(|State(gateway): State<Gateway>, mut request: Request| async move {
        let (tenant, guard, span, opening) = match admit_stream(&gateway, &mut request).await {
            Ok(admitted) => admitted,
            Err(refused) => return refused,
        };
        let service = {
            let (gateway, tenant) = (gateway.clone(), tenant.clone());
            tower::service_fn(move |_: tonic::Request<pb::GetWorkItemsRequest>| {
                let (gateway, tenant, guard) = (gateway.clone(), tenant.clone(), guard.clone());
                async move {
                    let (sender, receiver) = mpsc::channel(16);
                    tokio::spawn(feed(gateway, tenant, guard.clone(), sender).in_current_span());
                    let items = guard.hand_over(tokio_stream::wrappers::ReceiverStream::new(receiver));
                    Ok::<_, tonic::Status>(tonic::Response::new(items))
                }
            })
        };
        let codec = crate::grpc_codec::Codec::<pb::WorkItem, pb::GetWorkItemsRequest>::default();
        let response: Response<tonic::body::Body> =
            tonic::server::Grpc::new(codec).server_streaming(service, request).instrument(span).await;
        opening.answered(&gateway, &tenant, response)
    })
}

/// Sends the work handed to the stream and claims what nobody handed it, until the app goes away or its
/// credential ends; then gives back what it held (sent or not: the guard hands nothing over after its end).
async fn feed(
    gateway: Gateway,
    tenant: Tenant,
    guard: StreamGuard,
    sender: mpsc::Sender<Result<pb::WorkItem, tonic::Status>>,
) {
    let engine = engine(&gateway);
    let (project, app_id) = (&tenant.project_id, &*tenant.app_id);
    let Attachment { owner, mut handed, work } = engine.attach(project, app_id);
    tracing::info!(%app_id, "workflow worker connected");
    let forward = async {
        while let Some(item) = handed.recv().await {
            if !send(&sender, &tenant, item).await {
                return;
            }
        }
    };
    let claimers = futures_util::future::join_all(
        (0..CLAIMERS).map(|_| claim_and_send(&gateway, &tenant, &owner, &work, &sender)),
    );
    let renewals = async {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            if let Err(err) = engine.renew(&owner).await {
                tracing::warn!(error = %err, "renewing workflow leases failed");
            }
        }
    };
    tokio::select! {
        () = forward => {}
        _ = claimers => {}
        () = renewals => {}
        () = guard.ended() => {}
    }
    // No more hand-offs, and what was handed but not sent is dropped before the leases go back: work
    // leased to this stream after the release finds the stream gone and is released by itself.
    engine.detach(project, app_id, &owner);
    drop(handed);
    tracing::info!(%app_id, "workflow worker disconnected; its work goes to the next stream");
    if let Err(err) = engine.release(&owner).await {
        tracing::warn!(error = %err, "releasing workflow leases failed; they run out by themselves");
    }
}

/// Sends one work item down the stream; false when the stream has closed. An activity handed over (or not, and
/// so handed out again later) counts in daprd's `dapr_runtime_workflow_activity_operation_*`.
async fn send(
    sender: &mpsc::Sender<Result<pb::WorkItem, tonic::Status>>,
    tenant: &Tenant,
    (item, completion_token): Handed,
) -> bool {
    let (request, activity) = match item {
        WorkItem::Workflow(request) => (pb::work_item::Request::WorkflowRequest(request), None),
        WorkItem::Activity(request) => {
            let name = request.name.clone();
            (pb::work_item::Request::ActivityRequest(request), Some(name))
        }
    };
    let started = std::time::Instant::now();
    let sent = sender.send(Ok(pb::WorkItem { completion_token, request: Some(request) })).await.is_ok();
    if let Some(name) = activity {
        let status = if sent { ExecutionStatus::Success } else { ExecutionStatus::Recoverable };
        let runtime = outrigger_telemetry::metrics().runtime();
        runtime.activity_operation(tenant.metric_labels(), &name, status, started.elapsed());
    }
    sent
}

/// One of a stream's claim loops: claims the next due item and sends it, or waits for news of work.
async fn claim_and_send(
    gateway: &Gateway,
    tenant: &Tenant,
    owner: &str,
    work: &Notify,
    sender: &mpsc::Sender<Result<pb::WorkItem, tonic::Status>>,
) {
    let engine = engine(gateway);
    loop {
        // Listening before looking: news arriving while the claim runs must not be slept through.
        let news = work.notified();
        tokio::pin!(news);
        news.as_mut().enable();
        match engine.claim(&tenant.project_id, &tenant.app_id, owner).await {
            Ok(Some(item)) => {
                if !send(sender, tenant, item).await {
                    return;
                }
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "claiming workflow work failed; trying again"),
        }
        tokio::select! {
            () = sender.closed() => return,
            () = gateway.0.closing.cancelled() => return,
            _ = tokio::time::timeout(POLL, news) => {}
        }
    }
}
