//! Telemetry's CPU per state GET, timed (`--telemetry-ab`): two all-in-ones, telemetry on and all of it off, each
//! with the `redis-store` component and KEY's value, probed in turn by closed-loop GETs (`common::ab` says how
//! and why).

use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::common::ab::{self, Side, TELEMETRY_OFF};
use crate::common::load;
use crate::common::procs::Process;
use crate::common::setup::{self, progress, random, server_env};
use crate::target::{Connection, Target};
use crate::{http_connections, provision, write_value, Options, KEY};

/// What a side is probed with: its connections and the GET.
struct Gets {
    connections: Vec<Connection>,
    target: Target,
}

/// Starts an all-in-one with `extra_env`, with the component and KEY's value, and its connections.
async fn start(
    options: &Options,
    name: &'static str,
    data_dir: &std::path::Path,
    extra_env: &[(&str, &str)],
    value: &str,
) -> anyhow::Result<Side<Gets>> {
    let admin_token = random(32);
    let mut env = server_env(data_dir, &admin_token);
    env.extend(extra_env.iter().map(|(name, value)| (*name, (*value).to_owned())));
    let (process, ready) = Process::start(name, &options.binary, &[], &env)?;
    let dapr = ready.dapr_http.context("the ready line has no dapr_http")?;
    let control_api = ready.control_api.context("the ready line has no control_api")?;
    let api_token = provision(&control_api, &admin_token, &options.redis_addr).await?;
    write_value(&setup::setup_client()?, &dapr, &api_token, "redis-store", value).await?;
    let target = Target::Http {
        url: format!("http://{dapr}/v1.0/state/redis-store/{KEY}"),
        token: api_token,
        body_len: serde_json::to_string(value)?.len(),
    };
    let gets = Gets { connections: http_connections(options.connections)?, target };
    Ok(Side::new(name, process, gets, (&control_api, &admin_token), 1))
}

/// Runs `rounds` rounds of a probe of each process, telemetry on and off, and answers the printed table and JSON.
pub async fn run(
    options: &Options,
    rounds: usize,
    probe_length: Duration,
) -> anyhow::Result<(String, serde_json::Value)> {
    let value = random(options.value_size);
    let (on_dir, off_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    progress("telemetry A/B: starting two all-in-ones, telemetry on and all telemetry off");
    let mut sides = [
        start(options, "telemetry on", on_dir.path(), &[], &value).await?,
        start(options, "telemetry off", off_dir.path(), TELEMETRY_OFF, &value).await?,
    ];
    ab::alternate(&mut sides, rounds, "GET", async |side, kept| {
        side.measure(kept, async |gets| load::closed_loop(&mut gets.connections, &gets.target, probe_length).await)
            .await
    })
    .await?;
    let heading = format!(
        "telemetry A/B: state GET of a {} B value on state.redis, {rounds} rounds of a {:.1} s closed-loop probe \
         per process over {} connections, in alternating order",
        options.value_size,
        probe_length.as_secs_f64(),
        options.connections
    );
    let settings = json!({
        "probe_s": probe_length.as_secs_f64(),
        "connections": options.connections,
        "value_bytes": options.value_size,
    });
    Ok(ab::summary(&sides, &heading, "GET", settings))
}
