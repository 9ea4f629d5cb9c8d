//! The pieces of a bench's results that every bench reports the same way: latency summaries, CPU and
//! memory per process, and number formatting.

use serde_json::{json, Value};

use super::load::PhaseOutcome;

/// Percentiles and counts of one phase, in milliseconds and requests.
#[derive(Debug, Clone)]
pub struct Summary {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub rate: f64,
    pub sent: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub sockets_open: Option<usize>,
    pub dispatch_lag_max_ms: f64,
}

impl Summary {
    pub fn of(outcome: &mut PhaseOutcome) -> Summary {
        let mut percentile = |p: f64| outcome.latencies.percentile_ms(p).unwrap_or(f64::NAN);
        let (p50, p90, p99) = (percentile(50.0), percentile(90.0), percentile(99.0));
        Summary {
            p50,
            p90,
            p99,
            max: outcome.latencies.max_ms().unwrap_or(f64::NAN),
            rate: outcome.achieved_rate(),
            sent: outcome.sent,
            errors: outcome.errors,
            first_error: outcome.first_error.clone(),
            sockets_open: outcome.sockets_open,
            dispatch_lag_max_ms: outcome.dispatch_lag_max.as_secs_f64() * 1e3,
        }
    }

    pub fn percentiles(&self) -> [f64; 3] {
        [self.p50, self.p90, self.p99]
    }

    pub fn to_json(&self) -> Value {
        json!({
            "p50_ms": finite(self.p50), "p90_ms": finite(self.p90), "p99_ms": finite(self.p99),
            "max_ms": finite(self.max), "achieved_rps": finite(self.rate), "requests": self.sent,
            "errors": self.errors, "first_error": self.first_error, "connections_open": self.sockets_open,
            "dispatch_lag_max_ms": finite(self.dispatch_lag_max_ms),
        })
    }
}

/// CPU and memory of one process over a scenario.
#[derive(Debug, Clone)]
pub struct Usage {
    pub process: String,
    pub pid: u32,
    /// CPU seconds during the measured phase, and the cores that makes on average.
    pub cpu_seconds: f64,
    pub cores: f64,
    pub cpu_ms_per_1000: f64,
    /// Same during a second, closed-loop phase, where the bench has one.
    pub probe_cores: Option<f64>,
    pub probe_cpu_ms_per_1000: Option<f64>,
    pub rss_kib: Option<u64>,
    pub hwm_kib: Option<u64>,
    /// Only Outrigger processes are held to memory targets.
    pub outrigger: bool,
}

impl Usage {
    /// The fields every bench reports; a bench adds its own verdicts.
    pub fn to_json(&self) -> Value {
        json!({
            "process": self.process, "pid": self.pid, "cpu_seconds": finite(self.cpu_seconds),
            "cores": finite(self.cores), "cpu_ms_per_1000_requests": finite(self.cpu_ms_per_1000),
            "probe_cores": self.probe_cores.and_then(finite),
            "probe_cpu_ms_per_1000_requests": self.probe_cpu_ms_per_1000.and_then(finite),
            "vm_rss_kib": self.rss_kib, "vm_hwm_kib": self.hwm_kib,
        })
    }
}

/// `value` rounded to 4 decimals, `None` when not finite (JSON has no NaN).
pub fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some((value * 1e4).round() / 1e4)
}

/// KiB as MB (10^6 bytes).
pub fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

pub fn verdict(met: bool) -> &'static str {
    if met {
        "ok"
    } else {
        "MISS"
    }
}

/// Milliseconds with 3 decimals, "-" when not finite.
pub fn ms(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.3}")
    } else {
        "-".to_owned()
    }
}
