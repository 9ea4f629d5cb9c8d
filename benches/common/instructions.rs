//! Instructions per request: Outrigger's processes run under `valgrind --tool=callgrind`, a caller sends a
//! fixed number of sequential requests over one keep-alive connection after a warm-up, and each process's
//! instructions over exactly those requests (counters zeroed before, dumped after) are divided by their
//! number. Unlike times, the count repeats on a shared machine whatever else runs on it.
//!
//! Dumps stay in `target/bench/callgrind/<bench>/` for `scripts/callgrind-summary`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use dapr::dapr::proto::runtime::v1::dapr_client::DaprClient;
use dapr::dapr::proto::runtime::v1::GetStateRequest;
use serde_json::{json, Value};
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use super::cli::{self, Args};
use super::procs::{Process, Ready};
use super::setup::progress;

/// Requests sent before the counters are zeroed: connections, caches and lazy statics are set up by then.
const WARM_UP: usize = 200;

/// Longer than the API log's flush interval (1 s), with room for a batch's write under callgrind.
const API_LOG_FLUSHED: Duration = Duration::from_millis(2_500);

/// glibc's `memcpy` and `memset` move a block of 2 KiB or more with `rep movsb` / `rep stosb`, which callgrind counts
/// as one instruction per byte, while the CPU moves 32 to 64 bytes a cycle: an API-log block of 30 KiB copied
/// into SQLite counted as 30,000 instructions, ten times its vector loop's count. Under callgrind glibc is told to
/// use the vector loop at every size (a load or a store per 32 bytes, about an instruction per 12 bytes moved), so
/// that a large copy counts about as much as it costs, as a small one already does.
const VECTOR_COPIES: (&str, &str) =
    ("GLIBC_TUNABLES", "glibc.cpu.x86_rep_movsb_threshold=1000000000:glibc.cpu.x86_rep_stosb_threshold=1000000000");

/// Runs processes under callgrind and reads their counts.
pub struct Callgrind {
    dir: PathBuf,
    /// Requests counted per measurement.
    pub requests: usize,
}

/// One request the caller repeats.
pub enum Call {
    /// An HTTP request.
    Http(HttpCall),
    /// `GetState` over the Dapr gRPC API (`endpoint`: host and port), as the SDKs read state by default.
    GrpcGetState { endpoint: String, token: String, store: String, key: String },
}

/// An HTTP request with the caller's API token.
pub struct HttpCall {
    pub method: reqwest::Method,
    pub url: String,
    pub token: String,
    pub body: Option<Vec<u8>>,
    /// The body's `content-type`, if one is sent.
    pub content_type: Option<&'static str>,
}

/// What sends a [`Call`]: one keep-alive connection for the warm-up and the counted calls.
enum Caller<'a> {
    Http(reqwest::Client, &'a HttpCall),
    Grpc(Box<(DaprClient<Channel>, GetStateRequest, AsciiMetadataValue)>),
}

impl<'a> Caller<'a> {
    async fn connect(call: &'a Call) -> anyhow::Result<Caller<'a>> {
        Ok(match call {
            Call::Http(call) => Caller::Http(reqwest::Client::builder().pool_max_idle_per_host(1).build()?, call),
            Call::GrpcGetState { endpoint, token, store, key } => {
                let channel = Channel::from_shared(format!("http://{endpoint}"))?.connect().await?;
                let message = GetStateRequest { store_name: store.clone(), key: key.clone(), ..Default::default() };
                Caller::Grpc(Box::new((DaprClient::new(channel), message, token.parse()?)))
            }
        })
    }

    async fn send(&mut self, times: usize) -> anyhow::Result<()> {
        match self {
            Caller::Http(client, call) => send_http(client, call, times).await,
            Caller::Grpc(grpc) => {
                let (client, message, token) = &mut **grpc;
                for _ in 0..times {
                    let mut request = tonic::Request::new(message.clone());
                    request.metadata_mut().insert("dapr-api-token", token.clone());
                    let answer = client.get_state(request).await.context("GetState")?.into_inner();
                    if answer.data.is_empty() {
                        bail!("GetState {:?}: no value", message.key);
                    }
                }
                Ok(())
            }
        }
    }
}

/// A process's instructions over one measurement.
pub struct Count {
    pub process: String,
    pub per_request: u64,
    pub dump: PathBuf,
}

impl Callgrind {
    /// Checks that valgrind is installed; dumps go under `target_dir/bench/callgrind/<bench>`.
    pub fn new(target_dir: &Path, bench: &str, requests: usize) -> anyhow::Result<Callgrind> {
        let found = Command::new("valgrind").arg("--version").output();
        if !found.is_ok_and(|output| output.status.success()) {
            bail!("--instructions needs valgrind (Debian: apt-get install valgrind)");
        }
        if requests == 0 {
            bail!("--instructions needs a number of requests greater than 0");
        }
        let dir = target_dir.join("bench/callgrind").join(bench);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Callgrind { dir, requests })
    }

    /// Starts `binary args` under callgrind (`name` names its dumps) and waits for its ready line.
    pub fn start(
        &self,
        name: &str,
        binary: &Path,
        args: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<(Process, Ready)> {
        let out = format!("--callgrind-out-file={}", self.dir.join(format!("{name}.out")).display());
        let binary = binary.display().to_string();
        let mut wrapped = vec!["--tool=callgrind", out.as_str(), binary.as_str()];
        wrapped.extend_from_slice(args);
        let mut env = env.to_vec();
        env.push((VECTOR_COPIES.0, VECTOR_COPIES.1.to_owned()));
        Process::start(name, Path::new("valgrind"), &wrapped, &env)
    }

    /// Warms `call` up, zeroes the counters of `processes`, sends `requests` calls, dumps and answers each
    /// process's instructions per request. `label` names the dumps.
    pub async fn measure(&self, label: &str, processes: &[&Process], call: &Call) -> anyhow::Result<Vec<Count>> {
        let mut caller = Caller::connect(call).await?;
        progress(format!("instructions: {label}: warm-up, then {} requests under callgrind", self.requests));
        caller.send(WARM_UP).await?;
        // The API log writes what it gathered once a second: counting starts once the warm-up's calls are written
        // and stops once the counted ones are, so the writer's work is counted for exactly the counted calls.
        tokio::time::sleep(API_LOG_FLUSHED).await;
        for process in processes {
            control(process, "-z")?;
        }
        caller.send(self.requests).await?;
        tokio::time::sleep(API_LOG_FLUSHED).await;
        let mut counts = Vec::new();
        for process in processes {
            let before = dumps(&self.dir, &process.name)?;
            control(process, "-d")?;
            let dump = wait_for_new_dump(&self.dir, &process.name, &before)?;
            let total = totals(&dump)?;
            let kept = self.dir.join(format!("{}.{label}.out", process.name));
            std::fs::rename(&dump, &kept).with_context(|| format!("keeping {}", dump.display()))?;
            let per_request = total / self.requests as u64;
            progress(format!("instructions: {label}: {}: {per_request} per request", process.name));
            counts.push(Count { process: process.name.clone(), per_request, dump: kept });
        }
        Ok(counts)
    }
}

/// The `--instructions N` / `--instructions-only N` options (variables BENCH_INSTRUCTIONS and
/// BENCH_INSTRUCTIONS_ONLY), for [`cli::parse`].
pub const OPTIONS: [(&str, &str); 2] =
    [("instructions", "BENCH_INSTRUCTIONS"), ("instructions-only", "BENCH_INSTRUCTIONS_ONLY")];

/// Their usage lines.
pub const USAGE: &str = "\
  --instructions N     afterwards, instructions per request of each Outrigger process under callgrind over
                       N sequential requests after a warm-up; env BENCH_INSTRUCTIONS
  --instructions-only N  only the instruction counts; env BENCH_INSTRUCTIONS_ONLY";

/// How many requests to count over, and whether only the counts run; `None` when not asked.
pub fn requested(args: &Args) -> anyhow::Result<Option<(usize, bool)>> {
    Ok(match (args.number("instructions-only", 0usize)?, args.number("instructions", 0usize)?) {
        (0, 0) => None,
        (0, requests) => Some((requests, false)),
        (requests, _) => Some((requests, true)),
    })
}

/// Prints the counts and writes them into `json` (the timed part's results, if it ran) as `instructions`.
pub fn finish(
    target_dir: &Path,
    requests: usize,
    counted: anyhow::Result<Vec<(String, Vec<Count>)>>,
    json: Option<Value>,
) -> std::process::ExitCode {
    let mut json = json.unwrap_or_else(|| json!({}));
    let code = match counted {
        Ok(measured) => {
            let (text, counts) = report(&measured, requests);
            println!("{text}");
            json["instructions"] = counts;
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("instructions: FAILED: {err:#}");
            json["instructions"] = json!({ "error": format!("{err:#}") });
            std::process::ExitCode::FAILURE
        }
    };
    cli::write_json(target_dir, &json);
    code
}

/// Counts as a table section and as JSON: one line per measurement and process, plus the sum when a
/// measurement spans processes.
fn report(measurements: &[(String, Vec<Count>)], requests: usize) -> (String, Value) {
    let mut text = format!("\ninstructions per request (callgrind, {requests} sequential requests after a warm-up)\n");
    let mut rows = Vec::new();
    let width = measurements.iter().map(|(label, _)| label.len()).max().unwrap_or_default();
    for (label, counts) in measurements {
        for count in counts {
            text.push_str(&format!("{label:<width$} {:<24} {:>10}\n", count.process, count.per_request));
            rows.push(json!({ "scenario": label, "process": count.process, "per_request": count.per_request,
                "dump": count.dump.display().to_string() }));
        }
        if counts.len() > 1 {
            let sum: u64 = counts.iter().map(|count| count.per_request).sum();
            text.push_str(&format!("{label:<width$} {:<24} {sum:>10}\n", "(sum)"));
        }
    }
    (text, json!({ "requests": requests, "counts": rows }))
}

async fn send_http(client: &reqwest::Client, call: &HttpCall, times: usize) -> anyhow::Result<()> {
    for _ in 0..times {
        let mut request = client.request(call.method.clone(), &call.url).header("dapr-api-token", &call.token);
        if let Some(body) = &call.body {
            request = request.body(body.clone());
        }
        if let Some(content_type) = call.content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        let answer = request.send().await.with_context(|| format!("{} {}", call.method, call.url))?;
        let status = answer.status();
        let text = answer.text().await?;
        if !status.is_success() {
            bail!("{} {}: HTTP {status}: {text}", call.method, call.url);
        }
    }
    Ok(())
}

fn control(process: &Process, flag: &str) -> anyhow::Result<()> {
    let done = Command::new("callgrind_control").arg(flag).arg(process.pid.to_string()).output()?;
    if !done.status.success() {
        bail!("callgrind_control {flag} {}: {}", process.pid, String::from_utf8_lossy(&done.stderr));
    }
    Ok(())
}

/// The dump files of `name` now present.
fn dumps(dir: &Path, name: &str) -> anyhow::Result<Vec<PathBuf>> {
    let prefix = format!("{name}.out.");
    Ok(std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.file_name().is_some_and(|file| file.to_string_lossy().starts_with(&prefix)))
        .collect())
}

/// `callgrind_control -d` returns once the dump is requested; the file appears when valgrind has written it.
fn wait_for_new_dump(dir: &Path, name: &str, before: &[PathBuf]) -> anyhow::Result<PathBuf> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(dump) = dumps(dir, name)?.into_iter().find(|path| !before.contains(path)) {
            if std::fs::read_to_string(&dump).is_ok_and(|text| text.contains("\ntotals:")) {
                return Ok(dump);
            }
        }
        if std::time::Instant::now() > deadline {
            bail!("no callgrind dump of {name} appeared in {}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `totals:` line of a dump: instructions since the counters were last zeroed.
fn totals(dump: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(dump)?;
    let line = text.lines().find_map(|line| line.strip_prefix("totals:")).context("a dump has a totals line")?;
    line.trim().parse().with_context(|| format!("totals of {}: '{line}'", dump.display()))
}
