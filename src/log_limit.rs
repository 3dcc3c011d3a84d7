//! Owns rate-limited logging: a [`LogLimiter`] lets one line through per interval and counts
//! what it held back, so a hostile client repeating a refused thing cannot flood the log.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The clock every limiter reads: milliseconds since the first use.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// At most one line per `interval`; the events in between are counted.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    interval_ms: u64,
    /// When the next line may be logged (ms since [`EPOCH`]).
    next_at: AtomicU64,
    /// Events not logged since the last line.
    held: AtomicU64,
}

impl LogLimiter {
    /// A limiter letting one line through per `interval`.
    pub(crate) const fn new(interval: Duration) -> Self {
        Self {
            interval_ms: interval.as_millis() as u64,
            next_at: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// One line a second.
    pub(crate) const fn per_second() -> Self {
        Self::new(Duration::from_secs(1))
    }

    /// Records one event: `Some(n)` when it may be logged now, `n` being how many events were
    /// held back since the last line; `None` when it is only counted.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = now_ms();
        let next = self.next_at.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_at
                .compare_exchange(
                    next,
                    now.saturating_add(self.interval_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.held.swap(0, Ordering::Relaxed));
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_rest_counted() {
        let limiter = LogLimiter::new(Duration::from_millis(50));
        assert_eq!(limiter.allow(), Some(0));
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.allow(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(limiter.allow(), Some(2));
        assert_eq!(limiter.allow(), None);
    }
}
