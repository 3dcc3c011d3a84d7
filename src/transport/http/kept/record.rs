//! Owns what the state store keeps of a Streamable HTTP session ([`StoredSession`], bincode)
//! and the record of a kept session ([`SessionRecord`]), which its session tells of each change
//! to remember and which writes it back to the store.

use crate::locks::lock;
use crate::log_limit::LogLimiter;
use crate::protocol::messages::LogLevel;
use crate::session::journal::SessionJournal;
use crate::store::{Store, StoreError};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// The store table of HTTP sessions, by `Mcp-Session-Id`.
pub(crate) const SESSIONS_TABLE: &str = "http_sessions";

/// What the store keeps of a session.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub(crate) struct StoredSession {
    /// The negotiated revision, as the protocol spells it.
    pub(crate) revision: String,
    /// The client's capabilities, as JSON.
    pub(crate) capabilities: String,
    /// The client's name and version, as JSON.
    pub(crate) client_info: Option<String>,
    /// `notifications/initialized` had arrived.
    pub(crate) initialized: bool,
    /// The `logging/setLevel` level.
    pub(crate) log_level: u8,
    /// Subscribed resources.
    pub(crate) subscriptions: Vec<String>,
    /// Each stream's id and the seq of its last event (0 is the GET stream).
    pub(crate) streams: Vec<(u64, u64)>,
    /// The subject of the token that made it (`[auth]`): only that subject may use it, after a
    /// restart or a takeover too. Last, so that a record written before it existed still reads
    /// (as [`LegacySession`], its owner unknown).
    pub(crate) owner: Option<String>,
}

/// A record as written before [`StoredSession::owner`] existed.
#[derive(bincode::Decode)]
struct LegacySession {
    revision: String,
    capabilities: String,
    client_info: Option<String>,
    initialized: bool,
    log_level: u8,
    subscriptions: Vec<String>,
    streams: Vec<(u64, u64)>,
}

impl StoredSession {
    pub(super) fn encode(&self) -> Vec<u8> {
        // Strings, integers and vectors only: encoding into a vector cannot fail.
        bincode::encode_to_vec(self, bincode::config::standard()).unwrap_or_default()
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let config = bincode::config::standard();
        match bincode::decode_from_slice::<Self, _>(bytes, config) {
            Ok((record, _)) => Ok(record),
            // A record ends where a legacy one did: it has no owner.
            Err(e) => match bincode::decode_from_slice::<LegacySession, _>(bytes, config) {
                Ok((legacy, read)) if read == bytes.len() => Ok(Self {
                    revision: legacy.revision,
                    capabilities: legacy.capabilities,
                    client_info: legacy.client_info,
                    initialized: legacy.initialized,
                    log_level: legacy.log_level,
                    subscriptions: legacy.subscriptions,
                    streams: legacy.streams,
                    owner: None,
                }),
                _ => Err(e.to_string()),
            },
        }
    }

    /// A record of a typical session (for `erlmcp bench store`): the client info and
    /// capabilities a common SDK sends, two subscriptions, three streams.
    pub(crate) fn sample(i: usize) -> Vec<u8> {
        Self {
            revision: "2025-06-18".into(),
            capabilities: r#"{"roots":{"listChanged":true},"sampling":{},"elicitation":{}}"#.into(),
            client_info: Some(format!(
                r#"{{"name":"bench-client-{i}","version":"1.4.2"}}"#
            )),
            initialized: true,
            log_level: LogLevel::Info.as_u8(),
            subscriptions: vec![
                format!("file:///project/{i}/README.md"),
                "demo://counter".into(),
            ],
            streams: vec![(0, 12), (3, 2), (4, 5)],
            owner: None,
        }
        .encode()
    }
}

/// The store, as the HTTP transport uses it.
pub(crate) struct KeptSessions {
    pub(crate) store: Arc<Store>,
    /// Sessions kept at most.
    max: usize,
    /// Refusals (table full, log not writable), logged once a second at most.
    refused: LogLimiter,
}

impl KeptSessions {
    /// The HTTP sessions of `store`, at most `max` of them.
    pub(crate) fn new(store: Arc<Store>, max: usize) -> Arc<Self> {
        store.table(SESSIONS_TABLE).bound(max);
        Arc::new(Self {
            store,
            max,
            refused: LogLimiter::per_second(),
        })
    }

    /// Sessions kept at most (`store.max_sessions`).
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    pub(super) fn refused(&self, id: &str, error: &StoreError) {
        if let Some(held) = self.refused.allow() {
            tracing::warn!(http_session = %id, error = %error, not_logged = held, "http session not kept in the store: it is served, but will not survive a restart");
        }
    }

    /// Puts `record` under `id`; `false` if the store refused it (logged).
    pub(super) fn put(&self, id: &str, record: &StoredSession) -> bool {
        match self.store.put(SESSIONS_TABLE, id, record.encode()) {
            Ok(()) => true,
            Err(e) => {
                self.refused(id, &e);
                false
            }
        }
    }

    /// Forgets the session `id` (deleted, or expired).
    pub(crate) fn forget(&self, id: &str) {
        if let Err(e) = self.store.delete(SESSIONS_TABLE, id) {
            self.refused(id, &e);
        }
    }
}

/// A kept session's record, updated and written on each change its session reports.
#[derive(Debug)]
pub(crate) struct SessionRecord {
    pub(super) kept: Arc<KeptSessions>,
    pub(super) id: String,
    pub(super) record: Mutex<StoredSession>,
    /// The record says `initialized` (read on every request of the session, without the lock).
    pub(super) initialized: AtomicBool,
}

impl std::fmt::Debug for KeptSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptSessions").finish()
    }
}

impl SessionJournal for SessionRecord {
    fn level_set(&self, level: LogLevel) {
        let mut record = lock(&self.record);
        record.log_level = level.as_u8();
        self.kept.put(&self.id, &record);
    }

    fn subscription(&self, uri: &str, subscribed: bool) {
        let mut record = lock(&self.record);
        if record.subscriptions.iter().any(|kept| kept == uri) == subscribed {
            return; // Already so (a restored session taking its subscriptions again).
        }
        record.subscriptions.retain(|kept| kept != uri);
        if subscribed {
            record.subscriptions.push(uri.to_owned());
        }
        self.kept.put(&self.id, &record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreSettings;

    #[test]
    fn the_owner_is_kept_and_a_record_written_before_it_existed_still_reads() {
        let mut record = StoredSession::decode(&StoredSession::sample(1)).unwrap();
        assert_eq!(record.owner, None);
        record.owner = Some("alice".into());
        let back = StoredSession::decode(&record.encode()).unwrap();
        assert_eq!(back, record);
        // The fields before `owner`, as a record written before it existed.
        let legacy = bincode::encode_to_vec(
            (
                &record.revision,
                &record.capabilities,
                &record.client_info,
                record.initialized,
                record.log_level,
                &record.subscriptions,
                &record.streams,
            ),
            bincode::config::standard(),
        )
        .unwrap();
        let read = StoredSession::decode(&legacy).unwrap();
        assert_eq!(read.owner, None);
        assert_eq!(read.subscriptions, record.subscriptions);
        assert!(StoredSession::decode(&legacy[..legacy.len() - 1]).is_err());
    }

    fn stored(kept: &KeptSessions, id: &str) -> StoredSession {
        let bytes = kept.store.table(SESSIONS_TABLE).get(id).expect("kept");
        StoredSession::decode(&bytes).expect("decodes")
    }

    #[test]
    fn a_record_round_trips_and_follows_its_sessions_changes() {
        let kept = KeptSessions::new(Store::open(StoreSettings::in_memory()), 10);
        let record = StoredSession::decode(&StoredSession::sample(3)).unwrap();
        assert_eq!(record.revision, "2025-06-18");
        assert!(kept.put("abc", &record));
        let journal = SessionRecord {
            kept: Arc::clone(&kept),
            id: "abc".into(),
            initialized: AtomicBool::new(true),
            record: Mutex::new(record.clone()),
        };
        journal.level_set(LogLevel::Debug);
        journal.subscription("file:///x", true);
        journal.subscription("demo://counter", false);
        let changes = kept.store.table(SESSIONS_TABLE).changes();
        journal.subscription("file:///x", true);
        journal.subscription("never-subscribed", false);
        assert_eq!(
            kept.store.table(SESSIONS_TABLE).changes(),
            changes,
            "what changes nothing is not written"
        );
        let now = stored(&kept, "abc");
        assert_eq!(now.log_level, LogLevel::Debug.as_u8());
        assert_eq!(
            now.subscriptions,
            vec!["file:///project/3/README.md".to_owned(), "file:///x".into()]
        );
        assert_eq!(
            (now.streams, now.revision),
            (record.streams, record.revision)
        );
        kept.forget("abc");
        assert!(kept.store.table(SESSIONS_TABLE).get("abc").is_none());
    }

    #[test]
    fn past_max_sessions_a_session_is_not_kept() {
        let kept = KeptSessions::new(Store::open(StoreSettings::in_memory()), 1);
        let record = StoredSession::decode(&StoredSession::sample(0)).unwrap();
        assert!(kept.put("a", &record));
        assert!(
            !kept.put("b", &record),
            "the table is at store.max_sessions"
        );
        assert!(kept.put("a", &record), "a kept one is still updated");
        assert!(StoredSession::decode(b"\xff\xff\xff").is_err());
    }
}
