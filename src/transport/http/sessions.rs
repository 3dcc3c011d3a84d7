//! Owns the Streamable HTTP sessions: their table (lookup by `Mcp-Session-Id`) and its caps —
//! `http.max_sessions` in all and `http.max_sessions_per_client` from one source address, so that
//! no client can grow the node's memory by sending `initialize` in a loop — and a session's life:
//! made for an `initialize` (its session actor, its random id, its GET stream), the request
//! streams it keeps for resumption, ended, expired after `http.session_timeout` idle (and then
//! forgotten by the state store, `kept.rs`).
//!
//! A refusal is answered by the caller (503 with a JSON-RPC error) and logged here at most once a
//! second, with a count. Session start and end are logged at debug level: a log line per
//! session is a way for a client to fill the disk.

use super::HttpState;
use super::event_stream::EventStream;
use super::kept::record::SessionRecord;
use crate::locks::lock;
use crate::log_limit::LogLimiter;
use crate::outbound::Outbound;
use crate::protocol::jsonrpc::RpcError;
use crate::session::{SessionHandle, start_session};
use axum::http::HeaderValue;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// One HTTP session: its session actor and its event streams (0 is the GET stream).
pub(crate) struct HttpSession {
    /// The `Mcp-Session-Id`, as the header value every answer carries.
    pub(super) id: HeaderValue,
    pub(super) handle: SessionHandle,
    /// By id, so the oldest come first when finished ones are forgotten.
    pub(super) streams: Mutex<BTreeMap<u64, Arc<EventStream>>>,
    pub(super) next_stream: AtomicU64,
    pub(super) last_seen: SeenAt,
    /// The source address that made it (for `http.max_sessions_per_client`).
    pub(super) client: Option<std::net::IpAddr>,
    /// Its record in the state store, once kept.
    pub(super) record: OnceLock<Arc<SessionRecord>>,
    /// Restored from the store at this start.
    pub(super) restored: bool,
    /// The subject of the token that made it (`[auth]`): only that subject may use it.
    pub(super) owner: OnceLock<Arc<str>>,
    pub(super) _gauge: crate::metrics::ConnectionGauge,
}

impl HttpSession {
    pub(super) fn stream(&self, id: u64) -> Option<Arc<EventStream>> {
        lock(&self.streams).get(&id).cloned()
    }

    /// A new request stream; finished streams beyond the newest 32 are forgotten.
    pub(super) fn new_stream(&self) -> Arc<EventStream> {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let stream = EventStream::new(id);
        let mut streams = lock(&self.streams);
        streams.insert(id, Arc::clone(&stream));
        forget_finished_streams(&mut streams, KEPT_STREAMS);
        stream
    }
}

/// Request streams a session keeps (for `Last-Event-ID`) besides its GET stream.
const KEPT_STREAMS: usize = 32;

/// Forgets the oldest finished request streams while more than `keep` besides the GET stream
/// (0) are kept. Oldest first, stopping at the last one to forget — usually the first finished
/// one: the rest of the map is not visited.
fn forget_finished_streams(streams: &mut BTreeMap<u64, Arc<EventStream>>, keep: usize) {
    let excess = streams.len().saturating_sub(keep + 1);
    for _ in 0..excess {
        let oldest_finished = streams
            .iter()
            .find(|(k, s)| **k != 0 && s.is_done())
            .map(|(k, _)| *k);
        let Some(key) = oldest_finished else { break };
        streams.remove(&key);
    }
}

/// Why no session was made for an `initialize`.
pub(super) enum NewSessionError {
    /// A session cap is reached: 503.
    Full(TableFull),
    /// The session could not start: 500.
    Failed(RpcError),
}

impl From<RpcError> for NewSessionError {
    fn from(e: RpcError) -> Self {
        Self::Failed(e)
    }
}

pub(super) async fn create_session(
    state: &Arc<HttpState>,
    client: Option<std::net::IpAddr>,
) -> Result<Arc<HttpSession>, NewSessionError> {
    // Checked before the session's actor is started, so a refused client costs none.
    lock(&state.sessions)
        .room_for(client)
        .map_err(NewSessionError::Full)?;
    let (outbound, queue) = Outbound::channel();
    let handle = start_session(outbound, state.ctx.sessions).await?;
    let id = super::forward::owned_session_id()?;
    // Hex digits: always a valid header value.
    let id_header = HeaderValue::from_str(&id)
        .map_err(|e| RpcError::internal(format!("session id {id}: {e}")))?;
    let standalone = EventStream::new(0);
    standalone.feed(queue, state.settings.replay_buffer);
    let session = Arc::new(HttpSession {
        id: id_header,
        handle,
        streams: Mutex::new(BTreeMap::from([(0, standalone)])),
        next_stream: AtomicU64::new(1),
        last_seen: SeenAt::now(),
        client,
        record: OnceLock::new(),
        restored: false,
        owner: OnceLock::new(),
        _gauge: state
            .ctx
            .server
            .metrics
            .connection(crate::metrics::Transport::Http),
    });
    let inserted = lock(&state.sessions).insert(id.clone(), Arc::clone(&session));
    if let Err(full) = inserted {
        // Another request took the last place while this one started its session.
        end_session(&session).await;
        return Err(NewSessionError::Full(full));
    }
    tracing::debug!(http_session = %id, session = %session.handle.shared().id, "http session created");
    Ok(session)
}

pub(super) async fn end_session(session: &HttpSession) {
    session.handle.end().await;
    for stream in lock(&session.streams).values() {
        stream.finish();
    }
}

/// Removes sessions idle for longer than the timeout, stopping their actors.
pub(crate) async fn reap_idle_sessions(state: Arc<HttpState>) {
    let period = (state.settings.session_timeout / 4).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(period).await;
        let expired: Vec<(String, Arc<HttpSession>)> = {
            let mut sessions = lock(&state.sessions);
            let now = coarse_ms();
            let ids =
                sessions.expired(|s| s.last_seen.idle_at(now) > state.settings.session_timeout);
            ids.into_iter()
                .filter_map(|id| sessions.remove(&id).map(|s| (id, s)))
                .collect()
        };
        for (id, session) in expired {
            tracing::debug!(http_session = %id, "http session expired");
            if let Some(kept) = &state.kept {
                kept.forget(&id);
            }
            end_session(&session).await;
        }
    }
}

/// The coarse monotonic clock, in milliseconds (the tick's resolution is far below any session
/// timeout).
pub(crate) use crate::clock::monotonic_ms as coarse_ms;

/// When a session was last seen (a request named it): marked on every request with one clock
/// read and one atomic store, read by the reaper.
#[derive(Debug)]
pub(crate) struct SeenAt(AtomicU64);

impl SeenAt {
    /// Seen now.
    pub(crate) fn now() -> Self {
        Self(AtomicU64::new(coarse_ms()))
    }

    /// Last seen `idle_ms` ago (a session restored after a graceful stop).
    pub(crate) fn idle_for(idle_ms: u64) -> Self {
        Self(AtomicU64::new(coarse_ms().saturating_sub(idle_ms)))
    }

    /// Marks it seen now.
    pub(crate) fn mark(&self) {
        self.0.store(coarse_ms(), Ordering::Relaxed);
    }

    /// How long it has not been seen, at `now` (a [`coarse_ms`] reading).
    pub(crate) fn idle_at(&self, now: u64) -> Duration {
        Duration::from_millis(now.saturating_sub(self.0.load(Ordering::Relaxed)))
    }
}

/// The sessions by id. Every key is an id erlmcp drew from the OS's randomness, so no client can
/// fill the table with keys that collide: a fast hash (seeded per process) serves as well as
/// SipHash at a fifth of its cost.
type ById<S> = HashMap<String, Arc<S>, foldhash::fast::RandomState>;

/// What the table needs to know of a session: the source address that made it.
pub(crate) trait SessionClient {
    /// The source address that made it, if known.
    fn client(&self) -> Option<IpAddr>;
}

impl SessionClient for HttpSession {
    fn client(&self) -> Option<IpAddr> {
        self.client
    }
}

/// The caps of the table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionCaps {
    /// Sessions at once, in all.
    pub(crate) total: usize,
    /// Sessions at once from one source address (0: no cap).
    pub(crate) per_client: usize,
}

/// Why a session was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableFull {
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

/// The sessions, and how many each source address holds. (Generic over the session only so that
/// `erlmcp bench core` can measure its lookups without starting sessions.)
pub(crate) struct SessionTable<S = HttpSession> {
    by_id: ById<S>,
    per_client: HashMap<IpAddr, usize>,
    caps: SessionCaps,
    refused: LogLimiter,
}

impl<S: SessionClient> SessionTable<S> {
    /// An empty table with these caps.
    pub(crate) fn new(caps: SessionCaps) -> Self {
        Self {
            by_id: ById::default(),
            per_client: HashMap::new(),
            caps,
            refused: LogLimiter::per_second(),
        }
    }

    /// The session with this id.
    pub(crate) fn get(&self, id: &str) -> Option<&Arc<S>> {
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
    pub(crate) fn insert(&mut self, id: String, session: Arc<S>) -> Result<(), TableFull> {
        self.room_for(session.client())?;
        if let Some(ip) = session.client() {
            *self.per_client.entry(ip).or_default() += 1;
        }
        self.by_id.insert(id, session);
        Ok(())
    }

    /// Removes the session under `id`.
    pub(super) fn remove(&mut self, id: &str) -> Option<Arc<S>> {
        let session = self.by_id.remove(id)?;
        if let Some(ip) = session.client()
            && let Some(held) = self.per_client.get_mut(&ip)
        {
            *held -= 1;
            if *held == 0 {
                self.per_client.remove(&ip);
            }
        }
        Some(session)
    }

    /// Every session.
    pub(super) fn all(&self) -> Vec<Arc<S>> {
        self.by_id.values().cloned().collect()
    }

    /// The ids of the sessions for which `expired` holds.
    pub(super) fn expired(&self, expired: impl Fn(&S) -> bool) -> Vec<String> {
        self.by_id
            .iter()
            .filter(|(_, s)| expired(s))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Whether a session with this id is open (no mark of it being seen: the head checks ask).
pub(super) fn session_exists(state: &HttpState, id: &str) -> bool {
    lock(&state.sessions).get(id).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_finished_streams_are_forgotten_and_open_ones_kept() {
        let mut streams = BTreeMap::new();
        for id in 0..6 {
            let stream = EventStream::new(id);
            // 0 is the GET stream and 2 is still open; the others are finished.
            if id != 0 && id != 2 {
                stream.finish();
            }
            streams.insert(id, stream);
        }
        forget_finished_streams(&mut streams, 3);
        assert_eq!(
            streams.keys().copied().collect::<Vec<_>>(),
            vec![0, 2, 4, 5]
        );
        forget_finished_streams(&mut streams, 1);
        assert_eq!(streams.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
        forget_finished_streams(&mut streams, 0);
        assert_eq!(
            streams.keys().copied().collect::<Vec<_>>(),
            vec![0, 2],
            "an open stream and the GET stream are never forgotten"
        );
    }
}
