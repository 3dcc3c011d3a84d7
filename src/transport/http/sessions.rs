//! Owns the life of a Streamable HTTP session: making one for an `initialize` (its session actor,
//! its random `Mcp-Session-Id`, its GET stream), the request streams it keeps for resumption,
//! ending it, and expiring it after `http.session_timeout` idle. The table that finds them and
//! caps them is [`super::session_table`].

use super::event_stream::EventStream;
use super::{HttpState, session_id, session_table};
use crate::locks::lock;
use crate::outbound::Outbound;
use crate::protocol::jsonrpc::RpcError;
use crate::session::{SessionHandle, start_session};
use axum::http::HeaderValue;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One HTTP session: its session actor and its event streams (0 is the GET stream).
pub(super) struct HttpSession {
    /// The `Mcp-Session-Id`, as the header value every answer carries.
    pub(super) id: HeaderValue,
    pub(super) handle: SessionHandle,
    /// By id, so the oldest come first when finished ones are forgotten.
    pub(super) streams: Mutex<BTreeMap<u64, Arc<EventStream>>>,
    next_stream: AtomicU64,
    pub(super) last_seen: Mutex<Instant>,
    /// The source address that made it (for `http.max_sessions_per_client`).
    pub(super) client: Option<std::net::IpAddr>,
    _gauge: crate::metrics::ConnectionGauge,
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
    Full(session_table::TableFull),
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
    let id = session_id()?;
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
        last_seen: Mutex::new(Instant::now()),
        client,
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
pub async fn reap_idle_sessions(state: Arc<HttpState>) {
    let period = (state.settings.session_timeout / 4).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(period).await;
        let expired: Vec<(String, Arc<HttpSession>)> = {
            let mut sessions = lock(&state.sessions);
            let now = Instant::now();
            let ids = sessions.expired(|s| {
                now.duration_since(*lock(&s.last_seen)) > state.settings.session_timeout
            });
            ids.into_iter()
                .filter_map(|id| sessions.remove(&id).map(|s| (id, s)))
                .collect()
        };
        for (id, session) in expired {
            tracing::debug!(http_session = %id, "http session expired");
            end_session(&session).await;
        }
    }
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
