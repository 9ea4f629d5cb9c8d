//! daprd's HTTP workflow API over the engine; an engine on the same database plays the app's workflow worker.

use axum::http::StatusCode;
use dapr_durabletask_proto as pb;
use outrigger_workflow::{Engine, WorkItem};
use pb::workflow_action::WorkflowActionType;

use crate::harness::{Answer, TestGateway};

const BASE: &str = "/v1.0-beta1/workflows/dapr";

/// The app's side: claims the next turn of `app` and answers it with `actions`.
async fn run_turn(gateway: &TestGateway, project: &str, app: &str, actions: Vec<WorkflowActionType>) -> String {
    let project_id =
        gateway.store.begin().await.unwrap().project(&outrigger_store::OrgId::default_org(), project).await.unwrap().id;
    let engine = Engine::new(gateway.store.workflow_tables());
    let (item, completion_token) = engine.claim(&project_id, app, "test-worker").await.unwrap().expect("a turn");
    let WorkItem::Workflow(request) = item else { panic!("expected a workflow turn") };
    let actions = actions
        .into_iter()
        .enumerate()
        .map(|(id, action)| pb::WorkflowAction {
            id: id as i32,
            workflow_action_type: Some(action),
            ..Default::default()
        })
        .collect();
    let response = pb::WorkflowResponse {
        instance_id: request.instance_id.clone(),
        actions,
        completion_token,
        ..Default::default()
    };
    engine.complete_turn(&project_id, "shop", response).await.unwrap();
    request.instance_id
}

fn complete(status: pb::OrchestrationStatus, result: Option<&str>, failure: Option<&str>) -> WorkflowActionType {
    WorkflowActionType::CompleteWorkflow(pb::CompleteWorkflowAction {
        workflow_status: status as i32,
        result: result.map(str::to_owned),
        failure_details: failure.map(|message| pb::TaskFailureDetails {
            error_type: "ValueError".to_owned(),
            error_message: message.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

async fn status_of(gateway: &TestGateway, token: &str, instance: &str) -> Answer {
    gateway.http("GET", &format!("{BASE}/{instance}"), Some(token), None).await
}

#[tokio::test]
async fn start_get_complete_and_purge() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;

    let started = gateway
        .http("POST", &format!("{BASE}/checkout/start?instanceID=order-1"), Some(&token), Some(r#"{"item":"book"}"#))
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    assert_eq!(started.json(), serde_json::json!({ "instanceID": "order-1" }));

    let pending = status_of(&gateway, &token, "order-1").await;
    assert_eq!(pending.status, StatusCode::OK);
    let body = pending.json();
    assert_eq!(body["instanceID"], "order-1");
    assert_eq!(body["workflowName"], "checkout");
    assert_eq!(body["runtimeStatus"], "PENDING");
    assert_eq!(body["properties"]["dapr.workflow.input"], r#"{"item":"book"}"#);
    chrono::DateTime::parse_from_rfc3339(body["createdAt"].as_str().unwrap()).unwrap();
    chrono::DateTime::parse_from_rfc3339(body["lastUpdatedAt"].as_str().unwrap()).unwrap();

    // Purging an unfinished instance is refused and changes nothing.
    let refused = gateway.http("POST", &format!("{BASE}/order-1/purge"), Some(&token), None).await;
    refused.dapr_error(StatusCode::BAD_REQUEST, "ERR_PURGE_WORKFLOW");

    let ran = run_turn(
        &gateway,
        "shop",
        "orders",
        vec![complete(pb::OrchestrationStatus::Completed, Some(r#""shipped""#), None)],
    )
    .await;
    assert_eq!(ran, "order-1");
    let done = status_of(&gateway, &token, "order-1").await.json();
    assert_eq!(done["runtimeStatus"], "COMPLETED");
    assert_eq!(done["properties"]["dapr.workflow.output"], r#""shipped""#);

    let purged = gateway.http("POST", &format!("{BASE}/order-1/purge"), Some(&token), None).await;
    assert_eq!(purged.status, StatusCode::ACCEPTED);
    status_of(&gateway, &token, "order-1").await.dapr_error(StatusCode::NOT_FOUND, "ERR_INSTANCE_ID_NOT_FOUND");
    let again = gateway.http("POST", &format!("{BASE}/order-1/purge"), Some(&token), None).await;
    again.dapr_error(StatusCode::NOT_FOUND, "ERR_INSTANCE_ID_NOT_FOUND");
}

#[tokio::test]
async fn every_api_version_serves_the_same_instances() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    let started = gateway.http("POST", "/v1.0-alpha1/workflows/dapr/checkout/start", Some(&token), None).await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    let instance = started.json()["instanceID"].as_str().unwrap().to_owned();
    assert!(!instance.is_empty());
    for version in ["v1.0-alpha1", "v1.0-beta1", "v1.0"] {
        let got = gateway.http("GET", &format!("/{version}/workflows/dapr/{instance}"), Some(&token), None).await;
        assert_eq!(got.status, StatusCode::OK, "{version}");
        assert_eq!(got.json()["instanceID"], instance.as_str());
        // No input was given: none is reported.
        assert!(got.json()["properties"].get("dapr.workflow.input").is_none());
    }
}

#[tokio::test]
async fn pause_resume_raise_and_terminate() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    let started = gateway.http("POST", &format!("{BASE}/approval/start?instanceID=req-7"), Some(&token), None).await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    // The first turn waits (no actions): the instance runs.
    run_turn(&gateway, "shop", "orders", Vec::new()).await;
    assert_eq!(status_of(&gateway, &token, "req-7").await.json()["runtimeStatus"], "RUNNING");

    for (operation, expected) in [("pause", "SUSPENDED"), ("resume", "RUNNING")] {
        let answer = gateway.http("POST", &format!("{BASE}/req-7/{operation}"), Some(&token), None).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{operation}");
        assert_eq!(answer.json(), serde_json::json!({}));
        assert_eq!(status_of(&gateway, &token, "req-7").await.json()["runtimeStatus"], expected, "{operation}");
    }

    let raised =
        gateway.http("POST", &format!("{BASE}/req-7/raiseEvent/approved"), Some(&token), Some(r#"{"by":"ann"}"#)).await;
    assert_eq!(raised.status, StatusCode::ACCEPTED);
    let terminated = gateway.http("POST", &format!("{BASE}/req-7/terminate"), Some(&token), None).await;
    assert_eq!(terminated.status, StatusCode::ACCEPTED);

    // The worker's next turn sees the suspend, resume, event and terminate, in that order, and ends the instance.
    let project_id =
        gateway.store.begin().await.unwrap().project(&outrigger_store::OrgId::default_org(), "shop").await.unwrap().id;
    let engine = Engine::new(gateway.store.workflow_tables());
    let (item, completion_token) = engine.claim(&project_id, "orders", "w").await.unwrap().unwrap();
    let WorkItem::Workflow(request) = item else { panic!("expected a workflow turn") };
    let kinds: Vec<&str> = request
        .new_events
        .iter()
        .filter_map(|event| match event.event_type.as_ref()? {
            pb::history_event::EventType::ExecutionSuspended(_) => Some("suspended"),
            pb::history_event::EventType::ExecutionResumed(_) => Some("resumed"),
            pb::history_event::EventType::EventRaised(raised) => {
                assert_eq!(raised.name, "approved");
                assert_eq!(raised.input.as_deref(), Some(r#"{"by":"ann"}"#));
                Some("raised")
            }
            pb::history_event::EventType::ExecutionTerminated(_) => Some("terminated"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["suspended", "resumed", "raised", "terminated"]);
    let response = pb::WorkflowResponse {
        instance_id: request.instance_id,
        actions: vec![pb::WorkflowAction {
            id: 0,
            workflow_action_type: Some(complete(pb::OrchestrationStatus::Terminated, None, None)),
            ..Default::default()
        }],
        completion_token,
        ..Default::default()
    };
    engine.complete_turn(&project_id, "shop", response).await.unwrap();
    assert_eq!(status_of(&gateway, &token, "req-7").await.json()["runtimeStatus"], "TERMINATED");
}

#[tokio::test]
async fn a_failed_instance_reports_its_failure_and_no_output() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    gateway.http("POST", &format!("{BASE}/checkout/start?instanceID=bad-order"), Some(&token), None).await;
    run_turn(
        &gateway,
        "shop",
        "orders",
        vec![complete(pb::OrchestrationStatus::Failed, Some("ignored"), Some("out of stock"))],
    )
    .await;
    let body = status_of(&gateway, &token, "bad-order").await.json();
    assert_eq!(body["runtimeStatus"], "FAILED");
    assert_eq!(body["properties"]["dapr.workflow.failure.error_type"], "ValueError");
    assert_eq!(body["properties"]["dapr.workflow.failure.error_message"], "out of stock");
    assert!(body["properties"].get("dapr.workflow.output").is_none(), "{body}");
}

#[tokio::test]
async fn bad_requests_are_refused_with_daprs_codes() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    let cases = [
        ("POST", "/v1.0/workflows/temporal/checkout/start", "ERR_WORKFLOW_COMPONENT_NOT_FOUND"),
        ("GET", "/v1.0/workflows/temporal/some-id", "ERR_WORKFLOW_COMPONENT_NOT_FOUND"),
        ("POST", "/v1.0/workflows/dapr/checkout/start?instanceID=bad%24id", "ERR_INSTANCE_ID_INVALID"),
        ("POST", "/v1.0/workflows/dapr/checkout/start?instanceID=a.b", "ERR_INSTANCE_ID_INVALID"),
        ("POST", "/v1.0/workflows/dapr/checkout/start?appID=no%20spaces", "ERR_WORKFLOW_APP_ID_INVALID"),
    ];
    for (method, path, code) in cases {
        gateway.http(method, path, Some(&token), None).await.dapr_error(StatusCode::BAD_REQUEST, code);
    }
    let long = "x".repeat(65);
    let path = format!("{BASE}/checkout/start?instanceID={long}");
    gateway
        .http("POST", &path, Some(&token), None)
        .await
        .dapr_error(StatusCode::BAD_REQUEST, "ERR_INSTANCE_ID_TOO_LONG");
    // None of them created anything.
    let project_id =
        gateway.store.begin().await.unwrap().project(&outrigger_store::OrgId::default_org(), "shop").await.unwrap().id;
    let engine = Engine::new(gateway.store.workflow_tables());
    let page = engine.list(&project_id, &Default::default(), 10, None).await.unwrap();
    assert!(page.instances.is_empty(), "{:?}", page.instances);

    // A duplicate start is refused.
    let path = format!("{BASE}/checkout/start?instanceID=dup");
    assert_eq!(gateway.http("POST", &path, Some(&token), None).await.status, StatusCode::ACCEPTED);
    gateway.http("POST", &path, Some(&token), None).await.dapr_error(StatusCode::CONFLICT, "ERR_INSTANCE_ID_EXISTS");
    // Without a token nothing is served.
    assert_eq!(gateway.http("GET", &format!("{BASE}/dup"), None, None).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn another_project_cannot_see_or_touch_an_instance() {
    let gateway = TestGateway::start().await;
    let owner = gateway.app("shop", "orders").await;
    let stranger = gateway.app("rival", "orders").await;
    let started = gateway.http("POST", &format!("{BASE}/checkout/start?instanceID=secret"), Some(&owner), None).await;
    assert_eq!(started.status, StatusCode::ACCEPTED);

    status_of(&gateway, &stranger, "secret").await.dapr_error(StatusCode::NOT_FOUND, "ERR_INSTANCE_ID_NOT_FOUND");
    for operation in ["terminate", "pause", "resume", "purge", "raiseEvent/go"] {
        let answer = gateway.http("POST", &format!("{BASE}/secret/{operation}"), Some(&stranger), None).await;
        answer.dapr_error(StatusCode::NOT_FOUND, "ERR_INSTANCE_ID_NOT_FOUND");
    }
    // The stranger may use the same ID for its own instance, which stays apart.
    let own = gateway.http("POST", &format!("{BASE}/other/start?instanceID=secret"), Some(&stranger), None).await;
    assert_eq!(own.status, StatusCode::ACCEPTED);
    assert_eq!(status_of(&gateway, &owner, "secret").await.json()["workflowName"], "checkout");
    assert_eq!(status_of(&gateway, &stranger, "secret").await.json()["workflowName"], "other");
    // The owner's instance is untouched.
    assert_eq!(status_of(&gateway, &owner, "secret").await.json()["runtimeStatus"], "PENDING");
}

/// The next work item of a `GetWorkItems` stream (within the claim loops' polling, which is far shorter).
async fn next_item(work: &mut tonic::Streaming<pb::WorkItem>) -> pb::WorkItem {
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), work.message()).await;
    next.expect("a work item in time").unwrap().expect("the stream is open")
}

/// A worker's answer to a turn: one action.
fn answer_turn(item: pb::WorkItem, action: WorkflowActionType) -> pb::WorkflowResponse {
    let Some(pb::work_item::Request::WorkflowRequest(turn)) = item.request else {
        panic!("expected a workflow turn: {item:?}");
    };
    pb::WorkflowResponse {
        instance_id: turn.instance_id,
        actions: vec![pb::WorkflowAction { id: 0, workflow_action_type: Some(action), ..Default::default() }],
        completion_token: item.completion_token,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_workflow_run_over_grpc_moves_daprds_workflow_series() {
    use crate::harness::with_token;
    use pb::task_hub_sidecar_service_client::TaskHubSidecarServiceClient;

    let gateway = TestGateway::start().await;
    let token = gateway.app("metered-shop", "orders").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = outrigger_gateway::grpc_router(gateway.gateway.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}")).unwrap();
    let mut client = TaskHubSidecarServiceClient::new(channel.connect().await.unwrap());
    let mut work = client.get_work_items(with_token(pb::GetWorkItemsRequest {}, &token)).await.unwrap().into_inner();

    // The app's worker runs checkout: an activity, then completion.
    let start =
        pb::CreateInstanceRequest { instance_id: "order-9".into(), name: "checkout".into(), ..Default::default() };
    client.start_instance(with_token(start, &token)).await.unwrap();
    let schedule = pb::ScheduleTaskAction { name: "charge".into(), ..Default::default() };
    let turn = answer_turn(next_item(&mut work).await, WorkflowActionType::ScheduleTask(schedule));
    client.complete_workflow_task(with_token(turn, &token)).await.unwrap();
    let item = next_item(&mut work).await;
    let Some(pb::work_item::Request::ActivityRequest(activity)) = item.request else {
        panic!("expected the activity: {item:?}");
    };
    let result = pb::ActivityResponse {
        instance_id: "order-9".into(),
        task_id: activity.task_id,
        result: Some("1".into()),
        completion_token: item.completion_token,
        ..Default::default()
    };
    client.complete_activity_task(with_token(result, &token)).await.unwrap();
    let done = complete(pb::OrchestrationStatus::Completed, Some(r#""paid""#), None);
    let turn = answer_turn(next_item(&mut work).await, done);
    client.complete_workflow_task(with_token(turn, &token)).await.unwrap();

    // The client's operations: the state over HTTP, and an event for an instance that does not exist.
    assert_eq!(status_of(&gateway, &token, "order-9").await.json()["runtimeStatus"], "COMPLETED");
    let missing = pb::RaiseEventRequest { instance_id: "no-such".into(), name: "go".into(), ..Default::default() };
    client.raise_event(with_token(missing, &token)).await.unwrap_err();

    // The project's labels, PROJECT below: its name and its id.
    let project = format!(r#"project="metered-shop",project_id="{}""#, gateway.project_id("metered-shop").await);
    let text = outrigger_telemetry::metrics().render();
    for series in [
        r#"dapr_runtime_workflow_operation_count{app_id="orders",operation="create_workflow",PROJECT,status="success"} 1"#,
        r#"dapr_runtime_workflow_operation_count{app_id="orders",operation="get_workflow",PROJECT,status="success"} 1"#,
        r#"dapr_runtime_workflow_operation_count{app_id="orders",operation="add_event",PROJECT,status="failed"} 1"#,
        r#"dapr_runtime_workflow_operation_latency_count{app_id="orders",operation="create_workflow",PROJECT,status="success"} 1"#,
        r#"dapr_runtime_workflow_scheduling_latency_count{app_id="orders",PROJECT,workflow_name="checkout"} 1"#,
        r#"dapr_runtime_workflow_activity_operation_count{activity_name="charge",app_id="orders",PROJECT,status="success"} 1"#,
        r#"dapr_runtime_workflow_activity_execution_count{activity_name="charge",app_id="orders",PROJECT,status="success"} 1"#,
        r#"dapr_runtime_workflow_activity_execution_latency_count{activity_name="charge",app_id="orders",PROJECT,status="success"} 1"#,
        r#"dapr_runtime_workflow_execution_count{app_id="orders",PROJECT,status="success",workflow_name="checkout"} 1"#,
        r#"dapr_runtime_workflow_execution_latency_count{app_id="orders",PROJECT,status="success",workflow_name="checkout"} 1"#,
    ] {
        let series = series.replace("PROJECT", &project);
        assert!(text.contains(&series), "{series} missing from:\n{text}");
    }
}
