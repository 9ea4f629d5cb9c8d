//! Lock conformance, the cases of components-contrib's `tests/conformance/lock`: every lock store (the
//! managed `kvstore`'s locks over each state backend, and `lock.redis`) takes, refuses, releases and expires
//! locks alike, and gives a contended lock to exactly one owner.

use std::sync::Arc;
use std::time::{Duration, Instant};

use outrigger_bus::UnlockStatus;
use outrigger_workers::lock::{self, LockStore, StateLockStore};

use crate::backends::{self, Harness};

/// Instantiates every case for every subject: `mod <subject> { #[tokio::test] async fn <case>() }`, each
/// test running `super::<case>` on the locks `super::<opener>` makes of `backends::<backend>::open()`.
macro_rules! lock_cases {
    (subjects: [$($subject:ident: $backend:ident via $opener:ident),+ $(,)?], cases: $cases:tt $(,)?) => {
        $(
            mod $subject {
                lock_cases!(@cases $backend $opener $cases);
            }
        )+
    };
    (@cases $backend:ident $opener:ident [$($case:ident),+ $(,)?]) => {
        $(
            #[tokio::test]
            async fn $case() {
                crate::backends::run(crate::backends::$backend::open(), |harness| async move {
                    let locks = super::$opener(&harness).await;
                    super::$case(locks, harness).await
                })
                .await;
            }
        )+
    };
}

lock_cases! {
    subjects: [
        kvstore_memory: memory via kvstore_locks,
        kvstore_sqlite: sqlite via kvstore_locks,
        kvstore_postgres: postgres via kvstore_locks,
        kvstore_redis: redis via kvstore_locks,
        lock_redis: redis via redis_locks,
    ],
    cases: [
        one_owner_holds_a_lock,
        unlock_answers_each_status,
        an_expired_lock_is_free_again,
        contenders_get_the_lock_once,
    ],
}

/// The managed `kvstore`'s locks over the harness's state store.
async fn kvstore_locks(harness: &Harness) -> Arc<dyn LockStore> {
    Arc::new(StateLockStore::new(Arc::clone(&harness.store)))
}

/// A `lock.redis` component on the test Redis (the harness removes its keys).
async fn redis_locks(_harness: &Harness) -> Arc<dyn LockStore> {
    let boundary = outrigger_workers::Boundary::operator();
    lock::open_within("lock.redis", &backends::redis_metadata(), &boundary).await.expect("open lock.redis")
}

const MINUTE: Duration = Duration::from_secs(60);

async fn one_owner_holds_a_lock(locks: Arc<dyn LockStore>, harness: Harness) {
    let (first, second) = (harness.key("resource-1"), harness.key("resource-2"));
    assert!(locks.try_lock(&first, "owner-1", Duration::from_secs(15)).await.unwrap());
    assert!(locks.try_lock(&second, "owner-1", Duration::from_secs(3)).await.unwrap(), "a second lock is independent");
    assert!(!locks.try_lock(&first, "owner-2", MINUTE).await.unwrap(), "another owner is refused");
    assert!(!locks.try_lock(&first, "owner-1", MINUTE).await.unwrap(), "a held lock is not taken again");
}

async fn unlock_answers_each_status(locks: Arc<dyn LockStore>, harness: Harness) {
    let key = harness.key("resource");
    assert_eq!(locks.unlock(&key, "owner-1").await.unwrap(), UnlockStatus::LockDoesNotExist);
    assert!(locks.try_lock(&key, "owner-1", MINUTE).await.unwrap());
    assert_eq!(locks.unlock(&key, "owner-2").await.unwrap(), UnlockStatus::LockBelongsToOthers);
    assert!(!locks.try_lock(&key, "owner-2", MINUTE).await.unwrap(), "a refused unlock leaves the lock held");
    assert_eq!(locks.unlock(&key, "owner-1").await.unwrap(), UnlockStatus::Success);
    assert_eq!(locks.unlock(&key, "owner-1").await.unwrap(), UnlockStatus::LockDoesNotExist);
    assert!(locks.try_lock(&key, "owner-2", MINUTE).await.unwrap(), "a released lock is free");
}

async fn an_expired_lock_is_free_again(locks: Arc<dyn LockStore>, harness: Harness) {
    let key = harness.key("resource");
    let lease = Duration::from_secs(1);
    let taken = Instant::now();
    assert!(locks.try_lock(&key, "owner-1", lease).await.unwrap());
    // The lease ending is the event waited for: another owner asks until it gets the lock.
    loop {
        if locks.try_lock(&key, "owner-2", MINUTE).await.unwrap() {
            break;
        }
        assert!(taken.elapsed() < lease * 3, "a 1 s lease still held after {:?}", taken.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(taken.elapsed() >= lease - Duration::from_millis(100), "taken over after {:?}", taken.elapsed());
    assert_eq!(locks.unlock(&key, "owner-1").await.unwrap(), UnlockStatus::LockBelongsToOthers);
}

async fn contenders_get_the_lock_once(locks: Arc<dyn LockStore>, harness: Harness) {
    let key = harness.key("contended");
    let attempts = (0..16).map(|owner| {
        let (locks, key) = (Arc::clone(&locks), key.clone());
        tokio::spawn(async move { locks.try_lock(&key, &format!("owner-{owner}"), MINUTE).await.unwrap() })
    });
    let taken = futures_util::future::join_all(attempts).await.into_iter().filter(|won| *won.as_ref().unwrap());
    assert_eq!(taken.count(), 1);
}
