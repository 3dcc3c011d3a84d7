//! Owns hibernated line connections: a listener's table of connections whose actor has stopped
//! while idle (`connection_hibernate_after`), each a small task holding the socket's halves,
//! the outgoing queue, the session, the `max_connections` slot and the metrics gauge, waiting
//! without a read buffer for the client's next byte, a frame queued for it (a notification) or
//! its idle deadline; then it starts a new connection actor with them under
//! `erlmcp_tcp_connections`, which reads, writes or closes as the one before would have.
//!
//! The table belongs to the listener's state: when the listener goes (stopped, killed, its
//! transport supervisor with it), the table goes and aborts every hibernated task, closing its
//! socket and ending its session, as a killed connection actor's state does.

use super::{BoxRead, BoxWrite, ConnectionArgs, ConnectionParts};
use crate::locks::lock;
use crate::outbound::OutboundReceiver;
use crate::transport::TransportContext;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Connections hibernating on this node, every listener's.
static HIBERNATING: AtomicUsize = AtomicUsize::new(0);

/// Line connections hibernating on this node (no actor until their client or a notification
/// wakes them).
pub fn hibernating_connections() -> usize {
    HIBERNATING.load(Ordering::Relaxed)
}

/// A hibernated connection: everything its actor had but the actor and its tasks.
pub(crate) struct Asleep {
    /// Session, queue's sending side, slot, guards, gauge, label.
    pub(crate) parts: ConnectionParts,
    /// The socket's read half (it holds no buffer).
    pub(crate) reader: BoxRead,
    /// The socket's write half.
    pub(crate) writer: BoxWrite,
    /// The outgoing queue's receiving side.
    pub(crate) queue: OutboundReceiver,
    /// When the client went quiet: the idle deadline runs from there.
    pub(crate) quiet_since: Instant,
}

/// One listener's hibernated connections.
pub(crate) struct Hibernated {
    /// What a woken connection's actor starts with.
    ctx: TransportContext,
    /// Starts a woken connection's actor (under the listener's connection supervisor).
    start: fn(ConnectionArgs) -> futures::future::BoxFuture<'static, ()>,
    tasks: Mutex<HashMap<u64, AbortHandle>>,
    next: AtomicU64,
}

/// Counts one hibernated connection while its task (run or not) lives.
struct Counted;

impl Counted {
    fn new() -> Self {
        HIBERNATING.fetch_add(1, Ordering::Relaxed);
        Self
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        HIBERNATING.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Hibernated {
    /// A table whose woken connections start with `start`.
    pub(crate) fn new(
        ctx: TransportContext,
        start: fn(ConnectionArgs) -> futures::future::BoxFuture<'static, ()>,
    ) -> Self {
        Self {
            ctx,
            start,
            tasks: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        }
    }

    /// How many connections this table holds.
    pub(crate) fn len(&self) -> usize {
        lock(&self.tasks).len()
    }

    /// Keeps `asleep` until it wakes.
    pub(crate) fn keep(self: &Arc<Self>, asleep: Asleep) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let idle_at = self
            .ctx
            .limits
            .idle_timeout
            .map(|idle| asleep.quiet_since + idle);
        let table = Arc::downgrade(self);
        let counted = Counted::new();
        // Under the lock, so that a task that wakes at once finds itself there to leave.
        let mut tasks = lock(&self.tasks);
        let task = tokio::spawn(sleep(asleep, idle_at, table, id, counted));
        tasks.insert(id, task.abort_handle());
    }
}

/// The table goes with its listener: every connection in it is closed.
impl Drop for Hibernated {
    fn drop(&mut self) {
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for (_, task) in tasks {
            task.abort();
        }
    }
}

/// A hibernated connection's task: waits, then wakes the connection.
async fn sleep(
    mut asleep: Asleep,
    idle_at: Option<Instant>,
    table: Weak<Hibernated>,
    id: u64,
    counted: Counted,
) {
    {
        let Asleep { reader, queue, .. } = &mut asleep;
        let readable = std::future::poll_fn(|cx| reader.poll_readable(cx));
        let queued = queue.rx.ready();
        match idle_at {
            // Past the deadline, the woken actor's reader finds it passed and closes as idle.
            Some(at) => tokio::select! {
                _ = readable => {}
                () = queued => {}
                () = tokio::time::sleep_until(at) => {}
            },
            None => tokio::select! {
                _ = readable => {}
                () = queued => {}
            },
        }
    }
    // Boxed, as it runs once.
    Box::pin(wake(asleep, table, id, counted)).await;
}

/// Leaves the table and starts the connection's actor again; where the table (its listener) is
/// gone, the connection is dropped: its socket closes, its session ends.
async fn wake(asleep: Asleep, table: Weak<Hibernated>, id: u64, counted: Counted) {
    let Some(strong) = table.upgrade() else {
        return;
    };
    lock(&strong.tasks).remove(&id);
    let args = ConnectionArgs::woken(asleep, strong.ctx.clone(), table);
    let start = strong.start;
    drop(strong);
    drop(counted);
    start(args).await;
}
