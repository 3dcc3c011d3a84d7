//! Owns the `[store]` section: where the state store keeps its files, how often it writes a
//! snapshot, when its change log is fsynced, and how many HTTP sessions it keeps
//! (docs/store.md).

use super::ValueError;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// The state store (`src/store/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Its directory ("" for the node's data directory: `$XDG_DATA_HOME/erlmcp/<node_name>`,
    /// else `~/.erlmcp/data/<node_name>`).
    pub dir: String,
    /// How often a snapshot is written when something changed, in milliseconds.
    pub snapshot_interval: u64,
    /// When a change-log record reaches the disk.
    pub fsync: FsyncPolicy,
    /// Streamable HTTP sessions kept in the store at most (more are served, not kept).
    pub max_sessions: usize,
}

/// When a change-log record is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Before the change is acknowledged: a power loss loses nothing acknowledged.
    Always,
    /// Never by the log (the kernel writes it back): a killed process loses nothing, a power
    /// loss what the kernel had not written since the last snapshot.
    Never,
}

impl FromStr for FsyncPolicy {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            _ => Err(ValueError::NotOneOf {
                expected: "always or never",
            }),
        }
    }
}
