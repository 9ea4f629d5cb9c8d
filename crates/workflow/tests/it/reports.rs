//! What committing turns and activity results reports for daprd's workflow metrics: the execution a turn began
//! (and how late), the instance a turn ended (its status, and how long it ran from its first turn, whether this
//! process remembers the history or reads it), an activity's result and how long it took from its scheduling.
//! Elapsed time is stood in for by moving stored times back, not by waiting.

use std::time::Duration;

use dapr_durabletask_proto as pb;
use outrigger_workflow::{ActivityReport, Engine, Status, TurnReport, WorkItem};
use pb::workflow_action::WorkflowActionType;

use super::{completes, engine_and_store, start, Db};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn answer(instance: &str, token: &str, action: WorkflowActionType) -> pb::WorkflowResponse {
    pb::WorkflowResponse {
        instance_id: instance.into(),
        completion_token: token.into(),
        actions: vec![pb::WorkflowAction { id: 1, router: None, workflow_action_type: Some(action) }],
        ..Default::default()
    }
}

/// `at_least` ≤ `elapsed` < `at_least` + a minute (the test's own run time).
#[track_caller]
fn about(elapsed: Duration, at_least: Duration) {
    assert!(elapsed >= at_least && elapsed < at_least + Duration::from_secs(60), "{elapsed:?} vs {at_least:?}");
}

both_databases!(reports_tell_what_turns_and_activity_results_began_and_ended);
async fn reports_tell_what_turns_and_activity_results_began_and_ended(db: Db) {
    let (engine, projects, store, _dir) = engine_and_store(db, &["alpha"]).await;
    let project = &projects[0];
    let pool = store.workflow_tables().into_pool();
    let shift = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query(sql).bind(project.as_str()).execute(&pool).await.unwrap() }
    };
    // Due two minutes ago; its first turn began a minute after that.
    let due = now_ms() - 120_000;
    let mut request = start("checkout", "i1");
    request.scheduled_start_timestamp = Some(prost_types::Timestamp {
        seconds: due.div_euclid(1000),
        nanos: (due.rem_euclid(1000) * 1_000_000) as i32,
    });
    engine.start(project, "app", request).await.unwrap();
    let (_, token) = engine.claim(project, "app", "stream").await.unwrap().expect("the first turn");
    shift("UPDATE wf_instances SET turn_started_at = turn_started_at - 60000 WHERE project_id = $1").await;
    let schedule = pb::ScheduleTaskAction { name: "charge".into(), ..Default::default() };
    let report =
        engine.complete_turn(project, "shop", answer("i1", &token, WorkflowActionType::ScheduleTask(schedule))).await;
    let TurnReport { app_id, workflow_name, scheduling_latency, ended } = report.unwrap().expect("a report");
    assert_eq!((app_id.as_str(), workflow_name.as_str(), ended), ("app", "checkout", None));
    about(scheduling_latency.expect("the turn began the execution"), Duration::from_secs(60));

    // The activity was scheduled half a minute ago, and fails.
    let (item, activity_token) = engine.claim(project, "app", "stream").await.unwrap().expect("the activity");
    let WorkItem::Activity(activity) = item else { panic!("expected the activity") };
    shift("UPDATE wf_activities SET created_at = created_at - 30000 WHERE project_id = $1").await;
    let failure = pb::ActivityResponse {
        instance_id: "i1".into(),
        task_id: activity.task_id,
        completion_token: activity_token.clone(),
        failure_details: Some(pb::TaskFailureDetails { error_message: "declined".into(), ..Default::default() }),
        ..Default::default()
    };
    let ActivityReport { app_id, activity_name, failed, elapsed } =
        engine.complete_activity(project, "shop", failure.clone()).await.unwrap().expect("a report");
    assert_eq!((app_id.as_str(), activity_name.as_str(), failed), ("app", "charge", true));
    about(elapsed, Duration::from_secs(30));
    assert_eq!(
        engine.complete_activity(project, "shop", failure).await.unwrap(),
        None,
        "a stale result reports nothing"
    );

    // The next turn is claimed here and answered through another gateway, which never saw the history: the
    // execution's start is read from it.
    let (_, token) = engine.claim(project, "app", "stream").await.unwrap().expect("the result's turn");
    let other = Engine::new(store.workflow_tables());
    let report =
        other.complete_turn(project, "shop", completes("i1", &token, "\"paid\"")).await.unwrap().expect("a report");
    assert_eq!(report.scheduling_latency, None, "a later turn begins no execution");
    let (status, ran) = report.ended.expect("the turn ended the instance");
    assert_eq!(status, Status::Completed);
    about(ran, Duration::from_secs(60));
    assert_eq!(
        other.complete_turn(project, "shop", completes("i1", &token, "\"again\"")).await.unwrap(),
        None,
        "stale"
    );

    // Ended in its first turn, with the history remembered here: terminated.
    engine.start(project, "app", start("cleanup", "i2")).await.unwrap();
    let (_, token) = engine.claim(project, "app", "stream").await.unwrap().expect("the first turn");
    shift("UPDATE wf_instances SET turn_started_at = turn_started_at - 5000 WHERE project_id = $1").await;
    let terminate = pb::CompleteWorkflowAction { workflow_status: Status::Terminated as i32, ..Default::default() };
    let report =
        engine.complete_turn(project, "shop", answer("i2", &token, WorkflowActionType::CompleteWorkflow(terminate)));
    let report = report.await.unwrap().expect("a report");
    assert_eq!(report.workflow_name, "cleanup");
    let (status, ran) = report.ended.expect("the turn ended the instance");
    assert_eq!(status, Status::Terminated);
    about(ran, Duration::from_secs(5));
    assert!(report.scheduling_latency.is_some());
}
