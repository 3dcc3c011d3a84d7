//! Owns L2, the tier shared between nodes: the interface ([`SharedTier`]: each key has an owner
//! node that holds it) and the single-node stand-in ([`SingleNode`]) used when the node does not
//! run clustered. On one node, this node owns every key and its L1 and L3 already hold it, so the
//! stand-in holds nothing: every lookup is a miss, counted like any tier's. The clustered tier
//! is [`super::clustered`].

use super::{CachedValue, RemoteStats, TierCounters};
use crate::common::BoxFuture;
use std::sync::Arc;

/// Where a key's L2 entry is.
pub(crate) enum SharedGet {
    /// Answered here: this node owns the key (or runs alone).
    Here(Option<CachedValue>),
    /// Another member owns it: ask it ([`SharedTier::get_remote`]).
    Elsewhere(String),
}

/// A tier whose entries live on the owner node of each key.
pub(crate) trait SharedTier: Send + Sync {
    /// The live value of `key` when this node owns it, else who does.
    fn get(&self, key: &str) -> SharedGet;
    /// Asks `owner` for `key` (a miss when it does not answer in time).
    fn get_remote(&self, _owner: String, _key: &str) -> BoxFuture<Option<CachedValue>> {
        Box::pin(std::future::ready(None))
    }
    /// Stores `value` at the owner of `key` (sent, not awaited, when it is another node).
    fn put(&self, key: &Arc<str>, value: &CachedValue);
    /// Removes every key starting with `prefix` at every owner.
    fn remove_prefix(&self, prefix: &str);
    /// Removes everything this node holds.
    fn clear(&self);
    /// Entries and bytes this node holds for the tier.
    fn held(&self) -> (u64, u64);
    /// Its lookup counters.
    fn counters(&self) -> &TierCounters;
    /// Entries evicted to stay in bounds.
    fn evictions(&self) -> u64 {
        0
    }
    /// The byte bound of what this node holds (0: none).
    fn max_bytes(&self) -> u64 {
        0
    }
    /// Lookups sent to other members, when clustered.
    fn remote_stats(&self) -> Option<RemoteStats> {
        None
    }
    /// The tier itself, for its actor to find its own type's parts (the clustered tier's share
    /// and outbox).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// The single-node stand-in: this node owns every key, which its other tiers hold.
#[derive(Default)]
pub(crate) struct SingleNode {
    counters: TierCounters,
}

impl SharedTier for SingleNode {
    fn get(&self, _key: &str) -> SharedGet {
        self.counters.looked_up(false);
        SharedGet::Here(None)
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

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
