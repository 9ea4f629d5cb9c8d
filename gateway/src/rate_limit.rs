//! The per-App-ID request rate limit (`rate_limit_per_second`): a GCRA limiter from `governor`, keyed by
//! project and App ID, allowing a burst of one second's worth of requests.
//!
//! Memory follows the busy App IDs, not the projects: idle keys are dropped (`retain_recent`) whenever the
//! table has grown past [`SWEEP_AT`] since the last sweep, on the request path, with no periodic task.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};

use governor::{DefaultKeyedRateLimiter, Quota};
use outrigger_bus::Tenant;

/// Table size that makes a request sweep out keys whose limit has fully recovered.
const SWEEP_AT: usize = 10_000;

/// Per-App-ID request rate limit; off when the configured rate is 0.
pub struct RateLimiter {
    limit: Option<(NonZeroU32, DefaultKeyedRateLimiter<(String, String)>)>,
    /// The table size after the last sweep: the next one comes [`SWEEP_AT`] keys later.
    swept_at: AtomicUsize,
}

impl RateLimiter {
    /// At most `per_second` requests per App ID and second (bursts up to that many); 0 turns the limit off.
    pub fn new(per_second: u32) -> RateLimiter {
        let limit =
            NonZeroU32::new(per_second).map(|rate| (rate, governor::RateLimiter::keyed(Quota::per_second(rate))));
        RateLimiter { limit, swept_at: AtomicUsize::new(0) }
    }

    /// The limit, when one is set.
    pub fn limit(&self) -> Option<u32> {
        self.limit.as_ref().map(|(rate, _)| rate.get())
    }

    /// Counts a request; `false` when it is over the limit.
    pub fn admit(&self, tenant: &Tenant) -> bool {
        let Some((_, limiter)) = &self.limit else { return true };
        let admitted = limiter.check_key(&(tenant.project_id.as_str().to_owned(), tenant.app_id.clone())).is_ok();
        let size = limiter.len();
        if size >= self.swept_at.load(Ordering::Relaxed) + SWEEP_AT {
            limiter.retain_recent();
            limiter.shrink_to_fit();
            self.swept_at.store(limiter.len(), Ordering::Relaxed);
        }
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(app: usize) -> Tenant {
        Tenant {
            project_id: outrigger_store::ProjectId::received("p".into()),
            project: "p".into(),
            app_id: format!("app-{app}"),
            pool: "default".into(),
        }
    }

    #[test]
    fn idle_app_ids_do_not_accumulate() {
        let limiter = RateLimiter::new(1_000_000);
        for app in 0..(3 * SWEEP_AT) {
            assert!(limiter.admit(&tenant(app)));
        }
        let (_, table) = limiter.limit.as_ref().expect("a limit is set");
        assert!(table.len() <= SWEEP_AT, "{} keys kept for {} App IDs seen once", table.len(), 3 * SWEEP_AT);
    }

    #[test]
    fn a_burst_beyond_the_rate_is_refused_per_app_id() {
        let limiter = RateLimiter::new(3);
        let admitted = (0..10).filter(|_| limiter.admit(&tenant(1))).count();
        assert_eq!(admitted, 3);
        assert!(limiter.admit(&tenant(2)), "another App ID has its own budget");
        assert!(RateLimiter::new(0).admit(&tenant(1)) && RateLimiter::new(0).limit().is_none());
    }
}
