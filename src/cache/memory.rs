//! Owns L1, the in-memory tier: a quick_cache cache (S3-FIFO eviction, sharded) bounded by bytes
//! and, through the weight of each entry, by entries; each entry carries its expiry, checked on
//! every read, and expired entries are purged by L1's actor.
//!
//! Both bounds in one: every entry weighs at least `max_bytes / max_entries`, so a full cache
//! holds at most `max_entries` entries and at most `max_bytes` bytes of keys and values with their
//! bookkeeping. Reads and writes are plain method calls on the request path, never a mailbox.
//! Keys carry what clients sent (tool arguments), so the table hashes with SipHash
//! (`RandomState`), not a fast unkeyed hash a client could collide.
//!
//! quick_cache rather than moka, measured here: a get with the expiry check 11–13M/s against
//! moka's 1.8–2.3M/s, an insert 7M/s against 0.3–0.5M/s (docs/cache.md).

use super::{CachedValue, TierCounters, now_ms};
use std::collections::hash_map::RandomState;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes an entry costs beyond its key's and value's own bytes: the table's slot and bookkeeping
/// (measured: resident memory grew 62–89 bytes per entry over 100,000 entries whose keys and
/// values were already allocated, the table included; docs/cache.md) and the two `Arc` headers
/// (32 bytes), rounded up.
pub(crate) const ENTRY_OVERHEAD: u64 = 128;

/// Each entry's weight: its bytes, at least one slot of the byte bound.
#[derive(Clone)]
struct SlotWeighter {
    slot: u64,
}

impl quick_cache::Weighter<Arc<str>, CachedValue> for SlotWeighter {
    fn weight(&self, key: &Arc<str>, value: &CachedValue) -> u64 {
        (key.len() as u64 + value.bytes.len() as u64 + ENTRY_OVERHEAD).max(self.slot)
    }
}

/// Counts evictions (an entry pushed out to stay in bounds).
#[derive(Clone)]
struct CountEvictions(Arc<TierCounters>);

impl quick_cache::Lifecycle<Arc<str>, CachedValue> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: Arc<str>, _value: CachedValue) {
        self.0.evicted(1);
    }
}

type Table =
    quick_cache::sync::Cache<Arc<str>, CachedValue, SlotWeighter, RandomState, CountEvictions>;

/// The in-memory tier.
pub(crate) struct MemoryTier {
    cache: Table,
    /// Evictions (hits and misses are counted per shard by the table itself).
    pub(crate) counters: Arc<TierCounters>,
    /// Hits on an entry found expired: misses, as the client sees them.
    expired_hits: AtomicU64,
    max_bytes: u64,
}

impl MemoryTier {
    /// A tier of at most `max_entries` entries and `max_bytes` bytes.
    pub(crate) fn new(max_entries: u64, max_bytes: u64) -> Self {
        let counters = Arc::new(TierCounters::default());
        let slot = (max_bytes / max_entries.max(1)).max(1);
        let cache = Table::with(
            usize::try_from(max_entries).unwrap_or(usize::MAX).max(1),
            max_bytes,
            SlotWeighter { slot },
            RandomState::new(),
            CountEvictions(Arc::clone(&counters)),
        );
        Self {
            cache,
            counters,
            expired_hits: AtomicU64::new(0),
            max_bytes,
        }
    }

    /// The live value of `key` (the table counts the hit or the miss).
    pub(crate) fn get(&self, key: &str) -> Option<CachedValue> {
        let found = self.cache.get(key)?;
        if found.expired(now_ms()) {
            self.expired_hits.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(found)
    }

    /// Lookups answered and not answered since start.
    pub(crate) fn lookups(&self) -> (u64, u64) {
        let expired = self.expired_hits.load(Ordering::Relaxed);
        (
            self.cache.hits().saturating_sub(expired),
            self.cache.misses() + expired,
        )
    }

    /// Stores `value` under `key` (replacing any).
    pub(crate) fn put(&self, key: Arc<str>, value: CachedValue) {
        self.cache.insert(key, value);
    }

    /// Removes every key starting with `prefix`.
    pub(crate) fn remove_prefix(&self, prefix: &str) {
        self.cache.retain(|key, _| !key.starts_with(prefix));
    }

    /// Removes everything.
    pub(crate) fn clear(&self) {
        self.cache.clear();
    }

    /// Removes the expired entries (L1's actor, every `compact_interval`); returns how many.
    pub(crate) fn purge_expired(&self) -> u64 {
        let before = self.cache.len();
        let now = now_ms();
        self.cache.retain(|_, value| !value.expired(now));
        before.saturating_sub(self.cache.len()) as u64
    }

    /// Evicts about `fraction` of the entries (the memory guard asked).
    pub(crate) fn shrink(&self, fraction: f64) {
        let fraction = fraction.clamp(0.0, 1.0);
        if fraction >= 1.0 {
            let count = self.cache.len() as u64;
            self.clear();
            self.counters.evicted(count);
            return;
        }
        let to_drop = (self.cache.len() as f64 * fraction).ceil() as usize;
        let victims: Vec<Arc<str>> = self
            .cache
            .iter()
            .take(to_drop)
            .map(|(key, _)| key)
            .collect();
        for key in &victims {
            self.cache.remove(key.as_ref());
        }
        self.counters.evicted(victims.len() as u64);
    }

    /// Entries held.
    pub(crate) fn entries(&self) -> u64 {
        self.cache.len() as u64
    }

    /// Weight held (bytes, each entry at least its slot).
    pub(crate) fn bytes(&self) -> u64 {
        self.cache.weight()
    }

    /// The byte bound.
    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}
