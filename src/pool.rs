//! Owns named worker pools, with poolboy's semantics: `size` workers made (warmed) at start,
//! `max_overflow` more made on demand and removed after `overflow_idle` idle, a checkout that
//! waits in FIFO order up to a timeout, a guard ([`PoolGuard`]) that gives the worker back however
//! its borrower ends (done, dropped, cancelled, panicking), and a health check so that no borrower
//! is lent a dead worker.
//!
//! The checkout path touches no mailbox: an atomic count of permits (`pool/permits.rs`) holds one
//! per worker that may be lent at once (`size + max_overflow`), with a line of waiters served in
//! FIFO order that is touched only when someone waits; the idle workers sit in a briefly locked
//! queue. A checkout with an idle worker and no one waiting is a compare-and-swap, a lock taken
//! for a pop, a counter bumped; its checkin a lock for a push and an atomic add
//! (`benches/pool.rs`). Everything slow belongs to
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
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use crate::config::{PoolConfig, PoolStrategy, TOOL_POOL};
pub use factory::{WorkerError, WorkerFactory};
pub use guard::PoolGuard;
pub use stats::PoolStats;

use factory::DynFactory;
use idle::{IdleSet, Member};
use permits::{Permits, TryTake, WaitFailed};

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
    /// One permit per worker that may be lent at once; waiters are served in order.
    permits: Permits,
    idle: Mutex<IdleSet<W>>,
    factory: Arc<dyn DynFactory<W>>,
    /// Workers alive (idle, lent, or being made).
    live: AtomicUsize,
    checkouts: AtomicU64,
    timeouts: AtomicU64,
    restarts: AtomicU64,
    /// Checkouts that hold a permit but found neither an idle worker nor room to make one (a
    /// replacement is being made): they wait for `room`, woken when a worker is put back or a
    /// place frees, instead of spinning.
    makers_waiting: AtomicUsize,
    room: tokio::sync::Notify,
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
                permits: Permits::new(capacity),
                idle: Mutex::new(IdleSet::new(capacity)),
                factory: Arc::new(factory),
                live: AtomicUsize::new(0),
                checkouts: AtomicU64::new(0),
                timeouts: AtomicU64::new(0),
                restarts: AtomicU64::new(0),
                makers_waiting: AtomicUsize::new(0),
                room: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Lends a worker, waiting (behind earlier waiters) up to the pool's `checkout_timeout`.
    pub async fn checkout(&self) -> Result<PoolGuard<W>, PoolError> {
        self.checkout_within(self.shared.checkout_timeout).await
    }

    /// Lends a worker, waiting (behind earlier waiters) up to `timeout`.
    pub async fn checkout_within(&self, timeout: Duration) -> Result<PoolGuard<W>, PoolError> {
        let shared = &self.shared;
        match shared.permits.try_take() {
            TryTake::Taken => {}
            TryTake::Closed => return Err(shared.closed()),
            // The slow paths are boxed so that this future stays small: a future is moved
            // whole, and the idle checkout is the one that must be cheap.
            TryTake::Busy => Box::pin(shared.wait_for_permit(timeout)).await?,
        }
        // The permit is the lease's from here: given back if anything below fails or the
        // borrower is cancelled.
        let lease = guard::Lease::new(Arc::clone(shared));
        match shared.pick_healthy() {
            Some(member) => Ok(PoolGuard::new(lease, member)),
            None => Box::pin(shared.make_for(lease)).await,
        }
    }

    /// Gives a worker back (the same as dropping its guard).
    pub fn checkin(&self, guard: PoolGuard<W>) {
        drop(guard);
    }

    /// What the pool holds and has done.
    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }

    /// Closes the pool: waiting and later checkouts fail with [`PoolError::Closed`]; idle
    /// workers are dropped, lent ones when they come back.
    pub fn close(&self) {
        self.shared.permits.close();
        let drained = lock(&self.shared.idle).drain();
        self.shared.live.fetch_sub(drained.len(), Ordering::Relaxed);
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<W>> {
        &self.shared
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

impl<W> Shared<W> {
    /// Wakes checkouts waiting in `make_for` (one load when none waits).
    fn wake_makers(&self) {
        if self.makers_waiting.load(Ordering::SeqCst) > 0 {
            self.room.notify_waiters();
        }
    }

    /// Gives a worker's place back: its slot, and its count in `live`.
    fn retire_slot(&self, slot: usize) {
        lock(&self.idle).free_slot(slot);
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.wake_makers();
    }
}

impl<W: Send + 'static> Shared<W> {
    fn closed(&self) -> PoolError {
        PoolError::Closed {
            pool: self.name.clone(),
        }
    }

    /// Waits in line for a permit, up to `timeout` (counted when it runs out).
    async fn wait_for_permit(&self, timeout: Duration) -> Result<(), PoolError> {
        let started = Instant::now();
        match self.permits.wait(timeout).await {
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

    /// Takes the idle worker the strategy picks, passing over (and replacing) any that fails
    /// its health check; counted as a checkout.
    fn pick_healthy(&self) -> Option<Member<W>> {
        loop {
            let mut member = lock(&self.idle).pick(self.strategy, &self.weights)?;
            if self.health_check && !self.factory.is_healthy(&mut member.worker) {
                self.lost(member);
                continue;
            }
            self.checkouts.fetch_add(1, Ordering::Relaxed);
            return Some(member);
        }
    }

    /// A worker for a checkout holding `lease` that found none idle: made, or, when every slot
    /// is taken by one being made or given back right now, the next one idle.
    async fn make_for(&self, lease: guard::Lease<W>) -> Result<PoolGuard<W>, PoolError> {
        loop {
            // Listening before looking: a worker put back or a place freed after the look
            // below wakes this wait (see `wake_makers`).
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            self.makers_waiting.fetch_add(1, Ordering::SeqCst);
            let looked = self.make_member(self.size + self.max_overflow).await;
            self.makers_waiting.fetch_sub(1, Ordering::SeqCst);
            if let Some(member) = looked? {
                self.checkouts.fetch_add(1, Ordering::Relaxed);
                return Ok(PoolGuard::new(lease, member));
            }
            if let Some(member) = self.pick_healthy() {
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
        let slot = lock(&self.idle).take_slot();
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
            self.put_idle(member);
            made += 1;
        }
        Ok(made)
    }

    fn put_idle(&self, mut member: Member<W>) {
        if self.max_overflow > 0 {
            member.idle_since = Some(Instant::now());
        }
        lock(&self.idle).put(member);
        self.wake_makers();
    }

    /// A worker given back by its guard: idle again, or, broken or not fit for reuse, lost.
    fn checkin(&self, mut member: Member<W>, broken: bool, held: Option<Duration>) {
        if broken || !self.factory.recycle(&mut member.worker) {
            self.lost(member);
            return;
        }
        if let Some(held) = held {
            member.record_hold(held);
        }
        if self.permits.is_closed() {
            self.live.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        self.put_idle(member);
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
            let oldest = lock(&self.idle).take_idle_since(now, self.overflow_idle);
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
        PoolStats {
            name: self.name.clone(),
            size: self.size,
            max_overflow: self.max_overflow,
            strategy: self.strategy.as_str().to_owned(),
            workers: live,
            busy: capacity.saturating_sub(self.permits.available()),
            idle: lock(&self.idle).len(),
            overflow: live.saturating_sub(self.size),
            waiting: self.permits.waiting(),
            checkouts: self.checkouts.load(Ordering::Relaxed),
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
