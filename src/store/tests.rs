//! The store's tests: restore from snapshot and log, refusal of damaged files, the change stream.

use super::*;

fn settings(dir: &Path, fsync: FsyncPolicy) -> StoreSettings {
    StoreSettings {
        dir: Some(dir.to_owned()),
        fsync,
        snapshot_interval: Duration::from_secs(3600),
    }
}

fn value(store: &Store, table: &str, key: &str) -> Option<Vec<u8>> {
    store.table(table).get(key).map(|v| v.to_vec())
}

#[test]
fn a_snapshot_round_trips_through_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(settings(dir.path(), FsyncPolicy::Always));
        store.put("t", "a", b"1".to_vec()).unwrap();
        store.put("u", "b", vec![2; 5000]).unwrap();
        assert!(store.snapshot().unwrap().is_some());
        assert!(
            store.snapshot().unwrap().is_none(),
            "nothing changed: no second snapshot"
        );
    }
    let store = Store::open(settings(dir.path(), FsyncPolicy::Always));
    assert_eq!(value(&store, "t", "a"), Some(b"1".to_vec()));
    assert_eq!(value(&store, "u", "b"), Some(vec![2; 5000]));
}

#[test]
fn changes_after_the_snapshot_are_replayed_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(settings(dir.path(), FsyncPolicy::Never));
        store.put("t", "a", b"1".to_vec()).unwrap();
        store.put("t", "gone", b"x".to_vec()).unwrap();
        store.snapshot().unwrap();
        store.put("t", "a", b"2".to_vec()).unwrap();
        store.put("t", "b", b"3".to_vec()).unwrap();
        store.delete("t", "gone").unwrap();
        // Dropped without a snapshot: as a kill -9 would leave it.
    }
    let store = Store::open(settings(dir.path(), FsyncPolicy::Never));
    assert_eq!(value(&store, "t", "a"), Some(b"2".to_vec()));
    assert_eq!(value(&store, "t", "b"), Some(b"3".to_vec()));
    assert_eq!(value(&store, "t", "gone"), None);
}

#[test]
fn a_corrupt_or_truncated_snapshot_falls_back_to_the_previous_one() {
    for damage in ["corrupt", "truncated"] {
        let dir = tempfile::tempdir().unwrap();
        let newest = {
            let store = Store::open(settings(dir.path(), FsyncPolicy::Always));
            store.put("t", "a", b"1".to_vec()).unwrap();
            store.snapshot().unwrap();
            store.put("t", "b", b"2".to_vec()).unwrap();
            store.snapshot().unwrap().unwrap()
        };
        let listing = files::list(dir.path());
        assert_eq!(listing.snapshots.len(), 2, "the two newest are kept");
        let mut bytes = std::fs::read(&newest).unwrap();
        if damage == "corrupt" {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x55;
        } else {
            bytes.truncate(bytes.len() - 3);
        }
        std::fs::write(&newest, bytes).unwrap();
        let store = Store::open(settings(dir.path(), FsyncPolicy::Always));
        assert_eq!(value(&store, "t", "a"), Some(b"1".to_vec()), "{damage}");
        assert_eq!(
            value(&store, "t", "b"),
            Some(b"2".to_vec()),
            "{damage}: the previous snapshot plus the logs after it hold everything"
        );
    }
}

#[test]
fn a_torn_log_tail_keeps_the_whole_records_before_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(settings(dir.path(), FsyncPolicy::Always));
        store.put("t", "a", b"1".to_vec()).unwrap();
        store.put("t", "b", b"2".to_vec()).unwrap();
    }
    let listing = files::list(dir.path());
    let (_, log) = listing.logs.last().unwrap();
    let bytes = std::fs::read(log).unwrap();
    std::fs::write(log, &bytes[..bytes.len() - 1]).unwrap();
    let store = Store::open(settings(dir.path(), FsyncPolicy::Always));
    assert_eq!(value(&store, "t", "a"), Some(b"1".to_vec()));
    assert_eq!(value(&store, "t", "b"), None, "the torn record is dropped");
    // The restore wrote a snapshot: the torn log is never appended to.
    store.put("t", "c", b"3".to_vec()).unwrap();
    drop(store);
    let store = Store::open(settings(dir.path(), FsyncPolicy::Always));
    assert_eq!(value(&store, "t", "a"), Some(b"1".to_vec()));
    assert_eq!(value(&store, "t", "c"), Some(b"3".to_vec()));
}

#[test]
fn a_store_that_stores_nothing_writes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("data");
    let store = Store::open(settings(&dir, FsyncPolicy::Always));
    assert!(store.snapshot().unwrap().is_none());
    assert!(store.table("t").get("x").is_none());
    assert!(!dir.exists());
}

#[test]
fn a_bounded_table_refuses_a_new_key_without_logging_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(settings(dir.path(), FsyncPolicy::Never));
        store.table("t").bound(1);
        store.put("t", "a", b"1".to_vec()).unwrap();
        assert!(matches!(
            store.put("t", "b", b"2".to_vec()),
            Err(StoreError::Full { max: 1, .. })
        ));
    }
    let store = Store::open(settings(dir.path(), FsyncPolicy::Never));
    assert_eq!(store.table("t").len(), 1);
}

#[tokio::test]
async fn the_replication_hook_sees_every_change_in_order() {
    let store = Store::open(StoreSettings::in_memory());
    let mut changes = store.subscribe();
    store.put("t", "a", b"1".to_vec()).unwrap();
    store.delete("t", "a").unwrap();
    store.delete("t", "a").unwrap(); // nothing there: no change
    store.put("u", "b", b"2".to_vec()).unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let change = changes.recv().await.unwrap();
        seen.push((
            change.seq,
            change.table.to_string(),
            change.key,
            change.value.map(|v| v.to_vec()),
        ));
    }
    assert_eq!(
        seen,
        vec![
            (1, "t".into(), "a".into(), Some(b"1".to_vec())),
            (2, "t".into(), "a".into(), None),
            (3, "u".into(), "b".into(), Some(b"2".to_vec())),
        ]
    );
    assert!(changes.try_recv().is_err());
}

#[test]
fn the_change_stream_counts_from_1_after_a_restore_too() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(settings(dir.path(), FsyncPolicy::Never))
        .put("t", "a", b"1".to_vec())
        .unwrap();
    let store = Store::open(settings(dir.path(), FsyncPolicy::Never));
    assert_eq!(
        files::list(dir.path()).snapshots.len(),
        1,
        "the replayed log was snapshotted"
    );
    let mut changes = store.subscribe();
    store.put("t", "b", b"2".to_vec()).unwrap();
    assert_eq!(changes.try_recv().unwrap().seq, 1);
}

#[test]
fn subscribers_hear_concurrent_writes_in_the_order_the_table_took_them() {
    let store = Store::open(StoreSettings::in_memory());
    let mut changes = store.subscribe();
    let writers: Vec<_> = (0..4u8)
        .map(|w| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..200u8 {
                    store.put("t", "k", vec![w, i]).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let mut last = None;
    let mut seqs = Vec::new();
    while let Ok(change) = changes.try_recv() {
        seqs.push(change.seq);
        last = change.value.map(|v| v.to_vec());
    }
    assert_eq!(seqs, (1..=800).collect::<Vec<u64>>());
    assert_eq!(
        last,
        store.table("t").get("k").map(|v| v.to_vec()),
        "a replica applying the stream ends where the table ends"
    );
}

#[test]
fn a_batch_delete_is_logged_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(settings(dir.path(), FsyncPolicy::Always));
        for key in ["a", "b", "c"] {
            store.put("t", key, b"1".to_vec()).unwrap();
        }
        store
            .delete_batch("t", vec!["a".into(), "c".into(), "absent".into()])
            .unwrap();
    }
    let store = Store::open(settings(dir.path(), FsyncPolicy::Always));
    let table = store.table("t");
    assert_eq!(table.len(), 1);
    assert!(table.get("b").is_some());
}

#[test]
fn stats_show_the_tables_the_files_and_what_the_restore_found() {
    let dir = tempfile::tempdir().unwrap();
    let newest = {
        let store = Store::open(settings(dir.path(), FsyncPolicy::Always));
        store.table("t").bound(10);
        store.put("t", "a", b"1".to_vec()).unwrap();
        store.snapshot().unwrap();
        store.put("t", "b", b"2".to_vec()).unwrap();
        let newest = store.snapshot().unwrap().unwrap();
        store.put("t", "c", b"3".to_vec()).unwrap();
        let stats = store.stats();
        assert_eq!(stats.tables.len(), 1);
        let t = &stats.tables[0];
        assert_eq!(
            (t.name.as_str(), t.entries, t.bound, t.changes),
            ("t", 3, 10, 3)
        );
        assert_eq!((stats.changes, stats.snapshots_written), (3, 2));
        let last = stats.last_snapshot.expect("a snapshot on disk");
        assert_eq!(last.file, newest.display().to_string());
        assert!(last.bytes > 0);
        assert!(
            stats.log_bytes > 0,
            "the change after the snapshot is logged"
        );
        assert_eq!(stats.fsync, FsyncPolicy::Always);
        assert!(stats.restore.snapshot.is_none() && stats.restore.refused.is_empty());
        newest
    };
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&newest, bytes).unwrap();
    let store = Store::open(settings(dir.path(), FsyncPolicy::Always));
    let restore = store.stats().restore;
    assert_eq!(restore.refused, vec![newest.display().to_string()]);
    let from = restore.snapshot.expect("the previous snapshot");
    assert_ne!(from, newest.display().to_string());
    assert_eq!(
        restore.replayed, 2,
        "b and c, from the logs after the previous snapshot"
    );
    assert_eq!(store.stats().tables[0].entries, 3);
}

#[test]
fn a_memory_only_store_has_no_files_to_show() {
    let store = Store::open(StoreSettings::in_memory());
    store.put("t", "a", b"1".to_vec()).unwrap();
    let stats = store.stats();
    assert!(stats.dir.is_none() && stats.last_snapshot.is_none());
    assert_eq!((stats.log_bytes, stats.tables[0].entries), (0, 1));
}

#[test]
fn the_store_bench_measures_every_figure_beside_redb() {
    let dir = tempfile::tempdir().unwrap();
    let figures =
        super::bench::snapshot_figures(dir.path(), "bench", 300, |i| vec![i as u8; 64]).unwrap();
    assert_eq!(figures.entries, 300);
    assert_eq!(figures.value_bytes, 64);
    for (name, figure) in [
        ("logged puts", figures.logged_puts_per_sec),
        ("fsynced puts", figures.fsynced_puts_per_sec),
        ("redb unsynced puts", figures.redb_unsynced_puts_per_sec),
        ("redb fsynced puts", figures.redb_fsynced_puts_per_sec),
        ("snapshot ms", figures.snapshot_ms),
        ("restore ms", figures.restore_ms),
    ] {
        assert!(figure > 0.0, "{name}: {figure}");
    }
    assert!(figures.snapshot_bytes > 0);
    assert!(
        !dir.path().join("bench-redb-compare.redb").exists(),
        "the redb side's file is removed"
    );
    let restored = Store::open(settings(dir.path(), FsyncPolicy::Never));
    assert_eq!(restored.table("bench").len(), 300, "the directory restores");
}
