//! Sign-in throttling: after too many failed attempts for one email, or from one address, within a window,
//! sign-in is refused (429 with `Retry-After`) until the window ends, whatever the password. A success clears
//! the email's count. Counts live in the control-plane database, so every control-API replica refuses alike
//! (counted per process, an attacker had as many tries again as there are replicas).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use outrigger_store::{now_millis, Store};

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

/// Counts failed sign-ins in the store under `email:…` and `addr:…`.
pub(crate) struct Attempts {
    policy: LoginThrottle,
    /// When this process last removed ended windows' counts: after a failure, at most once per window, so that
    /// nothing runs while no one fails to sign in and the table holds about one window of failures.
    expired_at: Mutex<Option<Instant>>,
}

impl Attempts {
    pub(crate) fn new(policy: LoginThrottle) -> Attempts {
        Attempts { policy, expired_at: Mutex::new(None) }
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.policy.window.as_millis()).unwrap_or(i64::MAX)
    }

    /// Seconds until sign-in is allowed again for this email from this address, if it is locked now.
    pub(crate) async fn locked_for(
        &self,
        store: &Store,
        email: &str,
        addr: Option<&str>,
    ) -> outrigger_store::Result<Option<u64>> {
        let now = now_millis();
        let window_start = now.saturating_sub(self.window_ms());
        let mut tx = store.begin().await?;
        let mut locked = None;
        let subjects =
            [(Some(email_subject(email)), self.policy.per_email), (addr.map(addr_subject), self.policy.per_address)];
        for (subject, limit) in subjects {
            let Some(subject) = subject else { continue };
            let Some(counted) = tx.sign_in_failures(&subject, window_start).await? else { continue };
            if counted.failures >= limit {
                let left_ms = counted.first_at.saturating_add(self.window_ms()).saturating_sub(now);
                let left = u64::try_from(left_ms).unwrap_or(0).div_ceil(1000).max(1);
                locked = locked.max(Some(left));
            }
        }
        Ok(locked)
    }

    /// Counts a failed attempt.
    pub(crate) async fn failed(&self, store: &Store, email: &str, addr: Option<&str>) -> outrigger_store::Result<()> {
        let now = now_millis();
        let window_start = now.saturating_sub(self.window_ms());
        let mut tx = store.begin().await?;
        tx.count_sign_in_failure(&email_subject(email), now, window_start).await?;
        if let Some(addr) = addr {
            tx.count_sign_in_failure(&addr_subject(addr), now, window_start).await?;
        }
        if self.expiry_due() {
            tx.expire_sign_in_failures(window_start).await?;
        }
        tx.commit().await
    }

    /// Clears the email's count after a success.
    pub(crate) async fn succeeded(&self, store: &Store, email: &str) -> outrigger_store::Result<()> {
        let mut tx = store.begin().await?;
        tx.clear_sign_in_failures(&email_subject(email)).await?;
        tx.commit().await
    }

    /// Whether ended windows' counts are due to be removed (and, if so, that they now are).
    fn expiry_due(&self) -> bool {
        let mut expired_at = self.expired_at.lock().expect("sign-in expiry lock");
        let due = expired_at.is_none_or(|at| at.elapsed() >= self.policy.window);
        if due {
            *expired_at = Some(Instant::now());
        }
        due
    }
}

fn email_subject(email: &str) -> String {
    format!("email:{email}")
}

fn addr_subject(addr: &str) -> String {
    format!("addr:{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("control.db").display())).await.unwrap();
        store.migrate().await.unwrap();
        (store, dir)
    }

    #[tokio::test]
    async fn failures_lock_an_email_or_an_address_until_the_window_ends() {
        let (store, _dir) = store().await;
        let attempts = Attempts::new(LoginThrottle { per_email: 2, per_address: 3, window: Duration::from_secs(60) });
        let locked = |email: &'static str, addr: Option<&'static str>| {
            let (attempts, store) = (&attempts, &store);
            async move { attempts.locked_for(store, email, addr).await.unwrap() }
        };
        attempts.failed(&store, "ann@x.test", Some("10.0.0.1")).await.unwrap();
        assert_eq!(locked("ann@x.test", Some("10.0.0.1")).await, None);
        attempts.failed(&store, "ann@x.test", Some("10.0.0.1")).await.unwrap();
        let wait = locked("ann@x.test", Some("10.0.0.2")).await.expect("the email is locked");
        assert!((1..=60).contains(&wait), "{wait}");
        // Another email from the same address: that address has failed twice of three.
        assert_eq!(locked("bob@x.test", Some("10.0.0.1")).await, None);
        attempts.failed(&store, "bob@x.test", Some("10.0.0.1")).await.unwrap();
        assert!(locked("carol@x.test", Some("10.0.0.1")).await.is_some(), "the address is locked for everyone");
        assert_eq!(locked("carol@x.test", Some("10.0.0.9")).await, None);
        // A success clears the email's count, not the address's.
        attempts.succeeded(&store, "ann@x.test").await.unwrap();
        assert_eq!(locked("ann@x.test", None).await, None);
        assert!(locked("ann@x.test", Some("10.0.0.1")).await.is_some());
    }

    #[tokio::test]
    async fn a_count_whose_window_ended_starts_again_and_is_removed() {
        let (store, _dir) = store().await;
        let window = Duration::from_secs(60);
        let attempts = Attempts::new(LoginThrottle { per_email: 2, per_address: 100, window });
        // Two failures a window ago: written as the store would have counted them then.
        let long_ago = now_millis() - 2 * 60_000;
        let mut tx = store.begin().await.unwrap();
        for _ in 0..2 {
            tx.count_sign_in_failure("email:ann@x.test", long_ago, long_ago - 60_000).await.unwrap();
            tx.count_sign_in_failure("email:old@x.test", long_ago, long_ago - 60_000).await.unwrap();
        }
        tx.commit().await.unwrap();
        assert_eq!(attempts.locked_for(&store, "ann@x.test", None).await.unwrap(), None, "the window ended");
        // The next failure starts a new count (one of two), and removes the ended window's rows.
        attempts.failed(&store, "ann@x.test", None).await.unwrap();
        assert_eq!(attempts.locked_for(&store, "ann@x.test", None).await.unwrap(), None);
        let mut tx = store.begin().await.unwrap();
        let ann = tx.sign_in_failures("email:ann@x.test", 0).await.unwrap().expect("counted");
        assert_eq!(ann.failures, 1);
        assert_eq!(tx.sign_in_failures("email:old@x.test", 0).await.unwrap(), None, "an ended window is removed");
    }
}
