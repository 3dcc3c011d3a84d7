//! Owns the MCP protocol revisions erlmcp speaks and how one is chosen at `initialize`.
//!
//! Rule: the server answers with the client's requested revision when it supports it, otherwise
//! with its latest. Behaviour that differs by revision asks the negotiated [`Revision`].

use serde::{Serialize, Serializer};
use std::fmt;

/// A protocol revision, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Revision {
    /// 2024-11-05: the first revision (HTTP+SSE transport).
    V2024_11_05,
    /// 2025-03-26: Streamable HTTP, JSON-RPC batches.
    V2025_03_26,
    /// 2025-06-18: structured tool output, elicitation; batches removed.
    V2025_06_18,
    /// 2025-11-25: the latest session-based revision.
    V2025_11_25,
    /// 2026-07-28: stateless; each request carries its revision and capabilities in `_meta`,
    /// found with `server/discover` instead of `initialize`.
    V2026_07_28,
}

impl Revision {
    /// The revisions reached through the `initialize` handshake, oldest first.
    #[cfg(test)]
    pub(crate) const HANDSHAKE: [Revision; 4] = [
        Self::V2024_11_05,
        Self::V2025_03_26,
        Self::V2025_06_18,
        Self::V2025_11_25,
    ];

    /// The stateless revisions, served per request.
    pub const MODERN: [Revision; 1] = [Self::V2026_07_28];

    /// Every supported revision, oldest first.
    pub(crate) const ALL: [Revision; 5] = [
        Self::V2024_11_05,
        Self::V2025_03_26,
        Self::V2025_06_18,
        Self::V2025_11_25,
        Self::V2026_07_28,
    ];

    /// The newest revision `initialize` can settle on.
    pub(crate) const LATEST: Revision = Self::V2025_11_25;

    /// The revision's date string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2024_11_05 => "2024-11-05",
            Self::V2025_03_26 => "2025-03-26",
            Self::V2025_06_18 => "2025-06-18",
            Self::V2025_11_25 => "2025-11-25",
            Self::V2026_07_28 => "2026-07-28",
        }
    }

    /// Parses a date string of a supported revision.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// The revision to answer `initialize` with, given the client's request (a stateless
    /// revision cannot be reached by a handshake: the latest handshake revision is offered).
    pub(crate) fn negotiate(requested: &str) -> Self {
        Self::parse(requested)
            .filter(|r| !r.is_modern())
            .unwrap_or(Self::LATEST)
    }

    /// Whether this revision is stateless (per-request envelope, no `initialize`).
    pub(crate) fn is_modern(self) -> bool {
        self >= Self::V2026_07_28
    }

    /// JSON-RPC batches are part of 2025-03-26 only.
    pub(crate) fn accepts_batches(self) -> bool {
        self == Self::V2025_03_26
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Revision {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_supported_requested_revision_is_echoed_and_an_unknown_one_gets_the_latest() {
        for r in Revision::HANDSHAKE {
            assert_eq!(Revision::negotiate(r.as_str()), r);
        }
        assert_eq!(Revision::negotiate("2026-07-28"), Revision::LATEST);
        assert_eq!(Revision::negotiate("2023-01-01"), Revision::LATEST);
        assert_eq!(Revision::negotiate("2099-12-31"), Revision::LATEST);
    }

    #[test]
    fn only_2025_03_26_accepts_batches() {
        let accepting: Vec<_> = Revision::ALL
            .into_iter()
            .filter(|r| r.accepts_batches())
            .collect();
        assert_eq!(accepting, vec![Revision::V2025_03_26]);
    }
}
