//! Owns the store's measurements: its get and put beside a `Mutex<HashMap>` doing the same job
//! (pairs of `erlmcp bench core`), and the time to snapshot and restore many entries with the
//! bytes each costs on disk (`erlmcp bench store`).

use super::{Store, StoreSettings, Value};
use crate::core_bench::pair::{Pair, spread_key};
use crate::locks::lock;
use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Keys the pairs spread over.
const KEYS: usize = 1024;

/// The store's pairs: `store_get` and `store_put` (a table of the in-memory store; a put with a
/// directory adds the change log's write, measured by `erlmcp bench store`).
pub(crate) fn bench_pairs() -> Vec<Pair> {
    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|i| format!("session-{i:08x}")).collect());
    let value: Value = Arc::from(vec![7u8; 256]);
    let store = Store::open(StoreSettings::in_memory());
    let table = store.table("bench");
    let mut map = HashMap::new();
    for key in keys.iter() {
        let _ = table.put(key, Arc::clone(&value));
        map.insert(key.clone(), Arc::clone(&value));
    }
    let baseline = Arc::new(Mutex::new(map));
    let get = {
        let (keys, table) = (Arc::clone(&keys), Arc::clone(&table));
        Arc::new(move || {
            black_box(table.get(&keys[spread_key(KEYS)]));
        })
    };
    let get_baseline = {
        let (keys, baseline) = (Arc::clone(&keys), Arc::clone(&baseline));
        Arc::new(move || {
            black_box(lock(&baseline).get(&keys[spread_key(KEYS)]).cloned());
        })
    };
    let put = {
        let (keys, store) = (Arc::clone(&keys), Arc::clone(&store));
        Arc::new(move || {
            let _ = black_box(store.put("bench", &keys[spread_key(KEYS)], vec![7u8; 256]));
        })
    };
    let put_baseline = {
        let (keys, baseline) = (Arc::clone(&keys), Arc::clone(&baseline));
        Arc::new(move || {
            let value: Value = Arc::from(vec![7u8; 256]);
            black_box(lock(&baseline).insert(keys[spread_key(KEYS)].clone(), value));
        })
    };
    vec![
        Pair {
            name: "store_get",
            ours: ("store Table::get (16 RwLock shards)", get),
            baseline: ("Mutex<HashMap<String, Arc<[u8]>>>::get", get_baseline),
        },
        Pair {
            name: "store_put",
            ours: ("Store::put, in memory (256-byte value)", put),
            baseline: ("Mutex<HashMap<String, Arc<[u8]>>>::insert", put_baseline),
        },
    ]
}

/// What `erlmcp bench store` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotFigures {
    /// Entries stored.
    pub entries: usize,
    /// Puts per second through the change log, with `store.fsync = "never"`.
    pub logged_puts_per_sec: f64,
    /// Puts per second through the change log, each fsynced (`"always"`), over the first
    /// [`FSYNCED_PUTS`] puts.
    pub fsynced_puts_per_sec: f64,
    /// Milliseconds to write the snapshot (encode, deflate, write, fsync, rename).
    pub snapshot_ms: f64,
    /// Its size on disk.
    pub snapshot_bytes: u64,
    /// Bytes per entry in the snapshot.
    pub snapshot_bytes_per_entry: f64,
    /// Bytes per entry of its value (bincode), before compression.
    pub value_bytes: usize,
    /// Milliseconds to open the store again: read, check, inflate, decode, fill the tables.
    pub restore_ms: f64,
    /// Resident memory per entry held in a table (key, value, the map's share), measured as
    /// the growth of the process's resident set while a fresh table is filled.
    pub memory_bytes_per_entry: f64,
    /// The same puts into a redb table (0 when redb failed: logged), one write transaction each, committed with
    /// `Durability::None` (the kernel writes it back when it likes: as `"never"`).
    pub redb_unsynced_puts_per_sec: f64,
    /// The same puts into a redb table, one transaction each with `Durability::Immediate` (an
    /// fsync each: as `"always"`), over the first [`FSYNCED_PUTS`].
    pub redb_fsynced_puts_per_sec: f64,
}

/// The puts of [`snapshot_figures`] into a redb table in `dir`, one write transaction each:
/// unsynced (all `entries`), then fsynced (the first [`FSYNCED_PUTS`]). Returns puts per second
/// of each.
fn redb_puts(
    dir: &Path,
    entries: usize,
    key: &dyn Fn(usize) -> String,
    value: &dyn Fn(usize) -> Vec<u8>,
) -> Result<(f64, f64), redb::Error> {
    const TABLE: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("bench");
    let path = dir.join("bench-redb-compare.redb");
    let timed = |count: usize, durability: redb::Durability| -> Result<f64, redb::Error> {
        let _ = std::fs::remove_file(&path);
        let db = redb::Database::create(&path)?;
        let started = Instant::now();
        for i in 0..count {
            let mut txn = db.begin_write()?;
            txn.set_durability(durability)
                .map_err(|e| redb::Error::Io(std::io::Error::other(e)))?;
            txn.open_table(TABLE)?
                .insert(key(i).as_str(), value(i).as_slice())?;
            txn.commit()?;
        }
        Ok(count as f64 / started.elapsed().as_secs_f64())
    };
    let unsynced = timed(entries, redb::Durability::None)?;
    let fsynced = timed(FSYNCED_PUTS.min(entries), redb::Durability::Immediate)?;
    let _ = std::fs::remove_file(&path);
    Ok((unsynced, fsynced))
}

/// Puts measured with an fsync each.
pub const FSYNCED_PUTS: usize = 200;

/// Stores `entries` values made by `value` in `table` of a store in `dir`, snapshots and
/// restores it. The directory is left as the restore found it: a node given it as `store.dir`
/// starts with these entries.
pub fn snapshot_figures(
    dir: &Path,
    table: &str,
    entries: usize,
    value: impl Fn(usize) -> Vec<u8>,
) -> Result<SnapshotFigures, super::StoreError> {
    use crate::config::FsyncPolicy;
    let settings = |fsync| StoreSettings {
        dir: Some(dir.to_owned()),
        fsync,
        snapshot_interval: std::time::Duration::from_secs(3600),
    };
    let key = |i: usize| format!("{:016x}{:016x}", mix(i as u64), mix(!(i as u64)));
    // First, before anything else was allocated and freed (the resident set does not shrink).
    let memory_bytes_per_entry = {
        let store = Store::open(StoreSettings::in_memory());
        let before = crate::metrics::collector::rss_bytes();
        for i in 0..entries {
            store.put(table, &key(i), value(i))?;
        }
        let after = crate::metrics::collector::rss_bytes();
        black_box(store.table(table).len());
        after.saturating_sub(before) as f64 / entries.max(1) as f64
    };
    let fsynced = Store::open(settings(FsyncPolicy::Always));
    let started = Instant::now();
    for i in 0..FSYNCED_PUTS.min(entries) {
        fsynced.put(table, &key(i), value(i))?;
    }
    let fsynced_puts_per_sec = FSYNCED_PUTS.min(entries) as f64 / started.elapsed().as_secs_f64();
    drop(fsynced);
    let store = Store::open(settings(FsyncPolicy::Never));
    let value_bytes = value(0).len();
    let started = Instant::now();
    for i in 0..entries {
        store.put(table, &key(i), value(i))?;
    }
    let logged_puts_per_sec = entries as f64 / started.elapsed().as_secs_f64();
    // Made dirty again if the restore above already wrote everything.
    store.put(table, &key(0), value(0))?;
    let started = Instant::now();
    let written = store.snapshot()?;
    let snapshot_ms = started.elapsed().as_secs_f64() * 1000.0;
    let snapshot_bytes = written
        .and_then(|path| std::fs::metadata(path).ok())
        .map_or(0, |m| m.len());
    drop(store);
    let started = Instant::now();
    let restored = Store::open(settings(FsyncPolicy::Never));
    let restore_ms = started.elapsed().as_secs_f64() * 1000.0;
    black_box(restored.table(table).len());
    drop(restored);
    let (redb_unsynced_puts_per_sec, redb_fsynced_puts_per_sec) =
        redb_puts(dir, entries, &key, &value).unwrap_or_else(|e| {
            tracing::warn!("the redb side of the store bench failed: {e}");
            (0.0, 0.0)
        });
    Ok(SnapshotFigures {
        entries,
        logged_puts_per_sec,
        fsynced_puts_per_sec,
        snapshot_ms,
        snapshot_bytes,
        snapshot_bytes_per_entry: snapshot_bytes as f64 / entries.max(1) as f64,
        value_bytes,
        restore_ms,
        memory_bytes_per_entry,
        redb_unsynced_puts_per_sec,
        redb_fsynced_puts_per_sec,
    })
}

/// A 64-bit mix (splitmix64's finaliser): keys as random-looking as real session ids, so the
/// snapshot's compression is not flattered by keys that share their digits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
