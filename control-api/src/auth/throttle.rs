//! Sign-in throttling: after too many failed attempts for one email, or from one address, within a window,
//! sign-in is refused (429 with `Retry-After`) until the window ends, whatever the password. A success clears
//! the email's count. Counts live in this process (bounded, expiring); each control-API replica counts its own.

use std::time::{Duration, Instant};

use moka::sync::Cache;

/// The throttling policy.
#[derive(Clone, Copy, Debug)]
pub struct LoginThrottle {
    /// Failed attempts for one email within the window that lock it until the window ends.
    pub per_email: u32,
    /// Failed attempts from one address within the window that lock it out.
    pub per_address: u32,
    /// How long the counts run.
    pub window: Duration,
}

impl Default for LoginThrottle {
    fn default() -> LoginThrottle {
        LoginThrottle { per_email: 5, per_address: 50, window: Duration::from_secs(15 * 60) }
    }
}

/// Failed attempts per key (`email:…`, `addr:…`): how many, and when the first of the window was.
pub(crate) struct Attempts {
    policy: LoginThrottle,
    failures: Cache<String, (u32, Instant)>,
}

impl Attempts {
    pub(crate) fn new(policy: LoginThrottle) -> Attempts {
        Attempts { policy, failures: Cache::builder().max_capacity(100_000).time_to_live(policy.window).build() }
    }

    /// Seconds until sign-in is allowed again for this email from this address, if it is locked now.
    pub(crate) fn locked_for(&self, email: &str, addr: Option<&str>) -> Option<u64> {
        let locked = |key: String, limit: u32| {
            let (count, first) = self.failures.get(&key)?;
            let left = self.policy.window.checked_sub(first.elapsed())?;
            (count >= limit).then(|| left.as_secs().max(1))
        };
        let by_email = locked(format!("email:{email}"), self.policy.per_email);
        let by_addr = addr.and_then(|addr| locked(format!("addr:{addr}"), self.policy.per_address));
        by_email.max(by_addr)
    }

    /// Counts a failed attempt.
    pub(crate) fn failed(&self, email: &str, addr: Option<&str>) {
        let count = |key: String| {
            self.failures.entry(key).and_upsert_with(|current| match current {
                Some(entry) => {
                    let (count, first) = entry.into_value();
                    (count + 1, first)
                }
                None => (1, Instant::now()),
            });
        };
        count(format!("email:{email}"));
        if let Some(addr) = addr {
            count(format!("addr:{addr}"));
        }
    }

    /// Clears the email's count after a success.
    pub(crate) fn succeeded(&self, email: &str) {
        self.failures.invalidate(&format!("email:{email}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_lock_an_email_or_an_address_until_the_window_ends() {
        let attempts = Attempts::new(LoginThrottle { per_email: 2, per_address: 3, window: Duration::from_secs(60) });
        attempts.failed("ann@x.test", Some("10.0.0.1"));
        assert_eq!(attempts.locked_for("ann@x.test", Some("10.0.0.1")), None);
        attempts.failed("ann@x.test", Some("10.0.0.1"));
        let locked = attempts.locked_for("ann@x.test", Some("10.0.0.2")).expect("the email is locked");
        assert!((1..=60).contains(&locked), "{locked}");
        // Another email from the same address: that address has failed twice of three.
        assert_eq!(attempts.locked_for("bob@x.test", Some("10.0.0.1")), None);
        attempts.failed("bob@x.test", Some("10.0.0.1"));
        assert!(attempts.locked_for("carol@x.test", Some("10.0.0.1")).is_some(), "the address is locked for everyone");
        assert_eq!(attempts.locked_for("carol@x.test", Some("10.0.0.9")), None);
        // A success clears the email's count, not the address's.
        attempts.succeeded("ann@x.test");
        assert_eq!(attempts.locked_for("ann@x.test", None), None);
    }
}
