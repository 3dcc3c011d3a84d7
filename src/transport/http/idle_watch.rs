//! Owns the watch on idle HTTP connections: a connection with no request in progress for
//! `http.header_read_timeout` is closed — a client stalled in the middle of a request head
//! (slowloris), or a keep-alive connection left idle. A request is in progress from its head
//! being read until its response body is sent or dropped, so a slow handler, a large upload or a
//! long SSE stream is never cut.
//!
//! hyper's own header read timeout did this with a timer armed at every request head and dropped
//! once the head was read, plus a turn of its read loop to poll it: ~1,400 instructions a
//! request, a tenth of what hyper alone costs a request here. Here every connection is one entry
//! in a table that a sweeper task reads every tick; a request costs two atomic counts and a
//! load of the tick count.
//!
//! A connection is closed between the timeout and one tick after it. The tick is a twentieth of
//! the timeout (between 5 ms and 500 ms): a 10 s timeout closes within 10.5 s, and a listener
//! with no connection wakes twice a second. The sweeper stops once the watch and every
//! connection it watched are gone.
//!
//! The watch is owned by the listener's accept loop: when the listener stops or is killed (its
//! loop dropped, and with it the watch), its connections go with it rather than being served on
//! by tasks nobody owns — each idle one at once, each busy one when its request ends, and any
//! still busy [`DRAIN`] later (a long SSE stream).

use crate::locks::lock;
use futures::task::AtomicWaker;
use slab::Slab;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// How long the connections of a watch that was dropped (its listener gone) may finish the
/// requests in progress before they are closed anyway.
pub(super) const DRAIN: Duration = Duration::from_secs(5);

/// What the sweeper knows of one connection.
#[derive(Debug)]
pub(super) struct Activity {
    /// The table's tick count.
    clock: Arc<AtomicU64>,
    /// Requests whose responses are not finished.
    in_progress: AtomicUsize,
    /// The tick at which the last request finished (or the connection opened).
    last_active: AtomicU64,
    /// Set by the sweeper: the connection has been idle too long.
    expired: AtomicBool,
    /// The connection's task, woken when it expires.
    waker: AtomicWaker,
}

impl Activity {
    /// A request has begun (its head is read); it is in progress until the returned guard drops.
    pub(super) fn begin(self: &Arc<Self>) -> InProgress {
        self.in_progress.fetch_add(1, Ordering::Relaxed);
        InProgress(Arc::clone(self))
    }
}

/// A request in progress on a watched connection (see [`Activity::begin`]).
#[derive(Debug)]
pub(super) struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        let activity = &self.0;
        // The time first: a sweeper that sees the count drop sees it too.
        let now = activity.clock.load(Ordering::Relaxed);
        activity.last_active.store(now, Ordering::Relaxed);
        activity.in_progress.fetch_sub(1, Ordering::Release);
    }
}

/// The connections watched, and the tick count.
#[derive(Default)]
struct Table {
    connections: Mutex<Slab<Arc<Activity>>>,
    clock: Arc<AtomicU64>,
    /// The tick at which the watch was dropped (its listener gone), plus one; 0 while it lives.
    dropped_at: AtomicU64,
}

impl Table {
    /// One tick: expires the connections idle for `allowed` ticks or more; once the watch was
    /// dropped, every idle one, and every one after `drain` ticks.
    fn sweep(&self, allowed: u64, drain: u64) {
        let now = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        self.expire(now, allowed, drain);
    }

    fn expire(&self, now: u64, allowed: u64, drain: u64) {
        let dropped_at = self.dropped_at.load(Ordering::Acquire);
        let (allowed, drained) = match dropped_at {
            0 => (allowed, false),
            at => (0, now.saturating_sub(at - 1) >= drain),
        };
        for (_, activity) in lock(&self.connections).iter() {
            if activity.expired.load(Ordering::Relaxed)
                || (activity.in_progress.load(Ordering::Acquire) > 0 && !drained)
            {
                continue;
            }
            if drained
                || now.saturating_sub(activity.last_active.load(Ordering::Relaxed)) >= allowed
            {
                activity.expired.store(true, Ordering::Release);
                activity.waker.wake();
            }
        }
    }
}

/// The watch over one listener's connections.
pub(super) struct IdleWatch {
    table: Arc<Table>,
}

/// The listener is gone: its idle connections are closed now, the others as their requests end
/// (by the sweeper, which runs on while any is watched), at the latest after [`DRAIN`].
impl Drop for IdleWatch {
    fn drop(&mut self) {
        let now = self.table.clock.load(Ordering::Relaxed);
        self.table.dropped_at.store(now + 1, Ordering::Release);
        self.table.expire(now, 0, u64::MAX);
    }
}

impl IdleWatch {
    /// A watch closing connections idle for `timeout`, with its sweeper on the current runtime.
    pub(super) fn new(timeout: Duration) -> Self {
        let tick = (timeout / 20).clamp(Duration::from_millis(5), Duration::from_millis(500));
        let allowed = timeout.as_nanos().div_ceil(tick.as_nanos()).max(1);
        let allowed = u64::try_from(allowed).unwrap_or(u64::MAX);
        let drain = u64::try_from(DRAIN.as_nanos().div_ceil(tick.as_nanos())).unwrap_or(u64::MAX);
        let table = Arc::new(Table::default());
        let swept = Arc::downgrade(&table);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(tick);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(table) = swept.upgrade() else {
                    return;
                };
                table.sweep(allowed, drain);
            }
        });
        Self { table }
    }

    /// Starts watching a connection, idle from now.
    pub(super) fn watch(&self) -> Watched {
        let activity = Arc::new(Activity {
            clock: Arc::clone(&self.table.clock),
            in_progress: AtomicUsize::new(0),
            last_active: AtomicU64::new(self.table.clock.load(Ordering::Relaxed)),
            expired: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        let slot = lock(&self.table.connections).insert(Arc::clone(&activity));
        Watched {
            table: Arc::clone(&self.table),
            slot,
            activity,
        }
    }

    /// How many connections are watched.
    #[cfg(test)]
    fn watched(&self) -> usize {
        lock(&self.table.connections).len()
    }
}

/// One watched connection; dropping it ends the watch.
pub(super) struct Watched {
    table: Arc<Table>,
    slot: usize,
    activity: Arc<Activity>,
}

impl Watched {
    /// The connection's activity, to mark its requests with.
    pub(super) fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// Whether the watch was dropped: the listener that owned the connection is gone.
    pub(super) fn listener_gone(&self) -> bool {
        self.table.dropped_at.load(Ordering::Acquire) != 0
    }

    /// Resolves once the connection has been idle too long, or its listener is gone (see
    /// [`IdleWatch`]'s drop).
    pub(super) async fn expired(&self) {
        poll_fn(|cx: &mut Context<'_>| {
            if self.activity.expired.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.activity.waker.register(cx.waker());
            // Expired between the check and the registration: the wake may have been missed.
            if self.activity.expired.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        lock(&self.table.connections).try_remove(self.slot);
    }
}

/// A response body holding its request in progress until it is sent or dropped.
#[derive(Debug)]
pub(super) struct Tracked<B> {
    body: B,
    _in_progress: InProgress,
}

impl<B> Tracked<B> {
    /// `body`, with its request in progress until it is finished.
    pub(super) fn new(body: B, in_progress: InProgress) -> Self {
        Self {
            body,
            _in_progress: in_progress,
        }
    }
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Waits for `watched` to expire, up to `limit`; how long it took, if it did.
    async fn expiry(watched: &Watched, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        tokio::time::timeout(limit, watched.expired())
            .await
            .ok()
            .map(|()| started.elapsed())
    }

    #[tokio::test]
    async fn an_idle_connection_expires_after_the_timeout() {
        let watch = IdleWatch::new(Duration::from_millis(100)); // 5 ms ticks
        let watched = watch.watch();
        let took = expiry(&watched, Duration::from_secs(5)).await;
        let took = took.expect("an idle connection expires");
        assert!(took >= Duration::from_millis(90), "{took:?}");
        // It stays expired; dropping it ends the watch.
        assert!(expiry(&watched, Duration::from_millis(1)).await.is_some());
        assert_eq!(watch.watched(), 1);
        drop(watched);
        assert_eq!(watch.watched(), 0);
    }

    #[tokio::test]
    async fn a_request_in_progress_keeps_it_and_its_end_restarts_the_wait() {
        let watch = IdleWatch::new(Duration::from_millis(100));
        let watched = watch.watch();
        let request = watched.activity().begin();
        // A response three timeouts long: the connection is kept.
        assert!(expiry(&watched, Duration::from_millis(300)).await.is_none());
        let ended = Instant::now();
        drop(request);
        let took = expiry(&watched, Duration::from_secs(5)).await;
        assert!(took.is_some(), "idle again after the response");
        let idle = ended.elapsed();
        assert!(
            idle >= Duration::from_millis(90),
            "counted from the end: {idle:?}"
        );

        // Through a tracked body: in progress until the body is dropped.
        let watched = watch.watch();
        let body = Tracked::new(
            http_body_util::Empty::<bytes::Bytes>::new(),
            watched.activity().begin(),
        );
        assert!(expiry(&watched, Duration::from_millis(300)).await.is_none());
        drop(body);
        assert!(expiry(&watched, Duration::from_secs(5)).await.is_some());
    }

    #[tokio::test]
    async fn a_dropped_watch_closes_idle_connections_at_once_and_busy_ones_when_their_request_ends()
    {
        let watch = IdleWatch::new(Duration::from_secs(3600)); // 500 ms ticks: never idle here
        let idle = watch.watch();
        let busy = watch.watch();
        let request = busy.activity().begin();
        assert!(expiry(&idle, Duration::from_millis(50)).await.is_none());
        assert!(!idle.listener_gone());
        drop(watch);
        assert!(idle.listener_gone());
        assert!(
            expiry(&idle, Duration::from_millis(1)).await.is_some(),
            "the idle one at once"
        );
        assert!(
            expiry(&busy, Duration::from_millis(700)).await.is_none(),
            "the busy one finishes its request"
        );
        drop(request);
        assert!(
            expiry(&busy, Duration::from_secs(2)).await.is_some(),
            "then it is closed, at the next tick"
        );
    }

    #[tokio::test]
    async fn a_request_still_in_progress_the_drain_after_the_watch_went_is_cut() {
        let watch = IdleWatch::new(Duration::from_millis(100)); // 5 ms ticks
        let busy = watch.watch();
        let _stream = busy.activity().begin();
        drop(watch);
        let took = expiry(&busy, DRAIN * 3).await;
        let took = took.expect("cut after the drain");
        assert!(took >= DRAIN - Duration::from_millis(10), "{took:?}");
    }

    #[tokio::test]
    async fn the_sweeper_stops_once_nothing_is_watched() {
        let tasks = || {
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        };
        let before = tasks();
        let watch = IdleWatch::new(Duration::from_millis(100));
        let watched = watch.watch();
        assert_eq!(tasks(), before + 1, "the sweeper runs");
        drop(watch);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(tasks(), before + 1, "a watched connection keeps it running");
        drop(watched);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(tasks(), before, "then it stops");
    }
}
