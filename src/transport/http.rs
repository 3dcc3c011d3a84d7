//! Owns the Streamable HTTP transport (revisions 2025-03-26 … 2025-11-25) on axum: one endpoint,
//! `/mcp` — POST carries one JSON-RPC message (or a 2025-03-26 batch), GET opens the session's
//! stream for server-initiated messages, DELETE ends the session. The same listener serves the
//! legacy HTTP+SSE transport ([`legacy_sse`], `/sse` + `/messages`) and
//! WebSocket ([`websocket`], `/ws`), its children that share its state and checks.
//!
//! Rules kept here (each pinned by `tests/mcp_over_streamable_http.rs`):
//! - `initialize` creates a session: a session actor under `erlmcp_session_sup` and a
//!   cryptographically random `Mcp-Session-Id`. Later requests without the header get 400, with an
//!   unknown or expired one 404. Idle sessions expire after `http.session_timeout` and their actor
//!   is stopped.
//! - A notification or response gets 202. A request gets `application/json` when its answer is
//!   ready at once and nothing else was sent for it; otherwise an SSE stream that starts with a
//!   priming event (id, empty data, `retry`) and carries the request's notifications, its requests
//!   to the client, then its answer.
//! - Every SSE event has an id `<stream>-<seq>`; each stream keeps a bounded replay buffer, and a
//!   GET with `Last-Event-ID` resumes that stream after the id. A handler may end its POST response
//!   early ([`crate::session::RequestContext::close_stream`]); the client resumes with GET.
//! - `MCP-Protocol-Version` decides the revision per request: a handshake revision (or none) is
//!   served here; anything else goes to the stateless 2026-07-28 path ([`stateless`]).
//! - DNS-rebinding protection: a `Host` or `Origin` that is not loopback (or listed in
//!   `http.allowed_hosts` / `http.allowed_origins`) gets 403; no `Host`, or two, 400; an
//!   absolute-form target is judged by its authority. An optional bearer token gets 401. All
//!   that the head alone decides is decided before the body is read ([`head_checks`]); a body
//!   then has `http.body_read_timeout` to arrive, within `http.max_pending_body_bytes` over all
//!   connections ([`body_guard`]): 408 / 503, and the connection closes.
//! - Sessions are capped: `http.max_sessions` in all, `http.max_sessions_per_client` per source
//!   address ([`sessions`]): 503 with a JSON-RPC error past either.
//! - A write stuck for `write_timeout` (the client reads nothing) closes the connection, SSE
//!   streams and WebSockets included ([`listener`]).
//! - A connection with no request in progress for `http.header_read_timeout` is closed
//!   (slowloris; idle keep-alive): [`idle_watch`], up to a twentieth of the timeout late.
//! - Plain `POST /mcp` requests are read and answered by erlmcp's own HTTP/1.1 ([`fast_lane`],
//!   the hot path); the first request of any other kind hands its connection to hyper, where
//!   `POST /mcp` still goes past the router. With `http.pipeline_flush` the fast lane's answers
//!   to pipelined requests leave in one write (hyper's own `pipeline_flush` is never used).
//! - Accepted sockets get TCP_NODELAY; the connection limit in force (`max_connections`, or
//!   fewer where the open-file limit says so: [`crate::transport::descriptors`]) is enforced at
//!   accept; bodies over
//!   `max_message_size` get 413; JSON bodies over 1 KiB are gzip-compressed when the client
//!   accepts it.

use crate::dispatch::Dispatcher;
use crate::locks::lock;
use crate::outbound::{Outbound, OutboundReceiver};
use crate::protocol::jsonrpc::{self, RpcError};
use crate::transport::TransportContext;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Settings of the HTTP transport.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Idle sessions are removed after this long.
    pub session_timeout: Duration,
    /// Extra `Host` values accepted besides loopback names.
    pub allowed_hosts: Vec<String>,
    /// Extra `Origin` values accepted besides loopback origins.
    pub allowed_origins: Vec<String>,
    /// Require `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// Serve GET streams (else 405).
    pub get_stream: bool,
    /// The `retry` sent on SSE streams.
    pub sse_retry: Duration,
    /// Keep-alive comment interval on SSE streams.
    pub keep_alive: Duration,
    /// Events kept per stream for resumption.
    pub replay_buffer: usize,
    /// Time allowed to send a request head (and to start the next one on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// Write the answers to pipelined requests together (hyper's `pipeline_flush`).
    pub pipeline_flush: bool,
    /// Serve plain `POST /mcp` requests with erlmcp's own HTTP/1.1 ([`fast_lane`]), not hyper.
    pub fast_lane: bool,
    /// Offer permessage-deflate on `/ws`.
    pub ws_compression: bool,
    /// Time a request's body may take to arrive once its head has.
    pub body_read_timeout: Duration,
    /// Bytes of bodies being read at once, over all connections.
    pub max_pending_body_bytes: usize,
    /// Sessions at once, in all.
    pub max_sessions: usize,
    /// Sessions at once from one source address (0: no cap).
    pub max_sessions_per_client: usize,
}

use futures::StreamExt as _;

mod answer;
mod body_guard;
mod connections;
mod event_stream;
mod fast_lane;
mod head_checks;
mod idle_watch;
pub mod legacy_sse;
mod listener;
mod request_headers;
mod sessions;
mod stateless;
pub mod websocket;

pub(crate) use head_checks::check_caller;
pub use listener::{LimitedListener, SlottedStream};
pub(crate) use request_headers::RequestHeaders;
pub use sessions::reap_idle_sessions;
use sessions::{
    HttpSession, NewSessionError, SessionCaps, SessionTable, create_session, end_session,
};

use answer::{Answer, IntoAnswer as _};

/// The transport's shared state.
pub struct HttpState {
    pub(crate) ctx: TransportContext,
    pub(crate) settings: HttpSettings,
    sessions: Mutex<SessionTable>,
    pub(crate) legacy: legacy_sse::LegacySessions,
    /// Bytes of request bodies being read now.
    bodies: body_guard::BodyBudget,
}

/// Builds the router serving `/mcp`.
pub fn router(ctx: TransportContext, settings: HttpSettings) -> (Router, Arc<HttpState>) {
    let state = Arc::new(HttpState {
        ctx,
        sessions: Mutex::new(SessionTable::new(SessionCaps {
            total: settings.max_sessions,
            per_client: settings.max_sessions_per_client,
        })),
        legacy: Mutex::new(HashMap::new()),
        bodies: body_guard::BodyBudget::new(settings.max_pending_body_bytes),
        settings,
    });
    let body_limit = state.ctx.limits.max_message_size.saturating_add(1);
    let router = Router::new()
        .route("/mcp", any(mcp))
        .route("/sse", axum::routing::get(legacy_sse::open))
        .route("/messages", axum::routing::post(legacy_sse::message))
        .route("/ws", axum::routing::get(websocket::upgrade))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(Arc::clone(&state));
    (router, state)
}

pub(crate) fn session_id() -> Result<String, RpcError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| RpcError::internal(format!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn plain(status: StatusCode, message: &str) -> Response {
    let body = jsonrpc::encode_error(None, &RpcError::invalid_request(message));
    (status, [(header::CONTENT_TYPE, APPLICATION_JSON)], body).into_response()
}

/// Header values of every answer, made once: a `&str` in a header pair is copied into a new
/// allocation for each response.
pub(crate) const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
/// The headers of every SSE response.
pub(crate) const SSE_HEADERS: [(header::HeaderName, HeaderValue); 2] = [
    (
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    ),
    (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
];

/// `Mcp-Session-Id`.
const SESSION_ID: header::HeaderName = header::HeaderName::from_static("mcp-session-id");

async fn mcp(
    State(state): State<Arc<HttpState>>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer::into_axum_response(
        route_mcp(&state, &method, RequestHeaders::read(&headers), &body).await,
    )
}

/// `POST /mcp` straight from hyper, past the router and its extractors (which clone every header
/// map): the hot path. Same rules as [`mcp`]; the body limit is applied here.
async fn fast_post<B>(
    state: Arc<HttpState>,
    request: axum::http::Request<B>,
    peer: std::net::IpAddr,
) -> Answer
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    let limit = state.ctx.limits.max_message_size.saturating_add(1);
    let body = match read_body(body, limit).await {
        Ok(body) => body,
        Err(BodyRefused::TooLarge) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body exceeds max_message_size",
            )
            .into_answer();
        }
        Err(BodyRefused::Unreadable(e)) => {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}"),
            )
            .into_answer();
        }
    };
    let mut read = RequestHeaders::read(&parts.headers);
    read.peer = Some(peer);
    route_mcp(&state, &parts.method, read, &body).await
}

/// Why a request body was not read.
#[derive(Debug)]
enum BodyRefused {
    /// It is longer than the limit (said by its length, or found while reading it).
    TooLarge,
    /// The connection failed while it was read.
    Unreadable(Box<dyn std::error::Error + Send + Sync>),
}

/// A request body, whole, refused past `limit` bytes. A body that arrives in one frame (nearly
/// every JSON-RPC message) is that frame as it is: collecting it through a list of frames
/// cost an allocation and a copy per request.
async fn read_body<B>(mut body: B, limit: usize) -> Result<Bytes, BodyRefused>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt as _;
    if body.size_hint().lower() > limit as u64 {
        return Err(BodyRefused::TooLarge);
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyRefused::Unreadable(e.into()))?;
        // Trailers carry nothing a JSON-RPC message needs.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let read = first.as_ref().map_or(joined.len(), Bytes::len);
        if read + data.len() > limit {
            return Err(BodyRefused::TooLarge);
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            Some(earlier) => {
                joined.reserve(earlier.len() + data.len());
                joined.extend_from_slice(&earlier);
                joined.extend_from_slice(&data);
            }
            None => joined.extend_from_slice(&data),
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

/// Any request to `/mcp`, its headers read and its body whole.
async fn route_mcp(
    state: &Arc<HttpState>,
    method: &axum::http::Method,
    read: RequestHeaders<'_>,
    body: &[u8],
) -> Answer {
    if let Some(refusal) = check_caller(&read, &state.settings) {
        return refusal.into_answer();
    }
    // The revision is decided per request: a version header that names no handshake revision
    // (2026-07-28, or one this server does not know) takes the stateless path, which answers an
    // unknown version with -32022 naming the versions it serves.
    if read.takes_stateless_path() {
        return stateless::handle(state, method, read, body).await;
    }
    match *method {
        axum::http::Method::POST => post(state, &read, body).await,
        axum::http::Method::GET => get(state, &read).into_answer(),
        axum::http::Method::DELETE => delete(state, &read).await.into_answer(),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, POST, DELETE")],
        )
            .into_answer(),
    }
}

/// Why a request names no usable session.
enum NoSession {
    /// No `Mcp-Session-Id`: 400.
    Missing,
    /// Unknown or expired: 404.
    Unknown,
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            Self::Missing => plain(StatusCode::BAD_REQUEST, "missing Mcp-Session-Id header"),
            Self::Unknown => plain(StatusCode::NOT_FOUND, "unknown or expired session"),
        }
    }
}

/// The session named by `id` (the request's `Mcp-Session-Id`), marked as seen now.
fn find_session(state: &HttpState, id: Option<&str>) -> Result<Arc<HttpSession>, NoSession> {
    let id = id.ok_or(NoSession::Missing)?;
    let session = lock(&state.sessions)
        .get(id)
        .cloned()
        .ok_or(NoSession::Unknown)?;
    *lock(&session.last_seen) = Instant::now();
    Ok(session)
}

/// Whether a session with this id is open (no mark of it being seen: the head checks ask).
fn session_exists(state: &HttpState, id: &str) -> bool {
    lock(&state.sessions).get(id).is_some()
}

/// Whether a POST body is an `initialize` request (only asked when it carries no session id).
fn is_initialize(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Peek<'a> {
        #[serde(default, borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Peek<'_>>(body)
        .is_ok_and(|p| p.method.as_deref() == Some("initialize"))
}

/// 415 for a request whose `Content-Type` is not JSON.
fn check_content_type(headers: &RequestHeaders<'_>) -> Option<Response> {
    let json_type = headers.content_type.is_some_and(|t| {
        t.get(..16)
            .is_some_and(|start| start.eq_ignore_ascii_case("application/json"))
    });
    (!json_type).then(|| {
        plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        )
    })
}

/// 415 for a body that is not JSON, 413 for one over `max_message_size`.
fn check_body(state: &HttpState, headers: &RequestHeaders<'_>, body: &[u8]) -> Option<Response> {
    if let Some(refusal) = check_content_type(headers) {
        return Some(refusal);
    }
    if body.len() > state.ctx.limits.max_message_size {
        return Some(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body exceeds max_message_size",
        ));
    }
    None
}

/// Frames taken off a queue at once: nearly always one or two (an answer, maybe a notification
/// before it), kept inline so that taking them allocates nothing.
pub(crate) type Ready = smallvec::SmallVec<[Vec<u8>; 2]>;

/// The frames already queued, and whether every sender is gone (nothing more will come).
fn drain_ready(queue: &mut OutboundReceiver) -> (Ready, bool) {
    let mut ready = Ready::new();
    loop {
        match queue.rx.try_recv() {
            Ok(frame) => {
                queue.level().written(1, frame.len());
                ready.push(frame);
            }
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => return (ready, false),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => return (ready, true),
        }
    }
}

/// An SSE response without event ids (nothing to resume): `ready`, then what `queue` brings
/// until every sender is gone. `hold` lives as long as the response body.
fn sse_frames(
    ready: Ready,
    queue: OutboundReceiver,
    settings: &HttpSettings,
    hold: Option<Box<dyn Send + Sync>>,
) -> Response {
    let event = |frame: &[u8]| {
        let mut out = Vec::with_capacity(frame.len() + 24);
        out.extend_from_slice(b"event: message\ndata: ");
        out.extend_from_slice(frame);
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    };
    let first = futures::stream::iter(ready.iter().map(|f| event(f)).collect::<Vec<_>>());
    let rest = futures::stream::unfold((queue, hold), move |(mut queue, hold)| async move {
        let frame = queue.rx.recv().await?;
        queue.level().written(1, frame.len());
        Some((event(&frame), (queue, hold)))
    });
    sse(first.chain(rest), settings)
}

async fn post(state: &Arc<HttpState>, read: &RequestHeaders<'_>, body: &[u8]) -> Answer {
    if let Some(refusal) = check_body(state, read, body) {
        return refusal.into_answer();
    }
    let id = read.session_id;
    let session = if id.is_none() && is_initialize(body) {
        if let Err(shed) = state
            .ctx
            .server
            .admission
            .check_new_session(crate::metrics::Transport::Http)
        {
            return overloaded(&shed).into_answer();
        }
        match create_session(state, read.peer).await {
            Ok(session) => session,
            Err(NewSessionError::Full(full)) => return busy(&full.message()).into_answer(),
            Err(NewSessionError::Failed(e)) => {
                return plain(StatusCode::INTERNAL_SERVER_ERROR, &e.message).into_answer();
            }
        }
    } else {
        match find_session(state, id) {
            Ok(session) => session,
            Err(refusal) => return refusal.into_answer(),
        }
    };
    let session_header = session.id.clone();
    let (reply, mut queue) = Outbound::resumable_stream();
    let dispatcher =
        Dispatcher::with_reply(Arc::clone(&state.ctx.server), session.handle.clone(), reply);
    let answer = dispatcher.answer_frame(body).await;
    drop(dispatcher);
    let (mut ready, finished) = drain_ready(&mut queue);
    ready.extend(answer);
    // Nothing answered and nothing pending: the body held only notifications or responses.
    let mut response = if finished && ready.is_empty() {
        StatusCode::ACCEPTED.into_answer()
    } else if finished && ready.len() == 1 && !ready[0].is_empty() {
        json_response(read, ready.remove(0))
    } else {
        let stream = session.new_stream();
        for frame in ready {
            stream.push(frame, state.settings.replay_buffer);
        }
        if finished {
            stream.finish();
        } else {
            stream.feed(queue, state.settings.replay_buffer);
        }
        // Everything already there (the common case: a handler that reported progress and
        // answered without waiting): one body with a length, the events still kept for
        // resumption. Else events as they come.
        match stream.finished_body(state.settings.sse_retry) {
            Some(body) => answer::events(body),
            None => sse(
                stream.events(0, Some(state.settings.sse_retry), Some(0)),
                &state.settings,
            )
            .into_answer(),
        }
    };
    response.set_session_id(session_header);
    response
}

/// An SSE response: the events, with a keep-alive comment whenever the stream is quiet.
fn sse(
    events: impl futures::Stream<Item = Bytes> + Send + 'static,
    settings: &HttpSettings,
) -> Response {
    let keep_alive = settings.keep_alive;
    let events = events
        .map(Some)
        .chain(futures::stream::once(async { None }));
    let body = futures::stream::unfold(
        (Box::pin(events), keep_alive),
        |(mut events, keep_alive)| async move {
            match tokio::time::timeout(keep_alive, events.next()).await {
                Ok(Some(Some(event))) => Some((Ok::<_, Infallible>(event), (events, keep_alive))),
                Ok(_) => None,
                Err(_) => Some((
                    Ok(Bytes::from_static(b": keep-alive\n\n")),
                    (events, keep_alive),
                )),
            }
        },
    );
    (SSE_HEADERS, Body::from_stream(body)).into_response()
}

fn json_response(headers: &RequestHeaders<'_>, body: Vec<u8>) -> Answer {
    // The body's size first: most answers are small, and then the header is not read.
    if body.len() > 1024 && headers.accepts_gzip() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        if encoder.write_all(&body).is_ok()
            && let Ok(compressed) = encoder.finish()
        {
            let gzip = HeaderValue::from_static("gzip");
            return answer::json(StatusCode::OK, compressed, Some(gzip));
        }
    }
    answer::json(StatusCode::OK, body, None)
}

/// 503 with a JSON-RPC error (-32000) saying which limit was reached.
fn busy(message: &str) -> Response {
    let body = jsonrpc::encode_error(None, &RpcError::new(-32000, message.to_owned()));
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, APPLICATION_JSON)],
        body,
    )
        .into_response()
}

/// 503 for a shed request: `Retry-After` and the JSON-RPC error (-32000 `server overloaded`).
fn overloaded(shed: &crate::admission::Shed) -> Response {
    let body = jsonrpc::encode_error(None, &shed.to_rpc_error());
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, APPLICATION_JSON),
            (
                header::RETRY_AFTER,
                HeaderValue::from(shed.retry_after_secs()),
            ),
        ],
        body,
    )
        .into_response()
}

fn get(state: &Arc<HttpState>, headers: &RequestHeaders<'_>) -> Response {
    if !state.settings.get_stream {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST, DELETE")],
        )
            .into_response();
    }
    if !headers.accepts_sse() {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            "GET needs Accept: text/event-stream",
        );
    }
    let session = match find_session(state, headers.session_id) {
        Ok(session) => session,
        Err(refusal) => return refusal.into_response(),
    };
    // Resume a stream after the last event the client saw.
    if let Some(last) = headers.last_event_id {
        let parsed = last
            .split_once('-')
            .and_then(|(s, q)| Some((s.parse::<u64>().ok()?, q.parse::<u64>().ok()?)));
        if let Some((stream_id, seq)) = parsed
            && let Some(stream) = session.stream(stream_id)
        {
            return sse(stream.events(seq, None, None), &state.settings);
        }
    }
    let Some(standalone) = session.stream(0) else {
        return plain(StatusCode::NOT_FOUND, "the session has no stream");
    };
    let now = standalone.last_seq();
    sse(
        standalone.events(now, Some(state.settings.sse_retry), None),
        &state.settings,
    )
}

async fn delete(state: &Arc<HttpState>, headers: &RequestHeaders<'_>) -> Response {
    let id = headers.session_id;
    let session = match find_session(state, id) {
        Ok(session) => session,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(id) = id {
        lock(&state.sessions).remove(id);
        tracing::debug!(http_session = %id, "http session deleted");
    }
    end_session(&session).await;
    StatusCode::OK.into_response()
}

pub use crate::tree_names::HTTP;

/// Where the HTTP listener bound (useful with port 0).
pub type BoundAddr = Arc<std::sync::OnceLock<SocketAddr>>;

/// The HTTP listener actor: binds, serves `/mcp`, expires idle sessions.
pub struct HttpListener;

/// Its arguments.
#[derive(Clone)]
pub struct HttpListenerArgs {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Listen backlog.
    pub backlog: u32,
    /// Node-wide transport context.
    pub ctx: TransportContext,
    /// Transport settings.
    pub settings: HttpSettings,
    /// Filled with the bound address.
    pub bound: BoundAddr,
}

/// What it owns: the server task and the reaper task.
pub struct HttpListenerState {
    server: tokio::task::JoinHandle<()>,
    reaper: tokio::task::JoinHandle<()>,
}

impl ractor::Actor for HttpListener {
    type Msg = ();
    type State = HttpListenerState;
    type Arguments = HttpListenerArgs;

    async fn pre_start(
        &self,
        _myself: ractor::ActorRef<()>,
        args: HttpListenerArgs,
    ) -> Result<HttpListenerState, ractor::ActorProcessingErr> {
        let socket = if args.addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket
            .bind(args.addr)
            .map_err(|e| format!("cannot listen on http {}: {e}", args.addr))?;
        let listener = socket.listen(args.backlog)?;
        let local = listener.local_addr()?;
        let _ = args.bound.set(local);
        let header_timeout = args.settings.header_read_timeout;
        let (app, state) = router(args.ctx.clone(), args.settings);
        let reaper = tokio::spawn(reap_idle_sessions(Arc::clone(&state)));
        let server = tokio::spawn(connections::serve_connections(
            LimitedListener::new(listener, args.ctx),
            app,
            state,
            header_timeout,
        ));
        tracing::info!(addr = %local, "http listening on {local}");
        Ok(HttpListenerState { server, reaper })
    }

    async fn post_stop(
        &self,
        _myself: ractor::ActorRef<()>,
        state: &mut HttpListenerState,
    ) -> Result<(), ractor::ActorProcessingErr> {
        state.server.abort();
        state.reaper.abort();
        tracing::info!("http listener stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of these frames (`Err` for a failing read), with no length announced.
    fn frames(
        parts: Vec<Result<hyper::body::Frame<Bytes>, std::io::Error>>,
    ) -> impl hyper::body::Body<Data = Bytes, Error = std::io::Error> + Unpin {
        http_body_util::StreamBody::new(futures::stream::iter(parts))
    }

    fn data(text: &'static str) -> Result<hyper::body::Frame<Bytes>, std::io::Error> {
        Ok(hyper::body::Frame::data(Bytes::from_static(
            text.as_bytes(),
        )))
    }

    #[tokio::test]
    async fn bodies_are_read_whole_and_refused_past_the_limit() {
        // One frame is kept as it is, not copied.
        let one = Bytes::from_static(b"{\"a\":1}");
        let read = read_body(http_body_util::Full::new(one.clone()), 64)
            .await
            .unwrap();
        assert_eq!(read.as_ptr(), one.as_ptr());
        // Frames are joined in order; empty ones and trailers change nothing.
        let parts = vec![
            data(""),
            data("{\"a\":"),
            Ok(hyper::body::Frame::trailers(HeaderMap::new())),
            data("1"),
            data("}"),
        ];
        assert_eq!(read_body(frames(parts), 64).await.unwrap(), "{\"a\":1}");
        assert_eq!(read_body(frames(vec![]), 64).await.unwrap(), "");
        // Exactly the limit passes; one byte more, over one frame or several, does not.
        assert_eq!(
            read_body(frames(vec![data("abcd")]), 4).await.unwrap(),
            "abcd"
        );
        for parts in [vec![data("abcde")], vec![data("ab"), data("cde")]] {
            let refused = read_body(frames(parts), 4).await.unwrap_err();
            assert!(matches!(refused, BodyRefused::TooLarge), "{refused:?}");
        }
        // An announced length over the limit is refused before anything is read.
        let announced = http_body_util::Full::new(Bytes::from_static(b"abcde"));
        assert!(matches!(
            read_body(announced, 4).await,
            Err(BodyRefused::TooLarge)
        ));
        // A failed read says why.
        let broken = vec![data("ab"), Err(std::io::Error::other("reset by peer"))];
        match read_body(frames(broken), 64).await {
            Err(BodyRefused::Unreadable(e)) => assert!(e.to_string().contains("reset by peer")),
            other => panic!("{other:?}"),
        }
    }
}
