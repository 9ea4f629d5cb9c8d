//! A real all-in-one Outrigger server per test, and the `outrigger` CLI run against it.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::Value;

/// A debug build migrating a fresh database can take a while on a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

const BINARY: &str = env!("CARGO_BIN_EXE_outrigger");

pub fn random_token() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect()
}

/// The outrigger binary with `args`, ignoring any OUTRIGGER_* setting of the environment the
/// tests run in, and any credential `outrigger login` stored for the user running them (tests that sign in
/// set `OUTRIGGER_CONFIG_DIR` to a directory of their own).
pub fn outrigger<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(BINARY);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OUTRIGGER_") {
            command.env_remove(name);
        }
    }
    command.env("OUTRIGGER_CONFIG_DIR", std::env::temp_dir().join("outrigger-tests-never-signed-in"));
    command.args(args).stdin(Stdio::null());
    command
}

/// A fresh data directory and a server started on it with a random admin token.
pub fn start() -> (tempfile::TempDir, Server) {
    let data_dir = tempfile::tempdir().expect("creating a data directory");
    let server = Server::start(data_dir.path(), Some(&random_token()));
    (data_dir, server)
}

/// The addresses the ready line reports; each only from the roles that serve it.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub control_api: Option<SocketAddr>,
    pub dapr_http: Option<SocketAddr>,
    pub dapr_grpc: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
}

/// A running server; SIGTERMed when dropped.
pub struct Server {
    process: ServerProcess,
    pub addresses: Addresses,
    data_dir: PathBuf,
    admin_token: Option<String>,
}

impl Server {
    /// Starts the all-in-one server on `data_dir` and waits for its ready line. Without
    /// `admin_token` the server makes up its own (first start) or reuses the one it wrote.
    pub fn start(data_dir: &Path, admin_token: Option<&str>) -> Self {
        Self::start_role(&[], &[], data_dir, admin_token)
    }

    /// Starts `outrigger <role_args>` with extra environment `env` and waits for its ready line.
    pub fn start_role(role_args: &[&str], env: &[(&str, &str)], data_dir: &Path, admin_token: Option<&str>) -> Self {
        let mut command = outrigger(role_args);
        command.envs(env.iter().copied());
        command
            .env("OUTRIGGER_DATA_DIR", data_dir)
            .env("OUTRIGGER_CONTROL_API_ADDR", "127.0.0.1:0")
            .env("OUTRIGGER_HTTP_ADDR", "127.0.0.1:0")
            .env("OUTRIGGER_GRPC_ADDR", "127.0.0.1:0")
            .env("OUTRIGGER_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(token) = admin_token {
            command.env("OUTRIGGER_ADMIN_TOKEN", token);
        }
        let (mut process, stdout_lines) = ServerProcess::spawn(command);
        let addresses = process.wait_ready(&stdout_lines);
        Self { process, addresses, data_dir: data_dir.to_owned(), admin_token: admin_token.map(str::to_owned) }
    }

    /// The CLI aimed at this server: with the admin token when the test chose one, otherwise
    /// with OUTRIGGER_DATA_DIR so that the CLI reads the token the server wrote.
    pub fn outrigger<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = outrigger(args);
        command.env("OUTRIGGER_URL", self.url());
        match &self.admin_token {
            Some(token) => command.env("OUTRIGGER_TOKEN", token),
            None => command.env("OUTRIGGER_DATA_DIR", &self.data_dir),
        };
        command
    }

    /// The operator token the test started the server with.
    pub fn admin_token(&self) -> &str {
        self.admin_token.as_deref().expect("a server started with an admin token")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addresses.control_api.expect("this server role serves the control API"))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// SIGKILLs the server (a crash, not a shutdown) and waits for it to be gone.
    pub fn kill(mut self) {
        signal("-KILL", self.process.pid);
        self.process.terminate();
    }

    /// SIGTERMs the server and waits for it to exit.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let status = self.process.terminate().expect("the server did not exit, even after SIGKILL");
        (status, self.process.output())
    }

    /// Calls the control API directly, to compare the CLI with what the server answers.
    pub fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (reqwest::StatusCode, Value) {
        self.api_in(None, method, path, body)
    }

    /// Calls the control API directly with the operator token working in `org` (`default` when none).
    pub fn api_in(
        &self,
        org: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (reqwest::StatusCode, Value) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("building a runtime");
        runtime.block_on(async {
            let token = self.admin_token.as_deref().expect("api() needs a server started with an admin token");
            let mut request =
                reqwest::Client::new().request(method, format!("{}/api/v1{path}", self.url())).bearer_auth(token);
            if let Some(org) = org {
                request = request.header("outrigger-organization", org);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.expect("calling the control API");
            let status = response.status();
            let text = response.text().await.expect("reading the control API's answer");
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }
}

/// The server's child process: its exit status arrives on a channel from the thread that waits
/// for it, and its stdout and stderr are drained for the whole of its life so that its writes
/// never block on a full pipe.
struct ServerProcess {
    pid: u32,
    exit: Receiver<std::io::Result<ExitStatus>>,
    exit_status: Option<ExitStatus>,
    /// Everything the server wrote on stdout and stderr, line by line.
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl ServerProcess {
    /// Spawns the server; the receiver gets its stdout lines until it is dropped.
    fn spawn(mut command: Command) -> (Self, Receiver<String>) {
        let mut child: Child = command.spawn().expect("spawning the outrigger binary");
        let output = Arc::new(Mutex::new(String::new()));
        let (line_sender, stdout_lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let readers =
            vec![drain(stdout, Arc::clone(&output), Some(line_sender)), drain(stderr, Arc::clone(&output), None)];
        let pid = child.id();
        let (exit_sender, exit) = mpsc::channel();
        std::thread::spawn(move || {
            // The test may have stopped listening; the status is then of no use.
            let _ = exit_sender.send(child.wait());
        });
        (Self { pid, exit, exit_status: None, output, readers }, stdout_lines)
    }

    fn wait_ready(&mut self, stdout_lines: &Receiver<String>) -> Addresses {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match stdout_lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(addresses) = ready_addresses(&line) {
                        return addresses;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no ready line within {READY_TIMEOUT:?}; server output:\n{}", self.output())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.terminate();
                    panic!("the server closed stdout before its ready line ({status:?}); output:\n{}", self.output())
                }
            }
        }
    }

    fn output(&self) -> String {
        self.output.lock().map(|output| output.clone()).unwrap_or_default()
    }

    /// SIGTERM, then SIGKILL if the server has not exited within STOP_TIMEOUT; `None` only if
    /// even that did not end it. Never panics: it runs in `Drop`.
    fn terminate(&mut self) -> Option<ExitStatus> {
        if self.exit_status.is_none() {
            // A server that already exited is not signalled: its pid may belong to another process by now.
            let status = self.exit.try_recv().or_else(|_| {
                signal("-TERM", self.pid);
                self.exit.recv_timeout(STOP_TIMEOUT).or_else(|_| {
                    signal("-KILL", self.pid);
                    self.exit.recv_timeout(STOP_TIMEOUT)
                })
            });
            self.exit_status = status.ok().and_then(Result::ok);
            // The pipes close when the server exits, so the readers finish.
            for reader in self.readers.drain(..) {
                let _ = reader.join();
            }
        }
        self.exit_status
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn signal(signal: &str, pid: u32) {
    // Failure means the process is already gone, which is what signalling is for.
    let _ = Command::new("kill").arg(signal).arg(pid.to_string()).status();
}

/// Appends every line of `pipe` to `output`, and hands stdout lines to `lines` while someone listens.
fn drain(
    pipe: impl Read + Send + 'static,
    output: Arc<Mutex<String>>,
    lines: Option<mpsc::Sender<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut output) = output.lock() {
                output.push_str(&line);
                output.push('\n');
            }
            if let Some(lines) = &lines {
                let _ = lines.send(line);
            }
        }
    })
}

/// The listener addresses of the JSON log line `{"fields":{"message":"outrigger ready",...}}`.
fn ready_addresses(line: &str) -> Option<Addresses> {
    let log: Value = serde_json::from_str(line).ok()?;
    let fields = &log["fields"];
    if fields["message"] != "outrigger ready" {
        return None;
    }
    let address = |name: &str| -> Option<SocketAddr> {
        let value = fields.get(name)?;
        let parsed = value.as_str().and_then(|address| address.parse().ok());
        Some(parsed.unwrap_or_else(|| panic!("the ready line's {name} is not a socket address: {line}")))
    };
    Some(Addresses {
        control_api: address("control_api"),
        dapr_http: address("dapr_http"),
        dapr_grpc: address("dapr_grpc"),
        metrics: address("metrics"),
    })
}

/// Running a CLI command and checking how it ended.
pub trait RunExt {
    /// Runs it, asserts success, and returns stdout.
    fn succeeds(&mut self) -> String;
    /// Runs it, asserts failure, and returns stderr.
    fn fails(&mut self) -> String;
    /// Runs it, asserts success, and parses stdout as JSON.
    fn json(&mut self) -> Value {
        let stdout = self.succeeds();
        serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{stdout}"))
    }
}

impl RunExt for Command {
    fn succeeds(&mut self) -> String {
        let output = run(self);
        assert!(output.status.success(), "{self:?} failed ({}):\n{}", output.status, describe(&output));
        String::from_utf8(output.stdout).expect("stdout is UTF-8")
    }

    fn fails(&mut self) -> String {
        let output = run(self);
        assert!(!output.status.success(), "{self:?} succeeded but should have failed:\n{}", describe(&output));
        String::from_utf8(output.stderr).expect("stderr is UTF-8")
    }
}

fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|error| panic!("running {command:?}: {error}"))
}

fn describe(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// One HTTP call to a Dapr API; answers status and body.
pub fn dapr_http(method: reqwest::Method, url: &str, token: &str, body: Option<&str>) -> (reqwest::StatusCode, String) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("building a runtime");
    runtime.block_on(async {
        let mut request = reqwest::Client::new().request(method, url).header("dapr-api-token", token);
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        let response = request.send().await.expect("calling the gateway");
        let status = response.status();
        (status, response.text().await.expect("reading the gateway's answer"))
    })
}
