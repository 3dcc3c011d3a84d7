//! Owns the routing of one decoded frame to its answer: the MCP server methods, notifications
//! from the client, and the client's answers to this server's requests. Every transport feeds
//! frames here and writes what comes out of the session's queue.
//! The per-method handlers live in `dispatch/methods.rs`, the stateless (2026-07-28) envelope
//! in `dispatch/stateless.rs`, batches in `dispatch/batch.rs`, the tasks extension in
//! `dispatch/tasks.rs`.
//!
//! Guarantees:
//! - Every request gets exactly one response (unless the client cancels it); a notification gets
//!   none. Bad input gets a JSON-RPC error and the connection goes on.
//! - A handler's future is polled once in place; if it is not done, it continues in its own task
//!   (so requests on one connection run concurrently and may be answered out of order) and can be
//!   cancelled with `notifications/cancelled`, after which no response is sent.
//! - A handler that panics yields an error (`isError` for tools, -32603 otherwise); the session
//!   goes on.
//! - A batch (2025-03-26) of more than `max_batch_size` messages, or whose answer would pass
//!   `max_message_size`, gets one -32600 error (id null) instead of its answers; this holds on
//!   every transport, since they all hand batches to this module.
//! - A response from the client that matches no pending request is logged (at most once a
//!   second), counted (`stray_responses`) and dropped: no peer answers a response.

mod authz;
pub use authz::reload_rules;
mod batch;
mod methods;
mod stateless;
mod tasks;

use crate::admission::{Admission, Permit, Shed};
use crate::auth::Principal;
use crate::log_limit::LogLimiter;
use crate::metrics::{Metrics, Transport};
use crate::outbound::Outbound;
use crate::protocol::incoming::{self, Incoming, Params};
use crate::protocol::jsonrpc::{self, RequestId, RpcError};
use crate::protocol::messages::{CancelledParams, Implementation};
use crate::protocol::methods::{ClientMethod, ClientNotification};
use crate::protocol::modern::{self, StatelessRouting};
use crate::registry::{BoxFuture, RegistryHandle};
use crate::session::{SessionHandle, SessionShared, Stateless};
use erlmcp_supervisors::error::panic_message;
use futures::FutureExt;
use serde::Serialize;
use serde::de::Deserialize;
use serde_json::value::RawValue;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What the dispatcher needs from the node.
#[derive(Clone)]
pub struct ServerContext {
    /// What is served.
    pub registry: RegistryHandle,
    /// Items per page of every list method.
    pub page_size: usize,
    /// `serverInfo` of `initialize`.
    pub server_info: Implementation,
    /// `instructions` of `initialize`.
    pub instructions: Option<String>,
    /// Where every answered request is counted.
    pub metrics: Arc<Metrics>,
    /// Most messages in one batch; a larger batch gets one -32600 error.
    pub max_batch_size: usize,
    /// Largest answer to a batch, in bytes (`max_message_size`); a batch whose answer would
    /// pass it gets one -32600 error.
    pub max_message_size: usize,
    /// The node's admission point: every request enters it or is shed.
    pub admission: Arc<Admission>,
}

/// Responses matching no pending request, logged at most once a second.
static STRAY_RESPONSES: LogLimiter = LogLimiter::per_second();

/// An answer: ready now, or still being computed; or the one answer of a shed request.
enum Reply {
    Now(Vec<u8>),
    Later(BoxFuture<Vec<u8>>),
    Shed(Vec<u8>, Shed),
    None,
}

/// An answer ready at once, and, when the request was shed, why and when to retry (HTTP
/// answers a shed request `503` with `Retry-After`).
#[derive(Debug)]
pub(crate) struct ReadyAnswer {
    /// The encoded answer.
    pub(crate) frame: Vec<u8>,
    /// Set when the admission point shed the request.
    pub(crate) shed: Option<Shed>,
}

impl Reply {
    /// What a caller that takes answers ready at once gets.
    fn ready(self) -> Option<ReadyAnswer> {
        match self {
            Reply::Now(frame) => Some(ReadyAnswer { frame, shed: None }),
            Reply::Shed(frame, shed) => Some(ReadyAnswer {
                frame,
                shed: Some(shed),
            }),
            Reply::Later(_) | Reply::None => None,
        }
    }
}

/// Routes the frames of one session.
#[derive(Clone)]
pub struct Dispatcher {
    server: Arc<ServerContext>,
    shared: Arc<SessionShared>,
    /// The session; `None` for a stateless request, which has no session.
    session: Option<SessionHandle>,
    /// Where answers (and the messages of the requests it handles) go.
    reply: Outbound,
    /// Set while one 2026-07-28 request is routed.
    stateless: Option<Stateless>,
    /// The transport its frames come on (shed requests are counted by it).
    transport: Transport,
    /// Who the request comes from, when its transport asked (HTTP with `[auth]`): the rules
    /// are applied to it, and handlers see it.
    principal: Option<Arc<Principal>>,
    /// Who its requests count against for the rate limit (none: not limited here — stdio, and
    /// HTTP, which is limited from each request's head).
    rate_keys: smallvec::SmallVec<[crate::admission::rate::RateKey; 2]>,
}

fn params_or_empty(params: Option<&RawValue>) -> &str {
    params.map_or("{}", RawValue::get)
}

fn parse_params<'a, T: Deserialize<'a>>(params: Option<&'a RawValue>) -> Result<T, RpcError> {
    serde_json::from_str(params_or_empty(params))
        .map_err(|e| RpcError::invalid_params(format!("invalid params: {e}")))
}

impl Dispatcher {
    /// A dispatcher for `session`, on `transport`, whose answers go to the session's
    /// connection.
    pub fn new(server: Arc<ServerContext>, session: SessionHandle, transport: Transport) -> Self {
        let reply = session.shared().outbound().clone();
        Self {
            transport,
            ..Self::with_reply(server, session, reply)
        }
    }

    /// A dispatcher whose answers go to `reply` (a request's own stream, as a Streamable HTTP POST has).
    pub(crate) fn with_reply(
        server: Arc<ServerContext>,
        session: SessionHandle,
        reply: Outbound,
    ) -> Self {
        Self {
            server,
            shared: Arc::clone(session.shared()),
            session: Some(session),
            reply,
            stateless: None,
            transport: Transport::Http,
            principal: None,
            rate_keys: smallvec::SmallVec::new(),
        }
    }

    /// A dispatcher for stateless (2026-07-28) requests: no session; answers go to
    /// `reply`. Its requests come through [`Dispatcher::answer_routed_message`].
    pub(crate) fn stateless(
        server: Arc<ServerContext>,
        shared: Arc<SessionShared>,
        reply: Outbound,
    ) -> Self {
        Self {
            server,
            shared,
            session: None,
            reply,
            stateless: None,
            transport: Transport::Http,
            principal: None,
            rate_keys: smallvec::SmallVec::new(),
        }
    }

    /// The same dispatcher for requests from `principal` (`None`: no one was asked).
    pub(crate) fn with_principal(mut self, principal: Option<Arc<Principal>>) -> Self {
        self.principal = principal;
        self
    }

    /// Its requests count against `keys` for the rate limit (`rate_limit.requests_per_second`).
    pub(crate) fn with_rate_keys(
        mut self,
        keys: smallvec::SmallVec<[crate::admission::rate::RateKey; 2]>,
    ) -> Self {
        self.rate_keys = keys;
        self
    }

    /// The session's shared state.
    pub(crate) fn shared(&self) -> &Arc<SessionShared> {
        &self.shared
    }

    fn actor(&self) -> Result<&SessionHandle, RpcError> {
        self.session
            .as_ref()
            .ok_or_else(|| RpcError::internal("a stateless request has no session"))
    }

    fn send(&self, frame: Vec<u8>) {
        self.reply.send(frame);
    }

    /// Handles one frame (a message or a batch); answers go to the session's queue.
    pub async fn handle_frame(&self, frame: &[u8]) {
        if let Some(answer) = self.answer_frame(frame).await {
            self.send(answer.frame);
        }
    }

    /// Handles one frame as [`Dispatcher::handle_frame`] does, except that an answer ready at
    /// once for which `instead` gives something is not queued: that is returned (legacy SSE's
    /// `POST /messages` answers the rules' scope refusal with its 403 rather than on the stream).
    pub(crate) async fn handle_frame_or<T>(
        &self,
        frame: &[u8],
        instead: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Option<T> {
        let answer = self.answer_frame(frame).await?;
        if let Some(taken) = instead(&answer.frame) {
            return Some(taken);
        }
        self.send(answer.frame);
        None
    }

    /// Handles one frame as [`Dispatcher::handle_frame`] does, except that the answer to a
    /// single request, when it is ready at once, is returned and not queued: it comes after
    /// whatever the handler queued first. (An HTTP POST's answer: a queue pushed and popped at
    /// once cost ~400 instructions a request.) A batch's answer, and one that takes longer, are
    /// queued.
    pub(crate) async fn answer_frame(&self, frame: &[u8]) -> Option<ReadyAnswer> {
        let start = frame
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(frame.len());
        let frame = &frame[start..];
        if frame.is_empty() {
            return None;
        }
        self.server.metrics.received(frame.len());
        if frame[0] == b'[' {
            self.handle_batch(frame).await;
            return None;
        }
        self.reply_to(frame, true).await.ready()
    }

    /// The answer to one message. With `spawn`, unfinished requests continue in their own task
    /// (and answer by themselves); without, the caller awaits them (batches).
    async fn reply_to(&self, bytes: &[u8], spawn: bool) -> Reply {
        match incoming::parse(bytes) {
            Ok(message) => self.reply_to_message(message, spawn, None).await,
            Err(rejection) => Reply::Now(jsonrpc::encode_error(
                rejection.id.map(RawValue::get),
                &rejection.error,
            )),
        }
    }

    /// Handles one stateless request its transport has already parsed (and counted):
    /// held to the 2026-07-28 envelope and checked against `routing`. An answer ready at once is
    /// returned, not queued (it follows whatever the handler queued first); one that takes
    /// longer is queued when it is ready.
    pub(crate) async fn answer_routed_message(
        &self,
        message: Incoming<'_>,
        routing: &StatelessRouting<'_>,
    ) -> Option<ReadyAnswer> {
        self.reply_to_message(message, true, Some(routing))
            .await
            .ready()
    }

    async fn reply_to_message(
        &self,
        message: Incoming<'_>,
        spawn: bool,
        routing: Option<&StatelessRouting<'_>>,
    ) -> Reply {
        match message {
            Incoming::Request { id, method, params } => {
                self.shared.requests.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                let admission = &self.server.admission;
                if !self.rate_keys.is_empty()
                    && admission.rate().limits_requests()
                    && let Err(shed) =
                        admission.check_rate(&method, self.transport, &self.rate_keys)
                {
                    let answer = jsonrpc::encode_error(Some(id.get()), &shed.to_rpc_error());
                    let metrics = &self.server.metrics;
                    metrics.record(&method, started.elapsed(), true, answer.len());
                    return Reply::Shed(answer, shed);
                }
                let permit = match admission
                    .enabled()
                    .then(|| admission.try_enter(&method, self.transport))
                {
                    None => None,
                    Some(Ok(permit)) => Some(permit),
                    Some(Err(shed)) => {
                        let answer = jsonrpc::encode_error(Some(id.get()), &shed.to_rpc_error());
                        let metrics = &self.server.metrics;
                        metrics.record(&method, started.elapsed(), true, answer.len());
                        return Reply::Shed(answer, shed);
                    }
                };
                let reply = self.request(id.get(), &method, &params, routing).await;
                let reply = self.counted(reply, id.get(), &method, started, permit);
                match reply {
                    Reply::Later(fut) if spawn => {
                        self.run_in_own_task(id, fut);
                        Reply::None
                    }
                    other => other,
                }
            }
            Incoming::Notification { method, params } => {
                self.notification(&method, params);
                Reply::None
            }
            Incoming::Response { id, outcome } => {
                self.client_answer(id, outcome);
                Reply::None
            }
        }
    }

    /// Records the answer in the metrics when it is ready (now, or when the work ends), and
    /// gives the request's admission `permit` back then (or when the work is cancelled).
    fn counted(
        &self,
        reply: Reply,
        id: &str,
        method: &str,
        started: Instant,
        permit: Option<Permit<'_>>,
    ) -> Reply {
        let metrics = &self.server.metrics;
        match reply {
            Reply::Now(frame) => {
                let error = jsonrpc::is_error_answer(&frame, id);
                metrics.record(method, started.elapsed(), error, frame.len());
                Reply::Now(frame)
            }
            Reply::Later(work) => {
                let metrics = Arc::clone(metrics);
                let (id, method) = (id.to_owned(), method.to_owned());
                let permit = permit.map(Permit::into_owned);
                Reply::Later(Box::pin(async move {
                    let _permit = permit;
                    let frame = work.await;
                    let error = jsonrpc::is_error_answer(&frame, &id);
                    metrics.record(&method, started.elapsed(), error, frame.len());
                    frame
                }))
            }
            Reply::Shed(..) | Reply::None => reply,
        }
    }

    fn run_in_own_task(&self, id: &RawValue, fut: BoxFuture<Vec<u8>>) {
        let shared = &self.shared;
        // The id was validated as a string or integer by the envelope check.
        let Some(key) = RequestId::from_raw(id) else {
            return;
        };
        if !shared.spawn_tracked(key, fut, self.reply.clone()) {
            self.send(jsonrpc::encode_error(
                Some(id.get()),
                &RpcError::invalid_request(format!(
                    "request id {} is already in flight on this session",
                    id.get()
                )),
            ));
        }
    }

    /// One request, routed by its method (read from its name once, here).
    async fn request(
        &self,
        id: &str,
        name: &str,
        params: &Params<'_>,
        routing: Option<&StatelessRouting<'_>>,
    ) -> Reply {
        let method = ClientMethod::parse(name);
        if self.stateless.is_none()
            && (routing.is_some()
                || (self.shared.revision().is_none() && modern::carries_envelope(params)))
        {
            return self.stateless_request(id, method, params, routing).await;
        }
        if self.shared.revision().is_none() && !method.before_initialize() {
            let error = RpcError::invalid_request(format!(
                "`{name}` before initialize: the session is not initialized yet"
            ));
            return Reply::Now(jsonrpc::encode_error(Some(id), &error));
        }
        self.route(id, method, params).await
    }

    fn notification(&self, name: &str, params: Option<&RawValue>) {
        let shared = &self.shared;
        match ClientNotification::parse(name) {
            ClientNotification::Initialized => {
                if let Some(session) = &self.session {
                    session.initialized();
                }
            }
            ClientNotification::Cancelled => match parse_params::<CancelledParams<'_>>(params) {
                Ok(p) => {
                    let cancelled =
                        RequestId::from_raw(p.request_id).is_some_and(|key| shared.cancel(&key));
                    tracing::debug!(
                        session = %shared.id,
                        request = p.request_id.get(),
                        reason = p.reason.as_deref().unwrap_or(""),
                        cancelled,
                        "cancellation"
                    );
                }
                Err(e) => {
                    tracing::warn!(session = %shared.id, error = %e, "bad notifications/cancelled")
                }
            },
            other @ (ClientNotification::Progress
            | ClientNotification::RootsListChanged
            | ClientNotification::Unknown(_)) => {
                tracing::debug!(session = %shared.id, method = other.as_str(), "notification")
            }
        }
    }

    fn client_answer(&self, id: &RawValue, outcome: Result<&RawValue, &RawValue>) {
        let outcome = match outcome {
            Ok(result) => serde_json::from_str(result.get())
                .map_err(|e| RpcError::internal(format!("unreadable result: {e}"))),
            Err(error) => Err(
                serde_json::from_str::<RpcError>(error.get()).unwrap_or_else(|_| {
                    RpcError::internal(format!("malformed error object: {}", error.get()))
                }),
            ),
        };
        let delivered =
            RequestId::from_raw(id).is_some_and(|key| self.shared.deliver(&key, outcome));
        if !delivered {
            // No peer answers a response: it is counted and dropped, and logged at a bounded
            // rate (a client could send them in a loop).
            self.server
                .metrics
                .stray_responses
                .fetch_add(1, Ordering::Relaxed);
            if let Some(held) = STRAY_RESPONSES.allow() {
                tracing::warn!(
                    session = %self.shared.id,
                    id = id.get(),
                    dropped_since_last_line = held,
                    "response to no pending request dropped"
                );
            }
        }
    }
}

/// Polls `work` once in place; if it is done (or panicked), the answer is ready now, without
/// another allocation. Otherwise the rest runs later, to be spawned or awaited by the caller.
/// `finish` turns the outcome (or the panic) into the encoded answer for `id`.
fn settle<O: Send + 'static>(
    id: &str,
    mut work: BoxFuture<O>,
    finish: impl FnOnce(&str, std::thread::Result<O>) -> Vec<u8> + Send + 'static,
) -> Reply {
    match std::panic::catch_unwind(AssertUnwindSafe(|| (&mut work).now_or_never())) {
        Ok(Some(out)) => Reply::Now(finish(id, Ok(out))),
        Err(panic) => Reply::Now(finish(id, Err(panic))),
        Ok(None) => {
            let id = id.to_owned();
            Reply::Later(Box::pin(async move {
                let out = AssertUnwindSafe(work).catch_unwind().await;
                finish(&id, out)
            }))
        }
    }
}

/// The answer of a handler that returns a value or a JSON-RPC error; a panic is -32603.
fn encode_rpc_outcome<T: Serialize>(
    id: &str,
    out: std::thread::Result<Result<T, RpcError>>,
) -> Vec<u8> {
    match out {
        Ok(Ok(value)) => jsonrpc::encode_result(id, &value),
        Ok(Err(error)) => jsonrpc::encode_error(Some(id), &error),
        Err(panic) => jsonrpc::encode_error(
            Some(id),
            &RpcError::internal(format!("the handler panicked: {}", panic_message(&*panic))),
        ),
    }
}
