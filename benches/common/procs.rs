//! The Outrigger processes under test: started from the release binary, waited for until their
//! ready line, drained, measured through /proc, and stopped with SIGTERM (SIGKILL if they linger).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Output lines kept per process, for error messages.
const KEPT_LINES: usize = 40;

/// The addresses a ready line reports (absent for roles that do not serve them).
#[derive(Debug, Default, Clone)]
pub struct Ready {
    pub control_api: Option<String>,
    pub dapr_http: Option<String>,
    pub dapr_grpc: Option<String>,
}

/// A running Outrigger process.
pub struct Process {
    pub name: String,
    pub pid: u32,
    child: Child,
    output: Arc<Mutex<VecDeque<String>>>,
    stopped: Option<String>,
}

/// `outrigger <args>` with `env` and none of the OUTRIGGER_* variables of the bench's own environment, then the
/// settings `BENCH_SERVER_ENV` names (`NAME=value,NAME=value`), to compare a setting's cost in the same bench
/// (e.g. `BENCH_SERVER_ENV=OUTRIGGER_API_LOG=false`).
pub fn command(binary: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OUTRIGGER_") {
            command.env_remove(name);
        }
    }
    command.args(args).stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let extra = std::env::var("BENCH_SERVER_ENV").unwrap_or_default();
    for (name, value) in extra.split(',').filter_map(|setting| setting.split_once('=')) {
        command.env(name.trim(), value.trim());
    }
    command
}

impl Process {
    /// Starts `outrigger <args>` and waits for its `outrigger ready` line.
    pub fn start(name: &str, binary: &Path, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<(Process, Ready)> {
        let mut child = command(binary, args, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let (lines, stdout_lines) = mpsc::channel();
        drain(child.stdout.take().context("stdout is piped")?, Arc::clone(&output), Some(lines));
        drain(child.stderr.take().context("stderr is piped")?, Arc::clone(&output), None);
        let mut process = Process { name: name.to_owned(), pid: child.id(), child, output, stopped: None };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match stdout_lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(ready) = ready_line(&line) {
                        return Ok((process, ready));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let output = process.output();
                    process.stop();
                    bail!("{name}: no ready line within {READY_TIMEOUT:?}; its output:\n{output}");
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = process.stop();
                    bail!("{name} exited before its ready line ({status}); its output:\n{}", process.output());
                }
            }
        }
    }

    /// The last lines the process wrote.
    pub fn output(&self) -> String {
        self.output.lock().map(|lines| lines.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default()
    }

    /// SIGTERM, then SIGKILL after STOP_TIMEOUT; answers how it ended. Idempotent.
    pub fn stop(&mut self) -> String {
        if let Some(stopped) = &self.stopped {
            return stopped.clone();
        }
        let started = Instant::now();
        let mut ended = match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("had already exited: {status}")),
            _ => None,
        };
        if ended.is_none() {
            // The child is not reaped yet, so its pid is still its own.
            let _ = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status();
            while started.elapsed() < STOP_TIMEOUT {
                if let Ok(Some(status)) = self.child.try_wait() {
                    ended = Some(format!("{status} {:.1} s after SIGTERM", started.elapsed().as_secs_f64()));
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let ended = ended.unwrap_or_else(|| {
            let _ = self.child.kill();
            match self.child.wait() {
                Ok(status) => format!("{status} after SIGKILL (ignored SIGTERM for {STOP_TIMEOUT:?})"),
                Err(err) => format!("could not be reaped: {err}"),
            }
        });
        self.stopped = Some(ended.clone());
        ended
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        self.stopped.is_none() && matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The addresses of a JSON log line whose message is `outrigger ready`.
fn ready_line(line: &str) -> Option<Ready> {
    let value: Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "outrigger ready" {
        return None;
    }
    let address = |name: &str| fields.get(name).and_then(Value::as_str).map(str::to_owned);
    Some(Ready {
        control_api: address("control_api"),
        dapr_http: address("dapr_http"),
        dapr_grpc: address("dapr_grpc"),
    })
}

/// Reads `pipe` to its end, keeping its last lines and handing lines to `lines` while someone listens.
fn drain(pipe: impl Read + Send + 'static, output: Arc<Mutex<VecDeque<String>>>, lines: Option<mpsc::Sender<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut output) = output.lock() {
                if output.len() == KEPT_LINES {
                    output.pop_front();
                }
                output.push_back(line.clone());
            }
            if let Some(lines) = &lines {
                let _ = lines.send(line);
            }
        }
    });
}

/// Clock ticks per second of /proc's CPU times.
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// User plus system CPU time of `pid` ("self" for this process), in clock ticks.
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0], so utime (14) and stime (15) are fields[11] and fields[12].
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

/// VmRSS and VmHWM of `pid`, in KiB.
pub fn memory_kib(pid: &str) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU ticks of the whole machine: (busy, all), from the first line of /proc/stat. Busy counts
/// everything but idle and iowait, steal included.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line.split_whitespace().take(8).filter_map(|field| field.parse().ok()).collect();
    if fields.len() < 8 {
        return None;
    }
    let all: u64 = fields.iter().sum();
    Some((all - fields[3] - fields[4], all))
}

/// A process (or thread) whose CPU and memory are measured: "self", a pid, or "self/task/<tid>".
pub struct Watched {
    pub name: String,
    pub pid: String,
    /// Only Outrigger processes are held to memory targets.
    pub outrigger: bool,
}

impl Watched {
    pub fn of(process: &Process) -> Watched {
        Watched { name: process.name.clone(), pid: process.pid.to_string(), outrigger: true }
    }

    pub fn generator() -> Watched {
        Watched { name: "(load generator)".to_owned(), pid: "self".to_owned(), outrigger: false }
    }

    /// The pid to report: this process's for "self" and its threads.
    pub fn pid_number(&self) -> u32 {
        if self.pid.starts_with("self") {
            std::process::id()
        } else {
            self.pid.parse().unwrap_or(0)
        }
    }

    /// VmRSS and VmHWM; `None` for a thread, whose memory is its process's.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        if self.pid.contains("/task/") {
            None
        } else {
            memory_kib(&self.pid)
        }
    }
}

/// The CPU ticks of each of `watched` now.
pub fn cpu_of(watched: &[Watched]) -> Vec<Option<u64>> {
    watched.iter().map(|process| cpu_ticks(&process.pid)).collect()
}

/// CPU seconds of `watched[index]` between two [`cpu_of`] readings; NaN when either is missing.
pub fn cpu_seconds(before: &[Option<u64>], after: &[Option<u64>], index: usize, ticks: f64) -> f64 {
    match (before[index], after[index]) {
        (Some(before), Some(after)) => after.saturating_sub(before) as f64 / ticks,
        _ => f64::NAN,
    }
}

/// The calling thread as "self/task/<tid>", for [`Watched`]; `None` where /proc is not readable.
pub fn current_thread() -> Option<String> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    let tid = link.to_string_lossy().rsplit('/').next()?.to_owned();
    Some(format!("self/task/{tid}"))
}

/// The pid of the process listening on TCP `port` of this host, from /proc (it must be readable: the
/// same user, or root); `None` when not found.
pub fn listener_pid(port: u16) -> Option<u32> {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9)) else {
                continue;
            };
            let local_port = local.rsplit(':').next().and_then(|hex| u16::from_str_radix(hex, 16).ok());
            if *state == "0A" && local_port == Some(port) {
                inodes.insert(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|link| inodes.contains(link.to_string_lossy().as_ref())) {
                return Some(pid);
            }
        }
    }
    None
}

/// Microseconds during which some task waited for `resource` ("cpu", "io" or "memory") since boot, from
/// the kernel's pressure stall information; `None` where /proc/pressure is missing.
pub fn pressure_us(resource: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/pressure/{resource}")).ok()?;
    let some = text.lines().find(|line| line.starts_with("some "))?;
    some.split_whitespace().find_map(|field| field.strip_prefix("total="))?.parse().ok()
}
