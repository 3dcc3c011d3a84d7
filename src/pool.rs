//! Owns named worker pools, with poolboy's semantics: `size` workers made (warmed) at start,
//! `max_overflow` more made on demand and removed after `overflow_idle` idle, a checkout that
//! waits in FIFO order up to a timeout, a guard ([`PoolGuard`]) that gives the worker back however
//! its borrower ends (done, dropped, cancelled, panicking), and a health check so that no borrower
//! is lent a dead worker.
//!
//! The checkout path touches no mailbox: one briefly held lock guards the permits
//! (`pool/permits.rs`: one per worker that may be lent at once, `size + max_overflow`, with a line
//! of waiters served in FIFO order) and the idle workers together, so a checkout with an idle
//! worker and no one waiting is one lock taken — permit, worker and count at once — and its
//! checkin one more: the cost of a bare `Mutex<Vec>` pop and push (`benches/pool.rs`, `erlmcp
//! bench core`). Everything slow belongs to
//! the pool's owner actor (`erlmcp_pool_owner:NAME`, `pool/owner.rs`), under the pool's own
//! supervisor (`erlmcp_pool:NAME`, under `erlmcp_pool_sup`): warming at start, replacing crashed
//! workers (each replacement counted, and held to the supervisor's restart intensity: past it the
//! owner fails and its supervisor restarts it, as OTP would), reaping idle overflow workers.
//!
//! A worker is anything a [`WorkerFactory`] makes: a database client of an embedding program, or
//! a slot of the tool pool (`pool/tool_pool.rs`) that runs blocking tools. Pools are found by name
//! through [`named`] (one tree per process, as ractor's registered names).

pub mod exposition;
mod factory;
mod guard;
mod idle;
pub mod named;
pub(crate) mod owner;
mod permits;
mod stats;
pub mod tool_pool;

use crate::locks::lock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use crate::config::{PoolConfig, PoolStrategy, TOOL_POOL};
pub use factory::{WorkerError, WorkerFactory};
use guard::Holder;
pub use guard::PoolGuard;
pub use stats::PoolStats;

use factory::DynFactory;
use idle::{IdleSet, Member};
use permits::{Permits, Place, TryTake, WaitFailed};

/// Why a checkout (or a pool lookup) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// No worker was free within the checkout timeout.
    #[error(
        "pool `{pool}`: no worker free within {waited:?} (all busy; raise its size or max_overflow)"
    )]
    Timeout {
        /// The pool.
        pool: String,
        /// How long the checkout waited.
        waited: Duration,
    },
    /// The pool was closed (its node is stopping).
    #[error("pool `{pool}` is closed")]
    Closed {
        /// The pool.
        pool: String,
    },
    /// A worker was needed and the factory could not make one.
    #[error("pool `{pool}` could not make a worker: {reason}")]
    Create {
        /// The pool.
        pool: String,
        /// The factory's error.
        reason: String,
    },
    /// No pool of this name runs.
    #[error("no pool named `{pool}` runs")]
    Unknown {
        /// The name asked for.
        pool: String,
    },
    /// A pool of this name runs, with workers of another type.
    #[error("pool `{pool}` holds workers of another type than the one asked for")]
    WrongType {
        /// The pool.
        pool: String,
    },
    /// A pool of this name is already in the set.
    #[error("pool `{pool}` is declared twice")]
    Duplicate {
        /// The pool.
        pool: String,
    },
    /// The work given to a worker failed without an answer (it panicked).
    #[error("pool `{pool}`: the work failed: {reason}")]
    Failed {
        /// The pool.
        pool: String,
        /// What happened.
        reason: String,
    },
}

/// A pool of workers of type `W`; cheap to clone (a handle).
pub struct Pool<W: Send + 'static> {
    shared: Arc<Shared<W>>,
}

impl<W: Send + 'static> Clone for Pool<W> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<W: Send + 'static> std::fmt::Debug for Pool<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.shared.name)
            .finish()
    }
}

/// What every handle of one pool shares.
pub(crate) struct Shared<W> {
    name: String,
    size: usize,
    max_overflow: usize,
    overflow_idle: Duration,
    checkout_timeout: Duration,
    health_check: bool,
    strategy: PoolStrategy,
    weights: Vec<u32>,
    /// The permits and the idle workers, under one lock taken once per checkout and checkin.
    inner: Mutex<Inner<W>>,
    factory: Arc<dyn DynFactory<W>>,
    /// Workers alive (idle, lent, or being made).
    live: AtomicUsize,
    timeouts: AtomicU64,
    restarts: AtomicU64,
    /// Wakes checkouts waiting in `make_for` (see [`Inner::makers_waiting`]).
    room: tokio::sync::Notify,
}

/// What a checkout and a checkin change, together.
struct Inner<W> {
    /// One permit per worker that may be lent at once; waiters are served in order.
    permits: Permits,
    idle: IdleSet<W>,
    checkouts: u64,
    /// Checkouts that hold a permit but found neither an idle worker nor room to make one (a
    /// replacement is being made): they wait for `room`, woken when a worker is put back or a
    /// place frees, instead of spinning.
    makers_waiting: usize,
}

impl<W: Send + 'static> Pool<W> {
    /// A pool named `name`, its workers made by `factory`, sized and tuned by `settings`
    /// (`size` absent: [`crate::config::pools::DEFAULT_POOL_SIZE`]). No worker is made yet: the
    /// owner actor warms the pool when it starts (a checkout before that makes its own worker).
    pub fn new<F>(name: &str, settings: &PoolConfig, factory: F) -> Self
    where
        F: WorkerFactory<Worker = W>,
    {
        let size = settings
            .size
            .unwrap_or(crate::config::pools::DEFAULT_POOL_SIZE)
            .max(1);
        let capacity = size + settings.max_overflow;
        Self {
            shared: Arc::new(Shared {
                name: name.to_owned(),
                size,
                max_overflow: settings.max_overflow,
                overflow_idle: settings.overflow_idle(),
                checkout_timeout: settings.checkout_timeout(),
                health_check: settings.health_check,
                strategy: settings.strategy,
                weights: settings.weights.clone(),
                inner: Mutex::new(Inner {
                    permits: Permits::new(capacity),
                    idle: IdleSet::new(capacity),
                    checkouts: 0,
                    makers_waiting: 0,
                }),
                factory: Arc::new(factory),
                live: AtomicUsize::new(0),
                timeouts: AtomicU64::new(0),
                restarts: AtomicU64::new(0),
                room: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Lends a worker, waiting (behind earlier waiters) up to the pool's `checkout_timeout`. The
    /// guard borrows this handle; [`Pool::checkout_owned`] lends one that can be moved to
    /// another task or thread.
    ///
    /// (These return `lend`'s future itself rather than being `async fn`s awaiting it: each
    /// layer of future would move the result once more, measured on the idle checkout.)
    pub fn checkout(&self) -> impl Future<Output = Result<PoolGuard<'_, W>, PoolError>> + '_ {
        self.lend(Holder::Borrowed(&self.shared), self.shared.checkout_timeout)
    }

    /// Lends a worker, waiting (behind earlier waiters) up to `timeout`.
    pub fn checkout_within(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<PoolGuard<'_, W>, PoolError>> + '_ {
        self.lend(Holder::Borrowed(&self.shared), timeout)
    }

    /// Lends a worker whose guard holds the pool itself (`'static`: it may be moved into a
    /// spawned task or a blocking thread), waiting up to the pool's `checkout_timeout`.
    pub fn checkout_owned(
        &self,
    ) -> impl Future<Output = Result<PoolGuard<'static, W>, PoolError>> + '_ {
        let timeout = self.shared.checkout_timeout;
        self.lend(Holder::Owned(Arc::clone(&self.shared)), timeout)
    }

    /// A worker for a guard that reaches the pool through `holder`.
    async fn lend<'a>(
        &self,
        holder: Holder<'a, W>,
        timeout: Duration,
    ) -> Result<PoolGuard<'a, W>, PoolError> {
        let shared = &self.shared;
        // The fast path: a permit and an idle worker under one lock.
        let picked = {
            let now = shared.lend_clock();
            let mut inner = shared.lock();
            match inner.permits.try_take() {
                TryTake::Taken => Ok(inner.pick(shared, now)),
                TryTake::Closed => return Err(shared.closed()),
                TryTake::Busy => Err(()),
            }
        };
        let picked = match picked {
            Ok(picked) => picked,
            // The slow paths are boxed so that this future stays small: a future is moved
            // whole, and the idle checkout is the one that must be cheap.
            Err(()) => {
                Box::pin(shared.wait_for_permit(timeout)).await?;
                let now = shared.lend_clock();
                shared.lock().pick(shared, now)
            }
        };
        // The permit is the lease's from here: given back if anything below fails or the
        // borrower is cancelled.
        let lease = guard::Lease::new(holder);
        match shared.healthy(picked) {
            Some(member) => Ok(PoolGuard::new(lease, member)),
            None => Box::pin(shared.make_for(lease)).await,
        }
    }

    /// Gives a worker back (the same as dropping its guard).
    pub fn checkin(&self, guard: PoolGuard<'_, W>) {
        drop(guard);
    }

    /// What the pool holds and has done.
    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }

    /// Closes the pool: waiting and later checkouts fail with [`PoolError::Closed`]; idle
    /// workers are dropped, lent ones when they come back.
    pub fn close(&self) {
        let drained = {
            let mut inner = self.shared.lock();
            inner.permits.close();
            inner.idle.drain()
        };
        self.shared.live.fetch_sub(drained.len(), Ordering::Relaxed);
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<W>> {
        &self.shared
    }
}

/// A checkout's place in the line for a permit: leaves it when the wait ends without one (timed
/// out, or its future dropped), giving back a permit handed to it meanwhile.
struct InLine<'a, W> {
    shared: &'a Shared<W>,
    place: Place,
    /// The wait ended with a permit, or with the line closed: nothing to undo.
    settled: bool,
}

impl<W> Drop for InLine<'_, W> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut inner = self.shared.lock();
        // Handed a permit between the timeout and the lock: it goes to the next in line.
        if !inner.permits.leave_line(self.place.ticket) && self.place.received.try_recv().is_ok() {
            inner.permits.give_back();
        }
    }
}

/// A worker being made: its place in `live` is given back unless it is made.
struct Reservation<'a, W> {
    shared: &'a Shared<W>,
    slot: usize,
    made: bool,
}

impl<W> Drop for Reservation<'_, W> {
    fn drop(&mut self) {
        if !self.made {
            self.shared.retire_slot(self.slot);
        }
    }
}

impl<W> Inner<W> {
    /// The idle worker the strategy picks, counted as a checkout (the caller holds a permit).
    /// `now`: [`Shared::lend_clock`], read before the lock was taken.
    #[inline]
    fn pick(&mut self, shared: &Shared<W>, now: Option<Instant>) -> Option<Member<W>> {
        let member = self.idle.pick(shared.strategy, &shared.weights, now)?;
        self.checkouts += 1;
        Some(member)
    }
}

impl<W> Shared<W> {
    fn lock(&self) -> MutexGuard<'_, Inner<W>> {
        lock(&self.inner)
    }

    /// Wakes checkouts waiting in `make_for`, if `inner` (just changed) says some wait.
    fn wake_makers(&self, inner: MutexGuard<'_, Inner<W>>) {
        let waiting = inner.makers_waiting > 0;
        drop(inner);
        if waiting {
            self.room.notify_waiters();
        }
    }

    /// Gives a worker's place back: its slot, and its count in `live`.
    fn retire_slot(&self, slot: usize) {
        let mut inner = self.lock();
        inner.idle.free_slot(slot);
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.wake_makers(inner);
    }

    /// When a worker lent now was lent, where the adaptive strategy measures hold times (no
    /// clock read for the others).
    fn lend_clock(&self) -> Option<Instant> {
        (self.strategy == PoolStrategy::Adaptive).then(Instant::now)
    }

    /// Gives a permit back (to the first waiter, if any).
    fn give_back_permit(&self) {
        self.lock().permits.give_back();
    }
}

impl<W: Send + 'static> Shared<W> {
    fn closed(&self) -> PoolError {
        PoolError::Closed {
            pool: self.name.clone(),
        }
    }

    /// Waits in line for a permit, up to `timeout` (counted when it runs out). Dropped while
    /// waiting (its checkout cancelled), it leaves the line, and a permit handed to it meanwhile
    /// is given back.
    async fn wait_for_permit(&self, timeout: Duration) -> Result<(), PoolError> {
        let started = Instant::now();
        let joined = self.lock().permits.join_line();
        let outcome = match joined {
            Err(failed) => Err(failed),
            Ok(place) => {
                let mut waiting = InLine {
                    shared: self,
                    place,
                    settled: false,
                };
                let outcome = match tokio::time::timeout(timeout, &mut waiting.place.received).await
                {
                    Ok(Ok(())) => Ok(()),
                    // The line was cleared by `close`: no permit came.
                    Ok(Err(_)) => Err(WaitFailed::Closed),
                    Err(_) => Err(WaitFailed::Timeout),
                };
                // A timed-out wait is undone by `InLine`'s drop; the others hold nothing.
                waiting.settled = outcome != Err(WaitFailed::Timeout);
                outcome
            }
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(WaitFailed::Closed) => Err(self.closed()),
            Err(WaitFailed::Timeout) => {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(PoolError::Timeout {
                    pool: self.name.clone(),
                    waited: started.elapsed(),
                })
            }
        }
    }

    /// `picked` if it passes its health check, else (replacing each that fails) the next idle
    /// worker the strategy picks that passes.
    #[inline]
    fn healthy(&self, picked: Option<Member<W>>) -> Option<Member<W>> {
        match picked {
            Some(member) if !self.health_check => Some(member),
            picked => self.checked(picked),
        }
    }

    fn checked(&self, mut picked: Option<Member<W>>) -> Option<Member<W>> {
        loop {
            let mut member = picked?;
            if !self.health_check || self.factory.is_healthy(&mut member.worker) {
                return Some(member);
            }
            self.lost(member);
            let now = self.lend_clock();
            let mut inner = self.lock();
            // The dead one was counted as a checkout when picked; it was not lent.
            inner.checkouts = inner.checkouts.saturating_sub(1);
            picked = inner.pick(self, now);
        }
    }

    /// A worker for a checkout holding `lease` that found none idle: made, or, when every slot
    /// is taken by one being made or given back right now, the next one idle.
    async fn make_for<'a>(
        &self,
        lease: guard::Lease<'a, W>,
    ) -> Result<PoolGuard<'a, W>, PoolError> {
        loop {
            // Listening before looking: a worker put back or a place freed after the look
            // below wakes this wait (see `wake_makers`).
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            self.lock().makers_waiting += 1;
            let looked = self.make_member(self.size + self.max_overflow).await;
            self.lock().makers_waiting -= 1;
            if let Some(member) = looked? {
                self.lock().checkouts += 1;
                return Ok(PoolGuard::new(lease, member));
            }
            let now = self.lend_clock();
            let picked = self.lock().pick(self, now);
            if let Some(member) = self.healthy(picked) {
                return Ok(PoolGuard::new(lease, member));
            }
            room.await;
        }
    }

    /// Makes one worker if fewer than `limit` are alive: `Ok(None)` when `limit` are.
    async fn make_member(&self, limit: usize) -> Result<Option<Member<W>>, PoolError> {
        let reserved = self
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < limit).then_some(live + 1)
            });
        if reserved.is_err() {
            return Ok(None);
        }
        let slot = self.lock().idle.take_slot();
        let mut reservation = Reservation {
            shared: self,
            slot,
            made: false,
        };
        match self.factory.create().await {
            Ok(worker) => {
                reservation.made = true;
                Ok(Some(Member::new(worker, slot)))
            }
            Err(e) => Err(PoolError::Create {
                pool: self.name.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// Makes workers until `size` are alive, each put with the idle ones.
    pub(crate) async fn fill_to_size(&self) -> Result<usize, PoolError> {
        let mut made = 0;
        while let Some(member) = self.make_member(self.size).await? {
            self.put_idle(member, false);
            made += 1;
        }
        Ok(made)
    }

    /// Puts `member` with the idle workers, and, when `with_permit`, its borrower's permit back
    /// (to the first waiter, if any) under the same lock.
    #[inline]
    fn put_idle(&self, member: Member<W>, with_permit: bool) {
        let adaptive = self.strategy == PoolStrategy::Adaptive;
        // Since when it is idle (where overflow workers are reaped) and when its hold ended
        // (where hold times are measured); no clock read elsewhere.
        let now = (self.max_overflow > 0 || adaptive).then(Instant::now);
        let mut inner = self.lock();
        if inner.permits.is_closed() {
            drop(member);
            self.live.fetch_sub(1, Ordering::Relaxed);
        } else {
            inner.idle.put(member, now, adaptive && with_permit);
        }
        if with_permit {
            inner.permits.give_back();
        }
        self.wake_makers(inner);
    }

    /// A worker given back by its guard, with its permit: idle again, or, broken or not fit for
    /// reuse, lost.
    #[inline]
    fn checkin(&self, mut member: Member<W>, broken: bool) {
        if broken || !self.factory.recycle(&mut member.worker) {
            self.lost(member);
            self.give_back_permit();
            return;
        }
        self.put_idle(member, true);
    }

    /// A worker that crashed (failed its check, reported broken, not fit for reuse): dropped,
    /// counted, and its replacement asked of the owner.
    fn lost(&self, member: Member<W>) {
        let slot = member.slot;
        drop(member);
        self.retire_slot(slot);
        self.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(pool = %self.name, slot, "pool worker crashed; replacing it");
        owner::ask_replacement(&self.name);
    }

    /// Removes overflow workers idle for `overflow_idle` or longer; how many were removed.
    pub(crate) fn reap(&self, now: Instant) -> usize {
        let mut reaped = 0;
        while self.live.load(Ordering::Acquire) > self.size {
            let oldest = self.lock().idle.take_idle_since(now, self.overflow_idle);
            let Some(member) = oldest else { break };
            let slot = member.slot;
            drop(member);
            self.retire_slot(slot);
            reaped += 1;
        }
        reaped
    }

    fn stats(&self) -> PoolStats {
        let capacity = self.size + self.max_overflow;
        let live = self.live.load(Ordering::Relaxed);
        let inner = self.lock();
        PoolStats {
            name: self.name.clone(),
            size: self.size,
            max_overflow: self.max_overflow,
            strategy: self.strategy.as_str().to_owned(),
            workers: live,
            busy: capacity.saturating_sub(inner.permits.available()),
            idle: inner.idle.len(),
            overflow: live.saturating_sub(self.size),
            waiting: inner.permits.waiting(),
            checkouts: inner.checkouts,
            timeouts: self.timeouts.load(Ordering::Relaxed),
            worker_restarts: self.restarts.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn overflow_idle(&self) -> Option<Duration> {
        (self.max_overflow > 0).then_some(self.overflow_idle)
    }
}

#[cfg(test)]
mod tests;
