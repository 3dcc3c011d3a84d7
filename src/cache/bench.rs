//! Owns the cache's pairs in `erlmcp bench core`: an L1 get and an L1 put beside a
//! `Mutex<HashMap>` doing the same job, and a hot L3 get (its page in redb's cache) beside a
//! plain redb read of the same bytes without the tier's header, expiry and counters. The L3 file
//! lives in a private directory under the system's temporary directory, removed when the pairs
//! are dropped.

use super::disk::{DiskTier, PendingWrite};
use super::memory::MemoryTier;
use super::{CachedValue, now_ms};
use crate::core_bench::pair::{Pair, spread_key};
use crate::locks::lock;
use redb::{ReadableDatabase, ReadableTable};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Keys in each table measured.
const KEYS: usize = 1_000;
/// Bytes of each value (a small tool result).
const VALUE_BYTES: usize = 200;

fn key(n: usize) -> String {
    format!("tool\u{1f}bench\u{1f}1.0.0\u{1f}pub\u{1f}{{\"n\":{n}}}")
}

/// The next of [`KEYS`] keys this thread reads.
fn next_key() -> usize {
    spread_key(KEYS)
}

/// The baseline's table.
type PlainTable = HashMap<Arc<str>, Arc<[u8]>>;

/// The bench's private directory, removed when the last pair holding it is dropped.
struct BenchDir(PathBuf);

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The cache's pairs.
pub(crate) fn bench_pairs() -> Vec<Pair> {
    let mut pairs = l1_pairs();
    if let Some(pair) = l3_pair() {
        pairs.push(pair);
    }
    pairs
}

fn l1_pairs() -> Vec<Pair> {
    let value: Arc<[u8]> = vec![b'x'; VALUE_BYTES].into();
    let keys: Arc<Vec<Arc<str>>> = Arc::new((0..KEYS).map(|n| Arc::from(key(n))).collect());
    let tier = Arc::new(MemoryTier::new(100_000, 256 << 20));
    let plain: Arc<Mutex<PlainTable>> = Arc::new(Mutex::new(HashMap::new()));
    for key in keys.iter() {
        tier.put(
            Arc::clone(key),
            CachedValue::new(Arc::clone(&value), Duration::from_secs(3600)),
        );
        lock(&plain).insert(Arc::clone(key), Arc::clone(&value));
    }
    let (get_tier, get_plain, get_keys, plain_keys) = (
        Arc::clone(&tier),
        Arc::clone(&plain),
        Arc::clone(&keys),
        Arc::clone(&keys),
    );
    let get = Pair {
        name: "cache_l1_get",
        ours: (
            "cache L1 get (quick_cache, SipHash, expiry checked, hit counted)",
            Arc::new(move || {
                black_box(get_tier.get(&get_keys[next_key()]).map(|v| v.bytes.len()));
            }),
        ),
        baseline: (
            "Mutex<HashMap<Arc<str>, Arc<[u8]>>>::get",
            Arc::new(move || {
                let found = lock(&get_plain)
                    .get(plain_keys[next_key()].as_ref())
                    .cloned();
                black_box(found.map(|v| v.len()));
            }),
        ),
    };
    let (put_value, plain_value, put_keys, plain_keys) = (
        Arc::clone(&value),
        Arc::clone(&value),
        Arc::clone(&keys),
        Arc::clone(&keys),
    );
    let put = Pair {
        name: "cache_l1_put",
        ours: (
            "cache L1 put (quick_cache insert, weigher)",
            Arc::new(move || {
                let key = Arc::clone(&put_keys[next_key()]);
                tier.put(
                    key,
                    CachedValue::new(Arc::clone(&put_value), Duration::from_secs(3600)),
                );
            }),
        ),
        baseline: (
            "Mutex<HashMap<Arc<str>, Arc<[u8]>>>::insert",
            Arc::new(move || {
                let key = Arc::clone(&plain_keys[next_key()]);
                black_box(lock(&plain).insert(key, Arc::clone(&plain_value)));
            }),
        ),
    };
    vec![get, put]
}

/// The bench's L3 pair; `None` when the temporary directory cannot take the files.
fn l3_pair() -> Option<Pair> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "erlmcp-bench-cache-{}-{}-{}",
        std::process::id(),
        now_ms(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).ok()?;
    let dir = Arc::new(BenchDir(dir));
    let tier = DiskTier::open(&dir.0.join("cache.redb"), 1 << 30).ok()?;
    let value: Arc<[u8]> = vec![b'x'; VALUE_BYTES].into();
    let plain = redb::Database::create(dir.0.join("plain.redb")).ok()?;
    const PLAIN: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("plain");
    {
        let txn = plain.begin_write().ok()?;
        {
            let mut table = txn.open_table(PLAIN).ok()?;
            for n in 0..KEYS {
                table.insert(key(n).as_str(), value.as_ref()).ok()?;
            }
        }
        txn.commit().ok()?;
    }
    for n in 0..KEYS {
        tier.queue(PendingWrite::Put(
            Arc::from(key(n)),
            CachedValue::new(Arc::clone(&value), Duration::from_secs(3600)),
        ));
    }
    tier.flush().ok()?;
    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(key).collect());
    let plain_keys = Arc::clone(&keys);
    let plain_dir = Arc::clone(&dir);
    Some(Pair {
        name: "cache_l3_get_hot",
        ours: (
            "cache L3 get (shared redb read view, header, expiry, counters)",
            Arc::new(move || {
                let _ = &dir;
                black_box(
                    tier.get(&keys[next_key()])
                        .ok()
                        .flatten()
                        .map(|v| v.bytes.len()),
                );
            }),
        ),
        baseline: (
            "plain redb read txn + get of the same bytes",
            Arc::new(move || {
                let _ = &plain_dir;
                let found = plain.begin_read().ok().and_then(|txn| {
                    let table = txn.open_table(PLAIN).ok()?;
                    let value = table.get(plain_keys[next_key()].as_str()).ok()??;
                    Some(value.value().len())
                });
                black_box(found);
            }),
        ),
    })
}
