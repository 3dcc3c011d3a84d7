//! Owns the restart-intensity window: OTP's "at most `max_restarts` restarts within `period`".
//!
//! Rule (as in `supervisor.erl`): every restart is recorded with its time; restarts older than
//! `period` fall out of the window; if, after recording, the window holds *more* than
//! `max_restarts`, the supervisor gives up. So with the OTP default of 1 in 5 s, the first restart
//! is allowed and a second within 5 s shuts the supervisor down. `max_restarts = 0` means any
//! restart shuts it down.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Restart intensity settings: at most `max_restarts` within `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed inside one window.
    pub max_restarts: u32,
    /// Length of the sliding window.
    pub period: Duration,
}

impl Default for Intensity {
    /// OTP's defaults: 1 restart in 5 seconds.
    fn default() -> Self {
        Self {
            max_restarts: 1,
            period: Duration::from_secs(5),
        }
    }
}

/// The sliding window of recent restart times. Public so that a component restarting things of
/// its own (erlmcp's pools replace crashed workers) applies the same rule as a supervisor.
#[derive(Debug, Clone)]
pub struct RestartWindow {
    limits: Intensity,
    restarts: VecDeque<Instant>,
}

impl RestartWindow {
    /// An empty window with these limits.
    pub fn new(limits: Intensity) -> Self {
        Self {
            limits,
            restarts: VecDeque::new(),
        }
    }

    /// The limits of the window.
    pub fn limits(&self) -> Intensity {
        self.limits
    }

    /// Records a restart at `now`; returns `false` when this restart exceeds the intensity.
    pub fn record(&mut self, now: Instant) -> bool {
        self.expire(now);
        self.restarts.push_back(now);
        self.restarts.len() <= self.limits.max_restarts as usize
    }

    /// Restarts inside the window that ends at `now`.
    pub fn in_window(&mut self, now: Instant) -> usize {
        self.expire(now);
        self.restarts.len()
    }

    fn expire(&mut self, now: Instant) {
        while let Some(oldest) = self.restarts.front() {
            if now.duration_since(*oldest) >= self.limits.period {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(max_restarts: u32, period_ms: u64) -> RestartWindow {
        RestartWindow::new(Intensity {
            max_restarts,
            period: Duration::from_millis(period_ms),
        })
    }

    #[test]
    fn one_more_restart_than_max_within_period_exceeds_intensity() {
        let t0 = Instant::now();
        let mut w = window(2, 1000);
        assert!(w.record(t0));
        assert!(w.record(t0 + Duration::from_millis(10)));
        assert!(!w.record(t0 + Duration::from_millis(20)));
    }

    #[test]
    fn restarts_older_than_period_slide_out_of_the_window() {
        let t0 = Instant::now();
        let mut w = window(1, 100);
        assert!(w.record(t0));
        assert!(w.record(t0 + Duration::from_millis(100)));
        assert!(w.record(t0 + Duration::from_millis(250)));
        assert!(!w.record(t0 + Duration::from_millis(300)));
        assert_eq!(w.in_window(t0 + Duration::from_millis(1000)), 0);
    }

    #[test]
    fn zero_max_restarts_refuses_the_first_restart() {
        let mut w = window(0, 1000);
        assert!(!w.record(Instant::now()));
    }
}
