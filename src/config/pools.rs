//! Owns the `[pools.NAME]` tables of the configuration: the settings of each named worker pool
//! (`src/pool.rs`) and their validation. The tool pool `erlmcp_tool_pool` takes its size from the
//! top-level `pool_size` unless its own table sets `size`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The name of the pool that runs tools declared blocking (and plugin tools that ask the client).
pub const TOOL_POOL: &str = "erlmcp_tool_pool";

/// Which idle worker a checkout gets (each documented on its variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolStrategy {
    /// The worker idle longest: every worker takes its turn (a FIFO of idle workers; O(1)).
    #[default]
    RoundRobin,
    /// The idle worker with the fewest checkouts so far (a worker is lent to one borrower at a
    /// time, so an idle one has none in flight; among them the least used is the least loaded).
    LeastLoaded,
    /// Smooth weighted round robin (nginx's) over the idle workers, with the static `weights`:
    /// worker slot `i` has weight `weights[i]` (1 where the list is shorter).
    Weighted,
    /// The idle worker whose recent checkouts were held the shortest (an EWMA of each worker's
    /// hold time, α = 1/4); a worker never measured counts as fastest, so each is tried.
    Adaptive,
}

impl PoolStrategy {
    /// The name as the configuration spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::LeastLoaded => "least_loaded",
            Self::Weighted => "weighted",
            Self::Adaptive => "adaptive",
        }
    }
}

/// One `[pools.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Workers made at start and kept (absent: `pool_size` for the tool pool, else 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    /// Extra workers made on demand when all are busy.
    pub max_overflow: usize,
    /// An overflow worker idle this long is removed, in milliseconds.
    pub overflow_idle: u64,
    /// Which idle worker a checkout gets.
    pub strategy: PoolStrategy,
    /// How long a checkout waits for a worker, in milliseconds (then a timeout error).
    pub checkout_timeout: u64,
    /// Check a worker's health before lending it (a failed one is replaced).
    pub health_check: bool,
    /// Static weights of the `weighted` strategy, by worker slot.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<u32>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            size: None,
            max_overflow: 0,
            overflow_idle: 10_000,
            strategy: PoolStrategy::RoundRobin,
            checkout_timeout: 5_000,
            health_check: true,
            weights: Vec::new(),
        }
    }
}

/// A pool's size when its table does not set one (and it is not the tool pool).
pub const DEFAULT_POOL_SIZE: usize = 10;

impl PoolConfig {
    /// The checkout timeout.
    pub fn checkout_timeout(&self) -> Duration {
        Duration::from_millis(self.checkout_timeout)
    }

    /// How long an overflow worker may stay idle.
    pub fn overflow_idle(&self) -> Duration {
        Duration::from_millis(self.overflow_idle)
    }
}

/// The settings of pool `name`: its table, with `size` filled in (`pool_size` for the tool pool,
/// else [`DEFAULT_POOL_SIZE`]).
pub(crate) fn pool_settings(
    pools: &BTreeMap<String, PoolConfig>,
    pool_size: usize,
    name: &str,
) -> PoolConfig {
    let mut settings = pools.get(name).cloned().unwrap_or_default();
    if settings.size.is_none() {
        settings.size = Some(if name == TOOL_POOL {
            pool_size
        } else {
            DEFAULT_POOL_SIZE
        });
    }
    settings
}

/// The first `[pools.NAME]` key out of range: the dotted key and why.
pub(crate) fn invalid_pool_key(
    pools: &BTreeMap<String, PoolConfig>,
) -> Option<(String, &'static str)> {
    for (name, pool) in pools {
        let key = |field: &str| format!("pools.{name}.{field}");
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !name_ok {
            return Some((
                format!("pools.{name}"),
                "a pool name must be non-empty ASCII letters, digits, '_', '-', '.'",
            ));
        }
        if pool.size == Some(0) {
            return Some((key("size"), "must be at least 1"));
        }
        if pool.checkout_timeout == 0 {
            return Some((key("checkout_timeout"), "must be at least 1 ms"));
        }
        if pool.max_overflow > 0 && pool.overflow_idle == 0 {
            return Some((
                key("overflow_idle"),
                "must be at least 1 ms when max_overflow is set",
            ));
        }
        if pool.weights.contains(&0) {
            return Some((key("weights"), "every weight must be at least 1"));
        }
        if !pool.weights.is_empty() && pool.strategy != PoolStrategy::Weighted {
            return Some((key("weights"), "only the `weighted` strategy reads weights"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> BTreeMap<String, PoolConfig> {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_pool_table_takes_defaults_for_what_it_leaves_out() {
        let pools = table("[db]\nsize = 4\nstrategy = \"adaptive\"\n");
        let db = pool_settings(&pools, 100, "db");
        assert_eq!(db.size, Some(4));
        assert_eq!(db.strategy, PoolStrategy::Adaptive);
        assert_eq!(db.checkout_timeout, 5_000);
        assert!(db.health_check);
    }

    #[test]
    fn the_tool_pool_is_sized_by_pool_size_unless_its_table_says() {
        let none = BTreeMap::new();
        assert_eq!(pool_settings(&none, 7, TOOL_POOL).size, Some(7));
        assert_eq!(pool_settings(&none, 7, "db").size, Some(DEFAULT_POOL_SIZE));
        let set = table("[erlmcp_tool_pool]\nsize = 3\n");
        assert_eq!(pool_settings(&set, 7, TOOL_POOL).size, Some(3));
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        let cases = [
            ("[db]\nsize = 0\n", "pools.db.size"),
            ("[db]\ncheckout_timeout = 0\n", "pools.db.checkout_timeout"),
            (
                "[db]\nmax_overflow = 2\noverflow_idle = 0\n",
                "pools.db.overflow_idle",
            ),
            (
                "[db]\nstrategy = \"weighted\"\nweights = [1, 0]\n",
                "pools.db.weights",
            ),
            ("[db]\nweights = [2]\n", "pools.db.weights"),
        ];
        for (text, key) in cases {
            let (found, _) = invalid_pool_key(&table(text)).expect(text);
            assert_eq!(found, key);
        }
        assert!(invalid_pool_key(&table("[db]\nsize = 2\n")).is_none());
    }

    #[test]
    fn an_unknown_strategy_or_key_is_refused() {
        assert!(
            toml::from_str::<BTreeMap<String, PoolConfig>>("[db]\nstrategy = \"random\"\n")
                .is_err()
        );
        assert!(toml::from_str::<BTreeMap<String, PoolConfig>>("[db]\nsise = 2\n").is_err());
    }
}
