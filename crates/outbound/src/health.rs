//! App health: an App ID with an `appHealthCheckPath` is probed; after `threshold` failures in a row it counts
//! as unhealthy — its deliveries pause (messages wait in the broker) and invocations of it are refused — and
//! the first success makes it healthy again (daprd's app health checks, with its defaults: every 5 s, 500 ms
//! timeout, threshold 3).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::{AppChannel, AppClient};

/// How often and how strictly apps are probed.
#[derive(Clone, Copy, Debug)]
pub struct HealthProbe {
    /// Time between probes.
    pub interval: Duration,
    /// How long one probe may take.
    pub timeout: Duration,
    /// Failures in a row before the app counts as unhealthy.
    pub threshold: u32,
}

impl Default for HealthProbe {
    fn default() -> HealthProbe {
        HealthProbe { interval: Duration::from_secs(5), timeout: Duration::from_millis(500), threshold: 3 }
    }
}

/// An app's health as its probe last judged it.
#[derive(Debug)]
pub struct AppHealth {
    healthy: AtomicBool,
    changed: Notify,
}

impl Default for AppHealth {
    /// A new app counts as healthy until its probe says otherwise.
    fn default() -> AppHealth {
        AppHealth { healthy: AtomicBool::new(true), changed: Notify::new() }
    }
}

impl AppHealth {
    /// Whether the app counts as healthy now.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Returns once the app is healthy.
    pub async fn wait_healthy(&self) {
        loop {
            let changed = self.changed.notified();
            if self.is_healthy() {
                return;
            }
            changed.await;
        }
    }

    fn set(&self, healthy: bool) -> bool {
        let was = self.healthy.swap(healthy, Ordering::AcqRel);
        if healthy {
            self.changed.notify_waiters();
        }
        was != healthy
    }
}

/// Probes one app until aborted; `recovered` runs each time the app becomes healthy again.
pub async fn probe(
    client: AppClient,
    channel: AppChannel,
    path: String,
    settings: HealthProbe,
    health: Arc<AppHealth>,
    recovered: impl Fn() + Send,
) {
    let mut failures = 0u32;
    loop {
        let answer = client.send(channel.call(http::Method::GET, &path, settings.timeout)).await;
        // An endpoint that is no URL never answers.
        let answered = answer.is_ok_and(|answer| answer.status.is_success());
        if answered {
            failures = 0;
            if health.set(true) {
                tracing::info!(endpoint = %channel.endpoint, "app is healthy again");
                recovered();
            }
        } else {
            failures = failures.saturating_add(1);
            if failures >= settings.threshold && health.set(false) {
                tracing::warn!(endpoint = %channel.endpoint, %path, failures, "app is unhealthy; its deliveries pause and invocations of it are refused");
            }
        }
        tokio::time::sleep(settings.interval).await;
    }
}
