//! Owns the shell's `store` command: each table of the state store with its entries, bound and
//! changes since the start; its files (directory, last snapshot, change-log bytes, fsync
//! setting, snapshots written); and what the restore at the start found.

use super::{Answer, to_json};
use serde_json::json;
use std::fmt::Write as _;

pub(super) fn store(args: &[&str]) -> Result<Answer, String> {
    if !args.is_empty() {
        return Err("usage: store".to_owned());
    }
    let Some(store) = crate::store::current() else {
        return Ok(Answer::new(
            "no state store: the tree is not running".to_owned(),
            json!(null),
        ));
    };
    let stats = store.stats();
    let mut text = format!(
        "{:<24} {:>10} {:>10} {:>12}\n",
        "TABLE", "ENTRIES", "BOUND", "CHANGES"
    );
    for t in &stats.tables {
        let bound = if t.bound == 0 {
            "-".to_owned()
        } else {
            t.bound.to_string()
        };
        let _ = writeln!(
            text,
            "{:<24} {:>10} {:>10} {:>12}",
            t.name, t.entries, bound, t.changes
        );
    }
    let _ = writeln!(
        text,
        "dir: {}",
        stats.dir.as_deref().unwrap_or("(memory only)")
    );
    match &stats.last_snapshot {
        Some(s) => {
            let _ = writeln!(
                text,
                "last snapshot: {} ({} bytes, {:.0}s ago)",
                s.file, s.bytes, s.age_seconds
            );
        }
        None => text.push_str("last snapshot: none\n"),
    }
    let _ = writeln!(
        text,
        "change log: {} bytes; fsync: {}; snapshots written since start: {}; changes since start: {}",
        stats.log_bytes,
        to_json(&stats.fsync).as_str().unwrap_or("?"),
        stats.snapshots_written,
        stats.changes
    );
    let restore = &stats.restore;
    let _ = write!(
        text,
        "restored at start from: {}; log records replayed: {}; files refused: {}",
        restore.snapshot.as_deref().unwrap_or("(no snapshot)"),
        restore.replayed,
        if restore.refused.is_empty() {
            "none".to_owned()
        } else {
            restore.refused.join(", ")
        }
    );
    Ok(Answer::new(text, to_json(&stats)))
}
