//! The per-App-ID request rate limit: GCRA limiters from `governor`, keyed by project and App ID, allowing a
//! burst of one second's worth of requests. The rate is the project's own quota or the installation's default
//! (`rate_limit_per_second`); one keyed limiter serves every App ID held to the same rate, so there are as many
//! limiters as distinct rates in use, not as projects.
//!
//! Memory follows the busy App IDs, not the projects: idle keys are dropped (`retain_recent`) whenever a
//! limiter's table has grown past [`SWEEP_AT`] since its last sweep, on the request path, with no periodic task.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use governor::{DefaultKeyedRateLimiter, Quota};
use outrigger_bus::Tenant;
use outrigger_store::ProjectId;

/// Table size that makes a request sweep out keys whose limit has fully recovered.
const SWEEP_AT: usize = 10_000;

/// The App IDs held to one rate.
struct Limiter {
    table: DefaultKeyedRateLimiter<(ProjectId, Arc<str>)>,
    /// The table size after the last sweep: the next one comes [`SWEEP_AT`] keys later.
    swept_at: AtomicUsize,
}

/// Per-App-ID request rate limits, one limiter per rate in use.
#[derive(Default)]
pub struct RateLimiter {
    by_rate: RwLock<HashMap<NonZeroU32, Arc<Limiter>>>,
}

impl RateLimiter {
    /// Counts a request of `tenant`, held to `per_second` requests per second (bursts up to that many; 0 is no
    /// limit); `false` when it is over.
    pub fn admit(&self, tenant: &Tenant, per_second: u32) -> bool {
        let Some(rate) = NonZeroU32::new(per_second) else { return true };
        let limiter = self.limiter(rate);
        let admitted = limiter.table.check_key(&(tenant.project_id.clone(), tenant.app_id.clone())).is_ok();
        let size = limiter.table.len();
        if size >= limiter.swept_at.load(Ordering::Relaxed) + SWEEP_AT {
            limiter.table.retain_recent();
            limiter.table.shrink_to_fit();
            limiter.swept_at.store(limiter.table.len(), Ordering::Relaxed);
        }
        admitted
    }

    fn limiter(&self, rate: NonZeroU32) -> Arc<Limiter> {
        if let Some(limiter) = self.by_rate.read().expect("rate limiter lock").get(&rate) {
            return limiter.clone();
        }
        let mut by_rate = self.by_rate.write().expect("rate limiter lock");
        by_rate
            .entry(rate)
            .or_insert_with(|| {
                let table = governor::RateLimiter::keyed(Quota::per_second(rate));
                Arc::new(Limiter { table, swept_at: AtomicUsize::new(0) })
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(app: usize) -> Tenant {
        Tenant::new(
            outrigger_store::ProjectId::received("p".into()),
            "p".into(),
            format!("app-{app}").into(),
            "default".into(),
        )
    }

    #[test]
    fn idle_app_ids_do_not_accumulate() {
        let limiter = RateLimiter::default();
        let rate = 1_000_000;
        for app in 0..(3 * SWEEP_AT) {
            assert!(limiter.admit(&tenant(app), rate));
        }
        let table = &limiter.limiter(NonZeroU32::new(rate).unwrap()).table;
        assert!(table.len() <= SWEEP_AT, "{} keys kept for {} App IDs seen once", table.len(), 3 * SWEEP_AT);
    }

    #[test]
    fn a_burst_beyond_the_rate_is_refused_per_app_id() {
        let limiter = RateLimiter::default();
        let admitted = (0..10).filter(|_| limiter.admit(&tenant(1), 3)).count();
        assert_eq!(admitted, 3);
        assert!(limiter.admit(&tenant(2), 3), "another App ID has its own budget");
        assert!((0..10).all(|_| limiter.admit(&tenant(3), 0)), "0 is no limit");
        assert_eq!((0..10).filter(|_| limiter.admit(&tenant(4), 5)).count(), 5, "each rate has its own limiter");
    }
}
