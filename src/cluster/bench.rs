//! Owns the cluster's pair of `erlmcp bench core`: finding a key's owner on the ring (what
//! placing a session or an L2 cache key costs) beside modulo placement over the same hash,
//! which finds an owner as fast but moves almost every key when a member joins or leaves.

use super::ring::{Ring, stable_hash};
use crate::core_bench::pair::{Pair, spread_key};
use std::hint::black_box;
use std::sync::Arc;

/// Keys the pair spreads over.
const KEYS: usize = 1024;

/// Members of the measured ring.
const MEMBERS: [&str; 3] = ["a@10.0.0.1", "b@10.0.0.2", "c@10.0.0.3"];

/// `cluster_ring_owner`: `Ring::owner` over three members of 100 virtual nodes each, beside
/// `stable_hash(key) % 3`.
pub(crate) fn bench_pairs() -> Vec<Pair> {
    let keys: Arc<Vec<String>> = Arc::new(
        (0..KEYS)
            .map(|i| format!("{:032x}", u128::from(stable_hash(&i.to_le_bytes()))))
            .collect(),
    );
    let ring = Arc::new(Ring::new(MEMBERS, 100));
    // Each thread walks the keys from its own place (no shared counter bouncing between cores).
    let owner = {
        let (keys, ring) = (Arc::clone(&keys), Arc::clone(&ring));
        Arc::new(move || {
            black_box(ring.owner(keys[spread_key(KEYS)].as_bytes()));
        })
    };
    let modulo = {
        let keys = Arc::clone(&keys);
        Arc::new(move || {
            let hash = stable_hash(keys[spread_key(KEYS)].as_bytes());
            black_box(MEMBERS[(hash % MEMBERS.len() as u64) as usize]);
        })
    };
    vec![Pair {
        name: "cluster_ring_owner",
        ours: ("Ring::owner (BTreeMap, 3 members × 100 vnodes)", owner),
        baseline: ("stable_hash(key) % 3 (modulo placement)", modulo),
    }]
}
