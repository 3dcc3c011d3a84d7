//! Owns the clustered L2 (docs/cache.md, "L2 across the cluster"): each key's owner on the ring
//! (`crate::cluster::current()` → `ClusterView::owner`) holds it in memory, and every node asks
//! the owner. A get of a key this node owns is a direct read of its share; a get of another
//! member's key is one ractor_cluster RPC to that member's L2 actor (in the process group
//! `erlmcp_cache_l2:<node name>`, mirrored on every node) with a short deadline
//! (`cache.l2_timeout`: past it a miss, counted). Puts and invalidations are casts through a
//! bounded outbox (`cache.l2_outbox`; a full one drops the put, counted), sent in order by a task
//! of the L2 actor. Invalidations go to every member's L2. A departed owner's keys are misses.
//!
//! The L2 actor (`erlmcp_cache_l2`, under `erlmcp_cache_sup`) answers the other members' gets,
//! puts and removals from this node's share, and drains the outbox. The share and the counters
//! live in [`Clustered`], held by the node's cache: a restarted actor loses nothing.
//!
//! Values from another node are untrusted bytes: the cache checks them (`Cache::sound`) before
//! use, as it checks L3's. Bytes that cannot be decoded read as a miss (never a panic).

use super::memory::MemoryTier;
use super::shared::{SharedGet, SharedTier};
use super::{CachedValue, L2Settings, RemoteStats, TierCounters};
use crate::common::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The process group of a node's L2 actor: this prefix, then the node's cluster name.
pub(crate) const L2_GROUP: &str = "erlmcp_cache_l2:";

/// A value larger than this is not sent to its owner (ractor_cluster refuses frames over 16 MiB).
pub(crate) const MAX_VALUE_BYTES: usize = 8 * 1024 * 1024;

/// Outgoing messages the drain task sends at most in one go before yielding.
const DRAIN_BATCH: usize = 256;

/// What an L2 actor is sent by the members (and by its own node).
#[derive(ractor_cluster::RactorClusterMessage)]
pub(crate) enum L2Msg {
    /// The live value of a key this node owns.
    #[rpc]
    Get(L2Key, RpcReplyPort<L2Value>),
    /// Keep a value for a key this node owns.
    Put(L2Value),
    /// Forget every key starting with this prefix.
    RemovePrefix(L2Key),
}

/// A key or a prefix as it crosses the cluster.
#[derive(Debug, Default, bincode::Encode, bincode::Decode)]
pub(crate) struct L2Key {
    pub(crate) key: String,
    /// False when the bytes received could not be read.
    pub(crate) readable: bool,
}

/// A value (with its key, for a put) as it crosses the cluster; `found` false: none.
#[derive(Debug, Default, bincode::Encode, bincode::Decode)]
pub(crate) struct L2Value {
    pub(crate) key: String,
    pub(crate) found: bool,
    pub(crate) bytes: Vec<u8>,
    /// Unix ms after which it is stale; 0: never.
    pub(crate) expires_at_ms: u64,
}

// Bytes that cannot be read give a key marked unreadable or a value not found: a miss.
crate::cluster::bincode_on_the_wire!(L2Key, L2Value);

#[derive(Default)]
struct RemoteCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    timeouts: AtomicU64,
    puts_dropped: AtomicU64,
    /// Microseconds waited by the remote hits.
    hit_wait_us: AtomicU64,
}

/// What waits in the outbox.
enum Outgoing {
    /// A put for `owner`.
    Put(String, L2Value),
    /// A removal for every member.
    RemovePrefix(String),
}

struct Inner {
    /// The keys the ring gives this node (and what members sent before the ring moved).
    share: MemoryTier,
    /// Every lookup: local and remote.
    counters: TierCounters,
    remote: RemoteCounters,
    timeout: Duration,
    outbox: tokio::sync::mpsc::Sender<Outgoing>,
    /// Taken by the L2 actor's drain while it runs (a restarted actor takes it again).
    inbox: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Outgoing>>>,
}

/// The clustered L2 tier.
pub(crate) struct Clustered {
    inner: Arc<Inner>,
}

impl Clustered {
    pub(crate) fn new(settings: &L2Settings) -> Self {
        let (outbox, inbox) = tokio::sync::mpsc::channel(settings.outbox.max(1));
        Self {
            inner: Arc::new(Inner {
                share: MemoryTier::new(settings.max_entries, settings.max_bytes),
                counters: TierCounters::default(),
                remote: RemoteCounters::default(),
                timeout: settings.timeout,
                outbox,
                inbox: Arc::new(tokio::sync::Mutex::new(inbox)),
            }),
        }
    }

    fn enqueue(&self, outgoing: Outgoing) -> bool {
        self.inner.outbox.try_send(outgoing).is_ok()
    }
}

/// `tier` as the clustered tier, when it is one.
fn as_clustered(tier: &dyn SharedTier) -> Option<&Clustered> {
    tier.as_any().downcast_ref::<Clustered>()
}

/// This node's cluster name and the owner of `key`, when the node runs clustered.
fn owner_of(key: &str) -> Option<(Arc<crate::cluster::ClusterView>, String)> {
    let view = crate::cluster::current()?;
    let owner = view.owner(key.as_bytes())?;
    Some((view, owner))
}

impl SharedTier for Clustered {
    fn get(&self, key: &str) -> SharedGet {
        match owner_of(key) {
            Some((view, owner)) if owner != view.name() => SharedGet::Elsewhere(owner),
            Some(_) => {
                let found = self.inner.share.get(key);
                self.inner.counters.looked_up(found.is_some());
                SharedGet::Here(found)
            }
            None => {
                self.inner.counters.looked_up(false);
                SharedGet::Here(None)
            }
        }
    }

    fn get_remote(&self, owner: String, key: &str) -> BoxFuture<Option<CachedValue>> {
        let inner = Arc::clone(&self.inner);
        let key = key.to_owned();
        Box::pin(async move {
            let started = std::time::Instant::now();
            let found = ask(&owner, key, inner.timeout).await;
            let remote = &inner.remote;
            if matches!(found, Asked::Found(_)) {
                let waited = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                remote.hit_wait_us.fetch_add(waited, Ordering::Relaxed);
            }
            let counter = match &found {
                Asked::Found(_) => &remote.hits,
                Asked::Missing => &remote.misses,
                Asked::TimedOut => &remote.timeouts,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            match found {
                Asked::Found(value) => {
                    inner.counters.looked_up(true);
                    Some(value)
                }
                Asked::Missing | Asked::TimedOut => {
                    inner.counters.looked_up(false);
                    None
                }
            }
        })
    }

    fn put(&self, key: &Arc<str>, value: &CachedValue) {
        let Some((view, owner)) = owner_of(key) else {
            return;
        };
        if owner == view.name() {
            self.inner.share.put(Arc::clone(key), value.clone());
            return;
        }
        if value.bytes.len() > MAX_VALUE_BYTES {
            self.inner
                .remote
                .puts_dropped
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let value = L2Value {
            key: key.to_string(),
            found: true,
            bytes: value.bytes.to_vec(),
            expires_at_ms: value.expires_at_ms,
        };
        if !self.enqueue(Outgoing::Put(owner, value)) {
            self.inner
                .remote
                .puts_dropped
                .fetch_add(1, Ordering::Relaxed);
            log_dropped();
        }
    }

    fn remove_prefix(&self, prefix: &str) {
        self.inner.share.remove_prefix(prefix);
        if crate::cluster::current().is_none() {
            return;
        }
        // In the outbox when there is room, so it reaches each member after the puts queued
        // before it; else at once (an invalidation is never dropped).
        if !self.enqueue(Outgoing::RemovePrefix(prefix.to_owned())) {
            cast_removal(prefix);
        }
    }

    fn clear(&self) {
        self.inner.share.clear();
    }

    fn held(&self) -> (u64, u64) {
        (self.inner.share.entries(), self.inner.share.bytes())
    }

    fn counters(&self) -> &TierCounters {
        &self.inner.counters
    }

    fn evictions(&self) -> u64 {
        self.inner.share.counters.evictions.load(Ordering::Relaxed)
    }

    fn max_bytes(&self) -> u64 {
        self.inner.share.max_bytes()
    }

    fn remote_stats(&self) -> Option<RemoteStats> {
        let remote = &self.inner.remote;
        let (hits, misses) = (
            remote.hits.load(Ordering::Relaxed),
            remote.misses.load(Ordering::Relaxed),
        );
        Some(RemoteStats {
            hits,
            misses,
            mean_wait_us: remote.hit_wait_us.load(Ordering::Relaxed) / hits.max(1),
            timeouts: remote.timeouts.load(Ordering::Relaxed),
            puts_dropped: remote.puts_dropped.load(Ordering::Relaxed),
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// What the owner of a key said.
enum Asked {
    Found(CachedValue),
    Missing,
    TimedOut,
}

/// The L2 actor of member `node`, from the mirrored process group.
fn l2_of(node: &str) -> Option<ActorRef<L2Msg>> {
    crate::cluster::member_actor(L2_GROUP, node)
}

/// Asks `owner` for `key`, waiting at most `wait`.
async fn ask(owner: &str, key: String, wait: Duration) -> Asked {
    match l2_of(owner) {
        Some(target) => ask_actor(&target, key, wait).await,
        None => Asked::Missing,
    }
}

/// Asks the L2 actor `target` for `key`, waiting at most `wait`.
async fn ask_actor(target: &ActorRef<L2Msg>, key: String, wait: Duration) -> Asked {
    let call = target.call(
        |port| {
            L2Msg::Get(
                L2Key {
                    key,
                    readable: true,
                },
                port,
            )
        },
        Some(wait),
    );
    let sent_at = std::time::Instant::now();
    let result = tokio::time::timeout(wait, call).await;
    // ractor_cluster's remote actor gives its own reply port the same deadline and drops it when
    // it passes: a call that failed at the deadline timed out.
    let at_deadline = sent_at.elapsed() >= wait.saturating_sub(wait / 10);
    match result {
        Ok(Ok(ractor::rpc::CallResult::Success(value))) if value.found => {
            Asked::Found(CachedValue {
                bytes: value.bytes.into(),
                expires_at_ms: value.expires_at_ms,
            })
        }
        Ok(Ok(ractor::rpc::CallResult::Success(_))) => Asked::Missing,
        Ok(Ok(ractor::rpc::CallResult::Timeout)) | Err(_) => Asked::TimedOut,
        Ok(_) if at_deadline => Asked::TimedOut,
        Ok(_) => Asked::Missing,
    }
}

/// Casts a removal of `prefix` to every other member's L2 that is known.
fn cast_removal(prefix: &str) {
    let Some(view) = crate::cluster::current() else {
        return;
    };
    for member in view.members().iter() {
        if member.name == view.name() {
            continue;
        }
        if let Some(target) = l2_of(&member.name) {
            let _ = target.cast(L2Msg::RemovePrefix(L2Key {
                key: prefix.to_owned(),
                readable: true,
            }));
        }
    }
}

/// Logs, at most once a second with a count, that puts were dropped.
fn log_dropped() {
    static LIMIT: crate::log_limit::LogLimiter = crate::log_limit::LogLimiter::per_second();
    if let Some(suppressed) = LIMIT.allow() {
        tracing::warn!(
            suppressed,
            "cache: the L2 outbox is full (cache.l2_outbox): a put to its owner was dropped"
        );
    }
}

/// The L2 actor: answers the members from this node's share and drains the outbox.
pub(crate) struct L2Actor;

/// The L2 actor's state: the cache, the group it joined, the drain task.
pub(crate) struct L2State {
    cache: Arc<super::Cache>,
    group: Option<String>,
    drain: Option<tokio::task::JoinHandle<()>>,
}

impl L2State {
    fn share(&self) -> Option<&MemoryTier> {
        as_clustered(&*self.cache.l2).map(|c| &c.inner.share)
    }
}

impl Actor for L2Actor {
    type Msg = L2Msg;
    type State = L2State;
    type Arguments = Arc<super::Cache>;

    async fn pre_start(
        &self,
        myself: ActorRef<L2Msg>,
        cache: Arc<super::Cache>,
    ) -> Result<L2State, ActorProcessingErr> {
        let clustered = as_clustered(&*cache.l2).map(|c| Arc::clone(&c.inner.inbox));
        let (group, drain) = match (crate::cluster::current(), clustered) {
            (Some(view), Some(inbox)) => {
                let group = format!("{L2_GROUP}{}", view.name());
                ractor::pg::join(group.clone(), vec![myself.get_cell()]);
                (Some(group), Some(tokio::spawn(drain(inbox))))
            }
            _ => (None, None),
        };
        Ok(L2State {
            cache,
            group,
            drain,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<L2Msg>,
        state: &mut L2State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(drain) = state.drain.take() {
            drain.abort();
        }
        if let Some(group) = state.group.take() {
            ractor::pg::leave(group, vec![myself.get_cell()]);
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<L2Msg>,
        message: L2Msg,
        state: &mut L2State,
    ) -> Result<(), ActorProcessingErr> {
        let Some(share) = state.share() else {
            return Ok(());
        };
        match message {
            L2Msg::Get(key, reply) => {
                let value = if key.readable {
                    share.get(&key.key)
                } else {
                    None
                };
                let answer = match value {
                    Some(value) => L2Value {
                        key: String::new(),
                        found: true,
                        bytes: value.bytes.to_vec(),
                        expires_at_ms: value.expires_at_ms,
                    },
                    None => L2Value::default(),
                };
                let _ = reply.send(answer);
            }
            L2Msg::Put(value) if value.found && value.bytes.len() <= MAX_VALUE_BYTES => {
                let cached = CachedValue {
                    bytes: value.bytes.into(),
                    expires_at_ms: value.expires_at_ms,
                };
                if !cached.expired(super::now_ms()) {
                    share.put(Arc::from(value.key), cached);
                }
            }
            L2Msg::Put(_) => {}
            L2Msg::RemovePrefix(prefix) if prefix.readable => share.remove_prefix(&prefix.key),
            L2Msg::RemovePrefix(_) => {}
        }
        Ok(())
    }
}

/// Sends what the outbox holds, in order, as long as the actor runs.
async fn drain(inbox: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Outgoing>>>) {
    let mut inbox = inbox.lock().await;
    let mut batch = Vec::with_capacity(DRAIN_BATCH);
    while inbox.recv_many(&mut batch, DRAIN_BATCH).await > 0 {
        for outgoing in batch.drain(..) {
            match outgoing {
                Outgoing::Put(owner, value) => {
                    if let Some(target) = l2_of(&owner) {
                        let _ = target.cast(L2Msg::Put(value));
                    }
                }
                Outgoing::RemovePrefix(prefix) => cast_removal(&prefix),
            }
        }
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::BytesConvertable as _;

    /// An L2 actor that never answers (a hung owner).
    struct Silent;

    impl Actor for Silent {
        type Msg = L2Msg;
        type State = Vec<L2Msg>;
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<L2Msg>,
            (): (),
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(Vec::new())
        }

        async fn handle(
            &self,
            _myself: ActorRef<L2Msg>,
            message: L2Msg,
            held: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            held.push(message); // the reply port is kept, never answered
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_owner_that_does_not_answer_is_a_timeout_at_the_deadline() {
        let (silent, handle) = Actor::spawn(None, Silent, ()).await.unwrap();
        let started = std::time::Instant::now();
        let asked = ask_actor(&silent, "k".into(), Duration::from_millis(30)).await;
        let waited = started.elapsed();
        assert!(matches!(asked, Asked::TimedOut));
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        silent.stop(None);
        handle.await.unwrap();
    }

    fn l2_settings() -> L2Settings {
        L2Settings {
            max_entries: 100,
            max_bytes: 1 << 20,
            timeout: Duration::from_millis(20),
            outbox: 4,
        }
    }

    #[tokio::test]
    async fn the_owner_keeps_puts_answers_gets_and_removes_prefixes_sent_to_it() {
        let cache = Arc::new(super::super::Cache::new(super::super::CacheSettings {
            l2: Some(l2_settings()),
            ..Default::default()
        }));
        let (l2, handle) = Actor::spawn(None, L2Actor, Arc::clone(&cache))
            .await
            .unwrap();
        let get = |key: &str| {
            let l2 = l2.clone();
            let key = key.to_owned();
            async move {
                let asked = ask_actor(&l2, key, Duration::from_secs(5)).await;
                match asked {
                    Asked::Found(value) => Some(value.bytes.to_vec()),
                    Asked::Missing => None,
                    Asked::TimedOut => panic!("a local L2 actor timed out"),
                }
            }
        };
        let put = |key: &str, bytes: &[u8], expires_at_ms| {
            L2Msg::Put(L2Value {
                key: key.to_owned(),
                found: true,
                bytes: bytes.to_vec(),
                expires_at_ms,
            })
        };
        l2.cast(put("tool\u{1f}a\u{1f}1", b"1", 0)).unwrap();
        l2.cast(put("tool\u{1f}b\u{1f}1", b"2", 0)).unwrap();
        l2.cast(put("tool\u{1f}c\u{1f}1", b"3", 1)).unwrap(); // expired already: not kept
        assert_eq!(get("tool\u{1f}a\u{1f}1").await, Some(b"1".to_vec()));
        assert_eq!(get("tool\u{1f}c\u{1f}1").await, None);
        assert_eq!(cache.l2.held().0, 2);
        l2.cast(L2Msg::RemovePrefix(L2Key {
            key: "tool\u{1f}a\u{1f}".into(),
            readable: true,
        }))
        .unwrap();
        // A removal that could not be read removes nothing.
        l2.cast(L2Msg::RemovePrefix(L2Key::default())).unwrap();
        assert_eq!(get("tool\u{1f}a\u{1f}1").await, None);
        assert_eq!(get("tool\u{1f}b\u{1f}1").await, Some(b"2".to_vec()));
        // Without a cluster the node keeps nothing of its own in L2 and asks no one.
        assert!(matches!(
            cache.l2.get("tool\u{1f}b\u{1f}1"),
            SharedGet::Here(None)
        ));
        l2.stop(None);
        handle.await.unwrap();
    }

    #[tokio::test]
    async fn an_owner_with_no_known_l2_is_a_miss_at_once() {
        assert!(matches!(
            ask("nobody@127.0.0.1", "k".into(), Duration::from_secs(5)).await,
            Asked::Missing
        ));
    }

    #[test]
    fn keys_and_values_cross_as_bytes_and_garbage_reads_as_a_miss() {
        let value = L2Value {
            key: "tool\u{1f}k".into(),
            found: true,
            bytes: b"{\"a\":1}".to_vec(),
            expires_at_ms: 42,
        };
        let back = L2Value::from_bytes(value.into_bytes());
        assert_eq!(back.key, "tool\u{1f}k");
        assert!(back.found);
        assert_eq!(back.bytes, b"{\"a\":1}");
        assert_eq!(back.expires_at_ms, 42);
        assert!(!L2Value::from_bytes(vec![0xff; 3]).found);
        assert!(!L2Key::from_bytes(vec![0xff; 3]).readable);
        let key = L2Key::from_bytes(
            L2Key {
                key: "p".into(),
                readable: true,
            }
            .into_bytes(),
        );
        assert!(key.readable);
        assert_eq!(key.key, "p");
    }
}
