//! Owns L2, the tier shared between nodes: the interface a cluster implements (each key has an
//! owner node that holds it) and the single-node stand-in used until the cluster issue brings a
//! real owner per key. On one node, this node owns every key and its L1 and L3 already hold it,
//! so the stand-in holds nothing: every lookup is a miss, counted like any tier's.

use super::{CachedValue, TierCounters};
use std::sync::Arc;

/// A tier whose entries live on the owner node of each key.
pub(crate) trait SharedTier: Send + Sync {
    /// The live value of `key` at its owner.
    fn get(&self, key: &str) -> Option<CachedValue>;
    /// Stores `value` at the owner of `key`.
    fn put(&self, key: &Arc<str>, value: &CachedValue);
    /// Removes every key starting with `prefix` at every owner.
    fn remove_prefix(&self, prefix: &str);
    /// Removes everything.
    fn clear(&self);
    /// Entries and bytes this node holds for the tier.
    fn held(&self) -> (u64, u64);
    /// Its lookup counters.
    fn counters(&self) -> &TierCounters;
}

/// The single-node stand-in: this node owns every key, which its other tiers hold.
#[derive(Default)]
pub(crate) struct SingleNode {
    counters: TierCounters,
}

impl SharedTier for SingleNode {
    fn get(&self, _key: &str) -> Option<CachedValue> {
        self.counters.looked_up(false);
        None
    }

    fn put(&self, _key: &Arc<str>, _value: &CachedValue) {}

    fn remove_prefix(&self, _prefix: &str) {}

    fn clear(&self) {}

    fn held(&self) -> (u64, u64) {
        (0, 0)
    }

    fn counters(&self) -> &TierCounters {
        &self.counters
    }
}
