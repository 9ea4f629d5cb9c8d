//! The client's side of a Rust run: starts instances with `StartInstance` and learns from the worker when
//! each completed. Two loads: a fixed number of instances kept in flight (throughput counted over a window
//! after a warm-up), and a burst started at once (wall time until the last completed).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dapr_durabletask_proto as pb;
use tokio::task::JoinSet;

use crate::common::load::Latencies;
use crate::replay::Shape;
use crate::worker::{Client, Completions, Ending};

/// How long one instance of the in-flight load may take before it counts as an error.
const INSTANCE_TIMEOUT: Duration = Duration::from_secs(60);

/// What one run measured.
#[derive(Default)]
pub struct Measured {
    /// Instances started, and of them completed (whenever), and failed or timed out.
    pub started: u64,
    pub completed: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Completions counted: those within the window (in flight), or all of the burst.
    pub counted: u64,
    /// Workflows per second: counted over the window, or the burst's size over its wall time.
    pub rate: f64,
    /// Start-to-completion of the counted instances.
    pub latencies: Latencies,
    /// `StartInstance` answer times.
    pub start_calls: Latencies,
    /// The burst: from the first start to the last completion; and until every start was answered.
    pub wall: Option<Duration>,
    pub all_started: Option<Duration>,
    /// Some completed instances, for the engine's own account of them.
    pub sample: Vec<String>,
    /// Instances started that did not complete in time (still running, or failed).
    pub unfinished: Vec<String>,
}

impl Measured {
    fn error(&mut self, id: String, started: bool, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
        if started {
            self.unfinished.push(id);
        }
    }
}

/// One instance: started with `id`, then awaited until `deadline`; its start time, start-call time and
/// ending.
async fn one(
    mut client: Client,
    completions: &Completions,
    shape: Shape,
    id: String,
    deadline: Instant,
) -> (Instant, Option<Duration>, Result<Instant, String>) {
    let ending = completions.expect(&id);
    let started = Instant::now();
    let request = pb::CreateInstanceRequest {
        instance_id: id.clone(),
        name: shape.workflow_name().to_owned(),
        input: Some(shape.input()),
        ..Default::default()
    };
    if let Err(status) = client.start_instance(request).await {
        completions.forget(&id);
        return (started, None, Err(format!("StartInstance {id}: {status}")));
    }
    let start_call = started.elapsed();
    let outcome = match tokio::time::timeout_at(deadline.into(), ending).await {
        Ok(Ok(Ending::Completed(at))) => Ok(at),
        Ok(Ok(Ending::Failed(reason))) => Err(format!("instance {id} failed: {reason}")),
        Ok(Err(_)) => Err(format!("instance {id}: the worker went away")),
        Err(_) => {
            completions.forget(&id);
            Err(format!("instance {id} did not complete in time"))
        }
    };
    (started, Some(start_call), outcome)
}

/// Keeps `in_flight` instances of `shape` running (a new one starts when one completes) for `warmup` plus
/// `window`, counting the completions within the window; then waits for the last ones.
pub async fn keep_in_flight(
    client: &Client,
    completions: &Arc<Completions>,
    shape: Shape,
    in_flight: usize,
    warmup: Duration,
    window: Duration,
    prefix: &str,
) -> Measured {
    let begin = Instant::now();
    let (from, until) = (begin + warmup, begin + warmup + window);
    let measured = Arc::new(Mutex::new(Measured::default()));
    let mut slots = JoinSet::new();
    for slot in 0..in_flight {
        let (client, completions, measured) = (client.clone(), Arc::clone(completions), Arc::clone(&measured));
        let prefix = format!("{prefix}-{slot}");
        slots.spawn(async move {
            let mut sequence = 0;
            while Instant::now() < until {
                sequence += 1;
                let id = format!("{prefix}-{sequence}");
                let (started, start_call, outcome) =
                    one(client.clone(), &completions, shape, id.clone(), Instant::now() + INSTANCE_TIMEOUT).await;
                let failed = {
                    let Ok(mut measured) = measured.lock() else { return };
                    measured.started += u64::from(start_call.is_some());
                    if let Some(call) = start_call {
                        measured.start_calls.record(call);
                    }
                    match outcome {
                        Ok(at) => {
                            measured.completed += 1;
                            if at >= from && at <= until {
                                measured.counted += 1;
                                measured.latencies.record(at - started);
                                if measured.sample.len() < 3 {
                                    measured.sample.push(id);
                                }
                            }
                            false
                        }
                        Err(error) => {
                            measured.error(id, start_call.is_some(), error);
                            true
                        }
                    }
                };
                if failed {
                    // A failing engine is not hammered.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    }
    while slots.join_next().await.is_some() {}
    let mut measured = Arc::try_unwrap(measured).ok().and_then(|m| m.into_inner().ok()).unwrap_or_default();
    measured.rate = measured.counted as f64 / window.as_secs_f64();
    measured
}

/// Starts `count` instances of `shape` at once and waits until all completed or `timeout` passed.
pub async fn burst(
    client: &Client,
    completions: &Arc<Completions>,
    shape: Shape,
    count: usize,
    timeout: Duration,
    prefix: &str,
) -> Measured {
    let begin = Instant::now();
    let deadline = begin + timeout;
    let mut instances = JoinSet::new();
    for index in 0..count {
        let (client, completions) = (client.clone(), Arc::clone(completions));
        let id = format!("{prefix}-{index}");
        instances.spawn(async move { (id.clone(), one(client, &completions, shape, id, deadline).await) });
    }
    let mut measured = Measured::default();
    let (mut last_start, mut last_end) = (None::<Instant>, None::<Instant>);
    while let Some(joined) = instances.join_next().await {
        let Ok((id, (started, start_call, outcome))) = joined else { continue };
        if let Some(call) = start_call {
            measured.started += 1;
            measured.start_calls.record(call);
            last_start = last_start.max(Some(started + call));
        }
        match outcome {
            Ok(at) => {
                measured.completed += 1;
                measured.counted += 1;
                measured.latencies.record(at - begin);
                last_end = last_end.max(Some(at));
                if measured.sample.len() < 3 {
                    measured.sample.push(id);
                }
            }
            Err(error) => measured.error(id, start_call.is_some(), error),
        }
    }
    measured.all_started = last_start.map(|at| at - begin);
    if measured.completed == count as u64 {
        let wall = last_end.map_or(Duration::ZERO, |at| at - begin);
        measured.wall = Some(wall);
        measured.rate = count as f64 / wall.as_secs_f64().max(1e-9);
    }
    measured
}

/// The engine's account of `ids`, which the worker saw complete: notes for each that is not COMPLETED with
/// `shape`'s output.
pub async fn verify(client: &Client, shape: Shape, ids: &[String]) -> Vec<String> {
    let mut notes = Vec::new();
    for id in ids {
        let request = pb::GetInstanceRequest { instance_id: id.clone(), get_inputs_and_outputs: true };
        match client.clone().get_instance(request).await {
            Ok(response) => {
                let state = response.into_inner().workflow_state;
                let status = state.as_ref().map(|state| state.workflow_status);
                let output = state.as_ref().and_then(|state| state.output.clone());
                if status != Some(pb::OrchestrationStatus::Completed as i32)
                    || output.as_deref() != Some(&shape.expected_output())
                {
                    notes.push(format!(
                        "GetInstance {id}: status {status:?}, output {output:?}; expected COMPLETED with {}",
                        shape.expected_output()
                    ));
                }
            }
            Err(status) => notes.push(format!("GetInstance {id}: {status}")),
        }
    }
    notes
}

/// Purges (forced) those of `ids` that exist and have not ended, so that what a run left behind does not
/// weigh on the next; how many it purged, or the first refusal.
pub async fn purge_unfinished(client: &Client, ids: &[String]) -> Result<usize, String> {
    let ended = [
        pb::OrchestrationStatus::Completed,
        pb::OrchestrationStatus::Failed,
        pb::OrchestrationStatus::Terminated,
        pb::OrchestrationStatus::Canceled,
    ]
    .map(|status| status as i32);
    let mut purged = 0;
    for id in ids {
        let request = pb::GetInstanceRequest { instance_id: id.clone(), get_inputs_and_outputs: false };
        let state =
            client.clone().get_instance(request).await.map_err(|status| format!("GetInstance {id}: {status}"))?;
        let status = state.into_inner().workflow_state.map(|state| state.workflow_status);
        if status.is_none_or(|status| ended.contains(&status)) {
            continue;
        }
        let request = pb::PurgeInstancesRequest {
            request: Some(pb::purge_instances_request::Request::InstanceId(id.clone())),
            recursive: false,
            force: Some(true),
        };
        // The worker may be in a turn of the instance meanwhile: the purge can meet its locks and fail, so it is
        // tried again.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match client.clone().purge_instances(request.clone()).await {
                Ok(_) => break,
                Err(_) if attempt < 5 => tokio::time::sleep(Duration::from_millis(200 * attempt)).await,
                Err(status) => return Err(format!("PurgeInstances {id} ({attempt} attempts): {status}")),
            }
        }
        purged += 1;
    }
    Ok(purged)
}
