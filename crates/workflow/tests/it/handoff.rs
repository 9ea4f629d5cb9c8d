//! Work made in this process goes straight to a stream attached here, leased to it in the transaction that
//! made it; a stream that went away gives it back at once; a history remembered here is used only while it
//! is still the whole history.

use dapr_durabletask_proto as pb;
use outrigger_workflow::{Attachment, Engine, Status, WorkItem};
use pb::workflow_action::WorkflowActionType;

use super::{completes, engine_and_store, engine_with_projects, event_kinds, start, Db};

fn schedules(instance: &str, token: &str, task_id: i32) -> pb::WorkflowResponse {
    let schedule = pb::ScheduleTaskAction { name: "act".into(), input: Some("1".into()), ..Default::default() };
    pb::WorkflowResponse {
        instance_id: instance.into(),
        completion_token: token.into(),
        actions: vec![pb::WorkflowAction {
            id: task_id,
            router: None,
            workflow_action_type: Some(WorkflowActionType::ScheduleTask(schedule)),
        }],
        ..Default::default()
    }
}

fn answers(activity: &pb::ActivityRequest, token: &str, result: &str) -> pb::ActivityResponse {
    pb::ActivityResponse {
        instance_id: activity.workflow_instance.as_ref().unwrap().instance_id.clone(),
        task_id: activity.task_id,
        completion_token: token.into(),
        result: Some(result.into()),
        ..Default::default()
    }
}

fn handed_turn(stream: &mut Attachment) -> (pb::WorkflowRequest, String) {
    match stream.handed.try_recv().expect("a turn was handed to the stream") {
        (WorkItem::Workflow(turn), token) => (turn, token),
        (WorkItem::Activity(_), _) => panic!("expected a workflow turn, got an activity"),
    }
}

fn handed_activity(stream: &mut Attachment) -> (pb::ActivityRequest, String) {
    match stream.handed.try_recv().expect("an activity was handed to the stream") {
        (WorkItem::Activity(activity), token) => (activity, token),
        (WorkItem::Workflow(_), _) => panic!("expected an activity, got a workflow turn"),
    }
}

both_databases!(work_made_here_is_handed_to_an_attached_stream_without_a_claim);
async fn work_made_here_is_handed_to_an_attached_stream_without_a_claim(db: Db) {
    let (engine, projects, _dir) = engine_with_projects(db, &["alpha"]).await;
    let project = &projects[0];
    let mut stream = engine.attach(project, "app");
    let mut bystander = engine.attach(project, "another-app");

    engine.start(project, "app", start("wf", "i1")).await.unwrap();
    let (first, token) = handed_turn(&mut stream);
    assert!(first.past_events.is_empty());
    assert_eq!(event_kinds(&first.new_events), ["started-turn", "execution-started"]);
    assert!(engine.claim(project, "app", "claimer").await.unwrap().is_none(), "the handed turn is leased");

    engine.complete_turn(project, "shop", schedules("i1", &token, 1)).await.unwrap();
    let (activity, activity_token) = handed_activity(&mut stream);
    assert_eq!(activity.task_id, 1);
    assert!(engine.claim(project, "app", "claimer").await.unwrap().is_none(), "the handed activity is leased");

    engine.complete_activity(project, "shop", answers(&activity, &activity_token, "7")).await.unwrap();
    let (second, token) = handed_turn(&mut stream);
    assert_eq!(second.past_events.len(), 3, "the first turn's WorkflowStarted, ExecutionStarted, TaskScheduled");
    let result = second.new_events.iter().find_map(|event| match event.event_type.as_ref() {
        Some(pb::history_event::EventType::TaskCompleted(done)) => done.result.clone(),
        _ => None,
    });
    assert_eq!(result.as_deref(), Some("7"));

    engine.complete_turn(project, "shop", completes("i1", &token, "\"done\"")).await.unwrap();
    assert!(stream.handed.try_recv().is_err(), "a finished instance makes no more work");
    assert!(bystander.handed.try_recv().is_err(), "another App ID's stream is handed nothing");
    let state = engine.state(project, "i1", true).await.unwrap().unwrap();
    assert_eq!((state.workflow_status, state.output.as_deref()), (Status::Completed as i32, Some("\"done\"")));
}

both_databases!(work_for_a_stream_that_went_away_goes_back_at_once);
async fn work_for_a_stream_that_went_away_goes_back_at_once(db: Db) {
    let (engine, projects, _dir) = engine_with_projects(db, &["alpha"]).await;
    let project = &projects[0];

    // A stream closed with an activity in hand: detached, then its leases released.
    let mut stream = engine.attach(project, "app");
    engine.start(project, "app", start("wf", "i1")).await.unwrap();
    let (_, token) = handed_turn(&mut stream);
    engine.complete_turn(project, "shop", schedules("i1", &token, 1)).await.unwrap();
    let (activity, _) = handed_activity(&mut stream);
    let owner = stream.owner.clone();
    engine.detach(project, "app", &owner);
    drop(stream);
    engine.release(&owner).await.unwrap();
    let (item, _) = engine.claim(project, "app", "next").await.unwrap().expect("the activity is free again");
    assert!(matches!(item, WorkItem::Activity(again) if again.task_id == activity.task_id));

    // A stream chosen for work just as it went away: the hand-off fails and the lease goes back.
    let gone = engine.attach(project, "app");
    drop(gone.handed);
    engine.start(project, "app", start("wf", "i2")).await.unwrap();
    let (item, _) = engine.claim(project, "app", "next").await.unwrap().expect("the first turn is free again");
    assert!(matches!(item, WorkItem::Workflow(turn) if turn.instance_id == "i2"));
}

both_databases!(a_remembered_history_is_not_used_once_another_process_extended_it);
async fn a_remembered_history_is_not_used_once_another_process_extended_it(db: Db) {
    let (engine, projects, store, _dir) = engine_and_store(db, &["alpha"]).await;
    let project = &projects[0];
    // Another gateway on the same database, with no stream of the App ID.
    let other = Engine::new(store.workflow_tables());
    let mut stream = engine.attach(project, "app");

    engine.start(project, "app", start("wf", "i1")).await.unwrap();
    let (_, token) = handed_turn(&mut stream);
    engine.complete_turn(project, "shop", schedules("i1", &token, 1)).await.unwrap();
    let (activity, activity_token) = handed_activity(&mut stream);

    // The result reaches the other gateway, whose claim loop takes the turn and schedules another activity.
    other.complete_activity(project, "shop", answers(&activity, &activity_token, "1")).await.unwrap();
    assert!(stream.handed.try_recv().is_err());
    let (item, token) = other.claim(project, "app", "elsewhere").await.unwrap().unwrap();
    assert!(matches!(&item, WorkItem::Workflow(turn) if turn.past_events.len() == 3));
    other.complete_turn(project, "shop", schedules("i1", &token, 2)).await.unwrap();
    let (item, activity_token) = engine.claim(project, "app", "claimer").await.unwrap().unwrap();
    let WorkItem::Activity(activity) = item else { panic!("expected the second activity") };

    // Back here: the history this gateway remembers (three events) is no longer the whole of it.
    engine.complete_activity(project, "shop", answers(&activity, &activity_token, "2")).await.unwrap();
    let (third, _) = handed_turn(&mut stream);
    let committed = other.history_of(project, "i1").await.unwrap().unwrap();
    assert_eq!(committed.len(), 6);
    assert_eq!(third.past_events, committed);
}
