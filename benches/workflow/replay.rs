//! The benchmark's workflows, as the Rust worker runs them: each turn replays the whole history (past and
//! new events) from the start, checks that it is the one this code would have produced, and decides the
//! turn's new actions, the way the SDKs' replaying executors do. Action IDs are the position of the
//! call in the workflow's code (0, 1, ...), so a replay hands out the same ones; the engine records
//! `TaskScheduled` with `event_id` = action ID and answers with `TaskCompleted.task_scheduled_id`.
//!
//! - `bench_chain(n)`: `n` calls of the no-op activity one after another, activity `k` with input `k`;
//!   returns `n`.
//! - `bench_fan_out(n)`: `n` calls of the no-op activity at once (inputs 0..n), then waits for all; returns
//!   the sum of their results.
//!
//! The no-op activity `bench_noop` returns its input.

use std::collections::BTreeMap;

use dapr_durabletask_proto as pb;
use pb::history_event::EventType;
use pb::workflow_action::WorkflowActionType;

pub const CHAIN: &str = "bench_chain";
pub const FAN_OUT: &str = "bench_fan_out";
pub const ACTIVITY: &str = "bench_noop";

/// The two workflow shapes, with their number of activities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Chain(u32),
    FanOut(u32),
}

impl Shape {
    pub fn workflow_name(self) -> &'static str {
        match self {
            Shape::Chain(_) => CHAIN,
            Shape::FanOut(_) => FAN_OUT,
        }
    }

    pub fn activities(self) -> u32 {
        match self {
            Shape::Chain(n) | Shape::FanOut(n) => n,
        }
    }

    /// The workflow's input: its number of activities.
    pub fn input(self) -> String {
        self.activities().to_string()
    }

    /// What a completed instance's output must be.
    pub fn expected_output(self) -> String {
        match self {
            Shape::Chain(n) => n.to_string(),
            Shape::FanOut(n) => (0..n).sum::<u32>().to_string(),
        }
    }

    fn of(name: &str, input: Option<&str>) -> Result<Shape, String> {
        let count = input
            .and_then(|input| input.trim().parse::<u32>().ok())
            .ok_or_else(|| format!("workflow {name}: input {input:?} is not a number of activities"))?;
        match name {
            CHAIN => Ok(Shape::Chain(count)),
            FAN_OUT => Ok(Shape::FanOut(count)),
            other => Err(format!("no workflow named '{other}' is registered")),
        }
    }
}

/// What a turn decided.
pub struct Turn {
    pub actions: Vec<pb::WorkflowAction>,
    /// The instance completes with this turn (successfully, or failed: the reason).
    pub finished: Option<Result<(), String>>,
}

/// The history as the workflow code sees it: the activities it called and their outcomes.
#[derive(Default)]
struct History {
    started: Option<(String, Option<String>)>,
    scheduled: BTreeMap<i32, (String, Option<String>)>,
    completed: BTreeMap<i32, Result<Option<String>, String>>,
    terminated: bool,
    ended: bool,
}

impl History {
    fn of(request: &pb::WorkflowRequest) -> Result<History, String> {
        let mut history = History::default();
        for event in request.past_events.iter().chain(&request.new_events) {
            match &event.event_type {
                Some(EventType::ExecutionStarted(started)) => {
                    history.started = Some((started.name.clone(), started.input.clone()));
                }
                Some(EventType::TaskScheduled(scheduled)) => {
                    let call = (scheduled.name.clone(), scheduled.input.clone());
                    if history.scheduled.insert(event.event_id, call).is_some() {
                        return Err(format!("two TaskScheduled events with ID {}", event.event_id));
                    }
                }
                Some(EventType::TaskCompleted(done)) => {
                    history.outcome(done.task_scheduled_id, Ok(done.result.clone()))?;
                }
                Some(EventType::TaskFailed(failed)) => {
                    let reason = failed.failure_details.as_ref().map_or("no details", |f| f.error_message.as_str());
                    history.outcome(failed.task_scheduled_id, Err(reason.to_owned()))?;
                }
                Some(EventType::ExecutionTerminated(_)) => history.terminated = true,
                Some(EventType::ExecutionCompleted(_)) => history.ended = true,
                _ => {}
            }
        }
        Ok(history)
    }

    fn outcome(&mut self, id: i32, outcome: Result<Option<String>, String>) -> Result<(), String> {
        if !self.scheduled.contains_key(&id) {
            return Err(format!("an activity outcome for task {id}, which was never scheduled"));
        }
        if self.completed.insert(id, outcome).is_some() {
            return Err(format!("two outcomes for task {id}"));
        }
        Ok(())
    }

    /// Call `id` of the code: in the history exactly as the code makes it, or not at all.
    fn call(&self, id: i32) -> Result<Call<'_>, String> {
        let expected_input = id.to_string();
        match self.scheduled.get(&id) {
            None => Ok(Call::NotMade),
            Some((name, input)) if name == ACTIVITY && input.as_deref() == Some(&expected_input) => {
                Ok(self.completed.get(&id).map_or(Call::Pending, Call::Done))
            }
            Some((name, input)) => Err(format!(
                "non-deterministic history: task {id} was scheduled as {name}({input:?}), the code calls \
                 {ACTIVITY}({expected_input})"
            )),
        }
    }
}

/// Where one activity call of the code stands in the history.
enum Call<'a> {
    NotMade,
    Pending,
    Done(&'a Result<Option<String>, String>),
}

/// The no-op activity's result for `id`, checked: it echoes its input.
fn echoed(id: i32, outcome: &Result<Option<String>, String>) -> Result<u32, String> {
    match outcome {
        Ok(Some(result)) if result.trim() == id.to_string() => Ok(id as u32),
        Ok(result) => Err(format!("task {id} returned {result:?}, not {id}")),
        Err(reason) => Err(format!("task {id} failed: {reason}")),
    }
}

fn schedule(id: i32) -> pb::WorkflowAction {
    pb::WorkflowAction {
        id,
        router: None,
        workflow_action_type: Some(WorkflowActionType::ScheduleTask(pb::ScheduleTaskAction {
            name: ACTIVITY.to_owned(),
            input: Some(id.to_string()),
            ..Default::default()
        })),
    }
}

fn complete(
    id: i32,
    status: pb::OrchestrationStatus,
    result: Option<String>,
    failure: Option<String>,
) -> pb::WorkflowAction {
    pb::WorkflowAction {
        id,
        router: None,
        workflow_action_type: Some(WorkflowActionType::CompleteWorkflow(pb::CompleteWorkflowAction {
            workflow_status: status as i32,
            result,
            failure_details: failure.map(|message| pb::TaskFailureDetails {
                error_type: "BenchWorkflowError".to_owned(),
                error_message: message,
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
}

/// Runs the workflow of `request` over its history; the turn's actions.
pub fn decide(request: &pb::WorkflowRequest) -> Turn {
    let outcome = History::of(request).and_then(|history| {
        if history.ended {
            return Ok(Turn { actions: Vec::new(), finished: None });
        }
        let (name, input) = history.started.clone().ok_or("the history has no ExecutionStarted event")?;
        if history.terminated {
            let action = complete(0, pb::OrchestrationStatus::Terminated, None, None);
            return Ok(Turn { actions: vec![action], finished: Some(Err("terminated".to_owned())) });
        }
        let shape = Shape::of(&name, input.as_deref())?;
        let count = shape.activities() as i32;
        if let Some(stray) = history.scheduled.keys().find(|id| !(0..count).contains(*id)) {
            return Err(format!("non-deterministic history: task {stray} is not one this code schedules"));
        }
        let done = |result: String| Turn {
            actions: vec![complete(count, pb::OrchestrationStatus::Completed, Some(result), None)],
            finished: Some(Ok(())),
        };
        match shape {
            Shape::Chain(_) => {
                for id in 0..count {
                    match history.call(id)? {
                        Call::NotMade => return Ok(Turn { actions: vec![schedule(id)], finished: None }),
                        // This turn brought nothing the code waits for.
                        Call::Pending => return Ok(Turn { actions: Vec::new(), finished: None }),
                        Call::Done(outcome) => {
                            echoed(id, outcome)?;
                        }
                    }
                }
                Ok(done(shape.expected_output()))
            }
            Shape::FanOut(_) => {
                let calls = (0..count).map(|id| history.call(id)).collect::<Result<Vec<_>, _>>()?;
                if calls.iter().all(|call| matches!(call, Call::NotMade)) {
                    return Ok(Turn { actions: (0..count).map(schedule).collect(), finished: None });
                }
                let mut sum = 0;
                for (id, call) in (0..count).zip(&calls) {
                    match call {
                        Call::NotMade => {
                            return Err(format!(
                                "non-deterministic history: task {id} of the fan-out was never scheduled"
                            ))
                        }
                        Call::Pending => return Ok(Turn { actions: Vec::new(), finished: None }),
                        Call::Done(outcome) => sum += echoed(id, outcome)?,
                    }
                }
                Ok(done(sum.to_string()))
            }
        }
    });
    outcome.unwrap_or_else(|reason| Turn {
        actions: vec![complete(0, pb::OrchestrationStatus::Failed, None, Some(reason.clone()))],
        finished: Some(Err(reason)),
    })
}
