//! Telemetry's CPU per publish, timed (`--telemetry-ab`): two all-in-ones, telemetry on and all of it off, each
//! provisioned as the bench's embedded form (the push subscriber in the bench's apps), probed in turn by
//! closed-loop publishes to the push subscriber's topic (`common::ab` says how and why). A probe ends once the app
//! received every publish it made, so a publish's CPU includes its delivery and what the API log writes of both.

use anyhow::bail;
use serde_json::json;

use crate::apps::Apps;
use crate::common::ab::{self, Side, TELEMETRY_OFF};
use crate::common::load;
use crate::common::procs::Process;
use crate::common::setup::{progress, random, server_env};
use crate::phases::http_connections;
use crate::target::{Connection, Target};
use crate::{Options, Product, DRAIN_IDLE, DRAIN_LIMIT, PUSH_TOPIC};

/// What a side is probed with: its connections and the publish.
struct Publishes {
    connections: Vec<Connection>,
    target: Target,
}

/// Starts an all-in-one with `extra_env`, provisioned, its push subscription live, and its connections.
async fn start(
    options: &Options,
    apps: &Apps,
    name: &'static str,
    data_dir: &std::path::Path,
    extra_env: &[(&str, &str)],
) -> anyhow::Result<Side<Publishes>> {
    let admin_token = random(32);
    let mut env = server_env(data_dir, &admin_token);
    env.extend(extra_env.iter().map(|(name, value)| (*name, (*value).to_owned())));
    let (process, ready) = Process::start(name, &options.binary, &[], &env)?;
    let (product, control_api) = Product::embedded(name, ready, &admin_token, apps, options.payload_size).await?;
    let publishes = Publishes {
        connections: http_connections(options.connections)?,
        target: product.publish_target(PUSH_TOPIC, options.payload_size),
    };
    // A publish is logged once as the publisher's call and once as the delivery to the subscriber.
    Ok(Side::new(name, process, publishes, (&control_api, &admin_token), 2))
}

/// Runs `rounds` rounds of a probe of each process, telemetry on and off, and answers the printed table and JSON.
pub async fn run(options: &Options, apps: &Apps, rounds: usize) -> anyhow::Result<(String, serde_json::Value)> {
    let (on_dir, off_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    progress("telemetry A/B: starting two all-in-ones, telemetry on and all telemetry off");
    let mut sides = [
        start(options, apps, "telemetry on", on_dir.path(), &[]).await?,
        start(options, apps, "telemetry off", off_dir.path(), TELEMETRY_OFF).await?,
    ];
    let probe_length = options.throughput;
    ab::alternate(&mut sides, rounds, "publish", async |side, kept| {
        let name = side.name;
        side.measure(kept, async |publishes| {
            let outcome = load::closed_loop(&mut publishes.connections, &publishes.target, probe_length).await?;
            apps.push.drain(&outcome, DRAIN_IDLE, DRAIN_LIMIT).await;
            let delivered = apps.push.count_of(&outcome.succeeded);
            if delivered < outcome.succeeded.len() {
                bail!("{name}: the app received {delivered} of the {} publishes acknowledged", outcome.succeeded.len());
            }
            Ok(outcome)
        })
        .await
    })
    .await?;
    let heading = format!(
        "telemetry A/B: publish of a {} B JSON body to the push subscriber's topic, its delivery awaited, {rounds} \
         rounds of a {:.1} s closed-loop probe per process over {} connections, in alternating order",
        options.payload_size,
        probe_length.as_secs_f64(),
        options.connections
    );
    let settings = json!({
        "probe_s": probe_length.as_secs_f64(),
        "connections": options.connections,
        "payload_bytes": options.payload_size,
    });
    Ok(ab::summary(&sides, &heading, "publish", settings))
}
