//! Owns which Prometheus families the running pools have (`/metrics` on the admin HTTP listener,
//! rendered by `admin::prometheus`, one sample per pool each): name, type, help, and the figure.

use super::PoolStats;

/// Reads one figure of a pool's stats.
pub(crate) type Figure = fn(&PoolStats) -> u64;

/// The families: name, type, help, and the figure of a pool's stats.
pub(crate) const FAMILIES: &[(&str, &str, &str, Figure)] = &[
    ("erlmcp_pool_size", "gauge", "Workers a pool keeps.", |s| {
        s.size as u64
    }),
    (
        "erlmcp_pool_workers",
        "gauge",
        "Workers alive in a pool (idle, lent, or being made).",
        |s| s.workers as u64,
    ),
    ("erlmcp_pool_busy", "gauge", "Workers lent now.", |s| {
        s.busy as u64
    }),
    ("erlmcp_pool_idle", "gauge", "Workers idle now.", |s| {
        s.idle as u64
    }),
    (
        "erlmcp_pool_overflow",
        "gauge",
        "Workers alive beyond a pool's size.",
        |s| s.overflow as u64,
    ),
    (
        "erlmcp_pool_waiting",
        "gauge",
        "Checkouts waiting for a worker now.",
        |s| s.waiting as u64,
    ),
    (
        "erlmcp_pool_checkouts_total",
        "counter",
        "Workers lent since start.",
        |s| s.checkouts,
    ),
    (
        "erlmcp_pool_checkout_timeouts_total",
        "counter",
        "Checkouts that gave up at their timeout.",
        |s| s.timeouts,
    ),
    (
        "erlmcp_pool_worker_restarts_total",
        "counter",
        "Workers found crashed and replaced.",
        |s| s.worker_restarts,
    ),
];
