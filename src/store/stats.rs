//! Owns what the shell (`remote store`), `/metrics` and `/api/state` see of the state store:
//! each table's entries, bound and changes, the files (snapshot, change log, fsync setting) and
//! the restore at the start; and the node's store, found without a mailbox while a tree runs.

use super::{Store, files};
use arc_swap::ArcSwapOption;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What the restore at the start found.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct RestoreOutcome {
    /// The snapshot restored from; `None`: none read (none there, or a memory-only store).
    pub(crate) snapshot: Option<String>,
    /// Change-log records replayed after it.
    pub(crate) replayed: usize,
    /// Files refused (damaged), by path.
    pub(crate) refused: Vec<String>,
}

/// One table's figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TableStats {
    pub(crate) name: String,
    pub(crate) entries: usize,
    /// 0: no bound.
    pub(crate) bound: usize,
    /// Puts and deletes that removed something, since the start.
    pub(crate) changes: u64,
}

/// The newest snapshot on disk.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SnapshotFile {
    pub(crate) file: String,
    pub(crate) bytes: u64,
    /// Seconds since it was written (by its modification time).
    pub(crate) age_seconds: f64,
}

/// The store's figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StoreStats {
    pub(crate) tables: Vec<TableStats>,
    /// `None`: memory only.
    pub(crate) dir: Option<String>,
    pub(crate) fsync: crate::config::FsyncPolicy,
    pub(crate) last_snapshot: Option<SnapshotFile>,
    /// Bytes of the change logs on disk (those a restore would replay, and the previous ones kept).
    pub(crate) log_bytes: u64,
    pub(crate) snapshots_written: u64,
    /// Changes since the start, all tables together.
    pub(crate) changes: u64,
    pub(crate) restore: RestoreOutcome,
}

impl Store {
    /// The store's figures: read from the tables' counters and the directory's listing (no
    /// mailbox, no lock a change holds).
    pub(crate) fn stats(&self) -> StoreStats {
        let tables = self
            .tables()
            .into_iter()
            .map(|(name, table)| TableStats {
                name,
                entries: table.len(),
                bound: table.max_entries(),
                changes: table.changes(),
            })
            .collect();
        let dir = self.settings.dir.as_deref();
        let listing = dir.map(files::list).unwrap_or_default();
        let last_snapshot = listing.snapshots.last().and_then(|(_, path)| {
            let meta = std::fs::metadata(path).ok()?;
            let age = meta
                .modified()
                .ok()
                .and_then(|at| at.elapsed().ok())
                .unwrap_or_default();
            Some(SnapshotFile {
                file: path.display().to_string(),
                bytes: meta.len(),
                age_seconds: age.as_secs_f64(),
            })
        });
        let log_bytes = listing
            .logs
            .iter()
            .filter_map(|(_, path)| std::fs::metadata(path).ok())
            .map(|meta| meta.len())
            .sum();
        StoreStats {
            tables,
            dir: dir.map(|d| d.display().to_string()),
            fsync: self.settings.fsync,
            last_snapshot,
            log_bytes,
            snapshots_written: self.snapshots_written.load(Ordering::Relaxed),
            changes: self.seq.load(Ordering::Relaxed),
            restore: self.restored.clone(),
        }
    }
}

/// The node's store, for the shell and the metrics (one per process, as the tree is).
static CURRENT: ArcSwapOption<Store> = ArcSwapOption::const_empty();

/// Makes `store` the node's store (the tree's start).
pub(crate) fn install(store: Arc<Store>) {
    CURRENT.store(Some(store));
}

/// Forgets the node's store (the tree's stop).
pub(crate) fn uninstall() {
    CURRENT.store(None);
}

/// The node's store, while a tree runs.
pub(crate) fn current() -> Option<Arc<Store>> {
    CURRENT.load_full()
}
