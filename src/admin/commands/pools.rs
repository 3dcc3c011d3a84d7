//! Owns the shell's `pools` command: every running pool with its size, workers busy, idle and in
//! overflow, checkouts waiting, and its counts since start (checkouts, timeouts, worker restarts).

use super::{Answer, to_json};
use std::fmt::Write as _;

pub(super) fn pools() -> Answer {
    let pools = crate::pool::named::all_stats();
    let mut text = format!(
        "{:<24} {:<12} {:>5} {:>5} {:>5} {:>8} {:>7} {:>10} {:>8} {:>8}\n",
        "POOL",
        "STRATEGY",
        "SIZE",
        "BUSY",
        "IDLE",
        "OVERFLOW",
        "WAITING",
        "CHECKOUTS",
        "TIMEOUTS",
        "RESTARTS"
    );
    for p in &pools {
        let _ = writeln!(
            text,
            "{:<24} {:<12} {:>5} {:>5} {:>5} {:>8} {:>7} {:>10} {:>8} {:>8}",
            p.name,
            p.strategy,
            p.size,
            p.busy,
            p.idle,
            p.overflow,
            p.waiting,
            p.checkouts,
            p.timeouts,
            p.worker_restarts
        );
    }
    let _ = write!(text, "{} pools", pools.len());
    Answer::new(text, to_json(&pools))
}
