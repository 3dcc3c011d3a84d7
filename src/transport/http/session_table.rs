//! Owns the table of Streamable HTTP sessions: lookup by `Mcp-Session-Id`, and the caps on how
//! many there are — `http.max_sessions` in all and `http.max_sessions_per_client` from one source
//! address — so that no client can grow the node's memory by sending `initialize` in a loop.
//!
//! A refusal is answered by the caller (503 with a JSON-RPC error) and logged here at most once a
//! second, with a count. Session start and end are logged at debug level: a log line per
//! session is a way for a client to fill the disk.

use super::sessions::HttpSession;
use crate::log_limit::LogLimiter;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The sessions by id. Every key is an id erlmcp drew from the OS's randomness, so no client can
/// fill the table with keys that collide: a fast hash (seeded per process) serves as well as
/// SipHash at a fifth of its cost.
type ById = HashMap<String, Arc<HttpSession>, foldhash::fast::RandomState>;

/// The caps of the table.
#[derive(Debug, Clone, Copy)]
pub(super) struct SessionCaps {
    /// Sessions at once, in all.
    pub(super) total: usize,
    /// Sessions at once from one source address (0: no cap).
    pub(super) per_client: usize,
}

/// Why a session was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TableFull {
    /// `http.max_sessions` sessions are open.
    Total(usize),
    /// `http.max_sessions_per_client` sessions are open from this address.
    PerClient(usize),
}

impl TableFull {
    /// The refusal's text, naming the limit.
    pub(super) fn message(self) -> String {
        match self {
            Self::Total(max) => {
                format!("server busy: http.max_sessions ({max}) reached; try again later")
            }
            Self::PerClient(max) => format!(
                "too many sessions from this address: http.max_sessions_per_client ({max}) \
                 reached; end one (DELETE) or try again later"
            ),
        }
    }
}

/// The sessions, and how many each source address holds.
pub(super) struct SessionTable {
    by_id: ById,
    per_client: HashMap<IpAddr, usize>,
    caps: SessionCaps,
    refused: LogLimiter,
}

impl SessionTable {
    /// An empty table with these caps.
    pub(super) fn new(caps: SessionCaps) -> Self {
        Self {
            by_id: ById::default(),
            per_client: HashMap::new(),
            caps,
            refused: LogLimiter::per_second(),
        }
    }

    /// The session with this id.
    pub(super) fn get(&self, id: &str) -> Option<&Arc<HttpSession>> {
        self.by_id.get(id)
    }

    /// Whether a session may be added for `client` now (checked before one is started, so a
    /// refused client costs no session actor).
    pub(super) fn room_for(&self, client: Option<IpAddr>) -> Result<(), TableFull> {
        let refusal = if self.by_id.len() >= self.caps.total {
            Some(TableFull::Total(self.caps.total))
        } else {
            client
                .filter(|_| self.caps.per_client > 0)
                .and_then(|ip| self.per_client.get(&ip))
                .filter(|held| **held >= self.caps.per_client)
                .map(|_| TableFull::PerClient(self.caps.per_client))
        };
        match refusal {
            None => Ok(()),
            Some(full) => {
                if let Some(held) = self.refused.allow() {
                    tracing::warn!(
                        client = ?client,
                        not_logged = held,
                        "refusing http sessions: {} ({held} more refused since the last such line)",
                        full.message()
                    );
                }
                Err(full)
            }
        }
    }

    /// Adds a session under `id` if there is room for its client.
    pub(super) fn insert(
        &mut self,
        id: String,
        session: Arc<HttpSession>,
    ) -> Result<(), TableFull> {
        self.room_for(session.client)?;
        if let Some(ip) = session.client {
            *self.per_client.entry(ip).or_default() += 1;
        }
        self.by_id.insert(id, session);
        Ok(())
    }

    /// Removes the session under `id`.
    pub(super) fn remove(&mut self, id: &str) -> Option<Arc<HttpSession>> {
        let session = self.by_id.remove(id)?;
        if let Some(ip) = session.client
            && let Some(held) = self.per_client.get_mut(&ip)
        {
            *held -= 1;
            if *held == 0 {
                self.per_client.remove(&ip);
            }
        }
        Some(session)
    }

    /// The ids of the sessions for which `expired` holds.
    pub(super) fn expired(&self, expired: impl Fn(&HttpSession) -> bool) -> Vec<String> {
        self.by_id
            .iter()
            .filter(|(_, s)| expired(s))
            .map(|(id, _)| id.clone())
            .collect()
    }
}
