//! Owns session replication across the cluster and the takeover it allows (docs/cluster.md,
//! "Sessions that outlive their node"). Every change of a kept Streamable HTTP session's record
//! (the store's change stream, table `http_sessions`: the replication hook) is sent to the
//! members the ring names after the session's owner (`cluster.replicas` of them), which keep it
//! in their store's table [`REPLICA_TABLE`]; the record of a session `initialize` makes reaches
//! them before the answer goes out (waited for up to [`CREATE_WAIT`]). A request for a session this
//! node does not hold but keeps a replica of — the ring gives the session to this node now, its
//! owner having left — makes the session again from the replica (as a restart does from the
//! store) and serves it. When the ring changes, every session this node holds but the ring now
//! gives to another member is handed over to it (`ForwardMsg::Handoff`: after a partition heals
//! or an owner returns, the copy taken over replaces the owner's own, and this node forgets its
//! copy), and every session it still holds is sent again to the members the new ring names, in
//! the background. A replica whose owner left and that nobody took over is dropped after
//! `http.session_timeout` ([`Orphans`]).
//!
//! Bounds: the outbox holds [`OUTBOX_RECORDS`] records (a record that does not fit is not replicated:
//! counted, logged once a second, and sent at the next change or ring change); a batch is at
//! most [`BATCH`] records and waits [`CALL_WAIT`] for the replica; the replica table is bounded
//! by `store.max_sessions`. What can be lost: changes made within the last batch before the
//! owner died (subscriptions, log level); never a session whose `initialize` was answered while
//! its replica was reachable.

use super::HttpState;
use super::forward::{FORWARD_GROUP, ForwardMsg, Records, ReplicaBatch};
use super::kept::{KeptSessions, SESSIONS_TABLE};
use crate::locks::lock;
use crate::log_limit::LogLimiter;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};

/// The store table of the sessions other members replicate to this one.
pub(crate) const REPLICA_TABLE: &str = "http_sessions_replica";
/// Records waiting to be sent at most.
const OUTBOX_RECORDS: usize = 16_384;
/// Records in one batch at most.
const BATCH: usize = 512;
/// How long a batch waits for its replica's answer.
const CALL_WAIT: Duration = Duration::from_secs(2);
/// How long `initialize` waits for its session's record to reach the replicas.
pub(super) const CREATE_WAIT: Duration = Duration::from_secs(1);
/// How often the ring is looked at for a change.
const RING_CHECK: Duration = Duration::from_millis(250);

/// How long a handoff waits for the new owner's answer (it makes each session again).
const HANDOFF_WAIT: Duration = Duration::from_secs(10);
/// Sessions in one handoff at most: made again one by one on the owner, well within
/// [`HANDOFF_WAIT`].
const HANDOFF_BATCH: usize = 128;

/// Records dropped because the outbox was full, since start.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Sessions handed over to their owner, whose deletion here is not sent to the replicas: the
/// new owner's record is the one they keep.
static HANDED_OFF: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());

/// One record on its way: the session id, its record (`None`: forgotten), and who waits.
struct Outgoing {
    id: String,
    record: Option<Vec<u8>>,
    done: Option<oneshot::Sender<()>>,
}

/// The sending side, while the node runs clustered with kept sessions: owned by the forwarder
/// actor (dropped, its tasks stopped, when it stops).
pub(crate) struct Replicator {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The running replicator's outbox, for [`created`].
static OUTBOX: std::sync::Mutex<Option<mpsc::Sender<Outgoing>>> = std::sync::Mutex::new(None);

impl Drop for Replicator {
    fn drop(&mut self) {
        *lock(&OUTBOX) = None;
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Replicator {
    /// Starts replicating `state`'s kept sessions, when the node runs clustered and keeps them.
    pub(super) fn start(state: &Arc<HttpState>) -> Option<Self> {
        let view = crate::cluster::current()?;
        let kept = state.kept.as_ref()?;
        kept.store.table(REPLICA_TABLE).bound(kept.max());
        let (outbox, queue) = mpsc::channel(OUTBOX_RECORDS);
        let changes = kept.store.subscribe();
        let sender = tokio::spawn(send_batches(queue, view.name().to_owned()));
        let watcher = tokio::spawn(follow_changes(changes, Arc::clone(kept), outbox.clone()));
        let ring = tokio::spawn(follow_ring(Arc::clone(state), outbox.clone()));
        *lock(&OUTBOX) = Some(outbox);
        Some(Self {
            tasks: vec![sender, watcher, ring],
        })
    }
}

/// Who waits for a new session's first record to reach its replicas, by session id: the store's
/// change carries the record ([`follow_changes`]), sent once, and wakes the waiter when the
/// replicas have it. Bounded by the `initialize` requests in flight (each entry goes with its
/// [`CreatedWait`]).
static CREATED: std::sync::Mutex<BTreeMap<String, oneshot::Sender<()>>> =
    std::sync::Mutex::new(BTreeMap::new());

/// A new session's wait for its replicas ([`expect_created`]).
pub(super) struct CreatedWait {
    id: String,
    replicated: oneshot::Receiver<()>,
}

/// Before the new session `id` is kept: a wait for its record to reach the replicas; none when
/// not replicating.
pub(super) fn expect_created(id: &str) -> Option<CreatedWait> {
    lock(&OUTBOX).as_ref()?;
    let (done, replicated) = oneshot::channel();
    lock(&CREATED).insert(id.to_owned(), done);
    Some(CreatedWait {
        id: id.to_owned(),
        replicated,
    })
}

impl CreatedWait {
    /// Waits until the replicas have the record, or [`CREATE_WAIT`] passed, or it could not be
    /// sent (the outbox full): the session is served either way.
    pub(super) async fn wait(mut self) {
        let _ = tokio::time::timeout(CREATE_WAIT, &mut self.replicated).await;
    }
}

impl Drop for CreatedWait {
    fn drop(&mut self) {
        lock(&CREATED).remove(&self.id);
    }
}

/// Queues a record without waiting; `false` when the outbox is full (counted, logged).
fn offer(outbox: &mpsc::Sender<Outgoing>, outgoing: Outgoing) -> bool {
    match outbox.try_send(outgoing) {
        Ok(()) => true,
        Err(_) => {
            let dropped = DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
            static LIMIT: LogLimiter = LogLimiter::per_second();
            if let Some(suppressed) = LIMIT.allow() {
                tracing::warn!(
                    dropped,
                    suppressed,
                    "cluster: the replication outbox is full; a session record was not replicated (sent again at its next change)"
                );
            }
            false
        }
    }
}

/// Forwards every change of a kept session's record to the outbox.
async fn follow_changes(
    mut changes: broadcast::Receiver<crate::store::StoreChange>,
    kept: Arc<KeptSessions>,
    outbox: mpsc::Sender<Outgoing>,
) {
    loop {
        match changes.recv().await {
            Ok(change) if &*change.table == SESSIONS_TABLE => {
                if change.value.is_none() && lock(&HANDED_OFF).remove(&change.key) {
                    continue;
                }
                // A new session's first record wakes its `initialize` once the replicas have it.
                let done = match change.value {
                    Some(_) => lock(&CREATED).remove(&change.key),
                    None => None,
                };
                offer(
                    &outbox,
                    Outgoing {
                        id: change.key,
                        record: change.value.map(|v| v.to_vec()),
                        done,
                    },
                );
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "cluster: replication fell behind the store's changes; every kept session is sent again"
                );
                send_all(&kept, &outbox).await;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Every kept session's record, to the outbox (waiting for room: a background sweep).
async fn send_all(kept: &KeptSessions, outbox: &mpsc::Sender<Outgoing>) {
    let mut all = Vec::new();
    kept.store.table(SESSIONS_TABLE).scan(|id, record| {
        all.push((id.to_owned(), record.to_vec()));
    });
    for (id, record) in all {
        let outgoing = Outgoing {
            id,
            record: Some(record),
            done: None,
        };
        if outbox.send(outgoing).await.is_err() {
            return;
        }
    }
}

/// When the ring changes: hands every session this node holds but the ring now gives to
/// another member over to it ([`hand_off`]), then sends every kept session again (the members
/// that take over from each may be others now). Every quarter of `http.session_timeout`, drops
/// the orphaned replicas ([`Orphans`]).
async fn follow_ring(state: Arc<HttpState>, outbox: mpsc::Sender<Outgoing>) {
    let Some(kept) = state.kept.clone() else {
        return;
    };
    let mut last = crate::cluster::current().map(|view| view.ring());
    let mut orphans = Orphans::new(state.settings.session_timeout);
    loop {
        tokio::time::sleep(RING_CHECK).await;
        let Some(view) = crate::cluster::current() else {
            return;
        };
        orphans.sweep(&state, &kept, &view);
        let ring = view.ring();
        // Without quorum (the minority side of a partition) nothing is handed over: the ring
        // change is acted on once the quorum is back.
        if last.as_ref().is_some_and(|last| Arc::ptr_eq(last, &ring)) || !view.has_quorum() {
            continue;
        }
        last = Some(ring);
        hand_off(&state, &kept, &view).await;
        send_all(&kept, &outbox).await;
    }
}

/// Hands the sessions this node holds whose ring owner is now another member over to it: after
/// a partition heals (the sessions this side took over from replicas while the owner was out
/// of its ring), after the owner returns from a crash, or after a member joins (its share). The
/// owner makes each again from this node's record, replacing its own copy — older, or changed
/// on the other side of a partition: the handed copy wins — and this node then forgets it (its
/// actor stopped, its streams ended, its record deleted here but not on the replicas, which the
/// owner now feeds). A session the owner did not take stays here until the next ring change.
async fn hand_off(state: &HttpState, kept: &KeptSessions, view: &crate::cluster::ClusterView) {
    let me = view.name();
    let mut batches: BTreeMap<String, Records> = BTreeMap::new();
    for session in lock(&state.sessions).all() {
        let Ok(id) = session.id.to_str() else {
            continue;
        };
        let Some(owner) = view.owner(id.as_bytes()).filter(|owner| owner != me) else {
            continue;
        };
        // A session the store does not keep cannot be made again elsewhere: it stays.
        if let Some(record) = kept.store.table(SESSIONS_TABLE).get(id) {
            batches
                .entry(owner)
                .or_default()
                .push((id.to_owned(), Some(record.to_vec())));
        }
    }
    for (owner, records) in batches {
        for chunk in records.chunks(HANDOFF_BATCH) {
            let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
            if !send_handoff(&owner, me, chunk.to_vec()).await {
                continue;
            }
            for id in &ids {
                let Some(session) = lock(&state.sessions).remove(id) else {
                    continue;
                };
                lock(&HANDED_OFF).insert(id.clone());
                kept.forget(id);
                super::sessions::end_session(&session).await;
            }
            tracing::info!(
                sessions = ids.len(),
                owner = %owner,
                "cluster: {} sessions handed over to {owner}, their owner on the ring",
                ids.len()
            );
        }
    }
}

/// Sends one handoff batch to `owner`'s forwarder; whether it took every session.
async fn send_handoff(owner: &str, me: &str, records: Records) -> bool {
    let Some(target) = crate::cluster::member_actor::<ForwardMsg>(FORWARD_GROUP, owner) else {
        log_failed(
            owner,
            "no forwarder of it is known (sessions not handed over)",
        );
        return false;
    };
    let batch = ReplicaBatch {
        from: me.to_owned(),
        records,
        readable: true,
    };
    match target
        .call(|port| ForwardMsg::Handoff(batch, port), Some(HANDOFF_WAIT))
        .await
    {
        Ok(ractor::rpc::CallResult::Success(true)) => true,
        Ok(ractor::rpc::CallResult::Success(false)) => {
            log_failed(owner, "it did not take every session handed over");
            false
        }
        Ok(_) | Err(_) => {
            log_failed(owner, "the handoff failed or timed out");
            false
        }
    }
}

/// The receiving side of a handoff: makes each session of `batch` this node's own, replacing
/// the copy it holds (stopped; the handed record wins); `false` when one could not be made.
pub(super) async fn adopt_batch(state: &HttpState, batch: ReplicaBatch) -> bool {
    let Some(kept) = state.kept.clone() else {
        return false;
    };
    if !batch.readable {
        return false;
    }
    let (mut taken, mut replaced, mut all) = (0usize, 0usize, true);
    for (id, record) in batch.records {
        let Some(record) = record else { continue };
        let own = lock(&state.sessions).remove(&id);
        if let Some(own) = own {
            replaced += 1;
            super::sessions::end_session(&own).await;
        }
        match super::kept::adopt(state, &kept, &id, &record).await {
            Ok(()) => {
                taken += 1;
                // A replica of it here is older than what was handed over.
                if let Err(e) = super::kept::forget(&kept, REPLICA_TABLE, &id).await {
                    tracing::debug!(http_session = %id, error = %e, "a replica of a session handed over was not forgotten");
                }
            }
            Err(reason) => {
                all = false;
                tracing::warn!(http_session = %id, %reason, "cluster: a session handed over by {} could not be taken", batch.from);
            }
        }
    }
    tracing::info!(
        sessions = taken,
        replaced,
        from = %batch.from,
        "cluster: {taken} sessions handed over by {} ({replaced} replaced this node's own copy)",
        batch.from
    );
    all
}

/// The replicas whose owner left the ring and that nobody took over: each is dropped once it
/// has been so for `http.session_timeout` — on its owner it would have expired by then — so the
/// replica table does not keep dead sessions until its bound. A replica is orphaned when the
/// ring gives its session to this node (its owner left) and this node does not hold it.
struct Orphans {
    timeout: Duration,
    every: Duration,
    last: Instant,
    /// Since when each orphan has been seen so.
    since: HashMap<String, Instant>,
}

impl Orphans {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            every: (timeout / 4).max(RING_CHECK),
            last: Instant::now(),
            since: HashMap::new(),
        }
    }

    /// Every `every`: notes the orphans, drops the ones orphaned past the timeout.
    fn sweep(
        &mut self,
        state: &HttpState,
        kept: &KeptSessions,
        view: &crate::cluster::ClusterView,
    ) {
        let now = Instant::now();
        if now.saturating_duration_since(self.last) < self.every {
            return;
        }
        self.last = now;
        let table = kept.store.table(REPLICA_TABLE);
        let mut orphaned = Vec::new();
        table.scan(|id, _| {
            if view.owner(id.as_bytes()).as_deref() == Some(view.name()) {
                orphaned.push(id.to_owned());
            }
        });
        orphaned.retain(|id| lock(&state.sessions).get(id).is_none());
        let mut still = HashMap::with_capacity(orphaned.len());
        let mut expired = Vec::new();
        for id in orphaned {
            let since = self.since.get(&id).copied().unwrap_or(now);
            if now.saturating_duration_since(since) >= self.timeout {
                expired.push(id);
            } else {
                still.insert(id, since);
            }
        }
        self.since = still;
        if expired.is_empty() {
            return;
        }
        if let Err(e) = kept.store.delete_batch(REPLICA_TABLE, expired.clone()) {
            tracing::warn!(error = %e, "cluster: orphaned replicas not dropped");
            return;
        }
        tracing::info!(
            replicas = expired.len(),
            "cluster: {} orphaned replicas dropped (their owner left and nobody asked for them within http.session_timeout)",
            expired.len()
        );
    }
}

/// Sends the outbox's records in batches, each to the members the ring names after the
/// session's owner (this node left out).
async fn send_batches(mut queue: mpsc::Receiver<Outgoing>, me: String) {
    let mut taken = Vec::with_capacity(BATCH);
    loop {
        if queue.recv_many(&mut taken, BATCH).await == 0 {
            return;
        }
        let Some(view) = crate::cluster::current() else {
            taken.clear();
            continue;
        };
        let mut batches: BTreeMap<String, Records> = BTreeMap::new();
        let mut waiting = Vec::new();
        for outgoing in taken.drain(..) {
            for member in view.owners(outgoing.id.as_bytes()) {
                if member != me {
                    batches
                        .entry(member)
                        .or_default()
                        .push((outgoing.id.clone(), outgoing.record.clone()));
                }
            }
            waiting.extend(outgoing.done);
        }
        let sends = batches
            .into_iter()
            .map(|(member, records)| send_batch(member, me.clone(), records));
        futures::future::join_all(sends).await;
        for done in waiting {
            let _ = done.send(());
        }
    }
}

/// Sends one batch to `member`'s forwarder and waits for its answer (logged when it fails).
async fn send_batch(member: String, me: String, records: Records) {
    let Some(target) = crate::cluster::member_actor::<ForwardMsg>(FORWARD_GROUP, &member) else {
        log_failed(&member, "no forwarder of it is known");
        return;
    };
    let batch = ReplicaBatch {
        from: me,
        records,
        readable: true,
    };
    match target
        .call(|port| ForwardMsg::Replicate(batch, port), Some(CALL_WAIT))
        .await
    {
        Ok(ractor::rpc::CallResult::Success(true)) => {}
        Ok(ractor::rpc::CallResult::Success(false)) => log_failed(&member, "it refused the batch"),
        Ok(_) | Err(_) => log_failed(&member, "the call failed or timed out"),
    }
}

fn log_failed(member: &str, why: &str) {
    static LIMIT: LogLimiter = LogLimiter::per_second();
    if let Some(suppressed) = LIMIT.allow() {
        tracing::warn!(
            suppressed,
            "cluster: session records not replicated to {member}: {why}"
        );
    }
}

/// The receiving side: keeps `batch` in the replica table; `false` when it could not.
pub(super) async fn keep_batch(state: &HttpState, batch: ReplicaBatch) -> bool {
    let Some(kept) = state.kept.clone() else {
        return false;
    };
    if !batch.readable {
        return false;
    }
    let (mut puts, mut deletes) = (Vec::new(), Vec::new());
    for (id, record) in batch.records {
        match record {
            Some(record) => puts.push((id, record)),
            None => deletes.push(id),
        }
    }
    let from = batch.from;
    tokio::task::spawn_blocking(move || {
        let kept_all = kept
            .store
            .put_batch(REPLICA_TABLE, puts)
            .and_then(|()| kept.store.delete_batch(REPLICA_TABLE, deletes));
        match kept_all {
            Ok(()) => true,
            Err(e) => {
                static LIMIT: LogLimiter = LogLimiter::per_second();
                if let Some(suppressed) = LIMIT.allow() {
                    tracing::warn!(suppressed, error = %e, "cluster: session records from {from} not kept as replicas");
                }
                false
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// Whether this node keeps a replica of session `id`.
pub(super) fn has_replica(state: &HttpState, id: &str) -> bool {
    state
        .kept
        .as_ref()
        .is_some_and(|kept| kept.store.table(REPLICA_TABLE).contains(id))
}

/// Serves session `id` here from its replica, if this node does not hold it and keeps one:
/// the session is made again as a restart makes a kept one, kept as this node's own (and so
/// replicated onward), and its replica forgotten. Two requests at once take it over once.
pub(super) async fn take_over(state: &HttpState, id: &str) {
    let Some(kept) = &state.kept else { return };
    if crate::cluster::current().is_none() || lock(&state.sessions).get(id).is_some() {
        return;
    }
    if !has_replica(state, id) {
        return;
    }
    static TAKING: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());
    /// Takes `id` off [`TAKING`] however the take-over ends (a request dropped half-way too:
    /// else the id stayed there and every later request waited and got 404).
    struct Taking<'a>(&'a str);
    impl Drop for Taking<'_> {
        fn drop(&mut self) {
            lock(&TAKING).remove(self.0);
        }
    }
    if !lock(&TAKING).insert(id.to_owned()) {
        // Another request is taking it over: wait for it, briefly.
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if lock(&state.sessions).get(id).is_some() {
                return;
            }
        }
        return;
    }
    let taking = Taking(id);
    let outcome = super::kept::take_over(state, kept, id, REPLICA_TABLE).await;
    drop(taking);
    match outcome {
        Ok(true) => tracing::info!(
            http_session = %id,
            "cluster: session taken over from its replica (its owner left the ring)"
        ),
        Ok(false) => {}
        Err(reason) => {
            tracing::warn!(http_session = %id, %reason, "cluster: a replicated session could not be taken over")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreSettings};

    #[tokio::test]
    async fn a_new_sessions_record_goes_out_once_and_wakes_its_initialize_when_sent() {
        let kept = KeptSessions::new(Store::open(StoreSettings::in_memory()), 10);
        let (outbox, mut queue) = mpsc::channel(16);
        *lock(&OUTBOX) = Some(outbox.clone());
        let follower = tokio::spawn(follow_changes(
            kept.store.subscribe(),
            Arc::clone(&kept),
            outbox,
        ));
        let record = crate::transport::http::kept::StoredSession::sample(1);
        let put = || {
            kept.store
                .put(SESSIONS_TABLE, "new", record.clone())
                .is_ok()
        };

        let wait = expect_created("new").expect("replicating");
        assert!(put());
        let sent = queue.recv().await.expect("the record goes out");
        assert_eq!(sent.id, "new");
        assert!(sent.record.is_some());
        // The replicas have it: the initialize's wait ends.
        sent.done.expect("the initialize waits on it").send(()).ok();
        tokio::time::timeout(CREATE_WAIT / 2, wait.wait())
            .await
            .expect("woken when sent, not at the deadline");

        // A later change goes out once, with no one waiting on it; nothing else was queued.
        assert!(put());
        let later = queue.recv().await.expect("the change goes out");
        assert!(later.done.is_none());
        assert!(queue.try_recv().is_err(), "each record went out once");
        assert!(lock(&CREATED).is_empty(), "no waiter left behind");
        follower.abort();
        *lock(&OUTBOX) = None;
    }
}
