//! Owns the picture of one pool that `erlmcp remote pools`, `/metrics` and tests read.

use serde::{Deserialize, Serialize};

/// What a pool holds and has done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    /// The pool's name.
    pub name: String,
    /// Workers kept (`size`).
    pub size: usize,
    /// Extra workers allowed on demand.
    pub max_overflow: usize,
    /// Which idle worker a checkout gets.
    pub strategy: String,
    /// Workers alive now (idle, lent, or being made).
    pub workers: usize,
    /// Checkouts holding a worker now.
    pub busy: usize,
    /// Workers idle now.
    pub idle: usize,
    /// Workers alive beyond `size`.
    pub overflow: usize,
    /// Checkouts waiting for a worker now.
    pub waiting: usize,
    /// Workers lent since start.
    pub checkouts: u64,
    /// Checkouts that gave up at their timeout.
    pub timeouts: u64,
    /// Workers found crashed and replaced.
    pub worker_restarts: u64,
}
