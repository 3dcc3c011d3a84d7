//! The part of a session that request paths read without a mailbox hop ([`SessionShared`]):
//! the negotiated state, the log level, the requests in flight (for cancellation) and the
//! requests this server sent the client and still waits on; and what `initialize` settled
//! ([`Negotiated`]).

use super::SessionInfo;
use super::journal::SessionJournal;
use crate::common::{BoxFuture, ListKind};
use crate::locks::lock;
use crate::outbound::Outbound;
use crate::protocol::jsonrpc::{self, RequestId, RpcError};
use crate::protocol::messages::{ClientCapabilities, Implementation, LogLevel};
use crate::protocol::revision::Revision;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

/// What `initialize` settled.
#[derive(Debug, Clone)]
pub struct Negotiated {
    /// The revision in use.
    pub(crate) revision: Revision,
    /// What the client can do.
    pub capabilities: ClientCapabilities,
    /// Who the client is.
    pub(crate) client_info: Option<Implementation>,
}

/// The part of a session that request paths read and that outlives a message.
#[derive(Debug)]
pub struct SessionShared {
    /// Session id (unique in this node; `stateless` for a stateless request, which has none).
    pub(crate) id: Cow<'static, str>,
    pub(super) outbound: Outbound,
    /// Set once, when `initialize` is answered; read lock-free by request paths.
    pub(super) negotiated: OnceLock<Negotiated>,
    pub(super) initialized_notified: AtomicBool,
    pub(super) log_level: AtomicU8,
    pub(super) in_flight: Mutex<HashMap<RequestId, AbortHandle>>,
    pub(super) pending: Mutex<HashMap<RequestId, oneshot::Sender<Result<Value, RpcError>>>>,
    pub(super) next_request: AtomicU64,
    pub(super) client_request_timeout: Duration,
    /// Requests this session has handled (for `remote ps` / `top`).
    pub(crate) requests: AtomicU64,
    /// Set when the session ends (its connection closed, or its actor failed).
    pub(super) ended: AtomicBool,
    /// Told of changes a kept session remembers (set once, by a transport that keeps it).
    pub(super) journal: OnceLock<Arc<dyn SessionJournal>>,
}

impl SessionShared {
    /// The state of a session that is not initialized yet. A session actor owns one per
    /// connection; a stateless (2026-07-28) HTTP request owns one for its own duration.
    pub fn new(
        id: impl Into<Cow<'static, str>>,
        outbound: Outbound,
        client_request_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            id: id.into(),
            outbound,
            negotiated: OnceLock::new(),
            initialized_notified: AtomicBool::new(false),
            log_level: AtomicU8::new(LogLevel::Info.as_u8()),
            in_flight: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            client_request_timeout,
            requests: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            journal: OnceLock::new(),
        })
    }

    /// Attaches the journal told of this session's changes (once; a second is ignored).
    pub(crate) fn set_journal(&self, journal: Arc<dyn SessionJournal>) {
        let _ = self.journal.set(journal);
    }

    /// The journal, if the session is kept.
    pub(super) fn journal(&self) -> Option<&Arc<dyn SessionJournal>> {
        self.journal.get()
    }

    /// Whether `notifications/initialized` has arrived.
    pub(crate) fn is_initialized(&self) -> bool {
        self.initialized_notified.load(Ordering::Relaxed)
    }

    /// The negotiated state, once `initialize` has been answered.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.get()
    }

    /// The negotiated revision.
    pub(crate) fn revision(&self) -> Option<Revision> {
        self.negotiated.get().map(|n| n.revision)
    }

    /// Queues a frame to the client.
    pub fn send(&self, frame: Vec<u8>) -> bool {
        self.outbound.send(frame)
    }

    /// The connection's outgoing queue.
    pub(crate) fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// The minimum level of `notifications/message` sent.
    pub fn log_level(&self) -> LogLevel {
        LogLevel::from_u8(self.log_level.load(Ordering::Relaxed))
    }

    /// Records a request that runs in its own task, so `notifications/cancelled` can abort it.
    pub fn track(&self, id: RequestId, task: AbortHandle) {
        lock(&self.in_flight).insert(id, task);
    }

    /// Runs an unfinished request in its own task, tracked for cancellation; when it finishes
    /// its answer is sent unless it was cancelled. `false` if the id is already in flight.
    pub(crate) fn spawn_tracked(
        self: &Arc<Self>,
        id: RequestId,
        work: BoxFuture<Vec<u8>>,
        reply: Outbound,
    ) -> bool {
        // Hold the table while spawning, so the task cannot finish before it is recorded.
        let mut in_flight = lock(&self.in_flight);
        if in_flight.contains_key(&id) {
            return false;
        }
        let shared = Arc::clone(self);
        let key = id.clone();
        let task = tokio::spawn(async move {
            let frame = work.await;
            if shared.finish(&key) {
                reply.send(frame);
            }
        });
        in_flight.insert(id, task.abort_handle());
        true
    }

    /// Forgets a finished request; `false` if it was cancelled meanwhile (then send nothing).
    pub(crate) fn finish(&self, id: &RequestId) -> bool {
        lock(&self.in_flight).remove(id).is_some()
    }

    /// Cancels a request in flight; `true` if there was one.
    pub(crate) fn cancel(&self, id: &RequestId) -> bool {
        match lock(&self.in_flight).remove(id) {
            Some(task) => {
                task.abort();
                true
            }
            None => false,
        }
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        lock(&self.in_flight).len()
    }

    /// Whether the session has ended: its connection closed, or its actor failed.
    pub(crate) fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Sends `notifications/<kind>/list_changed` once the session is initialized.
    pub(super) fn notify_list_changed(&self, kind: ListKind) {
        if self.negotiated.get().is_some() {
            self.send(jsonrpc::encode_notification(
                kind.notification(),
                &serde_json::json!({}),
            ));
        }
    }

    /// What `sessions` in the remote shell shows, given what the actor holds.
    pub(super) fn info(
        &self,
        subscriptions: Vec<String>,
        listens: usize,
        hibernating: bool,
    ) -> SessionInfo {
        let negotiated = self.negotiated();
        SessionInfo {
            id: self.id.to_string(),
            revision: negotiated.map(|n| n.revision.to_string()),
            client: negotiated.and_then(|n| n.client_info.as_ref().map(|c| c.name.clone())),
            initialized: self.initialized_notified.load(Ordering::Relaxed),
            subscriptions,
            in_flight: self.in_flight(),
            requests: self.requests.load(Ordering::Relaxed),
            listens,
            hibernating,
        }
    }

    /// Delivers the client's answer to a request this server sent; `false` if none was pending.
    pub(crate) fn deliver(&self, id: &RequestId, outcome: Result<Value, RpcError>) -> bool {
        match lock(&self.pending).remove(id) {
            Some(waiter) => {
                let _ = waiter.send(outcome);
                true
            }
            None => false,
        }
    }

    /// Aborts everything in flight (the connection is gone).
    pub(crate) fn abort_all(&self) {
        for (_, task) in lock(&self.in_flight).drain() {
            task.abort();
        }
        lock(&self.pending).clear();
    }
}
