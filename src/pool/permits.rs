//! Owns a pool's permits: how many workers may still be lent, and the line of checkouts waiting
//! for one. A checkout with a permit free and no one waiting is one compare-and-swap on an atomic
//! count; a checkin with no one waiting is one atomic add and one load. The waiters' line (a
//! briefly locked queue of one-shot channels) is touched only when someone waits: a permit given
//! back then is handed straight to the first waiter, so waiters are served in the order they came
//! and no later checkout takes a permit past them.
//!
//! Why no wake-up is lost: a waiter counts itself in `waiting` and then reads `available` (under
//! the line's lock, handing out what it finds); a checkin adds to `available` and then reads
//! `waiting` (and, seeing a waiter, hands out under the same lock). Both in sequentially
//! consistent order, so at least one of the two sees the other.

use crate::locks::lock;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use tokio::sync::oneshot;

/// What a try for a permit without waiting found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TryTake {
    /// A permit is the caller's.
    Taken,
    /// None free, or someone waits already (and goes first).
    Busy,
    /// The pool is closed.
    Closed,
}

/// Why a wait for a permit ended without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitFailed {
    /// None came within the timeout.
    Timeout,
    /// The pool was closed.
    Closed,
}

/// The checkouts waiting, first come first.
struct Line {
    next_ticket: u64,
    waiters: VecDeque<(u64, oneshot::Sender<()>)>,
}

/// A pool's permits (one per worker that may be lent at once) and its waiting checkouts.
pub(crate) struct Permits {
    available: AtomicUsize,
    /// Waiters in the line (kept beside it so a checkin looks at the line only when non-zero).
    waiting: AtomicUsize,
    closed: AtomicBool,
    line: Mutex<Line>,
}

impl Permits {
    pub(crate) fn new(permits: usize) -> Self {
        Self {
            available: AtomicUsize::new(permits),
            waiting: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            line: Mutex::new(Line {
                next_ticket: 0,
                waiters: VecDeque::new(),
            }),
        }
    }

    /// Permits free now.
    pub(crate) fn available(&self) -> usize {
        self.available.load(SeqCst)
    }

    /// Checkouts waiting now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(SeqCst)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// Takes a permit if one is free and no one waits for one.
    pub(crate) fn try_take(&self) -> TryTake {
        if self.closed.load(SeqCst) {
            return TryTake::Closed;
        }
        if self.waiting.load(SeqCst) != 0 {
            return TryTake::Busy;
        }
        if self.take_free() {
            TryTake::Taken
        } else {
            TryTake::Busy
        }
    }

    /// One free permit taken, if there is one.
    fn take_free(&self) -> bool {
        let mut free = self.available.load(SeqCst);
        while free > 0 {
            match self
                .available
                .compare_exchange_weak(free, free - 1, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(now) => free = now,
            }
        }
        false
    }

    /// Waits in line for a permit, up to `timeout`. Dropped while waiting (its checkout
    /// cancelled), it leaves the line, and a permit handed to it meanwhile is given back.
    pub(crate) async fn wait(&self, timeout: Duration) -> Result<(), WaitFailed> {
        let mut ticket = {
            let mut line = lock(&self.line);
            if self.closed.load(SeqCst) {
                return Err(WaitFailed::Closed);
            }
            let id = line.next_ticket;
            line.next_ticket += 1;
            let (handed, received) = oneshot::channel();
            line.waiters.push_back((id, handed));
            self.waiting.fetch_add(1, SeqCst);
            // A permit given back before `waiting` counted this waiter is handed out here.
            self.hand_out(&mut line);
            Ticket {
                permits: self,
                id,
                received,
                settled: false,
            }
        };
        let outcome = match tokio::time::timeout(timeout, &mut ticket.received).await {
            Ok(Ok(())) => Ok(()),
            // The line was cleared by `close`: no permit came.
            Ok(Err(_)) => Err(WaitFailed::Closed),
            Err(_) => return Err(WaitFailed::Timeout),
        };
        ticket.settled = true;
        outcome
    }

    /// Gives a permit back: to the first waiter if there is one, else to the free count.
    pub(crate) fn give_back(&self) {
        self.available.fetch_add(1, SeqCst);
        if self.waiting.load(SeqCst) != 0 {
            self.hand_out(&mut lock(&self.line));
        }
    }

    /// Hands free permits to the waiters at the head of the line, in order.
    fn hand_out(&self, line: &mut Line) {
        while !line.waiters.is_empty() && self.take_free() {
            let Some((_, waiter)) = line.waiters.pop_front() else {
                self.available.fetch_add(1, SeqCst);
                return;
            };
            self.waiting.fetch_sub(1, SeqCst);
            if waiter.send(()).is_err() {
                // Its receiver is gone (cannot happen while a ticket lives): the permit is free.
                self.available.fetch_add(1, SeqCst);
            }
        }
    }

    /// Closes: later and waiting takes fail (permits still come back, counted as free).
    pub(crate) fn close(&self) {
        self.closed.store(true, SeqCst);
        let mut line = lock(&self.line);
        let dropped = line.waiters.len();
        line.waiters.clear();
        self.waiting.fetch_sub(dropped, SeqCst);
    }
}

/// A place in the line, held by a waiting checkout.
struct Ticket<'a> {
    permits: &'a Permits,
    id: u64,
    received: oneshot::Receiver<()>,
    /// The wait ended with a permit, or with the line closed: nothing to undo.
    settled: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        {
            let mut line = lock(&self.permits.line);
            if let Some(at) = line.waiters.iter().position(|(id, _)| *id == self.id) {
                line.waiters.remove(at);
                self.permits.waiting.fetch_sub(1, SeqCst);
            }
        }
        // Handed a permit between the timeout and the lock: it goes to the next in line.
        if self.received.try_recv().is_ok() {
            self.permits.give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_permit_is_taken_without_waiting_and_given_back() {
        let permits = Permits::new(1);
        assert_eq!(permits.try_take(), TryTake::Taken);
        assert_eq!(permits.try_take(), TryTake::Busy);
        permits.give_back();
        assert_eq!(permits.available(), 1);
        permits.close();
        assert_eq!(permits.try_take(), TryTake::Closed);
    }

    #[tokio::test]
    async fn a_permit_given_back_goes_to_the_waiter_not_to_a_later_taker() {
        let permits = std::sync::Arc::new(Permits::new(1));
        assert_eq!(permits.try_take(), TryTake::Taken);
        let waiter = {
            let permits = std::sync::Arc::clone(&permits);
            tokio::spawn(async move { permits.wait(Duration::from_secs(5)).await })
        };
        while permits.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        permits.give_back();
        // Handed to the waiter: none free for a taker that came later.
        assert_eq!(permits.try_take(), TryTake::Busy);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!((permits.available(), permits.waiting()), (0, 0));
    }

    #[tokio::test]
    async fn a_timed_out_waiter_leaves_the_line() {
        let permits = Permits::new(1);
        assert_eq!(permits.try_take(), TryTake::Taken);
        assert_eq!(
            permits.wait(Duration::from_millis(10)).await,
            Err(WaitFailed::Timeout)
        );
        assert_eq!(permits.waiting(), 0);
        permits.give_back();
        assert_eq!(permits.try_take(), TryTake::Taken);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_contention_no_wake_up_is_lost_and_no_permit_leaks() {
        let permits = std::sync::Arc::new(Permits::new(2));
        let held = std::sync::Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (permits, held) = (
                    std::sync::Arc::clone(&permits),
                    std::sync::Arc::clone(&held),
                );
                tokio::spawn(async move {
                    for n in 0..2_000 {
                        if permits.try_take() != TryTake::Taken {
                            permits.wait(Duration::from_secs(5)).await.unwrap();
                        }
                        assert!(held.fetch_add(1, SeqCst) < 2, "more lent than permits");
                        if n % 7 == 0 {
                            tokio::task::yield_now().await;
                        }
                        held.fetch_sub(1, SeqCst);
                        permits.give_back();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!((permits.available(), permits.waiting()), (2, 0));
    }

    #[tokio::test]
    async fn closing_ends_every_wait() {
        let permits = std::sync::Arc::new(Permits::new(0));
        let waiter = {
            let permits = std::sync::Arc::clone(&permits);
            tokio::spawn(async move { permits.wait(Duration::from_secs(5)).await })
        };
        while permits.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        permits.close();
        assert_eq!(waiter.await.unwrap(), Err(WaitFailed::Closed));
        assert_eq!(
            permits.wait(Duration::from_secs(5)).await,
            Err(WaitFailed::Closed)
        );
    }
}
