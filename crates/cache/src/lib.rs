//! Read-through caches of per-project readings (a worker's components, a gateway's invocation directory).
//!
//! Built on `moka`: size-bounded, entries expire after a time to live, and concurrent misses for one key
//! share one load. On top, a change event is never lost to a load in flight: a load that may have read
//! before a change ([`ReadThrough::invalidate`]) is thrown away and read again, instead of being cached
//! over the change until the time to live runs out.
//!
//! How: every caller registers for its key before it asks moka (the registration outlives moka's insert),
//! and an invalidation marks the registrations of its key. A caller that finds its mark set after the load
//! drops the entry and loads again. An invalidation before a registration precedes the load, so the load
//! reads the change; one after the caller's deregistration finds the entry inserted already and drops it.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foldhash::quality::RandomState;
use moka::future::Cache;

/// Loads read again because a change landed while they ran, before a caller takes the last one as it is
/// (uncached): bounds the work a project changing without pause can cause.
const MAX_STALE_RELOADS: usize = 3;

/// A read-through cache from `K` to `V` (cheap to clone: an `Arc` or a small value).
///
/// Keys are hashed with `foldhash`, seeded at random per cache: a key is hashed on every call that reads
/// the cache, and the standard SipHash cost ~250 instructions a look-up.
pub struct ReadThrough<K, V> {
    entries: Cache<K, V, RandomState>,
    /// For each key being read: the flag an invalidation sets, and how many callers share it.
    reading: Mutex<HashMap<K, (Arc<AtomicBool>, usize), RandomState>>,
}

impl<K, V> ReadThrough<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// At most `capacity` entries, each trusted for `ttl` after it was read.
    pub fn new(capacity: u64, ttl: Duration) -> ReadThrough<K, V> {
        ReadThrough {
            entries: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build_with_hasher(RandomState::default()),
            reading: Mutex::default(),
        }
    }

    /// The value for `key`: cached, or read by `load` (once for all callers missing it at the same time). A
    /// failed load is not cached; its error goes to every caller that shared it.
    pub async fn get_or_load<E, F, Fut>(&self, key: &K, load: F) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if let Some(value) = self.entries.get(key).await {
            return Ok(value);
        }
        // Boxed: a miss's future (moka's shared load and `load`'s read) is large, and every call's future would
        // otherwise make room for it, and copy that room each time it is moved.
        Box::pin(self.load(key, load)).await
    }

    /// [`get_or_load`](Self::get_or_load) past a miss.
    async fn load<E, F, Fut>(&self, key: &K, load: F) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let mut attempt = 0;
        loop {
            if let Some(value) = self.entries.get(key).await {
                return Ok(value);
            }
            let registration = self.register(key);
            let loaded = self.entries.try_get_with(key.clone(), load()).await;
            let stale = registration.flag.load(Ordering::Acquire);
            drop(registration);
            let value = loaded?;
            attempt += 1;
            if !stale {
                return Ok(value);
            }
            // Read before a change, perhaps: out of the cache, and read again.
            self.entries.invalidate(key).await;
            if attempt > MAX_STALE_RELOADS {
                return Ok(value);
            }
        }
    }

    /// Forgets `key` (it changed): the next call reads it again, and a read in flight is not kept.
    pub async fn invalidate(&self, key: &K) {
        if let Some((flag, _)) = self.reading.lock().expect("reading lock").get(key) {
            flag.store(true, Ordering::Release);
        }
        self.entries.invalidate(key).await;
    }

    fn register(&self, key: &K) -> Registration<'_, K, V> {
        let mut reading = self.reading.lock().expect("reading lock");
        let (flag, callers) = reading.entry(key.clone()).or_insert_with(|| (Arc::new(AtomicBool::new(false)), 0));
        *callers += 1;
        Registration { cache: self, key: key.clone(), flag: Arc::clone(flag) }
    }
}

/// A caller's interest in a key's load; the key's flag goes once no caller is left.
struct Registration<'a, K: Hash + Eq, V> {
    cache: &'a ReadThrough<K, V>,
    key: K,
    flag: Arc<AtomicBool>,
}

impl<K: Hash + Eq, V> Drop for Registration<'_, K, V> {
    fn drop(&mut self) {
        let mut reading = self.cache.reading.lock().expect("reading lock");
        if let Some((_, callers)) = reading.get_mut(&self.key) {
            *callers -= 1;
            if *callers == 0 {
                reading.remove(&self.key);
            }
        }
    }
}
