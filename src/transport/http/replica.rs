//! Owns session replication across the cluster and the takeover it allows (docs/cluster.md,
//! "Sessions that outlive their node"). Every change of a kept Streamable HTTP session's record
//! (the store's change stream, table `http_sessions`: the replication hook) is sent to the
//! members the ring names after the session's owner (`cluster.replicas` of them), which keep it
//! in their store's table [`REPLICA_TABLE`]; the record of a session `initialize` makes is sent
//! before the answer goes out, and waited for up to [`CREATE_WAIT`]. A request for a session this
//! node does not hold but keeps a replica of — the ring gives the session to this node now, its
//! owner having left — makes the session again from the replica (as a restart does from the
//! store) and serves it. When the ring changes, every session this node holds is sent again to
//! the members the new ring names (a member that joined takes its share), in the background.
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
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
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

/// Records dropped because the outbox was full, since start.
static DROPPED: AtomicU64 = AtomicU64::new(0);

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

/// Whether records are being replicated (the node runs clustered and keeps sessions).
pub(super) fn replicating() -> bool {
    lock(&OUTBOX).is_some()
}

/// Sends the new session `id`'s `record` and waits until its replicas have it (or
/// [`CREATE_WAIT`] passed: the session is served either way); nothing when not replicating.
pub(super) async fn created(id: &str, record: Vec<u8>) {
    let Some(outbox) = lock(&OUTBOX).clone() else {
        return;
    };
    let (done, replicated) = oneshot::channel();
    let outgoing = Outgoing {
        id: id.to_owned(),
        record: Some(record),
        done: Some(done),
    };
    if offer(&outbox, outgoing) {
        let _ = tokio::time::timeout(CREATE_WAIT, replicated).await;
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
                offer(
                    &outbox,
                    Outgoing {
                        id: change.key,
                        record: change.value.map(|v| v.to_vec()),
                        done: None,
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

/// Sends every kept session again when the ring changes: the members that take over from each
/// may be others now.
async fn follow_ring(state: Arc<HttpState>, outbox: mpsc::Sender<Outgoing>) {
    let Some(kept) = state.kept.clone() else {
        return;
    };
    let mut last = crate::cluster::current().map(|view| view.ring());
    loop {
        tokio::time::sleep(RING_CHECK).await;
        let Some(view) = crate::cluster::current() else {
            return;
        };
        let ring = view.ring();
        if last.as_ref().is_some_and(|last| Arc::ptr_eq(last, &ring)) {
            continue;
        }
        last = Some(ring);
        send_all(&kept, &outbox).await;
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
    static TAKING: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let another_is_taking = {
        let mut taking = lock(&TAKING);
        let busy = taking.iter().any(|t| t == id);
        if !busy {
            taking.push(id.to_owned());
        }
        busy
    };
    if another_is_taking {
        // Wait for it, briefly.
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if lock(&state.sessions).get(id).is_some() {
                return;
            }
        }
        return;
    }
    let outcome = super::kept::take_over(state, kept, id, REPLICA_TABLE).await;
    lock(&TAKING).retain(|t| t != id);
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
