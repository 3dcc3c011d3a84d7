//! Owns the node's result cache: three tiers behind one tiered get and put.
//!
//! - L1 ([`memory`]): in memory, per node (quick_cache), bounded by entries and bytes, each entry
//!   expiring at its own time; read and written on the request path directly, never through a mailbox.
//! - L2 ([`shared`]): the tier shared between nodes — an interface, a single-node stand-in, and
//!   the clustered tier ([`clustered`]): each key held by its owner on the cluster's ring, asked
//!   with a short deadline when that is another node.
//! - L3 ([`disk`]): on local disk (`cache.redb` in the node's data directory), bounded by bytes,
//!   persistent across restarts; writes are queued and committed in batches by its actor.
//!
//! A get looks in L1, then L2 when this node owns the key, then L3, then (without blocking:
//! [`Cache::lookup`] gives a future) the key's owner when that is another member; it fills the
//! tiers above the one that answered. A put
//! writes every tier. Invalidation is `eager` (removed from every tier at once) or `lazy` (a
//! floor recorded at once, checked on every read, the entries removed by the tiers' actors
//! later). Each tier has an actor under `erlmcp_cache_sup` ([`actor`]): statistics, warming L1
//! from L3 after `cache.warmup_delay`, committing L3's writes, compaction (expired entries out),
//! and shrinking when the memory guard asks ([`shrink_on_memory_pressure`]).
//!
//! The cache is a cache: nothing acknowledged to a client lives only here, so losing any tier
//! (a crash, a corrupt file moved aside, `cache clear`) costs recomputation, never data.

pub(crate) mod actor;
pub(crate) mod bench;
pub(crate) mod clustered;
pub(crate) mod disk;
pub(crate) mod memory;
pub(crate) mod shared;

use arc_swap::ArcSwapOption;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub(crate) use bench::bench_pairs;

/// A cached value: its bytes and when it expires.
#[derive(Debug, Clone)]
pub(crate) struct CachedValue {
    pub(crate) bytes: Arc<[u8]>,
    /// Unix time in milliseconds after which it is stale; 0: never.
    pub(crate) expires_at_ms: u64,
}

impl CachedValue {
    /// `bytes`, fresh for `ttl` from now.
    pub(crate) fn new(bytes: Arc<[u8]>, ttl: Duration) -> Self {
        Self {
            bytes,
            expires_at_ms: now_ms().saturating_add(ttl.as_millis() as u64),
        }
    }

    /// Whether it is stale at `now` (unix ms).
    pub(crate) fn expired(&self, now: u64) -> bool {
        self.expires_at_ms != 0 && self.expires_at_ms <= now
    }
}

/// Unix time in milliseconds, coarse (the tick's resolution is far below any TTL). Wall time, not
/// monotonic: L3's expiries must mean the same after a restart.
pub(crate) use crate::clock::wall_ms as now_ms;

/// A tier's lookups and evictions.
#[derive(Debug, Default)]
pub(crate) struct TierCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

impl TierCounters {
    pub(crate) fn looked_up(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn evicted(&self, n: u64) {
        self.evictions.fetch_add(n, Ordering::Relaxed);
    }
}

/// One of the three tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Tier {
    /// In memory, this node.
    L1,
    /// Shared between nodes (a single-node stand-in for now).
    L2,
    /// On this node's disk.
    L3,
}

impl std::str::FromStr for Tier {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "l1" => Ok(Tier::L1),
            "l2" => Ok(Tier::L2),
            "l3" => Ok(Tier::L3),
            other => Err(format!("no cache tier `{other}` (l1, l2 or l3)")),
        }
    }
}

pub(crate) use crate::config::CacheInvalidation as Invalidation;

/// One tier's figures (`erlmcp remote cache`, `/metrics`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct TierStats {
    /// Which tier.
    pub(crate) tier: Tier,
    /// Entries held.
    pub(crate) entries: u64,
    /// Bytes held (L1: the weight, at least a slot per entry; L3: keys and stored values).
    pub(crate) bytes: u64,
    /// The tier's byte bound (0: none).
    pub(crate) max_bytes: u64,
    /// Lookups answered.
    pub(crate) hits: u64,
    /// Lookups not answered.
    pub(crate) misses: u64,
    /// hits / (hits + misses), 0 without lookups.
    pub(crate) hit_ratio: f64,
    /// Entries evicted to stay in bounds (or by the memory guard).
    pub(crate) evictions: u64,
    /// L2 in a cluster: the gets sent to other members and the puts not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) remote: Option<RemoteStats>,
}

/// How the clustered L2 is set up (`[cache]` `l2_*`).
#[derive(Debug, Clone)]
pub(crate) struct L2Settings {
    /// Entries this node holds for the keys it owns, at most.
    pub(crate) max_entries: u64,
    /// Bytes this node holds for the keys it owns, at most.
    pub(crate) max_bytes: u64,
    /// How long a get waits for another member's answer.
    pub(crate) timeout: Duration,
    /// Puts and invalidations waiting to be sent, at most.
    pub(crate) outbox: usize,
}

/// Lookups sent to other members, and puts not sent (`erlmcp remote cache`, `/metrics`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub(crate) struct RemoteStats {
    /// Gets another member answered with a value.
    pub(crate) hits: u64,
    /// Gets another member answered without one, or that could not be sent (its L2 not known).
    pub(crate) misses: u64,
    /// Gets not answered within `cache.l2_timeout` (misses too, to the caller).
    pub(crate) timeouts: u64,
    /// Puts dropped: the outbox was full, or the value too large.
    pub(crate) puts_dropped: u64,
    /// Mean wait of the remote hits (a get sent, its value back), in microseconds.
    pub(crate) mean_wait_us: u64,
}

/// How the cache is set up (`[cache]`).
#[derive(Debug, Clone)]
pub(crate) struct CacheSettings {
    pub(crate) l1_max_entries: u64,
    pub(crate) l1_max_bytes: u64,
    /// The L3 file; `None`: no disk tier.
    pub(crate) l3_path: Option<PathBuf>,
    pub(crate) l3_max_bytes: u64,
    pub(crate) invalidation: Invalidation,
    pub(crate) warmup_delay: Duration,
    pub(crate) warmup_entries: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) compact_interval: Duration,
    /// The clustered L2, when the node runs clustered; `None`: the single-node stand-in.
    pub(crate) l2: Option<L2Settings>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            l1_max_entries: 10_000,
            l1_max_bytes: 64 << 20,
            l3_path: None,
            l3_max_bytes: 256 << 20,
            invalidation: Invalidation::Eager,
            warmup_delay: Duration::from_millis(1000),
            warmup_entries: 1000,
            flush_interval: Duration::from_millis(50),
            compact_interval: Duration::from_secs(60),
            l2: None,
        }
    }
}

/// The three tiers and the invalidation state.
pub(crate) struct Cache {
    pub(crate) settings: CacheSettings,
    pub(crate) l1: memory::MemoryTier,
    pub(crate) l2: Box<dyn shared::SharedTier>,
    /// L3, opened at start when its file exists, else at the first write (a node that caches
    /// nothing creates no file); `None` inside when it could not be opened.
    l3: std::sync::OnceLock<Option<disk::DiskTier>>,
    /// Lazy invalidation: key prefixes whose entries are stale until removed.
    floors: RwLock<Vec<String>>,
    has_floors: AtomicBool,
}

impl Cache {
    /// A cache with `settings`; an L3 file that cannot be opened leaves the node without a disk
    /// tier (logged), never without a cache.
    pub(crate) fn new(settings: CacheSettings) -> Self {
        let cache = Self {
            l1: memory::MemoryTier::new(settings.l1_max_entries, settings.l1_max_bytes),
            l2: match &settings.l2 {
                Some(l2) => Box::new(clustered::Clustered::new(l2)),
                None => Box::new(shared::SingleNode::default()),
            },
            l3: std::sync::OnceLock::new(),
            settings,
            floors: RwLock::new(Vec::new()),
            has_floors: AtomicBool::new(false),
        };
        if cache.settings.l3_path.as_ref().is_some_and(|p| p.exists()) {
            cache.disk_for_write();
        }
        cache
    }

    /// L3, if it is open.
    pub(crate) fn disk(&self) -> Option<&disk::DiskTier> {
        self.l3.get().and_then(Option::as_ref)
    }

    /// L3, opened now if it was not yet (and configured).
    pub(crate) fn disk_for_write(&self) -> Option<&disk::DiskTier> {
        self.l3
            .get_or_init(|| {
                let path = self.settings.l3_path.as_ref()?;
                disk::DiskTier::open(path, self.settings.l3_max_bytes)
                    .map_err(|e| tracing::error!("the disk cache tier is off: {e}"))
                    .ok()
            })
            .as_ref()
    }

    /// Whether a lazy invalidation not yet applied covers `key` (a miss until the invalidation
    /// actor removes the prefix's entries, at its next tick).
    fn below_floor(&self, key: &str) -> bool {
        if !self.has_floors.load(Ordering::Acquire) {
            return false;
        }
        let floors = self.floors.read().unwrap_or_else(|e| e.into_inner());
        floors.iter().any(|prefix| key.starts_with(prefix.as_str()))
    }

    /// Whether `bytes`, read from a tier outside this process's memory (a file, another node),
    /// are what this cache ever stores: one JSON value on one line. Every value is written to a
    /// client as it is, so a damaged or tampered `cache.redb` must not reach the wire: such an
    /// entry is a miss, logged at a bounded rate, and removed.
    fn sound(&self, key: &str, bytes: &[u8], tier: Tier) -> bool {
        let sound = memchr::memchr2(b'\n', b'\r', bytes).is_none()
            && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
        if !sound {
            if let Some(suppressed) = DISK_ERRORS.allow() {
                tracing::warn!(
                    ?tier,
                    key,
                    suppressed,
                    "a cached value is not well-formed JSON: dropped"
                );
            }
            if let (Tier::L3, Some(l3)) = (tier, self.disk()) {
                l3.queue(disk::PendingWrite::Remove(Arc::from(key)));
            }
        }
        sound
    }

    /// The live value of `key` found on this node: L1, then L2 when this node owns the key,
    /// then L3; a hit below L1 fills the tiers above it. Another member's L2 is not asked
    /// ([`Cache::lookup`] does). Tests' reads.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        self.get_here(key).0
    }

    /// The live value of `key`, for a request path: a hit or a miss on this node, or a future
    /// asking the key's owner (another member) when nothing here has it — it fills L1 with what
    /// the owner answers, and is a miss past `cache.l2_timeout`. `private`: a key of one
    /// session's answer, kept in L1 only, so only L1 is looked at.
    pub(crate) fn lookup(self: &Arc<Self>, key: &str, private: bool) -> Lookup {
        if private {
            return match self.l1.get(key) {
                Some(value) if !self.below_floor(key) => Lookup::Hit(value.bytes),
                _ => Lookup::Miss,
            };
        }
        match self.get_here(key) {
            (Some(bytes), _) => Lookup::Hit(bytes),
            (None, None) => Lookup::Miss,
            (None, Some(owner)) => {
                let cache = Arc::clone(self);
                let asking = self.l2.get_remote(owner, key);
                let key: Arc<str> = Arc::from(key);
                Lookup::Remote(Box::pin(async move {
                    let value = asking.await?;
                    if value.expired(now_ms())
                        || cache.below_floor(&key)
                        || !cache.sound(&key, &value.bytes, Tier::L2)
                    {
                        return None;
                    }
                    let bytes = Arc::clone(&value.bytes);
                    cache.l1.put(key, value);
                    Some(bytes)
                }))
            }
        }
    }

    /// [`Cache::get`], and the member owning `key` when nothing here had it and that member
    /// is not this node.
    fn get_here(&self, key: &str) -> (Option<Arc<[u8]>>, Option<String>) {
        if let Some(value) = self.l1.get(key) {
            if !self.below_floor(key) {
                return (Some(value.bytes), None);
            }
            return (None, None);
        }
        let key_arc: Arc<str> = Arc::from(key);
        let elsewhere = match self.l2.get(key) {
            shared::SharedGet::Here(Some(value)) => {
                if self.below_floor(key) || !self.sound(key, &value.bytes, Tier::L2) {
                    return (None, None);
                }
                self.l1.put(Arc::clone(&key_arc), value.clone());
                return (Some(value.bytes), None);
            }
            shared::SharedGet::Here(None) => None,
            shared::SharedGet::Elsewhere(owner) => Some(owner),
        };
        let Some(l3) = self.disk() else {
            return (None, elsewhere);
        };
        match l3.get(key) {
            Ok(Some(value))
                if !self.below_floor(key) && self.sound(key, &value.bytes, Tier::L3) =>
            {
                self.l2.put(&key_arc, &value);
                self.l1.put(key_arc, value.clone());
                (Some(value.bytes), None)
            }
            Ok(Some(_)) => (None, None),
            Ok(None) => (None, elsewhere),
            Err(e) => {
                if let Some(suppressed) = DISK_ERRORS.allow() {
                    tracing::warn!(suppressed, "reading the disk cache tier: {e}");
                }
                (None, elsewhere)
            }
        }
    }

    /// Stores `bytes` under `key` in every tier, fresh for `ttl`.
    pub(crate) fn put(&self, key: &str, bytes: Arc<[u8]>, ttl: Duration) {
        let key: Arc<str> = Arc::from(key);
        let value = CachedValue::new(bytes, ttl);
        self.l2.put(&key, &value);
        if let Some(l3) = self.disk_for_write() {
            l3.queue(disk::PendingWrite::Put(Arc::clone(&key), value.clone()));
        }
        self.l1.put(key, value);
    }

    /// Stores `bytes` under `key` in L1 only, fresh for `ttl`: an answer private to one session,
    /// whose id means nothing to another node (L2) or after a restart (L3).
    pub(crate) fn put_private(&self, key: &str, bytes: Arc<[u8]>, ttl: Duration) {
        self.l1.put(Arc::from(key), CachedValue::new(bytes, ttl));
    }

    /// Invalidates every key starting with `prefix`, in the configured way.
    pub(crate) fn invalidate_prefix(&self, prefix: &str) {
        match self.settings.invalidation {
            Invalidation::Eager => self.remove_prefix_everywhere(prefix),
            Invalidation::Lazy => {
                let mut floors = self.floors.write().unwrap_or_else(|e| e.into_inner());
                if !floors.iter().any(|p| p == prefix) {
                    floors.push(prefix.to_owned());
                }
                self.has_floors.store(true, Ordering::Release);
            }
        }
    }

    /// Removes every key starting with `prefix` from every tier (L3's removal is committed by
    /// its actor's next flush).
    pub(crate) fn remove_prefix_everywhere(&self, prefix: &str) {
        self.l1.remove_prefix(prefix);
        self.l2.remove_prefix(prefix);
        if let Some(l3) = self.disk() {
            l3.queue(disk::PendingWrite::RemovePrefix(prefix.to_owned()));
        }
    }

    /// Applies the lazy floors: their entries are removed from every tier, then forgotten (the
    /// invalidation actor does this every tick).
    pub(crate) fn apply_floors(&self) {
        if !self.has_floors.load(Ordering::Acquire) {
            return;
        }
        let floors = std::mem::take(&mut *self.floors.write().unwrap_or_else(|e| e.into_inner()));
        self.has_floors.store(false, Ordering::Release);
        for prefix in floors {
            self.remove_prefix_everywhere(&prefix);
        }
    }

    /// Empties one tier, or all.
    pub(crate) fn clear(&self, tier: Option<Tier>) {
        if matches!(tier, None | Some(Tier::L1)) {
            self.l1.clear();
        }
        if matches!(tier, None | Some(Tier::L2)) {
            self.l2.clear();
        }
        if matches!(tier, None | Some(Tier::L3))
            && let Some(l3) = self.disk()
        {
            l3.queue(disk::PendingWrite::Clear);
            if let Err(e) = l3.flush() {
                tracing::warn!("clearing the disk cache tier: {e}");
            }
        }
    }

    /// Drops about `fraction` (0..=1) of L1's entries: the memory guard asked. L3 is on disk and
    /// costs no memory beyond redb's own bounded page cache, so it is left as it is.
    pub(crate) fn shrink(&self, fraction: f64) {
        self.l1.shrink(fraction);
    }

    /// Fills L1 with L3's newest `limit` live entries; returns how many.
    pub(crate) fn warm(&self, limit: usize) -> usize {
        let Some(l3) = self.disk() else { return 0 };
        // Every live entry, newest first (the table is read whole either way); the damaged
        // ones are skipped (and removed), so `limit` sound ones are taken when there are.
        match l3.newest(usize::MAX) {
            Ok(entries) => {
                let mut count = 0;
                for (key, value) in entries {
                    if count == limit {
                        break;
                    }
                    if self.sound(&key, &value.bytes, Tier::L3) {
                        self.l1.put(key, value);
                        count += 1;
                    }
                }
                count
            }
            Err(e) => {
                tracing::warn!("warming the cache from disk: {e}");
                0
            }
        }
    }

    /// Each tier's figures.
    pub(crate) fn stats(&self) -> Vec<TierStats> {
        let figures = |tier, (entries, bytes, max_bytes), (hits, misses), evictions| TierStats {
            remote: None,
            tier,
            entries,
            bytes,
            max_bytes,
            hits,
            misses,
            hit_ratio: if hits + misses == 0 {
                0.0
            } else {
                hits as f64 / (hits + misses) as f64
            },
            evictions,
        };
        let counted = |c: &TierCounters| {
            (
                c.hits.load(Ordering::Relaxed),
                c.misses.load(Ordering::Relaxed),
            )
        };
        let evicted = |c: &TierCounters| c.evictions.load(Ordering::Relaxed);
        let (l2_entries, l2_bytes) = self.l2.held();
        let mut stats = vec![
            figures(
                Tier::L1,
                (self.l1.entries(), self.l1.bytes(), self.l1.max_bytes()),
                self.l1.lookups(),
                evicted(&self.l1.counters),
            ),
            TierStats {
                remote: self.l2.remote_stats(),
                ..figures(
                    Tier::L2,
                    (l2_entries, l2_bytes, self.l2.max_bytes()),
                    counted(self.l2.counters()),
                    self.l2.evictions(),
                )
            },
        ];
        if let Some(l3) = self.disk() {
            stats.push(figures(
                Tier::L3,
                (l3.entries(), l3.bytes(), l3.max_bytes()),
                counted(&l3.counters),
                evicted(&l3.counters),
            ));
        }
        stats
    }
}

/// What [`Cache::lookup`] found.
pub(crate) enum Lookup {
    /// A live value on this node.
    Hit(Arc<[u8]>),
    /// Nothing, anywhere it may be.
    Miss,
    /// Nothing on this node; the key's owner is asked (`None`: a miss there, or no answer in
    /// time).
    Remote(crate::common::BoxFuture<Option<Arc<[u8]>>>),
}

/// Disk tier read failures and damaged values, logged at a bounded rate.
static DISK_ERRORS: crate::log_limit::LogLimiter = crate::log_limit::LogLimiter::per_second();

/// The node's cache, found by request paths without a mailbox (one per process, as the tree is).
static CURRENT: ArcSwapOption<Cache> = ArcSwapOption::const_empty();

/// Makes `cache` the node's cache (the tree's start).
pub(crate) fn install(cache: Arc<Cache>) {
    CURRENT.store(Some(cache));
}

/// Forgets the node's cache (the tree's stop).
pub(crate) fn uninstall() {
    CURRENT.store(None);
}

/// The node's cache, while a tree runs.
pub(crate) fn current() -> Option<Arc<Cache>> {
    CURRENT.load_full()
}

/// The node's cache, borrowed for a request path: no reference count is taken (a hit on two
/// cores would bounce the shared count's cache line on every call); `Arc::clone` it only for
/// work that outlives the call.
pub(crate) fn borrowed() -> arc_swap::Guard<Option<Arc<Cache>>> {
    CURRENT.load()
}

/// Each tier's figures, while a tree runs.
pub(crate) fn stats() -> Vec<TierStats> {
    current().map(|cache| cache.stats()).unwrap_or_default()
}

/// The memory guard tripped: half of L1 goes (the admission actor calls this).
pub(crate) fn shrink_on_memory_pressure() {
    if let Some(cache) = current() {
        cache.shrink(0.5);
        tracing::warn!("memory over the limit: half of the in-memory cache dropped");
    }
}

/// Key prefix of every cached result of tool `name`.
pub(crate) fn tool_prefix(name: &str) -> String {
    format!("tool\u{1f}{name}\u{1f}")
}

/// Key prefix of every cached read of a URI matched by template `uri_template` (each read's key
/// goes on with the URI read).
pub(crate) fn template_prefix(uri_template: &str) -> String {
    format!("tpl\u{1f}{uri_template}\u{1f}")
}

/// Key prefix of every cached read of resource `uri`.
pub(crate) fn resource_prefix(uri: &str) -> String {
    format!("res\u{1f}{uri}\u{1f}")
}

/// JSON text with object keys sorted at every level and no whitespace: the same arguments
/// written in any order give the same key. Text that is not JSON is kept as it is. Text already
/// in that form (what most clients send: a flat object of keys in order) is returned as it is,
/// without being parsed into a tree and written again.
pub(crate) fn canonical_json(text: &str) -> std::borrow::Cow<'_, str> {
    fn sorted(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(
                    entries.into_iter().map(|(k, v)| (k, sorted(v))).collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(sorted).collect())
            }
            other => other,
        }
    }
    if already_canonical(text) {
        return std::borrow::Cow::Borrowed(text);
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => std::borrow::Cow::Owned(sorted(value).to_string()),
        Err(_) => std::borrow::Cow::Borrowed(text),
    }
}

/// Whether `text`, well-formed JSON, is written exactly as [`canonical_json`] would write it:
/// no whitespace between tokens, every object's keys strictly increasing, no escape in any
/// string, every number a plain integer of at most 18 digits. Anything else (an escape could be
/// written another way, a float in another form) is left to the slow path, which decides.
fn already_canonical(text: &str) -> bool {
    let bytes = text.as_bytes();
    // Per open container: its last key so far (`None` before the first, and in an array),
    // whether it is an object, and whether the next string in it is a key.
    type Open<'a> = (Option<&'a [u8]>, bool, bool);
    let mut objects: smallvec::SmallVec<[Open<'_>; 8]> = smallvec::SmallVec::new();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'{' => {
                objects.push((None, true, true));
                at += 1;
            }
            b'[' => {
                objects.push((None, false, false));
                at += 1;
            }
            b'}' | b']' => {
                objects.pop();
                at += 1;
            }
            b',' => {
                if let Some((_, is_object, next_is_key)) = objects.last_mut() {
                    *next_is_key = *is_object;
                }
                at += 1;
            }
            b':' => at += 1,
            b'"' => {
                let start = at + 1;
                let Some(len) = memchr::memchr2(b'"', b'\\', &bytes[start..]) else {
                    return false;
                };
                if bytes[start + len] == b'\\' {
                    return false;
                }
                let string = &bytes[start..start + len];
                if let Some((last, true, next_is_key)) = objects.last_mut()
                    && *next_is_key
                {
                    if last.is_some_and(|last| last >= string) {
                        return false;
                    }
                    *last = Some(string);
                    *next_is_key = false;
                }
                at = start + len + 1;
            }
            b'-' | b'0'..=b'9' => {
                let digits_from = at + usize::from(bytes[at] == b'-');
                let digits = bytes[digits_from..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let end = digits_from + digits;
                let leading_zero = digits > 1 && bytes[digits_from] == b'0';
                if digits == 0 || digits > 18 || leading_zero || text[at..end] == *"-0" {
                    return false;
                }
                if matches!(bytes.get(end), Some(b'.' | b'e' | b'E')) {
                    return false;
                }
                at = end;
            }
            b't' | b'n' => at += 4,
            b'f' => at += 5,
            _ => return false, // whitespace, or not JSON
        }
    }
    true
}

#[cfg(test)]
mod tests;
