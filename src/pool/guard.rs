//! Owns a lent worker's way back: the [`PoolGuard`] a checkout returns gives its worker back to
//! the pool however the borrower ends — done, dropped, cancelled at an `.await`, or unwinding from
//! a panic (poolboy's monitor of the borrower) — and the permit with it.
//!
//! A guard from [`crate::pool::Pool::checkout`] borrows its pool (no reference count touched: on
//! the checkout fast path an `Arc` clone and drop cost as much as the lock); one from
//! [`crate::pool::Pool::checkout_owned`] holds the pool's `Arc`, for work moved to another task or
//! thread.

use super::{Member, Shared};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// How a guard reaches its pool: borrowed from a handle, or shared.
pub(crate) enum Holder<'a, W> {
    Borrowed(&'a Shared<W>),
    Owned(Arc<Shared<W>>),
}

impl<W> Holder<'_, W> {
    fn shared(&self) -> &Shared<W> {
        match self {
            Self::Borrowed(shared) => shared,
            Self::Owned(shared) => shared,
        }
    }
}

/// One permit of the pool's, held from a checkout until its worker is back: given back on drop
/// unless the worker's checkin took it back with the worker (one lock for both).
pub(crate) struct Lease<'a, W> {
    holder: Holder<'a, W>,
    returned: bool,
}

impl<'a, W> Lease<'a, W> {
    pub(crate) fn new(holder: Holder<'a, W>) -> Self {
        Self {
            holder,
            returned: false,
        }
    }

    pub(crate) fn shared(&self) -> &Shared<W> {
        self.holder.shared()
    }
}

impl<W> Drop for Lease<'_, W> {
    fn drop(&mut self) {
        if !self.returned {
            self.shared().give_back_permit();
        }
    }
}

/// A worker lent by a pool; derefs to the worker. Dropping it gives the worker back. `'a` is
/// the pool handle's borrow (`'static` for [`crate::pool::Pool::checkout_owned`]).
pub struct PoolGuard<'a, W: Send + 'static> {
    member: Option<Member<W>>,
    broken: bool,
    /// The permit: given back with the worker at checkin (a waiter woken by it finds the
    /// worker idle), or alone if the worker never comes back.
    lease: Lease<'a, W>,
}

impl<'a, W: Send + 'static> PoolGuard<'a, W> {
    pub(crate) fn new(lease: Lease<'a, W>, member: Member<W>) -> Self {
        Self {
            member: Some(member),
            broken: false,
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

impl<W: Send + 'static> Deref for PoolGuard<'_, W> {
    type Target = W;
    fn deref(&self) -> &W {
        match &self.member {
            Some(m) => &m.worker,
            // The member is taken only in drop.
            None => unreachable!("a pool guard holds its worker until dropped"),
        }
    }
}

impl<W: Send + 'static> DerefMut for PoolGuard<'_, W> {
    fn deref_mut(&mut self) -> &mut W {
        match &mut self.member {
            Some(m) => &mut m.worker,
            None => unreachable!("a pool guard holds its worker until dropped"),
        }
    }
}

impl<W: Send + 'static> Drop for PoolGuard<'_, W> {
    #[inline]
    fn drop(&mut self) {
        if let Some(member) = self.member.take() {
            self.lease.shared().checkin(member, self.broken);
            self.lease.returned = true;
        }
    }
}

impl<W: Send + 'static> std::fmt::Debug for PoolGuard<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolGuard")
            .field("pool", &self.lease.shared().name)
            .field("slot", &self.slot())
            .finish()
    }
}
