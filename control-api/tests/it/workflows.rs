//! Workflow instances through the control API; an engine on the same database plays the apps.

use axum::http::StatusCode;
use dapr_durabletask_proto as pb;
use outrigger_workflow::{Engine, WorkItem};
use pb::history_event::EventType;
use pb::workflow_action::WorkflowActionType;
use serde_json::{json, Value};

use crate::both_engines;
use crate::harness::TestApp;

both_engines!(listing_filters_and_pages, one_instance_with_its_history, operator_controls, projects_stay_apart);

struct Apps {
    engine: Engine,
    project_id: outrigger_store::ProjectId,
}

impl Apps {
    async fn new(app: &TestApp, project: &str) -> Apps {
        app.project(project).await;
        let project_id =
            app.store.begin().await.unwrap().project(&outrigger_store::OrgId::default_org(), project).await.unwrap().id;
        Apps { engine: Engine::new(app.store.workflow_tables()), project_id }
    }

    async fn start(&self, app_id: &str, name: &str, instance_id: &str, input: Option<&str>) {
        let request = pb::CreateInstanceRequest {
            instance_id: instance_id.to_owned(),
            name: name.to_owned(),
            input: input.map(str::to_owned),
            ..Default::default()
        };
        self.engine.start(&self.project_id, app_id, request).await.unwrap();
    }

    /// Claims the next turn of `app_id`, checks whose it is, and answers it with `actions`; the turn's new events.
    async fn turn(&self, app_id: &str, instance: &str, actions: Vec<WorkflowActionType>) -> Vec<pb::HistoryEvent> {
        let (item, completion_token) = self.engine.claim(&self.project_id, app_id, "test").await.unwrap().unwrap();
        let WorkItem::Workflow(request) = item else { panic!("expected a workflow turn") };
        assert_eq!(request.instance_id, instance);
        let actions = actions
            .into_iter()
            .enumerate()
            .map(|(id, action)| pb::WorkflowAction {
                id: id as i32,
                workflow_action_type: Some(action),
                ..Default::default()
            })
            .collect();
        let response =
            pb::WorkflowResponse { instance_id: instance.to_owned(), actions, completion_token, ..Default::default() };
        self.engine.complete_turn(&self.project_id, "shop", response).await.unwrap();
        request.new_events
    }
}

fn finish(result: &str) -> WorkflowActionType {
    WorkflowActionType::CompleteWorkflow(pb::CompleteWorkflowAction {
        workflow_status: pb::OrchestrationStatus::Completed as i32,
        result: Some(result.to_owned()),
        ..Default::default()
    })
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|item| item["instanceId"].as_str().unwrap().to_owned()).collect()
}

async fn listing_filters_and_pages(app: TestApp) {
    let apps = Apps::new(&app, "shop").await;
    for (app_id, name, instance) in [
        ("orders", "order", "o-1"),
        ("orders", "order", "o-2"),
        ("billing", "invoice", "b-1"),
        ("orders", "order", "o-3"),
        ("billing", "invoice", "b-2"),
    ] {
        apps.start(app_id, name, instance, None).await;
    }
    apps.turn("orders", "o-1", vec![finish("\"done\"")]).await;

    let base = "/api/v1/projects/shop/workflows";
    let all = app.get(base).await.expect(StatusCode::OK).json();
    let mut every = ids(&all);
    every.sort();
    assert_eq!(every, ["b-1", "b-2", "o-1", "o-2", "o-3"]);
    assert!(all.get("continuationToken").is_none(), "{all}");
    let first = &all["items"][0];
    assert!(first["createdAt"].is_string() && first["updatedAt"].is_string(), "{first}");

    let cases: [(&str, &[&str]); 6] = [
        ("appId=billing", &["b-1", "b-2"]),
        ("name=order", &["o-1", "o-2", "o-3"]),
        ("status=COMPLETED", &["o-1"]),
        ("status=pending", &["b-1", "b-2", "o-2", "o-3"]),
        ("status=COMPLETED,PENDING&appId=orders", &["o-1", "o-2", "o-3"]),
        ("createdFrom=2999-01-01T00:00:00Z", &[]),
    ];
    for (query, expected) in cases {
        let mut got = ids(&app.get(&format!("{base}?{query}")).await.expect(StatusCode::OK).json());
        got.sort();
        assert_eq!(got, expected, "{query}");
    }
    let created_to =
        ids(&app.get(&format!("{base}?createdTo=2999-01-01T00:00:00Z")).await.expect(StatusCode::OK).json());
    assert_eq!(created_to.len(), 5);

    // Pages of two cover everything once, newest first, in the same order as the single page.
    let mut paged = Vec::new();
    let mut url = format!("{base}?limit=2");
    let mut pages = 0;
    loop {
        let page = app.get(&url).await.expect(StatusCode::OK).json();
        pages += 1;
        assert!(page["items"].as_array().unwrap().len() <= 2);
        paged.extend(ids(&page));
        match page["continuationToken"].as_str() {
            Some(token) => url = format!("{base}?limit=2&continuationToken={token}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, ids(&all));

    app.get(&format!("{base}?status=SLEEPING")).await.expect_error(StatusCode::BAD_REQUEST, "invalid_status");
    app.get(&format!("{base}?continuationToken=not-ours"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_continuation_token");
    app.get(&format!("{base}?createdFrom=yesterday")).await.expect(StatusCode::BAD_REQUEST);
    app.get("/api/v1/projects/nowhere/workflows").await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

async fn one_instance_with_its_history(app: TestApp) {
    let apps = Apps::new(&app, "shop").await;
    apps.start("orders", "checkout", "c-1", Some(r#"{"item":"book"}"#)).await;
    let schedule = WorkflowActionType::ScheduleTask(pb::ScheduleTaskAction {
        name: "reserve".to_owned(),
        input: Some("\"book\"".to_owned()),
        ..Default::default()
    });
    apps.turn("orders", "c-1", vec![schedule]).await;

    let running = app.get("/api/v1/projects/shop/workflows/c-1").await.expect(StatusCode::OK).json();
    assert_eq!(running["status"], "RUNNING");
    assert_eq!(running["appId"], "orders");
    assert_eq!(running["name"], "checkout");
    assert_eq!(running["input"], r#"{"item":"book"}"#);
    let kinds: Vec<&str> = running["history"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["WorkflowStarted", "ExecutionStarted", "TaskScheduled"]);
    assert_eq!(running["history"][1]["details"], json!({ "name": "checkout", "input": r#"{"item":"book"}"# }));
    assert_eq!(running["history"][2]["eventId"], 0);
    assert_eq!(running["history"][2]["details"]["name"], "reserve");

    let failed = WorkflowActionType::CompleteWorkflow(pb::CompleteWorkflowAction {
        workflow_status: pb::OrchestrationStatus::Failed as i32,
        failure_details: Some(pb::TaskFailureDetails {
            error_type: "OutOfStock".to_owned(),
            error_message: "no books left".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    });
    // Finish the instance without the activity's answer: the failure is what the operator sees.
    let project = apps.project_id.clone();
    let (item, token) = apps.engine.claim(&project, "orders", "test").await.unwrap().unwrap();
    let WorkItem::Activity(activity) = item else { panic!("expected the activity") };
    assert_eq!(activity.name, "reserve");
    let answer = pb::ActivityResponse {
        instance_id: "c-1".to_owned(),
        task_id: activity.task_id,
        result: Some("false".to_owned()),
        completion_token: token,
        ..Default::default()
    };
    apps.engine.complete_activity(&project, "shop", answer).await.unwrap();
    apps.turn("orders", "c-1", vec![failed]).await;

    let done = app.get("/api/v1/projects/shop/workflows/c-1").await.expect(StatusCode::OK).json();
    assert_eq!(done["status"], "FAILED");
    assert_eq!(done["failure"], json!({ "errorType": "OutOfStock", "errorMessage": "no books left" }));
    assert!(done["completedAt"].is_string());
    let last = done["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "ExecutionCompleted");
    assert_eq!(last["details"]["status"], "FAILED");
    let completed = done["history"].as_array().unwrap().iter().find(|e| e["kind"] == "TaskCompleted").unwrap();
    assert_eq!(completed["details"], json!({ "taskScheduledId": 0, "result": "false" }));

    app.get("/api/v1/projects/shop/workflows/nope").await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

async fn operator_controls(app: TestApp) {
    let apps = Apps::new(&app, "shop").await;
    apps.start("orders", "approval", "r-1", None).await;
    apps.turn("orders", "r-1", Vec::new()).await;
    let base = "/api/v1/projects/shop/workflows/r-1";
    let status = |answer: Value| answer["status"].as_str().unwrap().to_owned();

    app.post_json(&format!("{base}/suspend"), json!({ "reason": "audit" })).await.expect(StatusCode::ACCEPTED);
    assert_eq!(status(app.get(base).await.expect(StatusCode::OK).json()), "SUSPENDED");
    app.post_json(&format!("{base}/resume"), json!({})).await.expect(StatusCode::ACCEPTED);
    assert_eq!(status(app.get(base).await.expect(StatusCode::OK).json()), "RUNNING");
    app.post_json(&format!("{base}/events/approved"), json!({ "data": { "by": "ann" } }))
        .await
        .expect(StatusCode::ACCEPTED);
    app.post_json(&format!("{base}/events/approved"), json!({ "unknown": 1 }))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);

    // Purging what still runs is refused and changes nothing.
    app.delete(base).await.expect_error(StatusCode::CONFLICT, "instance_running");
    app.post_json(&format!("{base}/terminate"), json!({ "output": "stopped by operator" }))
        .await
        .expect(StatusCode::ACCEPTED);

    let seen = apps.turn("orders", "r-1", Vec::new()).await;
    let seen: Vec<(&str, Option<String>)> = seen
        .iter()
        .filter_map(|event| match event.event_type.as_ref()? {
            EventType::ExecutionSuspended(e) => Some(("suspended", e.input.clone())),
            EventType::ExecutionResumed(e) => Some(("resumed", e.input.clone())),
            EventType::EventRaised(e) => Some(("raised", e.input.clone())),
            EventType::ExecutionTerminated(e) => Some(("terminated", e.input.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("suspended", Some("audit".to_owned())),
            ("resumed", None),
            ("raised", Some(r#"{"by":"ann"}"#.to_owned())),
            ("terminated", Some(r#""stopped by operator""#.to_owned())),
        ]
    );

    app.delete(&format!("{base}?force=true")).await.expect(StatusCode::NO_CONTENT);
    app.get(base).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    for operation in ["suspend", "resume", "terminate", "events/x"] {
        app.post_json(&format!("{base}/{operation}"), json!({})).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    app.delete(base).await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

async fn projects_stay_apart(app: TestApp) {
    let shop = Apps::new(&app, "shop").await;
    let rival = Apps::new(&app, "rival").await;
    shop.start("orders", "order", "same-id", None).await;
    rival.start("orders", "other", "same-id", None).await;
    rival.start("orders", "other", "rival-only", None).await;

    assert_eq!(ids(&app.get("/api/v1/projects/shop/workflows").await.expect(StatusCode::OK).json()), ["same-id"]);
    app.get("/api/v1/projects/shop/workflows/rival-only").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    let shop_view = app.get("/api/v1/projects/shop/workflows/same-id").await.expect(StatusCode::OK).json();
    assert_eq!(shop_view["name"], "order");

    // Deleting a project deletes its instances and nothing of another's.
    app.delete("/api/v1/projects/rival").await.expect(StatusCode::NO_CONTENT);
    for gone in ["same-id", "rival-only"] {
        assert!(rival.engine.detail(&rival.project_id, gone).await.unwrap().is_none(), "{gone} outlived its project");
    }
    assert!(shop.engine.detail(&shop.project_id, "same-id").await.unwrap().is_some());
    assert_eq!(ids(&app.get("/api/v1/projects/shop/workflows").await.expect(StatusCode::OK).json()), ["same-id"]);
}
