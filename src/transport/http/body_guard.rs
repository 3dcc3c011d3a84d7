//! Owns the limits on request bodies still arriving: the bytes of bodies being read over all
//! connections (`http.max_pending_body_bytes`, above it 503) and the time a body may take once
//! its head has come (`http.body_read_timeout`, then 408 and the connection closes). A client
//! that sends a head and then nothing holds no more than its reservation, and not for longer
//! than the timeout.
//!
//! The fast lane reserves a body's announced length when the body has not come whole with its
//! head; hyper's requests have their body wrapped in a [`GuardedBody`] that reserves what the
//! body announces (or, for a chunked one, what has come so far) and fails once the deadline
//! passes. A body already whole when read reserves nothing: it is not "being read".

use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// The bytes of bodies being read now, over all connections of a listener, and their cap.
#[derive(Debug, Clone)]
pub(crate) struct BodyBudget {
    in_use: Arc<AtomicUsize>,
    max: usize,
}

impl BodyBudget {
    /// A budget of `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            in_use: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Reserves `bytes`, or `None` when that would pass the cap.
    pub(crate) fn reserve(&self, bytes: usize) -> Option<BodyReservation> {
        let mut reservation = BodyReservation {
            budget: self.clone(),
            bytes: 0,
        };
        reservation.grow(bytes).then_some(reservation)
    }

    /// Bytes reserved now.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }
}

/// Bytes of one body held against the [`BodyBudget`]; given back when dropped.
#[derive(Debug)]
pub(crate) struct BodyReservation {
    budget: BodyBudget,
    bytes: usize,
}

impl BodyReservation {
    /// Reserves `more` bytes besides those held; `false` (and nothing taken) past the cap.
    fn grow(&mut self, more: usize) -> bool {
        let max = self.budget.max;
        let taken = self
            .budget
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                n.checked_add(more).filter(|total| *total <= max)
            })
            .is_ok();
        if taken {
            self.bytes += more;
        }
        taken
    }
}

impl Drop for BodyReservation {
    fn drop(&mut self) {
        self.budget.in_use.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// What became of a guarded body, read by the request's service once its handler is done.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyOutcome(Arc<AtomicU8>);

/// A body's outcomes, as [`BodyOutcome`] keeps them (0: fine so far).
const TIMED_OUT: u8 = 1;
const OVER_BUDGET: u8 = 2;

impl BodyOutcome {
    /// The body did not arrive within `http.body_read_timeout`.
    pub(crate) fn timed_out(&self) -> bool {
        self.0.load(Ordering::Acquire) == TIMED_OUT
    }

    /// The body would have passed `http.max_pending_body_bytes`.
    pub(crate) fn over_budget(&self) -> bool {
        self.0.load(Ordering::Acquire) == OVER_BUDGET
    }

    fn set(&self, outcome: u8) {
        self.0.store(outcome, Ordering::Release);
    }
}

/// Why a guarded body stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyGuardError {
    /// The deadline passed.
    #[error("the request body did not arrive within http.body_read_timeout")]
    TimedOut,
    /// The budget is spent.
    #[error("server busy: http.max_pending_body_bytes reached")]
    OverBudget,
    /// The body itself failed.
    #[error("{0}")]
    Inner(Box<dyn std::error::Error + Send + Sync>),
}

/// A request body read under a deadline and against the budget.
pub(crate) struct GuardedBody<B> {
    inner: B,
    deadline: Instant,
    /// Armed at the first read that has to wait: a body that is there at once costs no timer.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    reservation: Option<BodyReservation>,
    /// The length the body announced (0 for none: a chunked body).
    announced: u64,
    outcome: BodyOutcome,
}

impl<B: hyper::body::Body> GuardedBody<B> {
    /// Guards `inner`: its announced length is reserved now (the outcome says when that failed:
    /// the body then fails at its first read).
    pub(crate) fn new(inner: B, timeout: Duration, budget: &BodyBudget) -> (Self, BodyOutcome) {
        let outcome = BodyOutcome::default();
        let announced = inner.size_hint().lower();
        let reservation = usize::try_from(announced)
            .ok()
            .and_then(|n| budget.reserve(n));
        if reservation.is_none() {
            outcome.set(OVER_BUDGET);
        }
        let guarded = Self {
            inner,
            deadline: Instant::now() + timeout,
            timer: None,
            reservation,
            announced,
            outcome: outcome.clone(),
        };
        (guarded, outcome)
    }
}

impl<B> hyper::body::Body for GuardedBody<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = BodyGuardError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BodyGuardError>>> {
        let this = &mut *self;
        if this.outcome.over_budget() {
            return Poll::Ready(Some(Err(BodyGuardError::OverBudget)));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, Bytes::len);
                // A chunked body announces nothing: what comes is reserved as it comes.
                if this.announced == 0 && len > 0 {
                    let grown = this.reservation.as_mut().is_some_and(|r| r.grow(len));
                    if !grown {
                        this.outcome.set(OVER_BUDGET);
                        this.reservation = None;
                        return Poll::Ready(Some(Err(BodyGuardError::OverBudget)));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyGuardError::Inner(e.into())))),
            Poll::Ready(None) => {
                this.reservation = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.outcome.set(TIMED_OUT);
                    this.reservation = None;
                    return Poll::Ready(Some(Err(BodyGuardError::TimedOut)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[test]
    fn reservations_stop_at_the_cap_and_are_given_back() {
        let budget = BodyBudget::new(100);
        let first = budget.reserve(60).expect("room");
        assert!(budget.reserve(41).is_none(), "60 + 41 passes 100");
        let second = budget.reserve(40).expect("exactly the cap");
        assert_eq!(budget.in_use(), 100);
        drop(first);
        assert_eq!(budget.in_use(), 40);
        drop(second);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_body_that_does_not_come_fails_at_the_deadline_and_frees_its_bytes() {
        let budget = BodyBudget::new(1 << 20);
        let (tx, rx) =
            tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::io::Error>>(1);
        let stalled = http_body_util::StreamBody::new(tokio_stream_of(rx));
        let (body, outcome) = GuardedBody::new(stalled, Duration::from_millis(50), &budget);
        let started = std::time::Instant::now();
        let read = body.collect().await;
        assert!(matches!(read, Err(BodyGuardError::TimedOut)), "{read:?}");
        assert!(outcome.timed_out());
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(budget.in_use(), 0);
        drop(tx);
    }

    #[tokio::test]
    async fn an_announced_length_past_the_budget_fails_before_a_byte_is_read() {
        let budget = BodyBudget::new(4);
        let full = http_body_util::Full::new(Bytes::from_static(b"abcdef"));
        let (body, outcome) = GuardedBody::new(full, Duration::from_secs(5), &budget);
        assert!(outcome.over_budget());
        assert!(matches!(
            body.collect().await,
            Err(BodyGuardError::OverBudget)
        ));
        let fits = http_body_util::Full::new(Bytes::from_static(b"abcd"));
        let (body, outcome) = GuardedBody::new(fits, Duration::from_secs(5), &budget);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abcd");
        assert!(!outcome.over_budget() && !outcome.timed_out());
        assert_eq!(budget.in_use(), 0);
    }

    /// A stream of what `rx` brings.
    fn tokio_stream_of<T: Send + 'static>(
        rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures::Stream<Item = T> + Unpin {
        Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }))
    }
}
