//! Unit tests of the tiers and of the tiered get and put.

use super::*;
use std::time::Duration;

fn settings(dir: Option<&std::path::Path>) -> CacheSettings {
    CacheSettings {
        l3_path: dir.map(|d| d.join("cache.redb")),
        ..CacheSettings::default()
    }
}

fn bytes(text: &str) -> Arc<[u8]> {
    text.as_bytes().into()
}

#[test]
fn l1_serves_what_was_put_until_it_expires() {
    let tier = memory::MemoryTier::new(100, 1 << 20);
    tier.put(
        Arc::from("a"),
        CachedValue::new(bytes("1"), Duration::from_millis(40)),
    );
    assert_eq!(tier.get("a").map(|v| v.bytes), Some(bytes("1")));
    std::thread::sleep(Duration::from_millis(60));
    assert!(tier.get("a").is_none(), "an expired entry is a miss");
}

#[test]
fn l1_is_bounded_by_entries_and_by_bytes() {
    let tier = memory::MemoryTier::new(10, 1 << 20);
    for n in 0..100 {
        tier.put(
            Arc::from(format!("k{n}")),
            CachedValue::new(bytes("v"), Duration::from_secs(60)),
        );
    }
    assert!(tier.entries() <= 10, "{} entries", tier.entries());
    let tier = memory::MemoryTier::new(1000, 4096);
    for n in 0..100 {
        tier.put(
            Arc::from(format!("k{n}")),
            CachedValue::new(vec![0; 1000].into(), Duration::from_secs(60)),
        );
    }
    assert!(tier.bytes() <= 4096, "{} bytes", tier.bytes());
    assert!(tier.entries() <= 4, "{} entries", tier.entries());
}

#[test]
fn l1_shrinks_by_the_fraction_asked() {
    let tier = memory::MemoryTier::new(1000, 1 << 20);
    for n in 0..100 {
        tier.put(
            Arc::from(format!("k{n}")),
            CachedValue::new(bytes("v"), Duration::from_secs(60)),
        );
    }
    tier.shrink(0.5);
    assert!(tier.entries() <= 50, "{} entries", tier.entries());
}

#[test]
fn l3_keeps_entries_across_reopening_and_compresses_large_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.redb");
    let large: Arc<[u8]> = vec![b'a'; 64 * 1024].into();
    {
        let tier = disk::DiskTier::open(&path, 1 << 30).unwrap();
        tier.queue(disk::PendingWrite::Put(
            Arc::from("big"),
            CachedValue::new(Arc::clone(&large), Duration::from_secs(60)),
        ));
        tier.queue(disk::PendingWrite::Put(
            Arc::from("gone"),
            CachedValue::new(bytes("x"), Duration::from_millis(1)),
        ));
        tier.flush().unwrap();
        assert!(
            tier.bytes() < 4096,
            "64 KiB of one byte compresses: {} bytes stored",
            tier.bytes()
        );
    }
    std::thread::sleep(Duration::from_millis(5));
    let tier = disk::DiskTier::open(&path, 1 << 30).unwrap();
    assert_eq!(tier.entries(), 2);
    assert_eq!(tier.get("big").unwrap().map(|v| v.bytes), Some(large));
    assert!(
        tier.get("gone").unwrap().is_none(),
        "expiry is checked on read"
    );
    assert_eq!(tier.purge_expired().unwrap(), 1);
    assert_eq!(tier.entries(), 1);
}

#[test]
fn l3_reads_see_every_commit_although_they_share_one_read_view() {
    let dir = tempfile::tempdir().unwrap();
    let tier = disk::DiskTier::open(&dir.path().join("cache.redb"), 1 << 30).unwrap();
    assert!(tier.get("k").unwrap().is_none(), "nothing written yet");
    for round in 0..5u8 {
        tier.queue(disk::PendingWrite::Put(
            Arc::from("k"),
            CachedValue::new(vec![round; 8].into(), Duration::from_secs(60)),
        ));
        assert_eq!(
            tier.get("k").unwrap().map(|v| v.bytes[0]),
            round.checked_sub(1),
            "a queued write is not seen before its commit"
        );
        tier.flush().unwrap();
        assert_eq!(tier.get("k").unwrap().map(|v| v.bytes[0]), Some(round));
    }
    tier.queue(disk::PendingWrite::Remove(Arc::from("k")));
    tier.flush().unwrap();
    assert!(tier.get("k").unwrap().is_none(), "a removal is seen");
}

#[test]
fn l3_is_bounded_by_bytes_oldest_out_first() {
    let dir = tempfile::tempdir().unwrap();
    let tier = disk::DiskTier::open(&dir.path().join("cache.redb"), 10_000).unwrap();
    for n in 0..50 {
        tier.queue(disk::PendingWrite::Put(
            Arc::from(format!("k{n:02}")),
            CachedValue::new(vec![n as u8; 1000].into(), Duration::from_secs(60)),
        ));
        tier.flush().unwrap();
    }
    assert!(tier.bytes() <= 10_000, "{} bytes", tier.bytes());
    assert!(tier.get("k49").unwrap().is_some(), "the newest stays");
    assert!(tier.get("k00").unwrap().is_none(), "the oldest went");
}

#[test]
fn a_corrupt_l3_file_is_moved_aside_and_the_tier_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.redb");
    std::fs::write(&path, vec![0xA5; 10_000]).unwrap();
    let tier = disk::DiskTier::open(&path, 1 << 20).unwrap();
    assert_eq!(tier.entries(), 0);
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the corrupt file is kept aside for a look");
}

#[test]
fn a_tiered_get_fills_l1_from_l3() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(settings(Some(dir.path())));
    cache.put("k", bytes("\"v\""), Duration::from_secs(60));
    cache.disk().unwrap().flush().unwrap();
    cache.clear(Some(Tier::L1));
    assert!(cache.l1.get("k").is_none());
    assert_eq!(cache.get("k"), Some(bytes("\"v\"")), "L3 answers");
    assert!(cache.l1.get("k").is_some(), "and L1 is filled");
    let stats = cache.stats();
    let l3 = stats.iter().find(|s| s.tier == Tier::L3).unwrap();
    assert_eq!((l3.entries, l3.hits), (1, 1));
}

#[test]
fn warming_fills_l1_from_the_newest_sound_l3_entries() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cache = Cache::new(settings(Some(dir.path())));
        cache.put("damaged", bytes("{"), Duration::from_secs(60));
        for n in 0..5 {
            cache.put(&format!("k{n}"), bytes("1"), Duration::from_secs(60));
        }
        cache.disk().unwrap().flush().unwrap();
    }
    let cache = Cache::new(settings(Some(dir.path())));
    assert_eq!(cache.warm(3), 3);
    assert_eq!(cache.l1.entries(), 3);
}

#[test]
fn eager_invalidation_empties_every_tier_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(settings(Some(dir.path())));
    cache.put(
        &(tool_prefix("t") + "a"),
        bytes("1"),
        Duration::from_secs(60),
    );
    cache.put(
        &(tool_prefix("u") + "a"),
        bytes("2"),
        Duration::from_secs(60),
    );
    cache.invalidate_prefix(&tool_prefix("t"));
    cache.disk().unwrap().flush().unwrap();
    assert!(cache.get(&(tool_prefix("t") + "a")).is_none());
    assert!(cache.get(&(tool_prefix("u") + "a")).is_some());
    assert_eq!(cache.disk().unwrap().entries(), 1);
}

#[test]
fn an_eager_invalidation_is_a_miss_on_disk_before_its_removal_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(settings(Some(dir.path())));
    let (gone, kept) = (tool_prefix("t") + "a", tool_prefix("u") + "a");
    cache.put(&gone, bytes("1"), Duration::from_secs(60));
    cache.put(&kept, bytes("2"), Duration::from_secs(60));
    cache.disk().unwrap().flush().unwrap();
    cache.invalidate_prefix(&tool_prefix("t"));
    // The removal is only queued: L3's shared view still holds the entry.
    assert!(
        cache.get(&gone).is_none(),
        "an invalidated value came back from L3 before the flush"
    );
    assert!(cache.l1.get(&gone).is_none(), "nor was L1 filled again");
    assert_eq!(cache.get(&kept), Some(bytes("2")), "other keys are served");
    cache.clear(Some(Tier::L1));
    cache.clear(Some(Tier::L2));
    assert_eq!(cache.get(&kept), Some(bytes("2")), "from L3 too");
    cache.disk().unwrap().flush().unwrap();
    assert!(cache.get(&gone).is_none(), "and after it");
    cache.put(&gone, bytes("3"), Duration::from_secs(60));
    cache.disk().unwrap().flush().unwrap();
    cache.clear(Some(Tier::L1));
    cache.clear(Some(Tier::L2));
    assert_eq!(
        cache.get(&gone),
        Some(bytes("3")),
        "a committed removal no longer hides the key's new value"
    );
}

#[test]
fn lazy_invalidation_is_checked_on_read_and_applied_later() {
    let cache = Cache::new(CacheSettings {
        invalidation: Invalidation::Lazy,
        ..settings(None)
    });
    let key = tool_prefix("t") + "a";
    cache.put(&key, bytes("1"), Duration::from_secs(60));
    cache.invalidate_prefix(&tool_prefix("t"));
    assert!(cache.l1.get(&key).is_some(), "still held");
    assert!(cache.get(&key).is_none(), "but never served");
    cache.apply_floors();
    assert!(cache.l1.get(&key).is_none(), "removed once applied");
}

#[test]
fn canonical_json_orders_keys_at_every_level() {
    assert_eq!(
        canonical_json(r#"{ "b": 1, "a": {"d": [ {"z":1,"y":2} ], "c": null} }"#),
        r#"{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}"#
    );
}

#[test]
fn text_already_canonical_is_kept_as_it_is_and_the_rest_is_rewritten() {
    let slow = |text: &str| {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        // serde_json's map is ordered by key: its text is the canonical form.
        value.to_string()
    };
    for text in [
        r#"{"text":"hello"}"#,
        r#"{"a":1,"b":[true,false,null,-12,{"x":"y","z":0}],"c":{}}"#,
        r#"{"n":123456789012345678}"#,
        r#"[]"#,
        r#"{"é":"ü","ü":"é"}"#,
    ] {
        assert!(
            matches!(canonical_json(text), std::borrow::Cow::Borrowed(t) if t == text),
            "{text} is taken as it is"
        );
        assert_eq!(slow(text), text, "and it is the canonical form");
    }
    for text in [
        r#"{"b":1,"a":2}"#,
        r#"{"a":1,"a":2}"#,
        r#"{ "a":1}"#,
        r#"{"a":"\u00e9"}"#,
        r#"{"a":1.0}"#,
        r#"{"a":1e2}"#,
        r#"{"a":-0}"#,
        r#"{"a":1234567890123456789012}"#,
        r#"{"a":[{"d":1,"c":2}]}"#,
        r#"{"a":{"b":1},"a0":{"z":1,"y":2}}"#,
    ] {
        assert!(
            matches!(canonical_json(text), std::borrow::Cow::Owned(_)),
            "{text} is rewritten"
        );
        assert_eq!(canonical_json(text), slow(text), "{text}");
    }
}

#[test]
fn a_damaged_value_on_disk_is_a_miss_and_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(settings(Some(dir.path())));
    cache.put("good", bytes(r#"{"content":[]}"#), Duration::from_secs(60));
    cache.put("bad", bytes("{\"a\":\n1}"), Duration::from_secs(60));
    cache.put("torn", bytes(r#"{"content":["#), Duration::from_secs(60));
    cache.disk().unwrap().flush().unwrap();
    cache.clear(Some(Tier::L1));
    assert!(cache.get("good").is_some());
    assert!(
        cache.get("bad").is_none(),
        "a line break would split the client's frame"
    );
    assert!(cache.get("torn").is_none());
    cache.disk().unwrap().flush().unwrap();
    assert_eq!(
        cache.disk().unwrap().entries(),
        1,
        "the damaged entries are removed"
    );
}

/// An L2 whose every key belongs to another member: records the keys put and the remote gets,
/// and answers a remote get with `answer`.
struct ElsewhereSpy {
    counters: TierCounters,
    answer: Option<&'static str>,
    seen: Arc<Seen>,
}

#[derive(Default)]
struct Seen {
    puts: std::sync::Mutex<Vec<String>>,
    remote_gets: AtomicU64,
}

fn cache_with_l2_elsewhere(answer: Option<&'static str>) -> (Arc<Cache>, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let mut cache = Cache::new(settings(None));
    cache.l2 = Box::new(ElsewhereSpy {
        counters: TierCounters::default(),
        answer,
        seen: Arc::clone(&seen),
    });
    (Arc::new(cache), seen)
}

impl shared::SharedTier for ElsewhereSpy {
    fn get(&self, _key: &str) -> shared::SharedGet {
        shared::SharedGet::Elsewhere("other@127.0.0.1".into())
    }
    fn get_remote(
        &self,
        _owner: String,
        _key: &str,
    ) -> crate::common::BoxFuture<Option<CachedValue>> {
        self.seen.remote_gets.fetch_add(1, Ordering::Relaxed);
        let value = self
            .answer
            .map(|text| CachedValue::new(bytes(text), Duration::from_secs(60)));
        Box::pin(std::future::ready(value))
    }
    fn put(&self, key: &Arc<str>, _value: &CachedValue) {
        self.seen.puts.lock().unwrap().push(key.to_string());
    }
    fn remove_prefix(&self, _prefix: &str) {}
    fn clear(&self) {}
    fn held(&self) -> (u64, u64) {
        (0, 0)
    }
    fn counters(&self) -> &TierCounters {
        &self.counters
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[test]
fn a_private_answer_never_goes_to_l2_and_its_lookup_never_leaves_l1() {
    let (cache, seen) = cache_with_l2_elsewhere(Some("\"shared\""));
    let mine = "tool\u{1f}t\u{1f}v\u{1f}s:abc\u{1f}{}";
    cache.put_private(mine, bytes("1"), Duration::from_secs(60));
    assert!(
        seen.puts.lock().unwrap().is_empty(),
        "a private put stays in L1"
    );
    assert!(matches!(cache.lookup(mine, true), Lookup::Hit(_)));
    let theirs = "tool\u{1f}t\u{1f}v\u{1f}s:xyz\u{1f}{}";
    assert!(matches!(cache.lookup(theirs, true), Lookup::Miss));
    assert_eq!(
        seen.remote_gets.load(Ordering::Relaxed),
        0,
        "a private miss asks no other node"
    );
    // A public put goes to the key's owner.
    cache.put(
        "tool\u{1f}t\u{1f}v\u{1f}pub\u{1f}{}",
        bytes("2"),
        Duration::from_secs(60),
    );
    assert_eq!(seen.puts.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_miss_here_asks_the_owner_and_keeps_a_sound_answer_in_l1() {
    let (cache, seen) = cache_with_l2_elsewhere(Some("{\"a\":1}"));
    let Lookup::Remote(asking) = cache.lookup("k", false) else {
        panic!("a miss on this node asks the key's owner");
    };
    assert_eq!(asking.await, Some(bytes("{\"a\":1}")));
    assert!(
        matches!(cache.lookup("k", false), Lookup::Hit(_)),
        "L1 filled"
    );
    assert_eq!(seen.remote_gets.load(Ordering::Relaxed), 1);

    // What another node sends is checked as L3's bytes are: not JSON, a miss, L1 untouched.
    let (cache, _) = cache_with_l2_elsewhere(Some("not json"));
    let Lookup::Remote(asking) = cache.lookup("k", false) else {
        panic!("a miss on this node asks the key's owner");
    };
    assert_eq!(asking.await, None);
    assert!(matches!(cache.lookup("k", false), Lookup::Remote(_)));
}
