//! Owns the `[cache]` section: the result cache's tiers, their bounds, where the disk tier's
//! file lives, how invalidation works and when warming runs (docs/cache.md).

use serde::{Deserialize, Serialize};

/// When invalidated entries leave the tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CacheInvalidation {
    /// Removed from every tier at once.
    #[default]
    Eager,
    /// Recorded at once and checked on every read; removed by the tiers' actors shortly after.
    Lazy,
}

/// The result cache (`[cache]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Cache the results of tools that opt in (and of resource reads); false: no cache at all.
    pub enabled: bool,
    /// Directory of `cache.redb` ("" for the node's data directory).
    pub dir: String,
    /// Most entries in memory (L1).
    pub l1_max_entries: u64,
    /// Most bytes in memory (L1), keys and values with their bookkeeping.
    pub l1_max_bytes: u64,
    /// Most bytes on disk (L3); 0: no disk tier.
    pub l3_max_bytes: u64,
    /// `eager` or `lazy`.
    pub invalidation: CacheInvalidation,
    /// Milliseconds after start before L1 is warmed from L3.
    pub warmup_delay: u64,
    /// Entries warming takes from L3 (the newest).
    pub warmup_entries: usize,
    /// How often queued disk writes are committed, in milliseconds.
    pub flush_interval: u64,
    /// How often expired entries are purged (memory and disk), in milliseconds.
    pub compact_interval: u64,
    /// In a cluster: most entries this node holds in L2 for the keys it owns.
    pub l2_max_entries: u64,
    /// In a cluster: most bytes this node holds in L2 for the keys it owns.
    pub l2_max_bytes: u64,
    /// In a cluster: how long a get waits for the key's owner, in milliseconds (past it, a miss).
    pub l2_timeout: u64,
    /// In a cluster: puts and invalidations waiting to be sent to their owners, at most (more
    /// puts are dropped and counted).
    pub l2_outbox: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: String::new(),
            l1_max_entries: 10_000,
            l1_max_bytes: 64 << 20,
            l3_max_bytes: 256 << 20,
            invalidation: CacheInvalidation::Eager,
            warmup_delay: 1000,
            warmup_entries: 1000,
            flush_interval: 50,
            compact_interval: 60_000,
            l2_max_entries: 10_000,
            l2_max_bytes: 64 << 20,
            l2_timeout: 20,
            l2_outbox: 4096,
        }
    }
}

impl CacheConfig {
    /// The first key out of range, and why.
    pub(crate) fn invalid_key(&self) -> Option<(&'static str, &'static str)> {
        if self.l1_max_entries == 0 {
            return Some(("cache.l1_max_entries", "must be at least 1"));
        }
        if self.l1_max_bytes < 4096 {
            return Some(("cache.l1_max_bytes", "must be at least 4096"));
        }
        if self.l3_max_bytes != 0 && self.l3_max_bytes < 65536 {
            return Some((
                "cache.l3_max_bytes",
                "must be 0 (no disk tier) or at least 65536",
            ));
        }
        if self.flush_interval < 1 {
            return Some(("cache.flush_interval", "must be at least 1 ms"));
        }
        if self.compact_interval < 10 {
            return Some(("cache.compact_interval", "must be at least 10 ms"));
        }
        if self.l2_max_entries == 0 {
            return Some(("cache.l2_max_entries", "must be at least 1"));
        }
        if self.l2_max_bytes < 4096 {
            return Some(("cache.l2_max_bytes", "must be at least 4096"));
        }
        if !(1..=10_000).contains(&self.l2_timeout) {
            return Some(("cache.l2_timeout", "must be 1 to 10000 ms"));
        }
        if self.l2_outbox == 0 {
            return Some(("cache.l2_outbox", "must be at least 1"));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_l2_keys_have_defaults_and_bounds() {
        let cache = CacheConfig::default();
        assert_eq!(cache.invalid_key(), None);
        assert_eq!(cache.l2_timeout, 20);
        for (bad, key) in [
            (
                CacheConfig {
                    l2_timeout: 0,
                    ..CacheConfig::default()
                },
                "cache.l2_timeout",
            ),
            (
                CacheConfig {
                    l2_timeout: 10_001,
                    ..CacheConfig::default()
                },
                "cache.l2_timeout",
            ),
            (
                CacheConfig {
                    l2_outbox: 0,
                    ..CacheConfig::default()
                },
                "cache.l2_outbox",
            ),
            (
                CacheConfig {
                    l2_max_bytes: 100,
                    ..CacheConfig::default()
                },
                "cache.l2_max_bytes",
            ),
            (
                CacheConfig {
                    l2_max_entries: 0,
                    ..CacheConfig::default()
                },
                "cache.l2_max_entries",
            ),
        ] {
            assert_eq!(bad.invalid_key().map(|k| k.0), Some(key));
        }
    }
}
