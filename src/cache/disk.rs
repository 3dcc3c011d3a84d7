//! Owns L3, the on-disk tier: one redb file (`cache.redb` in the node's data directory), bounded
//! by bytes, values over [`COMPRESS_ABOVE`] bytes deflated with flate2, each entry stored with its
//! expiry (checked on read) and the time it was written (warming takes the newest first).
//!
//! Writes are batched: the request path queues them ([`DiskTier::queue`], a short lock) and the
//! tier's actor commits the queue in one transaction every tick — a redb commit costs a disk
//! sync, far more than a request. Reads share one read view of the file (a redb read
//! transaction's table) for as long as nothing was committed after it was opened: a commit
//! bumps the tier's generation and the next read opens a new view. Beginning a read transaction
//! per get cost most of a hot get (~1.3 µs of ~1.5). A file redb cannot open (corrupt, torn, another format) is
//! moved aside with a log line naming it, and the tier starts empty: the node starts anyway.

use super::{CachedValue, TierCounters, now_ms};
use crate::locks::lock;
use arc_swap::ArcSwapOption;
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Values longer than this are compressed.
pub(crate) const COMPRESS_ABOVE: usize = 1024;

/// Writes queued beyond this are dropped (counted): the disk tier is behind, the cache is a cache.
const MAX_QUEUED: usize = 4096;

/// key → header (flags u8, expires_at u64 LE, written_at u64 LE) + payload.
const ENTRIES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("entries");

const HEADER: usize = 17;
const FLAG_DEFLATE: u8 = 1;

/// Why the disk tier failed an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DiskError {
    /// redb refused.
    #[error("cache file {path}: {source}")]
    Redb {
        /// The file.
        path: PathBuf,
        /// redb's error.
        source: redb::Error,
    },
    /// The directory could not be made, or the file moved aside.
    #[error("cache file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A write waiting for the tier's actor.
pub(crate) enum PendingWrite {
    Put(Arc<str>, CachedValue),
    Remove(Arc<str>),
    RemovePrefix(String),
    Clear,
}

/// A read transaction's view of the entries, shared by readers until the next commit.
struct ReadView {
    /// The tier's generation when the view was opened: it sees every commit up to it.
    generation: u64,
    /// `None`: the table did not exist yet (nothing was ever written).
    table: Option<ReadOnlyTable<&'static str, &'static [u8]>>,
}

/// A prefix removal (or a clear: the empty prefix) queued for the next commit.
struct PendingRemoval {
    ticket: u64,
    prefix: Box<str>,
}

/// The on-disk tier.
pub(crate) struct DiskTier {
    /// Dropped before the database (field order): the view holds one of its transactions.
    view: ArcSwapOption<ReadView>,
    /// Commits made so far; a view of an older generation is not used.
    generation: AtomicU64,
    db: Database,
    path: PathBuf,
    max_bytes: u64,
    /// Bytes of keys and stored values, kept up to date by every commit.
    bytes: AtomicU64,
    entries: AtomicU64,
    queue: Mutex<Vec<PendingWrite>>,
    /// Removals queued and not yet committed, each with its ticket: the shared view still holds
    /// their entries, so a key under one is a miss until the commit (an invalidated value must
    /// not come back from L3 before the tier's actor flushes). Locked after `queue`, never before.
    removing: Mutex<Vec<PendingRemoval>>,
    /// Whether `removing` holds any: the one check a get pays when none is pending.
    removing_any: AtomicBool,
    /// The ticket the next queued removal takes.
    next_removal: AtomicU64,
    pub(crate) counters: Arc<TierCounters>,
    /// Writes dropped because the queue was full.
    pub(crate) dropped: AtomicU64,
}

impl DiskTier {
    /// Opens (or creates) `path`. A file redb refuses is renamed `<path>.corrupt-<unix ms>`, with
    /// a log line naming both, and a new empty file takes its place.
    pub(crate) fn open(path: &Path, max_bytes: u64) -> Result<Self, DiskError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| DiskError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let redb_error = |source: redb::Error| DiskError::Redb {
            path: path.to_owned(),
            source,
        };
        let db = match Database::create(path) {
            Ok(db) => db,
            // Another cache of this node name holds it (a second node under the same name): not
            // corrupt, not ours to move.
            Err(e @ redb::DatabaseError::DatabaseAlreadyOpen) => return Err(redb_error(e.into())),
            Err(first) => {
                let aside = path.with_extension(format!("redb.corrupt-{}", now_ms()));
                tracing::error!(
                    file = %path.display(),
                    moved_to = %aside.display(),
                    "the disk cache file is unreadable ({first}); it is moved aside and the disk tier starts empty"
                );
                std::fs::rename(path, &aside).map_err(|source| DiskError::Io {
                    path: path.to_owned(),
                    source,
                })?;
                Database::create(path).map_err(|e| redb_error(e.into()))?
            }
        };
        let tier = Self {
            view: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            db,
            path: path.to_owned(),
            max_bytes,
            bytes: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            queue: Mutex::new(Vec::new()),
            removing: Mutex::new(Vec::new()),
            removing_any: AtomicBool::new(false),
            next_removal: AtomicU64::new(0),
            counters: Arc::new(TierCounters::default()),
            dropped: AtomicU64::new(0),
        };
        tier.recount().map_err(redb_error)?;
        Ok(tier)
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn redb_error(&self, source: impl Into<redb::Error>) -> DiskError {
        DiskError::Redb {
            path: self.path.clone(),
            source: source.into(),
        }
    }

    /// Counts entries and bytes from the file.
    fn recount(&self) -> Result<(), redb::Error> {
        let read = self.db.begin_read()?;
        let (mut entries, mut bytes) = (0, 0);
        match read.open_table(ENTRIES) {
            Ok(table) => {
                for row in table.iter()? {
                    let (key, value) = row?;
                    entries += 1;
                    bytes += (key.value().len() + value.value().len()) as u64;
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.entries.store(entries, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// The live value of `key`, counted as a hit or a miss; an expired one is a miss (and is
    /// removed by the next commit).
    pub(crate) fn get(&self, key: &str) -> Result<Option<CachedValue>, DiskError> {
        // Checked before the read: a removal no longer pending was committed, and the commit
        // bumped the generation first, so the read below opens a view that sees it.
        if self.being_removed(key) {
            self.counters.looked_up(false);
            return Ok(None);
        }
        let found = self.read(key)?;
        let live = match found {
            Some(value) if value.expired(now_ms()) => {
                self.queue(PendingWrite::Remove(Arc::from(key)));
                None
            }
            other => other,
        };
        self.counters.looked_up(live.is_some());
        Ok(live)
    }

    fn read(&self, key: &str) -> Result<Option<CachedValue>, DiskError> {
        let view = self.current_view()?;
        let Some(table) = view.table.as_ref() else {
            return Ok(None);
        };
        let Some(stored) = table.get(key).map_err(|e| self.redb_error(e))? else {
            return Ok(None);
        };
        Ok(decode(stored.value()))
    }

    /// The shared read view, opened again when a commit came after it. The generation is read
    /// before the transaction begins, so a view never claims a commit it does not see.
    fn current_view(&self) -> Result<Arc<ReadView>, DiskError> {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(view) = self.view.load_full()
            && view.generation == generation
        {
            return Ok(view);
        }
        let read = self.db.begin_read().map_err(|e| self.redb_error(e))?;
        let table = match read.open_table(ENTRIES) {
            Ok(table) => Some(table),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(self.redb_error(e)),
        };
        let view = Arc::new(ReadView { generation, table });
        self.view.store(Some(Arc::clone(&view)));
        Ok(view)
    }

    /// Marks a commit: readers open a new view from now on.
    fn committed(&self) {
        self.generation.fetch_add(1, Ordering::Release);
        self.view.store(None);
    }

    /// Whether a queued removal, not yet committed, covers `key`.
    fn being_removed(&self, key: &str) -> bool {
        if !self.removing_any.load(Ordering::Acquire) {
            return false;
        }
        lock(&self.removing)
            .iter()
            .any(|removal| key.starts_with(&*removal.prefix))
    }

    /// Queues a write for the next commit; dropped (and counted) when the queue is full (a put
    /// only: a removal is never dropped).
    pub(crate) fn queue(&self, write: PendingWrite) {
        let mut queue = lock(&self.queue);
        let removed_prefix = match &write {
            PendingWrite::Put(..) if queue.len() >= MAX_QUEUED => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            PendingWrite::RemovePrefix(prefix) => Some(prefix.as_str()),
            PendingWrite::Clear => Some(""),
            PendingWrite::Put(..) | PendingWrite::Remove(_) => None,
        };
        if let Some(prefix) = removed_prefix {
            let mut removing = lock(&self.removing);
            removing.push(PendingRemoval {
                ticket: self.next_removal.fetch_add(1, Ordering::Relaxed),
                prefix: prefix.into(),
            });
            self.removing_any.store(true, Ordering::Release);
        }
        queue.push(write);
    }

    /// Forgets the pending removals with a ticket below `committed_below`: their commit is done.
    fn removals_committed(&self, committed_below: u64) {
        let mut removing = lock(&self.removing);
        removing.retain(|removal| removal.ticket >= committed_below);
        self.removing_any
            .store(!removing.is_empty(), Ordering::Release);
    }

    /// Commits the queued writes in one transaction, then evicts the oldest entries while the
    /// tier holds more than its bound. Returns the writes committed.
    pub(crate) fn flush(&self) -> Result<usize, DiskError> {
        // Taken under the queue's lock, so every removal among `writes` has a ticket below it.
        let (writes, committed_below) = {
            let mut queue = lock(&self.queue);
            (
                std::mem::take(&mut *queue),
                self.next_removal.load(Ordering::Relaxed),
            )
        };
        if writes.is_empty() {
            return Ok(0);
        }
        // A failed commit loses its puts (a cache may), never its removals: they are queued
        // again, and their keys stay misses until one commit takes them.
        let removals: Vec<PendingWrite> = writes
            .iter()
            .filter_map(|write| match write {
                PendingWrite::RemovePrefix(prefix) => {
                    Some(PendingWrite::RemovePrefix(prefix.clone()))
                }
                PendingWrite::Clear => Some(PendingWrite::Clear),
                PendingWrite::Put(..) | PendingWrite::Remove(_) => None,
            })
            .collect();
        match self.commit(writes) {
            Ok(count) => {
                self.removals_committed(committed_below);
                Ok(count)
            }
            Err(e) => {
                lock(&self.queue).splice(0..0, removals);
                Err(e)
            }
        }
    }

    /// Commits `writes` in one transaction, then evicts the oldest entries while the tier holds
    /// more than its bound. Returns the writes committed.
    fn commit(&self, writes: Vec<PendingWrite>) -> Result<usize, DiskError> {
        let count = writes.len();
        let txn = self.db.begin_write().map_err(|e| self.redb_error(e))?;
        {
            let mut table = txn.open_table(ENTRIES).map_err(|e| self.redb_error(e))?;
            for write in writes {
                match write {
                    PendingWrite::Put(key, value) => {
                        let stored = encode(&value);
                        let old = table
                            .insert(key.as_ref(), stored.as_slice())
                            .map_err(|e| self.redb_error(e))?
                            .map(|old| old.value().len() as u64);
                        self.account_put(key.len() as u64, stored.len() as u64, old);
                    }
                    PendingWrite::Remove(key) => {
                        let old = table
                            .remove(key.as_ref())
                            .map_err(|e| self.redb_error(e))?
                            .map(|old| old.value().len() as u64);
                        self.account_remove(key.len() as u64, old);
                    }
                    PendingWrite::RemovePrefix(prefix) => {
                        let mut removed = (0, 0);
                        table
                            .retain(|key, value| {
                                let keep = !key.starts_with(prefix.as_str());
                                if !keep {
                                    removed.0 += 1;
                                    removed.1 += (key.len() + value.len()) as u64;
                                }
                                keep
                            })
                            .map_err(|e| self.redb_error(e))?;
                        self.entries.fetch_sub(
                            removed.0.min(self.entries.load(Ordering::Relaxed)),
                            Ordering::Relaxed,
                        );
                        self.bytes.fetch_sub(
                            removed.1.min(self.bytes.load(Ordering::Relaxed)),
                            Ordering::Relaxed,
                        );
                    }
                    PendingWrite::Clear => {
                        table.retain(|_, _| false).map_err(|e| self.redb_error(e))?;
                        self.entries.store(0, Ordering::Relaxed);
                        self.bytes.store(0, Ordering::Relaxed);
                    }
                }
            }
            if self.bytes.load(Ordering::Relaxed) > self.max_bytes {
                self.evict_oldest(&mut table)?;
            }
        }
        txn.commit().map_err(|e| self.redb_error(e))?;
        self.committed();
        Ok(count)
    }

    fn account_put(&self, key_len: u64, stored_len: u64, old: Option<u64>) {
        match old {
            Some(old) => {
                let now = self.bytes.load(Ordering::Relaxed);
                self.bytes
                    .store((now + stored_len).saturating_sub(old), Ordering::Relaxed);
            }
            None => {
                self.entries.fetch_add(1, Ordering::Relaxed);
                self.bytes
                    .fetch_add(key_len + stored_len, Ordering::Relaxed);
            }
        }
    }

    fn account_remove(&self, key_len: u64, old: Option<u64>) {
        if let Some(old) = old {
            let entries = self.entries.load(Ordering::Relaxed);
            self.entries
                .store(entries.saturating_sub(1), Ordering::Relaxed);
            let bytes = self.bytes.load(Ordering::Relaxed);
            self.bytes
                .store(bytes.saturating_sub(key_len + old), Ordering::Relaxed);
        }
    }

    /// Removes expired entries, then the oldest written, until the tier is at 90% of its bound.
    fn evict_oldest(&self, table: &mut redb::Table<'_, &str, &[u8]>) -> Result<(), DiskError> {
        let now = now_ms();
        let mut ages: Vec<(u64, String, u64)> = Vec::new();
        for row in table.iter().map_err(|e| self.redb_error(e))? {
            let (key, value) = row.map_err(|e| self.redb_error(e))?;
            let (expires_at, written_at) = header(value.value()).unwrap_or((1, 0));
            let age_key = if expires_at != 0 && expires_at <= now {
                0
            } else {
                written_at
            };
            let size = (key.value().len() + value.value().len()) as u64;
            ages.push((age_key, key.value().to_owned(), size));
        }
        ages.sort_unstable();
        let target = self.max_bytes / 10 * 9;
        let mut evicted = 0;
        for (_, key, size) in ages {
            if self.bytes.load(Ordering::Relaxed) <= target {
                break;
            }
            table.remove(key.as_str()).map_err(|e| self.redb_error(e))?;
            self.account_remove(0, Some(size));
            evicted += 1;
        }
        self.counters.evicted(evicted);
        Ok(())
    }

    /// The newest `limit` live entries (warming fills L1 with them).
    pub(crate) fn newest(&self, limit: usize) -> Result<Vec<(Arc<str>, CachedValue)>, DiskError> {
        let read = self.db.begin_read().map_err(|e| self.redb_error(e))?;
        let table = match read.open_table(ENTRIES) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.redb_error(e)),
        };
        let now = now_ms();
        let mut found: Vec<(u64, Arc<str>, CachedValue)> = Vec::new();
        for row in table.iter().map_err(|e| self.redb_error(e))? {
            let (key, stored) = row.map_err(|e| self.redb_error(e))?;
            let Some(value) = decode(stored.value()).filter(|v| !v.expired(now)) else {
                continue;
            };
            let written_at = header(stored.value()).map_or(0, |(_, w)| w);
            found.push((written_at, Arc::from(key.value()), value));
        }
        found.sort_unstable_by_key(|entry| std::cmp::Reverse(entry.0));
        Ok(found
            .into_iter()
            .take(limit)
            .map(|(_, key, value)| (key, value))
            .collect())
    }

    /// Removes expired entries in one transaction (the compaction tick); returns how many.
    pub(crate) fn purge_expired(&self) -> Result<u64, DiskError> {
        let now = now_ms();
        let txn = self.db.begin_write().map_err(|e| self.redb_error(e))?;
        let mut removed = 0;
        {
            let mut table = txn.open_table(ENTRIES).map_err(|e| self.redb_error(e))?;
            table
                .retain(|_, stored| {
                    let expired = header(stored).is_none_or(|(at, _)| at != 0 && at <= now);
                    removed += u64::from(expired);
                    !expired
                })
                .map_err(|e| self.redb_error(e))?;
        }
        txn.commit().map_err(|e| self.redb_error(e))?;
        self.committed();
        if removed > 0 {
            self.recount().map_err(|e| self.redb_error(e))?;
        }
        Ok(removed)
    }

    /// Entries held.
    pub(crate) fn entries(&self) -> u64 {
        self.entries.load(Ordering::Relaxed)
    }

    /// Bytes of keys and stored (compressed) values.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The byte bound.
    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}

fn encode(value: &CachedValue) -> Vec<u8> {
    let compress = value.bytes.len() > COMPRESS_ABOVE;
    let mut stored = Vec::with_capacity(HEADER + value.bytes.len());
    stored.push(if compress { FLAG_DEFLATE } else { 0 });
    stored.extend_from_slice(&value.expires_at_ms.to_le_bytes());
    stored.extend_from_slice(&now_ms().to_le_bytes());
    if compress {
        let mut encoder = DeflateEncoder::new(stored, Compression::fast());
        // Writing into a Vec cannot fail.
        let _ = encoder.write_all(&value.bytes);
        encoder.finish().unwrap_or_default()
    } else {
        stored.extend_from_slice(&value.bytes);
        stored
    }
}

/// `(expires_at, written_at)` of a stored value.
fn header(stored: &[u8]) -> Option<(u64, u64)> {
    let expires = stored.get(1..9)?.try_into().ok().map(u64::from_le_bytes)?;
    let written = stored.get(9..17)?.try_into().ok().map(u64::from_le_bytes)?;
    Some((expires, written))
}

/// A stored value read back; `None` for one that does not decode (treated as a miss).
fn decode(stored: &[u8]) -> Option<CachedValue> {
    let flags = *stored.first()?;
    let (expires_at_ms, _) = header(stored)?;
    let payload = stored.get(HEADER..)?;
    let bytes: Arc<[u8]> = if flags & FLAG_DEFLATE != 0 {
        let mut out = Vec::with_capacity(payload.len() * 4);
        DeflateDecoder::new(payload).read_to_end(&mut out).ok()?;
        out.into()
    } else {
        payload.into()
    };
    Some(CachedValue {
        bytes,
        expires_at_ms,
    })
}
