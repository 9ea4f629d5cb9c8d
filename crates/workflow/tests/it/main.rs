//! The engine against a real control plane, each test on SQLite and on PostgreSQL: the rules a worker cannot
//! see from the SDK — one turn in flight per instance, stale completion tokens ignored, released work handed
//! out again, projects apart, a turn committing exactly the events it was given, workers without completion
//! tokens (the JS SDK's), and work handed straight to the streams of this process.

use dapr_durabletask_proto as pb;
use outrigger_store::{NewProject, ProjectId, Store};
use outrigger_workflow::{Engine, Status, WorkItem};
use pb::workflow_action::WorkflowActionType;

/// Runs a test body on both databases: `both_databases!(name)` expects `async fn name(db: Db)`.
macro_rules! both_databases {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(crate::Db::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                let db = crate::Db::postgres().await;
                super::$name(db.clone()).await;
                db.finish().await;
            }
        }
    };
}

mod handoff;
mod reports;

/// Where a test's control plane lives: a fresh SQLite file or a fresh PostgreSQL schema.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite,
    Postgres { schema: String },
}

/// Where the PostgreSQL tests connect (the test script starts the server when it is down).
fn postgres_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn postgres_admin(statement: &str) {
    let admin = sqlx::PgPool::connect(&postgres_url())
        .await
        .expect("PostgreSQL must be running for these tests (scripts/test starts it)");
    sqlx::query(statement).execute(&admin).await.unwrap();
    admin.close().await;
}

impl Db {
    async fn postgres() -> Db {
        let schema = format!("wf_{}", uuid::Uuid::new_v4().simple());
        postgres_admin(&format!("CREATE SCHEMA {schema}")).await;
        Db::Postgres { schema }
    }

    /// Drops the test's schema, once the test let go of its connections.
    async fn finish(self) {
        if let Db::Postgres { schema } = self {
            postgres_admin(&format!("DROP SCHEMA {schema} CASCADE")).await;
        }
    }
}

async fn engine_with_projects(db: Db, names: &[&str]) -> (Engine, Vec<ProjectId>, tempfile::TempDir) {
    let (engine, ids, _, dir) = engine_and_store(db, names).await;
    (engine, ids, dir)
}

async fn engine_and_store(db: Db, names: &[&str]) -> (Engine, Vec<ProjectId>, Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = match db {
        Db::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("control.db").display()),
        Db::Postgres { schema } => {
            let separator = if postgres_url().contains('?') { '&' } else { '?' };
            format!("{}{separator}options=-c%20search_path%3D{schema}", postgres_url())
        }
    };
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let mut ids = Vec::new();
    let mut tx = store.begin().await.unwrap();
    for name in names {
        let new = NewProject {
            org_id: outrigger_store::OrgId::default_org(),
            name: (*name).into(),
            managed_kvstore: false,
            managed_pubsub: false,
            pool: "default".into(),
        };
        ids.push(tx.create_project(&new).await.unwrap().id);
    }
    tx.commit().await.unwrap();
    (Engine::new(store.workflow_tables()), ids, store, dir)
}

fn start(name: &str, instance: &str) -> pb::CreateInstanceRequest {
    pb::CreateInstanceRequest { instance_id: instance.into(), name: name.into(), ..Default::default() }
}

fn completes(instance: &str, token: &str, result: &str) -> pb::WorkflowResponse {
    let complete = pb::CompleteWorkflowAction {
        workflow_status: Status::Completed as i32,
        result: Some(result.into()),
        ..Default::default()
    };
    pb::WorkflowResponse {
        instance_id: instance.into(),
        completion_token: token.into(),
        actions: vec![pb::WorkflowAction {
            id: 0,
            router: None,
            workflow_action_type: Some(WorkflowActionType::CompleteWorkflow(complete)),
        }],
        ..Default::default()
    }
}

both_databases!(one_turn_in_flight_stale_tokens_ignored_released_work_handed_out_again);
async fn one_turn_in_flight_stale_tokens_ignored_released_work_handed_out_again(db: Db) {
    let (engine, projects, _dir) = engine_with_projects(db, &["alpha"]).await;
    let project = &projects[0];
    engine.start(project, "app", start("wf", "i1")).await.unwrap();

    let (item, first_token) = engine.claim(project, "app", "stream-1").await.unwrap().expect("a turn is due");
    let WorkItem::Workflow(turn) = item else { panic!("expected a workflow turn") };
    assert!(matches!(
        turn.new_events.last().and_then(|event| event.event_type.as_ref()),
        Some(pb::history_event::EventType::ExecutionStarted(_))
    ));
    assert!(engine.claim(project, "app", "stream-2").await.unwrap().is_none(), "one turn in flight per instance");

    engine.release("stream-1").await.unwrap();
    let (_, second_token) =
        engine.claim(project, "app", "stream-2").await.unwrap().expect("released work is handed out");
    assert_ne!(first_token, second_token);

    engine.complete_turn(project, "shop", completes("i1", &first_token, "\"stale\"")).await.unwrap();
    let state = engine.state(project, "i1", true).await.unwrap().unwrap();
    assert_eq!(state.workflow_status, Status::Pending as i32, "an answer with a stale token changes nothing");

    engine.complete_turn(project, "shop", completes("i1", &second_token, "\"done\"")).await.unwrap();
    let state = engine.state(project, "i1", true).await.unwrap().unwrap();
    assert_eq!((state.workflow_status, state.output.as_deref()), (Status::Completed as i32, Some("\"done\"")));
    assert!(engine.claim(project, "app", "stream-2").await.unwrap().is_none());
}

both_databases!(instances_of_one_project_cannot_be_reached_from_another);
async fn instances_of_one_project_cannot_be_reached_from_another(db: Db) {
    let (engine, projects, _dir) = engine_with_projects(db, &["alpha", "beta"]).await;
    let (alpha, beta) = (&projects[0], &projects[1]);
    engine.start(alpha, "app", start("wf", "shared-id")).await.unwrap();

    assert!(engine.state(beta, "shared-id", true).await.unwrap().is_none());
    assert!(engine.raise(beta, "shared-id", "e", None).await.is_err());
    assert!(engine.terminate(beta, "shared-id", None, true).await.is_err());
    assert_eq!(engine.purge((beta, "beta"), "shared-id", true, true).await.unwrap(), 0);
    assert!(
        engine.claim(beta, "app", "beta-stream").await.unwrap().is_none(),
        "beta's workers get none of alpha's work"
    );

    // The same ID is free in the other project.
    engine.start(beta, "app", start("wf", "shared-id")).await.unwrap();
    assert!(engine.state(alpha, "shared-id", false).await.unwrap().is_some());
    let (_, token) = engine.claim(alpha, "app", "alpha-stream").await.unwrap().unwrap();
    // A token from alpha's turn completes nothing in beta.
    engine.complete_turn(beta, "shop", completes("shared-id", &token, "\"x\"")).await.unwrap();
    let beta_state = engine.state(beta, "shared-id", false).await.unwrap().unwrap();
    assert_eq!(beta_state.workflow_status, Status::Pending as i32);
}

fn event_kinds(events: &[pb::HistoryEvent]) -> Vec<&'static str> {
    use pb::history_event::EventType;
    events
        .iter()
        .map(|event| match event.event_type.as_ref() {
            Some(EventType::WorkflowStarted(_)) => "started-turn",
            Some(EventType::ExecutionStarted(_)) => "execution-started",
            Some(EventType::EventRaised(raised)) if raised.name == "late" => "late",
            Some(EventType::EventRaised(_)) => "raised",
            Some(EventType::ExecutionCompleted(_)) => "completed",
            _ => "other",
        })
        .collect()
}

both_databases!(a_turn_commits_exactly_the_events_it_was_given);
async fn a_turn_commits_exactly_the_events_it_was_given(db: Db) {
    let (engine, projects, store, _dir) = engine_and_store(db, &["alpha"]).await;
    let project = &projects[0];
    engine.start(project, "app", start("wf", "i1")).await.unwrap();
    engine.raise(project, "i1", "early", None).await.unwrap();
    let (item, token) = engine.claim(project, "app", "stream").await.unwrap().unwrap();
    let WorkItem::Workflow(turn) = item else { panic!("expected a workflow turn") };
    assert_eq!(event_kinds(&turn.new_events), ["started-turn", "execution-started", "raised"]);

    // On PostgreSQL an event with a smaller id can become visible after the claim; stand in for it with a row
    // whose id is below every given one.
    let late = pb::HistoryEvent {
        event_id: -1,
        timestamp: None,
        router: None,
        event_type: Some(pb::history_event::EventType::EventRaised(pb::EventRaisedEvent {
            name: "late".into(),
            input: None,
        })),
    };
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(prost::Message::encode_to_vec(&late))
    };
    sqlx::query("INSERT INTO wf_inbox (id, project_id, instance_id, event, visible_at) VALUES (-5, $1, 'i1', $2, 0)")
        .bind(project.as_str())
        .bind(encoded)
        .execute(&store.workflow_tables().into_pool())
        .await
        .unwrap();

    let waits = pb::WorkflowResponse { instance_id: "i1".into(), completion_token: token, ..Default::default() };
    engine.complete_turn(project, "shop", waits).await.unwrap();
    let history = engine.history_of(project, "i1").await.unwrap().unwrap();
    assert_eq!(
        event_kinds(&history),
        ["started-turn", "execution-started", "raised"],
        "the unseen event is not committed"
    );

    let (item, _) = engine.claim(project, "app", "stream").await.unwrap().expect("the unseen event makes a turn");
    let WorkItem::Workflow(turn) = item else { panic!("expected a workflow turn") };
    assert_eq!(event_kinds(&turn.new_events), ["started-turn", "late"]);
}

both_databases!(workers_without_completion_tokens_answer_the_current_turn_and_activity);
async fn workers_without_completion_tokens_answer_the_current_turn_and_activity(db: Db) {
    let (engine, projects, _dir) = engine_with_projects(db, &["alpha"]).await;
    let project = &projects[0];
    engine.start(project, "app", start("wf", "i1")).await.unwrap();
    engine.claim(project, "app", "stream").await.unwrap().unwrap();
    let schedule = pb::ScheduleTaskAction { name: "act".into(), input: Some("1".into()), ..Default::default() };
    let turn = pb::WorkflowResponse {
        instance_id: "i1".into(),
        actions: vec![pb::WorkflowAction {
            id: 0,
            router: None,
            workflow_action_type: Some(WorkflowActionType::ScheduleTask(schedule)),
        }],
        ..Default::default()
    };
    engine.complete_turn(project, "shop", turn).await.unwrap();
    assert_eq!(engine.state(project, "i1", false).await.unwrap().unwrap().workflow_status, Status::Running as i32);

    let (item, _) = engine.claim(project, "app", "stream").await.unwrap().expect("the activity");
    let WorkItem::Activity(activity) = item else { panic!("expected the activity") };
    // An answer naming a task the instance never scheduled changes nothing.
    let wrong =
        pb::ActivityResponse { instance_id: "i1".into(), task_id: 7, result: Some("0".into()), ..Default::default() };
    engine.complete_activity(project, "shop", wrong).await.unwrap();
    assert!(engine.claim(project, "app", "stream").await.unwrap().is_none());
    let answer = pb::ActivityResponse {
        instance_id: "i1".into(),
        task_id: activity.task_id,
        result: Some("2".into()),
        ..Default::default()
    };
    engine.complete_activity(project, "shop", answer).await.unwrap();

    let (item, _) = engine.claim(project, "app", "stream").await.unwrap().expect("the result makes a turn");
    let WorkItem::Workflow(turn) = item else { panic!("expected a workflow turn") };
    let completed = turn.new_events.iter().find_map(|event| match event.event_type.as_ref() {
        Some(pb::history_event::EventType::TaskCompleted(done)) => Some(done.clone()),
        _ => None,
    });
    assert_eq!(completed.map(|done| (done.task_scheduled_id, done.result)), Some((0, Some("2".into()))));
    engine.complete_turn(project, "shop", completes("i1", "", "\"done\"")).await.unwrap();
    let state = engine.state(project, "i1", true).await.unwrap().unwrap();
    assert_eq!((state.workflow_status, state.output.as_deref()), (Status::Completed as i32, Some("\"done\"")));
}

both_databases!(an_instance_is_read_as_of_one_moment);
async fn an_instance_is_read_as_of_one_moment(db: Db) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const INSTANCES: usize = 60;
    let (engine, projects, _dir) = engine_with_projects(db, &["alpha"]).await;
    let project = &projects[0];
    let driving = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    // Each instance goes from pending (no history) to completed (three events) in one turn, while a reader
    // reads the instance being driven: status and history must be of the same moment.
    let driver = async {
        for index in 0..INSTANCES {
            let instance = format!("i{index}");
            engine.start(project, "app", start("wf", &instance)).await.unwrap();
            driving.store(index, Ordering::SeqCst);
            let (_, token) = engine.claim(project, "app", "stream").await.unwrap().expect("the first turn");
            engine.complete_turn(project, "shop", completes(&instance, &token, "\"done\"")).await.unwrap();
        }
        done.store(true, Ordering::SeqCst);
    };
    let reader = async {
        let mut seen = std::collections::BTreeSet::new();
        while !done.load(Ordering::SeqCst) {
            let instance = format!("i{}", driving.load(Ordering::SeqCst));
            let Some(detail) = engine.detail(project, &instance).await.unwrap() else { continue };
            let kinds = event_kinds(&detail.history);
            match detail.summary.status {
                Status::Pending => assert!(kinds.is_empty(), "{instance} pending with history {kinds:?}"),
                Status::Completed => {
                    assert_eq!(kinds, ["started-turn", "execution-started", "completed"], "{instance}");
                    assert_eq!(detail.output.as_deref(), Some("\"done\""));
                }
                other => panic!("{instance} is {other:?}"),
            }
            seen.insert(detail.summary.status as i32);
        }
        seen
    };
    let (_, seen) = tokio::join!(driver, reader);
    assert_eq!(seen.len(), 2, "the reader saw instances both pending and completed");
}
