//! The read-through cache against loads that a test holds open: a change landing during a load, concurrent
//! misses, failures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outrigger_cache::ReadThrough;
use tokio::sync::{Notify, Semaphore};

/// A control-plane stand-in: the component document a project holds, and how often it was read. A read
/// stops after taking the document until the test lets it finish (`release`), and says it got that far
/// (`has_read`).
struct Source {
    document: Mutex<String>,
    reads: AtomicUsize,
    has_read: Notify,
    release: Semaphore,
}

impl Source {
    fn new(document: &str) -> Arc<Source> {
        Arc::new(Source {
            document: Mutex::new(document.to_owned()),
            reads: AtomicUsize::new(0),
            has_read: Notify::new(),
            release: Semaphore::new(0),
        })
    }

    async fn read(self: Arc<Source>) -> Result<String, String> {
        let document = self.document.lock().unwrap().clone();
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.has_read.notify_one();
        self.release.acquire().await.expect("semaphore open").forget();
        Ok(document)
    }
}

fn cache() -> Arc<ReadThrough<String, String>> {
    Arc::new(ReadThrough::new(100, Duration::from_secs(3600)))
}

#[tokio::test]
async fn a_component_changed_while_it_is_being_read_is_served_changed() {
    let (cache, source) = (cache(), Source::new("state.redis v1"));
    let caller = {
        let (cache, source) = (Arc::clone(&cache), Arc::clone(&source));
        tokio::spawn(async move { cache.get_or_load(&"p1".to_owned(), || Arc::clone(&source).read()).await })
    };
    // The read has the old document and is still in flight: the component changes and its event arrives.
    source.has_read.notified().await;
    *source.document.lock().unwrap() = "state.redis v2".to_owned();
    cache.invalidate(&"p1".to_owned()).await;
    source.release.add_permits(2);
    assert_eq!(caller.await.unwrap().unwrap(), "state.redis v2", "the caller got the reading from before the change");
    // What is cached is the changed document, not the reading that raced the change.
    let cached = cache.get_or_load(&"p1".to_owned(), || Arc::clone(&source).read()).await.unwrap();
    assert_eq!(cached, "state.redis v2");
    assert_eq!(source.reads.load(Ordering::SeqCst), 2, "one stale read, one read again, then served from the cache");
}

#[tokio::test]
async fn concurrent_misses_share_one_read() {
    let (cache, source) = (cache(), Source::new("doc"));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (cache, source) = (Arc::clone(&cache), Arc::clone(&source));
            tokio::spawn(async move { cache.get_or_load(&"p1".to_owned(), || Arc::clone(&source).read()).await })
        })
        .collect();
    source.has_read.notified().await;
    source.release.add_permits(8);
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), "doc");
    }
    assert_eq!(source.reads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_read_is_not_cached_and_keys_are_apart() {
    let cache = cache();
    let failed = cache.get_or_load(&"p1".to_owned(), || async { Err::<String, _>("database down") }).await;
    assert_eq!(*failed.unwrap_err(), "database down");
    let read = cache.get_or_load(&"p1".to_owned(), || async { Ok::<_, &str>("doc".to_owned()) }).await;
    assert_eq!(read.unwrap(), "doc");
    let other = cache.get_or_load(&"p2".to_owned(), || async { Ok::<_, &str>("other".to_owned()) }).await;
    assert_eq!(other.unwrap(), "other");
    cache.invalidate(&"p1".to_owned()).await;
    let again = cache.get_or_load(&"p1".to_owned(), || async { Ok::<_, &str>("doc v2".to_owned()) }).await;
    assert_eq!(again.unwrap(), "doc v2");
}
