//! Owns the `[tasks]` section: the caps of the tasks extension (docs/protocol.md, "Tasks"): how
//! many tasks a node keeps, how long each is kept, how often clients are told to poll, and the
//! largest result a task may keep.

use serde::{Deserialize, Serialize};

/// The tasks extension (`src/tasks.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TasksConfig {
    /// Tasks kept at most (running, waiting for input, or ended but not yet expired); a call that
    /// would create one more is refused.
    pub max_tasks: usize,
    /// How long a task is kept after its creation, in milliseconds (its `ttlMs`): then its
    /// record is deleted, and a task still running is cancelled.
    pub ttl: u64,
    /// The polling interval suggested to clients (`pollIntervalMs`), in milliseconds.
    pub poll_interval: u64,
    /// Largest result (encoded JSON) a task keeps, in bytes; a larger one fails the task.
    pub max_result_size: usize,
}

impl Default for TasksConfig {
    fn default() -> Self {
        Self {
            max_tasks: 10_000,
            ttl: 3_600_000,
            poll_interval: 1_000,
            max_result_size: 1 << 20,
        }
    }
}

impl TasksConfig {
    /// The first key whose value cannot work, and why.
    pub(crate) fn invalid_key(&self) -> Option<(&'static str, &'static str)> {
        if self.max_tasks == 0 {
            return Some(("tasks.max_tasks", "must be at least 1"));
        }
        if self.ttl == 0 {
            return Some(("tasks.ttl", "must be at least 1 ms"));
        }
        if self.poll_interval == 0 {
            return Some(("tasks.poll_interval", "must be at least 1 ms"));
        }
        None
    }
}
