//! Owns the hook through which a session reports the changes that a kept session must remember
//! (its log level, its resource subscriptions): a transport that keeps its sessions in the state
//! store (Streamable HTTP) attaches a [`SessionJournal`] to each, and the session calls it after
//! each such change. The session knows nothing of where it is kept.

use crate::protocol::messages::LogLevel;

/// Told of each change of a session that outlives its process.
pub(crate) trait SessionJournal: Send + Sync + std::fmt::Debug {
    /// `logging/setLevel` set `level`.
    fn level_set(&self, level: LogLevel);
    /// `resources/subscribe` (`subscribed`) or `resources/unsubscribe` of `uri`.
    fn subscription(&self, uri: &str, subscribed: bool);
}
