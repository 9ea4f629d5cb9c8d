//! Results: the printed tables and `target/bench/pubsub.json`.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::common::report::{finite, mb, ms, verdict, Summary, Usage};

/// Publish ack latency targets (p50, p99), in milliseconds.
pub const TARGET_ACK_MS: (f64, f64) = (0.6, 2.0);
/// Publish-to-deliver latency targets (p50, p99), in milliseconds.
pub const TARGET_DELIVER_MS: (f64, f64) = (2.0, 10.0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The same load against something simpler than Outrigger: the publish figures' reference.
    Baseline,
    /// Publishes to a topic nobody subscribes to.
    Publish,
    /// Publishes to a topic with a push subscriber; deliveries measured.
    Push,
    /// Publishes to a topic with a streaming subscriber; deliveries measured.
    Stream,
    /// Closed-loop publishes to the push subscriber's topic; rates measured.
    Throughput,
}

/// What a subscriber received of one phase's messages.
#[derive(Debug, Clone)]
pub struct Deliveries {
    /// Publish-to-first-receipt latency percentiles, ms.
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    /// Publishes acknowledged, and how many of those arrived.
    pub acked: u64,
    pub delivered: u64,
    pub missing: u64,
    /// Receipts beyond the first of a message.
    pub duplicates: u64,
    /// Messages that arrived although their publish failed.
    pub delivered_unacked: u64,
    /// From the end of the publishing to the last receipt, s.
    pub drain_s: f64,
}

impl Deliveries {
    fn to_json(&self) -> Value {
        json!({
            "p50_ms": finite(self.p50), "p90_ms": finite(self.p90), "p99_ms": finite(self.p99),
            "max_ms": finite(self.max), "acked": self.acked, "delivered": self.delivered, "missing": self.missing,
            "duplicates": self.duplicates, "delivered_unacked": self.delivered_unacked,
            "drain_s": finite(self.drain_s),
        })
    }
}

/// The rates of the throughput phase.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// Acknowledged publishes per second over the publishing.
    pub published_rate: f64,
    /// Deliveries per second from the first publish to the last receipt.
    pub delivered_rate: f64,
    /// Deliveries per second that arrived while publishing went on.
    pub delivered_rate_while_publishing: f64,
}

/// One measured phase.
#[derive(Debug)]
pub struct Phase {
    pub key: String,
    pub form: &'static str,
    pub name: String,
    pub kind: Kind,
    pub path: String,
    /// Publish acknowledgements: open loop, or closed loop in the throughput phase.
    pub ack: Option<Summary>,
    pub deliveries: Option<Deliveries>,
    pub throughput: Option<Throughput>,
    pub usage: Vec<Usage>,
    /// Cores the rest of the machine used meanwhile.
    pub background_cores: Option<f64>,
    /// Shares of the phase (%) during which some task of the machine waited for a CPU, and for IO.
    pub stalled: Option<(f64, f64)>,
    pub notes: Vec<String>,
    pub error: Option<String>,
}

impl Phase {
    pub fn new(form: &'static str, kind: Kind, what: &str, path: &str) -> Phase {
        let key = match kind {
            Kind::Baseline => "baseline",
            Kind::Publish => "publish",
            Kind::Push => "push",
            Kind::Stream => "stream",
            Kind::Throughput => "throughput",
        };
        Phase {
            key: format!("{}_{key}", form.replace(", ", "_").replace(' ', "_")),
            form,
            name: format!("{form}: {what}"),
            kind,
            path: path.to_owned(),
            ack: None,
            deliveries: None,
            throughput: None,
            usage: Vec::new(),
            background_cores: None,
            stalled: None,
            notes: Vec::new(),
            error: None,
        }
    }

    pub fn measured(&self) -> bool {
        self.ack.is_some()
    }
}

/// The settings printed with the results.
pub struct Settings {
    pub binary: String,
    pub duration_s: f64,
    pub rate: f64,
    pub connections: usize,
    pub payload_size: usize,
    pub warmup_s: f64,
    pub warmup_rate: f64,
    pub throughput_s: f64,
    pub quick: bool,
}

/// Whether a measured `value` is at most `target` (not when it is missing: NaN).
fn within(value: f64, target: f64) -> bool {
    value <= target
}

fn ack_verdict(summary: &Summary) -> String {
    let mut missed = Vec::new();
    if !within(summary.p50, TARGET_ACK_MS.0) {
        missed.push("p50");
    }
    if !within(summary.p99, TARGET_ACK_MS.1) {
        missed.push("p99");
    }
    if missed.is_empty() {
        verdict(true).to_owned()
    } else {
        format!("{} {}", verdict(false), missed.join("+"))
    }
}

fn deliver_verdict(deliveries: &Deliveries) -> String {
    let mut missed = Vec::new();
    if !within(deliveries.p50, TARGET_DELIVER_MS.0) {
        missed.push("p50");
    }
    if !within(deliveries.p99, TARGET_DELIVER_MS.1) {
        missed.push("p99");
    }
    if deliveries.missing > 0 {
        missed.push("lost");
    }
    if missed.is_empty() {
        verdict(true).to_owned()
    } else {
        format!("{} {}", verdict(false), missed.join("+"))
    }
}

/// The baseline of `phase`'s form (the embedded one for the embedded form with its API log off).
fn baseline_of<'a>(phases: &'a [Phase], phase: &Phase) -> Option<&'a Summary> {
    let form = phase.form.split(',').next().unwrap_or(phase.form);
    phases.iter().find(|other| other.form == form && other.kind == Kind::Baseline).and_then(|b| b.ack.as_ref())
}

fn name_width(phases: &[Phase]) -> usize {
    phases.iter().map(|phase| phase.name.len()).max().unwrap_or(0).max(10)
}

fn stall(phase: &Phase) -> String {
    phase.stalled.map_or("?".to_owned(), |(cpu, io)| format!("{cpu:.0}/{io:.0}"))
}

/// The tables, as printed at the end.
pub fn table(settings: &Settings, phases: &[Phase]) -> String {
    let mut out = String::new();
    let width = name_width(phases);
    let _ = writeln!(
        out,
        "\npub/sub with a {} B JSON payload: open loop {:.0} msgs/s for {:.0} s over {} keep-alive connections \
         (after {:.0} s at {:.0} msgs/s); throughput: closed loop {:.0} s; latencies from each publish's scheduled time",
        settings.payload_size,
        settings.rate,
        settings.duration_s,
        settings.connections,
        settings.warmup_s,
        settings.warmup_rate,
        settings.throughput_s
    );
    let _ = writeln!(out, "binary: {}", settings.binary);
    let _ = writeln!(
        out,
        "conns: sockets open to the target at the end; bg cores: CPU other processes used meanwhile (want ~0); \
         stall: % of the time some task waited for a CPU / for IO (/proc/pressure)"
    );

    let _ = writeln!(
        out,
        "\npublish ack (POST /v1.0/publish/pubsub/<topic> answered); targets p50 <= {} ms, p99 <= {} ms; \
         +p50/+p99: added to the form's baseline",
        TARGET_ACK_MS.0, TARGET_ACK_MS.1
    );
    let _ = writeln!(
        out,
        "{:<width$} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>5} {:>8} {:>9} {:>8} {:>8}  target",
        "phase",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "msgs/s",
        "errors",
        "conns",
        "bg cores",
        "stall %",
        "+p50",
        "+p99"
    );
    for phase in phases.iter().filter(|phase| phase.kind != Kind::Throughput) {
        let Some(ack) = &phase.ack else {
            let _ = writeln!(out, "{:<width$} not measured: {}", phase.name, phase.error.as_deref().unwrap_or("?"));
            continue;
        };
        let (added_p50, added_p99, target) = match (phase.kind, baseline_of(phases, phase)) {
            (Kind::Baseline, _) => ("-".to_owned(), "-".to_owned(), String::new()),
            (_, Some(base)) => {
                (format!("{:+.3}", ack.p50 - base.p50), format!("{:+.3}", ack.p99 - base.p99), ack_verdict(ack))
            }
            (_, None) => ("?".to_owned(), "?".to_owned(), ack_verdict(ack)),
        };
        let _ = writeln!(
            out,
            "{:<width$} {:>8} {:>8} {:>8} {:>8} {:>8.1} {:>6} {:>5} {:>8} {:>9} {:>8} {:>8}  {target}",
            phase.name,
            ms(ack.p50),
            ms(ack.p90),
            ms(ack.p99),
            ms(ack.max),
            ack.rate,
            ack.errors,
            ack.sockets_open.map_or("?".to_owned(), |n| n.to_string()),
            phase.background_cores.map_or("?".to_owned(), |cores| format!("{cores:.2}")),
            stall(phase),
            added_p50,
            added_p99,
        );
    }

    let _ = writeln!(
        out,
        "\npublish-to-deliver (scheduled publish to the subscriber's first receipt); targets p50 <= {} ms, p99 <= {} ms, \
         nothing acknowledged lost",
        TARGET_DELIVER_MS.0, TARGET_DELIVER_MS.1
    );
    let _ = writeln!(
        out,
        "{:<width$} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>7} {:>5} {:>7}  target",
        "phase", "p50 ms", "p90 ms", "p99 ms", "max ms", "acked", "delivered", "missing", "dups", "drain s"
    );
    for phase in phases.iter().filter(|phase| matches!(phase.kind, Kind::Push | Kind::Stream)) {
        let Some(deliveries) = &phase.deliveries else {
            let _ = writeln!(out, "{:<width$} not measured: {}", phase.name, phase.error.as_deref().unwrap_or("?"));
            continue;
        };
        let _ = writeln!(
            out,
            "{:<width$} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>7} {:>5} {:>7.2}  {}",
            phase.name,
            ms(deliveries.p50),
            ms(deliveries.p90),
            ms(deliveries.p99),
            ms(deliveries.max),
            deliveries.acked,
            deliveries.delivered,
            deliveries.missing,
            deliveries.duplicates,
            deliveries.drain_s,
            deliver_verdict(deliveries),
        );
    }

    let _ = writeln!(
        out,
        "\nsustained throughput (closed-loop publishes to the push subscriber's topic over {} connections)",
        settings.connections
    );
    let _ = writeln!(
        out,
        "{:<width$} {:>12} {:>6} {:>8} {:>8} | {:>12} {:>15} {:>7} {:>7} {:>5}",
        "phase",
        "publish/s",
        "errors",
        "ack p50",
        "ack p99",
        "delivered/s",
        "while publishing",
        "drain s",
        "missing",
        "dups"
    );
    for phase in phases.iter().filter(|phase| phase.kind == Kind::Throughput) {
        let (Some(ack), Some(throughput)) = (&phase.ack, &phase.throughput) else {
            let _ = writeln!(out, "{:<width$} not measured: {}", phase.name, phase.error.as_deref().unwrap_or("?"));
            continue;
        };
        let deliveries = phase.deliveries.as_ref();
        let _ = writeln!(
            out,
            "{:<width$} {:>12.0} {:>6} {:>8} {:>8} | {:>12.0} {:>15.0} {:>7} {:>7} {:>5}",
            phase.name,
            throughput.published_rate,
            ack.errors,
            ms(ack.p50),
            ms(ack.p99),
            throughput.delivered_rate,
            throughput.delivered_rate_while_publishing,
            deliveries.map_or("-".to_owned(), |d| format!("{:.2}", d.drain_s)),
            deliveries.map_or("-".to_owned(), |d| d.missing.to_string()),
            deliveries.map_or("-".to_owned(), |d| d.duplicates.to_string()),
        );
    }

    let _ = writeln!(
        out,
        "\nprocesses: CPU during each phase (cores, CPU-ms per 1000 messages published); memory at its end"
    );
    let _ = writeln!(
        out,
        "{:<width$} {:<24} {:>6} {:>10} | {:>8} {:>8}",
        "phase", "process", "cores", "ms/1000", "RSS MB", "HWM MB"
    );
    for phase in phases {
        for usage in &phase.usage {
            let memory = |kib: Option<u64>| kib.map_or("-".to_owned(), |kib| format!("{:.1}", mb(kib)));
            let _ = writeln!(
                out,
                "{:<width$} {:<24} {:>6.2} {:>10.1} | {:>8} {:>8}",
                phase.name,
                usage.process,
                usage.cores,
                usage.cpu_ms_per_1000,
                memory(usage.rss_kib),
                memory(usage.hwm_kib),
            );
        }
    }

    let mut remarks = Vec::new();
    for phase in phases {
        if let Some(error) = &phase.error {
            remarks.push(format!("{}: FAILED: {error}", phase.name));
        }
        if let Some(Summary { errors, first_error: Some(first), .. }) = &phase.ack {
            remarks.push(format!("{}: {errors} publishes failed, first: {first}", phase.name));
        }
        for note in &phase.notes {
            remarks.push(format!("{}: {note}", phase.name));
        }
    }
    if !remarks.is_empty() {
        let _ = writeln!(out);
        for remark in remarks {
            let _ = writeln!(out, "- {remark}");
        }
    }
    out
}

/// Everything as one JSON document.
pub fn to_json(settings: &Settings, phases: &[Phase], cleanup: &[String]) -> Value {
    let phases_json: Vec<Value> = phases
        .iter()
        .map(|phase| {
            let added = match (phase.kind, &phase.ack, baseline_of(phases, phase)) {
                (Kind::Baseline, _, _) | (_, None, _) | (_, _, None) => Value::Null,
                (_, Some(ack), Some(base)) => json!({
                    "p50_ms": finite(ack.p50 - base.p50), "p90_ms": finite(ack.p90 - base.p90),
                    "p99_ms": finite(ack.p99 - base.p99),
                }),
            };
            let ack_met = match phase.kind {
                Kind::Publish | Kind::Push | Kind::Stream => {
                    phase.ack.as_ref().map(|ack| ack.p50 <= TARGET_ACK_MS.0 && ack.p99 <= TARGET_ACK_MS.1)
                }
                _ => None,
            };
            let deliver_met = match phase.kind {
                Kind::Push | Kind::Stream => phase
                    .deliveries
                    .as_ref()
                    .map(|d| d.p50 <= TARGET_DELIVER_MS.0 && d.p99 <= TARGET_DELIVER_MS.1 && d.missing == 0),
                _ => None,
            };
            json!({
                "key": phase.key, "form": phase.form, "name": phase.name, "path": phase.path,
                "publish_ack": phase.ack.as_ref().map(Summary::to_json),
                "publish_ack_added_vs_baseline": added,
                "publish_ack_target_met": ack_met,
                "deliveries": phase.deliveries.as_ref().map(Deliveries::to_json),
                "deliver_target_met": deliver_met,
                "throughput": phase.throughput.as_ref().map(|t| json!({
                    "published_per_s": finite(t.published_rate), "delivered_per_s": finite(t.delivered_rate),
                    "delivered_per_s_while_publishing": finite(t.delivered_rate_while_publishing),
                })),
                "processes": phase.usage.iter().map(Usage::to_json).collect::<Vec<_>>(),
                "background_cores": phase.background_cores.and_then(finite),
                "stall_cpu_pct": phase.stalled.and_then(|(cpu, _)| finite(cpu)),
                "stall_io_pct": phase.stalled.and_then(|(_, io)| finite(io)),
                "notes": phase.notes, "error": phase.error,
            })
        })
        .collect();
    json!({
        "benchmark": "pubsub",
        "binary": settings.binary,
        "settings": {
            "duration_s": settings.duration_s, "rate_msgs_per_s": settings.rate, "connections": settings.connections,
            "payload_bytes": settings.payload_size, "warmup_s": settings.warmup_s,
            "warmup_rate_msgs_per_s": settings.warmup_rate, "throughput_s": settings.throughput_s,
            "quick": settings.quick,
        },
        "targets": {
            "publish_ack_p50_ms": TARGET_ACK_MS.0, "publish_ack_p99_ms": TARGET_ACK_MS.1,
            "deliver_p50_ms": TARGET_DELIVER_MS.0, "deliver_p99_ms": TARGET_DELIVER_MS.1,
        },
        "phases": phases_json,
        "cleanup": cleanup,
    })
}
