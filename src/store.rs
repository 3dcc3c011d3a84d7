//! Owns the node's state store: ETS-like named tables ([`Table`]: sharded maps that readers use
//! directly, never through a mailbox) kept in memory, made durable by snapshots and a change log
//! between them (`store/files.rs`), restored at start, and the stream of changes a replicating
//! peer subscribes to ([`Store::subscribe`]). The `erlmcp_store` actor (`store/actor.rs`) writes
//! the snapshots on its interval and at a graceful stop. docs/store.md says what a crash loses.
//!
//! A change is appended to the log (and fsynced, with `store.fsync = "always"`) before it is
//! applied and before the call that made it returns: what a caller was told is stored is in the
//! log. Generations: snapshot `g` holds everything written to logs before `g` (and perhaps some
//! of log `g`); a restore reads the newest good snapshot and replays every log from its
//! generation on. The two newest snapshots are kept, and the logs the older one needs.

pub(crate) mod actor;
pub mod bench;
pub(crate) mod files;
pub(crate) mod stats;
pub(crate) mod table;

use crate::config::FsyncPolicy;
use crate::locks::lock;
use crate::log_limit::LogLimiter;
use files::{LogRecord, LogWriter, SnapshotBody};
pub(crate) use stats::{RestoreOutcome, StoreStats, current, install, uninstall};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
pub(crate) use table::{Table, TableFull, Value};

/// How a store keeps its tables.
#[derive(Debug, Clone)]
pub(crate) struct StoreSettings {
    /// Where its files go; `None`: memory only (nothing survives the process).
    pub(crate) dir: Option<PathBuf>,
    /// When a log record is fsynced.
    pub(crate) fsync: FsyncPolicy,
    /// How often the actor writes a snapshot (when something changed).
    pub(crate) snapshot_interval: Duration,
}

impl StoreSettings {
    /// The store of `config` (`[store]`).
    pub(crate) fn of(config: &crate::config::Config) -> Self {
        Self {
            dir: Some(config.store_dir()),
            fsync: config.store.fsync,
            snapshot_interval: Duration::from_millis(config.store.snapshot_interval),
        }
    }

    /// A store in memory only.
    pub(crate) fn in_memory() -> Self {
        Self {
            dir: None,
            fsync: FsyncPolicy::Never,
            snapshot_interval: Duration::from_secs(3600),
        }
    }
}

/// Why a change was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The table is at its bound.
    #[error("store table {table} is full ({max} entries)")]
    Full {
        /// The table.
        table: String,
        /// Its bound.
        max: usize,
    },
    /// The change log could not be written: the change was not made.
    #[error("cannot write the store's change log {path}: {source}")]
    Log {
        /// The log file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A snapshot could not be written.
    #[error("cannot write the store snapshot {path}: {reason}")]
    Snapshot {
        /// The snapshot file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// One change, as the replication hook delivers it.
#[derive(Debug, Clone)]
pub struct StoreChange {
    /// Its place in the order of the store's changes (from 1 at each start).
    pub seq: u64,
    /// The table.
    pub table: Arc<str>,
    /// The key.
    pub key: String,
    /// The new value; `None`: deleted.
    pub value: Option<Arc<[u8]>>,
}

/// Changes a subscriber may fall behind by before it is told it lagged.
const CHANGE_STREAM_CAPACITY: usize = 4096;

/// The change log being written, and its generation.
#[derive(Debug)]
struct Journal {
    generation: u64,
    /// Opened at the first change of the generation: a node that stores nothing writes nothing.
    writer: Option<LogWriter>,
}

/// The state store.
pub struct Store {
    tables: RwLock<HashMap<String, Arc<Table>>>,
    settings: StoreSettings,
    /// Held while a change is checked, logged, applied and announced, so the log's order, the
    /// tables' order and the change stream's order are one (without a directory nothing is
    /// logged).
    journal: Mutex<Journal>,
    changes: tokio::sync::broadcast::Sender<StoreChange>,
    /// Someone subscribed once: until then a change is not even offered to the stream (asking
    /// the stream how many listen takes its lock).
    subscribed: std::sync::atomic::AtomicBool,
    /// Changes since the start (the last one's seq).
    seq: AtomicU64,
    /// `seq` when the last snapshot was cut.
    snapshot_seq: AtomicU64,
    /// One snapshot at a time (the interval's and the graceful stop's).
    snapshotting: Mutex<()>,
    refused: LogLimiter,
    /// Snapshots written since the start.
    snapshots_written: AtomicU64,
    /// What the restore at the start found (shown by `remote store`).
    restored: RestoreOutcome,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.settings.dir)
            .field("seq", &self.seq.load(Ordering::Relaxed))
            .finish()
    }
}

impl Store {
    /// Opens the store: with a directory, restores its newest good snapshot and replays the
    /// change logs after it (a refused file is logged with its name and why, and the previous
    /// snapshot used); then, if log records were replayed, writes a fresh snapshot, so the next
    /// start reads one file. Never fails: the node starts with what could be read.
    pub(crate) fn open(settings: StoreSettings) -> Arc<Self> {
        let (changes, _) = tokio::sync::broadcast::channel(CHANGE_STREAM_CAPACITY);
        let mut store = Self {
            tables: RwLock::new(HashMap::new()),
            journal: Mutex::new(Journal {
                generation: 0,
                writer: None,
            }),
            settings,
            changes,
            subscribed: std::sync::atomic::AtomicBool::new(false),
            seq: AtomicU64::new(0),
            snapshot_seq: AtomicU64::new(0),
            snapshotting: Mutex::new(()),
            refused: LogLimiter::per_second(),
            snapshots_written: AtomicU64::new(0),
            restored: RestoreOutcome::default(),
        };
        let Some(dir) = store.settings.dir.clone() else {
            return Arc::new(store);
        };
        let (newest, outcome) = store.restore(&dir);
        let replayed = outcome.replayed;
        store.restored = outcome;
        store.journal = Mutex::new(Journal {
            generation: newest + 1,
            writer: None,
        });
        let store = Arc::new(store);
        if replayed > 0 {
            if let Err(e) = store.write_snapshot(true) {
                tracing::error!(error = %e, "store: cannot write the snapshot after the restore");
            }
        }
        store
    }

    /// Loads what `dir` holds into the tables; returns the newest generation seen and what was
    /// restored (the snapshot, how many log records were replayed, the files refused).
    fn restore(&self, dir: &Path) -> (u64, RestoreOutcome) {
        let mut outcome = RestoreOutcome::default();
        let listing = files::list(dir);
        let newest = listing
            .snapshots
            .iter()
            .chain(listing.logs.iter())
            .map(|(generation, _)| *generation)
            .max()
            .unwrap_or(0);
        let mut base = None;
        for (generation, path) in listing.snapshots.iter().rev() {
            match files::read_snapshot(path) {
                Ok(body) => {
                    base = Some((*generation, body, path));
                    break;
                }
                Err(reason) => {
                    tracing::error!(
                        file = %path.display(),
                        %reason,
                        "store snapshot refused: {} ({reason}); trying the previous one; \
                         the file is kept beside as .refused",
                        path.display()
                    );
                    outcome.refused.push(path.display().to_string());
                    let _ = std::fs::rename(path, path.with_extension("refused"));
                }
            }
        }
        let from = match &base {
            Some((generation, body, path)) => {
                for (name, entries) in &body.tables {
                    let table = self.table(name);
                    for (key, value) in entries {
                        let _ = table.put(key, Arc::from(value.as_slice()));
                    }
                }
                tracing::info!(file = %path.display(), "store snapshot restored");
                outcome.snapshot = Some(path.display().to_string());
                *generation
            }
            None => {
                if !listing.snapshots.is_empty() {
                    tracing::error!(
                        dir = %dir.display(),
                        "no store snapshot could be read: restoring from the change logs alone"
                    );
                }
                0
            }
        };
        let mut replayed = 0;
        for (generation, path) in listing.logs.iter().filter(|(g, _)| *g >= from) {
            let contents = match files::read_log(path) {
                Ok(contents) => contents,
                Err(reason) => {
                    tracing::error!(file = %path.display(), %reason, "store change log refused: {} ({reason})", path.display());
                    outcome.refused.push(path.display().to_string());
                    continue;
                }
            };
            replayed += contents.records.len();
            for record in &contents.records {
                let table = self.table(&record.table);
                match &record.value {
                    Some(value) => {
                        let _ = table.put(&record.key, Arc::from(value.as_slice()));
                    }
                    None => {
                        table.delete(&record.key);
                    }
                }
            }
            if let Some((offset, reason)) = contents.stopped {
                tracing::warn!(
                    file = %path.display(),
                    offset,
                    %reason,
                    records = contents.records.len(),
                    "store change log {} ends in a torn or corrupt record at byte {offset} ({reason}): \
                     replayed the {} whole records before it (generation {generation})",
                    path.display(),
                    contents.records.len()
                );
            }
        }
        let restored: usize = self.tables().iter().map(|(_, t)| t.len()).sum();
        if restored > 0 {
            tracing::info!(entries = restored, replayed, dir = %dir.display(), "store restored");
        }
        outcome.replayed = replayed;
        (newest, outcome)
    }

    /// The table `name`, made empty if it did not exist. Reads go to it directly.
    pub(crate) fn table(&self, name: &str) -> Arc<Table> {
        if let Some(table) = self
            .tables
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Arc::clone(table);
        }
        let mut tables = self.tables.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(tables.entry(name.to_owned()).or_default())
    }

    /// Every table, by name.
    fn tables(&self) -> Vec<(String, Arc<Table>)> {
        let tables = self.tables.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> = tables
            .iter()
            .map(|(name, table)| (name.clone(), Arc::clone(table)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Puts `value` under `key` in `table`: logged (and fsynced per `store.fsync`) before it is
    /// applied and before this returns.
    pub(crate) fn put(&self, table: &str, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.change(table, key, Some(Arc::from(value)))
    }

    /// Puts each of `entries` in `table`, logged together with one fsync (at most; none with
    /// `store.fsync = "never"`). Entries past the table's bound are left out.
    pub(crate) fn put_batch(
        &self,
        table: &str,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let target = self.table(table);
        let entries: Vec<(String, Value)> = entries
            .into_iter()
            .filter(|(key, _)| target.check_room(key).is_ok())
            .map(|(key, value)| (key, Arc::from(value)))
            .collect();
        let mut journal = lock(&self.journal);
        let last = entries.len().saturating_sub(1);
        for (i, (key, value)) in entries.iter().enumerate() {
            self.log(&mut journal, table, key, Some(value), i == last)?;
        }
        for (key, value) in entries {
            let _ = target.put(&key, Arc::clone(&value));
            self.announce(table, key, Some(value));
        }
        drop(journal);
        Ok(())
    }

    /// Deletes each of `keys` from `table`, logged together with one fsync at most.
    pub(crate) fn delete_batch(&self, table: &str, keys: Vec<String>) -> Result<(), StoreError> {
        let target = self.table(table);
        let keys: Vec<String> = keys.into_iter().filter(|k| target.contains(k)).collect();
        let mut journal = lock(&self.journal);
        let last = keys.len().saturating_sub(1);
        for (i, key) in keys.iter().enumerate() {
            self.log(&mut journal, table, key, None, i == last)?;
        }
        for key in keys {
            if target.delete(&key) {
                self.announce(table, key, None);
            }
        }
        drop(journal);
        Ok(())
    }

    /// Deletes `key` from `table` (logged like a put, when it was there).
    pub(crate) fn delete(&self, table: &str, key: &str) -> Result<(), StoreError> {
        if !self.table(table).contains(key) {
            return Ok(());
        }
        self.change(table, key, None)
    }

    /// Checks the bound, logs the change, applies it, and tells subscribers, under the journal
    /// lock: a refused put is never logged, and subscribers hear changes in the log's order.
    fn change(&self, table: &str, key: &str, value: Option<Value>) -> Result<(), StoreError> {
        let target = self.table(table);
        let full = |TableFull(max)| StoreError::Full {
            table: table.to_owned(),
            max,
        };
        let mut journal = lock(&self.journal);
        if value.is_some() {
            target.check_room(key).map_err(full)?;
        }
        self.log(&mut journal, table, key, value.as_ref(), true)?;
        let changed = match &value {
            Some(value) => target
                .put(key, Arc::clone(value))
                .map_err(full)
                .map(|()| true)?,
            None => target.delete(key),
        };
        if changed {
            self.announce(table, key.to_owned(), value);
        }
        drop(journal);
        Ok(())
    }

    /// Counts a change made and tells the subscribers (the replication hook).
    fn announce(&self, table: &str, key: String, value: Option<Value>) {
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        if self.subscribed.load(Ordering::Acquire) {
            let _ = self.changes.send(StoreChange {
                seq,
                table: Arc::from(table),
                key,
                value,
            });
        }
    }

    fn log(
        &self,
        journal: &mut Journal,
        table: &str,
        key: &str,
        value: Option<&Value>,
        last_of_batch: bool,
    ) -> Result<(), StoreError> {
        let Some(dir) = self.settings.dir.as_deref() else {
            return Ok(());
        };
        let sync = self.settings.fsync == FsyncPolicy::Always;
        let sync_record = sync && last_of_batch;
        let path = || files::log_path(dir, journal.generation);
        let failed = |source: std::io::Error| {
            if let Some(held) = self.refused.allow() {
                tracing::error!(file = %path().display(), error = %source, not_logged = held, "store: cannot write the change log; the change is refused");
            }
            StoreError::Log {
                path: path(),
                source,
            }
        };
        if journal.writer.is_none() {
            journal.writer =
                Some(LogWriter::create(dir, journal.generation, sync).map_err(failed)?);
        }
        let record = LogRecord {
            table: table.to_owned(),
            key: key.to_owned(),
            value: value.map(|v| v.to_vec()),
        };
        if let Some(writer) = journal.writer.as_mut() {
            writer.append(&record, sync_record).map_err(failed)?;
        }
        Ok(())
    }

    /// The stream of changes from now on: the replication hook. A subscriber that falls more
    /// than a few thousand changes behind is told how many it missed (`Lagged`).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StoreChange> {
        // Under the journal lock, so no change falls between the flag and the receiver.
        let _journal = lock(&self.journal);
        let receiver = self.changes.subscribe();
        self.subscribed.store(true, Ordering::Release);
        receiver
    }

    /// How often the actor writes a snapshot.
    pub(crate) fn snapshot_interval(&self) -> Duration {
        self.settings.snapshot_interval
    }

    /// Writes a snapshot if anything changed since the last: the log is cut (new changes go to
    /// the next generation's), the tables written, and the files no longer needed removed.
    /// Returns the snapshot's path, `None` if there was nothing to write. Blocking I/O.
    pub(crate) fn snapshot(&self) -> Result<Option<PathBuf>, StoreError> {
        self.write_snapshot(false)
    }

    /// [`Store::snapshot`]; with `always`, even if nothing changed since the last.
    fn write_snapshot(&self, always: bool) -> Result<Option<PathBuf>, StoreError> {
        let _one = lock(&self.snapshotting);
        let Some(dir) = self.settings.dir.as_deref() else {
            return Ok(None);
        };
        let journal = &self.journal;
        let seq = self.seq.load(Ordering::Acquire);
        if !always && seq == self.snapshot_seq.load(Ordering::Acquire) {
            return Ok(None);
        }
        let generation = {
            let mut journal = lock(journal);
            journal.generation += 1;
            journal.writer = None;
            journal.generation
        };
        let path = files::snapshot_path(dir, generation);
        let failed = |reason: String| StoreError::Snapshot {
            path: path.clone(),
            reason,
        };
        let bytes = files::encode_snapshot(&self.body()).map_err(failed)?;
        files::write_snapshot(dir, generation, &bytes).map_err(|e| failed(e.to_string()))?;
        self.snapshot_seq.store(seq, Ordering::Release);
        self.snapshots_written.fetch_add(1, Ordering::Relaxed);
        prune(dir, generation);
        tracing::debug!(file = %path.display(), bytes = bytes.len(), "store snapshot written");
        Ok(Some(path))
    }

    /// The tables' contents, as a snapshot holds them.
    fn body(&self) -> SnapshotBody {
        SnapshotBody {
            tables: self
                .tables()
                .into_iter()
                .map(|(name, table)| {
                    let mut entries = Vec::with_capacity(table.len());
                    table.scan(|key, value| entries.push((key.to_owned(), value.to_vec())));
                    (name, entries)
                })
                .collect(),
        }
    }
}

/// Removes what a restore no longer needs once snapshot `newest` is written: snapshots before
/// the previous one, and the logs before the previous one's generation.
fn prune(dir: &Path, newest: u64) {
    let listing = files::list(dir);
    let previous = listing
        .snapshots
        .iter()
        .map(|(generation, _)| *generation)
        .filter(|generation| *generation < newest)
        .max()
        .unwrap_or(newest);
    for (generation, path) in listing.snapshots.iter().chain(listing.logs.iter()) {
        if *generation < previous {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests;
