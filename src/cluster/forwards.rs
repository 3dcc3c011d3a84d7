//! Owns the counts of the requests this node forwarded to their session's (or task's) owner, by
//! the way they went: over the forwarding lane (HTTP/1.1 to the owner's listener) or over the
//! cluster RPC, and how often the lane was meant but the RPC taken (the owner's listener not
//! known or not reachable). Read by the shell's `nodes` and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// The counts, one set per process (one node per process, as [`super::current`] is).
pub(crate) static FORWARDS: Forwards = Forwards {
    lane: AtomicU64::new(0),
    rpc: AtomicU64::new(0),
    fallbacks: AtomicU64::new(0),
};

/// Forwards by the way they went.
#[derive(Debug)]
pub(crate) struct Forwards {
    lane: AtomicU64,
    rpc: AtomicU64,
    fallbacks: AtomicU64,
}

/// What [`Forwards`] counted so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ForwardCounts {
    /// Sent over the forwarding lane.
    pub(crate) lane: u64,
    /// Sent over the cluster RPC (fallbacks included).
    pub(crate) rpc: u64,
    /// Meant for the lane, sent over the RPC.
    pub(crate) lane_fallbacks: u64,
}

impl Forwards {
    /// One forward sent over the lane.
    pub(crate) fn count_lane(&self) {
        self.lane.fetch_add(1, Ordering::Relaxed);
    }

    /// One forward sent over the RPC.
    pub(crate) fn count_rpc(&self) {
        self.rpc.fetch_add(1, Ordering::Relaxed);
    }

    /// One forward meant for the lane that took the RPC.
    pub(crate) fn count_fallback(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub(crate) fn counts(&self) -> ForwardCounts {
        ForwardCounts {
            lane: self.lane.load(Ordering::Relaxed),
            rpc: self.rpc.load(Ordering::Relaxed),
            lane_fallbacks: self.fallbacks.load(Ordering::Relaxed),
        }
    }
}
