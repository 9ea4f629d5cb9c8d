//! Pub/sub benchmark: publish ack latency, publish-to-deliver latency to a push and to a streaming
//! subscriber, and sustained throughput, for the embedded default (managed `pubsub` on a durable SQLite
//! queue) and the distributed form (gateway, NATS, worker; managed `pubsub` on JetStream), each with a
//! baseline from the same load generator: a trivial HTTP handler, and a direct JetStream publish. With the
//! embedded form it also runs the embedded form with all telemetry off (API log, metrics and trace context;
//! publish and throughput only): what seeing every call costs, beside the same calls seen. With
//! `--instructions N` (or `--instructions-only N`) it counts instructions per publish with its push delivery,
//! the embedded form under callgrind, with telemetry on and all of it off (the dumps stay in
//! `target/bench/callgrind/pubsub/`).
//!
//! It runs the release binary (`cargo build --release` first, or set OUTRIGGER_BIN) and needs
//! PostgreSQL at 127.0.0.1:5432 and NATS with JetStream at 127.0.0.1:4222 (`scripts/services`).
//! `cargo bench --bench pubsub -- --help` lists the options.

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod ab;
mod apps;
mod instruction_counts;
mod phases;
mod report;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use crate::apps::{Apps, Recorder};
use crate::common::ab::TELEMETRY_OFF;
use crate::common::cli;
use crate::common::instructions;
use crate::common::load::{self, since_base};
use crate::common::procs::{self, Process, Ready, Watched};
use crate::common::setup::{self, port_of, progress, random, server_env, ControlApi};
use crate::phases::{baseline, http_connections, keep_failure, publish, push, stream, throughput};
use crate::report::{Kind, Phase, Settings};
use crate::target::{payload, Target};

const USAGE: &str = "\
usage: cargo bench --bench pubsub -- [options]

  --quick                5 s per measured phase (smoke run); env BENCH_QUICK=1
  --duration SECONDS     open-loop phase per scenario (default 30); env BENCH_DURATION
  --rate N               open-loop publishes per second (default 1000); env BENCH_RATE
  --connections N        keep-alive connections (default 16); env BENCH_CONNECTIONS
  --payload-size BYTES   size of each published JSON body (default 1024); env BENCH_PAYLOAD_SIZE
  --throughput SECONDS   closed-loop throughput phase (default 5, quick 2); env BENCH_THROUGHPUT
  --forms LIST           embedded,distributed (default both); env BENCH_FORMS
  --telemetry-ab ROUNDS  only this: telemetry's CPU per publish with its push delivery, timed, two all-in-ones
                         (telemetry on, all off) probed in turn for ROUNDS rounds of a --throughput closed loop
                         each, its deliveries awaited, order swapped every round; env BENCH_TELEMETRY_AB

  OUTRIGGER_BIN          the binary to run (default target/release/outrigger)
  BENCH_POSTGRES_URL     default postgres://postgres@127.0.0.1:5432/postgres
  BENCH_NATS_URL         default nats://127.0.0.1:4222

Writes the results to target/bench/pubsub.json as well.";

/// CPU used by processes other than the measured ones above which a phase is called disturbed.
const BUSY_MACHINE_CORES: f64 = 0.3;

const PROJECT: &str = "bench";
/// The App ID that publishes, the one the push subscription is scoped to, and the streaming one.
const PUBLISHER: &str = "pub";
const SUBSCRIBER: &str = "sub";
const STREAMER: &str = "streamer";
/// A topic nobody subscribes to, the push subscriber's and the streaming subscriber's.
const ACK_TOPIC: &str = "bench-ack";
const PUSH_TOPIC: &str = "bench-push";
const STREAM_TOPIC: &str = "bench-stream";

/// How long a subscription may take to receive its first message after it was made.
const LIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// After a phase, deliveries are awaited until all arrived, or none did for DRAIN_IDLE, or DRAIN_LIMIT.
const DRAIN_IDLE: Duration = Duration::from_secs(5);
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

struct Options {
    duration: Duration,
    rate: f64,
    connections: usize,
    payload_size: usize,
    warmup: Duration,
    warmup_rate: f64,
    throughput: Duration,
    quick: bool,
    embedded: bool,
    distributed: bool,
    binary: PathBuf,
    target_dir: PathBuf,
    postgres_url: String,
    nats_url: String,
    /// Requests to count instructions over, and whether only that runs.
    instructions: Option<(usize, bool)>,
    /// Rounds of the telemetry A/B probes, when only they run.
    telemetry_ab: Option<usize>,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let args = cli::parse(
            &format!("{USAGE}{}", instructions::USAGE),
            &[
                ("duration", "BENCH_DURATION"),
                ("rate", "BENCH_RATE"),
                ("connections", "BENCH_CONNECTIONS"),
                ("payload-size", "BENCH_PAYLOAD_SIZE"),
                ("throughput", "BENCH_THROUGHPUT"),
                ("forms", "BENCH_FORMS"),
                ("telemetry-ab", "BENCH_TELEMETRY_AB"),
                instructions::OPTIONS[0],
                instructions::OPTIONS[1],
            ],
        )?;
        let quick = args.quick;
        let duration: f64 = args.number("duration", if quick { 5.0 } else { 30.0 })?;
        let throughput: f64 = args.number("throughput", if quick { 2.0 } else { 5.0 })?;
        let rate: f64 = args.number("rate", 1000.0)?;
        let connections: usize = args.number("connections", 16)?;
        let payload_size: usize = args.number("payload-size", 1024)?;
        if !(duration > 0.0 && throughput > 0.0 && rate > 0.0 && connections > 0 && payload_size > 0) {
            bail!("duration, throughput, rate, connections and payload-size must all be greater than 0");
        }
        let forms: Vec<String> = args
            .value("forms")
            .unwrap_or("embedded,distributed")
            .split(',')
            .map(|form| form.trim().to_owned())
            .collect();
        if let Some(unknown) = forms.iter().find(|form| !matches!(form.as_str(), "embedded" | "distributed")) {
            bail!("forms: unknown form '{unknown}' (embedded, distributed)");
        }
        let target_dir = cli::target_dir();
        let binary = cli::binary(&target_dir);
        let instructions = instructions::requested(&args)?;
        let telemetry_ab = args.value("telemetry-ab").map(str::parse::<usize>).transpose()?;
        if telemetry_ab == Some(0) {
            bail!("--telemetry-ab takes the number of rounds, at least 1");
        }
        Ok(Options {
            duration: Duration::from_secs_f64(duration),
            rate,
            connections,
            payload_size,
            warmup: Duration::from_secs(2),
            warmup_rate: 100.0_f64.min(rate),
            throughput: Duration::from_secs_f64(throughput),
            quick,
            embedded: forms.iter().any(|form| form == "embedded"),
            distributed: forms.iter().any(|form| form == "distributed"),
            binary,
            target_dir,
            postgres_url: cli::env("BENCH_POSTGRES_URL")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
            nats_url: cli::env("BENCH_NATS_URL").unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned()),
            instructions,
            telemetry_ab,
        })
    }

    fn settings(&self) -> Settings {
        Settings {
            binary: self.binary.display().to_string(),
            duration_s: self.duration.as_secs_f64(),
            rate: self.rate,
            connections: self.connections,
            payload_size: self.payload_size,
            warmup_s: self.warmup.as_secs_f64(),
            warmup_rate: self.warmup_rate,
            throughput_s: self.throughput.as_secs_f64(),
            quick: self.quick,
        }
    }
}

/// What the bench created outside itself, removed at the end whatever happened.
#[derive(Default)]
struct Leftovers {
    schemas: Vec<String>,
    streams: Vec<String>,
}

fn remember(leftovers: &Mutex<Leftovers>, change: impl FnOnce(&mut Leftovers)) {
    if let Ok(mut leftovers) = leftovers.lock() {
        change(&mut leftovers);
    }
}

/// A running form of Outrigger, provisioned.
struct Product {
    form: &'static str,
    dapr_http: String,
    dapr_grpc: String,
    publisher_token: String,
    streamer_token: String,
    /// The distributed form's JetStream stream and the subject prefix of its topics.
    jetstream: Option<(String, String)>,
    /// The Outrigger processes, the bench process and the apps' thread.
    watched: Vec<Watched>,
}

impl Product {
    /// The all-in-one whose ready line is `ready`, provisioned, with its push subscription live; and its control
    /// API's address.
    async fn embedded(
        form: &'static str,
        ready: Ready,
        admin_token: &str,
        apps: &Apps,
        payload_size: usize,
    ) -> anyhow::Result<(Product, String)> {
        let control_api = ready.control_api.context("the ready line has no control_api")?;
        let dapr_http = ready.dapr_http.context("the ready line has no dapr_http")?;
        let dapr_grpc = ready.dapr_grpc.context("the ready line has no dapr_grpc")?;
        let (publisher_token, streamer_token) = provision(&control_api, admin_token, apps).await?;
        let product = Product {
            form,
            dapr_http,
            dapr_grpc,
            publisher_token,
            streamer_token,
            jetstream: None,
            watched: Vec::new(),
        };
        product.wait_live(&apps.push, PUSH_TOPIC, payload_size).await?;
        Ok((product, control_api))
    }

    fn publish_target(&self, topic: &str, size: usize) -> Target {
        Target::Http {
            url: format!("http://{}/v1.0/publish/pubsub/{topic}", self.dapr_http),
            token: Some(self.publisher_token.clone()),
            size,
        }
    }

    /// One publish of a fresh message to `topic`: its sequence number, or why it failed.
    async fn publish_once(&self, client: &reqwest::Client, topic: &str, size: usize) -> Result<u64, String> {
        let seq = load::next_seq();
        let response = client
            .post(format!("http://{}/v1.0/publish/pubsub/{topic}", self.dapr_http))
            .header("dapr-api-token", &self.publisher_token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload(seq, since_base(Instant::now()), size))
            .send()
            .await
            .map_err(|err| format!("{err}"))?;
        let status = response.status();
        if status.is_success() {
            Ok(seq)
        } else {
            Err(format!("HTTP {status}: {}", response.text().await.unwrap_or_default()))
        }
    }

    /// Publishes to `topic` until it is accepted (a worker may need a moment for a new project).
    async fn wait_publishable(&self, topic: &str, size: usize) -> anyhow::Result<()> {
        let client = setup::setup_client()?;
        let deadline = Instant::now() + LIVE_TIMEOUT;
        loop {
            match self.publish_once(&client, topic, size).await {
                Ok(_) => return Ok(()),
                Err(err) if Instant::now() > deadline => bail!("publishing to {topic}: {err}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Publishes probes to `topic` until one reaches `recorder`: the subscription is live.
    async fn wait_live(&self, recorder: &Recorder, topic: &str, size: usize) -> anyhow::Result<()> {
        let client = setup::setup_client()?;
        let started = Instant::now();
        let mut probes = Vec::new();
        let mut last_error = None;
        loop {
            match self.publish_once(&client, topic, size).await {
                Ok(seq) => probes.push(seq),
                Err(err) => last_error = Some(err),
            }
            let wait = Instant::now() + Duration::from_millis(250);
            while Instant::now() < wait {
                if recorder.has_any(&probes) {
                    progress(format!(
                        "{}: the subscriber of {topic} is live after {:.2} s",
                        self.form,
                        started.elapsed().as_secs_f64()
                    ));
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if started.elapsed() > LIVE_TIMEOUT {
                bail!(
                    "none of {} probes published to {topic} arrived within {LIVE_TIMEOUT:?}{}",
                    probes.len(),
                    last_error.map(|err| format!("; last publish error: {err}")).unwrap_or_default()
                );
            }
        }
    }
}

/// Creates the project, the publisher, the push subscriber (with its app endpoint and declarative
/// subscription) and the streaming App ID; answers the publisher's and the streamer's API tokens.
async fn provision(control_api: &str, admin_token: &str, apps: &Apps) -> anyhow::Result<(String, String)> {
    let api = ControlApi::new(control_api, admin_token)?;
    api.create_project(PROJECT).await?;
    let publisher = api.create_app(PROJECT, json!({"name": PUBLISHER})).await?;
    let endpoint = format!("http://{}", apps.addr);
    api.create_app(PROJECT, json!({"name": SUBSCRIBER, "appEndpoint": endpoint})).await?;
    let streamer = api.create_app(PROJECT, json!({"name": STREAMER})).await?;
    let subscription = format!(
        "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: {PUSH_TOPIC}\nspec:\n  pubsubname: pubsub\n  \
         topic: {PUSH_TOPIC}\n  routes:\n    default: /events\nscopes:\n- {SUBSCRIBER}\n"
    );
    api.put_resource(PROJECT, "subscriptions", PUSH_TOPIC, subscription).await?;
    Ok((publisher, streamer))
}

/// Starts the form's processes, provisions them and runs its phases
/// (baseline, publish, push, stream, throughput).
async fn run_form(
    options: &Options,
    apps: &Apps,
    leftovers: &Mutex<Leftovers>,
    form: &'static str,
    phases: &mut [Phase],
) -> anyhow::Result<()> {
    // Declared first, so it is removed after the processes have stopped.
    let data_dir = tempfile::tempdir()?;
    let admin_token = random(32);
    let mut env = server_env(data_dir.path(), &admin_token);
    if form == UNOBSERVED {
        env.extend(TELEMETRY_OFF.iter().map(|(name, value)| (*name, (*value).to_owned())));
    }
    let (mut processes, control_api, dapr_http, dapr_grpc, jetstream) = if form != "distributed" {
        progress("embedded: starting outrigger (all-in-one)");
        let (process, ready) = Process::start("outrigger (all-in-one)", &options.binary, &[], &env)?;
        let control_api = ready.control_api.context("the ready line has no control_api")?;
        let dapr_http = ready.dapr_http.context("the ready line has no dapr_http")?;
        let dapr_grpc = ready.dapr_grpc.context("the ready line has no dapr_grpc")?;
        (vec![process], control_api, dapr_http, dapr_grpc, None)
    } else {
        let schema = format!("bench_{}", random(12).to_lowercase());
        let prefix = format!("bench{}", random(12).to_lowercase());
        let stream = format!("{}_PUBSUB", prefix.to_uppercase());
        remember(leftovers, |leftovers| {
            leftovers.schemas.push(schema.clone());
            leftovers.streams.push(stream.clone());
        });
        setup::postgres(&options.postgres_url, &format!("CREATE SCHEMA {schema}")).await?;
        env.push(("OUTRIGGER_DATABASE_URL", setup::in_schema(&options.postgres_url, &schema)));
        env.push(("OUTRIGGER_NATS_URL", options.nats_url.clone()));
        env.push(("OUTRIGGER_BUS_SUBJECT_PREFIX", prefix.clone()));
        progress(format!("distributed: outrigger migrate (schema {schema}, stream {stream})"));
        let (processes, ready) = setup::start_distributed(&options.binary, &env)?;
        let dapr_http = ready[1].dapr_http.clone().context("the gateway's ready line has no dapr_http")?;
        let dapr_grpc = ready[1].dapr_grpc.clone().context("the gateway's ready line has no dapr_grpc")?;
        let control_api = ready[2].control_api.clone().context("the control API's ready line has no control_api")?;
        (processes, control_api, dapr_http, dapr_grpc, Some((stream, format!("{prefix}.pubsub"))))
    };
    let (publisher_token, streamer_token) = provision(&control_api, &admin_token, apps).await?;
    let mut watched: Vec<Watched> = processes.iter().map(Watched::of).collect();
    watched.push(Watched { name: "(bench process)".to_owned(), pid: "self".to_owned(), outrigger: false });
    if let Some(thread) = &apps.thread {
        watched.push(Watched { name: "(bench: apps thread)".to_owned(), pid: thread.clone(), outrigger: false });
    }
    // The broker's CPU belongs to the distributed form's figures, not to the background.
    let nats_port = port_of(&options.nats_url).ok();
    if let Some(pid) = nats_port.filter(|_| jetstream.is_some()).and_then(procs::listener_pid) {
        watched.push(Watched { name: "(nats-server)".to_owned(), pid: pid.to_string(), outrigger: false });
    }
    let product = Product { form, dapr_http, dapr_grpc, publisher_token, streamer_token, jetstream, watched };
    // Also makes the distributed form's stream, which its baseline publishes to.
    product.wait_publishable(ACK_TOPIC, options.payload_size).await?;

    let mut connections = http_connections(options.connections)?;
    for phase in phases.iter_mut() {
        let outcome = match phase.kind {
            Kind::Baseline => baseline(options, &product, apps, phase).await,
            Kind::Publish => publish(options, &product, &mut connections, phase).await,
            Kind::Push => push(options, &product, apps, &mut connections, phase).await,
            Kind::Stream => stream(options, &product, apps, &mut connections, phase).await,
            Kind::Throughput => throughput(options, &product, apps, &mut connections, phase).await,
        };
        keep_failure(phase, outcome);
        for process in &mut processes {
            if !process.alive() {
                bail!("{} died: {}", process.name, process.output());
            }
        }
    }
    drop(connections);
    // Gateway, control API, then worker: no call is in flight when the worker goes.
    if processes.len() > 1 {
        processes.rotate_left(1);
    }
    for note in setup::stop_all(&mut processes) {
        for phase in phases.iter_mut() {
            phase.notes.push(note.clone());
        }
    }
    Ok(())
}

/// Removes the schemas and JetStream streams the bench made; answers what it did.
async fn clean_up(options: &Options, leftovers: Leftovers) -> Vec<String> {
    let mut done = Vec::new();
    if !leftovers.streams.is_empty() {
        match async_nats::connect(&options.nats_url).await {
            Ok(client) => {
                let context = async_nats::jetstream::new(client);
                for stream in leftovers.streams {
                    done.push(match context.delete_stream(&stream).await {
                        Ok(_) => format!("deleted JetStream stream {stream}"),
                        Err(err) if err.to_string().contains("not found") => {
                            format!("JetStream stream {stream} did not exist")
                        }
                        Err(err) => format!("could not delete JetStream stream {stream}: {err}"),
                    });
                }
            }
            Err(err) => done.push(format!("could not connect to NATS to delete {:?}: {err}", leftovers.streams)),
        }
    }
    for schema in leftovers.schemas {
        done.push(
            match setup::postgres(&options.postgres_url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await {
                Ok(()) => format!("dropped schema {schema}"),
                Err(err) => format!("could not drop schema {schema}: {err:#}"),
            },
        );
    }
    for line in &done {
        progress(format!("cleanup: {line}"));
    }
    done
}

/// The embedded form with the API log, metrics and trace context off.
const UNOBSERVED: &str = "embedded, telemetry off";

fn phases_of(form: &'static str) -> Vec<Phase> {
    if form == UNOBSERVED {
        let hops = "HTTP -> all-in-one gateway (telemetry off) -> in-process bus -> worker -> SQLite queue";
        return vec![
            Phase::new(form, Kind::Publish, "publish, no subscriber", hops),
            Phase::new(form, Kind::Throughput, "throughput, push subscriber", &format!("{hops} -> push to the app")),
        ];
    }
    let (baseline, baseline_path, hops) = if form == "embedded" {
        (
            "baseline, HTTP POST to an axum handler",
            "load generator -> HTTP POST -> a trivial axum handler in the bench",
            "HTTP -> all-in-one gateway -> in-process bus -> worker -> SQLite queue",
        )
    } else {
        (
            "baseline, JetStream publish",
            "load generator -> JetStream publish with ack (async-nats), the managed pubsub's stream",
            "HTTP -> gateway -> NATS -> worker -> JetStream (file storage)",
        )
    };
    vec![
        Phase::new(form, Kind::Baseline, baseline, baseline_path),
        Phase::new(form, Kind::Publish, "publish, no subscriber", hops),
        Phase::new(form, Kind::Push, "publish, push subscriber", &format!("{hops} -> push to the app over HTTP")),
        Phase::new(form, Kind::Stream, "publish, streaming subscriber", &format!("{hops} -> gRPC stream to the app")),
        Phase::new(form, Kind::Throughput, "throughput, push subscriber", &format!("{hops} -> push to the app")),
    ]
}

async fn run_all(
    options: &Options,
    apps: &Apps,
    leftovers: &Mutex<Leftovers>,
    forms: &mut [(&'static str, Vec<Phase>)],
) {
    for (form, phases) in forms {
        if let Err(err) = run_form(options, apps, leftovers, form, phases).await {
            progress(format!("{form}: FAILED: {err:#}"));
            for phase in phases.iter_mut().filter(|phase| phase.error.is_none() && !phase.measured()) {
                phase.error = Some(format!("{err:#}"));
            }
        }
    }
}

async fn run(options: Options) -> ExitCode {
    if !cli::check_binary(&options.binary) {
        return ExitCode::FAILURE;
    }
    load::base();
    let apps = match Apps::start() {
        Ok(apps) => apps,
        Err(err) => {
            eprintln!("error: starting the subscriber apps: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Some((requests, true)) = options.instructions {
        return instruction_counts::run_instructions(&options, &apps, requests, None).await;
    }
    if let Some(rounds) = options.telemetry_ab {
        return common::ab::report(ab::run(&options, &apps, rounds).await, &options.target_dir);
    }
    let leftovers = Mutex::new(Leftovers::default());
    let mut forms = Vec::new();
    let forms_wanted =
        [("embedded", options.embedded), (UNOBSERVED, options.embedded), ("distributed", options.distributed)];
    for (form, wanted) in forms_wanted {
        if wanted {
            forms.push((form, phases_of(form)));
        }
    }
    let interrupted = tokio::select! {
        () = run_all(&options, &apps, &leftovers, &mut forms) => false,
        _ = tokio::signal::ctrl_c() => {
            progress("interrupted: stopping the processes and cleaning up");
            true
        }
    };
    let mut phases: Vec<Phase> = forms.into_iter().flat_map(|(_, phases)| phases).collect();
    if interrupted {
        for phase in phases.iter_mut().filter(|phase| phase.error.is_none() && !phase.measured()) {
            phase.error = Some("interrupted".to_owned());
        }
    }
    let leftovers = leftovers.into_inner().unwrap_or_default();
    let cleanup = clean_up(&options, leftovers).await;

    let settings = options.settings();
    println!("{}", report::table(&settings, &phases));
    let json = report::to_json(&settings, &phases, &cleanup);
    let failed = interrupted || phases.iter().any(|phase| phase.error.is_some());
    let code = match options.instructions {
        Some((requests, _)) if !interrupted => {
            instruction_counts::run_instructions(&options, &apps, requests, Some(json)).await
        }
        _ => {
            cli::write_json(&options.target_dir, &json);
            ExitCode::SUCCESS
        }
    };
    if failed {
        ExitCode::FAILURE
    } else {
        code
    }
}

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    // One scheduler thread plus the dispatcher thread (and the apps' thread): the machine running this
    // is small, and the processes under test need the cores more.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: building the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(options))
}
