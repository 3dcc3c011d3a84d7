//! Owns a lent worker's way back: the [`PoolGuard`] a checkout returns gives its worker back to
//! the pool however the borrower ends — done, dropped, cancelled at an `.await`, or unwinding from
//! a panic (poolboy's monitor of the borrower) — and the permit with it.

use super::{Member, Shared};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Instant;

/// One permit of the pool's, held from a checkout until its worker is back.
pub(crate) struct Lease<W> {
    shared: Arc<Shared<W>>,
}

impl<W> Lease<W> {
    pub(crate) fn new(shared: Arc<Shared<W>>) -> Self {
        Self { shared }
    }
}

impl<W> Drop for Lease<W> {
    fn drop(&mut self) {
        self.shared.permits.give_back();
    }
}

/// A worker lent by a pool; derefs to the worker. Dropping it gives the worker back.
pub struct PoolGuard<W: Send + 'static> {
    member: Option<Member<W>>,
    broken: bool,
    /// When it was lent, where the adaptive strategy measures hold times.
    lent_at: Option<Instant>,
    // Declared last: the permit is given back after the worker (a waiter woken by it finds the
    // worker idle).
    lease: Lease<W>,
}

impl<W: Send + 'static> PoolGuard<W> {
    pub(crate) fn new(lease: Lease<W>, member: Member<W>) -> Self {
        let lent_at =
            (lease.shared.strategy == crate::config::PoolStrategy::Adaptive).then(Instant::now);
        Self {
            member: Some(member),
            broken: false,
            lent_at,
            lease,
        }
    }

    /// The worker's slot in its pool (`0..size + max_overflow`).
    pub fn slot(&self) -> usize {
        self.member.as_ref().map_or(0, |m| m.slot)
    }

    /// Says the worker is broken: it is dropped, not lent again, and the pool replaces it
    /// (counted as a worker restart).
    pub fn mark_broken(mut self) {
        self.broken = true;
    }

    /// Gives the worker back now (the same as dropping the guard).
    pub fn checkin(self) {}
}

impl<W: Send + 'static> Deref for PoolGuard<W> {
    type Target = W;
    fn deref(&self) -> &W {
        match &self.member {
            Some(m) => &m.worker,
            // The member is taken only in drop.
            None => unreachable!("a pool guard holds its worker until dropped"),
        }
    }
}

impl<W: Send + 'static> DerefMut for PoolGuard<W> {
    fn deref_mut(&mut self) -> &mut W {
        match &mut self.member {
            Some(m) => &mut m.worker,
            None => unreachable!("a pool guard holds its worker until dropped"),
        }
    }
}

impl<W: Send + 'static> Drop for PoolGuard<W> {
    fn drop(&mut self) {
        if let Some(member) = self.member.take() {
            let held = self.lent_at.map(|t| t.elapsed());
            self.lease.shared.checkin(member, self.broken, held);
        }
    }
}

impl<W: Send + 'static> std::fmt::Debug for PoolGuard<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolGuard")
            .field("pool", &self.lease.shared.name)
            .field("slot", &self.slot())
            .finish()
    }
}
