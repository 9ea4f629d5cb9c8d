//! Series found without the registry: label values hashed once (or a fixed word's address used as its key), and
//! each label set's counter and histogram handles cached under that key, so that counting a call is a read lock,
//! a map look-up and a few atomic adds; the registry's own look-up runs once per label set.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::RwLock;

use foldhash::fast::FixedState;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

/// Label sets whose handles are cached, at most (series are bounded by the tenant limit anyway).
pub(super) const MAX_CACHED_SERIES: usize = 50_000;

/// The hasher of label values, with a fixed seed.
const LABEL_HASH_SEED: u64 = 0x6f75_7472_6967_6765;

/// Maps keyed by label hashes: the key is hashed again on the same fixed footing (a few instructions for a `u64`).
pub(crate) type LabelKeys = FixedState;

/// A 64-bit hash of label values. Two label sets sharing one would share a series; at 2^-64 per pair that is not
/// expected among the few thousand series a process keeps.
pub(super) fn label_hash(labels: &[&str]) -> u64 {
    label_hash_after(LABEL_HASH_SEED, labels)
}

/// The hash of label values that follow those whose hash is `before`: a series labelled by a tenant and more
/// hashes the tenant's labels once for both look-ups.
pub(super) fn label_hash_after(before: u64, labels: &[&str]) -> u64 {
    let mut hasher = FixedState::with_seed(before).build_hasher();
    for label in labels {
        hasher.write(label.as_bytes());
        // Separated, so that ("ab", "c") and ("a", "bc") differ.
        hasher.write_u8(0xff);
    }
    hasher.finish()
}

/// The cache key of a label set of words from a fixed vocabulary (`&'static str`: a call's type, an HTTP method)
/// and a variant (an outcome): the word's address and length, not its text, so that nothing is hashed on the busy
/// path. The same word at two addresses gets two keys and shares its series all the same.
pub(super) fn static_key(word: &'static str, variant: bool) -> u64 {
    (word.as_ptr() as u64) ^ ((word.len() as u64) << 48) ^ u64::from(variant) << 63
}

/// A counter (optional) and a histogram with the same labels, their per-label-set handles cached.
pub(super) struct CachedSeries {
    count: Option<IntCounterVec>,
    histogram: HistogramVec,
    pub(super) cache: RwLock<HashMap<u64, (Option<IntCounter>, Histogram), LabelKeys>>,
}

impl CachedSeries {
    pub(super) fn new(count: Option<IntCounterVec>, histogram: HistogramVec) -> CachedSeries {
        CachedSeries { count, histogram, cache: RwLock::default() }
    }

    /// Counts one observation of `value` in the series `labels` names.
    pub(super) fn observe(&self, labels: &[&str], value: f64) {
        self.observe_keyed(label_hash(labels), labels, value);
    }

    /// [`observe`](Self::observe) with the labels' key already made: their hash, or a [`static_key`] (a series
    /// keyed so is never keyed by hash).
    pub(super) fn observe_keyed(&self, key: u64, labels: &[&str], value: f64) {
        if self.observe_cached(key, value) {
            return;
        }
        let count = self.count.as_ref().map(|count| count.with_label_values(labels));
        let histogram = self.histogram.with_label_values(labels);
        count.iter().for_each(IntCounter::inc);
        histogram.observe(value);
        let mut cache = self.cache.write().expect("series cache lock");
        if cache.len() < MAX_CACHED_SERIES {
            cache.insert(key, (count, histogram));
        }
    }
}

impl CachedSeries {
    /// Counts an observation in the series cached under `key`, if there is one: whether there was.
    pub(super) fn observe_cached(&self, key: u64, value: f64) -> bool {
        let cache = self.cache.read().expect("series cache lock");
        let Some((count, histogram)) = cache.get(&key) else { return false };
        count.iter().for_each(IntCounter::inc);
        histogram.observe(value);
        true
    }
}

pub(crate) fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
    registry.register(Box::new(counter.clone())).expect("metric registered once");
    counter
}

pub(crate) fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let histogram =
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels).expect("valid histogram");
    registry.register(Box::new(histogram.clone())).expect("metric registered once");
    histogram
}

pub(crate) fn single(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let counter = IntCounter::new(name, help).expect("valid counter");
    registry.register(Box::new(counter.clone())).expect("metric registered once");
    counter
}
