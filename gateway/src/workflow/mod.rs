//! Dapr's workflow protocol (`TaskHubSidecarService`, no proto package) on the Dapr gRPC port: the client rpcs
//! (start, get, wait, raise, terminate, suspend, resume, purge by ID or filter, history, instance IDs) and the worker's side (`GetWorkItems` stream,
//! `CompleteOrchestratorTask` and its new name `CompleteWorkflowTask`, `CompleteActivityTask`), authenticated by
//! the App ID token like every call. Instances belong to the caller's project and run on the workers of the
//! App ID that started them.
//! A `GetWorkItems` stream ends when its credential does ([`crate::stream_guard`]); its work goes back.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{post, MethodRouter};
use dapr_durabletask_proto as pb;
use outrigger_bus::Tenant;
use outrigger_workflow::{Attachment, Handed, InstanceFilter, Status, WorkItem, WorkflowError, MAX_PAGE};
use tokio::sync::{mpsc, Notify};
use tracing::Instrument;

use crate::grpc_api::{admit_stream, rpc, Caller};
use crate::stream_guard::StreamGuard;

pub(crate) mod http;
use crate::{DaprError, Gateway};

const SERVICE: &str = "/TaskHubSidecarService/";

/// How often a work-item stream renews the leases of what it holds.
const RENEW_EVERY: Duration = Duration::from_secs(10);

/// How long a stream waits for news of work before it looks again (timers, expired leases and work made in
/// other processes are found by looking).
const POLL: Duration = Duration::from_millis(100);

/// Claims a stream runs at once. Work made here is handed over without a claim; claims serve the rest
/// (starts made in another gateway, timers, released leases), each a few round trips to the database.
const CLAIMERS: usize = 2;

/// The routes of `TaskHubSidecarService`.
pub fn routes() -> Vec<(String, MethodRouter<Gateway>)> {
    let rpcs: [(&str, MethodRouter<Gateway>); 16] = [
        ("Hello", rpc(hello)),
        ("StartInstance", rpc(start_instance)),
        ("GetInstance", rpc(get_instance)),
        ("WaitForInstanceStart", rpc(wait_for_start)),
        ("WaitForInstanceCompletion", rpc(wait_for_completion)),
        ("RaiseEvent", rpc(raise_event)),
        ("TerminateInstance", rpc(terminate)),
        ("SuspendInstance", rpc(suspend)),
        ("ResumeInstance", rpc(resume)),
        ("PurgeInstances", rpc(purge)),
        ("GetInstanceHistory", rpc(get_instance_history)),
        ("ListInstanceIDs", rpc(list_instance_ids)),
        ("GetWorkItems", get_work_items()),
        ("CompleteOrchestratorTask", rpc(complete_workflow_task)),
        ("CompleteWorkflowTask", rpc(complete_workflow_task)),
        ("CompleteActivityTask", rpc(complete_activity_task)),
    ];
    rpcs.into_iter().map(|(name, route)| (format!("{SERVICE}{name}"), route)).collect()
}

fn engine(gateway: &Gateway) -> &outrigger_workflow::Engine {
    &gateway.0.workflows
}

async fn hello(_: Gateway, _: Caller, _: ()) -> Result<(), DaprError> {
    Ok(())
}

async fn start_instance(
    gateway: Gateway,
    caller: Caller,
    request: pb::CreateInstanceRequest,
) -> Result<pb::CreateInstanceResponse, DaprError> {
    let tenant = &caller.tenant;
    let instance_id = engine(&gateway).start(&tenant.project_id, &tenant.app_id, request).await?;
    Ok(pb::CreateInstanceResponse { instance_id })
}

fn instance_answer(state: Option<pb::WorkflowState>) -> pb::GetInstanceResponse {
    pb::GetInstanceResponse { exists: state.is_some(), workflow_state: state }
}

async fn get_instance(
    gateway: Gateway,
    caller: Caller,
    request: pb::GetInstanceRequest,
) -> Result<pb::GetInstanceResponse, DaprError> {
    let state =
        engine(&gateway).state(&caller.tenant.project_id, &request.instance_id, request.get_inputs_and_outputs).await?;
    Ok(instance_answer(state))
}

/// Waits until `done` holds for the instance's status; the gateway shutting down ends the wait (the client
/// retries elsewhere).
async fn wait_until(
    gateway: &Gateway,
    caller: &Caller,
    request: &pb::GetInstanceRequest,
    done: impl Fn(i32) -> bool,
) -> Result<pb::GetInstanceResponse, DaprError> {
    let waited =
        engine(gateway).wait(&caller.tenant.project_id, &request.instance_id, request.get_inputs_and_outputs, done);
    tokio::select! {
        state = waited => Ok(instance_answer(state?)),
        () = gateway.0.closing.cancelled() => Err(DaprError::shutting_down()),
    }
}

async fn wait_for_start(
    gateway: Gateway,
    caller: Caller,
    request: pb::GetInstanceRequest,
) -> Result<pb::GetInstanceResponse, DaprError> {
    wait_until(&gateway, &caller, &request, |status| status != Status::Pending as i32).await
}

async fn wait_for_completion(
    gateway: Gateway,
    caller: Caller,
    request: pb::GetInstanceRequest,
) -> Result<pb::GetInstanceResponse, DaprError> {
    let ended = |status: i32| {
        [Status::Completed, Status::Failed, Status::Terminated, Status::Canceled].iter().any(|s| *s as i32 == status)
    };
    wait_until(&gateway, &caller, &request, ended).await
}

async fn raise_event(
    gateway: Gateway,
    caller: Caller,
    request: pb::RaiseEventRequest,
) -> Result<pb::RaiseEventResponse, DaprError> {
    engine(&gateway).raise(&caller.tenant.project_id, &request.instance_id, &request.name, request.input).await?;
    Ok(pb::RaiseEventResponse {})
}

async fn terminate(
    gateway: Gateway,
    caller: Caller,
    request: pb::TerminateRequest,
) -> Result<pb::TerminateResponse, DaprError> {
    let project = &caller.tenant.project_id;
    engine(&gateway).terminate(project, &request.instance_id, request.output, request.recursive).await?;
    Ok(pb::TerminateResponse {})
}

async fn suspend(
    gateway: Gateway,
    caller: Caller,
    request: pb::SuspendRequest,
) -> Result<pb::SuspendResponse, DaprError> {
    engine(&gateway).suspend(&caller.tenant.project_id, &request.instance_id, true, request.reason).await?;
    Ok(pb::SuspendResponse {})
}

async fn resume(gateway: Gateway, caller: Caller, request: pb::ResumeRequest) -> Result<pb::ResumeResponse, DaprError> {
    engine(&gateway).suspend(&caller.tenant.project_id, &request.instance_id, false, request.reason).await?;
    Ok(pb::ResumeResponse {})
}

async fn purge(
    gateway: Gateway,
    caller: Caller,
    request: pb::PurgeInstancesRequest,
) -> Result<pb::PurgeInstancesResponse, DaprError> {
    use pb::purge_instances_request::Request as Which;
    let project = &caller.tenant.project_id;
    let deleted = match request.request {
        Some(Which::InstanceId(instance)) => {
            engine(&gateway).purge(project, &instance, request.recursive, request.force.unwrap_or(false)).await?
        }
        Some(Which::PurgeInstanceFilter(filter)) => {
            engine(&gateway).purge_matching(project, &InstanceFilter::from(filter), request.recursive).await?
        }
        None => return Err(WorkflowError::Invalid("name an instance or give a filter".to_owned()).into()),
    };
    Ok(pb::PurgeInstancesResponse { deleted_instance_count: deleted, is_complete: Some(true) })
}

async fn get_instance_history(
    gateway: Gateway,
    caller: Caller,
    request: pb::GetInstanceHistoryRequest,
) -> Result<pb::GetInstanceHistoryResponse, DaprError> {
    let events = engine(&gateway)
        .history_of(&caller.tenant.project_id, &request.instance_id)
        .await?
        .ok_or(WorkflowError::NotFound(request.instance_id))?;
    Ok(pb::GetInstanceHistoryResponse { events })
}

/// `ListInstanceIDs`: the project's instances, newest first (the whole project, as the caller's token is
/// the project's).
async fn list_instance_ids(
    gateway: Gateway,
    caller: Caller,
    request: pb::ListInstanceIDsRequest,
) -> Result<pb::ListInstanceIDsResponse, DaprError> {
    let page = engine(&gateway)
        .list(
            &caller.tenant.project_id,
            &InstanceFilter::default(),
            request.page_size.unwrap_or(MAX_PAGE),
            request.continuation_token.as_deref().filter(|token| !token.is_empty()),
        )
        .await?;
    Ok(pb::ListInstanceIDsResponse {
        instance_ids: page.instances.into_iter().map(|instance| instance.instance_id).collect(),
        continuation_token: page.continuation,
    })
}

async fn complete_workflow_task(
    gateway: Gateway,
    caller: Caller,
    response: pb::WorkflowResponse,
) -> Result<pb::CompleteTaskResponse, DaprError> {
    engine(&gateway).complete_turn(&caller.tenant.project_id, response).await?;
    Ok(pb::CompleteTaskResponse {})
}

async fn complete_activity_task(
    gateway: Gateway,
    caller: Caller,
    response: pb::ActivityResponse,
) -> Result<pb::CompleteTaskResponse, DaprError> {
    engine(&gateway).complete_activity(&caller.tenant.project_id, response).await?;
    Ok(pb::CompleteTaskResponse {})
}

/// `GetWorkItems`: a server stream of the turns and activities of the caller's App ID.
fn get_work_items() -> MethodRouter<Gateway> {
    post(|State(gateway): State<Gateway>, request: Request| async move {
        let (tenant, guard, span) = match admit_stream(&gateway, request.headers(), request.uri().path()).await {
            Ok(admitted) => admitted,
            Err(refused) => return refused,
        };
        let service = tower::service_fn(move |_: tonic::Request<pb::GetWorkItemsRequest>| {
            let (gateway, tenant, guard) = (gateway.clone(), tenant.clone(), guard.clone());
            async move {
                let (sender, receiver) = mpsc::channel(16);
                tokio::spawn(feed(gateway, tenant, guard.clone(), sender).in_current_span());
                let items = guard.hand_over(tokio_stream::wrappers::ReceiverStream::new(receiver));
                Ok::<_, tonic::Status>(tonic::Response::new(items))
            }
        });
        let codec = crate::grpc_codec::Codec::<pb::WorkItem, pb::GetWorkItemsRequest>::default();
        let response: Response<tonic::body::Body> =
            tonic::server::Grpc::new(codec).server_streaming(service, request).instrument(span).await;
        response.map(axum::body::Body::new)
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
    let (project, app_id) = (tenant.project_id.as_str(), tenant.app_id.as_str());
    let Attachment { owner, mut handed, work } = engine.attach(project, app_id);
    tracing::info!(%app_id, "workflow worker connected");
    let forward = async {
        while let Some(item) = handed.recv().await {
            if !send(&sender, item).await {
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

/// Sends one work item down the stream; false when the stream has closed.
async fn send(sender: &mpsc::Sender<Result<pb::WorkItem, tonic::Status>>, (item, completion_token): Handed) -> bool {
    let request = match item {
        WorkItem::Workflow(request) => pb::work_item::Request::WorkflowRequest(request),
        WorkItem::Activity(request) => pb::work_item::Request::ActivityRequest(request),
    };
    sender.send(Ok(pb::WorkItem { completion_token, request: Some(request) })).await.is_ok()
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
                if !send(sender, item).await {
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
