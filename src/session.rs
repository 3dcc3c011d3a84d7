//! Owns one client session: the negotiated revision, the client's capabilities, the log level,
//! resource subscriptions, the requests in flight (for cancellation) and the requests this server
//! sent the client and still waits on.
//!
//! A session's actor is a [`Session`] under the dynamic supervisor `erlmcp_session_sup`
//! (temporary children: a session is bound to its connection and is never restarted). The actor
//! keeps what only it changes — resource subscriptions, `subscriptions/listen` streams — and
//! takes the registry's broadcasts; request paths read the rest through [`SessionShared`] without
//! a mailbox hop (the negotiated state is set once, the log level is an atomic, and the two tables
//! touched on every request — requests in flight and server→client requests pending — are short
//! mutex-guarded maps, because routing each request through the mailbox twice would cost more
//! than it protects; see `docs/architecture.md`). A session whose actor fails ends, and closes
//! its connection; no other session is affected.
//!
//! Sessions hibernate, as OTP processes do (`hibernate_after`, and a `gen_server` whose `init`
//! answers `hibernate`): the mailboxes and task of an idle ractor actor were half of what an idle
//! connection cost, so a session runs without an actor until it holds something, and its actor
//! stops once it has held nothing and been asked nothing for `hibernate_after`. Meanwhile the
//! session lives in its [`SessionShared`], listed in a table that broadcasts and `remote sessions`
//! read. Its connection holds it as a [`SessionHandle`], whose one lock over the actor orders
//! waking (starting an actor to ask it something), asking and hibernating. One lock
//! ([`HIBERNATING`]) orders hibernating, waking and broadcasting, so no change notification is
//! lost or sent twice across either step. With `hibernate_after = 0` every session has its actor
//! from its first message to its last.

use crate::common::{BoxFuture, ListKind};
use crate::locks::lock;
use crate::outbound::Outbound;
use crate::protocol::jsonrpc::{self, RequestId, RpcError};
use crate::protocol::messages::{ClientCapabilities, Implementation, ListenFilter, LogLevel};
use crate::protocol::modern::{Envelope, SUBSCRIPTION_ID_KEY};
use crate::protocol::revision::Revision;
use erlmcp_supervisors::{ChildTemplate, Restart, Shutdown};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

pub use crate::tree_names::{SESSION_SUP, SESSIONS_GROUP};

pub mod broadcast;

/// What `initialize` settled.
#[derive(Debug, Clone)]
pub struct Negotiated {
    /// The revision in use.
    pub revision: Revision,
    /// What the client can do.
    pub capabilities: ClientCapabilities,
    /// Who the client is.
    pub client_info: Option<Implementation>,
}

/// The part of a session that request paths read and that outlives a message.
#[derive(Debug)]
pub struct SessionShared {
    /// Session id (unique in this node; `stateless` for a stateless request, which has none).
    pub id: Cow<'static, str>,
    outbound: Outbound,
    /// Set once, when `initialize` is answered; read lock-free by request paths.
    negotiated: OnceLock<Negotiated>,
    initialized_notified: AtomicBool,
    log_level: AtomicU8,
    in_flight: Mutex<HashMap<RequestId, AbortHandle>>,
    pending: Mutex<HashMap<RequestId, oneshot::Sender<Result<Value, RpcError>>>>,
    next_request: AtomicU64,
    client_request_timeout: Duration,
    /// Requests this session has handled (for `remote ps` / `top`).
    pub requests: AtomicU64,
    /// Set when the session ends (its connection closed, or its actor failed).
    ended: AtomicBool,
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
        })
    }

    /// The negotiated state, once `initialize` has been answered.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.get()
    }

    /// The negotiated revision.
    pub fn revision(&self) -> Option<Revision> {
        self.negotiated.get().map(|n| n.revision)
    }

    /// Queues a frame to the client.
    pub fn send(&self, frame: Vec<u8>) -> bool {
        self.outbound.send(frame)
    }

    /// The connection's outgoing queue.
    pub fn outbound(&self) -> &Outbound {
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
    pub fn spawn_tracked(
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
    pub fn finish(&self, id: &RequestId) -> bool {
        lock(&self.in_flight).remove(id).is_some()
    }

    /// Cancels a request in flight; `true` if there was one.
    pub fn cancel(&self, id: &RequestId) -> bool {
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
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Sends `notifications/<kind>/list_changed` once the session is initialized.
    fn notify_list_changed(&self, kind: ListKind) {
        if self.negotiated.get().is_some() {
            self.send(jsonrpc::encode_notification(
                kind.notification(),
                &serde_json::json!({}),
            ));
        }
    }

    /// What `sessions` in the remote shell shows, given what the actor holds.
    fn info(&self, subscriptions: Vec<String>, listens: usize, hibernating: bool) -> SessionInfo {
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
    pub fn deliver(&self, id: &RequestId, outcome: Result<Value, RpcError>) -> bool {
        match lock(&self.pending).remove(id) {
            Some(waiter) => {
                let _ = waiter.send(outcome);
                true
            }
            None => false,
        }
    }

    /// Aborts everything in flight (the connection is gone).
    pub fn abort_all(&self) {
        for (_, task) in lock(&self.in_flight).drain() {
            task.abort();
        }
        lock(&self.pending).clear();
    }
}

/// Why a request to the client failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientRequestError {
    /// The client did not declare the capability this request needs.
    #[error("the client does not support {0} (it did not declare the `{0}` capability)")]
    NotSupported(&'static str),
    /// No answer in time; a `notifications/cancelled` was sent.
    #[error("the client did not answer {method} within {timeout:?}")]
    Timeout {
        /// The method.
        method: String,
        /// The limit.
        timeout: Duration,
    },
    /// The client answered with an error.
    #[error("the client refused {method}: {error}")]
    Refused {
        /// The method.
        method: String,
        /// Its error.
        error: RpcError,
    },
    /// The connection closed first.
    #[error("the client disconnected")]
    Disconnected,
    /// A stateless (2026-07-28) request cannot send the client requests of its own; its input
    /// requests travel in an `input_required` result instead, and the client retries.
    #[error("{0} cannot be asked of the client in revision 2026-07-28 (no back channel)")]
    NoBackChannel(&'static str),
    /// The client's answer is needed first: the request ends with `resultType: input_required`
    /// and is run again when the client retries with the answer.
    #[error("waiting for the client's answer to {0} (input_required)")]
    InputRequired(String),
}

/// The input requests of one stateless request (2026-07-28 multi-round-trip requests): each
/// request to the client gets a key by call order; an answer the client sent with its retry is
/// used, a missing one is recorded and ends the request with `input_required`.
#[derive(Debug, Default)]
pub struct InputRounds {
    next: AtomicU64,
    requested: Mutex<Vec<(String, Value)>>,
}

impl InputRounds {
    /// The input requests recorded in this round, in call order.
    pub fn requested(&self) -> Vec<(String, Value)> {
        lock(&self.requested).clone()
    }
}

/// A `notifications/progress` frame, written directly (a handler reporting progress sends one
/// per step; the generic encoder spent more on its serializer than on the bytes). The same bytes
/// as `jsonrpc::encode_notification` with the params in this order (unit-tested).
fn encode_progress(
    token: &RawValue,
    progress: f64,
    total: Option<f64>,
    message: Option<&str>,
) -> Vec<u8> {
    const HEAD: &[u8] =
        br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"#;
    let mut frame = Vec::with_capacity(HEAD.len() + token.get().len() + 64);
    frame.extend_from_slice(HEAD);
    frame.extend_from_slice(token.get().as_bytes());
    frame.extend_from_slice(br#","progress":"#);
    write_number(&mut frame, progress);
    if let Some(total) = total {
        frame.extend_from_slice(br#","total":"#);
        write_number(&mut frame, total);
    }
    if let Some(message) = message {
        frame.extend_from_slice(br#","message":"#);
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut frame, message);
    }
    frame.extend_from_slice(b"}}");
    frame
}

/// A progress number as serde_json writes it. Whole numbers (what most handlers count in) are
/// written as an integer and `.0`, the same text, without the general float formatter (~190
/// instructions a number); the rest, `-0.0` and numbers from 1e15 on (written in exponent form)
/// included, go through serde_json.
fn write_number(frame: &mut Vec<u8>, value: f64) {
    const WHOLE_BELOW: f64 = 1e15;
    if value.fract() == 0.0
        && value.abs() < WHOLE_BELOW
        && !(value == 0.0 && value.is_sign_negative())
    {
        // Exact: a whole number below 1e15 fits an i64 with room to spare.
        frame.extend_from_slice(itoa::Buffer::new().format(value as i64).as_bytes());
        frame.extend_from_slice(b".0");
    } else {
        // Writing to a Vec cannot fail; a number that is not finite is written as `null`.
        let _ = serde_json::to_writer(frame, &value);
    }
}

/// What a stateless request carries instead of a session: its envelope and its input rounds.
#[derive(Debug)]
pub struct StatelessRequest {
    /// The envelope of the request.
    pub envelope: Envelope,
    /// Its input requests.
    pub rounds: InputRounds,
}

/// A stateless request's state, shared by its contexts (one allocation per request).
pub type Stateless = Arc<StatelessRequest>;

/// What a handler gets with each request: the session to log to, report progress on, and ask the
/// client things.
#[derive(Debug, Clone)]
pub struct RequestContext {
    session: Arc<SessionShared>,
    progress_token: Option<Box<RawValue>>,
    /// Where this request's messages go: the connection, or the request's own HTTP stream.
    sink: Outbound,
    /// Set for a 2026-07-28 request: capabilities, log level and input come from it.
    stateless: Option<Stateless>,
}

impl RequestContext {
    /// A context for a request in `session`, with its progress token if it had one; its
    /// notifications and requests to the client go to `sink`.
    pub fn new(
        session: Arc<SessionShared>,
        progress_token: Option<Box<RawValue>>,
        sink: Outbound,
    ) -> Self {
        Self {
            session,
            progress_token,
            sink,
            stateless: None,
        }
    }

    /// The same context for a stateless (2026-07-28) request.
    pub fn with_stateless(mut self, stateless: Option<Stateless>) -> Self {
        self.stateless = stateless;
        self
    }

    /// Ends this request's HTTP response stream early; the client reconnects with
    /// `Last-Event-ID` and receives the rest (including the answer). No effect on other transports.
    pub fn close_stream(&self) {
        if self.sink.is_resumable_stream() {
            self.sink.close();
        }
    }

    /// The session.
    pub fn session(&self) -> &Arc<SessionShared> {
        &self.session
    }

    /// Sends `notifications/message` if `level` is at or above the session's level.
    pub fn log(&self, level: LogLevel, logger: Option<&str>, data: Value) {
        let least = match &self.stateless {
            // Logging is opt-in per request at 2026-07-28.
            Some(s) => match s.envelope.log_level {
                Some(least) => least,
                None => return,
            },
            None => self.session.log_level(),
        };
        if level < least {
            return;
        }
        #[derive(Serialize)]
        struct Params<'a> {
            level: LogLevel,
            #[serde(skip_serializing_if = "Option::is_none")]
            logger: Option<&'a str>,
            data: Value,
        }
        self.sink.send(jsonrpc::encode_notification(
            "notifications/message",
            &Params {
                level,
                logger,
                data,
            },
        ));
    }

    /// Whether the request carried a progress token.
    pub fn wants_progress(&self) -> bool {
        self.progress_token.is_some()
    }

    /// Sends `notifications/progress` (only when the request carried `_meta.progressToken`).
    pub fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        let Some(token) = &self.progress_token else {
            return;
        };
        self.sink
            .send(encode_progress(token, progress, total, message));
    }

    /// `sampling/createMessage` (needs the client's `sampling` capability).
    pub async fn create_message(&self, params: Value) -> Result<Value, ClientRequestError> {
        self.require(|c| c.sampling.is_some(), "sampling")?;
        self.request_client("sampling/createMessage", params).await
    }

    /// `elicitation/create` (needs the client's `elicitation` capability).
    pub async fn elicit(&self, params: Value) -> Result<Value, ClientRequestError> {
        self.require(|c| c.elicitation.is_some(), "elicitation")?;
        self.request_client("elicitation/create", params).await
    }

    /// `roots/list` (needs the client's `roots` capability).
    pub async fn list_roots(&self) -> Result<Value, ClientRequestError> {
        self.require(|c| c.roots.is_some(), "roots")?;
        self.request_client("roots/list", serde_json::json!({}))
            .await
    }

    /// `ping` to the client.
    pub async fn ping_client(&self) -> Result<(), ClientRequestError> {
        if self.stateless.is_some() {
            return Err(ClientRequestError::NoBackChannel("ping"));
        }
        self.request_client("ping", serde_json::json!({}))
            .await
            .map(drop)
    }

    fn require(
        &self,
        has: impl Fn(&ClientCapabilities) -> bool,
        capability: &'static str,
    ) -> Result<(), ClientRequestError> {
        let declared = match &self.stateless {
            Some(s) => has(&s.envelope.capabilities),
            None => self
                .session
                .negotiated()
                .is_some_and(|n| has(&n.capabilities)),
        };
        if declared {
            Ok(())
        } else {
            Err(ClientRequestError::NotSupported(capability))
        }
    }

    /// A stateless request's request to the client: the answer from the client's retry, or
    /// recorded as an input request.
    fn input(
        stateless: &Stateless,
        method: &str,
        params: Value,
    ) -> Result<Value, ClientRequestError> {
        let n = stateless.rounds.next.fetch_add(1, Ordering::Relaxed);
        let key = format!("input-{n}");
        if let Some(answer) = stateless.envelope.input_responses.get(&key) {
            return Ok(answer.clone());
        }
        lock(&stateless.rounds.requested).push((
            key.clone(),
            serde_json::json!({ "method": method, "params": params }),
        ));
        Err(ClientRequestError::InputRequired(key))
    }

    /// Sends a request to the client and waits (at most the configured timeout) for its answer.
    pub async fn request_client(
        &self,
        method: &str,
        params: Value,
    ) -> Result<Value, ClientRequestError> {
        if let Some(stateless) = &self.stateless {
            return Self::input(stateless, method, params);
        }
        let shared = &self.session;
        let n = shared.next_request.fetch_add(1, Ordering::Relaxed);
        let id = RequestId::String(format!("erlmcp-{n}"));
        let (tx, rx) = oneshot::channel();
        lock(&shared.pending).insert(id.clone(), tx);
        if !self
            .sink
            .send(jsonrpc::encode_request(&id, method, &params))
        {
            lock(&shared.pending).remove(&id);
            return Err(ClientRequestError::Disconnected);
        }
        match tokio::time::timeout(shared.client_request_timeout, rx).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(ClientRequestError::Refused {
                method: method.to_owned(),
                error,
            }),
            Ok(Err(_)) => Err(ClientRequestError::Disconnected),
            Err(_) => {
                lock(&shared.pending).remove(&id);
                self.sink.send(jsonrpc::encode_notification(
                    "notifications/cancelled",
                    &serde_json::json!({"requestId": id, "reason": "timed out"}),
                ));
                Err(ClientRequestError::Timeout {
                    method: method.to_owned(),
                    timeout: shared.client_request_timeout,
                })
            }
        }
    }
}

/// The session actor.
pub struct Session;

/// Arguments of a session actor: the session (new, or waking from hibernation).
#[derive(Clone, Debug)]
pub struct SessionArgs {
    /// The session's state that outlives its actor.
    pub shared: Arc<SessionShared>,
}

/// A session's mailbox.
#[derive(Debug)]
pub enum SessionMsg {
    /// `resources/subscribe`.
    Subscribe(String, RpcReplyPort<()>),
    /// `resources/unsubscribe`.
    Unsubscribe(String, RpcReplyPort<()>),
    /// A registry list changed (from the registry, through the process group).
    ListChanged(ListKind),
    /// A resource changed.
    ResourceUpdated(String),
    /// Describe the session.
    Describe(RpcReplyPort<SessionInfo>),
    /// `subscriptions/listen` (2026-07-28): deliver what `filter` asks for, stamped with the
    /// listen request's id (raw JSON), until the session ends.
    Listen(String, ListenFilter, RpcReplyPort<()>),
    /// Hibernate if the actor holds nothing for the session (no subscriptions, no listens):
    /// answers `true` and stops once what is queued before this is handled; `false` (and goes
    /// on) otherwise.
    Hibernate(RpcReplyPort<bool>),
}

/// What `sessions` in the remote shell shows.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    /// Session id.
    pub id: String,
    /// Negotiated revision.
    pub revision: Option<String>,
    /// Client name.
    pub client: Option<String>,
    /// Whether the client sent `notifications/initialized`.
    pub initialized: bool,
    /// Subscribed URIs.
    pub subscriptions: Vec<String>,
    /// Requests in flight.
    pub in_flight: usize,
    /// Requests handled since the session started.
    pub requests: u64,
    /// Open `subscriptions/listen` streams.
    pub listens: usize,
    /// Whether the session is hibernating (no actor until it holds something).
    pub hibernating: bool,
}

/// How sessions run: what every transport passes when it opens one.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// How long server→client requests wait.
    pub client_request_timeout: Duration,
    /// How long a session's actor may sit holding nothing before the session hibernates; `None`:
    /// sessions start with an actor and keep it.
    pub hibernate_after: Option<Duration>,
}

impl SessionSettings {
    /// Sessions that keep their actor from their first message to their last (no hibernation).
    pub fn keeping_actors(client_request_timeout: Duration) -> Self {
        Self {
            client_request_timeout,
            hibernate_after: None,
        }
    }
}

/// A session as its connection holds it: its shared state, and its actor while the session
/// needs one. Clones share the session; when the last one goes, the session ends with it (its
/// actor stopped, or its entry taken off the hibernating table).
#[derive(Debug, Clone)]
pub struct SessionHandle {
    presence: Arc<Presence>,
}

/// The one owner of a session's actor (see the module doc).
#[derive(Debug)]
struct Presence {
    shared: Arc<SessionShared>,
    /// `None`: the actor stays for the session's life.
    hibernate_after: Option<Duration>,
    /// The actor while the session is awake; `None` while it hibernates (then it is listed in
    /// [`HIBERNATING`]). Locked across every exchange with the actor, so hibernating, waking
    /// and asking never cross.
    actor: tokio::sync::Mutex<Option<ActorRef<SessionMsg>>>,
    /// When the actor was last asked something.
    last_asked: Mutex<std::time::Instant>,
    /// A hibernation check is scheduled.
    check_scheduled: AtomicBool,
}

impl SessionHandle {
    /// The part request paths read.
    pub fn shared(&self) -> &Arc<SessionShared> {
        &self.presence.shared
    }

    /// Asks the session's actor, starting one first if the session hibernates.
    async fn ask<T: Send + 'static>(
        &self,
        msg: impl FnOnce(RpcReplyPort<T>) -> SessionMsg,
    ) -> Result<T, RpcError> {
        let presence = &self.presence;
        let mut actor = presence.actor.lock().await;
        if presence.shared.has_ended() {
            return Err(RpcError::internal("the session has ended"));
        }
        let running = match actor.as_ref() {
            Some(running) => running.clone(),
            None => {
                let woken = start_actor(Arc::clone(&presence.shared)).await?;
                *actor = Some(woken.clone());
                woken
            }
        };
        *lock(&presence.last_asked) = std::time::Instant::now();
        let answer = running
            .call(msg, Some(Duration::from_secs(10)))
            .await
            .ok()
            .and_then(|r| match r {
                ractor::rpc::CallResult::Success(v) => Some(v),
                _ => None,
            })
            .ok_or_else(|| RpcError::internal("the session is not running"));
        drop(actor);
        Presence::schedule_hibernation(&self.presence);
        answer
    }

    /// Records the outcome of `initialize` (refused if the session is already initialized).
    pub fn initialize(&self, negotiated: Negotiated) -> Result<(), RpcError> {
        let shared = self.shared();
        let (revision, client) = (
            negotiated.revision,
            negotiated.client_info.as_ref().map(|c| c.name.clone()),
        );
        shared
            .negotiated
            .set(negotiated)
            .map_err(|_| RpcError::invalid_request("the session is already initialized"))?;
        tracing::info!(
            session = %shared.id,
            %revision,
            client = client.as_deref().unwrap_or(""),
            "session initialized"
        );
        Ok(())
    }

    /// `notifications/initialized` arrived.
    pub fn initialized(&self) {
        self.shared()
            .initialized_notified
            .store(true, Ordering::Relaxed);
    }

    /// Sets the log level.
    pub fn set_level(&self, level: LogLevel) {
        self.shared()
            .log_level
            .store(level.as_u8(), Ordering::Relaxed);
    }

    /// Subscribes to a resource.
    pub async fn subscribe(&self, uri: String) -> Result<(), RpcError> {
        self.ask(|r| SessionMsg::Subscribe(uri, r)).await
    }

    /// Unsubscribes from a resource.
    pub async fn unsubscribe(&self, uri: String) -> Result<(), RpcError> {
        self.ask(|r| SessionMsg::Unsubscribe(uri, r)).await
    }

    /// Opens a listen stream on this session (`id` is the listen request's raw JSON id).
    pub async fn listen(&self, id: String, filter: ListenFilter) -> Result<(), RpcError> {
        self.ask(|r| SessionMsg::Listen(id, filter, r)).await
    }

    /// Ends the session (its connection is closing): stops its actor, aborts what is in flight,
    /// and refuses what is asked afterwards.
    pub async fn end(&self) {
        let mut actor = self.presence.actor.lock().await;
        self.shared().ended.store(true, Ordering::Release);
        if let Some(running) = actor.take() {
            let _ = running
                .stop_and_wait(None, Some(Duration::from_secs(2)))
                .await;
        }
        self.presence.release();
    }
}

impl Presence {
    /// What an ended session leaves once its actor is stopped: its table entry (if it was
    /// hibernating) and its requests in flight.
    fn release(&self) {
        lock(&HIBERNATING).remove(self.shared.id.as_ref());
        self.shared.abort_all();
    }

    /// Looks at hibernating once the actor has been asked nothing for `hibernate_after` (one
    /// check at a time; a session that declines is looked at again after its next question).
    fn schedule_hibernation(this: &Arc<Self>) {
        let Some(after) = this.hibernate_after else {
            return;
        };
        if this.check_scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let presence = Arc::downgrade(this);
        tokio::spawn(async move {
            let mut wait = after;
            loop {
                tokio::time::sleep(wait).await;
                let Some(presence) = presence.upgrade() else {
                    return;
                };
                let mut actor = presence.actor.lock().await;
                let quiet_for = lock(&presence.last_asked).elapsed();
                if actor.is_some() && quiet_for < after {
                    wait = after - quiet_for;
                    continue;
                }
                presence.check_scheduled.store(false, Ordering::Release);
                if let Some(running) = actor.as_ref()
                    && let Ok(ractor::rpc::CallResult::Success(true)) = running
                        .call(SessionMsg::Hibernate, Some(Duration::from_secs(10)))
                        .await
                {
                    *actor = None;
                }
                return;
            }
        });
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        // The last handle is gone (without `end` if a task held it last).
        self.shared.ended.store(true, Ordering::Release);
        if let Some(running) = self.actor.get_mut().take() {
            running.stop(None);
        }
        self.release();
    }
}

/// Sessions whose actor is stopped while they are idle, by id. Its lock orders hibernating,
/// waking and broadcasting (see the module doc).
static HIBERNATING: LazyLock<Mutex<HashMap<String, Weak<SessionShared>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// How many sessions hibernate.
pub fn hibernating_count() -> usize {
    lock(&HIBERNATING)
        .values()
        .filter(|shared| shared.strong_count() > 0)
        .count()
}

/// The hibernating sessions, described.
pub fn hibernating_sessions() -> Vec<SessionInfo> {
    let sessions: Vec<Arc<SessionShared>> = lock(&HIBERNATING)
        .values()
        .filter_map(Weak::upgrade)
        .collect();
    sessions
        .iter()
        .map(|shared| shared.info(Vec::new(), 0, true))
        .collect()
}

/// Describes the session whose actor is `cell` (a child of `erlmcp_session_sup`).
pub async fn describe(cell: ractor::ActorCell) -> Result<SessionInfo, RpcError> {
    let actor: ActorRef<SessionMsg> = cell.into();
    match actor
        .call(SessionMsg::Describe, Some(Duration::from_secs(2)))
        .await
    {
        Ok(ractor::rpc::CallResult::Success(info)) => Ok(info),
        _ => Err(RpcError::internal("the session did not answer")),
    }
}

/// The session's state.
pub struct SessionState {
    shared: Arc<SessionShared>,
    subscriptions: HashSet<String>,
    /// Open `subscriptions/listen` requests: their raw ids and filters.
    listens: Vec<(Box<RawValue>, ListenFilter)>,
    life: ActorLife,
}

/// Ends the session when its actor goes, unless it goes because the session hibernates. A drop
/// guard in the actor's state, because a killed or panicking actor runs no `post_stop`.
struct ActorLife {
    shared: Arc<SessionShared>,
    /// The actor stops because the session hibernates, not because it ends.
    hibernating: bool,
}

impl Drop for ActorLife {
    fn drop(&mut self) {
        let shared = &self.shared;
        if self.hibernating {
            tracing::debug!(session = %shared.id, "session hibernating");
        } else if !shared.ended.swap(true, Ordering::AcqRel) {
            // Not ended by its connection: the actor failed, or the node is shutting down. The
            // session ends; closing its queue tells its connection.
            shared.abort_all();
            shared.outbound.close();
            tracing::warn!(session = %shared.id, "session actor stopped; the session ends");
        } else {
            tracing::debug!(session = %shared.id, "session stopped");
        }
    }
}

/// A notification on a listen stream, stamped with the listen request's id.
fn listen_notification(method: &str, id: &RawValue, uri: Option<&str>) -> Vec<u8> {
    let mut params = serde_json::json!({ "_meta": { (SUBSCRIPTION_ID_KEY): id } });
    if let Some(uri) = uri {
        params["uri"] = uri.into();
    }
    jsonrpc::encode_notification(method, &params)
}

impl Actor for Session {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        let shared = args.shared;
        {
            let mut hibernating = lock(&HIBERNATING);
            hibernating.remove(shared.id.as_ref());
            ractor::pg::join(SESSIONS_GROUP.to_owned(), vec![myself.get_cell()]);
        }
        tracing::debug!(session = %shared.id, "session started");
        Ok(SessionState {
            life: ActorLife {
                shared: Arc::clone(&shared),
                hibernating: false,
            },
            shared,
            subscriptions: HashSet::new(),
            listens: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SessionMsg>,
        message: SessionMsg,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        let shared = &state.shared;
        match message {
            SessionMsg::Subscribe(uri, reply) => {
                state.subscriptions.insert(uri);
                let _ = reply.send(());
            }
            SessionMsg::Unsubscribe(uri, reply) => {
                state.subscriptions.remove(&uri);
                let _ = reply.send(());
            }
            SessionMsg::ListChanged(kind) => {
                shared.notify_list_changed(kind);
                for (id, filter) in &state.listens {
                    let wanted = match kind {
                        ListKind::Tools => filter.tools_list_changed,
                        ListKind::Resources => filter.resources_list_changed,
                        ListKind::Prompts => filter.prompts_list_changed,
                    };
                    if wanted == Some(true) {
                        shared.send(listen_notification(kind.notification(), id, None));
                    }
                }
            }
            SessionMsg::ResourceUpdated(uri) => {
                if state.subscriptions.contains(&uri) {
                    shared.send(jsonrpc::encode_notification(
                        "notifications/resources/updated",
                        &serde_json::json!({ "uri": uri }),
                    ));
                }
                for (id, filter) in &state.listens {
                    if filter
                        .resource_subscriptions
                        .as_ref()
                        .is_some_and(|uris| uris.contains(&uri))
                    {
                        shared.send(listen_notification(
                            "notifications/resources/updated",
                            id,
                            Some(&uri),
                        ));
                    }
                }
            }
            SessionMsg::Listen(id, filter, reply) => {
                if let Ok(id) = RawValue::from_string(id) {
                    state.listens.push((id, filter));
                }
                let _ = reply.send(());
            }
            SessionMsg::Describe(reply) => {
                let mut subscriptions: Vec<String> = state.subscriptions.iter().cloned().collect();
                subscriptions.sort();
                let _ = reply.send(shared.info(subscriptions, state.listens.len(), false));
            }
            SessionMsg::Hibernate(reply) => {
                let idle = state.subscriptions.is_empty() && state.listens.is_empty();
                if idle {
                    {
                        let mut hibernating = lock(&HIBERNATING);
                        ractor::pg::leave(SESSIONS_GROUP.to_owned(), vec![myself.get_cell()]);
                        hibernating.insert(shared.id.to_string(), Arc::downgrade(shared));
                    }
                    state.life.hibernating = true;
                    // What broadcasts queued before the table took the session is handled first.
                    if myself.drain().is_err() {
                        myself.stop(None);
                    }
                }
                let _ = reply.send(idle);
            }
        }
        Ok(())
    }
}

/// The child template of `erlmcp_session_sup`: temporary sessions, killed after 1 s on shutdown.
pub fn session_template() -> ChildTemplate<SessionArgs> {
    ChildTemplate::actor("session", |args: SessionArgs| (Session, args))
        .restart(Restart::Temporary)
        .shutdown(Shutdown::Timeout(Duration::from_secs(1)))
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Opens a session for a connection whose queue is `outbound`. With hibernation on it starts
/// hibernating, as a `gen_server` whose `init` answers `hibernate`: it gets an actor under
/// `erlmcp_session_sup` when it first needs one (see the module doc). Otherwise its actor starts
/// now and stays for the session's life.
pub async fn start_session(
    outbound: Outbound,
    settings: SessionSettings,
) -> Result<SessionHandle, RpcError> {
    let id = format!("s{}", NEXT_SESSION.fetch_add(1, Ordering::Relaxed));
    let shared = SessionShared::new(id, outbound, settings.client_request_timeout);
    let actor = if settings.hibernate_after.is_some() {
        lock(&HIBERNATING).insert(shared.id.to_string(), Arc::downgrade(&shared));
        None
    } else {
        Some(start_actor(Arc::clone(&shared)).await?)
    };
    Ok(SessionHandle {
        presence: Arc::new(Presence {
            shared,
            hibernate_after: settings.hibernate_after,
            actor: tokio::sync::Mutex::new(actor),
            last_asked: Mutex::new(std::time::Instant::now()),
            check_scheduled: AtomicBool::new(false),
        }),
    })
}

/// Starts the actor of `shared` under `erlmcp_session_sup`.
async fn start_actor(shared: Arc<SessionShared>) -> Result<ActorRef<SessionMsg>, RpcError> {
    let sup = erlmcp_supervisors::SupervisorRef::whereis(SESSION_SUP)
        .ok_or_else(|| RpcError::internal("erlmcp_session_sup is not running"))?;
    let sessions = erlmcp_supervisors::DynamicSupervisor::<SessionArgs>::from_ref(sup);
    // The supervisor answers once the actor's `pre_start` has run.
    let started = sessions
        .start_child(SessionArgs { shared })
        .await
        .map_err(|e| RpcError::internal(format!("cannot start a session: {e}")))?;
    started
        .map(ActorRef::from)
        .ok_or_else(|| RpcError::internal("the session supervisor ignored the session"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_frames_are_what_the_generic_encoder_writes() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Params<'a> {
            progress_token: &'a RawValue,
            progress: f64,
            #[serde(skip_serializing_if = "Option::is_none")]
            total: Option<f64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            message: Option<&'a str>,
        }
        for value in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            42.0,
            0.5,
            -2.25,
            1e14,
            999_999_999_999_999.0,
            1e15,
            -1e15,
            1e16,
            1e21,
            1e-7,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            let mut written = Vec::new();
            write_number(&mut written, value);
            assert_eq!(written, serde_json::to_vec(&value).unwrap(), "{value:e}");
        }
        let tokens = [r#""abc""#, "7", r#""q\"uote""#];
        let cases: [(f64, Option<f64>, Option<&str>); 5] = [
            (1.0, Some(1.0), None),
            (0.5, None, Some("half \"way\"\n")),
            (f64::NAN, Some(f64::INFINITY), Some("")),
            (3.0e20, Some(-0.0), Some("é ✓")),
            (42.0, None, None),
        ];
        for token in tokens {
            let token = RawValue::from_string(token.to_owned()).unwrap();
            for (progress, total, message) in cases {
                let expected = jsonrpc::encode_notification(
                    "notifications/progress",
                    &Params {
                        progress_token: &token,
                        progress,
                        total,
                        message,
                    },
                );
                let written = encode_progress(&token, progress, total, message);
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    String::from_utf8(expected).unwrap()
                );
            }
        }
    }
}
