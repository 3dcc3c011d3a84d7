//! Owns L1, the in-memory tier: a moka cache (TinyLFU admission, LRU eviction) bounded by bytes
//! and, through the weight of each entry, by entries; each entry expires at its own time.
//!
//! Both bounds in one: every entry weighs at least `max_bytes / max_entries`, so a full cache
//! holds at most `max_entries` entries and at most `max_bytes` bytes of keys and values. Reads and
//! writes are plain method calls on the request path, never a mailbox.

use super::{CachedValue, TierCounters, now_ms};
use moka::Expiry;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Expires each entry at the time it carries.
struct ExpiresAt;

impl Expiry<Arc<str>, CachedValue> for ExpiresAt {
    fn expire_after_create(
        &self,
        _key: &Arc<str>,
        value: &CachedValue,
        _created_at: Instant,
    ) -> Option<Duration> {
        value.time_to_live()
    }

    fn expire_after_update(
        &self,
        _key: &Arc<str>,
        value: &CachedValue,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        value.time_to_live()
    }
}

/// The in-memory tier.
pub(crate) struct MemoryTier {
    cache: moka::sync::Cache<Arc<str>, CachedValue>,
    pub(crate) counters: Arc<TierCounters>,
    max_bytes: u64,
}

/// Bytes moka holds per entry beyond the key and value themselves: its table slot, its LRU and
/// timer-wheel nodes, the entry's `Arc`s. Measured (docs/cache.md): resident memory grew by
/// 411–422 bytes per entry over 100,000 entries whose keys and values were already allocated.
pub(crate) const ENTRY_OVERHEAD: u64 = 416;

impl MemoryTier {
    /// A tier of at most `max_entries` entries and `max_bytes` bytes.
    pub(crate) fn new(max_entries: u64, max_bytes: u64) -> Self {
        let counters = Arc::new(TierCounters::default());
        let slot = (max_bytes / max_entries.max(1)).max(1);
        let evicted = Arc::clone(&counters);
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |key: &Arc<str>, value: &CachedValue| {
                let bytes = key.len() as u64 + value.bytes.len() as u64 + ENTRY_OVERHEAD;
                u32::try_from(bytes.max(slot)).unwrap_or(u32::MAX)
            })
            .expire_after(ExpiresAt)
            .support_invalidation_closures()
            .eviction_listener(move |_key, _value, cause| {
                if cause.was_evicted() {
                    evicted.evicted(1);
                }
            })
            .build();
        Self {
            cache,
            counters,
            max_bytes,
        }
    }

    /// The live value of `key`, counted as a hit or a miss.
    pub(crate) fn get(&self, key: &str) -> Option<CachedValue> {
        let found = self.cache.get(key).filter(|value| !value.expired(now_ms()));
        self.counters.looked_up(found.is_some());
        found
    }

    /// Stores `value` under `key` (replacing any).
    pub(crate) fn put(&self, key: Arc<str>, value: CachedValue) {
        self.cache.insert(key, value);
    }

    /// Removes every key starting with `prefix` (applied by moka as entries are next touched).
    pub(crate) fn remove_prefix(&self, prefix: &str) {
        let prefix = prefix.to_owned();
        if self
            .cache
            .invalidate_entries_if(move |key, _| key.starts_with(prefix.as_str()))
            .is_err()
        {
            // Closures are enabled at build time, so this cannot happen; clearing all is still right.
            self.cache.invalidate_all();
        }
    }

    /// Removes everything.
    pub(crate) fn clear(&self) {
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
    }

    /// Evicts about `fraction` of the entries (the memory guard asked).
    pub(crate) fn shrink(&self, fraction: f64) {
        let fraction = fraction.clamp(0.0, 1.0);
        if fraction >= 1.0 {
            self.clear();
            return;
        }
        let count = self.cache.entry_count();
        let to_drop = (count as f64 * fraction).ceil() as usize;
        let victims: Vec<Arc<str>> = self
            .cache
            .iter()
            .take(to_drop)
            .map(|(key, _)| Arc::clone(&*key))
            .collect();
        for key in &victims {
            self.cache.invalidate(key.as_ref());
        }
        self.counters.evicted(victims.len() as u64);
        self.cache.run_pending_tasks();
    }

    /// Does moka's pending housekeeping now (the stats actor calls it before reading figures).
    pub(crate) fn settle(&self) {
        self.cache.run_pending_tasks();
    }

    /// Entries held.
    pub(crate) fn entries(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Weight held (bytes, each entry at least its slot).
    pub(crate) fn bytes(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// The byte bound.
    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}
