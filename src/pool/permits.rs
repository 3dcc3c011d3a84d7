//! Owns a pool's permits: how many workers may still be lent, and the line of checkouts waiting
//! for one. It lives under the pool's one lock beside the idle workers (`pool.rs`'s `Inner`), so
//! a checkout of an idle worker is one lock taken — permit and worker together — and its checkin
//! one more, as cheap as a bare `Mutex<Vec>` pop and push. The line (one-shot channels, first come
//! first served) is touched only when someone waits: a permit given back then is handed straight
//! to the first waiter, so no later checkout takes a permit past a waiter.

use std::collections::VecDeque;
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

/// A place in the line: its ticket, and where its permit arrives.
pub(crate) struct Place {
    pub(crate) ticket: u64,
    pub(crate) received: oneshot::Receiver<()>,
}

/// A pool's permits (one per worker that may be lent at once) and its waiting checkouts. Every
/// method runs under the pool's lock.
pub(crate) struct Permits {
    free: usize,
    closed: bool,
    next_ticket: u64,
    waiters: VecDeque<(u64, oneshot::Sender<()>)>,
}

impl Permits {
    pub(crate) fn new(permits: usize) -> Self {
        Self {
            free: permits,
            closed: false,
            next_ticket: 0,
            waiters: VecDeque::new(),
        }
    }

    /// Permits free now.
    pub(crate) fn available(&self) -> usize {
        self.free
    }

    /// Checkouts waiting now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiters.len()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Takes a permit if one is free and no one waits for one.
    pub(crate) fn try_take(&mut self) -> TryTake {
        if self.closed {
            TryTake::Closed
        } else if self.free == 0 || !self.waiters.is_empty() {
            TryTake::Busy
        } else {
            self.free -= 1;
            TryTake::Taken
        }
    }

    /// Joins the end of the line; the permit arrives on the place's receiver.
    pub(crate) fn join_line(&mut self) -> Result<Place, WaitFailed> {
        if self.closed {
            return Err(WaitFailed::Closed);
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let (handed, received) = oneshot::channel();
        self.waiters.push_back((ticket, handed));
        // Free permits with no one ahead go to this waiter at once.
        self.hand_out();
        Ok(Place { ticket, received })
    }

    /// Leaves the line (a wait that timed out or was cancelled); `false` when the ticket was
    /// no longer in it (a permit was handed to it, or the line was closed).
    pub(crate) fn leave_line(&mut self, ticket: u64) -> bool {
        match self.waiters.iter().position(|(t, _)| *t == ticket) {
            Some(at) => {
                self.waiters.remove(at);
                true
            }
            None => false,
        }
    }

    /// Gives a permit back: to the first waiter if there is one, else to the free count.
    pub(crate) fn give_back(&mut self) {
        self.free += 1;
        if !self.waiters.is_empty() {
            self.hand_out();
        }
    }

    /// Hands free permits to the waiters at the head of the line, in order.
    fn hand_out(&mut self) {
        while self.free > 0 {
            let Some((_, waiter)) = self.waiters.pop_front() else {
                return;
            };
            self.free -= 1;
            if waiter.send(()).is_err() {
                // Its receiver is gone (cannot happen while its wait lives): the permit is free.
                self.free += 1;
            }
        }
    }

    /// Closes: later and waiting takes fail (permits still come back, counted as free).
    pub(crate) fn close(&mut self) {
        self.closed = true;
        self.waiters.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_permit_is_taken_without_waiting_and_given_back() {
        let mut permits = Permits::new(1);
        assert_eq!(permits.try_take(), TryTake::Taken);
        assert_eq!(permits.try_take(), TryTake::Busy);
        permits.give_back();
        assert_eq!(permits.available(), 1);
        permits.close();
        assert_eq!(permits.try_take(), TryTake::Closed);
    }

    #[test]
    fn a_permit_given_back_goes_to_the_first_waiter_not_to_a_later_taker() {
        let mut permits = Permits::new(1);
        assert_eq!(permits.try_take(), TryTake::Taken);
        let mut first = permits.join_line().unwrap();
        let mut second = permits.join_line().unwrap();
        permits.give_back();
        // Handed to the first waiter: none free for a taker that came later.
        assert_eq!(permits.try_take(), TryTake::Busy);
        assert_eq!(first.received.try_recv(), Ok(()));
        assert!(second.received.try_recv().is_err());
        assert_eq!((permits.available(), permits.waiting()), (0, 1));
    }

    #[test]
    fn a_waiter_that_leaves_is_passed_over() {
        let mut permits = Permits::new(1);
        assert_eq!(permits.try_take(), TryTake::Taken);
        let first = permits.join_line().unwrap();
        let mut second = permits.join_line().unwrap();
        assert!(permits.leave_line(first.ticket));
        assert!(!permits.leave_line(first.ticket), "gone already");
        permits.give_back();
        assert_eq!(second.received.try_recv(), Ok(()));
        assert!(
            !permits.leave_line(second.ticket),
            "served: no longer in line"
        );
    }

    #[test]
    fn closing_ends_every_wait() {
        let mut permits = Permits::new(0);
        let mut waiter = permits.join_line().unwrap();
        permits.close();
        assert!(matches!(
            waiter.received.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(matches!(permits.join_line(), Err(WaitFailed::Closed)));
    }
}
