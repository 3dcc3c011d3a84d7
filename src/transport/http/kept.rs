//! Owns the Streamable HTTP sessions kept in the state store, so that they survive a restart:
//! the record of each (its negotiated revision, the client's capabilities and info, its log
//! level, its resource subscriptions, the last event id of each of its streams), written before
//! the `initialize` answer goes out and again on each change the session reports; removed when
//! the session is deleted or expires; read back when the listener starts, each record becoming a
//! session served as before under its old `Mcp-Session-Id`.
//!
//! A session's idle time is kept across a graceful stop: the stop writes when each session was
//! last seen (table [`SEEN_TABLE`], one batch) and then a marker that it did so
//! ([`CLEAN_STOP`]); the start that finds the marker goes on counting each session's
//! `http.session_timeout` from then (a session that expired while the node was down is
//! forgotten), and removes the marker and the times at once. Without the marker (a crash), the
//! times are not trusted: every restored session's timeout starts again at the restart, since
//! the last request seen before a crash was never written.

use super::HttpState;
use super::event_stream::EventStream;
use super::sessions::{HttpSession, SeenAt};
use crate::locks::lock;
use crate::outbound::Outbound;
use crate::protocol::messages::LogLevel;
use crate::protocol::revision::Revision;
use crate::session::journal::SessionJournal;
use crate::session::{Negotiated, start_session};
use axum::http::HeaderValue;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The store table of when each kept session was last seen (unix ms), written at a graceful stop.
pub(crate) const SEEN_TABLE: &str = "http_sessions_seen";
/// The table and key of the marker a graceful stop writes after [`SEEN_TABLE`].
const NODE_TABLE: &str = "http_node";
const CLEAN_STOP: &str = "clean_stop";

pub(crate) mod record;
pub(crate) use record::{KeptSessions, SESSIONS_TABLE, SessionRecord, StoredSession};

/// `erlmcp bench store`: `sessions` typical session records in a store in `dir`, snapshotted
/// and restored (in the table the HTTP sessions are kept in: a node started on `dir` serves
/// them).
pub fn snapshot_figures(
    dir: &std::path::Path,
    sessions: usize,
) -> Result<crate::store::bench::SnapshotFigures, crate::store::StoreError> {
    crate::store::bench::snapshot_figures(dir, SESSIONS_TABLE, sessions, StoredSession::sample)
}

/// `journal`'s record with each stream's last event id as it is now; `None` if none changed.
fn with_streams_now(journal: &SessionRecord, session: &HttpSession) -> Option<StoredSession> {
    let streams: Vec<(u64, u64)> = lock(&session.streams)
        .iter()
        .map(|(id, stream)| (*id, stream.last_seq()))
        .collect();
    let mut record = lock(&journal.record);
    if record.streams == streams {
        return None;
    }
    record.streams = streams;
    Some(record.clone())
}

/// Keeps a session `initialize` just made, once its answer is ready and before it goes out: with
/// `store.fsync = "always"`, an answered `initialize` is on disk. Whether it was kept (the store's
/// change then carries the record to the replicas: [`super::replica`]).
pub(super) async fn keep_new(state: &HttpState, session: &HttpSession) -> bool {
    let Some(kept) = state.kept.as_ref() else {
        return false;
    };
    let shared = session.handle.shared();
    // The initialize was refused: nothing to keep.
    let Some(negotiated) = shared.negotiated() else {
        return false;
    };
    let id = session.id.to_str().unwrap_or_default().to_owned();
    let record = StoredSession {
        revision: negotiated.revision.to_string(),
        capabilities: serde_json::to_string(&negotiated.capabilities).unwrap_or_default(),
        client_info: negotiated
            .client_info
            .as_ref()
            .and_then(|c| serde_json::to_string(c).ok()),
        initialized: shared.is_initialized(),
        log_level: shared.log_level().as_u8(),
        subscriptions: Vec::new(),
        streams: vec![(0, 0)],
        owner: session.owner.get().map(|owner| owner.to_string()),
    };
    let written = {
        let (kept, id, record) = (Arc::clone(kept), id.clone(), record.clone());
        tokio::task::spawn_blocking(move || kept.put(&id, &record))
            .await
            .unwrap_or(false)
    };
    if !written {
        return false;
    }
    {
        let journal = Arc::new(SessionRecord {
            kept: Arc::clone(kept),
            id,
            initialized: AtomicBool::new(record.initialized),
            record: Mutex::new(record),
        });
        let _ = session.record.set(Arc::clone(&journal));
        shared.set_journal(journal);
    }
    true
}

/// Records `notifications/initialized` for a kept session (a restored session must not wait for
/// it again).
pub(super) fn initialized(session: &HttpSession) {
    let Some(journal) = session.record.get() else {
        return;
    };
    if journal.initialized.load(Ordering::Relaxed) || !session.handle.shared().is_initialized() {
        return;
    }
    journal.initialized.store(true, Ordering::Relaxed);
    let mut record = lock(&journal.record);
    record.initialized = true;
    journal.kept.put(&journal.id, &record);
}

/// Writes each kept session's last event ids (at a graceful stop), in one batch.
pub(crate) fn save_event_ids(state: &HttpState) {
    let Some(kept) = &state.kept else { return };
    let sessions = lock(&state.sessions).all();
    let changed: Vec<(String, Vec<u8>)> = sessions
        .iter()
        .filter_map(|session| {
            let journal = session.record.get()?;
            let record = with_streams_now(journal, session)?;
            Some((journal.id.clone(), record.encode()))
        })
        .collect();
    if let Err(e) = kept.store.put_batch(SESSIONS_TABLE, changed) {
        kept.refused("(the last event ids at stop)", &e);
    }
    save_last_seen(kept, &sessions);
}

/// Writes when each kept session was last seen, then the marker that says these times are whole.
fn save_last_seen(kept: &KeptSessions, sessions: &[Arc<HttpSession>]) {
    let (now_wall, now) = (crate::clock::wall_ms(), super::sessions::coarse_ms());
    let seen: Vec<(String, Vec<u8>)> = sessions
        .iter()
        .filter_map(|session| {
            let journal = session.record.get()?;
            let idle = session.last_seen.idle_at(now).as_millis() as u64;
            let at = now_wall.saturating_sub(idle);
            Some((journal.id.clone(), at.to_le_bytes().to_vec()))
        })
        .collect();
    kept.store.table(SEEN_TABLE).bound(kept.max());
    let written = kept.store.put_batch(SEEN_TABLE, seen).and_then(|()| {
        kept.store
            .put(NODE_TABLE, CLEAN_STOP, now_wall.to_le_bytes().to_vec())
    });
    if let Err(e) = written {
        kept.refused("(the sessions' idle times at stop)", &e);
    }
}

/// When each kept session was last seen, if the last stop was graceful (its marker is there);
/// the marker and the times are removed, so that a later crash does not find them stale.
fn take_last_seen(kept: &KeptSessions) -> Option<HashMap<String, u64>> {
    let marker = kept.store.table(NODE_TABLE).get(CLEAN_STOP);
    let mut seen = HashMap::new();
    kept.store.table(SEEN_TABLE).scan(|id, bytes| {
        if let Ok(at) = <[u8; 8]>::try_from(bytes.as_ref()) {
            seen.insert(id.to_owned(), u64::from_le_bytes(at));
        }
    });
    // The marker first: without it, times left behind are never trusted.
    if marker.is_some()
        && let Err(e) = kept.store.delete(NODE_TABLE, CLEAN_STOP)
    {
        tracing::error!(error = %e, "cannot remove the clean-stop marker of the kept http sessions");
    }
    if !seen.is_empty()
        && let Err(e) = kept
            .store
            .delete_batch(SEEN_TABLE, seen.keys().cloned().collect())
    {
        tracing::error!(error = %e, "cannot remove the kept http sessions' idle times");
    }
    marker.map(|_| seen)
}

/// Serves again every session the store kept: called once, before the listener accepts.
pub(crate) async fn restore(state: &HttpState) {
    use futures::StreamExt as _;
    let Some(kept) = &state.kept else { return };
    let started = std::time::Instant::now();
    let last_seen = take_last_seen(kept);
    let now_wall = crate::clock::wall_ms();
    let timeout = state.settings.session_timeout.as_millis() as u64;
    let mut records = Vec::new();
    let mut expired = Vec::new();
    kept.store.table(SESSIONS_TABLE).scan(|id, bytes| {
        // Idle since it was last seen before the stop (unknown after a crash: none).
        let idle = last_seen
            .as_ref()
            .and_then(|seen| seen.get(id))
            .map_or(0, |at| now_wall.saturating_sub(*at));
        if idle > timeout {
            expired.push(id.to_owned());
        } else {
            records.push((id.to_owned(), Arc::clone(bytes), idle));
        }
    });
    if !expired.is_empty() {
        tracing::info!(
            sessions = expired.len(),
            "kept http sessions expired while the node was down; forgotten"
        );
        if let Err(e) = kept.store.delete_batch(SESSIONS_TABLE, expired) {
            tracing::error!(error = %e, "cannot forget the kept http sessions that expired");
        }
    }
    // Many at once: a session with subscriptions waits for its actor to start under
    // `erlmcp_session_sup`, and one after another those waits add up.
    let outcomes: Vec<(String, Result<Resubscribe, String>)> = futures::stream::iter(records)
        .map(|(id, bytes, idle)| async move {
            let outcome = match StoredSession::decode(&bytes) {
                Ok(record) => revive(state, kept, &id, record, idle).await,
                Err(e) => Err(format!("unreadable record: {e}")),
            };
            (id, outcome)
        })
        .buffer_unordered(RESTORING_AT_ONCE)
        .collect()
        .await;
    let mut restored = 0usize;
    let mut resubscribe = Vec::new();
    let mut forgotten = Vec::new();
    for (id, outcome) in outcomes {
        match outcome {
            Ok((handle, uris)) => {
                restored += 1;
                if !uris.is_empty() {
                    resubscribe.push((handle, uris));
                }
            }
            Err(reason) => {
                // A few named; the rest counted below (a full table refuses thousands at once).
                if forgotten.len() < 5 {
                    tracing::warn!(http_session = %id, %reason, "kept http session not restored; forgotten");
                }
                forgotten.push(id);
            }
        }
    }
    if !forgotten.is_empty() {
        tracing::warn!(
            sessions = forgotten.len(),
            "kept http sessions not restored, and forgotten (the first are named above)"
        );
        if let Err(e) = kept.store.delete_batch(SESSIONS_TABLE, forgotten) {
            tracing::error!(error = %e, "cannot forget the kept http sessions not restored");
        }
    }
    if restored > 0 {
        tracing::info!(
            sessions = restored,
            ms = started.elapsed().as_millis() as u64,
            "http sessions restored from the store"
        );
    }
    if !resubscribe.is_empty() {
        tokio::spawn(take_subscriptions_again(resubscribe));
    }
}

/// Takes the restored sessions' resource subscriptions again, after the listener accepts: each
/// needs its session's actor started under `erlmcp_session_sup`, one at a time there, which for
/// many sessions takes seconds — the sessions are served meanwhile (an update of a subscribed
/// resource in that window is not sent).
async fn take_subscriptions_again(sessions: Vec<Resubscribe>) {
    use futures::StreamExt as _;
    let started = std::time::Instant::now();
    let count = sessions.len();
    futures::stream::iter(sessions)
        .for_each_concurrent(RESTORING_AT_ONCE, |(handle, uris)| async move {
            for uri in uris {
                if let Err(e) = handle.subscribe(uri.clone()).await {
                    tracing::debug!(%uri, error = %e.message, "a restored subscription was not taken again");
                }
            }
        })
        .await;
    tracing::info!(
        sessions = count,
        ms = started.elapsed().as_millis() as u64,
        "restored sessions' resource subscriptions taken again"
    );
}

/// Makes session `id` again from its record in `table` (a replica another member sent), as
/// this node's own kept session, and forgets the replica; `Ok(false)` when `table` has none.
pub(super) async fn take_over(
    state: &HttpState,
    kept: &Arc<KeptSessions>,
    id: &str,
    table: &str,
) -> Result<bool, String> {
    let Some(bytes) = kept.store.table(table).get(id) else {
        return Ok(false);
    };
    adopt(state, kept, id, &bytes).await?;
    if let Err(e) = forget(kept, table, id).await {
        kept.refused(id, &e);
    }
    Ok(true)
}

/// Deletes `id` from `table`, on the blocking pool (the delete waits for its change-log record,
/// and fsync with `store.fsync = "always"`).
pub(super) async fn forget(
    kept: &Arc<KeptSessions>,
    table: &str,
    id: &str,
) -> Result<(), crate::store::StoreError> {
    let (owned, id, table) = (Arc::clone(kept), id.to_owned(), table.to_owned());
    tokio::task::spawn_blocking(move || owned.store.delete(&table, &id))
        .await
        .unwrap_or(Ok(()))
}

/// Makes the session `id` of the record `bytes` (another node's: a replica, or a session handed
/// over) this node's own kept session, as a restart makes a kept one: served from now on, and
/// kept in [`SESSIONS_TABLE`].
pub(super) async fn adopt(
    state: &HttpState,
    kept: &Arc<KeptSessions>,
    id: &str,
    bytes: &[u8],
) -> Result<(), String> {
    let record = StoredSession::decode(bytes).map_err(|e| format!("unreadable record: {e}"))?;
    let encoded = record.encode();
    let (handle, uris) = revive(state, kept, id, record, 0).await?;
    let (owned, id_owned) = (Arc::clone(kept), id.to_owned());
    let kept_here =
        tokio::task::spawn_blocking(move || owned.store.put(SESSIONS_TABLE, &id_owned, encoded))
            .await;
    if let Ok(Err(e)) = kept_here {
        kept.refused(id, &e);
    }
    for uri in uris {
        if let Err(e) = handle.subscribe(uri.clone()).await {
            tracing::debug!(%uri, error = %e.message, "a subscription of a session taken over was not taken again");
        }
    }
    Ok(())
}

/// Sessions made again at once at start.
const RESTORING_AT_ONCE: usize = 64;

/// A restored session and the resources it had subscribed to.
type Resubscribe = (crate::session::SessionHandle, Vec<String>);

/// Makes the session `id` of `record` again, idle for `idle_ms` already (its subscriptions are
/// taken again afterwards).
async fn revive(
    state: &HttpState,
    kept: &Arc<KeptSessions>,
    id: &str,
    record: StoredSession,
    idle_ms: u64,
) -> Result<Resubscribe, String> {
    let header = HeaderValue::from_str(id).map_err(|e| format!("bad session id: {e}"))?;
    let revision = Revision::parse(&record.revision)
        .ok_or_else(|| format!("unknown revision {}", record.revision))?;
    let capabilities = serde_json::from_str(&record.capabilities).map_err(|e| e.to_string())?;
    let client_info = match &record.client_info {
        Some(json) => Some(serde_json::from_str(json).map_err(|e| e.to_string())?),
        None => None,
    };
    let (outbound, queue) = Outbound::channel();
    let handle = start_session(outbound, state.ctx.sessions)
        .await
        .map_err(|e| e.message)?;
    handle.restore(
        Negotiated {
            revision,
            capabilities,
            client_info,
        },
        record.initialized,
        LogLevel::from_u8(record.log_level),
    );
    let resubscribe = (handle.clone(), record.subscriptions.clone());
    let mut streams = BTreeMap::new();
    for (stream_id, last_seq) in &record.streams {
        let stream = EventStream::resumed(*stream_id, *last_seq);
        if *stream_id != 0 {
            // Its request was answered before the restart; its events are gone.
            stream.finish();
        }
        streams.insert(*stream_id, stream);
    }
    let standalone = streams
        .entry(0)
        .or_insert_with(|| EventStream::new(0))
        .clone();
    standalone.feed(queue, state.settings.replay_buffer);
    let next_stream = streams.keys().max().copied().unwrap_or(0) + 1;
    let owner = std::sync::OnceLock::new();
    if let Some(subject) = &record.owner {
        let _ = owner.set(Arc::from(subject.as_str()));
    }
    let journal = Arc::new(SessionRecord {
        kept: Arc::clone(kept),
        id: id.to_owned(),
        initialized: AtomicBool::new(record.initialized),
        record: Mutex::new(record),
    });
    let as_journal: Arc<dyn SessionJournal> = journal.clone();
    handle.shared().set_journal(as_journal);
    let session = Arc::new(HttpSession {
        id: header,
        handle,
        streams: Mutex::new(streams),
        next_stream: AtomicU64::new(next_stream),
        last_seen: SeenAt::idle_for(idle_ms),
        client: None,
        record: journal.into(),
        restored: true,
        owner,
        _gauge: state
            .ctx
            .server
            .metrics
            .connection(crate::metrics::Transport::Http),
    });
    let inserted = lock(&state.sessions).insert(id.to_owned(), Arc::clone(&session));
    if let Err(full) = inserted {
        super::sessions::end_session(&session).await;
        return Err(full.message());
    }
    Ok(resubscribe)
}
