//! `--instructions N` and `--instructions-only N`: instructions per publish with its push delivery, counted under
//! callgrind (`common::instructions`), the embedded form with telemetry on and all of it off.

use std::process::ExitCode;

use crate::apps::Apps;
use crate::common::ab::TELEMETRY_OFF;
use crate::common::instructions::{self, Call, Callgrind, Count, HttpCall};
use crate::common::load;
use crate::common::setup::{progress, random, server_env};
use crate::target::payload;
use crate::{Options, Product, PUSH_TOPIC};

/// Counts instructions per publish with its push delivery, prints them and writes them (into `timed`'s JSON
/// when the timed part ran).
pub(crate) async fn run_instructions(
    options: &Options,
    apps: &Apps,
    requests: usize,
    timed: Option<serde_json::Value>,
) -> ExitCode {
    let counted = match Callgrind::new(&options.target_dir, "pubsub", requests) {
        Ok(callgrind) => count_instructions(options, apps, &callgrind).await,
        Err(err) => Err(err),
    };
    instructions::finish(&options.target_dir, requests, counted, timed)
}

/// The embedded form under callgrind, publishing over HTTP to the push subscriber's topic: each publish and
/// its delivery to the app; then again with all telemetry off, what the first count's telemetry is read
/// against. Each count waits out the API log's flush before its dump, and the deliveries with it.
async fn count_instructions(
    options: &Options,
    apps: &Apps,
    callgrind: &Callgrind,
) -> anyhow::Result<Vec<(String, Vec<Count>)>> {
    let mut counted = Vec::new();
    for (label, unobserved) in
        [("embedded: publish + push delivery", false), ("embedded: publish + push delivery, telemetry off", true)]
    {
        let data_dir = tempfile::tempdir()?;
        let admin_token = random(32);
        progress("instructions: starting outrigger (all-in-one) under callgrind");
        let mut env = server_env(data_dir.path(), &admin_token);
        if unobserved {
            env.extend(TELEMETRY_OFF.iter().map(|(name, value)| (*name, (*value).to_owned())));
        }
        let (mut server, ready) = callgrind.start("all-in-one", &options.binary, &[], &env)?;
        let (product, _) = Product::embedded("embedded", ready, &admin_token, apps, options.payload_size).await?;
        // Every counted publish carries the same message: the app counts its receipts.
        let seq = load::next_seq();
        let call = Call::Http(HttpCall {
            method: reqwest::Method::POST,
            url: format!("http://{}/v1.0/publish/pubsub/{PUSH_TOPIC}", product.dapr_http),
            token: product.publisher_token.clone(),
            body: Some(payload(seq, 0, options.payload_size).into_bytes()),
            // As the timed phases and the SDKs publish it.
            content_type: Some("application/json"),
        });
        let counts = callgrind.measure(label, &[&server], &call).await?;
        let delivered = apps.push.receipts(std::iter::once(seq)).first().map_or(0, |(_, receipt)| receipt.count);
        progress(format!(
            "instructions: {label}: the app received {delivered} of the warm-up's and the count's publishes"
        ));
        server.stop();
        counted.push((label.to_owned(), counts));
    }
    Ok(counted)
}
