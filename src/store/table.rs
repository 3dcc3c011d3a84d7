//! Owns one named table of the state store: a map of keys to byte values split over shards, each
//! behind its own read–write lock, so readers on many threads meet only when they read the same
//! shard while it is being written, and never go through the store actor's mailbox. It counts its
//! changes (the ETS-like `info(Tab, ...)`) and may be bounded in entries.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Shards per table: a power of two, a few times the cores this node is likely to have.
const SHARDS: usize = 16;

/// A value as the table holds it: shared, so a read hands out a reference count, not a copy.
pub(crate) type Value = Arc<[u8]>;

type Shard = HashMap<String, Value, foldhash::quality::RandomState>;

/// One named table.
pub(crate) struct Table {
    shards: Box<[RwLock<Shard>]>,
    /// Picks a key's shard (seeded per process, so no client can aim its keys at one shard).
    hasher: foldhash::quality::RandomState,
    /// Puts and deletes that changed something, since the table was made.
    changes: AtomicU64,
    len: AtomicUsize,
    /// Most entries (0: no bound).
    max_entries: AtomicUsize,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("len", &self.len())
            .field("changes", &self.changes())
            .finish()
    }
}

/// Why a put was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableFull(pub(crate) usize);

impl Default for Table {
    fn default() -> Self {
        Self::new()
    }
}

impl Table {
    /// An empty, unbounded table.
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            hasher: foldhash::quality::RandomState::default(),
            changes: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            max_entries: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &str) -> &RwLock<Shard> {
        let index = (self.hasher.hash_one(key) as usize) & (SHARDS - 1);
        &self.shards[index]
    }

    fn read(shard: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
        shard.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(shard: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
        shard.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value under `key`.
    pub(crate) fn get(&self, key: &str) -> Option<Value> {
        Self::read(self.shard(key)).get(key).cloned()
    }

    /// Whether `key` is present.
    pub(crate) fn contains(&self, key: &str) -> bool {
        Self::read(self.shard(key)).contains_key(key)
    }

    /// Whether a put of `key` would be refused for the bound.
    pub(crate) fn check_room(&self, key: &str) -> Result<(), TableFull> {
        let max = self.max_entries.load(Ordering::Relaxed);
        if max > 0 && self.len() >= max && !self.contains(key) {
            return Err(TableFull(max));
        }
        Ok(())
    }

    /// Puts `value` under `key`, within the bound.
    pub(crate) fn put(&self, key: &str, value: Value) -> Result<(), TableFull> {
        self.check_room(key)?;
        let previous = Self::write(self.shard(key)).insert(key.to_owned(), value);
        if previous.is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        self.changes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Deletes `key`; `true` if it was there.
    pub(crate) fn delete(&self, key: &str) -> bool {
        let removed = Self::write(self.shard(key)).remove(key).is_some();
        if removed {
            self.len.fetch_sub(1, Ordering::Relaxed);
            self.changes.fetch_add(1, Ordering::Relaxed);
        }
        removed
    }

    /// Visits every entry, a shard at a time (a shard is read-locked while it is visited; a
    /// change made meanwhile to another shard may or may not be seen).
    pub(crate) fn scan(&self, mut visit: impl FnMut(&str, &Value)) {
        for shard in self.shards.iter() {
            for (key, value) in Self::read(shard).iter() {
                visit(key, value);
            }
        }
    }

    /// Entries now.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Changes (puts, and deletes that removed something) since the table was made.
    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// Its bound (0: none).
    pub(crate) fn max_entries(&self) -> usize {
        self.max_entries.load(Ordering::Relaxed)
    }

    /// Bounds the table to `max` entries (0: no bound); entries already there stay.
    pub(crate) fn bound(&self, max: usize) {
        self.max_entries.store(max, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_put_delete_scan_and_the_change_counter() {
        let table = Table::new();
        assert!(table.get("a").is_none());
        table.put("a", Arc::from(&b"1"[..])).unwrap();
        table.put("b", Arc::from(&b"2"[..])).unwrap();
        table.put("a", Arc::from(&b"3"[..])).unwrap();
        assert_eq!(table.get("a").as_deref(), Some(&b"3"[..]));
        assert_eq!((table.len(), table.changes()), (2, 3));
        assert!(table.delete("b"));
        assert!(!table.delete("b"), "a second delete finds nothing");
        assert_eq!((table.len(), table.changes()), (1, 4));
        let mut seen = Vec::new();
        table.scan(|k, v| seen.push((k.to_owned(), v.to_vec())));
        assert_eq!(seen, vec![("a".to_owned(), b"3".to_vec())]);
    }

    #[test]
    fn a_bounded_table_refuses_new_keys_but_takes_new_values() {
        let table = Table::new();
        table.bound(2);
        table.put("a", Arc::from(&b"1"[..])).unwrap();
        table.put("b", Arc::from(&b"1"[..])).unwrap();
        assert_eq!(table.put("c", Arc::from(&b"1"[..])), Err(TableFull(2)));
        table.put("a", Arc::from(&b"2"[..])).unwrap();
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn readers_on_other_threads_see_every_write() {
        let table = Arc::new(Table::new());
        let writer = {
            let table = Arc::clone(&table);
            std::thread::spawn(move || {
                for i in 0..1000 {
                    table.put(&i.to_string(), Arc::from(&b"x"[..])).unwrap();
                }
            })
        };
        writer.join().unwrap();
        assert_eq!(table.len(), 1000);
        assert!((0..1000).all(|i| table.get(&i.to_string()).is_some()));
    }
}
