//! The pub/sub bench's phases: a form's baseline, publishes without subscribers, to a push and to a streaming
//! subscriber, and closed-loop throughput, each filling its [`Phase`] with latencies, deliveries, and the CPU
//! and memory of the processes watched meanwhile.

use std::time::Instant;

use anyhow::bail;

use crate::apps::{Apps, Recorder};
use crate::common::load::{self, PhaseOutcome};
use crate::common::procs::{self, cpu_of, cpu_seconds, Watched};
use crate::common::report::{Summary, Usage};
use crate::common::setup::{port_of, progress};
use crate::report::{Deliveries, Phase, Throughput};
use crate::target::{Connection, Target};
use crate::{Options, Product, ACK_TOPIC, BUSY_MACHINE_CORES, DRAIN_IDLE, DRAIN_LIMIT, PUSH_TOPIC, STREAM_TOPIC};

/// CPU readings at one instant.
struct Mark {
    at: Instant,
    cpu: Vec<Option<u64>>,
    machine: Option<(u64, u64)>,
    /// Stall totals (µs) of CPU and IO.
    pressure: [Option<u64>; 2],
}

fn mark(watched: &[Watched]) -> Mark {
    Mark {
        at: Instant::now(),
        cpu: cpu_of(watched),
        machine: procs::machine_ticks(),
        pressure: [procs::pressure_us("cpu"), procs::pressure_us("io")],
    }
}

/// Fills `phase`'s CPU and memory figures for what happened between `before` and `after`.
fn account(phase: &mut Phase, watched: &[Watched], before: &Mark, after: &Mark, messages: u64) {
    let ticks = procs::clock_ticks();
    let elapsed = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
    let mut measured = 0.0;
    for (index, process) in watched.iter().enumerate() {
        let cpu = cpu_seconds(&before.cpu, &after.cpu, index, ticks);
        let memory = process.memory_kib();
        // A thread's CPU is already in its process's.
        if !process.pid.contains("/task/") && cpu.is_finite() {
            measured += cpu;
        }
        phase.usage.push(Usage {
            process: process.name.clone(),
            pid: process.pid_number(),
            cpu_seconds: cpu,
            cores: cpu / elapsed,
            cpu_ms_per_1000: cpu * 1e3 * 1000.0 / messages.max(1) as f64,
            probe_cores: None,
            probe_cpu_ms_per_1000: None,
            rss_kib: memory.map(|(rss, _)| rss),
            hwm_kib: memory.map(|(_, hwm)| hwm),
            outrigger: process.outrigger,
        });
    }
    let share = |index: usize| match (before.pressure[index], after.pressure[index]) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) as f64 / 1e6 / elapsed * 100.0),
        _ => None,
    };
    phase.stalled = share(0).zip(share(1));
    if let (Some((busy_before, _)), Some((busy_after, _))) = (before.machine, after.machine) {
        let others = (busy_after.saturating_sub(busy_before) as f64 / ticks - measured) / elapsed;
        phase.background_cores = Some(others.max(0.0));
        if others > BUSY_MACHINE_CORES {
            phase
                .notes
                .push(format!("other processes kept {others:.2} cores busy meanwhile: its figures are disturbed"));
        }
    }
}

/// Warm-up, then the open-loop phase whose publish acks fill `phase`; answers what was sent.
async fn measure_open(
    options: &Options,
    phase: &mut Phase,
    connections: &mut Vec<Connection>,
    target: &Target,
    port: u16,
    watched: &[Watched],
) -> anyhow::Result<PhaseOutcome> {
    let name = phase.name.clone();
    progress(format!("{name}: warm-up {:.0} s at {:.0} msgs/s", options.warmup.as_secs_f64(), options.warmup_rate));
    let warm = load::open_loop(connections, target, options.warmup_rate, options.warmup, None).await?;
    if warm.errors == warm.sent {
        bail!("every warm-up publish failed, first: {}", warm.first_error.unwrap_or_default());
    }
    progress(format!(
        "{name}: open loop {:.0} s at {:.0} msgs/s over {} connections",
        options.duration.as_secs_f64(),
        options.rate,
        connections.len()
    ));
    let before = mark(watched);
    let mut open = load::open_loop(connections, target, options.rate, options.duration, Some(port)).await?;
    let after = mark(watched);
    let summary = Summary::of(&mut open);
    progress(format!(
        "{name}: ack p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms, {:.1} msgs/s, {} errors",
        summary.p50, summary.p90, summary.p99, summary.max, summary.rate, open.errors
    ));
    if let Some(sockets) = open.sockets_open.filter(|sockets| *sockets != connections.len()) {
        phase.notes.push(format!("{sockets} sockets open to port {port} at the end, not {}", connections.len()));
    }
    if summary.dispatch_lag_max_ms > 5.0 {
        phase.notes.push(format!(
            "the load generator's dispatcher fell up to {:.1} ms behind schedule",
            summary.dispatch_lag_max_ms
        ));
    }
    phase.ack = Some(summary);
    account(phase, watched, &before, &after, open.completed());
    Ok(open)
}

/// What `recorder` received of the messages `outcome` sent, publishing having ended at `ended` and the
/// last of them arrived at `last`.
fn deliveries(recorder: &Recorder, outcome: &PhaseOutcome, ended: Instant, last: Instant) -> Deliveries {
    let acked = recorder.receipts(outcome.succeeded.iter().copied());
    let unacked = recorder.receipts(outcome.failed.iter().copied());
    let mut latencies = load::Latencies::default();
    let mut duplicates = 0;
    for (_, receipt) in acked.iter().chain(&unacked) {
        latencies.record_ns(receipt.latency_ns);
        duplicates += u64::from(receipt.count - 1);
    }
    let mut percentile = |p: f64| latencies.percentile_ms(p).unwrap_or(f64::NAN);
    Deliveries {
        p50: percentile(50.0),
        p90: percentile(90.0),
        p99: percentile(99.0),
        max: percentile(100.0),
        acked: outcome.succeeded.len() as u64,
        delivered: acked.len() as u64,
        missing: (outcome.succeeded.len() - acked.len()) as u64,
        duplicates,
        delivered_unacked: unacked.len() as u64,
        drain_s: last.saturating_duration_since(ended).as_secs_f64(),
    }
}

/// Notes on what a subscriber received that the figures do not show.
fn delivery_notes(phase: &mut Phase, recorder: &Recorder) {
    let (unreadable, first) = recorder.unreadable();
    if unreadable > 0 {
        phase.notes.push(format!("{unreadable} deliveries could not be read, first: {}", first.unwrap_or_default()));
    }
    if let Some(deliveries) = &phase.deliveries {
        progress(format!(
            "{}: deliver p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; {} acked, {} delivered, {} missing, {} duplicates",
            phase.name,
            deliveries.p50,
            deliveries.p99,
            deliveries.max,
            deliveries.acked,
            deliveries.delivered,
            deliveries.missing,
            deliveries.duplicates
        ));
        if deliveries.missing > 0 {
            phase.notes.push(format!(
                "{} acknowledged publishes never arrived (waited until none came for {DRAIN_IDLE:?})",
                deliveries.missing
            ));
        }
    }
}

/// Keeps a phase's failure in it, so that the other phases of its form still run.
pub(crate) fn keep_failure(phase: &mut Phase, outcome: anyhow::Result<()>) {
    if let Err(err) = outcome {
        progress(format!("{}: FAILED: {err:#}", phase.name));
        phase.error = Some(format!("{err:#}"));
    }
}

pub(crate) fn http_connections(count: usize) -> anyhow::Result<Vec<Connection>> {
    (0..count).map(|_| Connection::http()).collect()
}

/// The form's baseline: the same publishes against a trivial HTTP handler (embedded) or straight to
/// JetStream, on the subject the managed pubsub gives the ack topic (distributed).
pub(crate) async fn baseline(
    options: &Options,
    product: &Product,
    apps: &Apps,
    phase: &mut Phase,
) -> anyhow::Result<()> {
    let (mut connections, target, port) = match &product.jetstream {
        None => {
            let target =
                Target::Http { url: format!("http://{}/baseline", apps.addr), token: None, size: options.payload_size };
            (http_connections(options.connections)?, target, apps.addr.port())
        }
        Some((_, subject_prefix)) => {
            let mut connections = Vec::new();
            for _ in 0..options.connections {
                connections.push(Connection::jetstream(&options.nats_url).await?);
            }
            let target =
                Target::JetStream { subject: format!("{subject_prefix}.{ACK_TOPIC}"), size: options.payload_size };
            (connections, target, port_of(&options.nats_url)?)
        }
    };
    measure_open(options, phase, &mut connections, &target, port, &product.watched).await.map(drop)
}

/// Publishes to a topic without subscribers.
pub(crate) async fn publish(
    options: &Options,
    product: &Product,
    connections: &mut Vec<Connection>,
    phase: &mut Phase,
) -> anyhow::Result<()> {
    let target = product.publish_target(ACK_TOPIC, options.payload_size);
    measure_open(options, phase, connections, &target, port_of(&product.dapr_http)?, &product.watched).await?;
    if let Some((stream, _)) = &product.jetstream {
        match stream_messages(&options.nats_url, stream).await {
            Ok(0) => phase.notes.push(format!(
                "JetStream stream {stream} held no messages after this phase: with interest retention it keeps \
                 nothing of a topic without consumers, so this phase and the baseline time publishes that are not \
                 stored; the push and streaming phases time stored ones"
            )),
            Ok(messages) => phase.notes.push(format!("JetStream stream {stream} held {messages} messages after it")),
            Err(err) => phase.notes.push(format!("could not read JetStream stream {stream}: {err}")),
        }
    }
    Ok(())
}

/// Publishes to the push subscriber's topic, and what it received.
pub(crate) async fn push(
    options: &Options,
    product: &Product,
    apps: &Apps,
    connections: &mut Vec<Connection>,
    phase: &mut Phase,
) -> anyhow::Result<()> {
    deliver(options, product, (&apps.push, PUSH_TOPIC), connections, phase).await
}

/// Publishes to the streaming subscriber's topic, and what it received.
pub(crate) async fn stream(
    options: &Options,
    product: &Product,
    apps: &Apps,
    connections: &mut Vec<Connection>,
    phase: &mut Phase,
) -> anyhow::Result<()> {
    let subscriber = apps.open_stream(&product.dapr_grpc, &product.streamer_token, STREAM_TOPIC).await?;
    deliver(options, product, (&subscriber.recorder, STREAM_TOPIC), connections, phase).await?;
    if let Some(failure) = subscriber.failure() {
        phase.notes.push(format!("the stream ended early: {failure}"));
    }
    Ok(())
}

/// Publishes open-loop to `topic`, once `recorder`'s subscriber receives it, and fills `phase` with what the
/// subscriber received.
async fn deliver(
    options: &Options,
    product: &Product,
    (recorder, topic): (&Recorder, &str),
    connections: &mut Vec<Connection>,
    phase: &mut Phase,
) -> anyhow::Result<()> {
    product.wait_live(recorder, topic, options.payload_size).await?;
    let target = product.publish_target(topic, options.payload_size);
    let outcome =
        measure_open(options, phase, connections, &target, port_of(&product.dapr_http)?, &product.watched).await?;
    let ended = Instant::now();
    let last = recorder.drain(&outcome, DRAIN_IDLE, DRAIN_LIMIT).await;
    phase.deliveries = Some(deliveries(recorder, &outcome, ended, last));
    delivery_notes(phase, recorder);
    Ok(())
}

/// Closed-loop publishes to the push subscriber's topic, and the rate it received them at.
pub(crate) async fn throughput(
    options: &Options,
    product: &Product,
    apps: &Apps,
    connections: &mut Vec<Connection>,
    phase: &mut Phase,
) -> anyhow::Result<()> {
    let target = product.publish_target(PUSH_TOPIC, options.payload_size);
    progress(format!(
        "{}: closed loop {:.0} s over {} connections",
        phase.name,
        options.throughput.as_secs_f64(),
        connections.len()
    ));
    let before = mark(&product.watched);
    let mut outcome = load::closed_loop(connections, &target, options.throughput).await?;
    let ended = Instant::now();
    let last = apps.push.drain(&outcome, DRAIN_IDLE, DRAIN_LIMIT).await;
    let after = mark(&product.watched);
    let summary = Summary::of(&mut outcome);
    let received = apps.push.receipts(outcome.succeeded.iter().copied());
    let while_publishing = received.iter().filter(|(_, receipt)| receipt.at <= ended).count();
    let publishing = ended.duration_since(before.at).as_secs_f64();
    let throughput = Throughput {
        published_rate: outcome.succeeded.len() as f64 / publishing,
        delivered_rate: received.len() as f64 / last.max(ended).duration_since(before.at).as_secs_f64(),
        delivered_rate_while_publishing: while_publishing as f64 / publishing,
    };
    progress(format!(
        "{}: {:.0} publishes/s ({} errors), {:.0} deliveries/s to the last one ({:.0}/s while publishing)",
        phase.name,
        throughput.published_rate,
        outcome.errors,
        throughput.delivered_rate,
        throughput.delivered_rate_while_publishing
    ));
    phase.ack = Some(summary);
    phase.throughput = Some(throughput);
    phase.deliveries = Some(deliveries(&apps.push, &outcome, ended, last));
    delivery_notes(phase, &apps.push);
    account(phase, &product.watched, &before, &after, outcome.completed());
    Ok(())
}

/// The messages `stream` holds.
async fn stream_messages(nats_url: &str, stream: &str) -> anyhow::Result<u64> {
    let client = async_nats::connect(nats_url).await?;
    let mut stream = async_nats::jetstream::new(client).get_stream(stream).await?;
    Ok(stream.info().await?.state.messages)
}
