//! Owns log lines that a client can cause at will (refusals, accept failures): each kind is
//! written at most once a second, with the count of the ones left out since, so a flood of
//! hostile clients cannot fill the log or spend the node's time writing it.
//!
//! It never blocks and never allocates: one atomic swap per event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One kind of line, written at most once per second.
#[derive(Debug)]
pub struct LogThrottle {
    /// When this throttle was made: seconds are counted from here.
    epoch: Instant,
    /// The second (since `epoch`, plus one; 0: never) of the last line written.
    last_second: AtomicU64,
    /// Events since the last line written, that line's own event included.
    count: AtomicU64,
}

impl Default for LogThrottle {
    fn default() -> Self {
        Self::new()
    }
}

impl LogThrottle {
    /// A throttle that lets its first event through.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_second: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Counts one event; `Some(n)` when a line should be written now, `n` being the events it
    /// stands for (this one and those left out since the last line).
    pub fn event(&self) -> Option<u64> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let second = self.epoch.elapsed().as_secs() + 1;
        let last = self.last_second.load(Ordering::Relaxed);
        if last == second {
            return None;
        }
        // One caller a second wins the line.
        self.last_second
            .compare_exchange(last, second, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        Some(self.count.swap(0, Ordering::Relaxed).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_standing_for_the_events_left_out() {
        let throttle = LogThrottle::new();
        assert_eq!(throttle.event(), Some(1), "the first event is written");
        for _ in 0..99 {
            assert_eq!(throttle.event(), None, "then none within the same second");
        }
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(
            throttle.event(),
            Some(100),
            "the next line counts the 99 left out and itself"
        );
    }
}
